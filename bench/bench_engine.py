"""Sync engine benchmark: each engine path against a baseline measured in the same run.

    .venv/bin/python bench/bench_engine.py [--rows 1000000] [--baseline-rows N]

Rows are lifecycle-shaped (8 columns: key, sku, name, status, qty, numeric price, JSON attributes,
a timestamp). Every case runs in a fresh child process (its time excludes start-up; its peak RSS is
its own). Baselines, in the same run and on the same data:

* raw COPY: ``COPY (SELECT ...) TO STDOUT`` piped into ``COPY ... FROM STDIN`` of an empty table
  (what ``psql \\copy`` does, without an upsert);
* raw LOAD DATA: the same rows exported from Postgres as text and loaded with MariaDB's
  ``LOAD DATA LOCAL INFILE`` into an empty table (export and load both timed);
* Airflow's ``DbApiHook.insert_rows(replace=True, executemany=True)`` on the same rows (or on
  ``--baseline-rows`` of them, scaled to the full count, for a quicker run).

Targets: Postgres -> Postgres initial load >= 0.85x raw COPY; an unchanged full re-sync in <= 0.5x
the initial load's time (>= 2x its speed) and with 1% of rows changed across the table <= 0.6x;
Postgres -> MariaDB >= 0.6x raw LOAD DATA and >= 3x insert_rows; MariaDB -> Postgres into an empty
table >= 0.7x raw COPY. Every database is created with a unique name and dropped afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO / "plugins", REPO / "bench"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow"))

from benchlib import Scratch, emit, in_child  # noqa: E402

RUN_START = "2027-01-01T00:00:00+00:00"
COLS = "id, sku, name, status, qty, price, attrs, updated_at"
PG_TABLE = """CREATE TABLE items (id BIGINT PRIMARY KEY, sku VARCHAR(40) NOT NULL, name TEXT NOT NULL,
    status VARCHAR(20), qty INTEGER, price NUMERIC(12,2), attrs JSONB, updated_at TIMESTAMPTZ NOT NULL)"""
MY_TABLE = """CREATE TABLE items (id BIGINT PRIMARY KEY, sku VARCHAR(40) NOT NULL, name TEXT NOT NULL,
    status VARCHAR(20), qty INTEGER, price DECIMAL(12,2), attrs JSON, updated_at DATETIME(6) NOT NULL,
    KEY items_sync (updated_at, id))"""


# ---- set-up (in this process) ---------------------------------------------------------------------
def pg(name: str, autocommit: bool = True):
    import psycopg

    return psycopg.connect(os.environ[f"AIRFLOW_CONN_{name.upper()}"], autocommit=autocommit)


def my(name: str, **kw):
    import MySQLdb

    c = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", password="", database=name, charset="utf8mb4", **kw)
    c.autocommit(True)
    return c


def fill_pg(name: str, rows: int) -> None:
    with pg(name) as c:
        c.execute(PG_TABLE)
        c.execute(
            f"INSERT INTO items ({COLS}) SELECT g, 'SKU-' || g, 'Product ' || g || ' of the lifecycle', "
            "(ARRAY['draft', 'active', 'retired'])[1 + g %% 3], g %% 1000, (g %% 10000) / 100.0, "
            "jsonb_build_object('color', 'c' || (g %% 17), 'weight', g %% 500, 'tags', jsonb_build_array('a', g %% 7)), "
            "'2026-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, %s) g", (rows,))
        c.execute("CREATE INDEX items_sync ON items (updated_at, id)")
        c.execute("VACUUM ANALYZE items")


def fill_my(name: str, rows: int) -> None:
    c = my(name)
    cur = c.cursor()
    cur.execute(MY_TABLE)
    cur.execute(  # MariaDB's sequence engine makes the rows on the server
        f"INSERT INTO items ({COLS}) SELECT seq, CONCAT('SKU-', seq), CONCAT('Product ', seq, ' of the lifecycle'), "
        "ELT(1 + seq % 3, 'draft', 'active', 'retired'), seq % 1000, (seq % 10000) / 100.0, "
        "JSON_OBJECT('color', CONCAT('c', seq % 17), 'weight', seq % 500, 'tags', JSON_ARRAY('a', seq % 7)), "
        f"TIMESTAMPADD(SECOND, seq, '2026-01-01 00:00:00') FROM seq_1_to_{int(rows)}")
    c.close()


def empty_target(name: str, kind: str) -> None:
    from datasync.db import connected

    with connected(name) as db:
        db.execute("DROP TABLE IF EXISTS items")
        db.execute(PG_TABLE if kind == "postgres" else MY_TABLE)
        if kind == "postgres":
            db.execute("CREATE INDEX items_sync ON items (updated_at, id)")
        db.execute("DELETE FROM sync_cursors")
        db.commit()


def bookkeeping(name: str, family: str) -> None:
    from datasync.db import connected
    from datasync.migrate import Target, migrate_database

    with connected(name) as db:
        migrate_database(Target("bench", name, family), db)


# ---- cases (each in a child process) --------------------------------------------------------------
def warm(*conn_ids: str) -> None:
    """Imports and connection look-ups that a worker has done long before a sync starts: not timed."""
    import logging

    from airflow.sdk import BaseHook

    import datasync.engine  # noqa: F401

    logging.getLogger("datasync").setLevel(logging.WARNING)
    for conn_id in conn_ids:
        BaseHook.get_connection(conn_id)


def engine(src: str, tgt: str, mode: str = "incremental", batch: int = 100_000) -> tuple[dict, float]:
    from datasync.engine import SqlSource, SyncSpec, run_sync

    warm(src, tgt)
    started = time.perf_counter()
    spec = SyncSpec(name="bench.items", target_table="items", key=["id"], cursor_column="updated_at", mode=mode,
                    batch_size=batch, lookback=dt.timedelta(minutes=5))
    result = run_sync(spec, SqlSource(src, table="items"), tgt, run_start=dt.datetime.fromisoformat(RUN_START))
    return result.counts.as_dict(), time.perf_counter() - started


def raw_copy(src: str, tgt: str) -> int:
    from datasync.engine.writers import pipe

    with pg(src, autocommit=False) as s, pg(tgt, autocommit=False) as t:
        cur = t.cursor()
        with s.cursor().copy(f"COPY (SELECT {COLS} FROM items) TO STDOUT") as out, \
                cur.copy(f"COPY items ({COLS}) FROM STDIN") as into:
            pipe(out, into)  # the same buffered relay the engine uses
        t.commit()
        return cur.rowcount


def raw_load_data(src: str, tgt: str) -> int:
    """Postgres text export to a file, then LOAD DATA LOCAL INFILE (the formats agree for this data)."""
    with tempfile.NamedTemporaryFile(prefix="bench_load_", suffix=".tsv") as f:
        with pg(src) as s, s.cursor().copy(
                f"COPY (SELECT id, sku, name, status, qty, price, attrs, updated_at AT TIME ZONE 'UTC' FROM items) "
                "TO STDOUT") as out:
            for block in out:
                f.write(block)
        f.flush()
        c = my(tgt, local_infile=1)
        cur = c.cursor()
        cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE items ({COLS})", (f.name,))
        rows = cur.rowcount
        c.close()
        return rows


def insert_rows(src: str, tgt: str, kind: str, rows: int) -> tuple[int, float]:
    """Airflow's own way: read rows, DbApiHook.insert_rows(replace=True, executemany=True); times the insert."""
    from datasync.db import connected

    if kind == "postgres":
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        hook = PostgresHook(postgres_conn_id=tgt)
    else:
        from airflow.providers.mysql.hooks.mysql import MySqlHook

        hook = MySqlHook(mysql_conn_id=tgt)
    with connected(src) as db:
        data = db.fetchall(f"SELECT {COLS} FROM items ORDER BY id LIMIT {int(rows)}")
    if kind != "postgres":  # MySQLdb cannot send a dict: give it JSON text, untimed
        data = [(*r[:6], json.dumps(r[6]), r[7]) for r in data]
    started = time.perf_counter()
    hook.insert_rows("items", data, target_fields=COLS.split(", "), commit_every=5000, replace=True,
                     replace_index="id", executemany=True)
    return rows, time.perf_counter() - started


def change_one_percent(src: str) -> None:
    with pg(src) as c:  # every 100th row, so every key range holds some
        c.execute("UPDATE items SET qty = qty + 1, updated_at = updated_at + interval '1 day' WHERE id % 100 = 0")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--baseline-rows", type=int, default=None, help="rows for insert_rows (default: --rows)")
    args = ap.parse_args()
    n = args.rows
    nb = min(args.baseline_rows or n, n)
    here = "bench_engine"

    def case(fn: str, *a, **kw):
        """(result, seconds, peak RSS): engine and insert_rows time themselves, after their imports."""
        result, seconds, rss = in_child(f"{here}:{fn}", *a, **kw)
        if fn in ("engine", "insert_rows"):
            result, seconds = result
        return result, seconds, rss

    with Scratch() as scratch:
        src, tgt, msrc, mtgt = scratch.pg("bench_src"), scratch.pg("bench_tgt"), scratch.my("bench_msrc"), scratch.my("bench_mtgt")
        print(f"setting up {n:,} rows ...", flush=True)
        fill_pg(src, n)
        bookkeeping(tgt, "postgres")
        bookkeeping(mtgt, "mysql")

        # Postgres -> Postgres
        empty_target(tgt, "postgres")
        _, t_copy, rss = case("raw_copy", src, tgt)
        emit("raw COPY pg->pg (baseline)", t_copy, rows=n, rss_mb=rss)
        empty_target(tgt, "postgres")
        _, t_init, rss = case("engine", src, tgt)
        emit("engine pg->pg initial load", t_init, baseline="raw COPY", baseline_seconds=t_copy, target=0.85,
             rows=n, rss_mb=rss)
        counts, t_same, rss = case("engine", src, tgt, "full")
        assert counts["unchanged"] == n, counts
        emit("engine pg->pg full re-sync, unchanged", t_same, baseline="initial load", baseline_seconds=t_init,
             target=2.0, rows=n, rss_mb=rss, note="target: at most 0.5x the initial load's time")
        change_one_percent(src)
        counts, t_one, rss = case("engine", src, tgt, "full")
        assert counts["updated"] == n // 100, counts
        emit("engine pg->pg full re-sync, 1% changed", t_one, baseline="initial load", baseline_seconds=t_init,
             target=1 / 0.6, rows=n, rss_mb=rss, note="target: at most 0.6x the initial load's time")
        with pg(src) as c:
            c.execute("UPDATE items SET qty = qty + 1, updated_at = '2026-06-01'::timestamptz + id * interval '1 ms' "
                      "WHERE id % 100 = 1")  # newer than the cursor
        counts, t_inc, rss = case("engine", src, tgt)
        emit("engine pg->pg incremental, 1% changed", t_inc, rows=counts["read"], rss_mb=rss)
        _, t_noop, rss = case("engine", src, tgt)
        emit("engine pg->pg incremental, nothing to do", t_noop, rss_mb=rss)
        empty_target(tgt, "postgres")
        _, t_ir, rss = case("insert_rows", src, tgt, "postgres", nb)
        emit("insert_rows pg->pg" + (f" ({nb:,} rows, scaled to {n:,})" if nb < n else ""), t_ir * n / nb, rows=n,
             rss_mb=rss)
        emit("engine pg->pg initial load vs insert_rows", t_init, baseline="insert_rows", baseline_seconds=t_ir * n / nb,
             rows=n)

        # Postgres -> MariaDB
        empty_target(mtgt, "mysql")
        _, t_load, rss = case("raw_load_data", src, mtgt)
        emit("raw LOAD DATA LOCAL INFILE pg->mariadb (baseline)", t_load, rows=n, rss_mb=rss,
             note="Postgres text export + LOAD DATA, both timed")
        empty_target(mtgt, "mysql")
        _, t_pm, rss = case("engine", src, mtgt)
        emit("engine pg->mariadb initial load", t_pm, baseline="raw LOAD DATA", baseline_seconds=t_load, target=0.6,
             rows=n, rss_mb=rss)
        empty_target(mtgt, "mysql")
        _, t_irm, rss = case("insert_rows", src, mtgt, "mysql", nb)
        emit("insert_rows pg->mariadb" + (f" ({nb:,} rows, scaled to {n:,})" if nb < n else ""), t_irm * n / nb,
             rows=n, rss_mb=rss)
        emit("engine pg->mariadb initial load vs insert_rows", t_pm, baseline="insert_rows",
             baseline_seconds=t_irm * n / nb, target=3.0, rows=n)

        # MariaDB -> Postgres
        fill_my(msrc, n)
        empty_target(tgt, "postgres")
        _, t_mp, rss = case("engine", msrc, tgt)
        emit("engine mariadb->pg initial load (empty target)", t_mp, baseline="raw COPY pg->pg", baseline_seconds=t_copy,
             target=0.7, rows=n, rss_mb=rss)
        empty_target(mtgt, "mysql")
        _, t_mmi, rss = case("engine", msrc, mtgt)
        emit("engine mariadb->mariadb initial load", t_mmi, rows=n, rss_mb=rss)
        counts, t_mm, rss = case("engine", msrc, mtgt, "full")
        assert counts["unchanged"] == n, counts
        emit("engine mariadb->mariadb full re-sync, unchanged", t_mm, baseline="initial load", baseline_seconds=t_mmi,
             rows=n, rss_mb=rss)


if __name__ == "__main__":
    main()
