"""The database connector against real Postgres and MariaDB: tables, queries, batches, read-only."""

import pytest

from datasync.registry.connectors import SourceConfigError, SourceError
from datasync.registry.connectors import open_source as _open_source
from policies import policy, reader_login

ROWS = 7
# The platform opens these two connections (non-superuser logins) to registry sources.
ALLOWED = policy(database_connections=["registry_src_pg", "registry_src_my"])


def open_source(source_type, config, **kwargs):
    return _open_source(source_type, config, policy=ALLOWED, **kwargs)


@pytest.fixture(scope="module")
def pg_source(database_factory):
    db = database_factory("postgres", "regsrc")
    db.query("CREATE SCHEMA plant")
    db.query("CREATE TABLE plant.production_data (id INT PRIMARY KEY, machine TEXT, qty NUMERIC(10,2))")
    db.query("INSERT INTO plant.production_data SELECT g, 'M' || g, g * 1.5 FROM generate_series(1, %s) g", (ROWS,))
    db.query("CREATE SEQUENCE plant.seq")
    drop = reader_login(db, "registry_src_pg")
    yield db
    drop()


@pytest.fixture(scope="module")
def my_source(database_factory):
    db = database_factory("mysql", "regsrc")
    db.query("CREATE TABLE production_data (id INT PRIMARY KEY, machine VARCHAR(20))")
    db.query("INSERT INTO production_data VALUES " + ", ".join(f"({i}, 'M{i}')" for i in range(1, ROWS + 1)))
    drop = reader_login(db, "registry_src_my")
    yield db
    drop()


def ids(batches):
    return [r["id"] for b in batches for r in b]


def test_postgres_table_streams_in_batches(pg_source):
    config = {"conn_id": "registry_src_pg", "schema": "plant", "table": "production_data", "columns": ["id", "machine"]}
    batches = list(open_source("database", config, batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert sorted(ids(batches)) == list(range(1, ROWS + 1))
    assert set(batches[0][0]) == {"id", "machine"}


def test_postgres_query(pg_source):
    config = {"conn_id": "registry_src_pg", "query": "SELECT id, qty FROM plant.production_data WHERE id <= 2 ORDER BY id;"}
    assert [[(r["id"], str(r["qty"])) for r in b] for b in open_source("database", config)] == [[(1, "1.50"), (2, "3.00")]]


def test_mariadb_table(my_source):
    batches = list(open_source("database", {"conn_id": "registry_src_my", "table": "production_data"}, batch_size=4))
    assert [len(b) for b in batches] == [4, 3]
    assert batches[0][0] == {"id": 1, "machine": "M1"}


def test_queries_run_read_only(pg_source):
    # nextval() writes: a registry query can read what the connection can read, never change it
    config = {"conn_id": "registry_src_pg", "query": "SELECT nextval('plant.seq') AS id"}
    with pytest.raises(SourceError, match=r"\(query\): .*read-only transaction"):
        list(open_source("database", config))


@pytest.mark.parametrize("config, message", [
    ({"table": "production_data; DROP TABLE users"}, "refusing table name"),
    ({"table": 'x"y'}, "refusing table name"),
    ({"table": "production_data", "columns": ["id", "qty) FROM x; --"]}, "refusing column name"),
    ({"query": "SELECT 1; DROP TABLE production_data"}, "single SELECT statement"),
    ({"table": "a", "query": "SELECT 1"}, "not both or neither"),
])
def test_injection_and_bad_configs_are_refused_before_connecting(config, message):
    with pytest.raises(SourceConfigError, match=message):
        open_source("database", {"conn_id": "never_looked_up", **config})


def test_unknown_table_and_duplicate_columns_are_named(pg_source):
    with pytest.raises(SourceError, match=r"registry_src_pg\.plant\.nope: .*does not exist"):
        list(open_source("database", {"conn_id": "registry_src_pg", "table": "plant.nope"}))
    query = "SELECT a.id, b.id FROM plant.production_data a JOIN plant.production_data b USING (id)"
    with pytest.raises(SourceError, match="duplicate column names"):
        list(open_source("database", {"conn_id": "registry_src_pg", "query": query}))
    with pytest.raises(SourceError, match="'no_such_conn' is not usable"):
        list(_open_source("database", {"conn_id": "no_such_conn", "table": "t"},
                          policy=policy(database_connections=["no_such_conn"])))
