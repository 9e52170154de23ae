"""The registry schema on real Postgres: migrations apply, vocabularies are enforced, templates are valid."""

import json

import psycopg
import pytest

from datasync.registry.connectors import validate_config
from datasync.registry.mapping import compile_mapping

TABLES = {"users", "data_source_registry", "data_source_connections", "data_source_mappings",
          "data_source_sync_history", "data_source_templates", "sync_cursors", "sync_log", "sync_rejects"}


@pytest.fixture
def conn(migrated_target):
    """A transaction on the migrated registry database, rolled back after the test."""
    db = migrated_target("registry")
    with psycopg.connect(db.uri) as connection:
        yield connection
        connection.rollback()


def insert(conn, table, **values):
    cols = ", ".join(values)
    marks = ", ".join("%s::jsonb" if isinstance(v, dict) else "%s" for v in values.values())
    params = [json.dumps(v) if isinstance(v, dict) else v for v in values.values()]
    return conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks}) RETURNING id", params).fetchone()[0]


def source(conn, source_id="src1", **values):
    return insert(conn, "data_source_registry", source_id=source_id, name="Aktual Produksi",
                  **{"source_type": "json", "connection_type": "file", **values})


def test_migrations_create_every_table_and_ledger(migrated_target):
    db = migrated_target("registry")
    names = {r[0] for r in db.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert TABLES <= names
    assert {r[0] for r in db.query("SELECT version FROM datasync_migrations")} >= {"registry/001", "registry/002"}


def test_seed_shaped_rows_fit(conn):
    user = insert(conn, "users", username="admin")
    src = source(conn, created_by=user)
    insert(conn, "data_source_connections", source_id=src, connection_name="main", connection_type="file",
           connection_config={"file_path": "/src/data/json/actual_production.json", "file_type": "json",
                              "encoding": "utf-8", "auto_reload": True}, is_primary=True)
    insert(conn, "data_source_connections", source_id=src, connection_name="mirror", connection_type="file",
           connection_config={"file_path": "/mnt/mirror/actual_production.json"}, is_backup=True,
           authentication_config={"conn_id": "mirror_share"})
    mapping = insert(conn, "data_source_mappings", source_id=src, target_table="production_data",
                     key_columns=["machine_id", "produced_on"], cursor_field="updated_at", max_rejects=5,
                     retention_date_column="produced_on",
                     mapping_config={"columns": [{"column": "machine_id", "source": "machine"}]})
    insert(conn, "data_source_sync_history", source_id=src, mapping_id=mapping, connection_role="backup",
           sync_type="incremental", sync_status="partial", records_processed=10, records_rejected=2,
           sync_started_at="2026-01-05T01:00:00Z", sync_completed_at="2026-01-05T01:00:03Z")
    row = conn.execute("SELECT status, priority, refresh_interval, error_count FROM data_source_registry WHERE id = %s",
                       (src,)).fetchone()
    assert row == ("active", 1, 300, 0)


def test_updated_at_is_touched_on_update(conn):
    src = source(conn)
    conn.execute("UPDATE data_source_registry SET updated_at = now() - interval '1 day' WHERE id = %s", (src,))
    conn.execute("UPDATE data_source_registry SET status = 'maintenance' WHERE id = %s", (src,))
    assert conn.execute("SELECT updated_at > now() - interval '1 minute' FROM data_source_registry WHERE id = %s",
                        (src,)).fetchone()[0]


@pytest.mark.parametrize("table, values", [
    ("data_source_registry", {"source_type": "xml"}),
    ("data_source_registry", {"status": "broken"}),
    ("data_source_registry", {"priority": 4}),
    ("data_source_registry", {"source_type": "api", "connection_type": "file"}),
    ("data_source_registry", {"source_id": "bad id; --"}),
    ("data_source_connections", {"connection_type": "ftp"}),
    ("data_source_connections", {"connection_type": "database", "connection_config": {"host": "10.0.0.1"}}),
    ("data_source_connections", {"connection_type": "database", "connection_config": {"conn_id": "x", "password": "p"}}),
    ("data_source_connections", {"authentication_config": {"password": "hunter2"}}),
    ("data_source_connections", {"is_primary": True, "is_backup": True}),
    ("data_source_mappings", {"target_table": "x; DROP TABLE y"}),
    ("data_source_mappings", {"target_table": "data_source_registry"}),
    ("data_source_mappings", {"key_columns": []}),
    ("data_source_mappings", {"key_columns": ["id", "bad name"]}),
    ("data_source_mappings", {"sync_strategy": "incremental", "cursor_field": None}),
    ("data_source_mappings", {"sync_frequency": "weekly"}),
    ("data_source_mappings", {"max_rejects": -1}),
    ("data_source_sync_history", {"sync_status": "done"}),
    ("data_source_sync_history", {"sync_status": "failed"}),  # without error_message
    ("data_source_sync_history", {"sync_status": "running", "sync_completed_at": "2026-01-05T02:00:00Z"}),
    ("data_source_sync_history", {"connection_role": "tertiary"}),
    ("data_source_templates", {"template_type": "ftp"}),
])
def test_check_constraints_refuse_bad_values(conn, table, values):
    src = source(conn)
    base = {
        "data_source_registry": {"source_id": "src2", "name": "x", "source_type": "json", "connection_type": "file"},
        "data_source_connections": {"source_id": src, "connection_name": "c", "connection_type": "file",
                                    "connection_config": {"file_path": "/x.json"}},
        "data_source_mappings": {"source_id": src, "target_table": "t", "key_columns": ["id"],
                                 "sync_strategy": "full"},
        "data_source_sync_history": {"source_id": src, "sync_type": "full", "sync_status": "success",
                                     "sync_started_at": "2026-01-05T01:00:00Z",
                                     "sync_completed_at": "2026-01-05T01:00:01Z"},
        "data_source_templates": {"template_name": "t", "template_type": "file", "source_type": "csv",
                                  "template_config": {}},
    }[table]
    with pytest.raises(psycopg.errors.CheckViolation):
        with conn.transaction():
            insert(conn, table, **{**base, **values})
    insert(conn, table, **base)  # the base row itself is fine: the refusal was the bad value


def test_one_primary_connection_per_source(conn):
    src = source(conn)
    insert(conn, "data_source_connections", source_id=src, connection_name="a", connection_type="file",
           connection_config={"file_path": "/a.json"}, is_primary=True)
    with pytest.raises(psycopg.errors.UniqueViolation):
        insert(conn, "data_source_connections", source_id=src, connection_name="b", connection_type="file",
               connection_config={"file_path": "/b.json"}, is_primary=True)


def test_every_predefined_template_is_valid(migrated_target):
    db = migrated_target("registry")
    rows = db.query("SELECT template_name, source_type, template_config FROM data_source_templates WHERE is_predefined")
    assert sorted(r[1] for r in rows) == sorted(["json", "csv", "excel", "gsheet", "database", "api", "artisan"])
    for name, source_type, config in rows:
        validate_config(source_type, config["connection_config"])
        mapper = compile_mapping(config["mapping_config"], target_table="template_check")
        assert mapper.key_columns, name
