"""Stand-in for the factory's ``php artisan data:sync`` in the registry demo.

Prints the machine counters of one source as a JSON array on stdout, the contract the artisan
connector reads. Arguments: ``data:sync --source=<machine> --type=<kind> [--rows=N]``.
"""

import argparse
import datetime as dt
import json
import random
import sys


def main() -> int:
    parser = argparse.ArgumentParser(prog="artisan")
    parser.add_argument("command", choices=["data:sync"])
    parser.add_argument("--source", required=True)
    parser.add_argument("--type", default="production")
    parser.add_argument("--rows", type=int, default=48)
    args = parser.parse_args()
    rng = random.Random(args.source)
    hour = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    records = [
        {
            "id": n,
            "machine": args.source,
            "type": args.type,
            "hour": (hour - dt.timedelta(hours=args.rows - n)).isoformat(),
            "good_count": rng.randrange(300, 520),
            "reject_count": rng.randrange(0, 12),
            "counters": {"spindle_hours": round(rng.uniform(1000, 9000), 1), "alarms": rng.randrange(0, 4)},
        }
        for n in range(1, args.rows + 1)
    ]
    json.dump(records, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
