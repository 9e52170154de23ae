"""One KPI template, two renderings; data dates. No database needed."""

import datetime as dt
import re

import pytest

from datasync.ptmmm import kpi

DAY = dt.date(2025, 3, 10)
START, END = dt.datetime(2025, 3, 9, 17), dt.datetime(2025, 3, 10, 17)


@pytest.fixture
def template(tmp_path, monkeypatch):
    monkeypatch.setattr(kpi, "KPI_DIR", tmp_path)

    def write(text: str) -> None:
        (tmp_path / "010_t.sql").write_text(text)

    return write


def test_placeholders_become_params_or_procedure_variables(template):
    template(
        "-- replaces :data_date; 100% idempotent\n"
        "DELETE FROM t WHERE d = :data_date AND note NOT LIKE '%:day_end';\n"
        "INSERT INTO t SELECT :data_date, x FROM s WHERE at >= :day_start AND at < :day_end /* :data_date */;"
    )
    (delete, delete_params), (insert, insert_params) = kpi.kpi_statements("2025-03-10")
    assert delete.endswith("DELETE FROM t WHERE d = %s AND note NOT LIKE '%%:day_end';")
    assert "100%% idempotent" in delete and delete_params == (DAY,)
    assert insert == "INSERT INTO t SELECT %s, x FROM s WHERE at >= %s AND at < %s /* :data_date */;"
    assert insert_params == (DAY, START, END)

    body = kpi.procedure_sql()
    assert "DELETE FROM t WHERE d = p_data_date AND note NOT LIKE '%:day_end';" in body
    assert "INSERT INTO t SELECT p_data_date, x FROM s WHERE at >= v_day_start AND at < v_day_end /* :data_date */;" in body
    assert body.startswith("DROP PROCEDURE IF EXISTS sp_run_daily_kpi_etl;\n")


def test_unknown_placeholder_is_named(template):
    template("DELETE FROM t WHERE d = :data_day;")
    with pytest.raises(kpi.KpiError, match=r"010_t\.sql: unknown placeholder :data_day"):
        kpi.kpi_statements(DAY)


def test_real_statements_have_one_param_per_placeholder():
    statements = kpi.kpi_statements(DAY)
    assert [re.sub(r"--.*\n", "", sql).split()[0] for sql, _ in statements] == ["DELETE", "INSERT"] * 3
    for sql, params in statements:
        assert len(re.findall(r"(?<!%)%s", sql)) == len(params)
        assert set(params) <= {DAY, START, END}
    assert ":day_" not in kpi.procedure_sql().split("BEGIN", 1)[1].replace("':day_", "")


@pytest.mark.parametrize(
    "value, message",
    [
        ("2025-02-30", "not a real calendar day"),
        ("10/03/2025", "calendar day written YYYY-MM-DD, got '10/03/2025'"),
        ("", "YYYY-MM-DD"),
        (None, "YYYY-MM-DD, got None"),
        (20250310, "YYYY-MM-DD"),
        (dt.datetime(2025, 3, 10, 1), "not a timestamp"),
        ("2025-03-12", r"2025-03-12 is in the future: today in WIB \(Asia/Jakarta\) is 2025-03-11"),
        ("2024-12-31", r"before the first operational data \(2025-01-01\)"),
    ],
)
def test_bad_data_dates_are_refused_clearly(value, message):
    with pytest.raises(kpi.InvalidDataDate, match=message):
        kpi.validate_data_date(value, today=dt.date(2025, 3, 11), earliest=dt.date(2025, 1, 1))


def test_good_data_dates():
    today = dt.date(2025, 3, 11)
    assert kpi.validate_data_date(" 2025-03-10 ", today=today) == DAY
    assert kpi.validate_data_date(DAY, today=today, earliest=DAY) == DAY
    assert kpi.validate_data_date(today, today=today) == today  # partial until the day ends
    # the default data date is the WIB day before the run: 16:59 UTC is still the 10th in WIB
    assert kpi.previous_wib_day(dt.datetime(2025, 3, 10, 16, 59, tzinfo=dt.timezone.utc)) == dt.date(2025, 3, 9)
    assert kpi.previous_wib_day(dt.datetime(2025, 3, 10, 17, 0, tzinfo=dt.timezone.utc)) == DAY
