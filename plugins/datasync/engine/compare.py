"""Full refresh that moves only what differs: both servers hash the same key ranges, and only
ranges whose hashes differ are compared row by row; only rows that differ are read and merged.

Ranges come from the source: every ``compare_rows``-th key in key order (one index-only pass).
For each range both servers compute ``count(*)`` and the sum of a 64-bit hash of each row's values
(in parallel, on connections of their own, one range ahead of the merging). Equal: nothing to do.
Different: both sides list ``(key, row hash)`` for the range; new and changed keys are read from the
source and go through the writer's merge; target keys the source lacks are checked once more
against the source before they are deleted (a key can sort differently on two servers).

Equality. Each value is cast to the target column's type on both servers before hashing (Postgres:
``x::numeric(12,2)``, json as jsonb, so key order and spacing do not count), then the row's text is
hashed. Both sessions run in UTC. Values that still hash differently although the target holds the
same value (say a float the target rounds) cost a re-read of their rows each run but are never
rewritten: the merge writes only rows the target's own equality finds distinct
(``IS DISTINCT FROM``; MySQL's ``ON DUPLICATE KEY UPDATE`` leaves equal rows alone).

Used when source and target are the same family (a Postgres row's text is not a MariaDB row's text)
and the source table's primary key is the sync key; the target rows, deletes and cursor still land
in one transaction, as for any full refresh.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from datasync.db import Database
from datasync.engine.sources import SqlSource, Window

log = logging.getLogger(__name__)

KEYS_PER_QUERY = 1000  # keys in one IN (...) list


@dataclass
class Range:
    after: tuple | None  # exclusive lower bound (None: from the start)
    through: tuple | None  # inclusive upper bound (None: to the end)

    def window(self, key: list[str]) -> Window:
        return Window(order=key, after=self.after)


class Side:
    """One server's view of the rows: the table (or query) and how its rows are hashed."""

    def __init__(self, source: SqlSource, columns: list[str], key: list[str], casts: dict[str, str],
                 writing: bool = False):
        # writing: the connection holds the run's uncommitted writes; read inside that transaction
        self.source, self.key, self.writing = source, key, writing
        db = source.open()
        q = db.quote
        exprs = [f"{q(c)}::{casts[c]}" if c in casts else q(c) for c in columns]
        self.row_hash = db.dialect.row_hash(exprs)
        self.plain_hash = db.dialect.row_hash([q(c) for c in columns])  # when a cast fails on a bad value

    def summary(self, rng: Range) -> tuple[int, int | None]:
        """(rows, hash sum) of a range; the sum is None when hashing failed (a value that does not cast)."""
        db = self.source.open()
        for expr in (self.row_hash, self.plain_hash):
            sql, params = self.source.page_sql(self.key, Window(order=self.key, after=rng.after), None,
                                               through=rng.through, select=f"count(*), sum({expr})", ordered=False)
            try:
                count, total = db.fetchone(sql, params)
                db.commit()
                return int(count), None if expr is self.plain_hash else int(total or 0)
            except Exception as exc:
                if not _is_value_error(exc):
                    raise
                db.rollback()
        raise AssertionError("unreachable")

    def hashes(self, rng: Range, limit: int | None = None, after: tuple | None = None) -> list[tuple]:
        """``(*key, row hash)`` of the range in key order, from ``after`` on, at most ``limit``."""
        db = self.source.open()
        window = Window(order=self.key, after=after if after is not None else rng.after)
        cols = ", ".join(db.quote(k) for k in self.key)
        for expr in (self.row_hash, self.plain_hash):
            sql, params = self.source.page_sql(self.key, window, limit, through=rng.through, select=f"{cols}, {expr}")
            if self.writing:  # the target's own types: nothing to fail on
                return db.fetchall(sql, params)
            try:
                rows = db.fetchall(sql, params)
                db.commit()
                return rows
            except Exception as exc:
                if not _is_value_error(exc):
                    raise
                db.rollback()
        raise AssertionError("unreachable")


def _is_value_error(exc: Exception) -> bool:
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return sqlstate.startswith(("22", "42846"))  # data exception; cannot coerce


def boundaries(source: SqlSource, key: list[str], every: int) -> list[Range]:
    """Key ranges of ``every`` source rows each (the last one open-ended)."""
    db = source.open()
    q = db.quote
    cols = ", ".join(q(k) for k in key)
    sql = (f"SELECT {cols} FROM (SELECT {cols}, row_number() OVER (ORDER BY {cols}) AS ds_n FROM {source._from()}) AS ds_b "
           f"WHERE MOD(ds_n, {int(every)}) = 0 ORDER BY {cols}")
    points = [tuple(r) for r in db.fetchall(sql)]
    db.commit()
    ranges, after = [], None
    for point in points:
        ranges.append(Range(after, point))
        after = point
    ranges.append(Range(after, None))
    return ranges


class Comparison:
    """Walks the ranges; yields per range what must move: counts so far, keys to read, keys gone."""

    def __init__(self, source: SqlSource, target_db: Database, target_table: str, columns: list[str],
                 key: list[str], every: int):
        self.key, self.every = key, every
        casts = target_db.dialect.value_types(target_db, target_table, columns)
        # Range sums run on connections of their own, one thread per server, ahead of the merge.
        self._src_sum = SqlSource(source.conn_id, table=source.table, query=source.query)
        self._tgt_sum = SqlSource(target_db.conn_id, table=target_table)
        self.source = Side(source, columns, key, casts)
        self.target = Side(SqlSource(target_db.conn_id, table=target_table, db=target_db), columns, key, casts,
                           writing=True)
        self._sums = (Side(self._src_sum, columns, key, casts), Side(self._tgt_sum, columns, key, casts))
        self._pools = (ThreadPoolExecutor(1, "ds-sum-src"), ThreadPoolExecutor(1, "ds-sum-tgt"))

    def close(self) -> None:
        for pool in self._pools:
            pool.shutdown(cancel_futures=True)
        self._src_sum.close()
        self._tgt_sum.close()

    def ranges(self):
        """Yield ``(range, source rows, equal rows, changed keys, gone keys)`` per range that differs,
        and ``(range, rows, rows, [], [])`` for one that does not."""
        ranges = boundaries(self.source.source, self.key, self.every)
        ahead: list[tuple[Future, Future]] = []
        pending = iter(ranges)

        def submit() -> None:
            rng = next(pending, None)
            if rng is not None:
                ahead.append((self._pools[0].submit(self._sums[0].summary, rng),
                              self._pools[1].submit(self._sums[1].summary, rng)))

        for _ in range(2):
            submit()
        for rng in ranges:
            src_f, tgt_f = ahead.pop(0)
            submit()
            (n_src, h_src), (n_tgt, h_tgt) = src_f.result(), tgt_f.result()
            if h_src is not None and (n_src, h_src) == (n_tgt, h_tgt):
                yield rng, n_src, n_src, [], []
                continue
            yield (rng, *self._diff(rng))

    def _diff(self, rng: Range) -> tuple[int, int, list[tuple], list[tuple]]:
        width = len(self.key)
        source = {tuple(r[:width]): r[width] for r in self.source.hashes(rng)}
        n_src, equal, changed, gone = len(source), 0, [], []
        after = None
        while True:  # the target's side in pages: it may hold far more rows in this range than the source
            page = self.target.hashes(rng, self.every, after)
            for row in page:
                k, h = tuple(row[:width]), row[width]
                theirs = source.pop(k, _MISSING)
                if theirs is _MISSING:
                    gone.append(k)
                elif theirs == h:
                    equal += 1
                else:
                    changed.append(k)
            if len(page) < self.every:
                break
            after = tuple(page[-1][:width])
        changed += source.keys()  # new
        return n_src, equal, changed, gone


_MISSING = object()


def key_in(db: Database, key: list[str], keys: list[tuple]) -> tuple[str, list[Any]]:
    """``key IN (...)`` for a list of key tuples (one column or a row value)."""
    q = db.quote
    if len(key) == 1:
        return f"{q(key[0])} IN ({', '.join(['%s'] * len(keys))})", [db.dialect.param(k[0]) for k in keys]
    one = "(" + ", ".join(["%s"] * len(key)) + ")"
    return (f"({', '.join(q(k) for k in key)}) IN ({', '.join([one] * len(keys))})",
            [db.dialect.param(v) for k in keys for v in k])


def chunks(items: list, size: int = KEYS_PER_QUERY):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def still_in_source(source: SqlSource, key: list[str], keys: list[tuple]) -> set[tuple]:
    db = source.open()
    found: set[tuple] = set()
    cols = ", ".join(db.quote(k) for k in key)
    for part in chunks(keys):
        where, params = key_in(db, key, part)
        found |= {tuple(r) for r in db.fetchall(f"SELECT {cols} FROM {source._from()} WHERE {where}", params)}
    db.commit()
    return found


def rows_of(source: SqlSource, columns: list[str], key: list[str], keys: list[tuple]) -> list[tuple]:
    db = source.open()
    rows: list[tuple] = []
    cols = ", ".join(db.quote(c) for c in columns)
    for part in chunks(keys):
        where, params = key_in(db, key, part)
        rows += db.fetchall(f"SELECT {cols} FROM {source._from()} WHERE {where}", params)
    db.commit()
    return rows


def delete_keys(db: Database, target: str, key: list[str], keys: list[tuple]) -> int:
    deleted = 0
    for part in chunks(keys):
        where, params = key_in(db, key, part)
        deleted += db.execute(f"DELETE FROM {target} WHERE {where}", params).rowcount
    return deleted
