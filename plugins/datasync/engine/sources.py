"""Where rows come from: a table or query behind an Airflow connection (read in keyset pages,
so memory stays flat and every page is a consistent restart point), or any iterable of rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from datasync.db import Database, connect
from datasync.engine.table import SchemaMismatch
from datasync.identifiers import check_table_name


def keyset_after(cols: list[str], n_values: int | None = None) -> str:
    """``(c1, c2, ...) > (v1, v2, ...)`` spelled so both Postgres and MariaDB use the index range."""
    c, rest = cols[0], cols[1:]
    if not rest:
        return f"{c} > %s"
    return f"{c} >= %s AND ({c} > %s OR ({keyset_after(rest)}))"


def keyset_params(values: list[Any]) -> list[Any]:
    if len(values) == 1:
        return [values[0]]
    return [values[0], values[0], *keyset_params(values[1:])]


@dataclass
class Window:
    """One read of a source: which rows, in which order, starting after which row."""

    order: list[str]  # cursor column (if any) then key columns
    cursor_column: str | None = None
    lower: Any = None  # cursor >= lower
    upper: Any = None  # cursor < upper
    after: tuple | None = None  # keyset position: the last row already taken


@dataclass
class SqlSource:
    """A table (validated name) or a query on any Postgres or MySQL-family connection."""

    conn_id: str
    table: str | None = None
    query: str | None = None
    db: Database | None = field(default=None, repr=False)
    _hints: dict = field(default_factory=dict, repr=False)  # index hint per read order

    def __post_init__(self):
        if bool(self.table) == bool(self.query):
            raise ValueError("give a source table or a source query, not both")
        if self.table:
            check_table_name(self.table)

    def open(self) -> Database:
        if self.db is None:
            self.db = connect(self.conn_id)
        return self.db

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def describe(self) -> str:
        return f"{self.conn_id}.{self.table}" if self.table else f"{self.conn_id} (query)"

    def _from(self, order: list[str] | None = None) -> str:
        """The FROM clause; for a table read in ``order``, with the index hint that order needs."""
        db = self.open()
        if self.table:
            name = ".".join(db.quote(p) for p in self.table.split("."))
            if order:
                if tuple(order) not in self._hints:
                    self._hints[tuple(order)] = db.dialect.index_hint(db, self.table, list(order))
                name = f"{name} {self._hints[tuple(order)]}".rstrip()
            return name
        return f"({self.query.strip().rstrip(';')}) AS src"

    def columns(self) -> list[str]:
        db = self.open()
        cur = db.execute(f"SELECT * FROM {self._from()} WHERE 1 = 0")
        names = [d[0] for d in cur.description]
        cur.close()
        db.commit()
        return names

    def check_columns(self, needed: list[str]) -> None:
        have = self.columns()
        missing = [c for c in needed if c not in have]
        if missing:
            raise SchemaMismatch(
                f"source {self.describe()} has no column(s) {missing} (renamed or dropped?); it has {have}. Nothing was written."
            )

    def _param(self, value: Any) -> Any:
        return self.open().dialect.param(value)

    def page_end(self, window: Window, limit: int) -> tuple[tuple | None, bool]:
        """The ``window.order`` values of the last row of the next page (an index-only read),
        and whether the page is full. (None, False) when nothing is left."""
        db = self.open()
        sql, params = self.page_sql(window.order, window, 1, offset=limit - 1)
        row = db.fetchone(sql, params)
        full = row is not None
        if row is None:
            sql, params = self.page_sql(window.order, window, 1, descending=True)
            row = db.fetchone(sql, params)
        db.commit()
        return (tuple(row) if row else None), full

    def page_sql(self, columns: list[str], window: Window, limit: int | None, *, through: tuple | None = None,
                 descending: bool = False, offset: int = 0, select: str | None = None,
                 ordered: bool = True) -> tuple[str, list[Any]]:
        """SELECT of the next page: ``limit`` rows, or every row up to and including ``through``
        (``select`` replaces the column list, e.g. with aggregates, then ``ordered=False``; a page
        bounded by ``through`` holds the same rows in any order, and a bulk copy need not sort them)."""
        db = self.open()
        q = db.quote
        where, params = [], []
        if window.cursor_column:
            where.append(f"{q(window.cursor_column)} IS NOT NULL")
            if window.lower is not None:
                where.append(f"{q(window.cursor_column)} >= %s")
                params.append(self._param(window.lower))
            if window.upper is not None:
                where.append(f"{q(window.cursor_column)} < %s")
                params.append(self._param(window.upper))
        if window.after is not None:
            where.append("(" + keyset_after([q(c) for c in window.order]) + ")")
            params += [self._param(v) for v in keyset_params(list(window.after))]
        if through is not None:  # the first column's bound is what lets an index range serve the page
            where.append(f"{q(window.order[0])} <= %s")
            params.append(self._param(through[0]))
            where.append("NOT (" + keyset_after([q(c) for c in window.order]) + ")")
            params += [self._param(v) for v in keyset_params(list(through))]
        direction = " DESC" if descending else ""
        sql = (
            f"SELECT {select or ', '.join(q(c) for c in columns)} FROM {self._from(window.order)}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + (f" ORDER BY {', '.join(q(c) + direction for c in window.order)}" if ordered else "")
            + (f" LIMIT {int(limit)}" if limit else "")
            + (f" OFFSET {int(offset)}" if offset else "")
        )
        return sql, params

    def fetch_page(self, columns: list[str], window: Window, limit: int | None, through: tuple | None = None) -> list[tuple]:
        db = self.open()
        sql, params = self.page_sql(columns, window, limit, through=through)
        rows = db.fetchall(sql, params)
        db.commit()  # no long transaction on the source between pages
        return rows


@dataclass
class RowsSource:
    """Rows from anywhere (API pages, files): an iterable of tuples in ``columns`` order, or of dicts."""

    rows: Iterable[Any]
    columns: list[str]
    name: str = "rows"
    rejects: list | None = None  # records the producer itself rejected (a live list): they count against max_rejects

    def describe(self) -> str:
        return self.name

    def tuples(self) -> Iterator[tuple]:
        cols = self.columns
        for row in self.rows:
            if isinstance(row, dict):
                missing = [c for c in cols if c not in row]
                if missing:
                    raise SchemaMismatch(f"{self.name}: record has no field(s) {missing}; it has {sorted(row)}")
                yield tuple(row[c] for c in cols)
            else:
                yield tuple(row)
