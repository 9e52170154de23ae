"""Small command line for the demo, the tests and operators: ``python -m datasync ...``.

    python -m datasync migrate [TARGET ...]   apply migrations through the Airflow connections
    python -m datasync status  [TARGET ...]   list applied / pending migrations
    python -m datasync demo                   create the demo databases and run every pipeline
    python -m datasync realtime enable|disable CONN_ID TABLE ...
                                              change notifications on a Postgres source's tables

``migrate`` and ``status`` find connections where Airflow's components do: ``AIRFLOW_CONN_*``
variables, the configured secrets backend, then the metadata database. A failure is one line
naming the connection and what to do; no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from datasync.db import DatabaseUnavailable, LockTimeout, WrongServerKind, connected
from datasync.migrate import LEDGER, TARGETS, MigrationError, migrate, plan

# Airflow resolves connections outside a task with env vars and secrets backends only; a process
# that may read the metadata database (scheduler, API server, this CLI) says so with this marker.
PROCESS_CONTEXT = "_AIRFLOW_PROCESS_CONTEXT"


def _missing_connection(conn_id: str) -> str:
    return (f"connection '{conn_id}' is not defined: set AIRFLOW_CONN_{conn_id.upper()}, add it with "
            f"`airflow connections add {conn_id} --conn-uri ...` (metadata database) or to your secrets backend, then rerun")


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _status(names: list[str]) -> int:
    for name in names or list(TARGETS):
        if name not in TARGETS:
            raise MigrationError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
        target = TARGETS[name]
        with connected(target.conn_id) as db:
            schema = db.dialect.current_schema
            (has_ledger,) = db.fetchone("SELECT count(*) FROM information_schema.tables "
                                        f"WHERE table_name = %s AND table_schema = {schema}", (LEDGER,))
            applied = {v for (v,) in db.fetchall(f"SELECT version FROM {LEDGER}")} if has_ledger else set()
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
    rt = sub.add_parser("realtime", help="install or remove change notifications (docs/realtime.md)")
    rt.add_argument("action", choices=["enable", "disable"])
    rt.add_argument("conn_id", help="Airflow connection of the Postgres source (a login that may create triggers)")
    rt.add_argument("tables", nargs="+", metavar="TABLE", help="table or schema.table")
    args = parser.parse_args(argv)
    # Our progress lines; Airflow's own start-up chatter stays out of the output.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("datasync").setLevel(logging.INFO)
    if args.command in ("migrate", "status", "realtime"):
        os.environ.setdefault(PROCESS_CONTEXT, "server")

    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        if args.command == "migrate":
            for report in migrate(args.targets or None):
                print(report.summary())
            return 0
        if args.command == "status":
            return _status(args.targets)
        if args.command == "realtime":
            from datasync.realtime import watch

            with connected(args.conn_id) as db:
                for table in watch(db, args.tables, enabled=args.action == "enable"):
                    print(f"{args.conn_id}: {table} {'announces its changes' if args.action == 'enable' else 'no longer announces changes'}")
            return 0
        try:
            from devtools.demo import run_demo
        except ModuleNotFoundError as exc:
            if exc.name != "devtools":
                raise
            print("error: the demo needs devtools/ from the repository checkout on PYTHONPATH "
                  "(the production image ships without it); run `make demo` there", file=sys.stderr)
            return 1
        return run_demo()
    except AirflowNotFoundException as exc:
        conn_id = str(exc).split("`")[1] if str(exc).count("`") >= 2 else "?"
        print(f"error: {_missing_connection(conn_id)}", file=sys.stderr)
        return 1
    except DatabaseUnavailable as exc:
        print(f"error: {_one_line(exc)}; check the connection's host, port and login, and that the server is up", file=sys.stderr)
        return 1
    except (MigrationError, WrongServerKind, LockTimeout, RuntimeError, ValueError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # anything else: still one line; the traceback on request
        if os.environ.get("DATASYNC_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {_one_line(exc)} (rerun with DATASYNC_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
