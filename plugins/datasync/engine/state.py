"""Sync bookkeeping in the target database: cursors, the run log and rejected rows.

Cursor writes never commit by themselves: the caller commits them with the batch they cover.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from datasync.db import Database, LockTimeout, named_lock

log = logging.getLogger(__name__)


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
    sql = db.dialect.upsert_sql("sync_cursors", ["sync_name", "cursor_value", "cursor_key", "rows_synced", "updated_at"],
                                ["sync_name"], ["%s", "%s", "%s", "%s", db.dialect.now])
    db.execute(sql, params).close()


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
    deferred: int = 0  # rows whose parent is not in the target yet: read again by the next run

    def add(self, other: Counts) -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def sentence(self) -> str:
        parts = [f"{self.read} read", f"{self.inserted} inserted", f"{self.updated} updated", f"{self.unchanged} unchanged"]
        parts += [f"{n} {k}" for k, n in (("deleted", self.deleted), ("rejected", self.rejected), ("deferred", self.deferred),
                                              ("duplicate keys merged", self.duplicates)) if n]
        return ", ".join(parts)


@dataclass
class Reject:
    table: str
    key: Any
    column: str | None
    value: Any
    reason: str
    row: dict = field(default_factory=dict)
    missing_parent: bool = False  # a foreign key names a row the target does not have (yet)

    def describe(self) -> str:
        col = f" column {self.column}" if self.column else ""
        return f"{self.table} key {self.key}{col}: {self.reason} (value {str(self.value)[:80]!r})"


# ---- anything as JSON-safe bookkeeping -----------------------------------------------------------
SAFE_INT = 2**53 - 1  # past this most JSON readers round a number (RFC 7493): kept as text
TEXT_LIMIT = 4000  # characters of one value kept in a reject; the rest is summarised


def safe_text(text: str, limit: int | None = TEXT_LIMIT) -> str:
    """Text any target column can hold: NUL spelled ``\\u0000``, lone surrogates escaped, long text cut."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if limit is not None and len(text) > limit:
        more = f"... [{len(text)} characters]"
        text = text[:max(limit - len(more), 0)] + more
    return text


def _number(value: float | Decimal) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else ("NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity"))
    return str(value) if value.is_finite() else ("NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity"))


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON that every server and reader takes: no NaN/Infinity tokens, no
    integers past 2**53 as numbers, no NUL characters, no lone surrogates; anything else as text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -SAFE_INT <= value <= SAFE_INT else str(value)
    if isinstance(value, (float, Decimal)):
        return _number(value)
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return safe_text(repr(bytes(value)))
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {safe_text(str(k), None): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    return safe_text(str(value))


def _json(value: Any) -> str:
    return json.dumps(json_safe(value), allow_nan=False)


def _value_text(value: Any) -> str | None:
    """A rejected value as text: strings as they are, structures as JSON, numbers exactly."""
    if value is None:
        return None
    safe = json_safe(value)
    return safe if isinstance(safe, str) else json.dumps(safe, allow_nan=False)


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
    log_id = db.dialect.insert_returning_id(
        db, "INSERT INTO sync_log (sync_name, run_id, mode, status, dag_id, task_id, map_index, try_number) "
        "VALUES (%s, %s, %s, 'running', %s, %s, %s, %s)", (sync_name, run_id, mode, *task_instance()))
    db.commit()
    return int(log_id)


def log_finish(db: Database, log_id: int, counts: Counts, error: str | None, details: dict | None = None,
               status: str = "success") -> None:
    """Close a sync_log row: ``failed`` when there is an error, else ``status`` (success or partial)."""
    d = db.dialect
    db.execute(
        f"UPDATE sync_log SET status = %s, finished_at = {d.now}, duration_ms = {d.elapsed_ms('started_at')}, "
        "rows_read = %s, rows_inserted = %s, rows_updated = %s, rows_unchanged = %s, rows_deleted = %s, rows_rejected = %s, "
        "error = %s, details = %s WHERE id = %s",
        (
            "failed" if error else status, counts.read, counts.inserted, counts.updated, counts.unchanged,
            counts.deleted, counts.rejected, None if error is None else safe_text(error, None), _json(details or {}), log_id,
        ),
    )
    db.commit()


def log_progress(db: Database, log_id: int, counts: Counts) -> None:
    """The running row's counts, in the caller's transaction: committed with the rows they count."""
    db.execute(
        "UPDATE sync_log SET rows_read = %s, rows_inserted = %s, rows_updated = %s, rows_unchanged = %s, "
        "rows_deleted = %s, rows_rejected = %s WHERE id = %s",
        (counts.read, counts.inserted, counts.updated, counts.unchanged, counts.deleted, counts.rejected, log_id),
    ).close()


_INSERT_REJECT = ("INSERT INTO sync_rejects (sync_name, run_id, table_name, row_key, column_name, value, reason, row_data) "
                  "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)")


def write_rejects(db: Database, sync_name: str, run_id: str | None, rejects: list[Reject]) -> None:
    """Part of the caller's transaction. Every reject is stored: values JSON-safely, and a row the
    table will not take whole (too big for it, say) without its row data rather than not at all."""
    if not rejects:
        return
    head = (safe_text(sync_name, 200), None if run_id is None else safe_text(run_id, 250))
    rows = [
        (*head, safe_text(r.table, 200), _json(r.key), None if r.column is None else safe_text(r.column, 200),
         _value_text(r.value), safe_text(r.reason), _json(r.row))
        for r in rejects
    ]
    db.execute("SAVEPOINT ds_rejects").close()
    try:
        cur = db.cursor()
        cur.executemany(_INSERT_REJECT, rows)
        cur.close()
    except Exception as exc:
        db.execute("ROLLBACK TO SAVEPOINT ds_rejects").close()
        why = safe_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, 300)
        log.warning("%s: %d reject(s) stored without their row data (%s)", sync_name, len(rows), why)
        cur = db.cursor()
        cur.executemany(_INSERT_REJECT, [
            (*r[:5], None if r[5] is None else safe_text(r[5], 200),
             f"{r[6]} (the row itself could not be stored: {why})", None)
            for r in rows
        ])
        cur.close()


# ---- the lock of a run ------------------------------------------------------------------------------
def log_refused(db: Database, sync_names: Iterable[str], run_id: str | None, mode: str, error: str,
                waited_seconds: float) -> None:
    """A run that could not start: a finished ``failed`` row per sync, so it shows beside the others."""
    now = db.dialect.now
    try:
        db.rollback()
        for name in sync_names:
            db.execute(
                f"INSERT INTO sync_log (sync_name, run_id, mode, status, finished_at, duration_ms, error, details) "
                f"VALUES (%s, %s, %s, 'failed', {now}, %s, %s, %s)",
                (name, run_id, mode, int(waited_seconds * 1000), safe_text(error, None), _json({"waited_seconds": waited_seconds})),
            ).close()
        db.commit()
    except Exception:  # the target itself is in trouble: the task's own failure says enough
        db.rollback()
        log.warning("could not record in sync_log that %s was refused", ", ".join(sync_names), exc_info=True)


@contextmanager
def run_lock(db: Database, sync_names: str | list[str], run_id: str | None, mode: str, wait_seconds: float,
             lock: str | None = None) -> Iterator[None]:
    """Hold the lock of a sync run (default ``datasync:sync:<name>``). A run that gives up
    waiting leaves a ``failed`` sync_log row naming the lock ("... is already running") and raises
    :class:`~datasync.db.LockTimeout`, so a skipped run is as visible as a failed one."""
    names = [sync_names] if isinstance(sync_names, str) else list(sync_names)
    with ExitStack() as stack:
        try:
            stack.enter_context(named_lock(db, lock or f"datasync:sync:{names[0]}", wait_seconds))
        except LockTimeout as exc:
            log_refused(db, names, run_id, mode, f"{type(exc).__name__}: {exc}", wait_seconds)
            raise
        yield
