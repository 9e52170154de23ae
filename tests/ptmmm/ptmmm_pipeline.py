"""Helpers and fixtures for the PTMMM DAG tests: the DAG's own connection ids (tidb_ops,
supabase_ptmmm) pointed at fresh databases, the worked example loaded, the Sheets stand-in,
and comparisons of the KPI rows on both sides."""

import datetime as dt
import uuid

import pendulum
import pytest
from ptmmm_example import DAY, ROWS, uid
from ptmmm_fixtures import AS_MARIADB, AS_TIDB, OPS, kpi_rows

from datasync.ptmmm import kpi
from devtools.ptmmm.sheets_standin import SheetsStandIn

PATHS = {"procedure": AS_MARIADB, "statements": AS_TIDB}  # how tidb_ops is bound
SPREADSHEET = "kpi-sheet-1"
ONE_DAY = dt.timedelta(days=1)


def logical_for(day: dt.date) -> pendulum.DateTime:
    """The scheduled run that computes ``day``: 23:00 WIB on the next day."""
    nxt = day + ONE_DAY
    return pendulum.datetime(nxt.year, nxt.month, nxt.day, 23, tz="Asia/Jakarta")


@pytest.fixture
def pipeline(request, ops_db, supabase_db, load_rows, airflow_db, monkeypatch):
    """(ops_db, supabase_db) with the worked example loaded and the DAG's connections bound to
    them; ``tidb_ops`` is the MariaDB as itself (procedure) or, parametrized, as TiDB."""
    path = getattr(request, "param", "procedure")
    monkeypatch.setenv("AIRFLOW_CONN_TIDB_OPS", f"{ops_db.uri}?{PATHS[path]}")
    monkeypatch.setenv("AIRFLOW_CONN_SUPABASE_PTMMM", supabase_db.uri)
    monkeypatch.delenv("AIRFLOW_CONN_GOOGLE_SHEETS", raising=False)
    monkeypatch.delenv("AIRFLOW_VAR_PTMMM_KPI_SPREADSHEET_ID", raising=False)
    load_rows(OPS, ROWS)
    return ops_db, supabase_db


@pytest.fixture
def sheets(monkeypatch):
    """The Sheets stand-in as connection google_sheets, with an empty spreadsheet SPREADSHEET."""
    with SheetsStandIn() as standin:
        standin.add_spreadsheet(SPREADSHEET)
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_SHEETS", standin.connection_json())
        yield standin


def run(dag, conf=None, logical_date=None, only: str | None = None):
    """dag.test() without retries; ``only``: run just that task, mark the others successful
    (what clearing one task instance in the UI does)."""
    saved = {t.task_id: t.retries for t in dag.tasks}
    for t in dag.tasks:
        t.retries = 0
    try:
        return dag.test(run_conf=conf, logical_date=logical_date,
                        mark_success_pattern=f"(?!{only}$).*" if only else None)
    finally:
        for t in dag.tasks:
            t.retries = saved[t.task_id]


def _plain(row: dict) -> dict:
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in row.items() if k not in ("updated_at", "synced_at")}


def side_rows(db, table: str, day: dt.date | None = None) -> list[dict]:
    """KPI rows without updated_at / synced_at, ids as text, sorted: comparable across sides."""
    rows = [_plain(r) for r in kpi_rows(db, table, day)]
    return sorted(rows, key=lambda r: (str(r["data_date"]), r["warehouse_id"]))


def assert_sides_equal(ops_db, supabase_db, day: dt.date) -> None:
    for table in kpi.KPI_TABLES:
        tidb = side_rows(ops_db, table, day)
        assert tidb, f"{table} has no rows for {day}"
        assert side_rows(supabase_db, table, day) == tidb, table
    # updated_at (when TiDB computed the row) travels too
    ours = sorted((str(w), u) for w, u in ops_db.query("SELECT warehouse_id, updated_at FROM fleet_kpi_daily WHERE data_date = %s", (day,)))
    theirs = sorted((str(w), u.replace(tzinfo=None)) for w, u in supabase_db.query(
        "SELECT warehouse_id, updated_at AT TIME ZONE 'UTC' FROM fleet_kpi_daily WHERE data_date = %s", (day,)))
    assert theirs == ours


def by_alias(rows: list[dict]) -> dict[str, dict]:
    """Rows keyed by warehouse alias (W1 ...) with org as its alias, like ptmmm_example's EXPECTED_*."""
    aliases = {uid(a): a for a in ("W1", "W2", "W3", "W4")}
    orgs = {uid(a): a for a in ("A", "B")}
    out = {}
    for row in rows:
        row = dict(row)
        row.pop("data_date")
        row["org"] = orgs[row.pop("org_id")]
        out[aliases[row.pop("warehouse_id")]] = row
    return out


def sync_log(db, like: str) -> list[tuple]:
    return db.query(
        "SELECT sync_name, status, rows_read, rows_inserted, rows_updated, rows_unchanged, rows_deleted, error "
        "FROM sync_log WHERE sync_name LIKE %s ORDER BY id", (like,))


__all__ = ["DAY", "ONE_DAY", "SPREADSHEET", "assert_sides_equal", "by_alias", "logical_for", "pipeline", "run", "sheets",
           "side_rows", "sync_log"]
