"""Sync engine benchmark: throughput against baselines measured in the same run.

    .venv/bin/python bench/bench_engine.py [--rows 1000000] [--rss-rows 5000000] [--baseline-rows 200000]

Baselines: (a) raw ``COPY (SELECT ...) TO STDOUT`` piped into ``COPY target FROM STDIN`` (no
upsert, empty target), (b) Airflow's ``DbApiHook.insert_rows(replace=True, executemany=True)``.
insert_rows is measured on ``--baseline-rows`` rows (it is slow) and compared per row.
Peak RSS is measured in a child process per size, on the path where rows become Python objects
(MariaDB -> Postgres), so a flat figure shows memory does not grow with table size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow"))

import MySQLdb  # noqa: E402
import psycopg  # noqa: E402

PG = os.environ.get("DATASYNC_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
MY = dict(host="127.0.0.1", port=3306, user="root", password="")
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
RUN_START = dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)

PG_TABLE = """CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, qty INTEGER, price NUMERIC(12,2),
    sku VARCHAR(40), updated_at TIMESTAMPTZ NOT NULL)"""
MY_TABLE = """CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, qty INTEGER, price DECIMAL(12,2),
    sku VARCHAR(40), updated_at DATETIME(6) NOT NULL, KEY items_sync (updated_at, id))"""
COLS = "id, name, qty, price, sku, updated_at"


def pg_admin(sql: str) -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as c:
        c.execute(sql)


def pg(db: str):
    return psycopg.connect(f"{PG}/{db}", autocommit=True)


def my(db: str | None = None):
    c = MySQLdb.connect(**MY, **({"database": db} if db else {}))
    c.autocommit(True)
    return c


def fresh_pg(name: str) -> None:
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{name}"')
    os.environ[f"AIRFLOW_CONN_{name.upper()}"] = f"{PG}/{name}"


def fresh_my(name: str) -> None:
    c = my()
    c.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    c.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    c.close()
    os.environ[f"AIRFLOW_CONN_{name.upper()}"] = f"mysql://root@127.0.0.1:3306/{name}"


def bookkeeping(conn_id: str, family: str) -> None:
    from datasync.db import connected
    from datasync.migrate import Target, migrate_database

    with connected(conn_id) as db:
        migrate_database(Target("bench", conn_id, family), db)


def fill_pg(db: str, rows: int) -> None:
    with pg(db) as c:
        c.execute(PG_TABLE)
        c.execute(
            f"INSERT INTO items ({COLS}) SELECT g, 'item ' || g, g %% 1000, (g %% 10000) / 100.0, 'SKU-' || (g %% 5000), "
            "%s::timestamptz + g * interval '1 second' FROM generate_series(1, %s) g",
            (T0, rows),
        )
        c.execute("CREATE INDEX items_sync ON items (updated_at, id)")
        c.execute("VACUUM ANALYZE items")


def fill_my(db: str, rows: int) -> None:
    c = my(db)
    cur = c.cursor()
    cur.execute(MY_TABLE)
    # MariaDB's sequence engine generates the rows server-side.
    cur.execute(
        f"INSERT INTO items ({COLS}) SELECT seq, CONCAT('item ', seq), seq % 1000, (seq % 10000) / 100.0, "
        f"CONCAT('SKU-', seq % 5000), TIMESTAMPADD(SECOND, seq, '2026-01-01 00:00:00') FROM seq_1_to_{rows}"
    )
    c.close()


def empty_target(conn_id: str, kind: str) -> None:
    from datasync.db import connected

    with connected(conn_id) as db:
        db.execute("DROP TABLE IF EXISTS items")
        db.execute(PG_TABLE if kind == "postgres" else MY_TABLE)
        db.execute("DELETE FROM sync_cursors")
        db.commit()


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def engine_sync(src: str, tgt: str, mode: str = "incremental", batch: int = 100_000, bulk: bool = True):
    from datasync.engine import SqlSource, SyncSpec, run_sync

    spec = SyncSpec(name="bench.items", target_table="items", key=["id"], cursor_column="updated_at", mode=mode,
                    batch_size=batch, lookback=dt.timedelta(minutes=5), bulk_load_empty=bulk)
    return run_sync(spec, SqlSource(src, table="items"), tgt, run_start=RUN_START)


def raw_copy(src_db: str, tgt_db: str) -> None:
    from datasync.engine.writers import pipe

    with pg(src_db) as s, pg(tgt_db) as t:
        t.execute("TRUNCATE items")
        with s.cursor().copy(f"COPY (SELECT {COLS} FROM items) TO STDOUT") as out, t.cursor().copy(f"COPY items ({COLS}) FROM STDIN") as into:
            pipe(out, into)  # the same buffered relay the engine uses


def insert_rows_baseline(src_conn: str, tgt_conn: str, tgt_kind: str, rows: int) -> float:
    """Airflow's own way: read rows, DbApiHook.insert_rows(replace=True, executemany=True)."""
    from datasync.db import connected

    if tgt_kind == "postgres":
        from airflow.providers.postgres.hooks.postgres import PostgresHook as Hook

        hook = Hook(postgres_conn_id=tgt_conn)
    else:
        from airflow.providers.mysql.hooks.mysql import MySqlHook as Hook

        hook = Hook(mysql_conn_id=tgt_conn)
    with connected(src_conn) as src:
        data = src.fetchall(f"SELECT {COLS} FROM items ORDER BY id LIMIT {rows}")
    started = time.perf_counter()
    hook.insert_rows("items", data, target_fields=COLS.split(", "), commit_every=5000, replace=True,
                     replace_index="id", executemany=True)
    return time.perf_counter() - started


RSS_CHILD = r"""
import datetime as dt, os, resource, sys
sys.path.insert(0, sys.argv[1])
from datasync.engine import SqlSource, SyncSpec, run_sync
r = run_sync(SyncSpec(name="rss", target_table="items", key=["id"], cursor_column="updated_at", batch_size=50000),
             SqlSource("bench_my_src", table="items"), "bench_pg_tgt", run_start=dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc))
print(r.counts.read, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss(rows: int) -> tuple[int, float]:
    fresh_my("bench_my_src")
    fill_my("bench_my_src", rows)
    empty_target("bench_pg_tgt", "postgres")
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(REPO / "plugins")], capture_output=True, text=True, env=os.environ)
    took = time.perf_counter() - started
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    read, rss_kb = map(int, out.stdout.split()[-2:])
    assert read == rows, (read, rows)
    return rss_kb // 1024, took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rss-rows", type=int, default=5_000_000)
    ap.add_argument("--baseline-rows", type=int, default=200_000)
    args = ap.parse_args()
    import logging

    logging.getLogger("datasync").setLevel(logging.WARNING)
    n = args.rows
    lines = []

    def report(case: str, seconds: float, rows: int, baseline: str = "", ratio: float | None = None) -> None:
        rate = rows / seconds if seconds else float("inf")
        r = f"{ratio:6.2f}x {baseline}" if ratio is not None else ""
        lines.append(f"{case:52} {rows:>9,} rows {seconds:8.2f} s {rate:>12,.0f} rows/s  {r}")
        print(lines[-1], flush=True)

    print(f"setting up {n:,} rows ...", flush=True)
    fresh_pg("bench_pg_src"), fresh_pg("bench_pg_tgt"), fresh_my("bench_my_tgt")
    fill_pg("bench_pg_src", n)
    bookkeeping("bench_pg_tgt", "postgres")
    bookkeeping("bench_my_tgt", "mysql")

    # Postgres -> Postgres
    empty_target("bench_pg_tgt", "postgres")
    t_copy = timed(lambda: raw_copy("bench_pg_src", "bench_pg_tgt"))
    report("baseline: raw COPY pg->pg (no upsert)", t_copy, n)
    empty_target("bench_pg_tgt", "postgres")
    t_ir = insert_rows_baseline("bench_pg_src", "bench_pg_tgt", "postgres", args.baseline_rows)
    ir_rate = args.baseline_rows / t_ir
    report("baseline: insert_rows(replace=True) pg->pg", t_ir, args.baseline_rows)
    empty_target("bench_pg_tgt", "postgres")
    t_init = timed(lambda: engine_sync("bench_pg_src", "bench_pg_tgt"))
    report("engine pg->pg initial load", t_init, n, "of raw COPY", t_copy / t_init)
    lines.append(f"{'':52} {'':>9}      {'':8}   {'':>12}          {n / t_init / ir_rate:6.2f}x insert_rows")
    print(lines[-1])
    t_same = timed(lambda: engine_sync("bench_pg_src", "bench_pg_tgt", mode="full"))
    report("engine pg->pg full re-sync, nothing changed", t_same, n, "of initial load speed", t_init / t_same)
    empty_target("bench_pg_tgt", "postgres")
    t_upsert = timed(lambda: engine_sync("bench_pg_src", "bench_pg_tgt", bulk=False))
    report("engine pg->pg initial load, upsert path forced", t_upsert, n, "of raw COPY", t_copy / t_upsert)
    lines.append(f"{'':52} full re-sync, nothing changed: {t_upsert / t_same:5.2f}x the speed of this path")
    print(lines[-1])
    with pg("bench_pg_src") as c:
        c.execute("UPDATE items SET qty = qty + 1, updated_at = '2026-12-31'::timestamptz + (id % 1000) * interval '1 s' WHERE id % 100 = 0")
    t_inc = timed(lambda: engine_sync("bench_pg_src", "bench_pg_tgt"))
    report("engine pg->pg incremental, 1% changed", t_inc, n // 100)
    t_noop = timed(lambda: engine_sync("bench_pg_src", "bench_pg_tgt"))
    report("engine pg->pg incremental, nothing to do", t_noop, 0)

    # MariaDB -> Postgres
    fresh_my("bench_my_src")
    fill_my("bench_my_src", n)
    empty_target("bench_pg_tgt", "postgres")
    t_mp = timed(lambda: engine_sync("bench_my_src", "bench_pg_tgt"))
    report("engine mariadb->pg initial load", t_mp, n, "of raw COPY pg->pg", t_copy / t_mp)
    empty_target("bench_pg_tgt", "postgres")
    t_ir2 = insert_rows_baseline("bench_my_src", "bench_pg_tgt", "postgres", args.baseline_rows)
    report("baseline: insert_rows(replace=True) mariadb->pg", t_ir2, args.baseline_rows)
    lines.append(f"{'':52} engine / insert_rows: {n / t_mp / (args.baseline_rows / t_ir2):6.2f}x")
    print(lines[-1])

    # Postgres -> MariaDB
    empty_target("bench_my_tgt", "mysql")
    t_pm = timed(lambda: engine_sync("bench_pg_src", "bench_my_tgt", batch=20_000))
    report("engine pg->mariadb initial load", t_pm, n)
    empty_target("bench_my_tgt", "mysql")
    t_ir3 = insert_rows_baseline("bench_pg_src", "bench_my_tgt", "mysql", args.baseline_rows)
    report("baseline: insert_rows(replace=True) pg->mariadb (REPLACE)", t_ir3, args.baseline_rows)
    lines.append(f"{'':52} engine / insert_rows: {n / t_pm / (args.baseline_rows / t_ir3):6.2f}x")
    print(lines[-1])

    # Memory
    for rows in sorted({n, args.rss_rows}):
        rss, took = peak_rss(rows)
        lines.append(f"peak RSS mariadb->pg engine process, {rows:>9,} rows: {rss} MiB ({took:.0f} s)")
        print(lines[-1], flush=True)

    for name in ("bench_pg_src", "bench_pg_tgt"):
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    c = my()
    for name in ("bench_my_src", "bench_my_tgt"):
        c.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    print("\n".join(["", "summary", *lines]))


if __name__ == "__main__":
    main()
