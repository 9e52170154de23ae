"""Database connections by Airflow connection id, and what kind of server is behind them.

Every part of the package talks to databases through :func:`connect`, which returns a
:class:`Database`: the DB-API connection (psycopg 3 for Postgres, mysqlclient for the MySQL
family) plus its dialect, so SQL differences are decided in one place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

POSTGRES = "postgres"
MYSQL = "mysql"  # MySQL and MariaDB
TIDB = "tidb"
MYSQL_FAMILY = (MYSQL, TIDB)


class Dialect:
    """What differs between server families, in one object per family (the SQL a caller would
    otherwise branch on). ``Database.dialect`` carries it; nothing else asks which server it is."""

    name: str
    family: str  # "postgres" or "mysql": which SQL files and drivers apply
    quote_char: str
    now: str  # the current time, microseconds
    current_schema: str
    supports_procedures = False
    lock_poll_seconds: float
    aware_params = False  # does the server compare timezone-aware datetimes itself?
    strict_values = False  # refuses NUL in text and NaN/infinity outside float columns
    transactional_ddl = False  # does a rollback undo CREATE/ALTER?
    private_tables = False  # tables made private to the owner (Postgres grants; see migrate.make_private)
    timestamp_column: str  # a "created at" column type with its default

    def table_columns(self, db: Database, schema: str, table: str) -> tuple[list[tuple], list[tuple]]:
        """``information_schema`` rows of a table's columns (name, data_type, nullable, max length,
        full type, precision, scale) and its primary key columns, in order."""
        raise NotImplementedError

    def quote(self, identifier: str) -> str:
        q = self.quote_char
        return q + identifier.replace(q, q + q) + q

    def elapsed_ms(self, column: str) -> str:
        raise NotImplementedError

    def try_lock(self, db: Database, key: str) -> bool:
        raise NotImplementedError

    def unlock(self, db: Database, key: str) -> None:
        raise NotImplementedError

    def insert_returning_id(self, db: Database, sql: str, params: Any) -> int:
        raise NotImplementedError

    def upsert_sql(self, table: str, columns: list[str], key: list[str], values: list[str] | None = None) -> str:
        """``INSERT`` of ``columns`` (``values``: SQL per column, default ``%s``) that overwrites the
        non-key columns of a row whose ``key`` exists."""
        q = self.quote
        values = values or ["%s"] * len(columns)
        return (f"INSERT INTO {table} ({', '.join(q(c) for c in columns)}) VALUES ({', '.join(values)}) "
                + self._on_conflict(key, [c for c in columns if c not in key]))

    def _on_conflict(self, key: list[str], rest: list[str]) -> str:
        raise NotImplementedError

    def param(self, value: Any) -> Any:
        """A Python value as this server compares it (MySQL DATETIME holds naive UTC)."""
        if not self.aware_params and isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value

    def writer_class(self):
        raise NotImplementedError

    def copy_between(self, target: Dialect) -> bool:
        """Can rows COPY from a server of this dialect straight into ``target``?"""
        return False

    def row_hash(self, exprs: list[str], as_text: bool = False) -> str:
        """SQL for a 64-bit hash of one row's values (a NULL differs from every value); ``as_text``
        hashes their text, for values the typed hash cannot take."""
        raise NotImplementedError

    def value_types(self, db: Database, table: str, columns: list[str]) -> dict[str, str]:
        """Per column, the type both sides cast to before hashing (empty: hash values as stored)."""
        return {}

    def csv_copy_to(self, target: Dialect) -> bool:
        """Can this server spell a query's rows as the CSV a ``target`` server bulk-loads?"""
        return False

    def copy_text_to(self, target: Dialect) -> bool:
        """Can this server spell a query's rows as the COPY text a Postgres ``target`` reads?"""
        return False

    def row_estimate(self, db: Database, table: str) -> int | None:
        """The server's estimate of a table's rows (from its statistics), None when it has none."""
        return None

    def index_hint(self, db: Database, table: str, columns: list[str]) -> str:
        """What to write after ``table`` so pages in ``columns`` order read an index with exactly
        those leading columns ("" when the planner needs no telling)."""
        return ""

    def copy_text_sql(self, db: Database, sql: str, params: Any, bytea_columns: set[str]) -> str | None:
        """A query returning each row of ``sql`` as one line of Postgres COPY text (bytes, no line
        end): tab-separated, backslash escapes, NULL as backslash-N (``bytea_columns`` in hex). None when
        the query has a column type this does not spell: the caller then reads rows."""
        raise NotImplementedError

    def csv_copy_sql(self, db: Database, sql: str, params: Any, hex_columns: set[str]) -> str | None:
        """A statement streaming the rows of ``sql`` as the CSV a MySQL-family target bulk-loads (see
        ``writers.LOAD_CSV``, see :meth:`csv_copy_to`): every value quoted, NULL a bare ``NULL``,
        backslash escapes, each value as text the target parses (``hex_columns`` in hex). None when
        the query has a column type this does not spell: the caller then reads rows."""
        raise NotImplementedError

    def read_only_session(self, db: Database, timeout_seconds: int) -> None:
        """The session never writes and gives up on a statement after ``timeout_seconds``."""
        raise NotImplementedError

    def table_exists(self, db: Database, table: str) -> bool:
        raise NotImplementedError

    def has_column(self, db: Database, table: str, column: str) -> bool:
        raise NotImplementedError

    def read_only_stream(self, db: Database, batch_size: int):
        """A cursor that streams a read-only query's rows from the server, ``batch_size`` at a time."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} dialect>"


class PostgresDialect(Dialect):
    name = family = POSTGRES
    quote_char = '"'
    now = "now()"
    current_schema = "current_schema()"
    lock_poll_seconds = 0.5
    aware_params = True
    strict_values = True
    transactional_ddl = True
    private_tables = True
    timestamp_column = "TIMESTAMPTZ NOT NULL DEFAULT now()"

    def table_columns(self, db: Database, schema: str, table: str) -> tuple[list[tuple], list[tuple]]:
        schema_sql = "%s" if schema else self.current_schema
        rows = db.fetchall(
            "SELECT column_name, data_type, is_nullable = 'YES', character_maximum_length, udt_name, numeric_precision, numeric_scale "
            f"FROM information_schema.columns WHERE table_schema = {schema_sql} AND table_name = %s ORDER BY ordinal_position",
            (schema, table) if schema else (table,),
        )
        pk = db.fetchall(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
            (self.quote(schema) + "." + self.quote(table) if schema else self.quote(table),),
        ) if rows else []
        return rows, pk

    def elapsed_ms(self, column: str) -> str:
        return f"(EXTRACT(EPOCH FROM (now() - {column})) * 1000)::bigint"

    def try_lock(self, db: Database, key: str) -> bool:
        return bool(db.fetchone("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,))[0])

    def unlock(self, db: Database, key: str) -> None:
        db.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,)).close()

    def insert_returning_id(self, db: Database, sql: str, params: Any) -> int:
        return int(db.fetchone(sql + " RETURNING id", params)[0])

    def _on_conflict(self, key: list[str], rest: list[str]) -> str:
        q = self.quote
        return (f"ON CONFLICT ({', '.join(q(k) for k in key)}) DO UPDATE SET "
                + ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in rest))

    def writer_class(self):
        from datasync.engine.writers import PostgresWriter

        return PostgresWriter

    def copy_between(self, target: Dialect) -> bool:
        return isinstance(target, PostgresDialect)

    def row_estimate(self, db: Database, table: str) -> int | None:
        (rows,) = db.fetchone("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                              (".".join(self.quote(p) for p in table.split(".")),)) or (None,)
        db.commit()
        return int(rows) if rows and rows > 0 else None  # -1 or 0: never analysed

    def row_hash(self, exprs: list[str], as_text: bool = False) -> str:
        if as_text:
            return f"hashtextextended(ROW({', '.join(exprs)})::text, 0)"
        # each type's own hash, which agrees with its equality (1.50 = 1.5, -0 = 0) and skips text output
        return f"hash_record_extended(ROW({', '.join(exprs)}), 0)"

    def value_types(self, db: Database, table: str, columns: list[str]) -> dict[str, str]:
        rows = db.fetchall("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                           "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                           (".".join(self.quote(p) for p in table.split(".")),))
        db.commit()
        # json has no equality; jsonb's ignores key order and spacing, as the merge does
        return {name: "jsonb" if kind == "json" else kind for name, kind in rows if name in columns}

    def csv_copy_to(self, target: Dialect) -> bool:
        return target.family == MYSQL

    def csv_copy_sql(self, db: Database, sql: str, params: Any, hex_columns: set[str]) -> str | None:
        if db.conn.info.encoding != "utf-8":
            return None
        cur = db.execute(f"SELECT * FROM ({sql}) AS s LIMIT 0", params)
        described = [(d.name, db.conn.adapters.types.get(d.type_code)) for d in cur.description]
        cur.close()
        exprs = []
        for name, info in described:
            kind, col = (info.name if info else ""), self.quote(name)
            if name in hex_columns:
                expr = f"encode({col}, 'hex')" if kind == "bytea" else None
            else:
                expr = _AS_MYSQL_TEXT.get(kind)
                expr = None if expr is None else (expr or "{c}").replace("{c}", col)
            if expr is None:
                return None
            exprs.append(expr)
        # Session DateStyle ISO (the default) spells dates and times as MySQL reads them.
        return (f"COPY (SELECT {', '.join(exprs)} FROM ({sql}) AS s) TO STDOUT "
                "(FORMAT csv, NULL 'NULL', FORCE_QUOTE *, ESCAPE '\\')")

    def read_only_session(self, db: Database, timeout_seconds: int) -> None:
        db.execute(f"SET statement_timeout = {int(timeout_seconds) * 1000}").close()
        db.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY").close()

    def table_exists(self, db: Database, table: str) -> bool:
        return bool(db.fetchone("SELECT to_regclass(%s) IS NOT NULL", (f"public.{table}",))[0])

    def has_column(self, db: Database, table: str, column: str) -> bool:
        # the catalog itself: information_schema's views cost a new session ~100 ms to plan
        return bool(db.fetchone("SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s "
                                "AND NOT attisdropped", (table, column))[0])

    def read_only_stream(self, db: Database, batch_size: int):
        db.conn.read_only = True  # takes effect at the next transaction
        cur = db.conn.cursor(name="datasync_stream")  # named = server-side cursor
        cur.itersize = batch_size
        return cur


# Postgres types as text a MySQL-family server parses ("" = the value as COPY prints it); others: rows.
_AS_MYSQL_TEXT = {
    **dict.fromkeys(("int2", "int4", "int8", "numeric", "float4", "float8", "text", "varchar", "bpchar", "uuid",
                     "json", "jsonb", "date", "time", "timestamp"), ""),
    "timestamptz": "{c} AT TIME ZONE 'UTC'",  # DATETIME holds UTC without a zone
    "bool": "{c}::int",
}


class MySqlDialect(Dialect):
    """MySQL and MariaDB."""

    name = family = MYSQL
    quote_char = "`"
    now = "CURRENT_TIMESTAMP(6)"
    current_schema = "DATABASE()"
    supports_procedures = True
    lock_poll_seconds = 0.0  # GET_LOCK itself waits a second
    # LOAD DATA is an ordinary statement of the transaction (a rollback undoes it), and a
    # temporary table's CREATE/DROP does not commit: the writer may load into the target itself.
    transactional_load = True
    timestamp_column = "TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"

    def table_columns(self, db: Database, schema: str, table: str) -> tuple[list[tuple], list[tuple]]:
        schema_sql = "%s" if schema else self.current_schema
        where = (schema, table) if schema else (table,)
        rows = db.fetchall(
            "SELECT column_name, data_type, is_nullable = 'YES', character_maximum_length, column_type, numeric_precision, numeric_scale "
            f"FROM information_schema.columns WHERE table_schema = {schema_sql} AND table_name = %s ORDER BY ordinal_position",
            where,
        )
        pk = db.fetchall(
            "SELECT column_name FROM information_schema.key_column_usage "
            f"WHERE table_schema = {schema_sql} AND table_name = %s AND constraint_name = 'PRIMARY' ORDER BY ordinal_position",
            where,
        )
        if rows and "mariadb" in db.version.lower():
            # MariaDB's JSON is LONGTEXT with a json_valid() check: treat those columns as JSON.
            json_cols = {r[0] for r in db.fetchall(
                "SELECT constraint_name FROM information_schema.check_constraints WHERE constraint_schema = "
                f"{schema_sql} AND table_name = %s AND check_clause LIKE 'json_valid(%%'",
                where,
            )}
            rows = [(r[0], "json" if r[0] in json_cols else r[1], *r[2:]) for r in rows]
        return rows, pk

    def elapsed_ms(self, column: str) -> str:
        return f"TIMESTAMPDIFF(MICROSECOND, {column}, CURRENT_TIMESTAMP(6)) DIV 1000"

    def try_lock(self, db: Database, key: str) -> bool:
        return db.fetchone("SELECT GET_LOCK(%s, %s)", (key, 1))[0] == 1

    def unlock(self, db: Database, key: str) -> None:
        db.execute("SELECT RELEASE_LOCK(%s)", (key,)).close()

    def insert_returning_id(self, db: Database, sql: str, params: Any) -> int:
        cur = db.execute(sql, params)
        cur.close()
        return int(cur.lastrowid)

    def _on_conflict(self, key: list[str], rest: list[str]) -> str:
        q = self.quote
        return "ON DUPLICATE KEY UPDATE " + ", ".join(f"{q(c)} = VALUES({q(c)})" for c in rest)

    def writer_class(self):
        from datasync.engine.writers import MySqlWriter

        return MySqlWriter

    def row_estimate(self, db: Database, table: str) -> int | None:
        schema, _, bare = table.rpartition(".")
        row = db.fetchone("SELECT table_rows FROM information_schema.tables WHERE table_schema = "
                          f"{'%s' if schema else self.current_schema} AND table_name = %s",
                          (schema, bare) if schema else (bare,))
        db.commit()
        return int(row[0]) if row and row[0] else None

    def index_hint(self, db: Database, table: str, columns: list[str]) -> str:
        # A page of a tenth of the table makes MySQL/MariaDB prefer a full scan and a filesort of
        # every row, for every page; the index in page order reads just the page.
        schema, _, bare = table.rpartition(".")
        rows = db.fetchall(
            "SELECT index_name, column_name FROM information_schema.statistics WHERE table_schema = "
            f"{'%s' if schema else self.current_schema} AND table_name = %s ORDER BY index_name, seq_in_index",
            (schema, bare) if schema else (bare,))
        db.commit()
        indexes: dict[str, list[str]] = {}
        for name, column in rows:
            indexes.setdefault(name, []).append(column)
        for name, cols in sorted(indexes.items(), key=lambda item: item[0] != "PRIMARY"):
            if cols[:len(columns)] == columns:
                return f"FORCE INDEX ({self.quote(name)})"
        return ""

    def copy_text_to(self, target: Dialect) -> bool:
        return target.family == POSTGRES

    def copy_text_sql(self, db: Database, sql: str, params: Any, bytea_columns: set[str]) -> str | None:
        from MySQLdb.constants import FIELD_TYPE as T

        cur = db.execute(f"SELECT * FROM ({sql}) AS s LIMIT 0", params)
        described = [(d[0], d[1]) for d in cur.description]
        cur.close()
        text = {T.VARCHAR, T.VAR_STRING, T.STRING, T.ENUM, T.SET, T.JSON, T.TINY_BLOB, T.MEDIUM_BLOB, T.LONG_BLOB, T.BLOB}
        plain = {T.DECIMAL, T.NEWDECIMAL, T.TINY, T.SHORT, T.LONG, T.LONGLONG, T.INT24, T.YEAR, T.FLOAT, T.DOUBLE,
                 T.DATE, T.DATETIME, T.TIMESTAMP, T.TIME}

        def char(*codes: int) -> str:
            # a hex literal: a quoted one depends on whether sql_mode treats backslash as an escape,
            # and CHAR(... USING ...) is evaluated for every row (a quarter of the server's time)
            return "_utf8mb4 0x" + bytes(codes).hex().upper()

        exprs = []
        for name, kind in described:
            col = self.quote(name)
            if name in bytea_columns:
                expr = f"CONCAT({char(92, 92, 120)}, HEX({col}))"
            elif kind in text:
                expr = col
                for raw, escaped in ((92, (92, 92)), (9, (92, 116)), (10, (92, 110)), (13, (92, 114))):
                    expr = f"REPLACE({expr}, {char(raw)}, {char(*escaped)})"
            elif kind in plain:
                expr = col
            else:  # BIT, spatial, ...: read as rows
                return None
            exprs.append(f"IFNULL({expr}, {char(92, 78)})")
        return f"SELECT CAST(CONCAT_WS({char(9)}, {', '.join(exprs)}) AS BINARY) FROM ({sql}) AS s"

    def row_hash(self, exprs: list[str], as_text: bool = True) -> str:
        # QUOTE() spells NULL as the bare word NULL and every value as a quoted string
        quoted = ", ".join(f"QUOTE({e})" for e in exprs)
        return f"CAST(CONV(LEFT(MD5(CONCAT_WS(',', {quoted})), 16), 16, 10) AS UNSIGNED)"

    def read_only_session(self, db: Database, timeout_seconds: int) -> None:
        db.execute("SET SESSION TRANSACTION READ ONLY").close()
        for sql in (f"SET SESSION max_statement_time = {int(timeout_seconds)}",  # MariaDB
                    f"SET SESSION max_execution_time = {int(timeout_seconds) * 1000}"):  # MySQL, TiDB
            try:
                db.execute(sql).close()
            except Exception:  # the other server's variable
                pass

    def table_exists(self, db: Database, table: str) -> bool:
        return bool(db.fetchone("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() "
                                "AND table_name = %s", (table,))[0])

    def has_column(self, db: Database, table: str, column: str) -> bool:
        return bool(db.fetchone("SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() "
                                "AND table_name = %s AND column_name = %s", (table, column))[0])

    def load_data_usable(self, db: Database) -> bool:
        """Can pages go through ``LOAD DATA LOCAL INFILE`` inside the page's transaction?"""
        return True

    def read_only_stream(self, db: Database, batch_size: int):
        import MySQLdb.cursors

        db.execute("SET TRANSACTION READ ONLY").close()
        return db.conn.cursor(MySQLdb.cursors.SSCursor)  # unbuffered: rows stream from the server


class TiDBDialect(MySqlDialect):
    """TiDB speaks MySQL's SQL, without stored procedures."""

    name = TIDB
    supports_procedures = False
    # Before v7.6 a LOAD DATA is not undone by ROLLBACK; the writer only ever loads into its
    # staging table and empties it with DELETE (the table lives in TiDB's memory).
    transactional_load = False

    def load_data_usable(self, db: Database) -> bool:
        # Before v7.6 LOAD DATA commits the transaction around it, which would split a page.
        found = re.search(r"tidb-v(\d+)\.(\d+)", db.version.lower())
        return not found or (int(found[1]), int(found[2])) >= (7, 6)


DIALECTS: dict[str, Dialect] = {d.name: d for d in (PostgresDialect(), MySqlDialect(), TiDBDialect())}


class DatabaseUnavailable(RuntimeError):
    """The server behind a connection id cannot be reached or refused the login."""


class WrongServerKind(RuntimeError):
    """A connection points to a server of another kind than the caller needs."""


class LockTimeout(RuntimeError):
    """Another run holds the named lock longer than we are willing to wait."""


@dataclass
class Database:
    conn_id: str
    dialect: Dialect
    conn: Any  # DB-API connection, autocommit off
    version: str
    local_infile_refused: bool = False  # a writer found LOAD DATA LOCAL refused: said once, not again

    @property
    def supports_procedures(self) -> bool:
        return self.dialect.supports_procedures

    def quote(self, identifier: str) -> str:
        """Quote a validated identifier (see ``datasync.identifiers``) for this dialect."""
        return self.dialect.quote(identifier)

    def cursor(self):
        return self.conn.cursor()

    def execute(self, sql: str, params: Any = None) -> Any:
        cur = self.conn.cursor()
        cur.execute(sql, params)
        return cur

    def fetchall(self, sql: str, params: Any = None, *, binary: bool = False) -> list[tuple]:
        """``binary``: Postgres sends values in binary (no text to format and parse; a type psycopg has no
        binary loader for arrives as bytes)."""
        cur = self.conn.cursor(binary=True) if binary and self.dialect.family == POSTGRES else self.conn.cursor()
        cur.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
        cur.close()
        return list(rows)

    def fetchone(self, sql: str, params: Any = None) -> tuple | None:
        cur = self.execute(sql, params)
        row = cur.fetchone()
        cur.close()
        return row

    def fetchdicts(self, sql: str, params: Any = None) -> tuple[list[str], list[dict]]:
        """Column names and rows as dicts; ends the read transaction."""
        cur = self.execute(sql, params)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
        cur.close()
        self.commit()
        return names, rows

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # closing a broken connection must not hide the real error
            pass

    def describe(self) -> str:
        return f"'{self.conn_id}' ({self.dialect.name}, {self.version})"


def _dialect_of(conn_type: str) -> str:
    conn_type = (conn_type or "").lower()
    if conn_type in ("postgres", "postgresql"):
        return POSTGRES
    if conn_type in ("mysql", "mariadb", "tidb"):
        return MYSQL
    raise WrongServerKind(f"connection type '{conn_type}' is not a Postgres or MySQL-family database")


def server_identity(conn) -> tuple[str, str]:
    """``(VERSION(), @@version_comment)`` of a MySQL-family DB-API connection."""
    cur = conn.cursor()
    cur.execute("SELECT VERSION(), @@version_comment")
    version, comment = cur.fetchone()
    cur.close()
    return str(version), str(comment or "")


def mysql_family_dialect(version: str, version_comment: str, override: str | None = None) -> str:
    """TIDB or MYSQL for a server that reported ``version`` and ``version_comment``.

    TiDB's ``server-version`` setting can make ``VERSION()`` look like plain MySQL, but its
    ``@@version_comment`` ("TiDB Server ...") stays; the connection extra ``dialect`` overrides both.
    """
    if override:
        return override
    return TIDB if "tidb" in f"{version} {version_comment}".lower() else MYSQL


def _mysql_hook(conn_id: str, local_infile: bool, connection=None):
    from airflow.providers.mysql.hooks.mysql import MySqlHook

    class Hook(MySqlHook):
        # The hook passes local_infile only when it is on, and MariaDB's client library then
        # allows LOCAL INFILE by default: say it either way.
        def _get_conn_config_mysql_client(self, conn) -> dict:
            return {**super()._get_conn_config_mysql_client(conn), "local_infile": 1 if local_infile else 0}

    return Hook(mysql_conn_id=conn_id, local_infile=local_infile, connection=connection)


def connect(conn_id: str, *, local_infile: bool = False, connection: Any = None) -> Database:
    """Open a connection by Airflow connection id (env ``AIRFLOW_CONN_<ID>`` works too).

    ``local_infile``: a MySQL-family TARGET may be sent files with ``LOAD DATA LOCAL INFILE``.
    Never for a source: with it on, the server may ask the client for any file it can read.
    ``connection``: the Airflow connection of ``conn_id`` when the caller has looked it up already
    (in a task each lookup is a round trip to the API server)."""
    from airflow.sdk import BaseHook

    airflow_conn = connection or BaseHook.get_connection(conn_id)
    family = _dialect_of(airflow_conn.conn_type)
    where = f"{airflow_conn.host}:{airflow_conn.port or ''}/{airflow_conn.schema or ''}"
    try:
        if family == POSTGRES:
            from airflow.providers.postgres.hooks.postgres import PostgresHook

            conn = PostgresHook(postgres_conn_id=conn_id, connection=airflow_conn).get_conn()  # one lookup, not two
            conn.autocommit = False
            cur = conn.cursor()
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute("SELECT version()")
            version = cur.fetchone()[0].split(" on ")[0]
            conn.commit()
            dialect = POSTGRES
        else:
            conn = _mysql_hook(conn_id, local_infile, airflow_conn).get_conn()
            conn.autocommit(False)
            conn.set_character_set("utf8mb4")
            extra = airflow_conn.extra_dejson or {}
            cur = conn.cursor()
            cur.execute("SET time_zone = '+00:00'")
            if extra.get("sql_mode") is not None:  # pin the session's mode, e.g. to TiDB's defaults in tests
                cur.execute("SET SESSION sql_mode = %s", (extra["sql_mode"],))
            version, comment = server_identity(conn)
            dialect = mysql_family_dialect(version, comment, extra.get("dialect"))
            if dialect not in MYSQL_FAMILY:
                raise WrongServerKind(f"connection '{conn_id}': extra 'dialect' must be mysql or tidb, not {dialect!r}")
            conn.commit()
    except WrongServerKind:
        raise
    except Exception as exc:  # driver errors differ per driver; the message is what matters
        raise DatabaseUnavailable(f"cannot connect to '{conn_id}' ({family} at {where}): {exc}".strip()) from exc
    return Database(conn_id=conn_id, dialect=DIALECTS[dialect], conn=conn, version=version)


@contextmanager
def connected(conn_id: str, *, local_infile: bool = False) -> Iterator[Database]:
    db = connect(conn_id, local_infile=local_infile)
    try:
        yield db
    finally:
        db.close()


def _lock_key(name: str) -> str:
    # MySQL lock names are limited to 64 characters.
    return name if len(name) <= 64 else name[:40] + ":" + hashlib.sha1(name.encode()).hexdigest()[:20]


@contextmanager
def named_lock(db: Database, name: str, wait_seconds: float = 60) -> Iterator[None]:
    """Hold a server-side session lock so two runs of the same job never interleave.

    Postgres advisory lock / MySQL ``GET_LOCK`` (TiDB has it too). The lock dies with the
    session, so a killed worker never leaves it behind.
    """
    deadline = time.monotonic() + wait_seconds
    key = _lock_key(name)
    while True:
        got = db.dialect.try_lock(db, key)
        db.commit()
        if got:
            break
        if time.monotonic() >= deadline:
            raise LockTimeout(
                f"'{name}' is already running against {db.describe()}; waited {wait_seconds:.0f}s. "
                "Let the other run finish (or kill it) and retry."
            )
        time.sleep(db.dialect.lock_poll_seconds)
    try:
        yield
    finally:
        try:
            db.rollback()
            db.dialect.unlock(db, key)
            db.commit()
        except Exception:  # a dead session has already dropped its lock
            pass
