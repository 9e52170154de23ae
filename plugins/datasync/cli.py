"""Small command line for the demo, the tests and operators: ``python -m datasync ...``.

    python -m datasync migrate [TARGET ...]   apply migrations through the Airflow connections
    python -m datasync status  [TARGET ...]   list applied / pending migrations
    python -m datasync demo                   create the demo databases and run every pipeline
"""

from __future__ import annotations

import argparse
import logging
import sys

from datasync.db import connected
from datasync.migrate import TARGETS, MigrationError, migrate, plan


def _status(names: list[str]) -> int:
    for name in names or list(TARGETS):
        if name not in TARGETS:
            raise MigrationError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
        target = TARGETS[name]
        with connected(target.conn_id) as db:
            applied = {v for (v,) in db.fetchall("SELECT version FROM datasync_migrations")}
            for mig in plan(target, db):
                mark = "applied" if mig.version in applied else "PENDING"
                print(f"{name:10} {mig.version:28} {mark:8} {mig.path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datasync", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd in ("migrate", "status"):
        p = sub.add_parser(cmd)
        p.add_argument("targets", nargs="*", metavar="TARGET", help=f"any of {', '.join(TARGETS)} (default: all)")
    sub.add_parser("demo")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    try:
        if args.command == "migrate":
            for report in migrate(args.targets or None):
                print(report.summary())
            return 0
        if args.command == "status":
            return _status(args.targets)
        from datasync.demo import run_demo

        return run_demo()
    except (MigrationError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
