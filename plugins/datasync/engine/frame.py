"""The frame every sync run works inside: one place for what each pipeline would otherwise
write again.

* **Lock**: the run holds a server-side lock in the target; a run refused by it leaves a
  ``failed`` sync_log row ("... is already running") and raises ``LockTimeout``.
* **Run log**: a ``running`` sync_log row per sync name, opened at once; every commit updates it
  with the counts committed so far (in the same transaction), so a killed attempt's row says what
  it had landed; the end marks it ``success``, ``partial`` or ``failed``.
* **Reject budget**: rejects of the run (and those the source found itself) are counted against
  ``max_rejects``; past it the open transaction is rolled back, every reject is kept in
  ``sync_rejects`` and the run fails naming table, key and column of the first ones.
* **Commit**: the data, the cursor it reaches and the run log's counts are one transaction.

Usage::

    with RunFrame(db, name, run_id, mode, max_rejects=10) as frame:
        for page in pages:
            counts, rejects = writer.write(page)
            frame.take(counts, rejects)
            frame.commit(cursor=position)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

from datasync.db import Database
from datasync.engine import state
from datasync.engine.state import Counts, Position, Reject

log = logging.getLogger(__name__)


class RejectThresholdExceeded(RuntimeError):
    def __init__(self, sync_name: str, rejects: list[Reject], limit: int):
        self.rejects = rejects
        shown = "; ".join(r.describe() for r in rejects[:3])
        more = f" (+{len(rejects) - 3} more)" if len(rejects) > 3 else ""
        super().__init__(
            f"{sync_name}: {len(rejects)} row(s) rejected, more than max_rejects={limit}: {shown}{more}. "
            "The page was rolled back; every reject is in sync_rejects."
        )


Refusal = Callable[[str, list[Reject], int], Exception]


class RunFrame:
    """Lock, run log, reject budget and commits of one run of one or more syncs (``names``:
    several syncs that change together, e.g. the tables of one day, share the frame)."""

    def __init__(self, db: Database, names: str | Sequence[str], run_id: str | None, mode: str, *,
                 max_rejects: int = 0, lock_wait_seconds: float = 60.0, lock: str | None = None,
                 labels: dict[str, Any] | None = None, source_rejects: list[Reject] | None = None,
                 refusal: Refusal = RejectThresholdExceeded):
        self.db, self.run_id, self.mode = db, run_id, mode
        self.names = [names] if isinstance(names, str) else list(names)
        self.name = self.names[0]
        self.max_rejects, self.lock_wait_seconds, self.lock = max_rejects, lock_wait_seconds, lock
        self.labels = labels or {}  # extra sync_log columns (e.g. shop_id, entity)
        self.source_rejects = source_rejects if source_rejects is not None else []  # stored by the source's owner
        self.refusal = refusal
        self.counts = {n: Counts() for n in self.names}
        self.details: dict[str, dict] = {n: {} for n in self.names}
        self.rejects: list[Reject] = []
        self.partial: dict[str, str] = {}  # name -> why the run did not cover everything
        self._pending: list[tuple[str, Reject]] = []  # rejects written in the open transaction
        self._log_ids: dict[str, int] = {}
        self._stack = ExitStack()

    # -- the frame ------------------------------------------------------------------------------
    def __enter__(self) -> RunFrame:
        self._stack.enter_context(state.run_lock(self.db, self.names, self.run_id, self.mode,
                                                 self.lock_wait_seconds, lock=self.lock))
        try:
            for n in self.names:
                self._log_ids[n] = state.log_start(self.db, n, self.run_id, self.mode)
                if self.labels:
                    sets = ", ".join(f"{c} = %s" for c in self.labels)
                    self.db.execute(f"UPDATE sync_log SET {sets} WHERE id = %s", (*self.labels.values(), self._log_ids[n])).close()
            self.db.commit()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc is None:
                for n in self.names:
                    status = "partial" if n in self.partial else "success"
                    state.log_finish(self.db, self._log_ids[n], self.counts[n], None, self.details[n], status=status)
            else:
                self._record_failure(exc)
        finally:
            self._stack.close()

    def _record_failure(self, exc: BaseException) -> None:
        try:
            self.db.rollback()
            self._keep_pending()
            error = f"{type(exc).__name__}: {exc}"[:4000]
            for n in self.names:
                state.log_finish(self.db, self._log_ids[n], self.counts[n], error, self.details[n])
        except Exception:  # a dead target connection: the next run marks the rows abandoned
            log.warning("%s: could not record the failure in sync_log", self.name)

    # -- inside the frame -----------------------------------------------------------------------
    @property
    def rejected(self) -> int:
        return sum(c.rejected for c in self.counts.values()) + len(self.source_rejects)

    def take(self, counts: Counts, rejects: list[Reject], name: str | None = None) -> None:
        """Count a written page (uncommitted) and store its rejects in its transaction; past the
        budget roll it back and fail."""
        name = name or self.name
        self._pending += [(name, r) for r in rejects]
        self.rejects += rejects
        if self.rejected + len(rejects) > self.max_rejects:
            self.counts[name].rejected += len(rejects)  # the page's rows roll back: only its rejects count
            self.check_budget()
        self.counts[name].add(replace(counts, rejected=len(rejects)))
        state.write_rejects(self.db, name, self.run_id, rejects)

    def check_budget(self) -> None:
        if self.rejected > self.max_rejects:
            self.db.rollback()
            self._keep_pending()
            raise self.refusal(self.name, self.source_rejects + self.rejects, self.max_rejects)

    def commit(self, cursor: Position | None = None, name: str | None = None, db: Database | None = None) -> None:
        """Commit the open transaction with the cursor it reaches and the run log's counts. ``db``:
        another connection to the target that holds the page (a page loaded beside another one,
        without rejects); by default the frame's own."""
        name, db = name or self.name, db or self.db
        if cursor is not None:
            state.write_cursor(db, name, cursor)
        for n in self.names:
            state.log_progress(db, self._log_ids[n], self.counts[n])
        db.commit()
        if db is self.db:
            self._pending = []

    def mark_partial(self, why: str, name: str | None = None) -> None:
        """The run ends ``partial``: it committed what it read, but not everything it was asked to."""
        name = name or self.name
        if name not in self.partial:
            log.warning("%s: partial run: %s", name, why)
        self.partial[name] = why
        self.details[name].setdefault("partial", []).append(why)

    def _keep_pending(self) -> None:
        """Every reject counted stays in sync_rejects, also when its page rolled back."""
        pending, self._pending = self._pending, []
        for n in self.names:
            mine = [r for m, r in pending if m == n]
            if mine:
                state.write_rejects(self.db, n, self.run_id, mine)
        self.db.commit()
