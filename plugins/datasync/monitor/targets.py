"""Reading every target database at once, each through its Airflow connection.

Connections are kept between requests (a few per target), read-only, with a statement timeout.
:func:`read_all` asks every target in parallel and waits a bounded time: a target whose
connection is missing, down or slow comes back as a :class:`TargetState` saying so, and the
others are shown as usual.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from datasync.db import Database, DatabaseUnavailable, connect
from datasync.migrate import TARGETS, Target
from datasync.monitor.safety import redact

log = logging.getLogger(__name__)
T = TypeVar("T")

STATEMENT_TIMEOUT_SECONDS = 10
TARGET_WAIT_SECONDS = 8.0  # how long a page waits for one target before showing it as slow
IDLE_PER_TARGET = 4

_executor = ThreadPoolExecutor(max_workers=12, thread_name_prefix="datasync-monitor")


class NotConfigured(LookupError):
    """The deployment has no Airflow connection for this target."""


@dataclass
class TargetState:
    """How reading one target went: ``ok``, ``not configured``, ``unreachable`` (cannot connect),
    ``unreadable`` (connected, but the bookkeeping could not be read) or ``timed out``."""

    name: str
    conn_id: str
    state: str = "ok"
    error: str | None = None
    server: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.name, "conn_id": self.conn_id, "state": self.state, "error": self.error, "server": self.server}


@dataclass
class _Pool:
    target: Target
    idle: queue.LifoQueue = field(default_factory=lambda: queue.LifoQueue(IDLE_PER_TARGET))

    def _open(self) -> Database:
        from airflow.exceptions import AirflowNotFoundException

        try:
            db = connect(self.target.conn_id)
        except AirflowNotFoundException:
            raise NotConfigured(f"no Airflow connection '{self.target.conn_id}'") from None
        try:  # a monitoring page never writes, and never waits long
            db.dialect.read_only_session(db, STATEMENT_TIMEOUT_SECONDS)
            db.commit()
        except Exception:
            db.close()
            raise
        return db

    @contextmanager
    def session(self) -> Iterator[Database]:
        try:
            db = self.idle.get_nowait()
        except queue.Empty:
            db = self._open()
        try:
            yield db
            db.rollback()
        except BaseException:
            db.close()  # a connection that failed mid-read is not reused
            raise
        try:
            self.idle.put_nowait(db)
        except queue.Full:
            db.close()

    def clear(self) -> None:
        while True:
            try:
                self.idle.get_nowait().close()
            except queue.Empty:
                return


_pools: dict[str, _Pool] = {}
_pools_lock = threading.Lock()


def _pool(target: Target) -> _Pool:
    with _pools_lock:
        return _pools.setdefault(target.name, _Pool(target))


def reset() -> None:
    """Close every kept connection (connections were changed, or a test ends)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.clear()


def _read_one(target: Target, reader: Callable[[Database], T]) -> tuple[TargetState, T | None]:
    state = TargetState(target.name, target.conn_id)
    try:
        with _pool(target).session() as db:
            state.server = db.version
            return state, reader(db)
    except NotConfigured as exc:
        state.state, state.error = "not configured", str(exc)
    except Exception as exc:  # down, refused, not migrated: say which and why, show the rest
        log.warning("Data sync page: reading target %s (%s) failed: %s", target.name, target.conn_id, redact(exc, 300))
        state.state = "unreachable" if isinstance(exc, DatabaseUnavailable) else "unreadable"
        state.error = redact(f"{type(exc).__name__}: {exc}", 500)
    return state, None


def read_all(readers: dict[str, Callable[[Database], T]],
             wait_seconds: float = TARGET_WAIT_SECONDS) -> dict[str, tuple[TargetState, T | None]]:
    """Run ``readers[target_name](db)`` for each named target in parallel."""
    futures = {name: _executor.submit(_read_one, TARGETS[name], reader) for name, reader in readers.items()}
    out: dict[str, tuple[TargetState, T | None]] = {}
    for name, future in futures.items():
        try:
            out[name] = future.result(timeout=wait_seconds)
        except FutureTimeout:
            target = TARGETS[name]
            out[name] = (TargetState(name, target.conn_id, "timed out",
                                     f"no answer from '{target.conn_id}' within {wait_seconds:.0f}s"), None)
    return out


def read_one(name: str, reader: Callable[[Database], T]) -> tuple[TargetState, T | None]:
    return read_all({name: reader})[name]
