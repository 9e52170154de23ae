"""The migration runner against real servers: apply, skip, refuse tampering, roll back."""

from pathlib import Path

import pytest

from datasync import migrate as m
from datasync.db import WrongServerKind, connected


@pytest.fixture
def sql_dir(tmp_path, monkeypatch):
    """A private include/sql tree so tests can add and tamper with files."""
    root = tmp_path / "include" / "sql"
    (root / "common" / "postgres").mkdir(parents=True)
    (root / "common" / "mysql").mkdir(parents=True)
    monkeypatch.setattr(m, "SQL_DIR", root)
    return root


def _target(family: str, conn_id: str) -> m.Target:
    return m.Target("demo", conn_id, family)


def _write(folder: Path, name: str, sql: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(sql)


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_apply_in_order_then_noop(kind, database_factory, sql_dir):
    db = database_factory(kind, "mig")
    db.bind("mig_test")
    _write(sql_dir / "demo", "001_a.sql", "CREATE TABLE a (id INT PRIMARY KEY);\nINSERT INTO a VALUES (1);")
    _write(sql_dir / "demo", "002_b.sql", "INSERT INTO a VALUES (2); -- a comment; with semicolon\n")
    target = _target("postgres" if kind == "postgres" else "mysql", "mig_test")
    with connected("mig_test") as conn:
        first = m.migrate_database(target, conn)
        second = m.migrate_database(target, conn)
    assert first.applied == ["demo/001", "demo/002"]
    assert second.applied == [] and second.skipped == 2
    assert db.query("SELECT id FROM a ORDER BY id") == [(1,), (2,)]
    ledger = db.query("SELECT version, name FROM datasync_migrations ORDER BY version")
    assert ledger == [("demo/001", "a"), ("demo/002", "b")]


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_tampered_file_is_refused_by_name(kind, database_factory, sql_dir):
    database_factory(kind, "tamper").bind("mig_test")
    _write(sql_dir / "demo", "001_a.sql", "CREATE TABLE a (id INT);")
    target = _target("postgres" if kind == "postgres" else "mysql", "mig_test")
    with connected("mig_test") as conn:
        m.migrate_database(target, conn)
    _write(sql_dir / "demo", "001_a.sql", "CREATE TABLE a (id BIGINT);")
    with connected("mig_test") as conn, pytest.raises(m.MigrationError, match=r"001_a\.sql was changed after it was applied"):
        m.migrate_database(target, conn)


def test_failing_statement_rolls_back_its_migration_on_postgres(database_factory, sql_dir):
    db = database_factory("postgres", "rollback")
    db.bind("mig_test")
    _write(sql_dir / "demo", "001_ok.sql", "CREATE TABLE ok (id INT);")
    _write(sql_dir / "demo", "002_bad.sql", "CREATE TABLE half (id INT);\nINSERT INTO missing_table VALUES (1);")
    target = _target("postgres", "mig_test")
    with connected("mig_test") as conn, pytest.raises(m.MigrationError) as err:
        m.migrate_database(target, conn)
    assert "002_bad.sql" in str(err.value) and "INSERT INTO missing_table" in str(err.value)
    assert "rolled back" in str(err.value)
    tables = {t for (t,) in db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert "ok" in tables and "half" not in tables
    assert db.query("SELECT version FROM datasync_migrations") == [("demo/001",)]


def test_wrong_server_kind_is_a_clear_error(database_factory, sql_dir):
    database_factory("mysql", "kind").bind("mig_test")
    with connected("mig_test") as conn, pytest.raises(WrongServerKind, match="needs PostgreSQL.*'mig_test'.*MariaDB"):
        m.migrate_database(_target("postgres", "mig_test"), conn)


def test_repeatable_migrations_reapply_when_text_changes(database_factory, sql_dir, monkeypatch):
    db = database_factory("postgres", "repeat")
    db.bind("mig_test")
    body = {"sql": "CREATE OR REPLACE VIEW v AS SELECT 1 AS x"}
    monkeypatch.setattr(m, "_resolve", lambda ref: lambda _db: [("view_v", body["sql"])])
    target = m.Target("demo", "mig_test", "postgres", repeatables=("x:y",))
    with connected("mig_test") as conn:
        assert m.migrate_database(target, conn).applied == ["demo/R:view_v"]
        assert m.migrate_database(target, conn).applied == []
        body["sql"] = "CREATE OR REPLACE VIEW v AS SELECT 2 AS x"
        assert m.migrate_database(target, conn).applied == ["demo/R:view_v"]
    assert db.query("SELECT x FROM v") == [(2,)]


def test_every_real_target_migrates_cleanly_twice(migrated_target):
    from datasync.migrate import TARGETS, migrate

    for name in TARGETS:
        db = migrated_target(name)
        assert migrate([name])[0].applied == []
        tables = db.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            + ("'public'" if db.kind == "postgres" else "DATABASE()")
        )
        assert {"sync_cursors", "sync_log", "sync_rejects", "datasync_migrations"} <= {t for (t,) in tables}
