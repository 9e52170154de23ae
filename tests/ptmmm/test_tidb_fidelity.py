"""The ops SQL under TiDB's rules on MariaDB: utf8mb4_bin tables, TiDB's sql_mode (bound on every
test connection by ptmmm_fixtures), edge data whose KPIs come from the documented formulas
(kpi_reference), and TiDB detection that survives a custom ``server-version``."""

import datetime as dt
import importlib.util
import uuid
from decimal import Decimal

import pytest
from harness import REPO
from kpi_reference import Day
from ptmmm_fixtures import OPS, OPS_AS_TIDB, OPS_TABLES, TIDB_SQL_MODE, kpi_rows

from datasync.db import MYSQL, TIDB, connected, mysql_family_dialect, server_identity
from datasync.ptmmm import kpi

BOTH_PATHS = pytest.mark.parametrize("conn_id", [OPS, OPS_AS_TIDB], ids=["procedure", "statements"])
ONE_DAY = dt.timedelta(days=1)
DAY = dt.date(2025, 6, 10)  # WIB; UTC [2025-06-09 17:00, 2025-06-10 17:00)
START, END = dt.datetime(2025, 6, 9, 17), dt.datetime(2025, 6, 10, 17)
MICRO = dt.timedelta(microseconds=1)
LONG_AGO = dt.datetime(2025, 1, 1)
_NS = uuid.UUID("0b6f9a8e-5d1c-4f7a-8e2b-1c9d7e3a0016")


def uid(alias: str) -> str:
    """The canonical (lower-case) UUID of a row alias."""
    return str(uuid.uuid5(_NS, alias))


def shout(alias: str) -> str:
    """The same UUID as an upstream system might write it: upper-case."""
    return uid(alias).upper()


def _wh(alias, org, code, opened=LONG_AGO, closed=None):
    return {"id": uid(alias), "org_id": uid(org), "code": code, "name": code, "opened_at": opened, "closed_at": closed}


def _vehicle(alias, in_service=LONG_AGO, retired=None):
    return {"id": uid(alias), "org_id": uid("A"), "warehouse_id": uid("W1"), "plate_no": alias,
            "in_service_at": in_service, "retired_at": retired}


def _tx(tx_id, tx_type, qty, at, sku="P1", warehouse=None, org=None):
    return {"id": tx_id, "org_id": org or uid("A"), "warehouse_id": uid("W1") if warehouse is None else warehouse,
            "sku_id": uid(sku) if len(sku) == 2 else sku, "tx_type": tx_type, "quantity": qty, "occurred_at": at}


def _ship(ship_id, vehicle, dispatched=None, delivered=None, failed=None, due=None, warehouse=None):
    return {"id": ship_id, "org_id": uid("A"), "warehouse_id": uid("W1") if warehouse is None else warehouse,
            "vehicle_id": vehicle, "shipment_no": ship_id[:8], "due_at": due, "dispatched_at": dispatched,
            "delivered_at": delivered, "failed_at": failed}


def _scan(alias, ref_type, ref_id, at):
    return {"id": uid(alias), "org_id": uid("A"), "warehouse_id": uid("W1"), "scan_type": "check",
            "ref_type": ref_type, "ref_id": ref_id, "scanned_at": at}


# Ids whose order differs between a binary and a case-insensitive collation: 'B0..' < 'a0..' in
# code points, 'a0..' < 'B0..' ignoring case. Both are unknown-tx_type rows, so MIN(id) picks one.
LOWER_A0 = "a0000000-0000-4000-8000-000000000001"
UPPER_B0 = "B0000000-0000-4000-8000-000000000002"

EDGE = {
    "organizations": [{"id": uid("A"), "name": "Org A"}, {"id": uid("B"), "name": "Org B"}],
    "warehouses": [
        _wh("W1", "A", "JKT-01"),
        _wh("W2", "A", "jkt-01", closed=END),  # another code (codes are case-sensitive); closes at the day's end: active
        _wh("W3", "B", "MDN-01", opened=END),  # opens exactly at the day's end: not active on DAY
        _wh("W4", "B", "MKS-01", closed=START),  # closed exactly at the day's start: not active on DAY
    ],
    "skus": [{"id": uid(s), "org_id": uid("A"), "code": s, "name": s} for s in ("P1", "P2", "P3")],
    "vehicles": [
        _vehicle("V1"),
        _vehicle("V2", in_service=END),  # in service from the day's end: not in DAY's fleet
        _vehicle("V3", retired=START),  # retired exactly at the day's start: not in DAY's fleet
        _vehicle("V4", retired=START + MICRO),  # retired just after it: in the fleet
    ],
    "inventory_tx": [
        _tx(uid("e1"), "inbound", 100, dt.datetime(2025, 6, 1, 3)),
        _tx(uid("e2"), "Inbound", 40, START, sku="P2"),  # mixed case, first instant of the day
        _tx(shout("e3"), " outbound", 30, dt.datetime(2025, 6, 10, 1), warehouse=shout("W1")),  # spaces, upper-case ids
        _tx(uid("e4"), "OUTBOUND ", 40, END - MICRO, sku="P2"),  # last instant of the day; P2 runs out
        _tx(uid("e5"), "Adjustment", -5, dt.datetime(2025, 6, 10, 2), sku=shout("P1")),  # same SKU as P1
        _tx(uid("e6"), "inbound", 25, END, sku="P3"),  # first instant of the next day
        _tx(LOWER_A0, "transfer", 9, dt.datetime(2025, 6, 10, 3)),  # unknown tx_type
        _tx(UPPER_B0, "Transfer ", 9, dt.datetime(2025, 6, 10, 4)),  # unknown tx_type
        _tx(uid("e8"), "Inbound", -3, dt.datetime(2025, 6, 10, 5)),  # negative inbound
        _tx(uid("e9"), "inbound ", 10, dt.datetime(2025, 6, 10, 6), sku="P3", org=shout("A")),  # upper-case org id
        _tx(uid("e10"), "inbound", 7, dt.datetime(2025, 6, 10, 7), warehouse=""),  # empty id: missing
        _tx(uid("e11"), "inbound", 7, dt.datetime(2025, 6, 10, 8), warehouse=shout("W1"), org=uid("B")),  # other org
        _tx(uid("e12"), "inbound", 7, dt.datetime(2025, 6, 10, 9), warehouse=uid("W4"), org=uid("B")),  # warehouse closed
        _tx(uid("e13"), "inbound", 10, dt.datetime(2025, 6, 2, 9), warehouse=uid("W2")),  # W2's stock, carried over
        _tx(uid("e14"), "INBOUND", 7, START - MICRO, sku="P3"),  # last instant of the day before
    ],
    "shipments": [
        # upper-case own id, scanned as lower-case; dispatched at the first instant; on time
        _ship(shout("h1"), shout("V1"), dispatched=START, delivered=START + dt.timedelta(hours=3, minutes=30),
              due=START + dt.timedelta(hours=4)),
        # delivered exactly at the day's end: only the dispatch is DAY's
        _ship(uid("h2"), uid("V2"), dispatched=dt.datetime(2025, 6, 10, 8), delivered=END, warehouse=shout("W1")),
        # delivered at the first instant, exactly at its due time: on time
        _ship(uid("h3"), uid("V3"), dispatched=START - dt.timedelta(hours=2), delivered=START, due=START),
        # failed, vehicle_id empty
        _ship(uid("h4"), "", dispatched=dt.datetime(2025, 6, 10, 2), failed=dt.datetime(2025, 6, 10, 6)),
        _ship(uid("h5"), uid("V4"), dispatched=dt.datetime(2025, 6, 10, 3), warehouse=""),  # no warehouse
        # delivered without dispatch time: counted, left out of the average
        _ship(uid("h6"), uid("V2"), delivered=dt.datetime(2025, 6, 10, 9), due=dt.datetime(2025, 6, 10, 8)),
    ],
    "scan_event": [
        _scan("c1", "Inventory_tx", shout("e2"), START),  # confirms e2
        _scan("c2", "inventory_tx", uid("e3"), dt.datetime(2025, 6, 10, 1, 5)),  # confirms e3 (stored upper-case)
        _scan("c3", "INVENTORY_TX", uid("e4"), END),  # at the day's end: does not confirm e4 for DAY
        _scan("c4", " inventory_tx ", uid("e5"), dt.datetime(2025, 6, 3)),  # scanned days before: still before the end
        _scan("c5", "Shipment", uid("h1"), START),
        _scan("c6", "shipment ", shout("h1"), dt.datetime(2025, 6, 10, 0)),
        _scan("c7", "SHIPMENT", uid("h2"), END),  # at the day's end: the next day's scan
        _scan("c8", "shipment", uid("h3"), START - MICRO),  # the day before
        _scan("c9", "Shipment", uid("h4"), dt.datetime(2025, 6, 10, 2)),
        _scan("c10", "shipments", uid("h4"), dt.datetime(2025, 6, 10, 3)),  # not a ref_type: counts nowhere
    ],
}


def run(conn_id: str, day: dt.date) -> kpi.KpiRun:
    with connected(conn_id) as db:
        return kpi.run_kpi_etl(db, day)


def table(db, name: str, day: dt.date) -> dict[str, dict]:
    rows = {}
    for row in kpi_rows(db, name, day):
        row = dict(row)
        del row["data_date"]
        rows[row.pop("warehouse_id")] = row
    return rows


def test_ops_and_kpi_tables_are_declared_utf8mb4_bin(ops_db):
    tables = (*OPS_TABLES, *kpi.KPI_TABLES, kpi.EXCLUSIONS_TABLE)
    collations = dict(ops_db.query(
        "SELECT table_name, table_collation FROM information_schema.tables WHERE table_schema = DATABASE()"))
    assert {t: collations[t] for t in tables} == {t: "utf8mb4_bin" for t in tables}
    columns = ops_db.query(
        "SELECT table_name, column_name, collation_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND collation_name IS NOT NULL")
    assert [c for c in columns if c[0] in tables and c[2] != "utf8mb4_bin"] == []
    # the connections the ETL uses in these tests run under TiDB's sql_mode
    for conn_id in (OPS, OPS_AS_TIDB):
        with connected(conn_id) as db:
            assert db.fetchone("SELECT @@SESSION.sql_mode")[0] == TIDB_SQL_MODE


@BOTH_PATHS
def test_edge_data_gives_the_documented_kpis(conn_id, ops_db, load_rows):
    load_rows(OPS, EDGE)  # 'JKT-01' and 'jkt-01' are two warehouse codes, as on TiDB
    days = (DAY - ONE_DAY, DAY, DAY + ONE_DAY)
    for day in days:
        run(conn_id, day)
        ref = Day(EDGE, day)
        assert table(ops_db, "inventory_kpi_daily", day) == ref.inventory(), day
        assert table(ops_db, "fleet_kpi_daily", day) == ref.fleet(), day
        exclusions = ops_db.query(
            "SELECT org_id, source_table, reason, row_count, example_id FROM kpi_daily_exclusions "
            "WHERE data_date = %s ORDER BY 1, 2, 3", (day,))
        assert sorted(exclusions) == ref.exclusions(), day
        with connected(conn_id) as db:
            assert kpi.quality_problems(db, day) == [], day

    # The edge cases the oracle must have seen (guards against a vacuous oracle and data).
    ref = Day(EDGE, DAY)
    inv, fleet = ref.inventory(), ref.fleet()
    assert set(inv) == {uid("W1"), uid("W2")}  # W3 opens at the end, W4 closed at the start
    w1 = inv[uid("W1")]
    # e2 'Inbound' at the first instant, e9 with an upper-case org; e3 ' outbound' + e4 'OUTBOUND ' at the last instant
    assert (w1["inbound_qty"], w1["outbound_qty"], w1["adjustment_qty"], w1["tx_count"]) == (50, 70, -5, 5)
    assert (w1["opening_qty"], w1["closing_qty"], w1["skus_in_stock"], w1["stock_out_skus"]) == (107, 82, 2, 1)
    assert w1["scan_confirmed_tx"] == 3  # e2, e3 (upper-case id), e5 (scanned days before); not e4 (scan at the end)
    w2 = inv[uid("W2")]
    assert (w2["opening_qty"], w2["closing_qty"], w2["tx_count"], w2["scan_confirmed_pct"]) == (10, 10, 0, None)
    assert str(w2["turnover_ratio"]) == "0.0000"  # stock carried over, nothing went out: 0, not NULL
    f1 = fleet[uid("W1")]
    assert (f1["fleet_size"], f1["active_vehicles"], f1["vehicle_utilization_pct"]) == (2, 3, 50)  # V1 V4; V1 V2 V3; V1
    assert (f1["shipments_handled"], f1["shipments_delivered"], f1["delivered_on_time"], f1["shipment_scans"]) == (5, 3, 2, 3)
    assert (f1["avg_delivery_hours"], f1["on_time_delivery_pct"]) == (Decimal("2.75"), Decimal("66.67"))  # h1 3.5 h, h3 2 h
    reasons = {(t, r): (n, ex) for _, t, r, n, ex in ref.exclusions()}
    assert reasons[("inventory_tx", "unknown tx_type")] == (2, UPPER_B0)  # MIN in code-point order, as utf8mb4_bin
    assert set(reasons) == {
        ("inventory_tx", "unknown tx_type"),
        ("inventory_tx", "negative quantity on an inbound or outbound movement"),
        ("inventory_tx", "warehouse_id is missing"),
        ("inventory_tx", "org_id differs from the org of its warehouse"),
        ("inventory_tx", "warehouse is not open on this day"),
        ("shipments", "warehouse_id is missing"),
        ("shipments", "delivered without dispatched_at: left out of avg_delivery_hours"),
    }


def test_demo_data_gives_the_documented_kpis(ops_db, demo_data, load_rows):
    data = demo_data.generate(end=dt.date(2025, 3, 14), days=14).ops
    load_rows(OPS, data)
    for day in (dt.date(2025, 3, 1), dt.date(2025, 3, 8), dt.date(2025, 3, 12)):
        run(OPS_AS_TIDB, day)
        ref = Day(data, day)
        assert table(ops_db, "inventory_kpi_daily", day) == ref.inventory(), day
        assert table(ops_db, "fleet_kpi_daily", day) == ref.fleet(), day


# --- TiDB detection ----------------------------------------------------------------------------

TIDB_COMMENT = "TiDB Server (Apache License 2.0) Community Edition, MySQL 8.0 compatible"


@pytest.mark.parametrize(
    "version, comment, override, dialect",
    [
        ("8.0.11-TiDB-v7.5.1", TIDB_COMMENT, None, TIDB),  # TiDB as shipped
        ("8.0.36", TIDB_COMMENT, None, TIDB),  # server-version set to look like MySQL
        ("5.7.25", "TiDB Server (Apache License 2.0) Enterprise Edition", None, TIDB),
        ("10.11.19-MariaDB-0+deb12u1", "Debian 12", None, MYSQL),
        ("8.0.36", "MySQL Community Server - GPL", None, MYSQL),
        ("8.0.36", "MySQL Community Server - GPL", "tidb", TIDB),  # the connection extra wins
        ("8.0.11-TiDB-v7.5.1", TIDB_COMMENT, "mysql", MYSQL),
    ],
)
def test_dialect_decision(version, comment, override, dialect):
    assert mysql_family_dialect(version, comment, override) == dialect


def test_server_identity_is_read_from_the_server(ops_db):
    conn = ops_db.connect()
    try:
        version, comment = server_identity(conn)
        cur = conn.cursor()
        cur.execute("SELECT VERSION(), @@version_comment")
        assert (version, comment) == cur.fetchone()
    finally:
        conn.close()
    assert "MariaDB" in version and mysql_family_dialect(version, comment) == MYSQL
    with connected(OPS) as db:
        assert (db.dialect.name, db.version, db.supports_procedures) == (MYSQL, version, True)
    with connected(OPS_AS_TIDB) as db:
        assert (db.dialect.name, db.supports_procedures) == (TIDB, False)


# --- the compose helper ------------------------------------------------------------------------


def test_ensure_tidb_database_defaults_to_the_mysql_port():
    spec = importlib.util.spec_from_file_location("ensure_tidb_database", REPO / "docker" / "ensure_tidb_database.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.target("mysql://root@tidb/ptmmm_ops")[0]["port"] == 3306  # like Airflow's MySQL hook
    assert module.target("mysql://root@tidb:4000/ptmmm_ops")[0]["port"] == 4000
