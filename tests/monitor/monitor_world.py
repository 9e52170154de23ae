"""A small but complete world for the Data sync page: every target migrated, with runs, cursors,
rejects, registry sources (one failing, one served by its backup), KPI days with a gap and an
unmirrored day, and a Tekmetric shop. Lifecycle runs are made by the real sync engine; the rest is
written as the pipelines write it."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from dataclasses import dataclass

from datasync.engine import SqlSource, SyncSpec, run_sync
from datasync.monitor import views

UTC = dt.timezone.utc
# The registry_db login carries this password (trust auth ignores it): the page must never show it.
REGISTRY_PASSWORD = "pw-Registry-7f3k9"
API_TOKEN = "tok_live_93jd8skq"


@dataclass
class World:
    now: dt.datetime
    failing_source: str = "mes_downtime_api"
    failing_error_fragment: str = "HTTP 500 from the MES API"
    backup_source: str = "plant_sensors"
    reject_sync: str = "lifecycle_sync.sync_products"
    reject_column: str = "name"
    reject_value: str = "A product name that is far too long"
    failed_sync: str = "lifecycle_sync.sync_stage_history"
    gap_warehouse_code: str = "WH-SBY"
    gap_day: dt.date | None = None
    unmirrored_day: dt.date | None = None
    shop_id: int = 7001


def _lifecycle(target_db, database_factory, world: World) -> None:
    """Real engine runs into pmo: one with a rejected row (value too long), one failing."""
    source = database_factory("postgres", "monsrc")
    source.bind("monitor_source")
    source.query("CREATE TABLE products (id BIGINT PRIMARY KEY, name TEXT NOT NULL, updated_at TIMESTAMPTZ NOT NULL)")
    base = world.now - dt.timedelta(hours=3)
    rows = [(i, f"Product {i}", base + dt.timedelta(minutes=i)) for i in range(1, 40)]
    rows[4] = (5, world.reject_value, rows[4][2])
    conn = source.connect()
    conn.cursor().executemany("INSERT INTO products VALUES (%s, %s, %s)", rows)
    conn.close()
    pmo = target_db("pmo")
    pmo.query("CREATE TABLE products_copy (id BIGINT PRIMARY KEY, name VARCHAR(20) NOT NULL, updated_at TIMESTAMPTZ NOT NULL)")
    spec = SyncSpec(name=world.reject_sync, target_table="products_copy", key=["id"], cursor_column="updated_at",
                    batch_size=10, max_rejects=5)
    for n in range(3):
        if n:  # the bad row is edited in the source (still too long), so each run reads and refuses it again
            source.query("UPDATE products SET updated_at = %s WHERE id = 5", (world.now - dt.timedelta(minutes=60 - n),))
        run_sync(spec, SqlSource("monitor_source", table="products"), "pmo_db", run_id=f"scheduled__run{n}")
    failing = SyncSpec(name=world.failed_sync, target_table="products_copy", key=["id"], cursor_column="updated_at")
    try:
        run_sync(failing, SqlSource("monitor_source", table="no_such_table"), "pmo_db", run_id="scheduled__run3")
    except Exception:
        pass
    # A run as a task instance records it (what the page links to).
    pmo.query("UPDATE sync_log SET dag_id = 'lifecycle_sync', task_id = 'sync_products', map_index = -1, try_number = 1 "
              "WHERE sync_name = %s", (world.reject_sync,))


def _registry(target_db, world: World) -> None:
    reg = target_db("registry")
    user, rest = reg.uri.split("://", 1)[1].split("@", 1)
    os.environ["AIRFLOW_CONN_REGISTRY_DB"] = f"postgresql://{user}:{REGISTRY_PASSWORD}@{rest}"
    now = world.now
    conn = reg.connect()
    cur = conn.cursor()

    def source(source_id, name, stype, ctype, status, error_count=0, last_error=None, next_sync=None, last_sync=None):
        cur.execute(
            "INSERT INTO data_source_registry (source_id, name, source_type, connection_type, status, error_count, last_error, "
            "next_sync, last_sync, refresh_interval) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 300) RETURNING id",
            (source_id, name, stype, ctype, status, error_count, last_error, next_sync, last_sync))
        return cur.fetchone()[0]

    def connection(pk, name, ctype, config, primary):
        cur.execute("INSERT INTO data_source_connections (source_id, connection_name, connection_type, connection_config, "
                    "is_primary, is_backup) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                    (pk, name, ctype, json.dumps(config), primary, not primary))
        return cur.fetchone()[0]

    def mapping(pk, table):
        cur.execute("INSERT INTO data_source_mappings (source_id, target_table, key_columns, cursor_field) "
                    "VALUES (%s, %s, ARRAY['id'], 'recorded_at') RETURNING id", (pk, table))
        return cur.fetchone()[0]

    def history(pk, mapping_id, connection_id, role, status, started, rows, error=None, run_id=None):
        cur.execute(
            "INSERT INTO data_source_sync_history (source_id, mapping_id, connection_id, connection_role, run_id, sync_type, "
            "sync_status, records_processed, records_inserted, records_updated, records_rejected, sync_duration_ms, "
            "error_message, sync_started_at, sync_completed_at) VALUES (%s, %s, %s, %s, %s, 'incremental', %s, %s, %s, 0, %s, "
            "%s, %s, %s, %s)",
            (pk, mapping_id, connection_id, role, run_id, status, rows, rows if status != "failed" else 0,
             1 if status == "partial" else 0, 1200 + rows, error, started, started + dt.timedelta(seconds=2)))

    # A source the registry put in status error after three failed runs; its error carries a
    # credential the way a careless API error might.
    error = (f"api source https://mes.example.test/v1/downtime?api_key={API_TOKEN}: {world.failing_error_fragment} "
             f"(login postgresql://svc:{REGISTRY_PASSWORD}@db.internal/mes)")
    pk = source(world.failing_source, "MES downtime", "api", "api", "error", 3, error, now + dt.timedelta(minutes=3))
    cid = connection(pk, "mes_primary", "api", {"base_url": "https://mes.example.test/v1"}, True)
    mid = mapping(pk, "mes_downtime")
    for i in range(3):
        history(pk, mid, cid, "primary", "failed", now - dt.timedelta(minutes=30 - 5 * i), 0, error,
                f"scheduled__reg{i}")
    # A source served by its backup, with a rejected row.
    pk = source(world.backup_source, "Plant sensors", "json", "file", "active", 0, None, now + dt.timedelta(minutes=4),
                now - dt.timedelta(minutes=1))
    primary = connection(pk, "sensors_nas", "file", {"file_path": "/data/primary/sensors.json"}, True)
    backup = connection(pk, "sensors_local", "file", {"file_path": "/data/backup/sensors.json"}, False)
    mid = mapping(pk, "plant_readings")
    for i in range(6):
        history(pk, mid, primary if i < 4 else backup, "primary" if i < 4 else "backup",
                "partial" if i == 5 else "success", now - dt.timedelta(minutes=60 - 10 * i), 100 + 10 * i,
                run_id=f"scheduled__sens{i}")
    cur.execute("INSERT INTO sync_cursors (sync_name, cursor_value, rows_synced) VALUES (%s, %s, 150)",
                (f"registry.{world.backup_source}.plant_readings",
                 json.dumps({"datetime": (now - dt.timedelta(minutes=5)).isoformat()})))
    cur.execute("INSERT INTO sync_rejects (sync_name, run_id, table_name, row_key, column_name, value, reason) "
                "VALUES (%s, 'scheduled__sens5', 'plant_readings', '\"R-17\"', 'temperature_c', 'hot', "
                "'not a number: could not cast to decimal')", (f"registry.{world.backup_source}.plant_readings",))
    # A quiet one that never ran.
    source("spare_parts", "Spare parts", "csv", "file", "active")
    conn.close()


def _kpi(target_db, world: World) -> None:
    tidb, supa = target_db("tidb"), target_db("supabase")
    first, last = views.kpi_window(world.now)
    org = str(uuid.uuid4())
    warehouses = [(str(uuid.uuid4()), "WH-JKT", "Jakarta"), (str(uuid.uuid4()), "WH-SBY", "Surabaya")]
    world.gap_day = last - dt.timedelta(days=3)
    world.unmirrored_day = last
    opened = dt.datetime.combine(first - dt.timedelta(days=10), dt.time())
    conn, sconn = tidb.connect(), supa.connect()
    cur, scur = conn.cursor(), sconn.cursor()
    for wid, code, name in warehouses:
        cur.execute("INSERT INTO warehouses (id, org_id, code, name, opened_at) VALUES (%s, %s, %s, %s, %s)",
                    (wid, org, code, name, opened))
    day = first
    while day <= last:
        for wid, code, _ in warehouses:
            if code == world.gap_warehouse_code and day == world.gap_day:
                continue
            inv = (day, wid, org, 10, 1, 1, 0, 10, 5, 0, None, 2, 2, None)
            flt = (day, wid, org, 3, 2, 1, 2, None, None, 4, 3, None, 3, 6, None)
            for c, mark in ((cur, "%s"), (scur, "%s")):
                if c is scur and day == world.unmirrored_day:
                    continue
                now = world.now if c is scur else world.now.replace(tzinfo=None)
                c.execute(f"INSERT INTO inventory_kpi_daily (data_date, warehouse_id, org_id, opening_qty, inbound_qty, "
                          f"outbound_qty, adjustment_qty, closing_qty, skus_in_stock, stock_out_skus, turnover_ratio, tx_count, "
                          f"scan_confirmed_tx, scan_confirmed_pct, updated_at) VALUES ({', '.join([mark] * 15)})", (*inv, now))
                c.execute(f"INSERT INTO fleet_kpi_daily (data_date, warehouse_id, org_id, shipments_dispatched, shipments_delivered, "
                          f"shipments_failed, delivered_on_time, on_time_delivery_pct, avg_delivery_hours, fleet_size, "
                          f"active_vehicles, vehicle_utilization_pct, shipments_handled, shipment_scans, scans_per_shipment, "
                          f"updated_at) VALUES ({', '.join([mark] * 16)})", (*flt, now))
        day += dt.timedelta(days=1)
    for table in ("inventory_kpi_daily", "fleet_kpi_daily"):
        scur.execute("INSERT INTO sync_log (sync_name, run_id, mode, status, started_at, finished_at, duration_ms, rows_read, "
                     "rows_inserted, dag_id, task_id, map_index, try_number) VALUES (%s, 'scheduled__kpi', 'day_mirror', "
                     "'success', %s, %s, 900, 2, 2, 'ptmmm_daily_kpi_etl', 'mirror_to_supabase', -1, 1)",
                     (f"ptmmm_daily_kpi_etl.mirror.{table}", world.now - dt.timedelta(hours=2),
                      world.now - dt.timedelta(hours=2) + dt.timedelta(seconds=1)))
    conn.commit()
    conn.close()
    sconn.close()


def _tekmetric(target_db, world: World) -> None:
    tek = target_db("tekmetric")
    conn = tek.connect()
    cur = conn.cursor()
    cur.execute("INSERT INTO shops (shop_id, name, timezone) VALUES (%s, 'Northside Auto', 'America/Chicago')", (world.shop_id,))
    for entity, minutes in (("customers", 20), ("repair_orders", 10)):
        name = f"tekmetric_sync.{world.shop_id}.{entity}"
        cur.execute("INSERT INTO sync_cursors (sync_name, cursor_value, rows_synced, shop_id, entity) VALUES (%s, %s, 42, %s, %s)",
                    (name, json.dumps({"datetime": (world.now - dt.timedelta(minutes=minutes)).isoformat()}), world.shop_id, entity))
        cur.execute("INSERT INTO sync_log (sync_name, run_id, mode, status, started_at, finished_at, duration_ms, rows_read, "
                    "rows_inserted, details, shop_id, entity) VALUES (%s, 'scheduled__tm', 'incremental', 'success', %s, %s, 500, "
                    "42, 42, %s, %s, %s)",
                    (name, world.now - dt.timedelta(minutes=minutes), world.now - dt.timedelta(minutes=minutes - 1),
                     json.dumps({"variance_ros": 2} if entity == "repair_orders" else {}), world.shop_id, entity))
    conn.close()


def build_world(database_factory) -> World:
    """Six fresh target databases (the page's own: no other test's rows in them), bound to the
    connection ids and migrated, then filled."""
    from datasync.migrate import TARGETS, migrate

    dbs = {}
    for name, target in TARGETS.items():
        dbs[name] = database_factory("postgres" if target.family == "postgres" else "mysql", f"mon_{name}")
        dbs[name].bind(target.conn_id)
    migrate(list(TARGETS))
    world = World(now=dt.datetime.now(UTC))
    _lifecycle(dbs.__getitem__, database_factory, world)
    _registry(dbs.__getitem__, world)
    _kpi(dbs.__getitem__, world)
    _tekmetric(dbs.__getitem__, world)
    return world
