"""ptmmm_kpi_rollback: removes exactly one day's KPI rows, on the sides chosen, and says what it removed."""

import json

import pytest
from ptmmm_pipeline import DAY, ONE_DAY, pipeline, side_rows  # noqa: F401  (fixtures)

from datasync.db import connected
from datasync.ptmmm import kpi
from datasync.ptmmm.mirror import OPS_CONN, mirror_day
from harness import load_dag, run_dag, task_states


@pytest.fixture
def two_days(pipeline):
    """The example computed and mirrored for the day and the day after."""
    with connected(OPS_CONN) as db:
        for day in (DAY, DAY + ONE_DAY):
            kpi.run_kpi_etl(db, day)
            mirror_day(day)
    return pipeline


def counts(db, table: str) -> dict[str, int]:
    return {str(d): n for d, n in db.query(f"SELECT data_date, COUNT(*) FROM {table} GROUP BY data_date ORDER BY 1")}


def test_rollback_removes_exactly_one_day_on_both_sides(two_days):
    ops_db, supabase_db = two_days
    dag = load_dag("ptmmm_kpi_rollback")
    result = run_dag(dag, conf={"data_date": DAY.isoformat(), "sides": ["tidb", "supabase"]})
    assert result.state == "success", task_states(result)
    for db in (ops_db, supabase_db):
        for table in kpi.KPI_TABLES:
            assert counts(db, table) == {str(DAY + ONE_DAY): 3}, table
    assert counts(ops_db, "kpi_daily_exclusions") == {}  # the example's exclusions are all on DAY
    # what was deleted is on record beside the data
    (name, status, deleted, details), = supabase_db.query(
        "SELECT sync_name, status, rows_deleted, details FROM sync_log WHERE sync_name LIKE 'ptmmm_kpi_rollback.%%fleet%%'")
    assert (name, status, deleted) == ("ptmmm_kpi_rollback.supabase.fleet_kpi_daily", "success", 3)
    assert details["data_date"] == DAY.isoformat() and len(details["warehouses"]) == 3
    tidb_log = ops_db.query("SELECT sync_name, rows_deleted, details FROM sync_log WHERE mode = 'rollback' ORDER BY id")
    assert [(n, d) for n, d, _ in tidb_log] == [
        ("ptmmm_kpi_rollback.tidb.inventory_kpi_daily", 3), ("ptmmm_kpi_rollback.tidb.fleet_kpi_daily", 3),
        ("ptmmm_kpi_rollback.tidb.kpi_daily_exclusions", 3),
    ]
    assert json.loads(tidb_log[0][2])["data_date"] == DAY.isoformat()


def test_rollback_of_one_side_leaves_the_other(two_days):
    ops_db, supabase_db = two_days
    result = run_dag(load_dag("ptmmm_kpi_rollback"), conf={"data_date": (DAY + ONE_DAY).isoformat(), "sides": ["supabase"]})
    states = task_states(result)
    assert states == {"delete_tidb": "skipped", "delete_supabase": "success"}
    assert counts(supabase_db, "inventory_kpi_daily") == {str(DAY): 3}
    assert counts(ops_db, "inventory_kpi_daily") == {str(DAY): 3, str(DAY + ONE_DAY): 3}
    # a bad date is refused before anything is deleted
    result = run_dag(load_dag("ptmmm_kpi_rollback"), conf={"data_date": "2099-01-01", "sides": ["tidb"]})
    assert task_states(result)["delete_tidb"] == "failed"
    assert counts(ops_db, "inventory_kpi_daily") == {str(DAY): 3, str(DAY + ONE_DAY): 3}
