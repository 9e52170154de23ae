"""Progress of a running sync in the task log: one INFO line per page, so a long run (or the log of
a killed attempt) shows how far it got, how fast, and when it should end."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sized
from typing import Any

log = logging.getLogger(__name__)


def source_total(source: Any, columns: list[str], window: Any) -> int | None:
    """How many rows this read will take, when that is cheap to know: the length of a sized row
    source, the server's estimate for a whole table, or a COUNT over the same window of a SQL
    source. None when unknown."""
    rows = getattr(source, "rows", None)
    if rows is not None:
        return len(rows) if isinstance(rows, Sized) else None
    try:
        db = source.open()
        whole = getattr(source, "table", None) and window.lower is None and window.after is None
        if whole:  # the planner's estimate: counting every row of a big table costs seconds
            estimate = db.dialect.row_estimate(db, source.table)
            if estimate:
                return estimate
        sql, params = source.page_sql(columns, window, None)
        (total,) = db.fetchone(f"SELECT COUNT(*) FROM ({sql}) AS rows_to_sync", params)
        db.commit()
        return int(total)
    except Exception:  # the count is a nicety: the sync itself reports any real problem
        try:
            source.open().rollback()
        except Exception:
            pass
        return None


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Counts rows page by page and logs ``rows so far, rows/s[, % of total, ETA]``."""

    def __init__(self, name: str, total: int | None = None, *, committed: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name, self.total, self.committed, self.clock = name, total, committed, clock
        self.started = clock()
        self.pages = 0
        self.rows = 0

    def page(self, rows: int) -> str:
        self.pages += 1
        self.rows += rows
        elapsed = max(self.clock() - self.started, 1e-6)
        rate = self.rows / elapsed
        line = f"{self.name}: page {self.pages} {'committed' if self.committed else 'written'}: {self.rows:,} rows so far ({rate:,.0f} rows/s)"
        if self.total:
            done = min(self.rows / self.total, 1.0)
            left = max(self.total - self.rows, 0)
            eta = _duration(left / rate) if rate > 0 else "unknown"
            line += f", {done:.0%} of {self.total:,}, ETA {eta}"
        if not self.committed:
            line += "; the run commits when every page is written"
        log.info(line)
        return line
