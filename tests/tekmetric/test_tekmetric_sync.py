"""tekmetric_sync end to end: the real DAG (dag.test) and the shop sync against the emulator over
real HTTP, into a real Postgres warehouse; the warehouse is compared with the emulator table by table."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

import pytest

from datasync.tekmetric import sync
from devtools.tekmetric.compare import differences
from harness import load_dag, run_dag, task_states

UTC = dt.timezone.utc
# Before all generated data (anchored at the previous hour, reaching ~92 days back); 2 slices of 61 days.
BACKFILL = {"backfill_start": (dt.date.today() - dt.timedelta(days=120)).isoformat(), "window_days": 61}


@pytest.fixture
def warehouse(database_factory):
    from datasync.migrate import migrate

    db = database_factory("postgres", "tekmetric")
    db.bind("tekmetric_warehouse")
    migrate(["tekmetric"])
    return db


@pytest.fixture
def api(emulator, monkeypatch):
    """Connection tekmetric_api -> the emulator, with tiny backoff and no client-side throttling."""
    monkeypatch.setenv("AIRFLOW_CONN_TEKMETRIC_API", emulator.airflow_connection(
        backoff_base=0.001, rate_limit_per_minute=60_000, timeout=5, max_retries=6))
    return emulator


@pytest.fixture(scope="module")
def dag():
    return load_dag("tekmetric_sync")


def options(**changes) -> sync.SyncOptions:
    base = sync.SyncOptions.from_params(BACKFILL)
    for k, v in changes.items():
        setattr(base, k, v)
    return base


def run_shop(shop_id: int, run_start: dt.datetime | None = None, **option_changes) -> dict:
    """What one shop's task group does, in-process (faster than a DAG run)."""
    hook = sync.make_hook()
    try:
        from datasync.db import connected

        with connected("tekmetric_warehouse") as db:
            sync.list_shops(hook, db)
        return sync.sync_shop(shop_id, hook=hook, run_id="test", run_start=run_start, options=options(**option_changes))
    finally:
        hook.close()


def assert_matches(emulator, warehouse, shops=None):
    assert differences(emulator.store, warehouse.query, shops) == {}


def snapshot_counts(warehouse) -> list[tuple]:
    return warehouse.query("SELECT ro_id, trigger, count(*) FROM ro_snapshots GROUP BY 1, 2 HAVING count(*) > 1")


def test_dag_backfill_then_incremental_matches_the_emulator(api, warehouse, dag, airflow_db):
    emu = api
    shop_a, shop_b = emu.store.shop_ids
    api_tasks = {t.task_id for t in dag.tasks if t.pool == sync.POOL}
    assert api_tasks == {"list_shops", "shop.employees", "shop.customers", "shop.vehicles", "shop.repair_orders"}
    from airflow.models.pool import Pool

    assert Pool.get_pool(sync.POOL) is None  # dag.test() runs without the pool in the metadata DB
    result = run_dag(dag, conf=BACKFILL)
    states = task_states(result)
    assert result.state == "success", states
    assert states["shop.repair_orders[0]"] == states["shop.metrics[1]"] == "success"
    labels = {ti.rendered_map_index for ti in result.get_task_instances() if ti.task_id == "shop.customers"}
    assert labels == {f"JJ Auto ({shop_a})", f"Northside Motors ({shop_b})"}
    assert_matches(emu, warehouse)

    # Bookkeeping: one cursor and one successful log row per shop and entity, all at the run's start.
    cursors = warehouse.query("SELECT shop_id, entity, cursor_value FROM sync_cursors ORDER BY 1, 2")
    assert [(s, e) for s, e, _ in cursors] == [(s, e) for s in (shop_a, shop_b) for e in sorted(sync.ENTITIES)]
    assert len({v for _, _, v in cursors}) == 1
    assert warehouse.query("SELECT status, count(*) FROM sync_log WHERE shop_id IS NOT NULL GROUP BY 1") == [("success", 8)]
    ro_log = warehouse.query("SELECT rows_read, rows_inserted, details FROM sync_log WHERE sync_name = %s",
                             (f"tekmetric_sync.{shop_a}.repair_orders",))[0]
    assert ro_log[0] == ro_log[1] == 70 and ro_log[2]["windows"] == 2 and ro_log[2]["variance_ros"] == 0
    assert warehouse.query("SELECT count(*) FROM daily_shop_metrics WHERE stale") == [(0,)]
    posted = warehouse.query("SELECT count(*) FROM repair_orders WHERE status_code IN ('POSTED', 'ACCRECV') "
                             "AND deleted_date IS NULL")[0][0]
    assert warehouse.query("SELECT sum(ro_count) FROM daily_shop_metrics") == [(posted,)]

    # Changes in Tekmetric, then the hourly run: only what changed is read and written.
    store = emu.store
    customer = store.records("customers", shop_a)[5]["id"]
    store.update("customers", customer, firstName="Renamed")
    gone = store.records("customers", shop_a)[6]["id"]
    store.delete("customers", gone)
    deleted_ro = store.records("repair-orders", shop_b)[0]["id"]
    store.delete("repair-orders", deleted_ro)
    wip = next(r for r in store.records("repair-orders", shop_a) if r["repairOrderStatus"]["code"] == "WORKINPROGRESS")
    store.post_repair_order(wip["id"])
    new_ro = store.add("repair-orders", shop_a, status=2)
    emu.clear_requests()
    result = run_dag(dag, conf={"snapshot_ro_ids": [new_ro["id"]]})
    assert result.state == "success", task_states(result)
    assert_matches(emu, warehouse)
    assert warehouse.query("SELECT first_name FROM customers WHERE customer_id = %s", (customer,)) == [("Renamed",)]
    assert warehouse.query("SELECT deleted_date IS NOT NULL FROM customers WHERE customer_id = %s", (gone,)) == [(True,)]
    assert warehouse.query("SELECT trigger FROM ro_snapshots WHERE ro_id = %s ORDER BY 1", (wip["id"],)) == \
        [("completed",), ("posted",)]
    assert warehouse.query("SELECT trigger, snapshot_key <> '' FROM ro_snapshots WHERE ro_id = %s",
                           (new_ro["id"],)) == [("manual", True)]
    log = warehouse.query("SELECT rows_read, rows_inserted, rows_updated FROM sync_log WHERE sync_name = %s "
                          "ORDER BY id DESC LIMIT 1", (f"tekmetric_sync.{shop_a}.repair_orders",))[0]
    assert log == (2, 1, 1)  # the posted RO and the new one; nothing else re-written
    # Incremental reads: per shop 2 requests per windowed entity (changed + deleted) and 1 for employees.
    assert emu.request_count("/repair-orders") == 4 and emu.request_count("/employees") == 2
    assert snapshot_counts(warehouse) == []
    assert warehouse.query("SELECT count(*) FROM daily_shop_metrics WHERE stale") == [(0,)]


def test_job_removed_ro_posted_twice_and_deleted(api, warehouse):
    emu = api
    shop = emu.store.shop_ids[0]
    run_shop(shop)
    ro = next(r for r in emu.store.records("repair-orders", shop)
              if r["repairOrderStatus"]["code"] == "WORKINPROGRESS" and len(r["jobs"]) >= 2)
    dropped = ro["jobs"][0]
    emu.store.remove_job(ro["id"], dropped["id"])
    emu.store.post_repair_order(ro["id"])
    run_shop(shop)
    assert warehouse.query("SELECT count(*) FROM jobs WHERE job_id = %s", (dropped["id"],)) == [(0,)]
    lines = [line["id"] for line in dropped["labor"] + dropped["parts"]]
    assert warehouse.query("SELECT count(*) FROM job_labor WHERE labor_id = ANY(%s)", (lines,)) == [(0,)]
    assert warehouse.query("SELECT count(*) FROM job_parts WHERE part_id = ANY(%s)", (lines,)) == [(0,)]
    posted_day = warehouse.query("SELECT posted_date FROM repair_orders WHERE ro_id = %s", (ro["id"],))[0][0]
    first = warehouse.query("SELECT snapshot_id, gross_profit FROM ro_snapshots WHERE ro_id = %s AND trigger = 'posted'",
                            (ro["id"],))
    assert len(first) == 1

    # Reopened, changed, posted again: still the one posted snapshot, taken the first time.
    emu.store.update("repair-orders", ro["id"], repairOrderStatus=2)
    run_shop(shop)
    emu.store.update_job(ro["id"], ro["jobs"][1]["id"], authorized=True)
    emu.store.post_repair_order(ro["id"])
    run_shop(shop)
    assert warehouse.query("SELECT snapshot_id, gross_profit FROM ro_snapshots WHERE ro_id = %s AND trigger = 'posted'",
                           (ro["id"],)) == first
    assert snapshot_counts(warehouse) == []

    # Deleted in Tekmetric: kept with deleted_date, out of the day's metrics.
    before = warehouse.query("SELECT ro_count FROM daily_shop_metrics WHERE shop_id = %s AND metric_date = %s",
                             (shop, posted_day))[0][0]
    emu.store.delete("repair-orders", ro["id"])
    run_shop(shop)
    assert warehouse.query("SELECT ro_count, stale FROM daily_shop_metrics WHERE shop_id = %s AND metric_date = %s",
                           (shop, posted_day)) == [(before - 1, False)]
    assert_matches(emu, warehouse, [shop])


def test_records_changing_while_pages_are_read(api, warehouse, caplog):
    emu = api
    shop = emu.store.shop_ids[0]
    name = f"tekmetric_sync.{shop}.customers"
    ids = [c["id"] for c in emu.store.records("customers", shop)]
    total = len(emu.store.records("customers", shop, deleted=None))  # the deleted ones are kept too
    assert len(ids) > 100  # two pages

    def cursor():
        return warehouse.query("SELECT cursor_value FROM sync_cursors WHERE sync_name = %s", (name,))

    def last_details():
        return warehouse.query("SELECT details FROM sync_log WHERE sync_name = %s ORDER BY id DESC LIMIT 1", (name,))[0][0]

    def started() -> dt.datetime:  # the window ends at the run's start, rounded up to a second
        return dt.datetime.now(UTC) - dt.timedelta(seconds=2)

    # Right after page 0 is served a customer on it changes: it leaves the window (it changed
    # after the run started), page 1 shifts by one and the pass misses a record. The re-read is
    # consistent: nothing is lost and the cursor moves.
    one_window = dt.timedelta(days=400)  # every customer in one read of two pages
    emu.after_page("/customers", 0, lambda store: store.update("customers", ids[10], firstName="Moved"))
    run_shop(shop, started(), window=one_window)
    assert warehouse.query("SELECT count(*) FROM customers") == [(total,)]
    assert last_details()["rereads"] == 1 and not last_details()["inconsistent"] and cursor()
    run_shop(shop)  # the changed customer is in the next window
    assert warehouse.query("SELECT first_name FROM customers WHERE customer_id = %s", (ids[10],)) == [("Moved",)]

    # Pages that keep shifting on the re-read too: rows are written, the cursor stays put.
    before = cursor()
    moving = iter(ids[20:40])
    emu.after_page("/customers", 0, lambda store: store.update("customers", next(moving), lastName="Busy"), once=False)
    run_shop(shop, started(), full_backfill=True, window=one_window)
    assert last_details()["inconsistent"] and cursor() == before
    assert warehouse.query("SELECT count(*) FROM customers") == [(total,)]
    emu.reset_faults()
    run_shop(shop)
    assert_matches(emu, warehouse, [shop])

    # An inconsistent slice before others: the later slices are still written, the cursor stays
    # before the shifting one, and the run says it is partial (sync_log and a WARNING).
    before, later = cursor(), ids[100]
    emu.store.update("customers", later, lastName="Later")  # before the run starts: in its last slice
    time.sleep(3)
    moving = iter(ids[45:65])  # on the first slice's first page (ids[20:40] moved to the last slice above)
    emu.after_page("/customers", 0, lambda store: store.update("customers", next(moving), lastName="Busy"), once=False)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="datasync"):
        run_start = started()
        run_shop(shop, run_start, full_backfill=True, backfill_start=run_start - dt.timedelta(days=600),
                 window=dt.timedelta(days=599))
    (status, details), = warehouse.query("SELECT status, details FROM sync_log WHERE sync_name = %s ORDER BY id DESC "
                                         "LIMIT 1", (name,))
    assert status == "partial" and len(details["inconsistent"]) == 1 and details["partial"]
    assert cursor() == before  # held at the shifting slice
    assert warehouse.query("SELECT last_name FROM customers WHERE customer_id = %s", (later,)) == [("Later",)]
    assert any(r.levelno == logging.WARNING and "partial run" in r.getMessage() for r in caplog.records)
    emu.reset_faults()
    run_shop(shop)
    assert_matches(emu, warehouse, [shop])


def test_bad_money_and_lenient_values(api, warehouse):
    emu = api
    shop = emu.store.shop_ids[0]
    bad = emu.store.records("repair-orders", shop)[3]["id"]
    emu.faults.fractional_cents_ro = bad
    emu.faults.float_cents = emu.faults.null_part_names = emu.faults.naive_authorized_dates = True

    # max_rejects 0: the slice is rolled back, the RO is named in sync_rejects and the run fails.
    with pytest.raises(Exception, match=rf"repair order {bad}: laborSales = \d+\.5 has a fraction of a cent"):
        run_shop(shop, max_rejects=0)
    # Earlier slices committed; the failing one wrote nothing and the cursor stops before it.
    from datasync.engine.state import loads

    cursor = loads(warehouse.query("SELECT cursor_value FROM sync_cursors WHERE entity = 'repair_orders'")[0][0])
    bad_updated = dt.datetime.fromisoformat(emu.store.get("repair-orders", bad)["updatedDate"].replace("Z", "+00:00"))
    assert cursor < bad_updated
    assert warehouse.query("SELECT count(*) FROM repair_orders WHERE updated_date >= %s", (cursor,)) == [(0,)]
    reject = warehouse.query("SELECT table_name, row_key, column_name, value FROM sync_rejects")
    assert reject[0][:3] == ("repair_orders", str(bad), "laborSales") and reject[0][3].endswith(".5")
    assert warehouse.query("SELECT status FROM sync_log WHERE entity = 'repair_orders'") == [("failed",)]

    # Within max_rejects the other ROs land (float whole cents as integers, null part names,
    # zone-less authorizedDate as UTC) and only the bad one is held back.
    out = run_shop(shop, max_rejects=5)["repair_orders"]
    assert out["rejected"] == 1 and warehouse.query("SELECT count(*) FROM repair_orders") == [(69,)]
    assert warehouse.query("SELECT count(*) FROM repair_orders WHERE ro_id = %s", (bad,)) == [(0,)]
    assert warehouse.query("SELECT count(*) FROM job_parts WHERE name IS NOT NULL") == [(0,)]
    job = next(j for r in emu.store.records("repair-orders", shop) for j in r["jobs"] if j["authorizedDate"])
    assert warehouse.query("SELECT authorized_date FROM jobs WHERE job_id = %s", (job["id"],)) == \
        [(dt.datetime.fromisoformat(job["authorizedDate"].replace("Z", "+00:00")),)]

    emu.reset_faults()  # fixed in Tekmetric (its updatedDate moves) -> synced next time
    emu.store.update("repair-orders", bad, note="fixed")
    run_shop(shop)
    assert warehouse.query("SELECT count(*) FROM repair_orders WHERE ro_id = %s", (bad,)) == [(1,)]
    run_shop(shop, full_backfill=True)  # the part names the faults hid (their ROs did not change since)
    assert_matches(emu, warehouse, [shop])


def test_rows_the_database_refuses_hold_back_their_ro(api, warehouse):
    emu = api
    shop = emu.store.shop_ids[0]
    ros = emu.store.records("repair-orders", shop)
    unknown, negative = ros[1]["id"], ros[2]["id"]
    # A status Tekmetric may add one day (the CHECK refuses the RO row itself)...
    emu.store.tables["repair-orders"][unknown]["repairOrderStatus"] = {"id": 8, "code": "INVOICED", "name": "Invoiced"}
    emu.store.update("repair-orders", unknown)
    # ...and a labor line with a negative rate (the CHECK refuses a child row: the whole RO waits).
    job = emu.store.tables["repair-orders"][negative]["jobs"][0]
    job["labor"][0]["rate"] = -100
    emu.store.update("repair-orders", negative)
    out = run_shop(shop)["repair_orders"]
    assert out["rejected"] == 2 and warehouse.query("SELECT count(*) FROM repair_orders") == [(68,)]
    rejects = dict(warehouse.query("SELECT row_key, reason FROM sync_rejects WHERE table_name = 'repair_orders'"))
    assert "repair_orders_status" in rejects[str(unknown)]
    assert rejects[str(negative)].startswith(f"job_labor {job['labor'][0]['id']} of repair order {negative}: ")
    assert warehouse.query("SELECT count(*) FROM jobs WHERE ro_id = ANY(%s)", ([unknown, negative],)) == [(0,)]
    # Fixed in Tekmetric: both arrive with the next run, children included.
    emu.store.update("repair-orders", unknown, repairOrderStatus=2)
    job["labor"][0]["rate"] = 14500
    emu.store.update("repair-orders", negative)
    run_shop(shop)
    assert_matches(emu, warehouse, [shop])


def test_raw_payloads_stored_and_purged(api, warehouse):
    emu = api
    shop = emu.store.shop_ids[0]
    run_shop(shop, store_raw=True)
    pages = dict(warehouse.query("SELECT entity, count(*) FROM tm_raw_payloads GROUP BY 1"))
    read = dict(warehouse.query("SELECT entity, (details ->> 'pages')::int FROM sync_log WHERE entity IS NOT NULL"))
    assert pages == read and pages["employees"] == 1 and pages["customers"] >= 4
    page = warehouse.query("SELECT endpoint, query, payload FROM tm_raw_payloads WHERE entity = 'customers' "
                           "ORDER BY payload_id LIMIT 1")[0]
    assert page[0] == "/api/v1/customers" and page[1]["shop"] == shop and "content" in page[2]
    assert "token" not in json.dumps(page[1]).lower()
    warehouse.query("UPDATE tm_raw_payloads SET fetched_at = now() - interval '20 days' WHERE entity = 'customers'")
    from datasync.db import connected

    with connected("tekmetric_warehouse") as db:
        assert sync.purge_raw_payloads(db, 14) == pages["customers"]
    assert warehouse.query("SELECT count(*) FROM tm_raw_payloads") == [(sum(pages.values()) - pages["customers"],)]


def test_a_second_run_of_the_same_entity_is_refused_and_logged(api, warehouse, shop_id):
    from datasync.db import LockTimeout
    from harness import lock_held

    name = sync.sync_name(shop_id, "customers")
    hook = sync.make_hook()
    try:
        with lock_held("tekmetric_warehouse", f"datasync:sync:{name}"), \
                pytest.raises(LockTimeout, match=f"'datasync:sync:{name}' is already running"):
            sync.sync_entity("customers", shop_id, hook=hook, run_id="second", lock_wait_seconds=0.5)
    finally:
        hook.close()
    [(status, run_id, error)] = warehouse.query("SELECT status, run_id, error FROM sync_log WHERE sync_name = %s", (name,))
    assert (status, run_id) == ("failed", "second")
    assert error.startswith(f"LockTimeout: 'datasync:sync:{name}' is already running against 'tekmetric_warehouse'")
    assert warehouse.query("SELECT count(*) FROM customers") == [(0,)]
