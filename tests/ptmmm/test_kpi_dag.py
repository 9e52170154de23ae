"""ptmmm_daily_kpi_etl end to end: the real DAG through dag.test() against real MariaDB (as itself:
CALL sp_run_daily_kpi_etl, and as TiDB: the statements) and Postgres (the Supabase mirror)."""

import datetime as dt

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowFailException
from ptmmm_example import EXPECTED_FLEET, EXPECTED_INVENTORY, uid
from ptmmm_pipeline import (  # noqa: F401  (fixtures are found by name)
    DAY, ONE_DAY, assert_sides_equal, by_alias, logical_for, pipeline, run, side_rows, sync_log,
)

from datasync.ptmmm import daily, kpi
from harness import load_dag, run_dag, task_states

TASKS = ["validate_data_date", "check_ops_data", "run_kpi_etl", "check_kpi_quality", "mirror_to_supabase", "export_to_sheet"]


@pytest.fixture(scope="module")
def dag():
    return load_dag("ptmmm_daily_kpi_etl")


def nothing_written(ops_db, supabase_db) -> bool:
    return all(
        db.query(f"SELECT COUNT(*) FROM {t}") == [(0,)] for db in (ops_db, supabase_db) for t in kpi.KPI_TABLES
    ) and supabase_db.query("SELECT COUNT(*) FROM sync_log") == [(0,)]


def test_schedule_is_2300_wib_and_each_run_computes_the_day_before(dag):
    assert [t.task_id for t in dag.topological_sort()] == TASKS
    assert dag.max_active_runs == 1 and not dag.catchup
    # a backfill enumerates runs like this: one per 23:00 WIB firing, each computing its own day
    from airflow.serialization.serialized_objects import DagSerialization

    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    infos = list(scheduler_dag.iter_dagrun_infos_between(pendulum.datetime(2025, 3, 2), pendulum.datetime(2025, 3, 12)))
    assert {i.logical_date.in_timezone("Asia/Jakarta").strftime("%H:%M") for i in infos} == {"23:00"}
    assert {i.logical_date.hour for i in infos} == {16}  # the cron job's 0 16 * * * UTC
    days = [daily.data_date_for({}, i.logical_date) for i in infos]
    assert days == [dt.date(2025, 3, 1) + n * ONE_DAY for n in range(10)]  # none twice, none skipped
    # the param wins; an empty param falls back to the logical date
    assert daily.data_date_for({"data_date": "2025-03-10"}, logical_for(DAY + 5 * ONE_DAY)) == DAY
    assert daily.data_date_for({"data_date": ""}, logical_for(DAY)) == DAY
    assert daily.data_date_for({}, None, run_after=pendulum.datetime(2025, 3, 10, 17, 30, tz="UTC")) == DAY  # 00:30 WIB on the 11th


@pytest.mark.parametrize("pipeline", ["procedure", "statements"], indirect=True)
def test_scheduled_run_gives_the_worked_example_on_both_sides(dag, pipeline):
    ops_db, supabase_db = pipeline
    result = run_dag(dag, logical_date=logical_for(DAY))  # no params: the day before the run
    states = task_states(result)
    assert result.state == "success", states
    assert states["export_to_sheet"] == "skipped"  # no google_sheets connection here
    assert by_alias(side_rows(ops_db, "inventory_kpi_daily", DAY)) == EXPECTED_INVENTORY
    assert by_alias(side_rows(ops_db, "fleet_kpi_daily", DAY)) == EXPECTED_FLEET
    assert_sides_equal(ops_db, supabase_db, DAY)
    assert by_alias(side_rows(supabase_db, "fleet_kpi_daily", DAY)) == EXPECTED_FLEET
    assert [r[:4] + r[6:] for r in sync_log(supabase_db, "ptmmm_daily_kpi_etl.mirror.%")] == [
        ("ptmmm_daily_kpi_etl.mirror.inventory_kpi_daily", "success", 3, 3, 0, None),
        ("ptmmm_daily_kpi_etl.mirror.fleet_kpi_daily", "success", 3, 3, 0, None),
    ]
    assert _asset_events() and _asset_events()[-1] == {"data_date": DAY.isoformat()}


def _asset_events() -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (session.query(AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.name == daily.ASSET_NAME).order_by(AssetEvent.id).all())
    return [r[0] for r in rows]


@pytest.mark.parametrize("pipeline", ["statements"], indirect=True)
def test_rerunning_a_date_gives_the_same_rows_and_the_mirror_follows_tidb_exactly(dag, pipeline):
    ops_db, supabase_db = pipeline
    conf = {"data_date": DAY.isoformat()}
    assert run(dag, conf=conf).state == "success"
    first = {t: side_rows(ops_db, t, DAY) for t in kpi.KPI_TABLES}
    # the mirror has a row TiDB will not have (W3 closed), and another day that must stay
    stray = "INSERT INTO inventory_kpi_daily VALUES (%s, %s, %s, 1, 0, 0, 0, 1, 1, 0, NULL, 0, 0, NULL, now())"
    supabase_db.query(stray, (DAY, uid("W3"), uid("A")))
    supabase_db.query(stray, (DAY - 3 * ONE_DAY, uid("W1"), uid("A")))
    result = run(dag, conf=conf)
    assert result.state == "success", task_states(result)
    for table in kpi.KPI_TABLES:
        assert side_rows(ops_db, table, DAY) == first[table]
    assert_sides_equal(ops_db, supabase_db, DAY)
    assert len(side_rows(supabase_db, "inventory_kpi_daily", DAY - 3 * ONE_DAY)) == 1
    *_, second_inventory = [r for r in sync_log(supabase_db, "%inventory_kpi_daily") if r[1] == "success"]
    assert second_inventory[2:7] == (3, 0, 3, 0, 1)  # recomputed rows updated, the stray one deleted


def test_bad_data_dates_fail_before_any_write(dag, pipeline):
    ops_db, supabase_db = pipeline
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match="is not a 'date'"):  # refused when the run is triggered
        run(dag, conf={"data_date": "kemarin"})
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=7)).date() + 2 * ONE_DAY
    result = run(dag, conf={"data_date": future.isoformat()})
    states = task_states(result)
    assert result.state == "failed"
    assert states["validate_data_date"] == "failed" and states["check_ops_data"] == "upstream_failed"
    for value, message in ((future.isoformat(), "is in the future: today in WIB"),
                           ("2025-03-07", r"before the first operational data \(2025-03-08\); there is nothing to compute")):
        with pytest.raises(AirflowFailException, match=message):
            daily.validate({"params": {"data_date": value}})
    daily.validate({"params": {"data_date": "2025-03-08"}})  # the first day with data is fine
    # the task checks the text too, for runs that bypass the param schema
    for value in ("2025-02-30", "10/03/2025", 20250310):
        with pytest.raises(AirflowFailException, match="data_date"):
            daily.validate({"params": {"data_date": value}})
    assert nothing_written(ops_db, supabase_db)


def test_mirror_failure_then_rerunning_only_the_mirror_repairs_it(dag, pipeline, monkeypatch):
    ops_db, supabase_db = pipeline
    monkeypatch.setenv("AIRFLOW_CONN_SUPABASE_PTMMM", "postgresql://postgres@127.0.0.1:9/unreachable")
    conf = {"data_date": DAY.isoformat()}
    result = run(dag, conf=conf, logical_date=logical_for(DAY))
    states = task_states(result)
    assert states["run_kpi_etl"] == "success" and states["mirror_to_supabase"] == "failed"
    assert states["export_to_sheet"] == "upstream_failed"
    assert len(side_rows(ops_db, "inventory_kpi_daily", DAY)) == 3 and side_rows(supabase_db, "inventory_kpi_daily") == []

    monkeypatch.setenv("AIRFLOW_CONN_SUPABASE_PTMMM", supabase_db.uri)  # Supabase is back: clear just the mirror task
    computed_at = ops_db.query("SELECT MAX(updated_at) FROM inventory_kpi_daily")
    result = run(dag, conf=conf, logical_date=logical_for(DAY), only="mirror_to_supabase")
    assert task_states(result)["mirror_to_supabase"] == "success", task_states(result)
    assert ops_db.query("SELECT MAX(updated_at) FROM inventory_kpi_daily") == computed_at  # TiDB untouched
    assert_sides_equal(ops_db, supabase_db, DAY)


def test_an_empty_day_fails_plainly_unless_allowed(dag, pipeline):
    ops_db, supabase_db = pipeline
    empty = DAY + 2 * ONE_DAY  # the example has no activity on 2025-03-12
    result = run(dag, conf={"data_date": empty.isoformat()})
    states = task_states(result)
    assert states["check_ops_data"] == "failed" and states["run_kpi_etl"] == "upstream_failed"
    with pytest.raises(AirflowFailException, match=r"no operational data for 2025-03-12 \(WIB\): 0 orders, 0 inventory_tx, "
                                                   r"0 shipments, 0 scan_event, with 3 active warehouse\(s\)\. Was the day's import missed"):
        daily.check_ops({"params": {"data_date": empty.isoformat()}})
    assert nothing_written(ops_db, supabase_db)

    result = run(dag, conf={"data_date": empty.isoformat(), "allow_empty_day": True})
    assert result.state == "success", task_states(result)
    rows = by_alias(side_rows(supabase_db, "inventory_kpi_daily", empty))
    assert sorted(rows) == ["W1", "W2", "W4"] and rows["W1"]["tx_count"] == 0 and rows["W1"]["closing_qty"] == 135


def test_quality_failure_stops_before_the_mirror(dag, pipeline, load_rows):
    ops_db, supabase_db = pipeline
    # a broken import: a dozen movements of the day without a warehouse (15 of 24 rows left out)
    load_rows("ptmmm_ops", {"inventory_tx": [
        {"id": uid(f"bad{n}"), "org_id": uid("A"), "warehouse_id": None, "sku_id": uid("S1"), "tx_type": "inbound",
         "quantity": 1, "occurred_at": dt.datetime(2025, 3, 10, 3, n)} for n in range(12)]})
    result = run(dag, conf={"data_date": DAY.isoformat()})
    states = task_states(result)
    assert states["check_kpi_quality"] == "failed" and states["mirror_to_supabase"] == "upstream_failed"
    with pytest.raises(AirflowFailException, match=r"15 of the day's 24 movements and shipments \(62.5%\) were left out"):
        daily.check_quality({"params": {"data_date": DAY.isoformat(), "max_excluded_pct": 5}})
    assert side_rows(supabase_db, "inventory_kpi_daily") == []
    assert len(side_rows(ops_db, "inventory_kpi_daily", DAY)) == 3  # kept in TiDB for investigation
    # a looser threshold lets the day through
    daily.check_quality({"params": {"data_date": DAY.isoformat(), "max_excluded_pct": 70}})
    # a broken KPI row is a quality failure whatever the threshold
    ops_db.query("UPDATE fleet_kpi_daily SET on_time_delivery_pct = 120 WHERE warehouse_id = %s", (uid("W1"),))
    with pytest.raises(AirflowFailException, match=r"on_time_delivery_pct is 120.00%, outside 0..100"):
        daily.check_quality({"params": {"data_date": DAY.isoformat(), "max_excluded_pct": 70}})
