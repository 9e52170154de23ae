"""A table or query behind an Airflow connection (Postgres or MySQL family), streamed in batches.

Rows come through a server-side cursor, so a large table never sits in worker memory. The
transaction is read-only: a ``query`` from the registry can read, never write.

A registry row may only name a connection the policy opens to registry sources
(``database_connections``), and the login behind it must not be able to reach the server's
files or programs, which a read-only transaction does not stop (``pg_read_file``,
``COPY ... TO PROGRAM``, MySQL's ``LOAD_FILE``). Before anything of the row runs:

- PostgreSQL: the session user must not be, nor be a member of (so it could ``SET ROLE`` to),
  a superuser or ``pg_read_server_files`` / ``pg_write_server_files`` / ``pg_execute_server_program``.
- MySQL family: neither the account nor a role granted to it may hold, on ``*.*``,
  ``ALL PRIVILEGES``, ``SUPER``, ``FILE`` or ``PROXY`` (``SHOW GRANTS``, roles followed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import sqlparse

from datasync.identifiers import InvalidIdentifier, check_identifier, check_table_name
from datasync.registry.connectors.base import Batch, SourceConfigError, SourceError, batched, check_keys, string_list

if TYPE_CHECKING:
    from datasync.db import Database
    from datasync.registry.policy import RegistryPolicy

KIND = "database"
OPTIONAL = ("table", "query", "columns", "schema")
PG_POWERFUL_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program")
MYSQL_POWERFUL_PRIVILEGES = ("ALL PRIVILEGES", "SUPER", "FILE", "PROXY")
_PRIVILEGE_GRANT = re.compile(r"^GRANT (.+?) ON (\S+) TO ", re.I)
_ROLE_GRANT = re.compile(r"^GRANT (.+?) TO ", re.I)


def validate(config: Mapping[str, Any]) -> None:
    check_keys(KIND, config, ["conn_id"], OPTIONAL)
    if bool(config.get("table")) == bool(config.get("query")):
        raise SourceConfigError(f"{KIND} source: give a 'table' or a 'query', not both or neither")
    try:
        if config.get("table"):
            check_table_name(_table(config))
        for column in string_list(KIND, "columns", config.get("columns")):
            check_identifier(column, "column name")
    except InvalidIdentifier as exc:
        raise SourceConfigError(f"{KIND} source: {exc}") from None
    if config.get("query"):
        statements = sqlparse.parse(config["query"])
        if len([s for s in statements if str(s).strip(" \t\r\n;")]) != 1 or statements[0].get_type() != "SELECT":
            raise SourceConfigError(f"{KIND} source: 'query' must be a single SELECT statement")


def _table(config: Mapping[str, Any]) -> str:
    # the seed's configs give "schema" and "table" separately
    table = str(config["table"])
    return f"{config['schema']}.{table}" if config.get("schema") and "." not in table else table


def open_source(config: Mapping[str, Any], *, batch_size: int, policy: RegistryPolicy) -> Iterator[Batch]:
    from datasync.registry.policy import PolicyRefused

    validate(config)
    try:
        policy.database(config["conn_id"])
    except PolicyRefused as exc:
        raise exc.at(f"{KIND} source {config['conn_id']}") from None
    return batched(_records(config, batch_size), batch_size)


def _records(config: Mapping[str, Any], batch_size: int) -> Iterator[dict[str, Any]]:
    from datasync.db import DatabaseUnavailable, WrongServerKind, connect

    try:
        db = connect(config["conn_id"])
    except (DatabaseUnavailable, WrongServerKind) as exc:
        raise SourceError(f"{KIND} source: {exc}") from None
    except Exception as exc:  # unknown conn id and the like
        raise SourceError(f"{KIND} source: Airflow connection '{config['conn_id']}' is not usable: {exc}") from None
    try:
        check_login(db, f"{KIND} source {config['conn_id']}")
    except BaseException:
        db.close()
        raise
    if config.get("table"):
        cols = ", ".join(db.quote(c) for c in config.get("columns") or []) or "*"
        sql = f"SELECT {cols} FROM " + ".".join(db.quote(p) for p in _table(config).split("."))
        where = f"{KIND} source {config['conn_id']}.{_table(config)}"
    else:
        sql = config["query"].strip().rstrip(";")
        where = f"{KIND} source {config['conn_id']} (query)"
    try:
        cur = db.dialect.read_only_stream(db, batch_size)
        try:
            cur.execute(sql)
            names = [d[0] for d in cur.description]
            if len(set(names)) < len(names):  # a join's two "id" columns would silently collapse
                raise SourceError(f"{where}: the result has duplicate column names {names}; alias them")
            while rows := cur.fetchmany(batch_size):
                for row in rows:
                    yield dict(zip(names, row))
        finally:
            cur.close()
    except SourceError:
        raise
    except Exception as exc:  # driver errors: the message (e.g. "relation does not exist") is what helps
        raise SourceError(f"{where}: {type(exc).__name__}: {str(exc).strip()}") from None
    finally:
        db.rollback()
        db.close()


def check_login(db: Database, where: str) -> None:
    """Refuse a login that could read or write the server's files or run its programs."""
    from datasync.registry.policy import PolicyRefused

    try:
        powers = {"postgres": _pg_powers, "mysql": _mysql_powers}[db.dialect.family](db)
    except Exception as exc:
        raise SourceError(f"{where}: cannot check the login's privileges: {type(exc).__name__}: {exc}") from None
    finally:
        db.rollback()
    if powers:
        raise PolicyRefused(
            "database_connections", f"Airflow connection '{db.conn_id}' logs in with server-wide powers ({powers}); "
            "registry reads need a login that is not a superuser and cannot read server files", where=where)


def _pg_powers(db: Database) -> str:
    rows = db.fetchall(
        "SELECT r.rolname, r.rolsuper FROM pg_roles r WHERE pg_has_role(session_user, r.oid, 'MEMBER') "
        "AND (r.rolsuper OR r.rolname = ANY(%s)) ORDER BY r.rolname = session_user DESC, r.rolsuper DESC, r.rolname",
        (list(PG_POWERFUL_ROLES),))
    return ", ".join(f"superuser role '{name}'" if is_super else f"member of '{name}'" for name, is_super in rows[:5])


def _mysql_powers(db: Database) -> str:
    found: list[str] = []
    todo, seen = ["CURRENT_USER()"], set()
    while todo:
        grantee = todo.pop()
        if grantee in seen or len(seen) > 20:
            continue
        seen.add(grantee)
        for (line,) in db.fetchall(f"SHOW GRANTS FOR {grantee}"):
            if m := _PRIVILEGE_GRANT.match(line):
                privileges = {p.strip().upper() for p in m.group(1).split(",")}
                if m.group(2) == "*.*" or "PROXY" in privileges:
                    found += [f"{p} for {grantee}" for p in MYSQL_POWERFUL_PRIVILEGES if p in privileges]
            elif " ON " not in line.upper() and (m := _ROLE_GRANT.match(line)):
                todo += [role.strip() for role in m.group(1).split(",")]  # roles: quoted by the server
    return ", ".join(found)
