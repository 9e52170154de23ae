"""tekmetric_sync under faults: 429 storms, revoked tokens, 5xx, timeouts, dropped connections, an
outage that outlasts the retries, and a worker killed with SIGKILL mid-shop. Each run finishes or
fails cleanly, no cursor passes unwritten data, and a rerun converges on the emulator's data."""

from __future__ import annotations

import datetime as dt
import json
import sys

import pytest

from datasync.engine.state import loads
from datasync.tekmetric import sync
from devtools.tekmetric.compare import differences
from harness import REPO, load_dag, run_dag, sigkill_when_stalled, task_states

UTC = dt.timezone.utc
BACKFILL = {"backfill_start": (dt.date.today() - dt.timedelta(days=120)).isoformat(), "window_days": 61}
KINDS = {"customers": "customers", "vehicles": "vehicles", "repair_orders": "repair-orders"}


@pytest.fixture
def warehouse(database_factory):
    from datasync.migrate import migrate

    db = database_factory("postgres", "tekmetric")
    db.bind("tekmetric_warehouse")
    migrate(["tekmetric"])
    return db


def connect_api(emulator, monkeypatch, **extra):
    settings = {"backoff_base": 0.001, "rate_limit_per_minute": 60_000, "timeout": 5, "max_retries": 6, **extra}
    monkeypatch.setenv("AIRFLOW_CONN_TEKMETRIC_API", emulator.airflow_connection(**settings))


def run_shop(shop_id: int) -> dict:
    hook = sync.make_hook()
    try:
        from datasync.db import connected

        with connected("tekmetric_warehouse") as db:
            sync.list_shops(hook, db)
        return sync.sync_shop(shop_id, hook=hook, run_id="faults", options=sync.SyncOptions.from_params(BACKFILL))
    finally:
        hook.close()


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_cursors_honest(emulator, warehouse, shop_ids) -> None:
    """Every record changed up to a cursor is in the warehouse as of that change."""
    for shop in shop_ids:
        for entity, kind in KINDS.items():
            row = warehouse.query("SELECT cursor_value FROM sync_cursors WHERE sync_name = %s",
                                  (sync.sync_name(shop, entity),))
            if not row:
                continue
            cursor = loads(row[0][0])
            key = {"customers": "customer_id", "vehicles": "vehicle_id", "repair_orders": "ro_id"}[entity]
            stored = dict(warehouse.query(f"SELECT {key}, updated_date FROM {entity} WHERE shop_id = %s", (shop,)))
            covered = [r for r in emulator.store.records(kind, shop, deleted=None) if _ts(r["updatedDate"]) <= cursor]
            behind = [r["id"] for r in covered if stored.get(r["id"]) != _ts(r["updatedDate"])]
            assert not behind, f"{entity} of shop {shop}: cursor {cursor} is past unwritten records {behind[:5]}"


def assert_converged(emulator, warehouse) -> None:
    assert differences(emulator.store, warehouse.query) == {}
    assert warehouse.query("SELECT ro_id, trigger FROM ro_snapshots GROUP BY 1, 2 HAVING count(*) > 1") == []
    assert warehouse.query("SELECT count(*) FROM daily_shop_metrics WHERE stale") == [(0,)]


def _revoke_mid_read(emulator):
    emulator.after_page("/customers", 0, lambda store: emulator.revoke_token())


@pytest.mark.parametrize("fault, extra, arm", [
    ("429 storm", {"max_retries": 12}, lambda emu: setattr(emu.faults, "throttle_rate", 0.3)),
    ("401 mid-run", {}, _revoke_mid_read),
    ("5xx", {}, lambda emu: setattr(emu.faults, "server_errors_next", 4)),
    ("timeouts", {"timeout": 0.2}, lambda emu: (setattr(emu.faults, "delay_seconds", 0.6),
                                                setattr(emu.faults, "delay_next", 3))),
    ("dropped connections", {}, lambda emu: setattr(emu.faults, "disconnect_next", 3)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_transient_faults_are_survived(emulator, monkeypatch, warehouse, fault, extra, arm):
    connect_api(emulator, monkeypatch, **extra)
    shop = emulator.store.shop_ids[0]
    arm(emulator)
    out = run_shop(shop)
    assert out["repair_orders"]["rejected"] == 0
    # (a delayed answer is logged "ok" by the emulator; the client had given up on it by then)
    fired = [r for r in emulator.requests if r.reason != "ok"] or emulator.faults.delay_next == 0
    assert fired, f"{fault}: the fault never fired"
    assert differences(emulator.store, warehouse.query, [shop]) == {}
    assert warehouse.query("SELECT DISTINCT status FROM sync_log WHERE shop_id = %s", (shop,)) == [("success",)]


def test_outage_fails_the_run_cleanly_and_a_rerun_converges(emulator, monkeypatch, warehouse, airflow_db):
    connect_api(emulator, monkeypatch, max_retries=2)
    dag = load_dag("tekmetric_sync")
    # Tekmetric goes down after the first page of repair orders of the first slice.
    emulator.after_page("/repair-orders", 0, lambda store: setattr(emulator.faults, "server_errors_next", 10_000))
    result = run_dag(dag, conf=BACKFILL)
    states = task_states(result)
    assert result.state == "failed"
    assert states["shop.vehicles[0]"] == "success" and states["shop.repair_orders[0]"] == "failed"
    assert states["shop.metrics[0]"] == "upstream_failed"
    errors = warehouse.query("SELECT error FROM sync_log WHERE entity = 'repair_orders' AND status = 'failed'")
    assert errors and all("TekmetricUnavailable" in e and "HTTP 503" in e for (e,) in errors)
    assert_cursors_honest(emulator, warehouse, emulator.store.shop_ids)

    emulator.reset_faults()  # back up: the next run picks up where the cursors stand
    result = run_dag(dag, conf=BACKFILL)
    assert result.state == "success", task_states(result)
    assert_converged(emulator, warehouse)
    assert_cursors_honest(emulator, warehouse, emulator.store.shop_ids)


# The shop sync in its own process, to be killed with SIGKILL.
WORKER = r"""
import json, sys
from datasync.tekmetric import sync
hook = sync.make_hook()
sync.sync_shop(int(sys.argv[1]), hook=hook, run_id="killed", options=sync.SyncOptions.from_params(json.loads(sys.argv[2])))
"""


def test_killed_mid_shop_then_rerun_converges(emulator, monkeypatch, warehouse):
    connect_api(emulator, monkeypatch)
    shop = emulator.store.shop_ids[0]
    from datasync.db import connected

    with connected("tekmetric_warehouse") as db:
        sync.list_shops(sync.make_hook(), db)
    # The insert of the latest RO sleeps: the worker is then inside the last slice's transaction
    # (customers, vehicles and the earlier two-week slices of ROs are committed).
    recent = max(emulator.store.records("repair-orders", shop), key=lambda r: r["updatedDate"])
    warehouse.query(
        "CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN IF NEW.ro_id = {recent['id']} THEN PERFORM pg_sleep(60); END IF; RETURN NEW; END $$")
    warehouse.query("CREATE TRIGGER stall BEFORE INSERT ON repair_orders FOR EACH ROW EXECUTE FUNCTION stall()")
    sigkill_when_stalled(warehouse, [sys.executable, "-c", WORKER, str(shop), json.dumps({**BACKFILL, "window_days": 14})],
                         cwd=REPO)
    warehouse.query("DROP TRIGGER stall ON repair_orders")

    landed = warehouse.query("SELECT count(*) FROM repair_orders")[0][0]
    assert 0 < landed < 70, "only whole slices commit"
    assert warehouse.query("SELECT count(*) FROM repair_orders WHERE ro_id = %s", (recent["id"],)) == [(0,)]
    assert_cursors_honest(emulator, warehouse, [shop])

    run_shop(shop)
    assert differences(emulator.store, warehouse.query, [shop]) == {}
    assert_cursors_honest(emulator, warehouse, [shop])
    statuses = warehouse.query("SELECT status, error FROM sync_log WHERE entity = 'repair_orders' ORDER BY id")
    assert [s for s, _ in statuses] == ["failed", "success"] and "abandoned" in statuses[0][1]
    assert warehouse.query("SELECT ro_id, trigger FROM ro_snapshots GROUP BY 1, 2 HAVING count(*) > 1") == []
