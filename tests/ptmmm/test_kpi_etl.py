"""The PTMMM daily KPI ETL against a real MariaDB, on both paths: CALL sp_run_daily_kpi_etl
(MariaDB as itself) and the statements from Python (the same database seen as TiDB)."""

import datetime as dt
import shutil

import pytest
from ptmmm_example import DAY, EXPECTED_EXCLUSIONS, EXPECTED_FLEET, EXPECTED_INVENTORY, ROWS, uid
from ptmmm_fixtures import AS_TIDB, OPS, OPS_AS_TIDB, kpi_rows, migrate_as

from datasync.db import connected
from datasync.ptmmm import kpi

BOTH_PATHS = pytest.mark.parametrize("conn_id", [OPS, OPS_AS_TIDB], ids=["procedure", "statements"])
ONE_DAY = dt.timedelta(days=1)


def run(conn_id: str, day) -> kpi.KpiRun:
    with connected(conn_id) as db:
        return kpi.run_kpi_etl(db, day)


def by_warehouse(rows: list[dict]) -> dict[str, dict]:
    aliases = {uid(a): a for a in ("W1", "W2", "W3", "W4")}
    orgs = {uid(a): a for a in ("A", "B")}
    out = {}
    for row in rows:
        row = dict(row)
        del row["data_date"]
        row["org"] = orgs[row.pop("org_id")]
        out[aliases[row.pop("warehouse_id")]] = row
    return out


def test_migration_installs_tables_and_procedure(migrated_target):
    db = migrated_target("tidb")
    tables = {t for (t,) in db.query("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")}
    assert {"warehouses", "skus", "vehicles", "orders", "shipments", "inventory_tx", "scan_event",
            "inventory_kpi_daily", "fleet_kpi_daily", "kpi_daily_exclusions"} <= tables
    assert db.query("SELECT routine_name FROM information_schema.routines WHERE routine_schema = DATABASE()") == [
        ("sp_run_daily_kpi_etl",)
    ]
    assert db.query("SELECT version FROM datasync_migrations WHERE version LIKE 'tidb/R:%'") == [("tidb/R:sp_run_daily_kpi_etl",)]


def test_tidb_dialect_gets_no_procedure_and_runs_the_statements(database_factory):
    db = database_factory("mysql", "ptmmm_tidb")
    db.bind(OPS_AS_TIDB, extra=AS_TIDB)
    migrate_as(OPS_AS_TIDB, "tidb")
    with connected(OPS_AS_TIDB) as conn:
        assert conn.dialect.name == "tidb" and not conn.supports_procedures
        assert kpi.procedure_migrations(conn) == []
        result = kpi.run_kpi_etl(conn, DAY)
    assert result.path == "statements" and result.inventory_rows == 0
    assert db.query("SELECT routine_name FROM information_schema.routines WHERE routine_schema = DATABASE()") == []


@BOTH_PATHS
def test_worked_example(conn_id, ops_db, load_rows):
    load_rows(OPS, ROWS)
    result = run(conn_id, DAY)
    assert result.path == {OPS: "procedure", OPS_AS_TIDB: "statements"}[conn_id]
    assert (result.inventory_rows, result.fleet_rows, result.excluded_rows) == (3, 3, 3)
    assert by_warehouse(kpi_rows(ops_db, "inventory_kpi_daily", DAY)) == EXPECTED_INVENTORY
    assert by_warehouse(kpi_rows(ops_db, "fleet_kpi_daily", DAY)) == EXPECTED_FLEET
    exclusions = ops_db.query("SELECT org_id, source_table, reason, row_count, example_id FROM kpi_daily_exclusions ORDER BY 2, 3")
    assert exclusions == [(uid(org), table, reason, n, uid(example)) for org, table, reason, n, example in EXPECTED_EXCLUSIONS]
    with connected(conn_id) as db:
        assert kpi.quality_problems(db, DAY) == []
        assert kpi.check_ops_data(db, DAY) == {
            "active_warehouses": 3, "orders": 0, "inventory_tx": 6, "shipments": 6, "scan_event": 8,
        }
        assert kpi.earliest_data_date(db) == dt.date(2025, 3, 8)


@BOTH_PATHS
def test_wib_day_boundaries(conn_id, ops_db, load_rows):
    assert kpi.day_bounds(DAY) == (dt.datetime(2025, 3, 9, 17), dt.datetime(2025, 3, 10, 17))
    load_rows(OPS, ROWS)
    for day in (DAY - ONE_DAY, DAY, DAY + ONE_DAY):
        run(conn_id, day)
    w1 = {r["data_date"]: r for r in kpi_rows(ops_db, "inventory_kpi_daily") if r["warehouse_id"] == uid("W1")}
    moves = {day: (r["opening_qty"], r["inbound_qty"], r["outbound_qty"], r["closing_qty"], r["tx_count"]) for day, r in w1.items()}
    assert moves == {
        DAY - ONE_DAY: (100, 10, 0, 110, 1),  # t2, 10:00 UTC = 17:00 WIB on the 9th
        DAY: (110, 20, 40, 85, 4),  # t3 at 17:00:00 UTC the day before, t5 at 16:59:59
        DAY + ONE_DAY: (85, 50, 0, 135, 1),  # t7 at 17:00:00 UTC on the 10th
    }
    # W4 opens at 2025-03-10 12:00 UTC: no row the day before
    assert len(kpi_rows(ops_db, "fleet_kpi_daily", DAY - ONE_DAY)) == 2


@BOTH_PATHS
def test_rerun_replaces_the_day_and_only_the_day(conn_id, ops_db, load_rows):
    load_rows(OPS, ROWS)
    run(conn_id, DAY)
    first = kpi_rows(ops_db, "inventory_kpi_daily", DAY) + kpi_rows(ops_db, "fleet_kpi_daily", DAY)
    stray = ("INSERT INTO inventory_kpi_daily VALUES (%s, %s, %s, 1, 0, 0, 0, 1, 1, 0, NULL, 0, 0, NULL, UTC_TIMESTAMP())")
    ops_db.query(stray, (DAY, uid("W3"), uid("A")))  # a row the day should not have
    ops_db.query(stray, (DAY + 5 * ONE_DAY, uid("W1"), uid("A")))  # another day's row
    run(conn_id, DAY)
    assert kpi_rows(ops_db, "inventory_kpi_daily", DAY) + kpi_rows(ops_db, "fleet_kpi_daily", DAY) == first
    assert len(kpi_rows(ops_db, "inventory_kpi_daily", DAY + 5 * ONE_DAY)) == 1
    # a corrected movement shows up on the rerun
    ops_db.query("DELETE FROM inventory_tx WHERE id = %s", (uid("t6"),))
    run(conn_id, DAY)
    w1 = by_warehouse(kpi_rows(ops_db, "inventory_kpi_daily", DAY))["W1"]
    assert (w1["adjustment_qty"], w1["closing_qty"], w1["tx_count"]) == (0, 90, 3)


@BOTH_PATHS
def test_empty_day_gives_one_row_of_zeros_per_active_warehouse(conn_id, ops_db, load_rows):
    load_rows(OPS, {t: ROWS[t] for t in ("organizations", "warehouses", "vehicles")})
    assert run(conn_id, DAY).excluded_rows == 0
    inventory = by_warehouse(kpi_rows(ops_db, "inventory_kpi_daily", DAY))
    fleet = by_warehouse(kpi_rows(ops_db, "fleet_kpi_daily", DAY))
    assert inventory == {w: {**EXPECTED_INVENTORY["W2"], "org": org} for w, org in (("W1", "A"), ("W2", "A"), ("W4", "B"))}
    assert fleet["W1"]["shipments_dispatched"] == 0 and fleet["W1"]["vehicle_utilization_pct"] == 0
    assert fleet["W2"] == EXPECTED_FLEET["W2"] and fleet["W4"] == EXPECTED_FLEET["W4"]
    with connected(conn_id) as db:
        assert set(kpi.check_ops_data(db, DAY).values()) == {0, 3}
        assert kpi.quality_problems(db, DAY) == []


def test_both_paths_give_identical_rows_on_demo_data(ops_db, demo_data, load_rows):
    load_rows(OPS, demo_data.generate(end=dt.date(2025, 3, 14), days=14).ops)
    days = [dt.date(2025, 3, 1) + n * ONE_DAY for n in range(14)]

    def compute(conn_id: str) -> dict:
        with connected(conn_id) as db:
            for day in days:
                kpi.run_kpi_etl(db, day)
            assert all(kpi.quality_problems(db, day) == [] for day in days)
        return {t: kpi_rows(ops_db, t) for t in (*kpi.KPI_TABLES, kpi.EXCLUSIONS_TABLE)}

    by_procedure = compute(OPS)
    by_statements = compute(OPS_AS_TIDB)
    assert by_procedure == by_statements
    # the demo opens a warehouse half-way and closes another later: 5, then 6, then 5 a day
    per_day = [sum(r["data_date"] == day for r in by_procedure["inventory_kpi_daily"]) for day in days]
    assert per_day == [5] * 7 + [6] * 5 + [5] * 2  # MKS-01 closes at noon on day 11
    assert sum(r["tx_count"] for r in by_procedure["inventory_kpi_daily"]) > 500
    assert {r["reason"] for r in by_procedure["kpi_daily_exclusions"]} == {
        "warehouse_id is missing", "negative quantity on an inbound or outbound movement",
        "delivered without dispatched_at: left out of avg_delivery_hours",
    }


@BOTH_PATHS
def test_a_failing_run_writes_nothing(conn_id, ops_db, load_rows):
    load_rows(OPS, ROWS)
    run(conn_id, DAY)
    before = kpi_rows(ops_db, "inventory_kpi_daily", DAY)
    ops_db.query("DELETE FROM inventory_tx WHERE id = %s", (uid("t6"),))  # would change W1's row
    ops_db.query("RENAME TABLE fleet_kpi_daily TO fleet_kpi_daily_away")  # the last statement fails
    try:
        with pytest.raises(kpi.KpiError, match="nothing was written"):
            run(conn_id, DAY)
    finally:
        ops_db.query("RENAME TABLE fleet_kpi_daily_away TO fleet_kpi_daily")
    assert kpi_rows(ops_db, "inventory_kpi_daily", DAY) == before


def test_outdated_procedure_is_refused(ops_db, tmp_path, monkeypatch):
    edited = tmp_path / "kpi"
    shutil.copytree(kpi.KPI_DIR, edited)
    fleet = edited / "030_fleet_kpi_daily.sql"
    fleet.write_text(fleet.read_text().replace("/ e.handled, 2)", "/ e.handled, 3)"))
    monkeypatch.setattr(kpi, "KPI_DIR", edited)
    with pytest.raises(kpi.KpiError, match="older than include/sql/kpi; run the db_migrate DAG"):
        run(OPS, DAY)
    assert run(OPS_AS_TIDB, DAY).path == "statements"  # TiDB has no procedure to be out of date


def test_quality_problems_are_named_in_plain_words(ops_db, load_rows):
    load_rows(OPS, ROWS)
    run(OPS, DAY)
    ops_db.query("UPDATE fleet_kpi_daily SET on_time_delivery_pct = 120, shipments_failed = -1 WHERE warehouse_id = %s", (uid("W1"),))
    ops_db.query("UPDATE inventory_kpi_daily SET closing_qty = 86 WHERE warehouse_id = %s", (uid("W1"),))
    ops_db.query("DELETE FROM inventory_kpi_daily WHERE warehouse_id = %s", (uid("W2"),))
    with connected(OPS) as db:
        problems = kpi.quality_problems(db, DAY)
    w1 = f"warehouse JKT-01 ({uid('W1')})"
    assert problems == [
        f"inventory_kpi_daily has no row for active warehouse SBY-01 ({uid('W2')}) on {DAY}",
        f"inventory_kpi_daily {DAY} {w1}: closing_qty 86.000 is not opening + inbound - outbound + adjustment = 85.000",
        f"fleet_kpi_daily {DAY} {w1}: shipments_failed is negative (-1)",
        f"fleet_kpi_daily {DAY} {w1}: on_time_delivery_pct is 120.00%, outside 0..100",
    ]
    ops_db.query("DELETE FROM inventory_kpi_daily")
    with connected(OPS) as db:
        assert kpi.quality_problems(db, DAY)[0].startswith(
            f"inventory_kpi_daily has no rows for {DAY}, expected one for each of 3 active warehouse(s)"
        )


def test_rollback_deletes_one_day(ops_db, load_rows):
    load_rows(OPS, ROWS)
    run(OPS, DAY)
    run(OPS, DAY + ONE_DAY)
    with connected(OPS) as db:
        assert kpi.delete_kpi_day(db, DAY) == {"inventory_kpi_daily": 3, "fleet_kpi_daily": 3}
    assert kpi_rows(ops_db, "inventory_kpi_daily", DAY) == []
    assert len(kpi_rows(ops_db, "fleet_kpi_daily", DAY + ONE_DAY)) == 3
