"""Full refresh that moves only what differs: both servers hash the same key ranges, and only
ranges whose hashes differ are compared row by row; only rows that differ are read and merged.

Ranges come from the source: each ends at the ``compare_rows``-th next key. For each range both
servers compute ``count(*)`` and the sum of a 64-bit hash of each row's values (in parallel, on
connections of their own, one range ahead of the merging). Equal: nothing to do.
Different: both sides list ``(key, row hash)`` for the range; new and changed keys are read from the
source and go through the writer's merge; target keys the source lacks are checked once more
against the source before they are deleted (a key can sort differently on two servers).

Equality. Both servers cast each value to the target column's type before hashing, both sessions
in UTC. Postgres then hashes each value with its type's own hash function, which agrees with the
type's equality (numeric 1.50 = 1.5, float -0 = 0, jsonb ignores key order and spacing; json is
compared as jsonb): the sums agree exactly when the merge's ``IS DISTINCT FROM`` would find nothing
to do. Types without a hash function, and a value that does not cast, are hashed as text. MySQL-family
servers hash the values' text (``QUOTE``). Rows whose text differs although the target finds them
equal (a DOUBLE 1.5 and a DECIMAL 1.50) are read again each run but never rewritten: the merge writes
only rows the target finds distinct (``ON DUPLICATE KEY UPDATE`` leaves equal rows alone).

Used when source and target are the same family (a Postgres row's text is not a MariaDB row's text)
and the source table's primary key is the sync key; the target rows, deletes and cursor still land
in one transaction, as for any full refresh.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from datasync.db import POSTGRES, Database
from datasync.engine.sources import SqlSource, Window

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
                 as_text: bool, writing: bool = False):
        # writing: the connection holds the run's uncommitted writes; read inside that transaction
        self.source, self.key, self.writing = source, key, writing
        db = source.open()
        self.arrays = db.dialect.family == POSTGRES  # until a key type turns out to have no binary loader
        q = db.quote
        exprs = [f"{q(c)}::{casts[c]}" if c in casts else q(c) for c in columns]
        self.row_hash = db.dialect.row_hash(exprs, as_text=as_text)
        self.plain_hash = db.dialect.row_hash([q(c) for c in columns], as_text=True)  # a value that does not cast

    def _read(self, select: str, rng: Range, wrap: str = "{}", binary: bool = False, **page) -> tuple[list[tuple], bool]:
        """Rows of ``select`` over the range (``wrap``: an outer query around it), and whether they are
        typed hashes (False: text hashes)."""
        db = self.source.open()
        window, limit = page.pop("window", rng.window(self.key)), page.pop("limit", None)
        for expr in (self.row_hash, self.plain_hash):
            sql, params = self.source.page_sql(self.key, window, limit, through=rng.through,
                                               select=select.format(hash=expr), **page)
            sql = wrap.format(sql)
            if self.writing:  # the target's own types: nothing to fail on
                return db.fetchall(sql, params, binary=binary), True
            try:
                rows = db.fetchall(sql, params, binary=binary)
                db.commit()
                return rows, expr is self.row_hash
            except Exception as exc:
                if not _is_value_error(exc) or expr is self.plain_hash:
                    raise
                db.rollback()
        raise AssertionError("unreachable")

    def summary(self, rng: Range) -> tuple[int, int | None]:
        """(rows, hash sum) of a range; the sum is None when a value did not cast."""
        [(count, total)], typed = self._read("count(*), sum({hash})", rng, ordered=False)
        return int(count), int(total or 0) if typed else None

    def hashes(self, rng: Range, limit: int | None = None, after: tuple | None = None) -> tuple[list, list[int]]:
        """Keys and row hashes of the range in key order, from ``after`` on, at most ``limit``; a key is
        its value for a one-column key, else a tuple."""
        db = self.source.open()
        cols = ", ".join(db.quote(k) for k in self.key)
        window = Window(order=self.key, after=after if after is not None else rng.after)
        columns = None
        if self.arrays:  # Postgres: one binary array per column, a fifth of the client CPU of text rows
            # A whole range may come in any order (the caller compares by key); a page must be the first rows.
            order = f" ORDER BY {cols}" if limit else ""
            aggs = [f"array_agg({db.quote(k)}{order})" for k in self.key] + [f"array_agg(ds_row_hash{order})"]
            [row], _ = self._read(f"{cols}, {{hash}} AS ds_row_hash", rng, window=window, limit=limit, binary=True,
                                  wrap=f"SELECT {', '.join(aggs)} FROM ({{}}) p", ordered=bool(limit))
            if all(c is None or isinstance(c, list) for c in row):
                columns = [c or [] for c in row]
            else:  # a key type without a binary loader arrives as bytes: rows as text from now on
                self.arrays = False
        if columns is None:
            rows, _ = self._read(f"{cols}, {{hash}}", rng, window=window, limit=limit)
            columns = [list(c) for c in zip(*rows)] or [[] for _ in range(len(self.key) + 1)]
        *keys, hashes = columns
        return (keys[0] if len(keys) == 1 else list(zip(*keys))), hashes


def _is_value_error(exc: Exception) -> bool:
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return sqlstate.startswith(("22", "42846", "42883"))  # data exception; cannot coerce; no hash function


def _hashable(db: Database, table: str, columns: list[str], casts: dict[str, str]) -> bool:
    """Do the target's column types all have a hash function? (Asked on a connection of its own.)"""
    q = db.quote
    sql = f"SELECT {db.dialect.row_hash([q(c) for c in columns])} FROM {'.'.join(q(p) for p in table.split('.'))} LIMIT 1"
    try:
        db.fetchall(sql)
        return True
    except Exception as exc:
        if not _is_value_error(exc):
            raise
        return False
    finally:
        db.rollback()


class Comparison:
    """Walks the ranges, yielding for each ``(range, source rows, equal rows, changed keys, gone keys)``.

    The next range is planned while this one is merged, on connections of their own (one thread
    per server): its end is the ``compare_rows``-th source key (an index-only read) and both servers
    sum its hashes at once. A range that differs is listed row by row on both servers at once.
    While ranges keep differing (changes spread thinly over the table) the sums are skipped: they
    would only cost a second hashing."""

    STREAK = 2  # ranges in a row that differed, after which sums are skipped

    def __init__(self, source: SqlSource, target_db: Database, target_table: str, columns: list[str],
                 key: list[str], every: int):
        self.key, self.every = key, every
        self.casts = casts = target_db.dialect.value_types(target_db, target_table, columns)
        self._src_sum = SqlSource(source.conn_id, table=source.table, query=source.query)
        self._tgt_sum = SqlSource(target_db.conn_id, table=target_table)
        as_text = not _hashable(self._tgt_sum.open(), target_table, columns, casts)

        def side(src: SqlSource, writing: bool = False) -> Side:
            return Side(src, columns, key, casts, as_text, writing)

        self.source = side(source)
        self.target = side(SqlSource(target_db.conn_id, table=target_table, db=target_db), writing=True)
        self._sums = (side(self._src_sum), side(self._tgt_sum))
        self._pools = (ThreadPoolExecutor(1, "ds-sum-src"), ThreadPoolExecutor(1, "ds-sum-tgt"),
                       ThreadPoolExecutor(1, "ds-diff-src"))

    def close(self) -> None:
        for pool in self._pools:
            pool.shutdown(cancel_futures=True)
        self._src_sum.close()
        self._tgt_sum.close()

    def _plan(self, after: tuple | None, summed: bool) -> tuple[Range, Future | None, Future | None]:
        """The range after ``after`` (source-sum thread), and its sums on both servers if wanted."""
        end, full = self._src_sum.page_end(Window(order=self.key, after=after), self.every)
        rng = Range(after, end if full else None)
        if not summed:
            return rng, None, None
        return rng, self._pools[0].submit(self._sums[0].summary, rng), self._pools[1].submit(self._sums[1].summary, rng)

    def ranges(self):
        differing = 0  # ranges in a row that differed
        planned = self._pools[0].submit(self._plan, None, True)
        while planned is not None:
            rng, src_sum, tgt_sum = planned.result()
            planned = None if rng.through is None else self._pools[0].submit(
                self._plan, rng.through, differing < self.STREAK)
            if src_sum is not None:
                (n_src, h_src), (n_tgt, h_tgt) = src_sum.result(), tgt_sum.result()
                if h_src is not None and (n_src, h_src) == (n_tgt, h_tgt):
                    differing = 0
                    yield rng, n_src, n_src, [], []
                    continue
            n_src, equal, changed, gone = self._diff(rng)
            differing = differing + 1 if changed or gone else 0
            yield rng, n_src, equal, changed, gone

    def _diff(self, rng: Range) -> tuple[int, int, list[tuple], list[tuple]]:
        listed = self._pools[2].submit(self.source.hashes, rng)
        keys, hashes = self.target.hashes(rng, self.every)  # meanwhile, on this thread
        src_keys, src_hashes = listed.result()
        n_src = len(src_keys)
        one = len(self.key) == 1

        def as_tuple(k):  # what callers take: a key is always a tuple
            return (k,) if one else k

        if len(keys) < self.every and keys == src_keys:  # the same keys (rows only changed): side by side
            changed = [k for k, mine, theirs in zip(keys, hashes, src_hashes) if mine != theirs]
            return n_src, n_src - len(changed), [as_tuple(k) for k in changed], []
        source = dict(zip(src_keys, src_hashes))
        equal, changed, gone = 0, [], []
        while True:  # the target's side in pages: it may hold far more rows in this range than the source
            for k, h in zip(keys, hashes):
                theirs = source.pop(k, _MISSING)
                if theirs is _MISSING:
                    gone.append(k)
                elif theirs == h:
                    equal += 1
                else:
                    changed.append(k)
            if len(keys) < self.every:
                break
            keys, hashes = self.target.hashes(rng, self.every, as_tuple(keys[-1]))
        changed += source.keys()  # new
        return n_src, equal, [as_tuple(k) for k in changed], [as_tuple(k) for k in gone]


_MISSING = object()


def key_in(db: Database, key: list[str], keys: list[tuple], key_type: str | None = None) -> tuple[str, list[Any]]:
    """``key IN (...)`` for a list of key tuples (one column or a row value); on Postgres with the
    key's type given, one array parameter (typed, so the key's index serves it)."""
    q = db.quote
    if len(key) == 1 and key_type and db.dialect.family == POSTGRES:
        return f"{q(key[0])} = ANY(%s::{key_type}[])", [[db.dialect.param(k[0]) for k in keys]]
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
