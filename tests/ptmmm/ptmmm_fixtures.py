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

# TiDB's default sql_mode, set on every test connection to the ops database (connection extra
# sql_mode) so the ops SQL runs under TiDB's rules, ONLY_FULL_GROUP_BY included. MariaDB 10.11
# accepts every one of these names (MySQL 8 would refuse NO_AUTO_CREATE_USER).
TIDB_SQL_MODE = ("ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
                 "ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION")
AS_MARIADB = f"sql_mode={TIDB_SQL_MODE}"  # connection extras: the MariaDB as itself
AS_TIDB = f"dialect=tidb&sql_mode={TIDB_SQL_MODE}"  # ... and treated as TiDB

OPS_TABLES = ("organizations", "warehouses", "skus", "vehicles", "orders", "shipments", "inventory_tx", "scan_event")


def migrate_as(conn_id: str, target: str) -> None:
    with connected(conn_id) as conn:
        migrate_database(dataclasses.replace(TARGETS[target], conn_id=conn_id), conn)


@pytest.fixture
def ops_db(database_factory):
    """A fresh, migrated ops database (procedure installed), bound to OPS and OPS_AS_TIDB, both
    under TiDB's sql_mode (the procedure keeps the mode it was created with)."""
    db = database_factory("mysql", "ptmmm")
    db.bind(OPS, extra=AS_MARIADB)
    db.bind(OPS_AS_TIDB, extra=AS_TIDB)
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
