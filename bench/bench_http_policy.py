"""How the HTTP policy copes with a connection that overstates the server's rate limit.

    .venv/bin/python bench/bench_http_policy.py [--server 60] [--client 300] [--calls 200] [--shops 4]

The Tekmetric emulator allows ``--server`` requests a minute (a sliding 60 s window, 429 above it,
no Retry-After: the server gives no hint); the connection says ``--client`` a minute. ``--shops``
shop tasks call at once, each with its hook and its share of the connection's limit, as the
``tekmetric_sync`` DAG runs them. Prints the share of API calls answered 429 and the achieved
rate of successful calls, and a ``BENCH-RESULT`` row (bench/benchlib.py): its ratio is that rate over
the server's limit. No database is involved.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]  # the package; devtools/ (the emulator)
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow"))

from benchlib import emit  # noqa: E402  (bench/ is this script's own folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", type=float, default=60)
    ap.add_argument("--client", type=float, default=300)
    ap.add_argument("--calls", type=int, default=200, help="successful calls in all")
    ap.add_argument("--shops", type=int, default=4)
    args = ap.parse_args()

    from datasync.tekmetric.sync import make_hook
    from devtools.tekmetric.emulator import TekmetricEmulator

    with TekmetricEmulator(shops=args.shops, seed=3, customers=40, repair_orders=5,
                           rate_limit_per_minute=args.server) as emu:
        os.environ["AIRFLOW_CONN_TEKMETRIC_API"] = emu.airflow_connection(rate_limit_per_minute=args.client,
                                                                          max_retries=20)
        hooks = [make_hook(0.95 / args.shops) for _ in emu.store.shop_ids]  # the DAG's split of the limit
        for hook in hooks:
            hook.get_token()
        emu.clear_requests()
        per_shop = args.calls // args.shops

        def work(hook, shop: int) -> None:
            for i in range(per_shop):
                hook.get_json("/customers", {"shop": shop, "size": 10, "page": i % 4})

        started = time.monotonic()
        threads = [threading.Thread(target=work, args=(hook, shop)) for hook, shop in zip(hooks, emu.store.shop_ids)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        calls = [r for r in emu.requests if r.path.endswith("/customers")]
        throttled = sum(1 for r in calls if r.status == 429)
        ok = len(calls) - throttled
        print(f"server {args.server:g}/min, connection {args.client:g}/min, {args.shops} shops at once: "
              f"{len(calls)} API calls, {throttled} answered 429 ({100 * throttled / len(calls):.1f} %), "
              f"{ok} succeeded in {elapsed:.0f} s ({60 * ok / elapsed:.1f}/min)")
        # baseline: the time the server's own limit needs for the successful calls; ratio = achieved / server rate
        emit(f"http policy: server {args.server:g}/min, connection {args.client:g}/min, {args.shops} shops at once",
             elapsed, baseline="successful calls at the server's limit", baseline_seconds=ok / args.server * 60,
             note=f"{len(calls)} API calls, {throttled} answered 429 ({100 * throttled / len(calls):.1f} %)")


if __name__ == "__main__":
    main()
