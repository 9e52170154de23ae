"""Mirror one WIB day of the TiDB KPI tables into Supabase, exactly.

For each KPI table the day's rows are upserted by ``(data_date, warehouse_id)`` with the sync
engine's Postgres writer (COPY into staging, ``ON CONFLICT ... WHERE IS DISTINCT FROM``, so rows
that did not change are not rewritten) and the day's mirror rows whose warehouse TiDB no longer
has are deleted. Both tables are one transaction: dashboards see the old day or the new day,
never a mix. Each table's run is a ``sync_log`` row in Supabase with its counts; rows Supabase
refuses (its CHECKs) go to ``sync_rejects`` and fail the run with nothing changed.

Other days are never touched, so mirroring days in any order, or again, gives the same state.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from datasync.db import Database, connect, connected
from datasync.engine.frame import RunFrame
from datasync.engine.state import Counts, Reject
from datasync.engine.table import TableInfo
from datasync.engine.writers import writer_for
from datasync.ptmmm.kpi import KPI_TABLES, _as_date

log = logging.getLogger(__name__)

OPS_CONN = "tidb_ops"
SUPABASE_CONN = "supabase_ptmmm"
MIRROR_LOCK = "ptmmm:kpi_mirror"
KEY = ["data_date", "warehouse_id"]
MODE = "day_mirror"  # sync_log.mode


class MirrorRejected(RuntimeError):
    """Supabase refused some of the day's KPI rows; the mirror of that day was left as it was."""


@dataclass
class MirrorResult:
    data_date: dt.date
    counts: dict[str, Counts]

    def summary(self) -> str:
        parts = "; ".join(f"{t}: {c.sentence()}, {c.deleted} deleted" for t, c in self.counts.items())
        return f"KPI mirror of {self.data_date} tidb_ops -> supabase_ptmmm: {parts}"

    def as_dict(self) -> dict:
        return {"data_date": self.data_date.isoformat(), **{t: c.as_dict() for t, c in self.counts.items()}}


def sync_name(table: str) -> str:
    return f"ptmmm_daily_kpi_etl.mirror.{table}"


def read_day(db: Database, table: str, day: dt.date) -> tuple[list[str], list[tuple]]:
    """The day's KPI rows of a TiDB table: column names and row tuples."""
    cur = db.execute(f"SELECT * FROM {table} WHERE data_date = %s ORDER BY warehouse_id", (day,))
    columns = [d[0] for d in cur.description]
    rows = [tuple(r) for r in cur.fetchall()]
    cur.close()
    db.commit()
    return columns, rows


def _delete_others(db: Database, table: str, day: dt.date, keep: list[str]) -> int:
    """Delete the day's mirror rows of warehouses that are not in ``keep`` (TiDB's rows of the day)."""
    sql = f"DELETE FROM public.{table} WHERE data_date = %s"
    params: list = [day]
    if keep:
        sql += f" AND warehouse_id::text NOT IN ({', '.join(['%s'] * len(keep))})"
        params += keep
    return db.execute(sql, params).rowcount


def mirror_day(data_date, run_id: str | None = None, source_conn: str = OPS_CONN, target_conn: str = SUPABASE_CONN) -> MirrorResult:
    day = _as_date(data_date)
    with connected(source_conn) as src:
        source = {t: read_day(src, t, day) for t in KPI_TABLES}

    def refused(_name: str, rejects: list[Reject], _limit: int) -> MirrorRejected:
        shown = "; ".join(r.describe() for r in rejects[:3])
        return MirrorRejected(f"Supabase refused {len(rejects)} KPI row(s) of {day}: {shown}. The mirror of {day} was left "
                              "as it was; every refused row is in supabase_ptmmm.sync_rejects")

    db = connect(target_conn)
    try:
        with RunFrame(db, [sync_name(t) for t in KPI_TABLES], run_id, MODE, lock_wait_seconds=300, lock=MIRROR_LOCK,
                      refusal=refused) as frame:
            for name in frame.names:
                frame.details[name] = {"data_date": day.isoformat()}
            _mirror(frame, day, source)
    finally:
        db.close()
    result = MirrorResult(day, {t: frame.counts[sync_name(t)] for t in KPI_TABLES})
    log.info(result.summary())
    return result


def _mirror(frame: RunFrame, day: dt.date, source: dict) -> None:
    """Every table's day in one transaction; any row Supabase refuses rolls all of it back."""
    db, writers = frame.db, {}
    try:
        # Writers make their staging tables (and commit) first; the day is then one transaction.
        for table, (columns, _rows) in source.items():
            info = TableInfo.load(db, f"public.{table}")
            info.require(columns, f"TiDB {table} columns")
            writers[table] = writer_for(db, info, columns, KEY)
        for table, (columns, rows) in source.items():
            counts, rejects = writers[table].write(rows) if rows else (Counts(), [])
            counts.read = len(rows)
            keep = [str(r[columns.index("warehouse_id")]) for r in rows]
            counts.deleted = _delete_others(db, table, day, keep)
            frame.take(counts, rejects, sync_name(table))
        frame.commit()
    finally:
        for writer in writers.values():
            writer.close()
