"""Source and target databases with the common bookkeeping tables, bound to conn ids."""

import pytest

from datasync.db import connected
from datasync.migrate import Target, migrate_database


def bookkept(db, conn_id: str):
    """Bind ``db`` to ``conn_id`` and give it sync_cursors / sync_log / sync_rejects."""
    db.bind(conn_id)
    with connected(conn_id) as conn:
        migrate_database(Target("engine_test", conn_id, "postgres" if db.kind == "postgres" else "mysql"), conn)
    return db


@pytest.fixture
def pg_source(database_factory):
    return bookkept(database_factory("postgres", "src"), "eng_src")


@pytest.fixture
def pg_target(database_factory):
    return bookkept(database_factory("postgres", "tgt"), "eng_tgt")


@pytest.fixture
def my_source(database_factory):
    return bookkept(database_factory("mysql", "src"), "eng_src")


@pytest.fixture
def my_target(database_factory):
    return bookkept(database_factory("mysql", "tgt"), "eng_tgt")


ITEMS_PG = """CREATE TABLE items (
    id BIGINT PRIMARY KEY, name VARCHAR(20) NOT NULL, qty INTEGER, price NUMERIC(12,2),
    meta JSONB, updated_at TIMESTAMPTZ NOT NULL)"""
ITEMS_MY = """CREATE TABLE items (
    id BIGINT PRIMARY KEY, name VARCHAR(20) NOT NULL, qty INTEGER, price DECIMAL(12,2),
    meta JSON, updated_at DATETIME(6) NOT NULL, KEY items_cursor (updated_at, id))"""


def create_items(db):
    db.query(ITEMS_PG if db.kind == "postgres" else ITEMS_MY)
    if db.kind == "postgres":
        db.query("CREATE INDEX items_cursor ON items (updated_at, id)")
