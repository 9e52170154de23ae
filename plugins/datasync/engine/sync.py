"""One sync run: read a source in keyset pages, upsert each page, commit the cursor with it.

Incremental: ``cursor - lookback <= cursor_column < run_start - safety_lag``, ordered by
``(cursor_column, key)``; each page is one transaction together with the cursor it reaches,
so a crash anywhere leaves target and cursor consistent and a rerun resumes.

Full refresh: every page and the delete of rows the source no longer has are one transaction.

Rejects: a page's bad rows go to ``sync_rejects``. While the run's rejects stay within
``max_rejects`` the good rows commit with the cursor; past it the page is rolled back (rows
and cursor), its rejects are kept for diagnosis, and the run fails naming the first ones
(the lock, the run log and this budget are the :class:`~datasync.engine.frame.RunFrame`'s).

Deferred (``defer_missing_parents``): a row whose parent is not in the target yet is not a
reject; the cursor stops before it, so the next run reads it again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from datasync.db import Database, connect
from datasync.engine import compare, state
from datasync.engine.compare import Comparison
from datasync.engine.frame import RejectThresholdExceeded, RunFrame  # noqa: F401 (the engine exports it)
from datasync.engine.progress import Progress, source_total
from datasync.engine.sources import RowsSource, SqlSource, Window
from datasync.engine.state import Counts, Position, Reject
from datasync.engine.table import TableInfo, check_columns
from datasync.engine.writers import batched, writer_for
from datasync.identifiers import check_table_name

log = logging.getLogger(__name__)

Mode = Literal["incremental", "full", "upsert", "prune"]


@dataclass
class SyncSpec:
    """What to sync where. ``name`` keys the cursor, the lock and the run log."""

    name: str
    target_table: str
    key: list[str]
    columns: list[str] | None = None  # default: every column of the target table
    cursor_column: str | None = None
    mode: Mode = "incremental"
    lookback: Any = dt.timedelta(0)  # timedelta for time cursors, a number for numeric ones
    safety_lag: dt.timedelta = dt.timedelta(0)
    batch_size: int = 100_000  # rows per page: one transaction (incremental) and one round of COPY
    max_rejects: int = 0
    lock_wait_seconds: float = 60.0
    delete_missing: bool = True  # full mode: delete target rows the source no longer has
    bulk_load_empty: bool = True  # an initial load into an empty table COPYs (or LOADs) straight in
    # An incremental initial load straight into an empty MySQL-family table: pages loading at once,
    # each on its own target connection (the server loads one file on one thread).
    load_connections: int = 2
    # Full mode, source and target of one family: rows per key range whose hashes both servers
    # compare before anything moves (see datasync.engine.compare); 0 reads and merges every row.
    compare_rows: int = 10_000
    # Incremental, time cursor: a row whose parent (foreign key) is not in the target yet and whose
    # cursor is within this of the run's upper bound is deferred, not rejected: the cursor stops
    # before it and the next run reads it again (its parent committed meanwhile). Older: a reject.
    defer_missing_parents: dt.timedelta | None = None

    def __post_init__(self):
        check_table_name(self.target_table)
        check_columns(list(self.key) + list(self.columns or []) + ([self.cursor_column] if self.cursor_column else []))
        if self.mode == "incremental" and not self.cursor_column:
            raise ValueError(f"{self.name}: incremental sync needs a cursor_column (or use mode='full')")
        if not self.key:
            raise ValueError(f"{self.name}: a key is required")
        if self.load_connections < 1:
            raise ValueError(f"{self.name}: load_connections must be at least 1")


@dataclass
class SyncResult:
    name: str
    mode: str
    counts: Counts
    seconds: float
    cursor: Any = None
    details: dict = field(default_factory=dict)

    def summary(self, source: str, target: str) -> str:
        where = f" (cursor now {self.cursor})" if self.cursor is not None else ""
        return f"{self.name}: {source} -> {target} [{self.mode}]: {self.counts.sentence()} in {self.seconds:.1f}s{where}"

    def as_dict(self) -> dict:
        return {"name": self.name, "mode": self.mode, **self.counts.as_dict(), "seconds": round(self.seconds, 3),
                "cursor": None if self.cursor is None else str(self.cursor)}


def _minus(value: Any, delta: Any) -> Any:
    if value is None or not delta:
        return value
    if isinstance(value, (dt.datetime, dt.date)):
        return value - (delta if isinstance(delta, dt.timedelta) else dt.timedelta(seconds=float(delta)))
    if isinstance(value, (int, float, Decimal)):
        return value - (delta.total_seconds() if isinstance(delta, dt.timedelta) else delta)
    return value


def _newer(a: Any, b: Any) -> bool:
    """Is cursor value ``a`` past ``b``? (aware and naive UTC datetimes compare as UTC)."""
    if b is None:
        return True
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime) and (a.tzinfo is None) != (b.tzinfo is None):
        a, b = (x if x.tzinfo else x.replace(tzinfo=dt.timezone.utc) for x in (a, b))
    return a >= b


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


def _done(value: Any) -> Future:
    """A future already holding ``value``."""
    future: Future = Future()
    future.set_result(value)
    return future


_DONE = _done(None)


class SyncRun:
    def __init__(self, spec: SyncSpec, source: SqlSource | RowsSource, frame: RunFrame):
        self.spec, self.source, self.frame, self.db = spec, source, frame, frame.db
        self.table = TableInfo.load(self.db, spec.target_table)
        self.columns = list(spec.key) if spec.mode == "prune" else list(spec.columns or self.table.columns)
        self.table.require(self.columns, "columns to sync")
        self.table.require(list(spec.key) + ([spec.cursor_column] if spec.cursor_column else []), "key/cursor")
        for k in spec.key:
            if k not in self.columns:
                self.columns.append(k)
        if spec.cursor_column and spec.cursor_column not in self.columns:
            self.columns.append(spec.cursor_column)
        self.unique_keys = False
        if isinstance(source, SqlSource):
            source.check_columns(self.columns)
            if source.table:  # the source's own primary key rules out duplicates in a page
                pk = TableInfo.load(source.open(), source.table).primary_key
                self.unique_keys = bool(pk) and set(pk) == set(spec.key)
        elif isinstance(source, RowsSource):
            missing = [c for c in self.columns if c not in source.columns]
            if missing:
                raise ValueError(f"{spec.name}: rows carry no {missing}; they have {source.columns}")
        self.counts = frame.counts[frame.name]
        self.order = ([spec.cursor_column] if spec.cursor_column and spec.mode == "incremental" else []) + list(spec.key)

    # -- pages ---------------------------------------------------------------------------------
    def _target_empty(self) -> bool:
        empty = self.db.fetchone(f"SELECT NOT EXISTS (SELECT 1 FROM {'.'.join(self.db.quote(p) for p in self.table.name.split('.'))})")[0]
        self.db.commit()
        return bool(empty)

    def _passthrough(self) -> bool:
        # COPY straight from source to target: both Postgres
        return isinstance(self.source, SqlSource) and self.source.open().dialect.copy_between(self.db.dialect)

    def _copy_range(self, writer, window: Window, through: tuple | None) -> tuple[Counts, list[Reject]]:
        """COPY the source rows after ``window.after`` through ``through`` into the target."""
        sql, params = self.source.page_sql(self.columns, window, None, through=through, ordered=not self.unique_keys)
        return self._copy(writer, sql, params)

    def _copy(self, writer, sql: str, params: Any) -> tuple[Counts, list[Reject]]:
        """COPY the rows of a source query into the target (Postgres to Postgres)."""
        db = self.source.open()
        sp = writer.savepoint()
        try:
            counts = writer.copy_page(db.cursor(), f"COPY ({sql}) TO STDOUT", params)
            db.commit()
            return counts, []
        except Exception:
            # Bad values stop COPY: read the same rows as values so each can be judged and named.
            writer.rollback_to(sp)
            db.rollback()
            rows = db.fetchall(sql, params)
            db.commit()
            return writer.write(rows)

    def _pages(self, writer, window: Window, *, paired: bool = False):
        """Yield (counts, rejects, last_row_position, db) per page, written but not committed; ``db``
        is the target connection holding the page (None: the frame's own). ``paired``: the caller
        commits each page on its own, so an initial load may load pages side by side."""
        spec, src = self.spec, self.source
        if isinstance(src, RowsSource):
            cols = src.columns
            idx = [cols.index(c) for c in self.columns]
            cur_i = self.columns.index(spec.cursor_column) if spec.cursor_column else None
            for batch in batched(src.tuples(), spec.batch_size, lambda r: tuple(r[i] for i in idx)):
                counts, rejects = writer.write(batch)
                top = None
                if cur_i is not None:
                    values = [r[cur_i] for r in batch if r[cur_i] is not None]
                    top = max(values) if values else None
                yield counts, rejects, (top, None), None
            return
        if self._csv_stream(writer):
            yield from self._stream_pages(writer, window, self._csv_stream_read(writer), self._write_csv,
                                          side_by_side=paired and self._side_by_side(writer))
            return
        if self._text_stream(writer):
            yield from self._stream_pages(writer, window, self._text_stream_read(writer), self._write_text)
            return
        key_pos = [self.columns.index(c) for c in self.order]
        while True:
            if self._passthrough():
                # Find the page's last row first, then COPY exactly the rows up to it.
                last, full = src.page_end(window, spec.batch_size)
                if last is None:
                    return
                counts, rejects = self._copy_range(writer, window, last)
                n = spec.batch_size if full else 0
            else:
                rows = src.fetch_page(self.columns, window, spec.batch_size)
                n = len(rows)
                counts, rejects = writer.write(rows) if rows else (Counts(), [])
                last = tuple(rows[-1][i] for i in key_pos) if rows else None
            if last is None:
                return
            window.after = last
            yield counts, rejects, self._position(last), None
            if n < spec.batch_size:
                return

    def _position(self, last: tuple) -> tuple:
        """(cursor value, key) of a page's last row: the key alone outside incremental mode."""
        cursor_value = last[0] if self.spec.cursor_column and self.spec.mode == "incremental" else None
        return cursor_value, last[1:] if cursor_value is not None else last

    def _side_by_side(self, writer) -> bool:
        # an initial load straight into an empty table: the server loads each file on one thread,
        # so pages on further connections load at once (see _paired_loads)
        return self.spec.load_connections > 1 and writer.straight

    def _csv_stream(self, writer) -> bool:
        # the writer bulk-loads CSV files (MySQL family, LOCAL INFILE allowed) and a SQL source can
        # spell its pages as that CSV itself (Postgres COPY)
        return (isinstance(self.source, SqlSource) and getattr(writer, "bulk", False)
                and self.source.open().dialect.csv_copy_to(self.db.dialect))

    def _text_stream(self, writer) -> bool:
        # a MySQL-family source spells its pages as Postgres COPY text itself
        return (isinstance(self.source, SqlSource) and hasattr(writer, "copy_text")
                and self.source.open().dialect.copy_text_to(self.db.dialect))

    # Each stream: read(db, sql, params) spells a page on the source (on the read-ahead thread; None:
    # a type it cannot spell), write(writer, payload) puts it into the target.
    def _csv_stream_read(self, writer):
        def read(db: Database, sql: str, params: Any) -> str | None:
            copy_sql = db.dialect.csv_copy_sql(db, sql, params, writer.hex_columns)
            return writer.csv_file(db.cursor(), copy_sql, params) if copy_sql else None
        return read

    def _text_stream_read(self, writer):
        def read(db: Database, sql: str, params: Any) -> list | None:
            text_sql = db.dialect.copy_text_sql(db, sql, params, writer.bytea_columns)
            return db.fetchall(text_sql, params) if text_sql else None
        return read

    @staticmethod
    def _write_csv(writer, path: str) -> Counts:
        return writer.load_file(path)

    @staticmethod
    def _write_text(writer, lines: list) -> Counts:
        def feed(into) -> None:
            for i in range(0, len(lines), 10_000):
                into.write(b"\n".join(line for (line,) in lines[i:i + 10_000]) + b"\n")
        return writer.copy_text(feed)

    def _stream_pages(self, writer, window: Window, read, write, side_by_side: bool = False):
        """Like the passthrough, but each page leaves the source already spelled in the target's
        bulk format (CSV for LOAD DATA, COPY text for Postgres), and the next page is read on a
        thread of its own while this one is written. A page the source cannot spell, or one with a
        bad value, is read as rows and written (and judged) like any other."""
        spec, src = self.spec, self.source

        def ahead(after: tuple | None):  # the read-ahead thread is the source connection's only user meanwhile
            page = dataclasses.replace(window, after=after)
            last, full = src.page_end(page, spec.batch_size)
            if last is None:
                return None
            # one row per key: the page's rows need no sort (the staging merge orders only repeated keys)
            sql, params = src.page_sql(self.columns, page, None, through=last, ordered=not self.unique_keys)
            db = src.open()
            try:
                payload = read(db, sql, params)
                db.commit()
            except Exception as exc:
                log.info("%s: page read as rows (%s)", spec.name, _first_line(exc))
                db.rollback()
                payload = None
            return page, last, full, payload

        with ThreadPoolExecutor(1, thread_name_prefix="ds-read-ahead") as pool:
            if side_by_side and (yield from self._paired_loads(writer, window, pool, ahead)):
                return
            coming = pool.submit(ahead, window.after)
            while (got := coming.result()) is not None:
                page, last, full, payload = got
                coming = pool.submit(ahead, last) if full else _DONE
                counts, rejects = None, []
                if payload is not None:
                    sp = writer.savepoint()
                    try:
                        counts = write(writer, payload)
                    except Exception as exc:
                        log.info("%s: page read as rows (%s)", spec.name, _first_line(exc))
                        writer.rollback_to(sp)
                if counts is None:
                    upcoming = coming.result()  # the source connection is free again
                    coming = _done(upcoming)
                    counts, rejects = writer.write(src.fetch_page(self.columns, page, None, through=last))
                window.after = last
                yield counts, rejects, self._position(last), None

    def _paired_loads(self, writer, window: Window, reader: ThreadPoolExecutor, ahead):
        """An initial load straight into an empty MySQL-family table with ``load_connections`` pages
        loading at once, each on its own target connection (``writer`` and its twins), committed in
        page order with the cursor it reaches: a crash leaves whole pages and a cursor behind them.
        Returns True when every page landed. On any failure, or a page the source could not spell,
        the pages not yet committed roll back and it returns False: the caller goes on from
        ``window.after`` one page at a time (which names bad rows)."""
        name, width = self.spec.name, self.spec.load_connections
        writers, flying = [writer], deque()  # flying: (page's last row, load future, writer), in page order

        def load(into, path: str) -> Counts:
            try:
                return into.load_straight(path)
            finally:
                os.unlink(path)

        def next_writer():
            if not flying:
                return writer
            if len(writers) < width:
                writers.append(writer.twin())
                self.frame.details[name]["load_connections"] = len(writers)
            return writers[(writers.index(flying[-1][2]) + 1) % width]

        coming, more, landed_all = reader.submit(ahead, window.after), True, True
        try:
            with ThreadPoolExecutor(width, thread_name_prefix="ds-load") as loads:
                try:
                    while more or flying:
                        while more and len(flying) < width:
                            got = coming.result()
                            if got is None or got[3] is None:  # no more pages / this one goes as rows
                                more, landed_all = False, got is None
                                break
                            _page, last, full, path = got
                            into = next_writer()  # on failure `coming` still holds this page's file
                            coming, more = (reader.submit(ahead, last), True) if full else (_DONE, False)
                            flying.append((last, loads.submit(load, into, path), into))
                        if flying:
                            last, future, into = flying[0]
                            counts = future.result()
                            flying.popleft()
                            window.after = last
                            yield counts, [], self._position(last), into.db
                    return landed_all
                except Exception as exc:
                    log.info("%s: loading %d pages at once stopped (%s); one page at a time from here", name,
                             len(writers), _first_line(exc))
                    for _last, future, into in flying:
                        with contextlib.suppress(Exception):
                            future.result()
                        with contextlib.suppress(Exception):  # a lost connection rolled back by itself
                            into.db.rollback()
                    got = coming.result()
                    if got is not None and got[3] is not None:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(got[3])
                    return False
        finally:
            for twin in writers[1:]:
                twin.close()
                twin.db.close()

    def _take(self, counts: Counts, rejects: list[Reject], writer) -> None:
        self.frame.take(counts, rejects)
        repeated = writer.take_repeated()
        if counts.duplicates:
            shown = ", ".join(f"key {k[0] if len(k) == 1 else k!r} ({n} times)" for k, n in repeated)
            log.warning("%s: %d row(s) repeated a key already in the same page; the newest (else the last) of each "
                        "was kept%s", self.spec.name, counts.duplicates, f": {shown}" if shown else "")

    # -- modes ---------------------------------------------------------------------------------
    def _defer(self, rejects: list[Reject], counts: Counts, upper: Any) -> tuple[list[Reject], Any]:
        """Split out the rows to retry next run; returns the rest and the oldest deferred cursor value."""
        spec, hold = self.spec, None
        if spec.defer_missing_parents is None or upper is None:
            return rejects, None
        recent = upper - spec.defer_missing_parents
        deferred = [r for r in rejects if r.missing_parent and r.row.get(spec.cursor_column) is not None
                    and _newer(r.row[spec.cursor_column], recent)]
        if not deferred:
            return rejects, None
        for r in deferred:
            value = r.row[spec.cursor_column]
            hold = value if hold is None or _newer(hold, value) else hold
        counts.deferred += len(deferred)
        details = self.frame.details[spec.name]
        details["deferred_keys"] = (details.get("deferred_keys", []) + [r.key for r in deferred])[:50]
        log.info("%s: %d row(s) wait for their parent row (%s); the next run reads them again", spec.name,
                 len(deferred), deferred[0].describe())
        return [r for r in rejects if r not in deferred], hold

    def incremental(self, run_start: dt.datetime) -> Position:
        spec = self.spec
        pos = state.read_cursor(self.db, spec.name)
        # Time cursors stop at run start minus the safety lag, so rows still being committed
        # with a timestamp just before "now" are read by the next run, not skipped.
        is_time = self.table.columns[spec.cursor_column].data_type.startswith(("timestamp", "datetime"))
        upper = run_start - spec.safety_lag if is_time else None
        window = Window(order=self.order, cursor_column=spec.cursor_column, lower=_minus(pos.value, spec.lookback), upper=upper)
        writer = writer_for(self.db, self.table, self.columns, list(spec.key), spec.cursor_column, unique_keys=self.unique_keys)
        writer.direct = spec.bulk_load_empty and self.unique_keys and self._target_empty()
        hold = None  # cursor value of the oldest deferred row: the cursor never passes it
        progress = Progress(spec.name, source_total(self.source, self.columns, window))
        pages = self._pages(writer, window, paired=True)
        try:
            for counts, rejects, (value, key), db in pages:
                rejects, held = self._defer(rejects, counts, upper)
                self._take(counts, rejects, writer)
                if held is not None and (hold is None or _newer(hold, held)):
                    hold = held
                if hold is not None and value is not None and _newer(value, hold):
                    value, key = hold, None
                if value is not None and _newer(value, pos.value):
                    pos.value, pos.key = value, tuple(key) if key is not None else None
                pos.rows_synced += counts.inserted + counts.updated
                self.frame.commit(pos, db=db)
                progress.page(counts.read)
        finally:
            pages.close()  # loads still running on other connections end before anything rolls back
            writer.close()
        return pos

    def _comparable(self) -> bool:
        """Can both servers hash the rows (one family, one row per key at the source)?"""
        return (self.spec.compare_rows > 0 and self.unique_keys and isinstance(self.source, SqlSource)
                and self.source.open().dialect.family == self.db.dialect.family and not self._target_empty())

    def full(self) -> Position:
        if self._comparable():
            return self._full_compared()
        spec = self.spec
        writer = writer_for(self.db, self.table, self.columns, list(spec.key), spec.cursor_column, track_seen=True,
                            unique_keys=self.unique_keys)
        empty = self._target_empty()  # then every row at the end came from this run: nothing to delete
        writer.direct = spec.bulk_load_empty and self.unique_keys and empty
        window = Window(order=self.order)
        progress = Progress(spec.name, source_total(self.source, self.columns, window), committed=False)
        try:
            for counts, rejects, _last, _db in self._pages(writer, window):
                self._take(counts, rejects, writer)
                progress.page(counts.read)
            self.frame.check_budget()  # the source's own rejects may come after the last page
            if spec.delete_missing and self.frame.source_rejects:
                # A row the source could not read may well still exist there: never delete what
                # we cannot prove gone. The next clean full run deletes it.
                self.frame.details[spec.name]["kept_missing"] = True
                log.warning("%s: %d row(s) could not be read from the source; rows missing from it are not deleted "
                            "this run", spec.name, len(self.frame.source_rejects))
            elif spec.delete_missing and not empty:
                self.counts.deleted = writer.delete_unseen()
            return self._commit_full(writer)
        finally:
            writer.close()

    def _commit_full(self, writer) -> Position:
        """Rows, deletes and the cursor (the target's newest value) land together."""
        spec = self.spec
        pos = state.read_cursor(self.db, spec.name)
        if spec.cursor_column:
            col = self.db.quote(spec.cursor_column)
            top = self.db.fetchone(f"SELECT MAX({col}) FROM {writer.target}")[0]
            pos = Position(top, None, pos.rows_synced + self.counts.inserted + self.counts.updated)
        self.frame.commit(pos if spec.cursor_column else None)
        return pos

    def _full_compared(self) -> Position:
        """Full refresh reading only the rows whose hashes differ (datasync.engine.compare)."""
        spec, src, key = self.spec, self.source, list(self.spec.key)
        writer = writer_for(self.db, self.table, self.columns, key, spec.cursor_column, unique_keys=True)
        comparison = Comparison(src, self.db, self.table.name, self.columns, key, spec.compare_rows)
        progress = Progress(spec.name, committed=False)  # no count first: it would cost a third of a no-op run
        waiting: list[tuple] = []  # keys to read and merge, gathered across ranges into pages
        shown = ranges = differing = reread = gone_total = 0

        def merge_waiting() -> None:
            if not waiting:
                return
            if self._passthrough():  # one COPY of the rows by key, never Python values
                where, params = compare.key_in(src.open(), key, waiting, comparison.casts.get(key[0]))
                cols = ", ".join(self.db.quote(c) for c in self.columns)
                counts, rejects = self._copy(writer, f"SELECT {cols} FROM {src._from()} WHERE {where}", params)
            else:
                counts, rejects = writer.write(compare.rows_of(src, self.columns, key, waiting))
            self._take(counts, rejects, writer)
            waiting.clear()

        try:
            for rng, n_src, equal, changed, gone in comparison.ranges():
                ranges += 1
                differing += bool(changed or gone)
                reread += len(changed)
                gone_total += len(gone)
                if len(changed) * 2 > n_src and self._passthrough():  # mostly new: COPY the whole range
                    self._take(*self._copy_range(writer, rng.window(key), rng.through), writer)
                else:
                    self.frame.take(Counts(read=equal, unchanged=equal), [])
                    waiting += changed
                    if len(waiting) >= spec.batch_size:
                        merge_waiting()
                if gone and spec.delete_missing:
                    there = compare.still_in_source(src, key, gone)
                    self.counts.deleted += compare.delete_keys(self.db, writer.target, key,
                                                               [k for k in gone if k not in there])
                shown += n_src
                if shown >= spec.batch_size:
                    progress.page(shown)
                    shown = 0
            merge_waiting()
            if shown:
                progress.page(shown)
            self.frame.details[spec.name].update(ranges_compared=ranges, ranges_differing=differing)
            log.info("%s: compared %d key range(s) of up to %d rows on both servers; %d differed: %d new or changed "
                     "row(s) read and merged, %d target row(s) missing at the source", spec.name, ranges,
                     spec.compare_rows, differing, reread, gone_total)
            self.frame.check_budget()
            return self._commit_full(writer)
        finally:
            comparison.close()
            writer.close()

    def prune(self) -> Position:
        """Only delete: target rows whose key the source no longer has, in one transaction.
        Lets a caller upsert parents before children and then prune children before parents."""
        spec, key = self.spec, list(self.spec.key)
        if not isinstance(self.source, SqlSource):
            raise ValueError(f"{spec.name}: prune reads keys from a SQL source")
        writer = writer_for(self.db, self.table, key, key, None, track_seen=True)
        window = Window(order=key)
        try:
            while True:
                keys = self.source.fetch_page(key, window, spec.batch_size)
                if keys:
                    writer.mark_seen(keys)
                    self.counts.read += len(keys)
                    window.after = keys[-1]
                if len(keys) < spec.batch_size:
                    break
            self.counts.deleted = writer.delete_unseen()
            self.frame.commit()
        finally:
            writer.close()
        return Position()

    def upsert(self) -> Position:
        """Rows in, no cursor read: each page commits on its own (cursor advanced if given)."""
        spec = self.spec
        writer = writer_for(self.db, self.table, self.columns, list(spec.key), spec.cursor_column)
        pos = state.read_cursor(self.db, spec.name) if spec.cursor_column else Position()
        window = Window(order=self.order)
        progress = Progress(spec.name, source_total(self.source, self.columns, window))
        try:
            for counts, rejects, (value, _key), _db in self._pages(writer, window):
                self._take(counts, rejects, writer)
                moved = spec.cursor_column and value is not None and _newer(value, pos.value)
                if moved:
                    pos.value = value
                self.frame.commit(pos if moved else None)
                progress.page(counts.read)
            self.frame.check_budget()
        finally:
            writer.close()
        return pos


def run_sync(
    spec: SyncSpec,
    source: SqlSource | RowsSource,
    target_conn_id: str,
    *,
    run_id: str | None = None,
    run_start: dt.datetime | None = None,
    target: Database | None = None,
) -> SyncResult:
    """Run one sync in its :class:`RunFrame` (lock, sync_log, reject budget) in the target database.
    A :class:`RowsSource` whose producer rejects rows itself lists them in ``source.rejects``:
    they count against ``max_rejects`` (their owner stores them)."""
    started = time.monotonic()
    run_start = run_start or dt.datetime.now(dt.timezone.utc)
    db = target or connect(target_conn_id, local_infile=True)  # LOAD DATA LOCAL into the target only
    try:
        with RunFrame(db, spec.name, run_id, spec.mode, max_rejects=spec.max_rejects,
                      lock_wait_seconds=spec.lock_wait_seconds,
                      source_rejects=getattr(source, "rejects", None)) as frame:
            run = SyncRun(spec, source, frame)
            pos = {"incremental": run.incremental, "full": run.full, "upsert": run.upsert, "prune": run.prune}[spec.mode](
                *([run_start] if spec.mode == "incremental" else [])
            )
            result = SyncResult(spec.name, spec.mode, run.counts, time.monotonic() - started, pos.value,
                                {**frame.details[spec.name], "rejects": [r.describe() for r in frame.rejects[:20]]})
            frame.details[spec.name] = result.as_dict() | result.details
        log.info(result.summary(source.describe(), f"{target_conn_id}.{spec.target_table}"))
        return result
    finally:
        if isinstance(source, SqlSource):
            source.close()
        if target is None:
            db.close()
