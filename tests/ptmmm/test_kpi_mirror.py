"""The day mirror TiDB -> Supabase on its own: exact per day, all or nothing, refused rows named."""

import pytest
from ptmmm_example import uid
from ptmmm_pipeline import DAY, ONE_DAY, assert_sides_equal, pipeline, side_rows, sync_log  # noqa: F401  (fixtures)

from datasync.db import connected
from datasync.ptmmm import kpi
from datasync.ptmmm.mirror import OPS_CONN, MirrorRejected, mirror_day


def compute(*days):
    with connected(OPS_CONN) as db:
        for day in days:
            kpi.run_kpi_etl(db, day)


def test_mirror_is_per_day_and_a_second_mirror_changes_nothing(pipeline):
    ops_db, supabase_db = pipeline
    compute(DAY, DAY + ONE_DAY)
    mirror_day(DAY + ONE_DAY)
    first = mirror_day(DAY)
    assert first.counts["fleet_kpi_daily"].inserted == 3
    again = mirror_day(DAY)
    assert [(c.inserted, c.updated, c.unchanged, c.deleted) for c in again.counts.values()] == [(0, 0, 3, 0)] * 2
    for day in (DAY, DAY + ONE_DAY):
        assert_sides_equal(ops_db, supabase_db, day)
    # a warehouse that lost its row in TiDB loses it in the mirror, for that day only
    ops_db.query("DELETE FROM fleet_kpi_daily WHERE data_date = %s AND warehouse_id = %s", (DAY, uid("W2")))
    assert mirror_day(DAY).counts["fleet_kpi_daily"].deleted == 1
    assert_sides_equal(ops_db, supabase_db, DAY)
    assert len(side_rows(supabase_db, "fleet_kpi_daily", DAY + ONE_DAY)) == 3


def test_a_row_supabase_refuses_fails_the_day_and_changes_nothing(pipeline):
    ops_db, supabase_db = pipeline
    compute(DAY)
    mirror_day(DAY)
    before = {t: side_rows(supabase_db, t, DAY) for t in kpi.KPI_TABLES}
    ops_db.query("UPDATE inventory_kpi_daily SET tx_count = 9 WHERE warehouse_id = %s", (uid("W1"),))  # would be an update
    ops_db.query("UPDATE fleet_kpi_daily SET delivered_on_time = 7 WHERE warehouse_id = %s", (uid("W1"),))  # > delivered: CHECK
    with pytest.raises(MirrorRejected, match=r"Supabase refused 1 KPI row\(s\) of 2025-03-10: public.fleet_kpi_daily key .*"
                                           r"violates check constraint \"fleet_kpi_daily_check\""):
        mirror_day(DAY, run_id="run-2")
    assert {t: side_rows(supabase_db, t, DAY) for t in kpi.KPI_TABLES} == before  # both tables as they were
    (table, key, reason), = supabase_db.query("SELECT table_name, row_key, reason FROM sync_rejects WHERE run_id = 'run-2'")
    assert table == "public.fleet_kpi_daily" and uid("W1") in key and "fleet_kpi_daily_check" in reason
    assert [r[1] for r in sync_log(supabase_db, "%")][-2:] == ["failed", "failed"]
