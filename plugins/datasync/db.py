"""Database connections by Airflow connection id, and what kind of server is behind them.

Every part of the package talks to databases through :func:`connect`, which returns a
:class:`Database`: the DB-API connection (psycopg 3 for Postgres, mysqlclient for the MySQL
family) plus its dialect, so SQL differences are decided in one place.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

POSTGRES = "postgres"
MYSQL = "mysql"  # MySQL and MariaDB
TIDB = "tidb"
MYSQL_FAMILY = (MYSQL, TIDB)


class DatabaseUnavailable(RuntimeError):
    """The server behind a connection id cannot be reached or refused the login."""


class WrongServerKind(RuntimeError):
    """A connection points to a server of another kind than the caller needs."""


class LockTimeout(RuntimeError):
    """Another run holds the named lock longer than we are willing to wait."""


@dataclass
class Database:
    conn_id: str
    dialect: str  # POSTGRES, MYSQL or TIDB
    conn: Any  # DB-API connection, autocommit off
    version: str

    @property
    def is_postgres(self) -> bool:
        return self.dialect == POSTGRES

    @property
    def supports_procedures(self) -> bool:
        return self.dialect == MYSQL

    def quote(self, identifier: str) -> str:
        """Quote a validated identifier (see ``datasync.identifiers``) for this dialect."""
        q = '"' if self.is_postgres else "`"
        return q + identifier.replace(q, q + q) + q

    def cursor(self):
        return self.conn.cursor()

    def execute(self, sql: str, params: Any = None) -> Any:
        cur = self.conn.cursor()
        cur.execute(sql, params)
        return cur

    def fetchall(self, sql: str, params: Any = None) -> list[tuple]:
        cur = self.execute(sql, params)
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
        return f"'{self.conn_id}' ({self.dialect}, {self.version})"


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


def connect(conn_id: str) -> Database:
    """Open a connection by Airflow connection id (env ``AIRFLOW_CONN_<ID>`` works too)."""
    from airflow.sdk import BaseHook

    airflow_conn = BaseHook.get_connection(conn_id)
    family = _dialect_of(airflow_conn.conn_type)
    where = f"{airflow_conn.host}:{airflow_conn.port or ''}/{airflow_conn.schema or ''}"
    try:
        if family == POSTGRES:
            from airflow.providers.postgres.hooks.postgres import PostgresHook

            conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
            conn.autocommit = False
            cur = conn.cursor()
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute("SELECT version()")
            version = cur.fetchone()[0].split(" on ")[0]
            conn.commit()
            dialect = POSTGRES
        else:
            from airflow.providers.mysql.hooks.mysql import MySqlHook

            conn = MySqlHook(mysql_conn_id=conn_id).get_conn()
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
    return Database(conn_id=conn_id, dialect=dialect, conn=conn, version=version)


@contextmanager
def connected(conn_id: str) -> Iterator[Database]:
    db = connect(conn_id)
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
        if db.is_postgres:
            got = db.fetchone("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,))[0]
        else:
            got = db.fetchone("SELECT GET_LOCK(%s, %s)", (key, 1))[0] == 1
        db.commit()
        if got:
            break
        if time.monotonic() >= deadline:
            raise LockTimeout(
                f"'{name}' is already running against {db.describe()}; waited {wait_seconds:.0f}s. "
                "Let the other run finish (or kill it) and retry."
            )
        time.sleep(0.5 if db.is_postgres else 0)
    try:
        yield
    finally:
        try:
            db.rollback()
            if db.is_postgres:
                db.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
            else:
                db.execute("SELECT RELEASE_LOCK(%s)", (key,))
            db.commit()
        except Exception:  # a dead session has already dropped its lock
            pass
