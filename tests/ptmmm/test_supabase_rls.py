"""Supabase row-level security with real Postgres roles: each test acts as a user the way
PostgREST does (SET ROLE + request.jwt.claims) and checks what that user can read and write."""

import datetime as dt
import json
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql
from ptmmm_example import uid
from ptmmm_fixtures import SUPABASE

from datasync.db import connected
from datasync.ptmmm import kpi

DAY = dt.date(2025, 3, 10)
KPI_TABLES = ("inventory_kpi_daily", "fleet_kpi_daily")
WAREHOUSES = {"W1": "A", "W2": "A", "W4": "B"}
USERS = {  # user: (org, warehouse or None for the whole org, role)
    "owner_a": ("A", None, "owner"),
    "manager_w1": ("A", "W1", "manager"),
    "owner_b": ("B", None, "owner"),
    "nobody": None,
}


@pytest.fixture
def supabase(supabase_db):
    q = supabase_db.query
    for user in USERS:
        q("INSERT INTO auth.users (id, email) VALUES (%s, %s)", (uid(user), f"{user}@example.com"))
    for org in ("A", "B"):
        q("INSERT INTO public.organization (id, name, slug) VALUES (%s, %s, %s)", (uid(org), f"Org {org}", org.lower()))
    for wh, org in WAREHOUSES.items():
        q("INSERT INTO public.warehouse (id, org_id, code, name) VALUES (%s, %s, %s, %s)", (uid(wh), uid(org), wh, wh))
    for user, grant in USERS.items():
        if grant:
            org, wh, role = grant
            q("INSERT INTO public.user_org_role (user_id, org_id, warehouse_id, role) VALUES (%s, %s, %s, %s)",
              (uid(user), uid(org), wh and uid(wh), role))
    for wh, org in WAREHOUSES.items():
        q(kpi_insert("inventory_kpi_daily"), (DAY, uid(wh), uid(org)))
        q(kpi_insert("fleet_kpi_daily"), (DAY, uid(wh), uid(org)))
    return supabase_db


def kpi_insert(table: str) -> str:
    zeros = {"inventory_kpi_daily": 11, "fleet_kpi_daily": 12}[table]
    return f"INSERT INTO public.{table} VALUES (%s, %s, %s, {', '.join(['0'] * zeros)}, now())"


@contextmanager
def acting_as(db, role: str, user: str | None = None):
    """A session as PostgREST would run it for ``user`` (no login needed: SET ROLE)."""
    with psycopg.connect(db.uri) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        if user:
            claims = json.dumps({"sub": uid(user), "role": role})
            conn.execute(sql.SQL("SET request.jwt.claims = {}").format(sql.Literal(claims)))
        yield conn


def seen(conn, table: str, column: str = "warehouse_id") -> set[str]:
    names = {uid(a): a for a in (*WAREHOUSES, "A", "B", *USERS)}
    return {names[str(v)] for (v,) in conn.execute(f"SELECT {column} FROM public.{table}")}


def test_auth_helpers_read_the_jwt_claims(supabase):
    with acting_as(supabase, "authenticated", "owner_a") as conn:
        uid_, role = conn.execute("SELECT auth.uid(), auth.jwt() ->> 'role'").fetchone()
    assert (str(uid_), role) == (uid("owner_a"), "authenticated")
    with acting_as(supabase, "anon") as conn:
        assert conn.execute("SELECT auth.uid(), auth.jwt()").fetchone() == (None, None)


@pytest.mark.parametrize("table", KPI_TABLES)
@pytest.mark.parametrize(
    "user, visible",
    [("owner_a", {"W1", "W2"}), ("manager_w1", {"W1"}), ("owner_b", {"W4"}), ("nobody", set())],
)
def test_users_read_only_their_orgs_and_warehouses(supabase, table, user, visible):
    with acting_as(supabase, "authenticated", user) as conn:
        assert seen(conn, table) == visible
        # a filter cannot widen what a policy allows
        assert conn.execute(f"SELECT count(*) FROM public.{table} WHERE warehouse_id = %s", (uid("W4"),)).fetchone()[0] == (
            1 if "W4" in visible else 0
        )


def test_org_schema_policies(supabase):
    with acting_as(supabase, "authenticated", "owner_a") as conn:
        assert seen(conn, "organization", "id") == {"A"}
        assert seen(conn, "warehouse", "id") == {"W1", "W2"}
        assert seen(conn, "user_org_role", "user_id") == {"owner_a"}  # own roles only
    with acting_as(supabase, "authenticated", "manager_w1") as conn:
        assert seen(conn, "organization", "id") == {"A"}
        assert seen(conn, "warehouse", "id") == {"W1"}
    with acting_as(supabase, "authenticated", "nobody") as conn:
        for table, column in (("organization", "id"), ("warehouse", "id"), ("user_org_role", "user_id")):
            assert seen(conn, table, column) == set()


@pytest.mark.parametrize("table", (*KPI_TABLES, "organization", "warehouse", "user_org_role"))
def test_anon_reads_nothing(supabase, table):
    with acting_as(supabase, "anon") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(f"SELECT * FROM public.{table}")


@pytest.mark.parametrize("table", KPI_TABLES)
def test_only_service_role_writes(supabase, table):
    with acting_as(supabase, "authenticated", "owner_a") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(kpi_insert(table), (DAY + dt.timedelta(days=1), uid("W1"), uid("A")))
    with acting_as(supabase, "service_role") as conn:
        conn.execute(kpi_insert(table), (DAY + dt.timedelta(days=1), uid("W1"), uid("A")))
        conn.execute(f"UPDATE public.{table} SET updated_at = now() WHERE data_date = %s", (DAY,))
        assert seen(conn, table) == {"W1", "W2", "W4"}  # bypasses RLS: sees every org
    assert supabase.query(f"SELECT count(*) FROM public.{table}") == [(4,)]


def test_mirror_rollback_deletes_one_day(supabase):
    with connected(SUPABASE) as db:
        assert kpi.delete_kpi_day(db, DAY) == {"inventory_kpi_daily": 3, "fleet_kpi_daily": 3}
    assert supabase.query("SELECT count(*) FROM public.inventory_kpi_daily") == [(0,)]
