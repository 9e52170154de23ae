"""Tekmetric sync benchmark: API requests per 1,000 repair orders, and how close a backfill runs
to the rate limit without bursting over it.

    .venv/bin/python bench/bench_tekmetric.py [--quick] [--limit 600]

Runs the real shop sync (hook -> emulator over loopback HTTP -> Postgres warehouse):

1. Requests per 1,000 ROs: a year of one shop's repair orders read in one window and in the
   DAG's default 30-day slices, against the floor: ceil(ROs / 100) pages + 2 requests per window
   (the deleted read, and a last partial page).
2. Rate: a year's backfill of several shops with the client limiter at ``--limit`` per minute,
   one shop after the other (one limiter at 98 % of the limit) and as the DAG runs them (shops in
   parallel, each pacing itself at 95 % of the limit / shops).
   The emulator enforces the same limit server-side over a short sliding window (10 s), so any
   burst of ours shows up as an HTTP 429 there. Achieved rate = requests / time from the first
   to the last request; the target is > 90 % of the limit with no server 429.

Every run ends by checking the warehouse equals the emulator, table by table; a difference, or a server
429 (the client burst over the limit), makes the exit code 1. Each scenario gets its own throwaway
warehouse database (bench/benchlib.py Scratch), dropped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]  # the package; devtools/ (emulator, demo data)
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow"))

import psycopg  # noqa: E402

from benchlib import Scratch, emit  # noqa: E402  (bench/ is this script's own folder)

UTC = dt.timezone.utc
SERVER_WINDOW = 10.0  # seconds: the emulator's sliding window for its rate limit
WEEKS = 52  # a year of repair orders (customers reach ~7 weeks further back): 15 slices of 30 days


def fresh_warehouse(scratch: Scratch) -> None:
    """A new, migrated warehouse database for each scenario (the scratch drops them all at the end)."""
    scratch.bind(scratch.pg("bench_tekmetric"), "tekmetric_warehouse")
    from datasync.migrate import migrate

    migrate(["tekmetric"])


def query(sql: str, params=None) -> list[tuple]:
    with psycopg.connect(os.environ["AIRFLOW_CONN_TEKMETRIC_WAREHOUSE"], autocommit=True) as c:
        return c.execute(sql, params).fetchall()


def emulator(shops: int, customers: int, ros: int, limit: float | None):
    from devtools.tekmetric.emulator import TekmetricEmulator

    emu = TekmetricEmulator(shops=shops, seed=7, customers=customers, repair_orders=ros, employees=8, weeks=WEEKS,
                            rate_limit_per_minute=limit, rate_limit_window=SERVER_WINDOW)
    return emu.start()


def prepare(emu, limit: float, share_shops: int = 1) -> list[dict]:
    """Connection -> emulator with the client limit; shops listed, with the API share the DAG gives
    each (98 % of the limit for one shop at a time, 95 % / shops for shops in parallel)."""
    from datasync.db import connected
    from datasync.tekmetric import sync

    os.environ["AIRFLOW_CONN_TEKMETRIC_API"] = emu.airflow_connection(rate_limit_per_minute=limit, timeout=30)
    hook = sync.make_hook()
    with connected("tekmetric_warehouse") as db:
        shops = sync.list_shops(hook, db, api_concurrency=share_shops)
    hook.close()
    return shops


def options(window_days: int):
    from datasync.tekmetric.sync import SyncOptions

    return SyncOptions(backfill_start=dt.datetime.now(UTC) - dt.timedelta(days=7 * WEEKS + 60),
                       window=dt.timedelta(days=window_days))


def requests_per_1000(scratch: Scratch, ros: int, window_days: int) -> dict:
    """Scenario 1: one shop, employees + repair orders only, no rate limit anywhere."""
    from datasync.tekmetric import sync

    fresh_warehouse(scratch)
    emu = emulator(1, 50, ros, None)
    try:
        shop = prepare(emu, 60_000)[0]
        hook = sync.make_hook()
        sync.sync_entity("employees", shop["shop_id"], hook=hook, options=options(window_days))
        emu.clear_requests()
        started = time.perf_counter()
        out = sync.sync_entity("repair_orders", shop["shop_id"], hook=hook, options=options(window_days))
        seconds = time.perf_counter() - started
        hook.close()
        n = out["read"]
        used = emu.request_count("/repair-orders")
        floor = math.ceil(n / 100) + 2 * out["windows"]
        from devtools.tekmetric.compare import differences

        ok = not {k: v for k, v in differences(emu.store, query, [shop["shop_id"]]).items()
                  if k not in ("customers", "vehicles")}
        return {"ros": n, "windows": out["windows"], "requests": used, "per_1000": used * 1000 / n, "seconds": seconds,
                "floor": floor, "floor_per_1000": floor * 1000 / n, "matches": ok}
    finally:
        emu.stop()


def backfill(scratch: Scratch, shops: int, customers: int, ros: int, limit: float, parallel: bool) -> dict:
    """Scenario 2: whole shops (every entity) under the limit, sequentially or one thread per shop."""
    from datasync.tekmetric import sync
    from devtools.tekmetric.compare import differences

    fresh_warehouse(scratch)
    emu = emulator(shops, customers, ros, limit)
    try:
        listed = prepare(emu, limit, share_shops=shops if parallel else 1)
        emu.clear_requests()
        errors: list[BaseException] = []

        def one(shop: dict) -> None:
            hook = sync.make_hook(shop["api_share"])
            try:
                sync.sync_shop(shop["shop_id"], hook=hook, run_id="bench", options=options(30))
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                hook.close()

        started = time.monotonic()
        if parallel:
            threads = [threading.Thread(target=one, args=(s,)) for s in listed]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            for s in listed:
                one(s)
        elapsed = time.monotonic() - started
        if errors:
            raise errors[0]
        reqs = emu.requests
        span = reqs[-1].monotonic - reqs[0].monotonic
        rate = (len(reqs) - 1) / span * 60
        server_429 = sum(1 for r in reqs if r.reason == "rate_limit")
        # The densest stretch of SERVER_WINDOW seconds, against what the limit allows in it.
        times = [r.monotonic for r in reqs]
        densest, j = 0, 0
        for i, t in enumerate(times):
            while times[j] <= t - SERVER_WINDOW:
                j += 1
            densest = max(densest, i - j + 1)
        ros_synced = query("SELECT count(*) FROM repair_orders")[0][0]
        return {"shops": shops, "parallel": parallel, "requests": len(reqs), "elapsed": elapsed, "span": span,
                "rate": rate, "fraction": rate / limit, "server_429": server_429, "densest": densest,
                "allowed": limit * SERVER_WINDOW / 60, "ros": ros_synced,
                "matches": differences(emu.store, query) == {}}
    finally:
        emu.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small data: about a minute")
    ap.add_argument("--limit", type=float, default=600, help="requests per minute (Tekmetric production: 600)")
    args = ap.parse_args()
    import logging

    logging.disable(logging.WARNING)  # the hook logs every page; the table below is the output
    ros_1 = 1000 if args.quick else 5000
    shops, customers, ros = (2, 500, 1000) if args.quick else (4, 2000, 3000)
    failures = []

    lines = ["", "1. API requests per 1,000 repair orders (one shop, repair orders only)",
             f"{'window':>12} {'ROs':>7} {'windows':>8} {'requests':>9} {'per 1,000':>10} {'floor/1,000':>12}  warehouse"]
    with Scratch() as scratch:  # one warehouse database per scenario, all dropped at the end
        for label, days in (("one window", 3650), ("30-day", 30)):
            print(f"[bench] requests per 1,000 ROs: {label} ...", flush=True)
            r = requests_per_1000(scratch, ros_1, days)
            lines.append(f"{label:>12} {r['ros']:>7,} {r['windows']:>8} {r['requests']:>9} {r['per_1000']:>10.1f} "
                         f"{r['floor_per_1000']:>12.1f}  {'= emulator' if r['matches'] else 'DIFFERS'}")
            where = "in one window" if days > 365 else f"in {days}-day windows"
            emit(f"tekmetric: a year of repair orders {where} ({r['ros']:,} ROs)", r["seconds"], rows=r["ros"],
                 note=f"{r['per_1000']:.1f} requests per 1,000 ROs (floor {r['floor_per_1000']:.1f})")
            if not r["matches"]:
                failures.append(f"requests per 1,000, {label}: the warehouse differs from the emulator")
        lines += ["", f"2. Backfill at {args.limit:g} requests/min (client limiter; the emulator enforces the same "
                      f"over {SERVER_WINDOW:g} s windows)",
                  f"{'run':>22} {'ROs':>7} {'requests':>9} {'seconds':>8} {'req/min':>8} {'of limit':>9} "
                  f"{'densest/allowed':>16} {'server 429':>11}  warehouse"]
        for parallel in (False, True):
            label = f"{shops} shops " + ("in parallel" if parallel else "one by one")
            print(f"[bench] backfill: {label} ...", flush=True)
            r = backfill(scratch, shops, customers, ros, args.limit, parallel)
            lines.append(f"{label:>22} {r['ros']:>7,} {r['requests']:>9} {r['span']:>8.1f} {r['rate']:>8.1f} "
                         f"{r['fraction']:>8.1%} {r['densest']:>8}/{r['allowed']:<7g} {r['server_429']:>11}  "
                         f"{'= emulator' if r['matches'] else 'DIFFERS'}")
            # baseline: the time the limit itself needs for these requests; ratio = achieved rate / limit
            emit(f"tekmetric: backfill at {args.limit:g}/min, {label} ({r['ros']:,} ROs)", r["span"],
                 baseline="requests at the limit's pace", baseline_seconds=(r["requests"] - 1) / args.limit * 60,
                 target=0.9, rows=r["ros"],
                 note=f"{r['requests']} requests, {r['rate']:.1f}/min; densest {SERVER_WINDOW:g} s: "
                      f"{r['densest']} of {r['allowed']:g} allowed; {r['server_429']} server 429s")
            if r["server_429"]:  # the client limiter burst over the limit: a defect, not a slow run
                failures.append(f"backfill, {label}: the emulator answered {r['server_429']} requests with 429")
            if not r["matches"]:
                failures.append(f"backfill, {label}: the warehouse differs from the emulator")
    print("\n".join(lines))
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
