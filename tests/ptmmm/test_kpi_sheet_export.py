"""The KPI export to Google Sheets through the real GSheetsHook, against the local Sheets stand-in."""

import pytest
from airflow.sdk.exceptions import AirflowSkipException
from ptmmm_example import uid
from ptmmm_pipeline import DAY, ONE_DAY, SPREADSHEET, pipeline, run, sheets  # noqa: F401  (fixtures)

from datasync.db import connected
from datasync.ptmmm import daily, kpi
from datasync.ptmmm.mirror import OPS_CONN
from harness import load_dag, task_states


def export(day, **params) -> dict:
    """The export task's function, as a cleared task instance would run it."""
    return daily.export_sheet({"params": {"data_date": day.isoformat(), "spreadsheet_id": SPREADSHEET, **params}})


def days_in(tab: list[list]) -> list[str]:
    return [row[0] for row in tab[1:]]


def test_the_dag_exports_the_day_and_a_rerun_replaces_it(pipeline, sheets, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_PTMMM_KPI_SPREADSHEET_ID", SPREADSHEET)  # configured by Variable
    result = run(load_dag("ptmmm_daily_kpi_etl"), conf={"data_date": DAY.isoformat()})
    assert task_states(result)["export_to_sheet"] == "success", task_states(result)
    inventory = sheets.values(SPREADSHEET, "inventory_kpi_daily")
    header = inventory[0]
    assert header[:4] == ["data_date", "org_id", "warehouse_id", "warehouse_code"] and header[-1] == "updated_at"
    rows = [dict(zip(header, r)) for r in inventory[1:]]
    assert [(r["data_date"], r["warehouse_code"]) for r in rows] == [(DAY.isoformat(), c) for c in ("JKT-01", "MDN-01", "SBY-01")]
    w1 = rows[0]
    assert (w1["warehouse_id"], w1["closing_qty"], w1["turnover_ratio"], w1["scan_confirmed_pct"]) == (uid("W1"), 85, 0.4103, 50)
    assert rows[1]["turnover_ratio"] == ""  # NULL (undefined) stays an empty cell, not 0
    assert days_in(sheets.values(SPREADSHEET, "fleet_kpi_daily")) == [DAY.isoformat()] * 3

    # another day, then the first day again after a correction: each day once, in order
    with connected(OPS_CONN) as db:
        kpi.run_kpi_etl(db, DAY + ONE_DAY)
    export(DAY + ONE_DAY)
    pipeline[0].query("DELETE FROM inventory_tx WHERE id = %s", (uid("t6"),))  # a late correction
    with connected(OPS_CONN) as db:
        kpi.run_kpi_etl(db, DAY)
    assert export(DAY)["inventory_kpi_daily"] == {"rows_written": 3, "rows_replaced": 3, "rows_kept": 3}
    tab = sheets.values(SPREADSHEET, "inventory_kpi_daily")
    assert days_in(tab) == [DAY.isoformat()] * 3 + [(DAY + ONE_DAY).isoformat()] * 3
    assert dict(zip(header, tab[1]))["closing_qty"] == 90  # the corrected value, and only once


def test_export_keeps_other_rows_and_blanks_what_falls_off(pipeline, sheets):
    with connected(OPS_CONN) as db:
        kpi.run_kpi_etl(db, DAY)
        header = daily.sheet_rows(db, "inventory_kpi_daily", DAY)[0]
    older = ["2025-03-01", "org", "wh", "OLD-01"] + [1] * (len(header) - 5) + ["2025-03-01 17:00:00"]
    stale = [DAY.isoformat(), "org", "gone", "GONE-01"] + [2] * (len(header) - 5) + ["x"]
    sheets.add_spreadsheet(SPREADSHEET, {"inventory_kpi_daily": [header, older] + [stale] * 5, "Notes": [["keep me"]]})
    export(DAY)
    tab = sheets.values(SPREADSHEET, "inventory_kpi_daily")
    assert days_in(tab) == ["2025-03-01"] + [DAY.isoformat()] * 3  # 5 stale rows of the day replaced by 3
    assert tab[1] == older
    assert sheets.values(SPREADSHEET, "Notes") == [["keep me"]]


def test_export_skips_when_unconfigured_and_refuses_a_changed_header(pipeline, sheets, monkeypatch):
    with pytest.raises(AirflowSkipException, match="no spreadsheet id: set the DAG param spreadsheet_id or the Airflow "
                                                   "Variable 'ptmmm_kpi_spreadsheet_id'"):
        export(DAY, spreadsheet_id=None)
    monkeypatch.delenv("AIRFLOW_CONN_GOOGLE_SHEETS")
    with pytest.raises(AirflowSkipException, match="no Airflow connection 'google_sheets'"):
        export(DAY)
    assert sheets.requests == []

    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_SHEETS", sheets.connection_json())
    sheets.add_spreadsheet(SPREADSHEET, {"inventory_kpi_daily": [["tanggal", "gudang"], ["2025-03-01", "X"]]})
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match=r"tab 'inventory_kpi_daily': the header row is \['tanggal', 'gudang'\]"):
        export(DAY)
    assert sheets.values(SPREADSHEET, "inventory_kpi_daily") == [["tanggal", "gudang"], ["2025-03-01", "X"]]
