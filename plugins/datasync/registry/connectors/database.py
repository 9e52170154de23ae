"""A table or query behind an Airflow connection (Postgres or MySQL family), streamed in batches.

Rows come through a server-side cursor, so a large table never sits in worker memory. The
transaction is read-only: a ``query`` from the registry can read, never write.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import sqlparse

from datasync.identifiers import InvalidIdentifier, check_identifier, check_table_name
from datasync.registry.connectors.base import Batch, SourceConfigError, SourceError, batched, check_keys, string_list

KIND = "database"
OPTIONAL = ("table", "query", "columns", "schema")


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
    if config.get("query") and len(sqlparse.split(config["query"])) != 1:
        raise SourceConfigError(f"{KIND} source: 'query' must be a single SELECT statement")


def _table(config: Mapping[str, Any]) -> str:
    # the seed's configs give "schema" and "table" separately
    table = str(config["table"])
    return f"{config['schema']}.{table}" if config.get("schema") and "." not in table else table


def open_source(config: Mapping[str, Any], *, batch_size: int) -> Iterator[Batch]:
    validate(config)
    return batched(_records(config, batch_size), batch_size)


def _records(config: Mapping[str, Any], batch_size: int) -> Iterator[dict[str, Any]]:
    from datasync.db import DatabaseUnavailable, WrongServerKind, connect

    try:
        db = connect(config["conn_id"])
    except (DatabaseUnavailable, WrongServerKind) as exc:
        raise SourceError(f"{KIND} source: {exc}") from None
    except Exception as exc:  # unknown conn id and the like
        raise SourceError(f"{KIND} source: Airflow connection '{config['conn_id']}' is not usable: {exc}") from None
    if config.get("table"):
        cols = ", ".join(db.quote(c) for c in config.get("columns") or []) or "*"
        sql = f"SELECT {cols} FROM " + ".".join(db.quote(p) for p in _table(config).split("."))
        where = f"{KIND} source {config['conn_id']}.{_table(config)}"
    else:
        sql = config["query"].strip().rstrip(";")
        where = f"{KIND} source {config['conn_id']} (query)"
    try:
        if db.is_postgres:
            db.conn.read_only = True  # takes effect at the next transaction
            cur = db.conn.cursor(name="registry_source")  # named = server-side cursor
            cur.itersize = batch_size
        else:
            import MySQLdb.cursors

            db.execute("SET TRANSACTION READ ONLY").close()
            cur = db.conn.cursor(MySQLdb.cursors.SSCursor)  # unbuffered: rows stream from the server
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
