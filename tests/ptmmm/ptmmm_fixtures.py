"""PTMMM test fixtures and helpers: a migrated ops database reachable as MariaDB (procedure path) and
through the connection extra ``dialect=tidb``, as TiDB (statement path); the demo data generator."""

import dataclasses
import datetime as dt
import importlib.util

import pytest

from datasync.db import connected
from datasync.migrate import TARGETS, migrate_database
from datasync.paths import DEMO_DIR

OPS = "ptmmm_ops"  # the MariaDB as itself: CALL sp_run_daily_kpi_etl
OPS_AS_TIDB = "ptmmm_ops_tidb"  # the same database treated as TiDB: the statements from Python
SUPABASE = "ptmmm_supabase"

OPS_TABLES = ("organizations", "warehouses", "skus", "vehicles", "orders", "shipments", "inventory_tx", "scan_event")


def migrate_as(conn_id: str, target: str) -> None:
    with connected(conn_id) as conn:
        migrate_database(dataclasses.replace(TARGETS[target], conn_id=conn_id), conn)


@pytest.fixture
def ops_db(database_factory):
    """A fresh, migrated ops database (procedure installed), bound to OPS and OPS_AS_TIDB."""
    db = database_factory("mysql", "ptmmm")
    db.bind(OPS)
    db.bind(OPS_AS_TIDB, extra="dialect=tidb")
    migrate_as(OPS, "tidb")
    return db


@pytest.fixture
def supabase_db(database_factory):
    db = database_factory("postgres", "ptmmm_supa")
    db.bind(SUPABASE)
    migrate_as(SUPABASE, "supabase")
    return db


@pytest.fixture(scope="session")
def demo_data():
    """The demo generator (include/demo/ptmmm/ops_data.py), loaded by path."""
    spec = importlib.util.spec_from_file_location("ptmmm_ops_data", DEMO_DIR / "ptmmm" / "ops_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load_rows(demo_data):
    """``load_rows(conn_id, {table: [row dict, ...]})``: insert rows in one transaction."""

    def load(conn_id: str, tables: dict) -> None:
        with connected(conn_id) as conn:
            demo_data.load(conn, tables)

    return load


def kpi_rows(db, table: str, day: dt.date | None = None) -> list[dict]:
    """A KPI table's rows (of one day, or all) as dicts without updated_at, in a stable order."""
    conn = db.connect()
    try:
        cur = conn.cursor()
        where = "WHERE data_date = %s" if day else ""
        cur.execute(f"SELECT * FROM {table} {where}", (day,) if day else None)
        names = [d[0] for d in cur.description]
        rows = [{k: v for k, v in zip(names, row) if k != "updated_at"} for row in cur.fetchall()]
    finally:
        conn.close()
    return sorted(rows, key=lambda r: [str(v) for v in r.values()])
