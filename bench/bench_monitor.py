"""Data sync page benchmark: the overview at real size, over HTTP, and the page in a real browser.

    .venv/bin/python bench/bench_monitor.py [--sources 500] [--history 200] [--syncs 50] [--runs 1000]
                                            [--rejects 10000] [--repeat 20] [--no-browser]

Creates the six target databases with unique names (dropped at the end, even on failure), migrates
them, and fills them through SQL: ``--sources`` registry sources with ``--history`` history rows
each (and the engine's sync_log rows for them), ``--syncs`` syncs with ``--runs`` sync_log rows
each, ``--rejects`` rejected rows, cursors, and 30 days of KPI rows for 20 warehouses. Then it
serves Airflow's API server app with the plugin on loopback (SimpleAuthManager, one user) and
measures, warm (median and p95 of ``--repeat`` requests) and cold (fresh connections):

* ``GET /datasync/api/overview`` (target: under 300 ms), and the HTML page;
* baselines in the same run: the overview's SQL alone, target by target on open connections, and an
  authenticated request to Airflow's own ``/api/v2/version``;
* the "last success per sync" probe with and without the index of migration common/003;
* the page in Debian's headless chromium: navigation start to DOM interactive (target: under 1 s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO / "tests"), str(REPO / "tests" / "monitor")]
os.environ["AIRFLOW_HOME"] = str(REPO / ".airflow" / "bench")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

import MySQLdb  # noqa: E402
import psycopg  # noqa: E402
import requests  # noqa: E402

from benchlib import MY, Scratch, emit  # noqa: E402  (bench/ is this script's own folder)


def say(text: str = "") -> None:
    print(text, flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def timed(fn, repeat: int) -> tuple[float, float]:
    """(median, p95) seconds of ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


# ---- databases ------------------------------------------------------------------------------------------------
def create_databases(scratch: Scratch) -> dict[str, tuple[str, str, str]]:
    """The six targets, unique names, bound to their connection ids: name -> (family, database, URI)."""
    from datasync.migrate import TARGETS

    made = {}
    for name, target in TARGETS.items():
        if target.family == "postgres":
            db = scratch.pg(f"bench_mon_{name}")
        else:
            db = scratch.my(f"bench_mon_{name}", collation="utf8mb4_bin")
        made[name] = (target.family, db, scratch.bind(db, target.conn_id))
    return made


def pg(made, name):
    return psycopg.connect(made[name][2], autocommit=True)


def fill(made, args) -> None:
    with pg(made, "registry") as c:
        c.execute(f"""INSERT INTO data_source_registry (source_id, name, source_type, connection_type, status, error_count,
                          last_error, next_sync, last_sync)
                      SELECT 'src_' || i, 'Source ' || i, 'json', 'file', CASE WHEN i % 25 = 0 THEN 'error' ELSE 'active' END,
                             CASE WHEN i % 25 = 0 THEN 3 ELSE 0 END,
                             CASE WHEN i % 25 = 0 THEN 'json source /data/src_' || i || '.json: not valid JSON at line 3' END,
                             now() + interval '5 minutes', now() - interval '1 minute'
                      FROM generate_series(1, {args.sources}) i""")
        c.execute("""INSERT INTO data_source_connections (source_id, connection_name, connection_type, connection_config, is_primary)
                     SELECT id, 'primary', 'file', '{"file_path": "/data/x.json"}', true FROM data_source_registry""")
        c.execute("""INSERT INTO data_source_mappings (source_id, target_table, key_columns, cursor_field)
                     SELECT id, 't_' || id, ARRAY['id'], 'recorded_at' FROM data_source_registry""")
        c.execute(f"""INSERT INTO data_source_sync_history (source_id, mapping_id, connection_id, connection_role, run_id, sync_type,
                          sync_status, records_processed, records_inserted, sync_duration_ms, error_message, sync_started_at,
                          sync_completed_at)
                      SELECT r.id, m.id, k.id, 'primary', 'scheduled__' || g, 'incremental',
                             CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'success' END, 100, 10, 900 + g,
                             CASE WHEN g % 50 = 0 THEN 'boom' END, now() - g * interval '5 minutes',
                             now() - g * interval '5 minutes' + interval '1 second'
                      FROM data_source_registry r JOIN data_source_mappings m ON m.source_id = r.id
                      JOIN data_source_connections k ON k.source_id = r.id, generate_series(1, {args.history}) g""")
        # the engine's own sync_log rows of those runs, and their cursors
        c.execute(f"""INSERT INTO sync_log (sync_name, run_id, mode, status, started_at, finished_at, duration_ms, rows_read,
                          rows_inserted, dag_id, task_id, map_index, try_number)
                      SELECT 'registry.' || r.source_id || '.t_' || r.id, 'scheduled__' || g, 'incremental', 'success',
                             now() - g * interval '5 minutes', now() - g * interval '5 minutes' + interval '1 second', 900, 100,
                             10, 'source_registry_runner', 'sync_source', r.id, 1
                      FROM data_source_registry r, generate_series(1, {args.history}) g""")
        c.execute("""INSERT INTO sync_cursors (sync_name, cursor_value, rows_synced)
                     SELECT 'registry.' || source_id || '.t_' || id,
                            json_build_object('datetime', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'))::text,
                            1000 FROM data_source_registry""")
        c.execute("ANALYZE")
    with pg(made, "pmo") as c:
        c.execute(f"""INSERT INTO sync_log (sync_name, run_id, mode, status, started_at, finished_at, duration_ms, rows_read,
                          rows_inserted, rows_rejected, error, dag_id, task_id, map_index, try_number)
                      SELECT 'lifecycle_sync.sync_t' || s, 'scheduled__' || g, 'incremental',
                             CASE WHEN g % 100 = 0 THEN 'failed' ELSE 'success' END, now() - g * interval '10 minutes',
                             now() - g * interval '10 minutes' + interval '3 seconds', 3000, 5000, 4000, g % 3,
                             CASE WHEN g % 100 = 0 THEN 'OperationalError: server closed the connection' END,
                             'lifecycle_sync', 'sync_t' || s, -1, 1
                      FROM generate_series(1, {args.syncs}) s, generate_series(1, {args.runs}) g""")
        c.execute(f"""INSERT INTO sync_rejects (sync_name, run_id, table_name, row_key, column_name, value, reason, rejected_at)
                      SELECT 'lifecycle_sync.sync_t' || (1 + i % {args.syncs}), 'scheduled__' || (i % 1000), 't', i::text, 'name',
                             repeat('x', 40), 'value too long for type character varying(20)', now() - (i % 4320) * interval '1 minute'
                      FROM generate_series(1, {args.rejects}) i""")
        c.execute(f"""INSERT INTO sync_cursors (sync_name, cursor_value, rows_synced)
                      SELECT 'lifecycle_sync.sync_t' || s, '{{"datetime": "2026-01-01T00:00:00+00:00"}}', 1000000
                      FROM generate_series(1, {args.syncs}) s""")
        c.execute("ANALYZE")
    # KPI days: 20 warehouses x 30 days on both sides
    from datasync.monitor import views

    first, last = views.kpi_window()
    warehouses = [(str(uuid.uuid4()), f"WH-{i:02d}") for i in range(20)]
    org = str(uuid.uuid4())
    days = [first + dt.timedelta(days=d) for d in range((last - first).days + 1)]
    my = MySQLdb.connect(**MY, database=made["tidb"][1])
    cur = my.cursor()
    cur.executemany("INSERT INTO warehouses (id, org_id, code, name, opened_at) VALUES (%s, %s, %s, %s, '2020-01-01')",
                    [(w, org, code, code) for w, code in warehouses])
    inv = [(d, w, org) for d in days for w, _ in warehouses]
    for table, extra in (("inventory_kpi_daily", "opening_qty, inbound_qty, outbound_qty, adjustment_qty, closing_qty, "
                                                 "skus_in_stock, stock_out_skus, tx_count, scan_confirmed_tx, updated_at"),
                         ("fleet_kpi_daily", "shipments_dispatched, shipments_delivered, shipments_failed, delivered_on_time, "
                                             "fleet_size, active_vehicles, shipments_handled, shipment_scans, updated_at")):
        zeros = ", ".join(["0"] * (extra.count(",")))
        cur.executemany(f"INSERT INTO {table} (data_date, warehouse_id, org_id, {extra}) VALUES (%s, %s, %s, {zeros}, NOW())", inv)
        with pg(made, "supabase") as c:
            with c.cursor() as pc:
                pc.executemany(f"INSERT INTO {table} (data_date, warehouse_id, org_id, {extra}) VALUES (%s, %s, %s, {zeros}, now())",
                               inv)
    my.commit()
    my.close()


# ---- measuring ------------------------------------------------------------------------------------------------
def sql_baseline(repeat: int) -> tuple[float, float]:
    """The overview's SQL alone, target after target, on connections already open."""
    from datasync.db import connect
    from datasync.migrate import TARGETS
    from datasync.monitor.views import _target_reader

    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=7)
    dbs = {name: connect(t.conn_id) for name, t in TARGETS.items()}
    try:
        return timed(lambda: [_target_reader(name, since)(db) for name, db in dbs.items()], repeat)
    finally:
        for db in dbs.values():
            db.close()


def index_effect(made, repeat: int) -> tuple[float, float]:
    probe = ("SELECT (SELECT started_at FROM sync_log y WHERE y.sync_name = n.sync_name AND y.status = 'success' "
             "ORDER BY y.started_at DESC LIMIT 1) FROM (SELECT DISTINCT sync_name FROM sync_cursors) n")
    with pg(made, "pmo") as c:
        c.execute("UPDATE sync_log SET status = 'failed', error = 'x' WHERE id IN (SELECT id FROM sync_log ORDER BY started_at DESC "
                  "LIMIT 5000)")  # the newest 100 runs of each sync failed: the probe must skip them
        c.execute("ANALYZE sync_log")
        with_index = timed(lambda: c.execute(probe).fetchall(), repeat)[0]
        c.execute("DROP INDEX sync_log_name_success")
        without = timed(lambda: c.execute(probe).fetchall(), repeat)[0]
        c.execute("CREATE INDEX sync_log_name_success ON sync_log (sync_name, started_at DESC) WHERE status = 'success'")
        c.execute("UPDATE sync_log SET status = 'success', error = NULL WHERE error = 'x'")
    return with_index, without


def browser_interactive(base: str, repeat: int) -> tuple[float, float] | None:
    from browser import chromium, sign_in
    from monitor_server import PASSWORD, USER

    with chromium() as driver:
        sign_in(driver, base, USER, PASSWORD)
        samples = []
        for _ in range(repeat):
            driver.get(base + "/datasync/")
            t = driver.execute_script("const n = performance.getEntriesByType('navigation')[0]; "
                                      "return [n.domInteractive - n.startTime, n.domContentLoadedEventEnd - n.startTime];")
            samples.append(t)
        interactive = sorted(s[0] / 1000 for s in samples)
        return statistics.median(interactive), interactive[min(len(interactive) - 1, int(len(interactive) * 0.95))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument("--history", type=int, default=200)
    parser.add_argument("--syncs", type=int, default=50)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rejects", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    import subprocess

    home = Path(os.environ["AIRFLOW_HOME"])
    if not (home / "airflow.db").exists():
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)

    with Scratch() as scratch:  # the six targets: unique names, dropped at the end (SIGTERM and SIGINT included)
        try:
            return measure(args, create_databases(scratch))
        finally:
            from datasync.monitor import targets

            targets.reset()


def measure(args, made) -> int:
    from datasync.migrate import migrate

    t = time.perf_counter()
    migrate()
    fill(made, args)
    say(f"data: {args.sources} registry sources x {args.history} history rows, {args.syncs} syncs x {args.runs} "
        f"sync_log rows, {args.rejects} rejects, 20 warehouses x 30 KPI days (made in {time.perf_counter() - t:.0f}s)")

    from monitor_server import in_process_api_server, login

    with tempfile.TemporaryDirectory() as tmp, in_process_api_server(Path(tmp)) as base:
        token = login(base)
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        from datasync.monitor import targets

        targets.reset()
        t = time.perf_counter()
        first = s.get(f"{base}/datasync/api/overview", timeout=60)
        cold = time.perf_counter() - t
        rows = len(first.json()["syncs"])
        overview = timed(lambda: s.get(f"{base}/datasync/api/overview", timeout=60).raise_for_status(), args.repeat)
        page = timed(lambda: s.get(f"{base}/datasync/", timeout=60).raise_for_status(), args.repeat)
        version = timed(lambda: s.get(f"{base}/api/v2/version", timeout=60).raise_for_status(), args.repeat)
        registry = timed(lambda: s.get(f"{base}/datasync/api/registry", timeout=60).raise_for_status(), args.repeat)
        detail = timed(lambda: s.get(f"{base}/datasync/api/registry/src_25", timeout=60).raise_for_status(), args.repeat)
        sql = sql_baseline(args.repeat)
        with_index, without_index = index_effect(made, args.repeat)
        shown = None if args.no_browser else browser_interactive(base, args.repeat)

    say(f"\noverview rows: {rows}")
    say(f"GET /datasync/api/overview      median {ms(overview[0])}  p95 {ms(overview[1])}  cold {ms(cold)}   "
        f"target < 300 ms: {'met' if overview[1] < 0.3 else 'MISSED'}")
    say(f"GET /datasync/ (HTML)            median {ms(page[0])}  p95 {ms(page[1])}")
    say(f"GET /datasync/api/registry       median {ms(registry[0])}  p95 {ms(registry[1])}")
    say(f"GET /datasync/api/registry/<id>  median {ms(detail[0])}  p95 {ms(detail[1])}")
    say(f"baseline: overview SQL alone     median {ms(sql[0])}  (endpoint / SQL = {overview[0] / sql[0]:.2f}x; "
        "the endpoint reads the six targets in parallel)")
    say(f"baseline: GET /api/v2/version    median {ms(version[0])}  (endpoint / Airflow's own = {overview[0] / version[0]:.1f}x)")
    say(f"last-success probe, 50 syncs whose newest 100 runs failed: with index {ms(with_index)}, without "
        f"{ms(without_index)} ({without_index / with_index:.1f}x slower without)")
    if shown:
        say(f"page in headless chromium: DOM interactive median {ms(shown[0])}  p95 {ms(shown[1])}   "
            f"target < 1 s: {'met' if shown[1] < 1 else 'MISSED'}")
    emit("monitor: GET /datasync/api/overview, p95", overview[1], limit_seconds=0.3,
         note=f"median {ms(overview[0]).strip()}, cold {ms(cold).strip()}, {rows} overview rows")
    emit("monitor: GET /datasync/api/overview, median", overview[0], baseline="overview SQL alone",
         baseline_seconds=sql[0])
    emit("monitor: GET /datasync/api/overview vs Airflow's own, median", overview[0], baseline="GET /api/v2/version",
         baseline_seconds=version[0])
    emit("monitor: last-success probe with the index", with_index, baseline="without the index",
         baseline_seconds=without_index)
    if shown:
        emit("monitor: page in headless chromium, DOM interactive p95", shown[1], limit_seconds=1.0,
             note=f"median {ms(shown[0]).strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
