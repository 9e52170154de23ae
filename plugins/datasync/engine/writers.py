"""Bulk UPSERT into Postgres (COPY -> staging -> ON CONFLICT) and the MySQL family
(multi-row INSERT ... ON DUPLICATE KEY UPDATE), with the same counts and the same way of
isolating bad rows: a failing batch is split in halves until the offending rows are found.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import logging
import math
import os
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from datasync.db import Database, connect
from datasync.engine.state import Counts, Reject
from datasync.engine.table import TableInfo

log = logging.getLogger(__name__)

REPEATED_SHOWN = 5  # duplicate keys named in the log per page


class UnsendableValue(ValueError):
    """A value this driver must not send (the row is then checked and named like any bad row)."""


class Writer:
    """Writes batches of row tuples (in ``columns`` order) into one table, inside the caller's
    transaction. ``track_seen`` remembers every key written so a full refresh can delete the rest."""

    def __init__(self, db: Database, table: TableInfo, columns: list[str], key: list[str],
                 cursor_column: str | None = None, track_seen: bool = False, unique_keys: bool = False):
        self.db, self.table, self.columns, self.key = db, table, columns, key
        self.cursor_column = cursor_column
        self.track_seen = track_seen
        self.unique_keys = unique_keys  # the source guarantees one row per key: no de-duplication pass
        self.direct = False  # set by the caller for an initial load into an empty table
        self.key_idx = [columns.index(k) for k in key]
        self.q = db.quote
        self.target = ".".join(db.quote(p) for p in table.name.split("."))
        self._sp = 0
        self.repeated: list[tuple[tuple, int]] = []  # (key, times) seen more than once in a batch, a few

    def take_repeated(self) -> list[tuple[tuple, int]]:
        """Examples of keys that came more than once since the last call (for the log)."""
        out, self.repeated = self.repeated[:REPEATED_SHOWN], []
        return out

    # -- shared --------------------------------------------------------------------------------
    def key_of(self, row: tuple) -> tuple:
        return tuple(row[i] for i in self.key_idx)

    def savepoint(self) -> str:
        self._sp += 1
        name = f"ds_sp_{self._sp}"
        self.db.execute(f"SAVEPOINT {name}")
        return name

    def rollback_to(self, name: str) -> None:
        self.db.execute(f"ROLLBACK TO SAVEPOINT {name}")

    def write(self, rows: list[tuple]) -> tuple[Counts, list[Reject]]:
        """Upsert a batch; rows the target refuses come back as rejects, the rest are written."""
        sp = self.savepoint()
        try:
            return self._merge(rows), []
        except Exception as exc:
            if not _is_data_error(exc):
                raise
            self.rollback_to(sp)
        # Slow path, only for a batch that failed: name what is wrong, then let the server judge the rest.
        good, rejects = [], []
        for row in rows:
            problems = self.table.problems(self.columns, row)
            if problems:
                column, value, reason = problems[0]
                rejects.append(self._reject(row, column, value, reason))
            else:
                good.append(row)
        counts = self._bisect(good, rejects)
        counts.rejected = len(rejects)
        counts.read = len(rows)
        if self.track_seen and rejects:
            self.mark_seen([self.key_of_reject(r) for r in rejects])
        return counts, rejects

    def key_of_reject(self, reject: Reject) -> tuple:
        return tuple(reject.key) if isinstance(reject.key, (list, tuple)) else (reject.key,)

    def _bisect(self, rows: list[tuple], rejects: list[Reject]) -> Counts:
        counts = Counts()
        if not rows:
            return counts
        sp = self.savepoint()
        try:
            counts.add(self._merge(rows))
            return counts
        except Exception as exc:
            if not _is_data_error(exc):
                raise
            self.rollback_to(sp)
            if len(rows) == 1:
                reject = self._reject(rows[0], self.column_of(exc), None, _reason_of(exc))
                reject.missing_parent = _is_missing_parent(exc)
                rejects.append(reject)
                return counts
        mid = len(rows) // 2
        counts.add(self._bisect(rows[:mid], rejects))
        counts.add(self._bisect(rows[mid:], rejects))
        return counts

    def _reject(self, row: tuple, column: str | None, value: Any, reason: str) -> Reject:
        key = self.key_of(row)
        if value is None and column in self.columns:
            value = row[self.columns.index(column)]
        return Reject(self.table.name, list(key) if len(key) > 1 else key[0], column, value, reason,
                      dict(zip(self.columns, row)))  # stored JSON-safely by state.write_rejects

    def column_of(self, exc: Exception) -> str | None:
        return _column_of(exc)

    def _merge(self, rows: list[tuple]) -> Counts:
        raise NotImplementedError

    def mark_seen(self, keys: list[tuple]) -> None:
        raise NotImplementedError

    def delete_unseen(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _is_data_error(exc: Exception) -> bool:
    """Errors caused by the rows (retrying them alone can isolate them), not by the server."""
    name = type(exc).__name__
    if isinstance(exc, (UnicodeEncodeError, UnsendableValue)):  # e.g. a lone surrogate: no driver can send it
        return True
    if hasattr(exc, "sqlstate") and exc.sqlstate:  # psycopg
        return exc.sqlstate[:2] in ("22", "23") or exc.sqlstate == "42804"
    if name == "DataError" and type(exc).__module__.startswith("psycopg"):
        return True  # refused before it was sent, e.g. a NUL byte in text
    if name in ("DataError", "IntegrityError", "OperationalError") and exc.args and isinstance(exc.args[0], int):
        # MySQL: data too long, out of range, bad value, NULL, duplicate, FK, check, JSON
        return exc.args[0] in (1048, 1062, 1264, 1265, 1292, 1366, 1406, 1411, 1451, 1452, 3140, 4025, 3819, 1690, 4078)
    return False


def _is_missing_parent(exc: Exception) -> bool:
    """A foreign key names a row the target does not have (yet)."""
    if getattr(exc, "sqlstate", None):
        return exc.sqlstate == "23503"
    return bool(exc.args) and exc.args[0] == 1452  # MySQL family: "Cannot add or update a child row"


def _reason_of(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(getattr(exc, "args", None), tuple) and len(exc.args) == 2 and isinstance(exc.args[0], int):
        text = str(exc.args[1])
    return text[:500]


def _column_of(exc: Exception) -> str | None:
    diag = getattr(exc, "diag", None)
    if diag is not None and getattr(diag, "column_name", None):
        return diag.column_name
    text = str(exc)
    if "CONSTRAINT `" in text and "." in text.split("CONSTRAINT `", 1)[1].split("`", 1)[0]:  # MariaDB column check
        return text.split("CONSTRAINT `", 1)[1].split("`", 1)[0].rsplit(".", 1)[1]
    for marker in ("column '", "column `", 'column "'):
        if marker in text:
            return text.split(marker, 1)[1].split(marker[-1], 1)[0]
    return None


# ---- Postgres ------------------------------------------------------------------------------------
class PostgresWriter(Writer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        suffix = uuid.uuid4().hex[:8]
        self.stage = f"_ds_stage_{suffix}"
        self.seen = f"_ds_seen_{suffix}"
        cols = ", ".join(self.q(c) for c in self.columns)
        keys = ", ".join(self.q(k) for k in self.key)
        # Typed like the target but without its constraints: COPY parses, the merge judges.
        self.db.execute(f"CREATE TEMP TABLE {self.stage} AS SELECT {cols} FROM {self.target} WITH NO DATA")
        if self.track_seen:
            self.db.execute(f"CREATE TEMP TABLE {self.seen} AS SELECT {keys} FROM {self.target} WITH NO DATA")
        self.db.commit()
        self.json_idx = [i for i, c in enumerate(self.columns) if self.table.columns[c].is_json]
        self.bytea_columns = {c for c in self.columns if self.table.columns[c].data_type == "bytea"}
        self.merge_sql = self._merge_sql()

    def _merge_sql(self) -> str:
        q = self.q
        cols = ", ".join(q(c) for c in self.columns)
        keys = ", ".join(q(k) for k in self.key)
        order = [q(k) for k in self.key]
        if self.cursor_column:
            order.append(f"{q(self.cursor_column)} DESC NULLS LAST")
        order.append("ctid DESC")  # a freshly truncated heap keeps input order: the last one wins
        rest = [c for c in self.columns if c not in self.key]

        def cmp(prefix: str, c: str) -> str:  # json has no equality operator; jsonb does
            return f"{prefix}.{q(c)}::jsonb" if self.table.columns[c].data_type == "json" else f"{prefix}.{q(c)}"

        if rest:
            sets = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in rest)
            old = ", ".join(cmp("t", c) for c in rest)
            new = ", ".join(cmp("EXCLUDED", c) for c in rest)
            conflict = f"DO UPDATE SET {sets} WHERE ROW({old}) IS DISTINCT FROM ROW({new})"
        else:
            conflict = "DO NOTHING"
        seen = f", seen AS (INSERT INTO {self.seen} ({keys}) SELECT {keys} FROM src)" if self.track_seen else ""
        pick = (
            f"SELECT {cols} FROM {self.stage}"
            if self.unique_keys
            else f"SELECT DISTINCT ON ({keys}) {cols} FROM {self.stage} ORDER BY {', '.join(order)}"
        )
        # Unchanged rows are dropped by an anti-join before the upsert: much cheaper than letting
        # ON CONFLICT lock and compare each of them (its WHERE still guards a concurrent change).
        match = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in self.key)
        same = (f" AND ROW({', '.join(cmp('t', c) for c in rest)}) IS NOT DISTINCT FROM ROW({', '.join(cmp('s', c) for c in rest)})"
                if rest else "")
        changed = (f"SELECT {', '.join('s.' + q(c) for c in self.columns)} FROM src s "
                   f"WHERE NOT EXISTS (SELECT 1 FROM {self.target} t WHERE {match}{same})")
        return (
            f"WITH src AS ({pick}){seen}, "
            f"up AS (INSERT INTO {self.target} AS t ({cols}) {changed} ON CONFLICT ({keys}) {conflict} "
            "RETURNING (xmax = 0) AS inserted) "
            f"SELECT (SELECT count(*) FROM {self.stage}), (SELECT count(*) FROM src), "
            "count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up"
        )

    def column_of(self, exc: Exception) -> str | None:
        diag = getattr(exc, "diag", None)
        detail = getattr(diag, "message_detail", None) or ""
        if detail.startswith("Key (") and "," not in detail.split(")", 1)[0]:  # FK / unique: Key (col)=(value)
            return detail[5:].split(")", 1)[0]
        constraint = getattr(diag, "constraint_name", None)
        if constraint:  # a one-column CHECK constraint names its column in the catalog
            sp = self.savepoint()
            row = self.db.fetchone(
                "SELECT a.attname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
                "WHERE c.conname = %s AND c.conrelid = %s::regclass AND cardinality(c.conkey) = 1",
                (constraint, self.target),
            )
            self.rollback_to(sp)
            if row:
                return row[0]
        return _column_of(exc)

    def _copy_in(self, table: str | None = None) -> str:
        return f"COPY {table or self.stage} ({', '.join(self.q(c) for c in self.columns)}) FROM STDIN"

    def _copy_rows(self, cur, table: str, rows: list[tuple]) -> None:
        with cur.copy(self._copy_in(table)) as copy:
            if self.json_idx:
                for row in rows:
                    copy.write_row(_with_json(row, self.json_idx))
            else:
                for row in rows:
                    copy.write_row(row)

    def _merge(self, rows: list[tuple]) -> Counts:
        cur = self.db.cursor()
        if self.direct:  # an initial load into an empty table: straight in, like copy_page
            sp = self.savepoint()
            try:
                self._copy_rows(cur, self.target, rows)
                return Counts(read=len(rows), inserted=len(rows))
            except Exception:
                # e.g. a duplicate key or a bad value: the staging path sorts it out from here on
                self.rollback_to(sp)
                self.direct = False
        self.db.execute(f"TRUNCATE {self.stage}")
        self._copy_rows(cur, self.stage, rows)
        return self._run_merge(cur)

    def _run_merge(self, cur) -> Counts:
        cur.execute(self.merge_sql)
        read, distinct, inserted, updated = cur.fetchone()
        if read > distinct:
            keys = ", ".join(self.q(k) for k in self.key)
            for *key, times in self.db.fetchall(
                    f"SELECT {keys}, count(*) FROM {self.stage} GROUP BY {keys} HAVING count(*) > 1 "
                    f"ORDER BY count(*) DESC, {keys} LIMIT {REPEATED_SHOWN}"):
                self.repeated.append((tuple(key), times))
        return Counts(read=read, inserted=inserted, updated=updated, unchanged=distinct - inserted - updated,
                      duplicates=read - distinct)

    def copy_page(self, source_cursor, copy_sql: str, params: Any) -> Counts:
        """Postgres -> Postgres: stream ``COPY (query) TO STDOUT`` into this table without a row
        ever becoming a Python object."""

        def feed(into) -> None:
            with source_cursor.copy(copy_sql, params) as out:
                pipe(out, into)

        return self.copy_text(feed, source_cursor.connection.rollback)

    def copy_text(self, feed: Callable[[Any], None], on_retry: Callable[[], None] = lambda: None) -> Counts:
        """Rows as COPY text, written by ``feed(copy)``. An initial load into an empty table
        (``direct``) goes straight into the target like a plain bulk load; otherwise, or if that
        fails (``on_retry`` then resets the source), through the staging table and the merge."""
        if self.direct:
            sp = self.savepoint()
            try:
                cur = self.db.cursor()
                with cur.copy(self._copy_in(self.target)) as into:
                    feed(into)
                return Counts(read=cur.rowcount, inserted=cur.rowcount)
            except Exception:
                # e.g. a duplicate key or a bad value: the staging path sorts it out from here on
                self.rollback_to(sp)
                on_retry()
                self.direct = False
        self.db.execute(f"TRUNCATE {self.stage}")
        cur = self.db.cursor()
        with cur.copy(self._copy_in()) as into:
            feed(into)
        return self._run_merge(cur)

    def mark_seen(self, keys: list[tuple]) -> None:
        cols = ", ".join(self.q(k) for k in self.key)
        with self.db.cursor().copy(f"COPY {self.seen} ({cols}) FROM STDIN") as copy:
            for k in keys:
                copy.write_row(k)

    def delete_unseen(self) -> int:
        match = " AND ".join(f"s.{self.q(k)} = t.{self.q(k)}" for k in self.key)
        cur = self.db.execute(f"DELETE FROM {self.target} AS t WHERE NOT EXISTS (SELECT 1 FROM {self.seen} s WHERE {match})")
        return cur.rowcount

    def close(self) -> None:
        try:
            self.db.rollback()
            self.db.execute(f"DROP TABLE IF EXISTS {self.stage}")
            if self.track_seen:
                self.db.execute(f"DROP TABLE IF EXISTS {self.seen}")
            self.db.commit()
        except Exception:  # the session may be gone; temp tables die with it
            pass


def pipe(out, into, chunk: int = 1 << 20) -> None:
    """Copy COPY data across connections in ~1 MB writes (COPY TO yields one row per block)."""
    buf = bytearray()
    for block in out:
        buf += block
        if len(buf) >= chunk:
            into.write(buf)
            buf = bytearray()
    if buf:
        into.write(buf)


def _with_json(row: tuple, idx: list[int]) -> tuple:
    row = list(row)
    for i in idx:
        if isinstance(row[i], (dict, list)):
            row[i] = json.dumps(row[i])
    return tuple(row)


# ---- MySQL / MariaDB / TiDB ----------------------------------------------------------------------
def _install_encoders(conn) -> None:
    """Teach this mysqlclient connection the values other sources hand us (once per connection;
    escaping stays inside the driver instead of a Python pass over every value)."""
    from MySQLdb.converters import DateTime2literal, Decimal2Literal, Float2Str

    enc = conn.encoders
    if enc.get(uuid.UUID):
        return

    def as_text(text: str, mapping) -> bytes:
        return conn.string_literal(text.encode(conn.encoding))

    def aware_datetime(value, mapping):  # DATETIME holds UTC without a zone
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return DateTime2literal(value, mapping)

    def number(value, mapping):
        # No MySQL-family column holds NaN or an infinity, and a non-strict sql_mode would quietly
        # store a 0: refuse the value here, so the row is named like any other bad row.
        if isinstance(value, float) and not math.isfinite(value) or isinstance(value, Decimal) and not value.is_finite():
            raise UnsendableValue(f"{value} cannot be stored in a MySQL-family column")
        return (Float2Str if isinstance(value, float) else Decimal2Literal)(value, mapping)

    enc[dt.datetime] = aware_datetime
    enc[float] = enc[Decimal] = number
    enc[uuid.UUID] = lambda value, mapping: as_text(str(value), mapping)
    enc[dict] = lambda value, mapping: as_text(json.dumps(value), mapping)


# LOAD DATA reads what both the Python rows path and Postgres' COPY ... (FORMAT csv) write: every
# value quoted, NULL a bare NULL (so '' and 'NULL' stay text), quotes and backslashes escaped
# with a backslash, newlines and other bytes raw inside the quotes.
LOAD_CSV = ("CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' "
            "LINES TERMINATED BY '\\n'")
# MySQL-family types the CSV carries (binary ones as hex); a table with any other type is written
# with INSERT statements as before.
_LOADABLE = {
    "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "float", "double", "real",
    "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json", "enum", "set",
    "date", "datetime", "timestamp", "time", "year",
}
_BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
# The server or the client will not take LOAD DATA LOCAL (MySQL 8: local_infile=OFF; MariaDB; client side).
_LOCAL_INFILE_REFUSED = {1148, 2068, 3948, 4166}


class _Null(float):
    """NULL in the CSV: the csv module leaves numbers unquoted, and an unquoted NULL is SQL NULL."""

    def __repr__(self) -> str:
        return "NULL"

    __str__ = __repr__


_NULL = _Null()
_AS_IS = {str, int, float, Decimal, dt.date, dt.time, uuid.UUID}  # str() of these is what the server parses


def _cell(value: Any) -> Any:
    """A Python value the csv module writes as its MySQL text (the uncommon types: one call each)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dt.datetime):  # DATETIME holds UTC without a zone
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    if isinstance(value, dt.timedelta):  # TIME: [-]hhh:mm:ss.ffffff
        sign, value = ("-", -value) if value < dt.timedelta(0) else ("", value)
        hours, rest = divmod(value.total_seconds(), 3600)
        return f"{sign}{int(hours)}:{int(rest // 60):02d}:{rest % 60:09.6f}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnsendableValue(f"bytes that are not UTF-8 text for a text column: {exc}") from None
    for kind in (str, int, float, Decimal):  # subclasses (enums, ...)
        if isinstance(value, kind):
            return kind(value)
    return str(value)


def _hex(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value).encode("utf-8").hex()


def write_csv(out, rows: Iterable[tuple], hex_idx: list[int]) -> None:
    """Rows as LOAD_CSV text in one pass of the csv module."""
    writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, escapechar="\\", doublequote=False, lineterminator="\n")
    as_is, null = _AS_IS, _NULL
    for row in rows:
        if hex_idx:
            row = list(row)
            for i in hex_idx:
                if row[i] is not None:
                    row[i] = _hex(row[i])
        writer.writerow([null if v is None else v if type(v) in as_is else _cell(v) for v in row])


class LoadWarnings(UnsendableValue):
    """LOAD DATA stored some value differently than it was given (it turns bad values into
    warnings): the page goes the slow path, which names the rows."""

    def __init__(self, message: str, column: str | None):
        super().__init__(message)
        self.column = column


class MySqlWriter(Writer):
    """Pages go to the server as a CSV file (``LOAD DATA LOCAL INFILE``) into a session staging
    table typed like the target, then one ``INSERT ... SELECT ... ON DUPLICATE KEY UPDATE``;
    unchanged rows are left alone (MySQL counts 0 affected for them). Without LOCAL INFILE, or
    for a column type the CSV does not carry: multi-row INSERT statements.

    TiDB keeps the staging table in memory (``tidb_tmp_table_max_size``, 64 MiB by default) and a
    page is one transaction (``txn-total-size-limit``): choose ``batch_size`` so that a page's
    rows stay well under both, e.g. 20,000 rows of about 1 KB."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        q = self.q
        cols = ", ".join(q(c) for c in self.columns)
        rest = [c for c in self.columns if c not in self.key]
        marks = ", ".join(["%s"] * len(self.columns))
        self.update = ", ".join(f"{q(c)} = VALUES({q(c)})" for c in (rest or self.key[:1]))
        self.insert_sql = f"INSERT INTO {self.target} ({cols}) VALUES ({marks}) ON DUPLICATE KEY UPDATE {self.update}"
        self.cursor_idx = self.columns.index(self.cursor_column) if self.cursor_column else None
        suffix = uuid.uuid4().hex[:8]
        self.seen = f"_ds_seen_{suffix}"
        self.stage = f"_ds_stage_{suffix}"
        _install_encoders(self.db.conn)
        # mysqlclient spells a list as a tuple literal, so JSON arrays become text first.
        self.json_idx = [i for i, c in enumerate(self.columns) if self.table.columns[c].is_json]
        self.hex_columns = {c for c in self.columns if self.table.columns[c].data_type in _BINARY}
        if self.track_seen:
            key_defs = ", ".join(f"{q(k)} {self.table.columns[k].column_type or self.table.columns[k].data_type}" for k in self.key)
            self.db.execute(f"CREATE TEMPORARY TABLE {self.seen} ({key_defs}, PRIMARY KEY ({', '.join(q(k) for k in self.key)}))")
        self.tmpdir: str | None = None
        self.bulk = self._start_bulk()

    # -- LOAD DATA --------------------------------------------------------------------------------
    def _start_bulk(self) -> bool:
        types = {c: self.table.columns[c].data_type for c in self.columns}
        if not self.db.dialect.load_data_usable(self.db) or any(t not in _LOADABLE | _BINARY for t in types.values()):
            return False
        if self.db.local_infile_refused:
            return False
        q = self.q
        schema, _, bare = self.table.name.rpartition(".")
        info = {name: (ctype, collation) for name, ctype, collation in self.db.fetchall(
            "SELECT column_name, column_type, collation_name FROM information_schema.columns "
            f"WHERE table_schema = {'%s' if schema else 'DATABASE()'} AND table_name = %s",
            (schema, bare) if schema else (bare,))}
        # The target's types and collations (keys compare as the target compares them), no
        # constraints: values are converted on LOAD, judged by the INSERT into the target.
        defs = ", ".join(f"{q(c)} {info[c][0]}" + (f" COLLATE {info[c][1]}" if info[c][1] else "") for c in self.columns)
        self.stage_ddl = f"CREATE TEMPORARY TABLE {self.stage} (_ds_seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, {defs})"
        self.db.execute(self.stage_ddl)
        fields = [f"@{i}" if c in self.hex_columns else q(c) for i, c in enumerate(self.columns)]
        unhex = [f"{q(c)} = UNHEX(@{i})" for i, c in enumerate(self.columns) if c in self.hex_columns]
        self.load_tail = f"{LOAD_CSV} ({', '.join(fields)})" + (f" SET {', '.join(unhex)}" if unhex else "")
        self.tmpdir = tempfile.mkdtemp(prefix="datasync-load-")  # 0700: only this user reads the pages
        try:
            with self._page_file() as path:
                self.db.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE {self.stage} {self.load_tail}", (path,)).close()
        except Exception as exc:
            if not (exc.args and exc.args[0] in _LOCAL_INFILE_REFUSED):
                raise
            self.db.local_infile_refused = True  # once per connection
            log.warning("%s: LOAD DATA LOCAL INFILE is refused (%s); the server's local_infile setting must be ON and "
                        "the target connection opened with local_infile. Writing with INSERT statements instead (slower).",
                        self.table.name, _reason_of(exc))
            self.db.execute(f"DROP TEMPORARY TABLE IF EXISTS {self.stage}")
            return False
        return True

    @contextlib.contextmanager
    def _page_file(self):
        """A new, empty file in the private directory, deleted afterwards whatever happens."""
        fd, path = tempfile.mkstemp(suffix=".csv", dir=self.tmpdir)
        os.close(fd)
        try:
            yield path
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _load(self, path: str, table: str) -> int:
        """LOAD the file into ``table``; any warning means a value did not go in as given."""
        cur = self.db.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE {table} {self.load_tail}", (path,))
        loaded = cur.rowcount
        cur.close()
        if self.db.conn.warning_count():
            level, code, message = self.db.fetchone("SHOW WARNINGS LIMIT 1")
            message = message.replace(self.stage, self.table.name.rpartition(".")[2])
            raise LoadWarnings(message, _warned_column(message))
        return loaded

    def load_straight(self, path: str) -> Counts:
        """LOAD the file straight into the (empty) target; any warning or error raises."""
        loaded = self._load(path, self.target)
        return Counts(read=loaded, inserted=loaded)

    def twin(self) -> MySqlWriter:
        """The same writer on a new connection to the target, for a page loading beside this one's."""
        twin = MySqlWriter(connect(self.db.conn_id, local_infile=True), self.table, self.columns, self.key,
                           self.cursor_column, unique_keys=self.unique_keys)
        twin.direct = self.direct
        return twin

    def _reset_stage(self) -> None:
        # TRUNCATE would commit the transaction; a temporary table's DROP/CREATE does not.
        if self.db.dialect.transactional_load:
            self.db.execute(f"DROP TEMPORARY TABLE {self.stage}")
            self.db.execute(self.stage_ddl)
        else:
            self.db.execute(f"DELETE FROM {self.stage}")

    @property
    def straight(self) -> bool:
        """Pages load straight into the empty target (TiDB before 7.6 cannot roll such a load back)."""
        return self.direct and self.db.dialect.transactional_load

    def _merge_file(self, path: str) -> Counts:
        if self.straight:
            sp = self.savepoint()
            try:
                return self.load_straight(path)
            except Exception as exc:
                # e.g. a key already there (LOAD LOCAL skips it with a warning) or a bad value:
                # the staging path sorts it out from here on
                if not _is_data_error(exc):
                    raise
                self.rollback_to(sp)
                self.direct = False
        self._reset_stage()
        read = self._load(path, self.stage)
        return self._merge_stage(read)

    def _merge_stage(self, read: int) -> Counts:
        q, s = self.q, self.stage
        keys = ", ".join(q(k) for k in self.key)
        cols = ", ".join(q(c) for c in self.columns)
        match = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in self.key)
        distinct = read
        if not self.unique_keys and read:
            distinct = self.db.fetchone(f"SELECT COUNT(DISTINCT {keys}) FROM {s}")[0]
        if distinct < read:
            for *key, times in self.db.fetchall(f"SELECT {keys}, COUNT(*) FROM {s} GROUP BY {keys} HAVING COUNT(*) > 1 "
                                                f"ORDER BY COUNT(*) DESC, {keys} LIMIT {REPEATED_SHOWN}"):
                self.repeated.append((tuple(key), times))
            # the newest by the cursor column (NULL is oldest), else the last loaded, of each key
            order = ([f"{q(self.cursor_column)} DESC"] if self.cursor_column else []) + ["_ds_seq DESC"]
            src = (f"(SELECT {cols}, ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY {', '.join(order)}) AS _ds_rn "
                   f"FROM {s}) AS s WHERE s._ds_rn = 1")
            existing = self.db.fetchone(
                f"SELECT COUNT(DISTINCT {', '.join(f's.{q(k)}' for k in self.key)}) FROM {s} AS s JOIN {self.target} AS t ON {match}")[0]
        else:
            src = f"{s} AS s"
            existing = self.db.fetchone(f"SELECT COUNT(*) FROM {s} AS s JOIN {self.target} AS t ON {match}")[0]
        # Without CLIENT_FOUND_ROWS MySQL reports 1 per insert, 2 per update and 0 per unchanged row.
        cur = self.db.execute(f"INSERT INTO {self.target} ({cols}) SELECT {', '.join(f's.{q(c)}' for c in self.columns)} "
                              f"FROM {src} ON DUPLICATE KEY UPDATE {self.update}")
        affected = cur.rowcount
        cur.close()
        if self.track_seen:
            self.db.execute(f"INSERT IGNORE INTO {self.seen} ({keys}) SELECT {keys} FROM {s}").close()
        inserted = distinct - existing
        updated = (affected - inserted) // 2
        return Counts(read=read, inserted=inserted, updated=updated, unchanged=existing - updated,
                      duplicates=read - distinct)

    def csv_file(self, source_cursor, copy_sql: str, params: Any) -> str:
        """Stream a source's ``COPY ... TO STDOUT`` (``Dialect.csv_copy_sql``) into a new page file
        (no value ever becomes a Python object); :meth:`load_file` loads and deletes it. Touches only
        the source connection, so it may run on another thread while a page loads."""
        fd, path = tempfile.mkstemp(suffix=".csv", dir=self.tmpdir)
        with os.fdopen(fd, "wb") as out, source_cursor.copy(copy_sql, params) as rows:
            pipe(rows, out)
        return path

    def load_file(self, path: str) -> Counts:
        try:
            return self._merge_file(path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def column_of(self, exc: Exception) -> str | None:
        return exc.column if isinstance(exc, LoadWarnings) else _column_of(exc)

    # -- merge -------------------------------------------------------------------------------------
    def _merge(self, rows: list[tuple]) -> Counts:
        if not self.bulk:
            return self._merge_inserts(rows)
        with self._page_file() as path:
            with open(path, "w", encoding="utf-8", newline="") as out:
                write_csv(out, rows, [i for i, c in enumerate(self.columns) if c in self.hex_columns])
            return self._merge_file(path)

    def _dedupe(self, rows: list[tuple]) -> list[tuple]:
        newest: dict[tuple, tuple] = {}
        for row in rows:
            k = self.key_of(row)
            old = newest.get(k)
            if old is None or self.cursor_idx is None or _not_older(row[self.cursor_idx], old[self.cursor_idx]):
                newest[k] = row
        return list(newest.values())

    def _existing(self, keys: list[tuple]) -> int:
        if not keys:
            return 0
        q = self.q
        if len(self.key) == 1:
            where = f"{q(self.key[0])} IN ({', '.join(['%s'] * len(keys))})"
            params = [k[0] for k in keys]
        else:
            one = "(" + ", ".join(["%s"] * len(self.key)) + ")"
            where = f"({', '.join(q(k) for k in self.key)}) IN ({', '.join([one] * len(keys))})"
            params = [v for k in keys for v in k]
        return self.db.fetchone(f"SELECT COUNT(*) FROM {self.target} WHERE {where}", params)[0]

    def _merge_inserts(self, rows: list[tuple]) -> Counts:
        unique = rows if self.unique_keys else self._dedupe(rows)
        if len(unique) < len(rows):
            counted = Counter(self.key_of(r) for r in rows)
            self.repeated += [(k, n) for k, n in counted.most_common(REPEATED_SHOWN) if n > 1]
        keys = [self.key_of(r) for r in unique]
        existing = self._existing(keys)
        cur = self.db.cursor()
        # Without CLIENT_FOUND_ROWS MySQL reports 1 per insert, 2 per update and 0 per unchanged row.
        cur.executemany(self.insert_sql, [_with_json(r, self.json_idx) for r in unique] if self.json_idx else unique)
        affected = cur.rowcount
        if self.track_seen:
            self.mark_seen(keys)
        inserted = len(unique) - existing
        updated = (affected - inserted) // 2
        return Counts(read=len(rows), inserted=inserted, updated=updated, unchanged=existing - updated,
                      duplicates=len(rows) - len(unique))

    def mark_seen(self, keys: list[tuple]) -> None:
        cols = ", ".join(self.q(k) for k in self.key)
        marks = ", ".join(["%s"] * len(self.key))
        self.db.cursor().executemany(
            f"INSERT IGNORE INTO {self.seen} ({cols}) VALUES ({marks})", keys
        )

    def delete_unseen(self) -> int:
        match = " AND ".join(f"s.{self.q(k)} = t.{self.q(k)}" for k in self.key)
        cur = self.db.execute(
            f"DELETE t FROM {self.target} AS t LEFT JOIN {self.seen} AS s ON {match} WHERE s.{self.q(self.key[0])} IS NULL"
        )
        return cur.rowcount

    def close(self) -> None:
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        try:
            self.db.rollback()
            if self.track_seen:
                self.db.execute(f"DROP TEMPORARY TABLE IF EXISTS {self.seen}")
            if self.bulk:
                self.db.execute(f"DROP TEMPORARY TABLE IF EXISTS {self.stage}")
        except Exception:
            pass


def _warned_column(message: str) -> str | None:
    """The column a LOAD warning names: ``column 'c'`` or MariaDB's ``column `db`.`table`.`c```."""
    for marker, close in (("column '", "'"), ("column `", " ")):
        if marker in message:
            return message.split(marker, 1)[1].split(close, 1)[0].rsplit("`.`", 1)[-1].strip("`")
    return None


def _not_older(new: Any, old: Any) -> bool:
    if old is None:
        return True
    if new is None:
        return False
    try:
        return new >= old
    except TypeError:
        return True


def writer_for(db: Database, *args, **kwargs) -> Writer:
    return db.dialect.writer_class()(db, *args, **kwargs)


def batched(rows: Iterable[Any], size: int, convert: Callable[[Any], tuple] | None = None) -> Iterable[list]:
    batch: list = []
    for row in rows:
        batch.append(convert(row) if convert else row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
