"""``make demo`` step for the registry: 40+ JSON sources plus one csv, excel, database,
api and artisan source, registered in ``registry_db`` and run by the real DAGs.

Data files are generated at demo time into ``.airflow/demo-data/registry`` (git-ignored), with
timestamps relative to now so retention keeps them. The API is a loopback HTTP server in a thread
of the demo process; the artisan command is ``include/demo/registry/artisan_data_sync.py``; the
database source's primary server is deliberately down, so its backup serves (history says so).

The demo plays the platform team too: :func:`demo_policy` is the registry policy it sets (as the
``AIRFLOW_VAR_DATASYNC_REGISTRY_POLICY`` environment variable of the DAG runs) so that exactly its
own sources are allowed, and the database source reads through a login that is no superuser.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from datasync.paths import DEMO_DIR, REPO_ROOT

DATA_DIR = REPO_ROOT / ".airflow" / "demo-data" / "registry"
ARTISAN_SCRIPT = DEMO_DIR / "registry" / "artisan_data_sync.py"
MES_TOKEN = "demo-mes-token-not-a-real-secret"
PLANT_READER = "demo_plant_reader"  # the read-only login registry sources get for the plant table
MACHINES = [f"MC-{n:02d}" for n in range(1, 13)]
LINES = ["LINE-A", "LINE-B", "LINE-C"]


@dataclass(frozen=True)
class DemoSource:
    source_id: str
    name: str
    file_name: str  # the seed's file names where it gives them
    kind: str  # series | daily | master
    metrics: tuple[str, ...] = ()
    priority: int = 1
    refresh: int = 300
    strategy: str | None = None  # default by kind


# (source_id, name, file, kind, metrics, priority, refresh seconds)
JSON_SOURCES = [
    DemoSource("actual_production", "Aktual Produksi", "actual_production.json", "series", ("output_qty",)),
    DemoSource("cycle_time", "Cycle Time", "cycletrendtime.json", "series", ("cycle_seconds", "ideal_seconds")),
    DemoSource("oee", "OEE", "oee.json", "series", ("availability", "performance", "quality")),
    DemoSource("downtime", "Downtime", "downtime.json", "series", ("downtime_minutes",)),
    DemoSource("power_consumption", "Power Consumption", "power_consumption.json", "series", ("kw",), 2, 900),
    DemoSource("electric_consumption", "Electric Consumption", "electric_consumption.json", "series", ("kwh",), 2, 900),
    DemoSource("target_vs_actual", "Target vs Actual", "target_vs_actual.json", "daily", ("target_qty", "actual_qty")),
    DemoSource("production_target", "Production Target", "production_target.json", "daily", ("target_qty",)),
    DemoSource("production_rejected", "Produksi & Rejected Mesin", "production_rejected.json", "series",
               ("good_qty", "rejected_qty"), 2),
    DemoSource("incident_count", "Incident Count", "incident_count.json", "daily", ("incidents",), 2, 900),
    DemoSource("ofm", "OFM", "ofm.json", "series", ("ofm_index",), 2, 900),
    DemoSource("ofe", "OFE", "ofe.json", "series", ("ofe_index",), 2, 900),
    DemoSource("nrfc", "NRFC", "nrfc.json", "series", ("nrfc_rate",), 2, 900),
    DemoSource("nrfw", "NRFW", "nrfw.json", "series", ("nrfw_rate",), 2, 900),
    DemoSource("nrdae", "NRDAE", "nrdae.json", "series", ("nrdae_rate",), 2, 900),
    DemoSource("temperature_vibration", "Temperature vs Vibration", "temperature_vibration.json", "series",
               ("temperature_c", "vibration_mm_s")),
    DemoSource("product_information", "Product Information", "product_information.json", "master", (), 3, 86400),
    DemoSource("production_calendar", "Production Calendar", "production_calendar.json", "daily", ("working_hours",), 3, 86400),
    DemoSource("shift_schedules", "Shift Schedules", "shift_schedules.json", "master", (), 3, 86400),
    DemoSource("machine_layout", "Machine Layout", "machine_layout.json", "master", (), 3, 86400),
    DemoSource("machine_status", "Machine Status", "machine_status.json", "series", ("running", "speed_pct"), 1, 60,
               "realtime"),
    DemoSource("scrap_rate", "Scrap Rate", "scrap_rate.json", "series", ("scrap_pct",), 2, 900),
    DemoSource("first_pass_yield", "First Pass Yield", "first_pass_yield.json", "daily", ("fpy_pct",), 2, 900),
    DemoSource("mtbf", "MTBF", "mtbf.json", "daily", ("mtbf_hours",), 2, 3600),
    DemoSource("mttr", "MTTR", "mttr.json", "daily", ("mttr_minutes",), 2, 3600),
    DemoSource("maintenance_schedule", "Maintenance Schedule", "maintenance_schedule.json", "daily", ("planned_hours",), 3, 86400),
    DemoSource("spare_parts", "Spare Parts Stock", "spare_parts.json", "master", (), 3, 3600),
    DemoSource("raw_material_usage", "Raw Material Usage", "raw_material_usage.json", "series", ("kg",), 2, 900),
    DemoSource("compressed_air", "Compressed Air Usage", "compressed_air.json", "series", ("m3",), 2, 900),
    DemoSource("water_consumption", "Water Consumption", "water_consumption.json", "series", ("liters",), 2, 900),
    DemoSource("operator_attendance", "Operator Attendance", "operator_attendance.json", "daily", ("present", "absent"), 3, 3600),
    DemoSource("line_balancing", "Line Balancing", "line_balancing.json", "daily", ("takt_seconds", "bottleneck_seconds"), 2, 3600),
    DemoSource("changeover_time", "Changeover Time", "changeover_time.json", "series", ("changeover_minutes",), 2, 900),
    DemoSource("quality_inspection", "Quality Inspection", "quality_inspection.json", "series", ("inspected", "failed")),
    DemoSource("defect_pareto", "Defect Pareto", "defect_pareto.json", "daily", ("defects",), 2, 3600),
    DemoSource("tool_life", "Tool Life", "tool_life.json", "series", ("remaining_pct",), 2, 900),
    DemoSource("pressure_monitoring", "Pressure Monitoring", "pressure_monitoring.json", "series", ("bar",)),
    DemoSource("humidity_monitoring", "Humidity Monitoring", "humidity_monitoring.json", "series", ("rh_pct",), 2, 900),
    DemoSource("conveyor_speed", "Conveyor Speed", "conveyor_speed.json", "series", ("m_per_min",)),
    DemoSource("packaging_output", "Packaging Output", "packaging_output.json", "series", ("packs",)),
    DemoSource("warehouse_stock", "Warehouse Stock", "warehouse_stock.json", "master", (), 3, 3600),
    DemoSource("shipment_plan", "Shipment Plan", "shipment_plan.json", "daily", ("planned_qty", "shipped_qty"), 3, 3600),
]


# ---- data -------------------------------------------------------------------------------------------------
def series_records(rng: random.Random, metrics: tuple[str, ...], count: int, now: dt.datetime) -> list[dict]:
    start = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(minutes=5 * count)
    return [
        {"id": i, "machine": rng.choice(MACHINES), "line": rng.choice(LINES),
         "recorded_at": (start + dt.timedelta(minutes=5 * i)).isoformat(),
         **{m: round(rng.uniform(0, 100), 2) for m in metrics}}
        for i in range(1, count + 1)
    ]


def daily_records(rng: random.Random, metrics: tuple[str, ...], days: int, now: dt.datetime) -> list[dict]:
    today = now.date()
    return [
        # the seed's dashboards write dates as DD/MM/YYYY
        {"date": (today - dt.timedelta(days=d)).strftime("%d/%m/%Y"), "line": line,
         **{m: rng.randrange(0, 1000) for m in metrics}}
        for d in range(days) for line in LINES
    ]


def master_records(source: DemoSource, rng: random.Random) -> list[dict]:
    if source.source_id == "shift_schedules":
        return [{"code": c, "name": n, "attributes": {"start": s, "end": e}}
                for c, n, s, e in [("S1", "Pagi", "06:00", "14:00"), ("S2", "Siang", "14:00", "22:00"),
                                   ("S3", "Malam", "22:00", "06:00")]]
    if source.source_id == "machine_layout":
        return [{"code": m, "name": f"Machine {m}", "attributes": {"hall": "H1" if i < 6 else "H2", "x": i % 6, "y": i // 6}}
                for i, m in enumerate(MACHINES)]
    return [{"code": f"{source.source_id[:3].upper()}-{i:04d}", "name": f"{source.name} item {i}",
             "attributes": {"unit": rng.choice(["pcs", "kg", "box"]), "qty": rng.randrange(0, 5000)}}
            for i in range(1, 121)]


def mapping_for(source: DemoSource) -> dict[str, Any]:
    """The registry mapping row (mapping_config plus its columns) for a demo JSON source."""
    metrics = [{"column": m, "source": m, "cast": "decimal"} for m in source.metrics]
    if source.kind == "series":
        return {"key_columns": ["id"], "cursor_field": "recorded_at", "retention_date_column": "recorded_at",
                "data_retention_days": 365, "sync_strategy": source.strategy or "incremental",
                "sync_frequency": "realtime" if source.strategy == "realtime" else "minute",
                "columns": [{"column": "id", "source": "id", "cast": "int"}, {"column": "machine", "source": "machine"},
                            {"column": "line", "source": "line"},
                            {"column": "recorded_at", "source": "recorded_at", "cast": "timestamp"}, *metrics]}
    if source.kind == "daily":
        return {"key_columns": ["day", "line"], "retention_date_column": "day", "data_retention_days": 730,
                "sync_strategy": "full", "sync_frequency": "hourly",
                "columns": [{"column": "day", "source": "date", "cast": "date", "format": "%d/%m/%Y"},
                            {"column": "line", "source": "line"}, *metrics]}
    return {"key_columns": ["code"], "sync_strategy": "full", "sync_frequency": "daily",
            "columns": [{"column": "code", "source": "code"}, {"column": "name", "source": "name"},
                        {"column": "attributes", "source": "attributes", "cast": "json"}]}


def write_json_sources(directory: Path, now: dt.datetime, records_per_source: int = 288) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for n, source in enumerate(JSON_SOURCES):
        rng = random.Random(source.source_id)
        if source.kind == "series":
            records = series_records(rng, source.metrics, records_per_source, now)
        elif source.kind == "daily":
            records = daily_records(rng, source.metrics, 60, now)
        else:
            records = master_records(source, rng)
        # half the files wrap their records like the seed's API dumps, half are bare arrays
        doc = {"data": records, "generated_at": now.isoformat()} if n % 2 else records
        (directory / source.file_name).write_text(json.dumps(doc))


# ---- the other source types ------------------------------------------------------------------------------------
def write_csv_and_excel(directory: Path, now: dt.datetime) -> None:
    from openpyxl import Workbook

    rng = random.Random("files")
    lines = ["meter;reading_at;kwh"] + [
        f"EM-{m:02d};{(now - dt.timedelta(hours=h)).strftime('%Y-%m-%d %H:00:00')};{rng.uniform(10, 90):.2f}"
        for m in range(1, 5) for h in range(24)]
    (directory / "energy_meter.csv").write_text("\n".join(lines) + "\n")
    wb = Workbook()
    ws = wb.active
    ws.title = "Plan"
    ws.append(["Production plan (generated for the demo)"])
    ws.append([])
    ws.append(["Date", "Line", "Product", "Target"])
    for d in range(14):
        for line in LINES:
            ws.append([dt.datetime.combine(now.date() + dt.timedelta(days=d), dt.time()), line, f"PRD-{d % 4 + 1}",
                       rng.randrange(800, 1200)])
    wb.save(directory / "production_plan.xlsx")


def seed_plant_table(db: Any) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS demo_plant_machines (machine_code TEXT PRIMARY KEY, hall TEXT, "
               "vendor TEXT, commissioned DATE, capacity_per_hour INTEGER)").close()
    rows = [(m, "H1" if i < 6 else "H2", ["Fanuc", "Okuma", "Mazak"][i % 3], dt.date(2019 + i % 5, 1 + i, 1), 400 + 10 * i)
            for i, m in enumerate(MACHINES)]
    cur = db.cursor()
    cur.executemany("INSERT INTO demo_plant_machines VALUES (%s, %s, %s, %s, %s) ON CONFLICT (machine_code) DO NOTHING", rows)
    cur.close()
    db.commit()


class _MesHandler(BaseHTTPRequestHandler):
    """A machine execution system's REST feed: paged JSON, bearer token required."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        parts = urlsplit(self.path)
        if self.headers.get("Authorization") != f"Bearer {MES_TOKEN}":
            return self._send(401, {"error": "unauthorized"})
        if parts.path != "/api/v1/production":
            return self._send(404, {"error": "not found"})
        query = parse_qs(parts.query)
        page, size = int(query.get("page", ["1"])[0]), int(query.get("per_page", ["100"])[0])
        now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
        total = 250
        first = (page - 1) * size + 1
        items = [{"id": i, "machine": MACHINES[i % len(MACHINES)], "status": ["RUN", "IDLE", "STOP"][i % 3],
                  "updated_at": (now - dt.timedelta(minutes=total - i)).isoformat()}
                 for i in range(first, min(first + size, total + 1))]
        self._send(200, {"data": items, "page": page})

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def start_mes_server() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MesHandler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server


def other_sources(directory: Path, api_url: str) -> list[dict[str, Any]]:
    return [
        {"source_id": "energy_meter_csv", "name": "Energy Meter Export (CSV)", "source_type": "csv", "priority": 2,
         "connections": [{"name": "share", "config": {"file_path": str(directory / "energy_meter.csv"), "delimiter": ";"}}],
         "mapping": {"target_table": "energy_meter_readings", "key_columns": ["meter", "reading_at"],
                     "cursor_field": "reading_at", "sync_strategy": "incremental", "columns": [
                         {"column": "meter", "source": "meter"},
                         {"column": "reading_at", "source": "reading_at", "cast": "timestamp",
                          "format": "%Y-%m-%d %H:%M:%S", "timezone": "Asia/Jakarta"},
                         {"column": "kwh", "source": "kwh", "cast": "decimal"}]}},
        {"source_id": "production_plan_xlsx", "name": "Production Plan (Excel)", "source_type": "excel", "priority": 2,
         "connections": [{"name": "planning-share", "config": {"file_path": str(directory / "production_plan.xlsx"),
                                                                "sheet": "Plan", "header_row": 3}}],
         "mapping": {"target_table": "production_plan", "key_columns": ["plan_date", "line"], "sync_strategy": "full",
                     "columns": [{"column": "plan_date", "source": "Date", "cast": "date"},
                                 {"column": "line", "source": "Line"}, {"column": "product", "source": "Product"},
                                 {"column": "target_qty", "source": "Target", "cast": "int"}]}},
        {"source_id": "plant_machines_db", "name": "Machine Master (database)", "source_type": "database", "priority": 3,
         "connections": [
             {"name": "plant-db-primary", "config": {"conn_id": "registry_demo_plant_primary", "table": "demo_plant_machines"}},
             {"name": "plant-db-replica", "backup": True,
              "config": {"conn_id": "registry_demo_plant_replica", "table": "demo_plant_machines"}}],
         "mapping": {"target_table": "machine_master", "key_columns": ["machine_code"], "sync_strategy": "full",
                     "columns": [{"column": "machine_code", "source": "machine_code"}, {"column": "hall", "source": "hall"},
                                 {"column": "vendor", "source": "vendor"},
                                 {"column": "commissioned", "source": "commissioned", "cast": "date"},
                                 {"column": "capacity_per_hour", "source": "capacity_per_hour", "cast": "int"}]}},
        {"source_id": "mes_line_feed_api", "name": "MES Line Feed (API)", "source_type": "api", "priority": 1,
         "connections": [{"name": "mes", "config": {
             "base_url": api_url, "endpoint": "/api/v1/production", "records_path": "data",
             "headers": {"Authorization": "Bearer {{ var.demo_mes_token }}", "Accept": "application/json"},
             "pagination": {"type": "page", "page_param": "page", "size_param": "per_page", "size": 100},
             "rate_limit": 600, "timeout": 10, "retries": 2, "backoff": 0.2}}],
         "mapping": {"target_table": "mes_line_status", "key_columns": ["id"], "cursor_field": "updated_at",
                     "sync_strategy": "incremental", "columns": [
                         {"column": "id", "source": "id", "cast": "int"}, {"column": "machine", "source": "machine"},
                         {"column": "status", "source": "status"},
                         {"column": "updated_at", "source": "updated_at", "cast": "timestamp"}]}},
        {"source_id": "artisan_machine1", "name": "Artisan data:sync machine1", "source_type": "artisan", "priority": 2,
         "connections": [{"name": "artisan", "config": {
             "command": "data_sync", "parameters": ["--source=machine1", "--type=production"],
             "timeout": 60, "output_format": "json"}}],
         "mapping": {"target_table": "artisan_machine_counters", "key_columns": ["machine", "hour"], "cursor_field": "hour",
                     "sync_strategy": "incremental", "columns": [
                         {"column": "machine", "source": "machine"}, {"column": "hour", "source": "hour", "cast": "timestamp"},
                         {"column": "good_count", "source": "good_count", "cast": "int"},
                         {"column": "reject_count", "source": "reject_count", "cast": "int"},
                         {"column": "counters", "source": "counters", "cast": "json"}]}},
    ]


def demo_policy(directory: Path, api_url: str) -> dict[str, Any]:
    """The registry policy the demo's platform team writes: its data directory, its two plant
    connections, the MES API on loopback and its token variable, and one artisan command."""
    return {
        "file_roots": [str(directory)],
        "database_connections": ["registry_demo_plant_primary", "registry_demo_plant_replica"],
        "placeholder_variables": ["demo_mes_token"],
        "api_origins": [api_url],
        "api_private_networks": ["127.0.0.0/8"],  # the stand-in MES runs on loopback
        "artisan_commands": {
            "data_sync": {
                "argv": [sys.executable, str(ARTISAN_SCRIPT), "data:sync"],
                "working_directory": str(ARTISAN_SCRIPT.parent),
                "parameters": ["--source=[a-z0-9_]{1,40}", "--type=(production|quality|downtime)", "--rows=[0-9]{1,4}"],
                "env": [],
            },
        },
    }


def plant_reader(db: Any) -> None:
    """A login that can read the plant table and nothing of the server (no superuser): what the
    platform gives registry database sources."""
    if db.fetchone("SELECT 1 FROM pg_roles WHERE rolname = %s", (PLANT_READER,)) is None:
        db.execute(f'CREATE ROLE "{PLANT_READER}" LOGIN NOSUPERUSER').close()
    (name,) = db.fetchone("SELECT current_database()")
    db.execute(f'GRANT CONNECT ON DATABASE "{name}" TO "{PLANT_READER}"').close()
    db.execute(f'GRANT SELECT ON demo_plant_machines TO "{PLANT_READER}"').close()
    db.commit()


# ---- registering -------------------------------------------------------------------------------------------
def register(db: Any, source_id: str, name: str, source_type: str, connections: list[dict], mapping: dict, *,
             priority: int = 1, refresh: int = 300, description: str | None = None) -> None:
    """Upsert one source with its connections and mapping; due at once (next_sync NULL), status active."""
    conn_type = "file" if source_type in ("json", "csv", "excel") else source_type
    (sid,) = db.fetchone(
        "INSERT INTO data_source_registry (source_id, name, description, source_type, connection_type, priority, "
        "refresh_interval) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (source_id) DO UPDATE SET name = EXCLUDED.name, "
        "description = EXCLUDED.description, source_type = EXCLUDED.source_type, connection_type = EXCLUDED.connection_type, "
        "priority = EXCLUDED.priority, refresh_interval = EXCLUDED.refresh_interval, status = 'active', next_sync = NULL, "
        "error_count = 0, last_error = NULL RETURNING id",
        (source_id, name, description, source_type, conn_type, priority, refresh))
    for i, c in enumerate(connections):
        backup = c.get("backup", i > 0)
        db.execute(
            "INSERT INTO data_source_connections (source_id, connection_name, connection_type, connection_config, "
            "is_primary, is_backup) VALUES (%s, %s, %s, %s::jsonb, %s, %s) ON CONFLICT (source_id, connection_name) DO UPDATE "
            "SET connection_config = EXCLUDED.connection_config, is_primary = EXCLUDED.is_primary, "
            "is_backup = EXCLUDED.is_backup, status = 'active'",
            (sid, c["name"], conn_type, json.dumps(c["config"]), not backup, backup)).close()
    m = dict(mapping)
    columns = ("key_columns", "cursor_field", "retention_date_column", "data_retention_days", "sync_strategy",
               "sync_frequency")
    values = {k: m.pop(k, None) for k in columns}
    db.execute(
        "INSERT INTO data_source_mappings (source_id, target_table, mapping_config, key_columns, cursor_field, "
        "retention_date_column, data_retention_days, sync_strategy, sync_frequency) "
        "VALUES (%s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s) ON CONFLICT (source_id, target_table) DO UPDATE SET "
        "mapping_config = EXCLUDED.mapping_config, key_columns = EXCLUDED.key_columns, cursor_field = EXCLUDED.cursor_field, "
        "retention_date_column = EXCLUDED.retention_date_column, data_retention_days = EXCLUDED.data_retention_days, "
        "sync_strategy = EXCLUDED.sync_strategy, sync_frequency = EXCLUDED.sync_frequency, is_active = true",
        (sid, m.pop("target_table"), json.dumps(m), values["key_columns"], values["cursor_field"],
         values["retention_date_column"], values["data_retention_days"], values["sync_strategy"] or "incremental",
         values["sync_frequency"] or "hourly")).close()


def register_json_sources(db: Any, directory: Path, sources: list[DemoSource]) -> None:
    for n, source in enumerate(sources):
        config: dict[str, Any] = {"file_path": str(directory / source.file_name), "file_type": "json", "encoding": "utf-8"}
        if n % 2:
            config["records_path"] = "data"
        register(db, source.source_id, source.name, "json", [{"name": "json-file", "config": config}],
                 {"target_table": source.source_id, **mapping_for(source)}, priority=source.priority,
                 refresh=source.refresh, description=f"seed 003 JSON source ({source.file_name})")


# ---- the step --------------------------------------------------------------------------------------------
def demo_step(demo: Any) -> None:
    from datasync.db import connected

    now = dt.datetime.now(dt.timezone.utc)
    write_json_sources(DATA_DIR, now)
    write_csv_and_excel(DATA_DIR, now)
    server = start_mes_server()
    api_url = f"http://127.0.0.1:{server.server_address[1]}"
    # the database source's primary is a server that is down: its replica takes over
    demo.env["AIRFLOW_CONN_REGISTRY_DEMO_PLANT_PRIMARY"] = f"postgresql://{PLANT_READER}@127.0.0.1:1/plant"
    demo.env["AIRFLOW_VAR_DEMO_MES_TOKEN"] = MES_TOKEN
    demo.env["AIRFLOW_VAR_DATASYNC_REGISTRY_POLICY"] = json.dumps(demo_policy(DATA_DIR, api_url))
    try:
        with connected("registry_db") as db:
            seed_plant_table(db)
            plant_reader(db)
            replica = db.conn.info  # the demo's registry_db server, through the reader login
            demo.env["AIRFLOW_CONN_REGISTRY_DEMO_PLANT_REPLICA"] = (
                f"postgresql://{PLANT_READER}@{replica.host}:{replica.port}/{replica.dbname}")
            register_json_sources(db, DATA_DIR, JSON_SOURCES)
            for s in other_sources(DATA_DIR, api_url):
                register(db, s["source_id"], s["name"], s["source_type"], s["connections"],
                         s["mapping"], priority=s["priority"])
            db.commit()
            (count,) = db.fetchone("SELECT count(*) FROM data_source_registry")
        demo.say(f"  registry_db: {len(JSON_SOURCES)} JSON sources + csv, excel, database, api, artisan "
                 f"({count} registered); data files in {DATA_DIR.relative_to(REPO_ROOT)}")
        demo.say("  registry policy (Variable datasync_registry_policy): files under "
                 f"{DATA_DIR.relative_to(REPO_ROOT)}, connections registry_demo_plant_primary/_replica "
                 f"(login {PLANT_READER}), API {api_url}, variable demo_mes_token, command data_sync")
        demo.dag_test("source_registry_runner", log_name="source_registry_runner")
        demo.dag_test("source_registry_realtime", log_name="source_registry_realtime")
    finally:
        server.shutdown()
        server.server_close()
    print_history(demo)


def print_history(demo: Any) -> None:
    from datasync.db import connected

    with connected("registry_db") as db:
        rows = db.fetchall(
            "SELECT DISTINCT ON (r.id) r.name, r.source_type, h.sync_type, h.sync_status, h.connection_role, "
            "h.records_processed, h.records_inserted, h.records_updated, h.records_unchanged, h.records_deleted, "
            "h.records_rejected, h.sync_duration_ms FROM data_source_registry r "
            "JOIN data_source_sync_history h ON h.source_id = r.id ORDER BY r.id, h.id DESC")
    demo.say(f"  {'source':30} {'type':8} {'strategy':11} {'status':8} {'served by':9} "
             f"{'read':>5} {'ins':>5} {'upd':>4} {'same':>5} {'del':>4} {'rej':>3} {'ms':>5}")
    for name, kind, strategy, status, role, read, ins, upd, same, deleted, rej, ms in rows:
        demo.say(f"  {name[:30]:30} {kind:8} {strategy:11} {status:8} {role or '-':9} "
                 f"{read:5} {ins:5} {upd:4} {same:5} {deleted:4} {rej:3} {ms or 0:5}")
