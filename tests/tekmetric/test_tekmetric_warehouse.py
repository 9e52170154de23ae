"""The warehouse schema (tables, types, vocabularies, cascades, RLS, the PII-free view) and the
payload -> row mapping (money, timestamps, shop-local days, cost rates, fee types)."""

from __future__ import annotations

import copy
import datetime as dt
import uuid

import psycopg
import pytest

from devtools.tekmetric.emulator_data import DataStore
from datasync.tekmetric.warehouse import RowError, ShopContext, employee_row, fee_type, repair_order_rows

UTC = dt.timezone.utc
TABLES = ["shops", "employees", "customers", "vehicles", "repair_orders", "jobs", "job_parts", "job_labor",
          "job_sublets", "job_fees", "ro_snapshots", "daily_shop_metrics", "tech_daily_metrics", "sync_cursors",
          "sync_log", "tm_raw_payloads"]
PII = {"first_name", "last_name", "email", "phone", "phones", "address1", "address2", "notes"}


@pytest.fixture(scope="module")
def schema(migrated_target):
    return migrated_target("tekmetric")


def sql_error(db, statement: str, params=None) -> str:
    with pytest.raises(psycopg.Error) as info:
        db.query(statement, params)
    return str(info.value)


def test_sixteen_tables_with_rls_and_service_role_policies(schema):
    rls = dict(schema.query("SELECT tablename, rowsecurity FROM pg_tables WHERE schemaname = 'public'"))
    assert all(rls.get(t) is True for t in TABLES), {t: rls.get(t) for t in TABLES}
    policies = {t for (t,) in schema.query("SELECT tablename FROM pg_policies WHERE policyname = 'service_role_all'")}
    assert set(TABLES) <= policies
    assert schema.query("SELECT count(*) FROM pg_roles WHERE rolname = 'service_role'") == [(1,)]


def test_money_is_integer_cents_and_time_types(schema):
    cols = {(t, c): d for t, c, d in schema.query(
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public'")}
    money = [k for k in cols if k[0] in TABLES and any(
        w in k[1] for w in ("sales", "cost", "retail", "price", "total", "taxes", "amount", "gp", "gross", "avg_ro"))
        and not k[1].startswith("rows_") and not k[1].endswith("_pct")]
    assert len(money) > 40
    assert {cols[k] for k in money} <= {"bigint", "integer"}, {k: cols[k] for k in money if cols[k] not in ("bigint", "integer")}
    for t, c in [("repair_orders", "updated_date"), ("repair_orders", "posted_at"), ("customers", "deleted_date")]:
        assert cols[(t, c)] == "timestamp with time zone"
    for t, c in [("repair_orders", "posted_date"), ("repair_orders", "completed_date"),
                 ("daily_shop_metrics", "metric_date"), ("ro_snapshots", "metric_date")]:
        assert cols[(t, c)] == "date"


def test_customers_analytics_has_no_pii(schema):
    columns = {c for (c,) in schema.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers_analytics'")}
    assert columns and not columns & PII and "zip" not in columns and "zip3" in columns


@pytest.fixture
def filled(database_factory):
    """A fresh warehouse with two shops, one RO each (jobs, lines, snapshot) and two customers."""
    from datasync.migrate import migrate

    db = database_factory("postgres", "tekmetric")
    db.bind("tekmetric_warehouse")
    migrate(["tekmetric"])
    db.query("INSERT INTO shops (shop_id, name, timezone) VALUES (1, 'One', 'America/Chicago'), (2, 'Two', 'UTC')")
    for shop in (1, 2):
        db.query("INSERT INTO customers (customer_id, shop_id, first_name, email, zip, updated_date) "
                 "VALUES (%s, %s, 'Ann', 'ann@example.com', '78701', now())", (shop * 100, shop))
        db.query("INSERT INTO repair_orders (ro_id, shop_id, status_id, status_code, customer_id, updated_date, "
                 "posted_date, total_sales, payload_hash) VALUES (%s, %s, 5, 'POSTED', %s, now(), '2026-03-10', 1000, 'x')",
                 (shop * 10, shop, shop * 100))
        db.query("INSERT INTO jobs (job_id, ro_id, shop_id, authorized) VALUES (%s, %s, %s, true)",
                 (shop * 1000, shop * 10, shop))
        db.query("INSERT INTO job_labor (labor_id, job_id, ro_id, shop_id, rate, hours, cost_rate, rate_source) "
                 "VALUES (%s, %s, %s, %s, 15000, 1, 2500, 'default')", (shop * 1000 + 1, shop * 1000, shop * 10, shop))
        db.query("INSERT INTO job_fees (fee_id, ro_id, job_id, shop_id, name, fee_type, total) "
                 "VALUES (%s, %s, NULL, %s, 'EPA', 'environmental', 395)", (shop * 1000 + 2, shop * 10, shop))
    from datasync.db import connected
    from datasync.tekmetric import metrics

    with connected("tekmetric_warehouse") as conn:
        metrics.auto_snapshots(conn, [10, 20], run_id="t")
        conn.commit()
    return db


def test_vocabularies_are_checked(filled):
    db = filled
    assert "repair_orders_status" in sql_error(db, "UPDATE repair_orders SET status_code = 'POSTED', status_id = 2")
    assert "repair_orders_status" in sql_error(db, "UPDATE repair_orders SET status_code = 'INVOICED'")
    assert "fee_type" in sql_error(db, "UPDATE job_fees SET fee_type = 'tip'")
    assert "rate_source" in sql_error(db, "UPDATE job_labor SET rate_source = 'guess'")
    assert "trigger" in sql_error(db, "UPDATE ro_snapshots SET trigger = 'invoiced'")
    assert "role" in sql_error(db, "INSERT INTO employees (employee_id, shop_id, role) VALUES (1, 1, 'janitor')")
    assert "ro_snapshots_once" in sql_error(  # a second posted snapshot of the same RO
        db, "INSERT INTO ro_snapshots SELECT (jsonb_populate_record(NULL::ro_snapshots, "
            "to_jsonb(s) || '{\"snapshot_id\": 999999}')).* FROM ro_snapshots s LIMIT 1")
    db.query("UPDATE repair_orders SET status_id = 6, status_code = 'ACCRECV' WHERE ro_id = 10")


def test_deleting_an_ro_cascades_to_children_and_snapshots(filled):
    db = filled
    assert db.query("SELECT count(*) FROM ro_snapshots WHERE ro_id = 10") == [(2,)]
    db.query("DELETE FROM repair_orders WHERE ro_id = 10")
    for table in ("jobs", "job_labor", "job_fees", "ro_snapshots"):
        assert db.query(f"SELECT count(*) FROM {table} WHERE ro_id = 10") == [(0,)], table
        assert db.query(f"SELECT count(*) FROM {table} WHERE ro_id = 20") != [(0,)], table


def test_shop_isolation_ready_for_a_dashboard_role(filled):
    db = filled
    role = f"tm_dash_{uuid.uuid4().hex[:8]}"
    db.query(f"CREATE ROLE {role} NOLOGIN")
    try:
        db.query("SELECT tm_enable_shop_isolation(%s)", (role,))
        conn = db.connect()
        conn.execute(f"SET ROLE {role}")
        conn.execute("SELECT set_config('request.jwt.claims', %s, false)", ('{"app_metadata": {"shop_ids": [2]}}',))
        assert conn.execute("SELECT ro_id FROM repair_orders").fetchall() == [(20,)]
        assert conn.execute("SELECT job_id FROM jobs").fetchall() == [(2000,)]
        assert conn.execute("SELECT count(*) FROM ro_snapshots").fetchall() == [(2,)]
        assert conn.execute("SELECT customer_id, zip3, posted_ro_count, lifetime_sales FROM customers_analytics"
                            ).fetchall() == [(200, "787", 1, 1000)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT email FROM customers")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM sync_log")
        conn.rollback()
        conn.execute("SELECT set_config('request.jwt.claims', '', false)")  # no claims: nothing
        assert conn.execute("SELECT count(*) FROM repair_orders").fetchall() == [(0,)]
        conn.close()
    finally:
        db.query(f"DROP OWNED BY {role}")
        db.query(f"DROP ROLE {role}")


# ---- mapping (no database) ----------------------------------------------------------------------

SHOP = ShopContext(6212, "JJ Auto", "America/Chicago", 2500, {10004: 3000, 10005: 2400})


@pytest.fixture(scope="module")
def payload() -> dict:
    store = DataStore(shops=1, seed=5, customers=5, repair_orders=12)
    return next(r for r in store.records("repair-orders") if any(j["parts"] for j in r["jobs"]) and r["postedDate"])


def test_cost_rate_rules():
    assert SHOP.cost_rate(10004) == (3000, "assigned")
    assert SHOP.cost_rate(10006) == (2700, "shop_avg")
    assert SHOP.cost_rate(None) == (2500, "default")
    assert ShopContext(1, "x", "UTC", 2500).cost_rate(10004) == (2500, "default")  # nobody has a rate
    assert ShopContext(1, "x", "UTC", 0, {1: 2001, 2: 2000}).shop_avg_rate == 2001  # half a cent rounds up
    left = ShopContext(1, "x", "UTC", 2500, {1: 4000, 2: 2000}, average_of=frozenset({2}))  # 1 has left
    assert left.cost_rate(1) == (4000, "assigned") and left.cost_rate(3) == (2000, "shop_avg")


@pytest.mark.parametrize("name, kind", [("Shop Supplies", "shop_supplies"), ("EPA / Environmental", "environmental"),
                                        ("Tire Disposal", "disposal"), ("HazMat", "hazmat"), ("Towing", "other"),
                                        (None, "other")])
def test_fee_types(name, kind):
    assert fee_type(name) == kind


def test_fractional_cents_name_the_ro_and_field(payload):
    bad = copy.deepcopy(payload)
    bad["jobs"][0]["labor"][0]["rate"] = 14500.5
    with pytest.raises(RowError) as info:
        repair_order_rows(bad, SHOP)
    err = info.value
    assert (err.table, err.key, err.column, err.value) == ("repair_orders", payload["id"], "jobs[0].labor[0].rate", 14500.5)
    assert f"repair order {payload['id']}" in str(err) and "fraction of a cent" in str(err)


def test_lenient_values(payload):
    floaty = {**payload, "laborSales": float(payload["laborSales"]),
              "jobs": [{**j, "authorizedDate": "2026-03-10T14:00:00", "parts": [{**p, "name": None, "cost": float(p["cost"])}
                                                                                for p in j["parts"]]}
                       for j in payload["jobs"]]}
    rows, plain = repair_order_rows(floaty, SHOP), repair_order_rows(payload, SHOP)
    assert rows.ro["labor_sales"] == payload["laborSales"] and isinstance(rows.ro["labor_sales"], int)
    assert [p["cost"] for p in rows.job_parts] == [p["cost"] for p in plain.job_parts]
    assert all(p["name"] is None for p in rows.job_parts)
    assert rows.jobs[0]["authorized_date"] == dt.datetime(2026, 3, 10, 14, tzinfo=UTC)
    posted = dt.datetime.fromisoformat(payload["postedDate"].replace("Z", "+00:00"))
    assert plain.ro["posted_date"] == posted.astimezone(SHOP.zone).date()
    # Float whole cents hash like integers: an RO seen once as 8907 and once as 8907.0 is unchanged.
    assert repair_order_rows({**payload, "laborSales": float(payload["laborSales"])}, SHOP).payload_hash == plain.payload_hash


def test_unknown_employee_role_is_other():
    row = employee_row({"id": 1, "employeeRole": {"id": 9, "code": "PARTSMGR"}, "updatedDate": "2026-01-01T00:00:00Z"}, 7)
    assert (row["shop_id"], row["role"], row["role_id"], row["role_code"]) == (7, "other", 9, "PARTSMGR")
