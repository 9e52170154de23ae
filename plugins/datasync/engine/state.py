"""Sync bookkeeping in the target database: cursors, the run log and rejected rows.

Cursor writes never commit by themselves: the caller commits them with the batch they cover.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from datasync.db import Database


# ---- typed values as JSON text (cursor values and keys keep their Python type) -----------------
def encode_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        (kind, text), = value.items()
        return {"datetime": dt.datetime.fromisoformat, "date": dt.date.fromisoformat, "decimal": Decimal}[kind](text)
    return value


def dumps(values: Any) -> str:
    return json.dumps([encode_value(v) for v in values] if isinstance(values, (list, tuple)) else encode_value(values))


def loads(text: str | None) -> Any:
    if text is None:
        return None
    data = json.loads(text)
    return [decode_value(v) for v in data] if isinstance(data, list) else decode_value(data)


@dataclass
class Position:
    """Where an incremental sync stands: the last committed (cursor value, key)."""

    value: Any = None
    key: tuple | None = None
    rows_synced: int = 0


def read_cursor(db: Database, sync_name: str) -> Position:
    row = db.fetchone("SELECT cursor_value, cursor_key, rows_synced FROM sync_cursors WHERE sync_name = %s", (sync_name,))
    db.commit()
    if not row:
        return Position()
    key = loads(row[1])
    return Position(loads(row[0]), tuple(key) if key is not None else None, int(row[2]))


def write_cursor(db: Database, sync_name: str, pos: Position) -> None:
    """Part of the caller's transaction: commit it together with the rows it covers."""
    params = (sync_name, dumps(pos.value), dumps(list(pos.key)) if pos.key is not None else None, pos.rows_synced)
    if db.is_postgres:
        db.execute(
            "INSERT INTO sync_cursors (sync_name, cursor_value, cursor_key, rows_synced, updated_at) VALUES (%s, %s, %s, %s, now()) "
            "ON CONFLICT (sync_name) DO UPDATE SET cursor_value = EXCLUDED.cursor_value, cursor_key = EXCLUDED.cursor_key, "
            "rows_synced = EXCLUDED.rows_synced, updated_at = now()",
            params,
        )
    else:
        db.execute(
            "INSERT INTO sync_cursors (sync_name, cursor_value, cursor_key, rows_synced, updated_at) VALUES (%s, %s, %s, %s, CURRENT_TIMESTAMP(6)) "
            "ON DUPLICATE KEY UPDATE cursor_value = VALUES(cursor_value), cursor_key = VALUES(cursor_key), "
            "rows_synced = VALUES(rows_synced), updated_at = CURRENT_TIMESTAMP(6)",
            params,
        )


def reset_cursor(db: Database, sync_name: str) -> None:
    db.execute("DELETE FROM sync_cursors WHERE sync_name = %s", (sync_name,))


# ---- counts and the run log -------------------------------------------------------------------
@dataclass
class Counts:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    rejected: int = 0
    duplicates: int = 0  # same key more than once in a batch: the newest was kept

    def add(self, other: Counts) -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def sentence(self) -> str:
        parts = [f"{self.read} read", f"{self.inserted} inserted", f"{self.updated} updated", f"{self.unchanged} unchanged"]
        parts += [f"{n} {k}" for k, n in (("deleted", self.deleted), ("rejected", self.rejected), ("duplicate keys merged", self.duplicates)) if n]
        return ", ".join(parts)


@dataclass
class Reject:
    table: str
    key: Any
    column: str | None
    value: Any
    reason: str
    row: dict = field(default_factory=dict)

    def describe(self) -> str:
        col = f" column {self.column}" if self.column else ""
        return f"{self.table} key {self.key}{col}: {self.reason} (value {str(self.value)[:80]!r})"


def _json(value: Any) -> str:
    return json.dumps(value, default=str)


def task_instance() -> tuple[str | None, str | None, int | None, int | None]:
    """(dag_id, task_id, map_index, try_number) of the Airflow task running this code, or Nones."""
    try:
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
        return ti.dag_id, ti.task_id, ti.map_index, ti.try_number
    except Exception:  # not inside a task (a script, a test): the row just has no task instance
        return None, None, None, None


def log_start(db: Database, sync_name: str, run_id: str | None, mode: str) -> int:
    """Open a sync_log row (committed at once, so a crashed run still shows up), naming the
    task instance that runs it so the Data sync page can link to its log."""
    # A 'running' row of this sync left by a killed process: we hold the lock now, so it is dead.
    db.execute(
        "UPDATE sync_log SET status = 'failed', error = 'abandoned: the run died without finishing (killed worker?)' "
        "WHERE sync_name = %s AND status = 'running'",
        (sync_name,),
    )
    insert = ("INSERT INTO sync_log (sync_name, run_id, mode, status, dag_id, task_id, map_index, try_number) "
              "VALUES (%s, %s, %s, 'running', %s, %s, %s, %s)")
    params = (sync_name, run_id, mode, *task_instance())
    if db.is_postgres:
        log_id = db.fetchone(insert + " RETURNING id", params)[0]
    else:
        log_id = db.execute(insert, params).lastrowid
    db.commit()
    return int(log_id)


def log_finish(db: Database, log_id: int, counts: Counts, error: str | None, details: dict | None = None) -> None:
    now = "now()" if db.is_postgres else "CURRENT_TIMESTAMP(6)"
    duration = (
        "(EXTRACT(EPOCH FROM (now() - started_at)) * 1000)::bigint"
        if db.is_postgres
        else "TIMESTAMPDIFF(MICROSECOND, started_at, CURRENT_TIMESTAMP(6)) DIV 1000"
    )
    db.execute(
        f"UPDATE sync_log SET status = %s, finished_at = {now}, duration_ms = {duration}, rows_read = %s, rows_inserted = %s, "
        "rows_updated = %s, rows_unchanged = %s, rows_deleted = %s, rows_rejected = %s, error = %s, details = %s WHERE id = %s",
        (
            "failed" if error else "success", counts.read, counts.inserted, counts.updated, counts.unchanged,
            counts.deleted, counts.rejected, error, _json(details or {}), log_id,
        ),
    )
    db.commit()


def write_rejects(db: Database, sync_name: str, run_id: str | None, rejects: list[Reject]) -> None:
    """Part of the caller's transaction."""
    if not rejects:
        return
    cur = db.cursor()
    cur.executemany(
        "INSERT INTO sync_rejects (sync_name, run_id, table_name, row_key, column_name, value, reason, row_data) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (sync_name, run_id, r.table, _json(r.key), r.column, None if r.value is None else str(r.value), r.reason, _json(r.row))
            for r in rejects
        ],
    )
    cur.close()
