"""A Tekmetric entity sync that finds the same sync already running gives up after its wait and
says so in sync_log (the engine's run lock), without touching the warehouse."""

from __future__ import annotations

import threading

import pytest

from datasync.db import LockTimeout, connected, named_lock
from datasync.tekmetric import sync


@pytest.fixture
def warehouse(database_factory):
    from datasync.migrate import migrate

    db = database_factory("postgres", "tmlock")
    db.bind("tekmetric_warehouse")
    migrate(["tekmetric"])
    return db


def test_a_second_run_of_the_same_entity_is_refused_and_logged(emulator, monkeypatch, warehouse, shop_id):
    monkeypatch.setenv("AIRFLOW_CONN_TEKMETRIC_API", emulator.airflow_connection(backoff_base=0.001, timeout=5))
    name = sync.sync_name(shop_id, "customers")
    held, release = threading.Event(), threading.Event()

    def other_run():
        with connected("tekmetric_warehouse") as db, named_lock(db, f"datasync:sync:{name}"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=other_run)
    t.start()
    assert held.wait(5)
    hook = sync.make_hook()
    try:
        with pytest.raises(LockTimeout, match=f"'datasync:sync:{name}' is already running"):
            sync.sync_entity("customers", shop_id, hook=hook, run_id="second", lock_wait_seconds=0.5)
    finally:
        release.set()
        t.join()
        hook.close()
    [(status, run_id, error)] = warehouse.query("SELECT status, run_id, error FROM sync_log WHERE sync_name = %s", (name,))
    assert (status, run_id) == ("failed", "second")
    assert error.startswith(f"LockTimeout: 'datasync:sync:{name}' is already running against 'tekmetric_warehouse'")
    assert warehouse.query("SELECT count(*) FROM customers") == [(0,)]
