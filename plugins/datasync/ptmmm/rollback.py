"""Rollback of one day's KPI rows (the seed's "rollback hanya data KPI"), on TiDB and/or Supabase.

Each side is one transaction under the lock its writer takes (the ETL's on TiDB, the mirror's
on Supabase), so a rollback never interleaves with a run computing or mirroring the same day.
What was deleted (per table: how many rows, of which warehouses) goes to the task log and to a
``sync_log`` row (mode ``rollback``) in that database. Only the one day is touched.
"""

from __future__ import annotations

import datetime as dt
import logging

from datasync.db import Database, connected
from datasync.engine.frame import RunFrame
from datasync.ptmmm import kpi
from datasync.ptmmm.mirror import MIRROR_LOCK, OPS_CONN, SUPABASE_CONN

log = logging.getLogger(__name__)

SIDES = {
    # side: (connection, lock, tables)
    "tidb": (OPS_CONN, kpi.ETL_LOCK, (*kpi.KPI_TABLES, kpi.EXCLUSIONS_TABLE)),
    "supabase": (SUPABASE_CONN, MIRROR_LOCK, tuple(f"public.{t}" for t in kpi.KPI_TABLES)),
}


def _warehouses(db: Database, table: str, day: dt.date) -> list[str]:
    column = "org_id" if table.endswith(kpi.EXCLUSIONS_TABLE) else "warehouse_id"
    rows = db.fetchall(f"SELECT DISTINCT {column} FROM {table} WHERE data_date = %s ORDER BY 1", (day,))
    return [str(r[0]) for r in rows]


def rollback_side(side: str, data_date, run_id: str | None = None) -> dict[str, dict]:
    """Delete the day's KPI rows on one side; returns ``{table: {"deleted": n, "warehouses"|"orgs": [...]}}``."""
    if side not in SIDES:
        raise ValueError(f"unknown side {side!r}; choose from {', '.join(SIDES)}")
    day = kpi.validate_data_date(data_date)
    conn_id, lock, tables = SIDES[side]
    names = [f"ptmmm_kpi_rollback.{side}.{t.split('.')[-1]}" for t in tables]
    with connected(conn_id) as db, RunFrame(db, names, run_id, "rollback", lock_wait_seconds=600, lock=lock) as frame:
        for name in names:
            frame.details[name] = {"data_date": day.isoformat()}
        before = {t: _warehouses(db, t, day) for t in tables}
        db.commit()
        deleted = kpi.delete_kpi_day(db, day, tables)  # commits the day's deletes on every table at once
        out = {}
        for t, name in zip(tables, names):
            label = "orgs" if t.endswith(kpi.EXCLUSIONS_TABLE) else "warehouses"
            out[t] = {"deleted": deleted[t], label: before[t]}
            frame.counts[name].deleted = deleted[t]
            frame.details[name].update(out[t])
            log.info("%s %s: deleted %s row(s) of %s (%s: %s)", side, t, deleted[t], day, label, ", ".join(before[t]) or "none")
    return out


def rollback_task(side: str, params, run_id: str | None) -> dict:
    """The DAG task: skip a side that was not chosen, refuse a bad date without retrying."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    if side not in params["sides"]:
        raise AirflowSkipException(f"{side} was not chosen in params.sides ({params['sides']})")
    try:
        return rollback_side(side, params["data_date"], run_id)
    except kpi.InvalidDataDate as exc:
        raise AirflowFailException(str(exc)) from None
