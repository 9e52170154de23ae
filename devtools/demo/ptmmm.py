"""``make demo`` step for PTMMM: demo ops data in, the KPI DAG for a few days, the mirrored rows out.

Loads ``include/demo/ptmmm/ops_data.py`` (four weeks of activity ending :data:`DEMO_END`) into
``tidb_ops`` and its organisations, warehouses and users into ``supabase_ptmmm``, then runs
``ptmmm_daily_kpi_etl`` through ``airflow dags test`` for the last three days: two the way the
schedule would (logical date 23:00 WIB, computing the day before) and one with the
``data_date`` param, exporting to a local Google Sheets stand-in. Prints what reached Supabase.
"""

from __future__ import annotations

import datetime as dt
import importlib.util

from datasync.db import connected
from datasync.paths import DEMO_DIR
from datasync.ptmmm.kpi import WIB
from datasync.ptmmm.mirror import OPS_CONN, SUPABASE_CONN

DEMO_END = dt.date(2025, 3, 31)
DEMO_DAYS = 28
DEMO_SPREADSHEET = "ptmmm-demo-kpi"


def _ops_data_module():
    spec = importlib.util.spec_from_file_location("ptmmm_ops_data", DEMO_DIR / "ptmmm" / "ops_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_demo_data(demo) -> dt.date:
    """Load the demo rows where they are missing; returns the last WIB day with activity."""
    ops_data = _ops_data_module()
    data = ops_data.generate(end=DEMO_END, days=DEMO_DAYS)
    for conn_id, tables in ((OPS_CONN, data.ops), (SUPABASE_CONN, data.supabase)):
        with connected(conn_id) as db:
            if ops_data.already_loaded(db, tables):
                demo.say(f"  {conn_id}: demo data already loaded")
            else:
                loaded = ops_data.load(db, tables)
                demo.say(f"  {conn_id}: loaded " + ", ".join(f"{n} {t}" for t, n in loaded.items()))
    with connected(OPS_CONN) as db:
        (last,) = db.fetchone("SELECT MAX(occurred_at) FROM inventory_tx")
        db.commit()
    return last.replace(tzinfo=dt.timezone.utc).astimezone(WIB).date()


def _scheduled_at(day: dt.date) -> str:
    """The logical date of the scheduled run computing ``day``: 23:00 WIB the day after, in UTC."""
    fire = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(23), tzinfo=WIB)
    return fire.astimezone(dt.timezone.utc).isoformat()


def mirrored_table(days: list[dt.date]) -> list[str]:
    """The mirrored KPI rows of ``days`` in Supabase as a compact text table."""
    with connected(SUPABASE_CONN) as db:
        rows = db.fetchall(
            "SELECT i.data_date, coalesce(w.code, left(i.warehouse_id::text, 8)), i.tx_count, i.inbound_qty, i.outbound_qty, "
            "i.closing_qty, i.scan_confirmed_pct, f.shipments_dispatched, f.shipments_delivered, f.on_time_delivery_pct, "
            "f.avg_delivery_hours, f.vehicle_utilization_pct "
            "FROM public.inventory_kpi_daily i JOIN public.fleet_kpi_daily f USING (data_date, warehouse_id) "
            "LEFT JOIN public.warehouse w ON w.id = i.warehouse_id "
            "WHERE i.data_date = ANY(%s) ORDER BY 1, 2",
            (days,),
        )
        db.commit()
    header = ("date", "warehouse", "moves", "in", "out", "stock", "scan%", "disp", "deliv", "ontime%", "hours", "util%")
    cells = [header] + [tuple("n/a" if v is None else f"{v.normalize():f}" if hasattr(v, "normalize") else str(v) for v in r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return ["  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in cells]


def demo_step(demo) -> None:
    from devtools.ptmmm.sheets_standin import SheetsStandIn

    last = load_demo_data(demo)
    days = [last - dt.timedelta(days=n) for n in (2, 1, 0)]
    for day in days[:2]:
        demo.say(f"  ptmmm_daily_kpi_etl as scheduled at {_scheduled_at(day)} (23:00 WIB) -> data_date {day}")
        demo.dag_test("ptmmm_daily_kpi_etl", logical_date=_scheduled_at(day), log_name=f"ptmmm_daily_kpi_etl_{day}")
    # the last day by param, with the export to a local stand-in of the Sheets API
    with SheetsStandIn() as sheets:
        sheets.add_spreadsheet(DEMO_SPREADSHEET)
        demo.env["AIRFLOW_CONN_GOOGLE_SHEETS"] = sheets.connection_json()
        try:
            demo.say(f"  ptmmm_daily_kpi_etl with data_date={days[2]} and a Google Sheet (local stand-in at {sheets.url})")
            demo.dag_test("ptmmm_daily_kpi_etl", conf={"data_date": days[2].isoformat(), "spreadsheet_id": DEMO_SPREADSHEET},
                          log_name=f"ptmmm_daily_kpi_etl_{days[2]}")
        finally:
            demo.env.pop("AIRFLOW_CONN_GOOGLE_SHEETS", None)  # later steps see no sheet, as before
        exported = {tab: len(sheets.values(DEMO_SPREADSHEET, tab)) - 1 for tab in ("inventory_kpi_daily", "fleet_kpi_daily")}
    demo.say("  sheet rows: " + ", ".join(f"{tab} {n}" for tab, n in exported.items()))
    demo.say("  KPI rows mirrored to supabase_ptmmm (n/a = undefined, e.g. nothing delivered):")
    for line in mirrored_table(days):
        demo.say("    " + line)
