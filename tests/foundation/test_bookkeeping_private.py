"""Bookkeeping tables are private on every Postgres target, even on Supabase, which grants every
new table in ``public`` to its API roles ``anon`` and ``authenticated`` by default. Emulated
here the way Supabase does it (ALTER DEFAULT PRIVILEGES before anything is created), then each
target is migrated and the API roles try to read and write the bookkeeping."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from datasync.identifiers import InvalidIdentifier, check_identifier, check_table_name
from datasync.migrate import TARGETS, migrate

BOOKKEEPING = ("sync_log", "sync_rejects", "sync_cursors", "datasync_migrations")
API_ROLES = ("anon", "authenticated")
PG_TARGETS = sorted(name for name, t in TARGETS.items() if t.family == "postgres")

# Roles are cluster-wide: made once if missing (another database, or the supabase migration in a
# concurrent test, may have made them first), never dropped.
CREATE_API_ROLES = """
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
            END;
        END IF;
    END LOOP;
END $$"""
SUPABASE_DEFAULTS = """
GRANT USAGE ON SCHEMA public TO anon, authenticated;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated;
"""


@pytest.fixture(scope="module", params=PG_TARGETS)
def supabase_like(request, database_factory):
    """A fresh database with Supabase's default grants, migrated as target ``request.param``."""
    name = request.param
    db = database_factory("postgres", f"priv_{name}")
    db.query(CREATE_API_ROLES)
    for statement in SUPABASE_DEFAULTS.strip().split(";\n"):
        db.query(statement)
    db.bind(TARGETS[name].conn_id)
    migrate([name])
    return db


def _as(db, role: str):
    conn = psycopg.connect(db.uri, autocommit=True)
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    return conn


@pytest.mark.parametrize("role", API_ROLES)
def test_api_roles_cannot_read_or_write_bookkeeping(supabase_like, role):
    db = supabase_like
    # the emulation is real: a table made the same way, but not bookkeeping, is theirs by default
    db.query("CREATE TABLE IF NOT EXISTS app_table (id int)")
    assert db.query("SELECT has_table_privilege(%s, 'app_table', 'SELECT')", (role,)) == [(True,)]
    for table in BOOKKEEPING:
        privileges = db.query(
            "SELECT has_table_privilege(%s, %s, 'SELECT'), has_table_privilege(%s, %s, 'INSERT'), "
            "has_table_privilege(%s, %s, 'UPDATE'), has_table_privilege(%s, %s, 'DELETE')", (role, table) * 4)
        assert privileges == [(False, False, False, False)], table
        with _as(db, role) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("INSERT INTO {} DEFAULT VALUES").format(sql.Identifier(table)))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))


def test_public_has_no_grant_and_row_level_security_is_on(supabase_like):
    db = supabase_like
    rows = db.query(
        "SELECT c.relname, c.relrowsecurity, coalesce(c.relacl::text, '') FROM pg_class c "
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY(%s) ORDER BY c.relname", (list(BOOKKEEPING),))
    assert sorted(r[0] for r in rows) == sorted(BOOKKEEPING)
    for table, rls, acl in rows:
        assert rls, f"{table}: row-level security is off"
        entries = [e for e in acl.strip("{}").split(",") if e]
        assert not [e for e in entries if e.startswith("=") or e.split("=")[0] in API_ROLES], (table, acl)
    # no policy lets PUBLIC or an API role in (the tekmetric target has one for service_role)
    assert db.query("SELECT count(*) FROM pg_policies WHERE tablename = ANY(%s) "
                    "AND roles && ARRAY['public', 'anon', 'authenticated']::name[]", (list(BOOKKEEPING),)) == [(0,)]
    for seq in ("sync_log_id_seq", "sync_rejects_id_seq"):
        for role in API_ROLES:
            assert db.query("SELECT has_sequence_privilege(%s, %s, 'USAGE')", (role, seq)) == [(False,)]


def test_the_owner_still_syncs(supabase_like):
    """RLS without policies binds only other roles: the migrating owner keeps writing its log."""
    db = supabase_like
    db.query("INSERT INTO sync_log (sync_name, mode, status) VALUES ('probe', 'full', 'success')")
    assert db.query("SELECT count(*) FROM sync_log WHERE sync_name = 'probe'") == [(1,)]


def test_the_ledger_is_private_from_the_moment_it_exists(database_factory):
    """The runner creates datasync_migrations before any migration runs (and Supabase's default
    grants apply to it too): it is private at once, not only after common/postgres/002."""
    from datasync.db import connected
    from datasync.migrate import _ensure_ledger

    db = database_factory("postgres", "ledger")
    db.query(CREATE_API_ROLES)
    for statement in SUPABASE_DEFAULTS.strip().split(";\n"):
        db.query(statement)
    db.bind("ledger_only")
    with connected("ledger_only") as conn:
        _ensure_ledger(conn)
    for role in API_ROLES:
        assert db.query("SELECT has_table_privilege(%s, 'datasync_migrations', 'SELECT')", (role,)) == [(False,)]
    assert db.query("SELECT relrowsecurity FROM pg_class WHERE relname = 'datasync_migrations'") == [(True,)]


# ---- identifiers from configuration ----------------------------------------------------------------
@pytest.mark.parametrize("name", ["v\n", "v\r\n", "\nv", "", " ", "a b", "a;b", "a-b", "ñame", "tablé", "ｖ",
                                  "1abc", "a" * 64, "v\x00", 'a"b', None, 7])
def test_identifier_check_refuses(name):
    with pytest.raises(InvalidIdentifier, match="refusing column"):
        check_identifier(name, "column")


@pytest.mark.parametrize("name", ["v", "_v", "V2", "a" * 63, "select"])
def test_identifier_check_accepts(name):
    assert check_identifier(name) == name


@pytest.mark.parametrize("name", ["s.t\n", "s\n.t", "s..t", ".t", "s.", "a.b.c", "s.t;"])
def test_table_name_check_refuses(name):
    with pytest.raises(InvalidIdentifier):
        check_table_name(name)
