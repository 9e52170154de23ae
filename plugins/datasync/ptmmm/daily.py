"""The steps of the ``ptmmm_daily_kpi_etl`` DAG, one function per task (the DAG file only wires them).

Every step works out the data date itself from the run's params and logical date
(:func:`data_date_for`) instead of pulling it from another task, so clearing any single task and
running it again (on-call's usual repair) works on its own and gives the same result.

Failures that a retry cannot fix (a bad ``data_date``, an empty day, quality problems) raise
:class:`~airflow.sdk.exceptions.AirflowFailException`: the task fails at once instead of retrying.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import pendulum

from datasync.db import connected
from datasync.ptmmm import kpi
from datasync.ptmmm.mirror import OPS_CONN, mirror_day

log = logging.getLogger(__name__)

DAG_ID = "ptmmm_daily_kpi_etl"
ROLLBACK_DAG_ID = "ptmmm_kpi_rollback"
ASSET_NAME = "ptmmm/kpi_daily"
# The DAG's start_date: Airflow creates no tasks for logical dates before it, so it bounds backfills.
BACKFILL_FROM = pendulum.datetime(2024, 1, 1, tz="Asia/Jakarta")
SHEET_TABS = {"inventory_kpi_daily": "inventory_kpi_daily", "fleet_kpi_daily": "fleet_kpi_daily"}

# Exclusions (operational rows the KPIs left out, see kpi_daily_exclusions) fail the run when
# they are more than this share of the day's movements + shipments *and* at least MIN of them:
# a few dirty Sheet imports should not stop the dashboards, a broken import of a whole
# warehouse's day should.
MAX_EXCLUDED_PCT = 5.0
MIN_EXCLUDED_TO_FAIL = 10


class DayRefused(RuntimeError):
    """The day cannot (or should not) be computed as asked; the message says what to do."""


def _fail(exc: Exception):
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(str(exc))


# --- the data date ---------------------------------------------------------------------------


def data_date_for(params: Mapping[str, Any], logical_date=None, run_after=None) -> dt.date:
    """``params.data_date`` when given, else the WIB day before the run's logical date.

    The schedule fires at 23:00 WIB, so the run of 2025-03-11 23:00 WIB computes 2025-03-10,
    as the cron job's "yesterday" did. Runs without a logical date use their ``run_after``.
    """
    value = params.get("data_date")
    if value not in (None, ""):
        return kpi.validate_data_date(value)
    when = logical_date or run_after
    if when is None:
        raise kpi.InvalidDataDate("the run has neither a data_date param nor a logical date to derive it from")
    return kpi.previous_wib_day(when)


def context_data_date(context: Mapping[str, Any]) -> dt.date:
    dag_run = context.get("dag_run")
    try:
        return data_date_for(context["params"], context.get("logical_date"), getattr(dag_run, "run_after", None))
    except kpi.InvalidDataDate as exc:
        raise _fail(exc) from None


def validate(context: Mapping[str, Any], conn_id: str = OPS_CONN) -> str:
    """First task: a usable date, not in the future, not before the first operational data.
    Reads only; nothing is written before this passes."""
    day = context_data_date(context)
    with connected(conn_id) as db:
        earliest = kpi.earliest_data_date(db)
    if earliest is None:
        raise _fail(DayRefused(f"{conn_id} has no operational data at all (inventory_tx and shipments are empty); "
                               "load the ops data before computing KPIs"))
    try:
        kpi.validate_data_date(day, earliest=earliest)
    except kpi.InvalidDataDate as exc:
        raise _fail(exc) from None
    start, end = kpi.day_bounds(day)
    log.info("data_date %s (WIB) = UTC [%s, %s); operational data starts %s", day, start, end, earliest)
    return day.isoformat()


# --- the steps -------------------------------------------------------------------------------


def check_ops(context: Mapping[str, Any], conn_id: str = OPS_CONN) -> dict[str, int]:
    """Is there operational data for the day? An empty day fails (before any write) unless the
    param ``allow_empty_day`` says the day really had no activity."""
    day = context_data_date(context)
    with connected(conn_id) as db:
        counts = kpi.check_ops_data(db, day)
    activity = {k: v for k, v in counts.items() if k != "active_warehouses"}
    described = ", ".join(f"{v} {k}" for k, v in activity.items())
    if not any(activity.values()):
        message = (
            f"{conn_id} has no operational data for {day} (WIB): {described}, with {counts['active_warehouses']} "
            "active warehouse(s). Was the day's import missed? Check inventory_tx, shipments and scan_event for that "
            "day and rerun. If the day really had no activity (e.g. a holiday), trigger with allow_empty_day=true "
            "to record KPI rows of zeros."
        )
        if not context["params"].get("allow_empty_day"):
            raise _fail(DayRefused(message))
        log.warning("%s -- continuing: allow_empty_day is set", message)
    else:
        log.info("operational data for %s (WIB): %s in %s active warehouse(s)", day, described, counts["active_warehouses"])
    return counts


def compute(context: Mapping[str, Any], conn_id: str = OPS_CONN) -> dict:
    """The KPI ETL: CALL sp_run_daily_kpi_etl, or the statements in one transaction on TiDB."""
    day = context_data_date(context)
    with connected(conn_id) as db:
        try:
            run = kpi.run_kpi_etl(db, day)
        except kpi.KpiError as exc:
            if "db_migrate" in str(exc):  # an outdated procedure does not fix itself
                raise _fail(exc) from None
            raise
    log.info(run.summary())
    return run.as_dict()


def check_quality(context: Mapping[str, Any], conn_id: str = OPS_CONN) -> dict:
    """The day's KPI rows must pass :func:`kpi.quality_problems`; exclusions are listed and fail
    the run past the threshold (param ``max_excluded_pct``). Runs before the mirror, so wrong
    numbers never reach the dashboards."""
    day = context_data_date(context)
    max_pct = float(context["params"].get("max_excluded_pct", MAX_EXCLUDED_PCT))
    with connected(conn_id) as db:
        problems = kpi.quality_problems(db, day)
        exclusions = kpi.excluded_rows(db, day)
        counts = kpi.check_ops_data(db, day)
    for row in exclusions:
        log.warning("left out of the KPIs of %s: %s row(s) of %s, org %s: %s (e.g. id %s)", day, row["row_count"],
                    row["source_table"], row["org_id"], row["reason"], row["example_id"])
    excluded = sum(int(r["row_count"]) for r in exclusions)
    total = counts["inventory_tx"] + counts["shipments"]
    pct = 100.0 * excluded / total if total else 0.0
    if excluded >= MIN_EXCLUDED_TO_FAIL and pct > max_pct:
        problems.append(
            f"{excluded} of the day's {total} movements and shipments ({pct:.1f}%) were left out of the KPIs, "
            f"more than max_excluded_pct={max_pct:g}%: see kpi_daily_exclusions for {day} (reasons above)"
        )
    if problems:
        shown = "\n  - ".join(problems[:20])
        more = f"\n  (+{len(problems) - 20} more)" if len(problems) > 20 else ""
        raise _fail(DayRefused(
            f"the KPIs of {day} failed {len(problems)} quality check(s); they stay in TiDB for investigation and "
            f"were NOT mirrored:\n  - {shown}{more}"
        ))
    log.info("quality checks of %s passed (%s operational row(s) left out, %.1f%%)", day, excluded, pct)
    return {"data_date": day.isoformat(), "excluded_rows": excluded, "excluded_pct": round(pct, 2)}


def mirror(context: Mapping[str, Any]) -> dict:
    """The day's KPI rows -> Supabase, exactly (see :mod:`datasync.ptmmm.mirror`); publishes the asset."""
    day = context_data_date(context)
    result = mirror_day(day, run_id=context.get("run_id"))
    events = context.get("outlet_events")
    if events is not None:
        from airflow.sdk import Asset

        events[Asset(ASSET_NAME)].extra = {"data_date": day.isoformat()}
    return result.as_dict()


def export_sheet(context: Mapping[str, Any], conn_id: str = OPS_CONN) -> dict:
    """Replace the day's rows in the KPI Google Sheet; skips when no sheet is configured."""
    from airflow.sdk.exceptions import AirflowSkipException

    from datasync.ptmmm import sheets

    day = context_data_date(context)
    try:
        target = sheets.sheet_target(context["params"].get("spreadsheet_id"), sheets.KPI_SPREADSHEET_VARIABLE)
    except sheets.SheetsNotConfigured as exc:
        raise AirflowSkipException(f"Google Sheet export skipped: {exc}") from None
    with connected(conn_id) as db:
        tables = {t: sheet_rows(db, t, day) for t in kpi.KPI_TABLES}
    hook = target.hook()
    out = {}
    for table, (header, rows) in tables.items():
        try:
            out[table] = sheets.replace_day(target, SHEET_TABS[table], header, day, rows, hook=hook)
        except sheets.SheetsError as exc:
            if "header row" in str(exc):  # someone edited the tab: a retry will not help
                raise _fail(exc) from None
            raise
    return out


def sheet_rows(db, table: str, day: dt.date) -> tuple[list[str], list[dict]]:
    """The day's KPI rows with the warehouse code beside its id (people read codes)."""
    names, rows = db.fetchdicts(
        f"SELECT k.*, w.code AS warehouse_code FROM {table} k LEFT JOIN warehouses w ON w.id = k.warehouse_id "
        "WHERE k.data_date = %s ORDER BY w.code, k.warehouse_id",
        (day,),
    )
    kpi_columns = [n for n in names if n not in ("data_date", "warehouse_id", "org_id", "warehouse_code", "updated_at")]
    header = ["data_date", "org_id", "warehouse_id", "warehouse_code", *kpi_columns, "updated_at"]
    return header, rows
