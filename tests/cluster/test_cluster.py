"""The DAGs under a real deployment: CeleryExecutor, two workers, runs triggered through the REST API
(/api/v2 with a JWT), rows asserted where they land; then a worker killed mid-sync (kill -9 of its
whole process tree) and the retry converging to target == source.

One cluster for the module (tests/cluster/cluster.py); the tests run in file order and build on
each other: migrations first, then the demo data, then the pipelines, then the worker kill."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from airflow_stack import alive, seed_demo
from cluster import HEARTBEAT_TIMEOUT, MEASURED

EVERY_DAG = {"db_migrate", "lifecycle_sync", "ptmmm_daily_kpi_etl", "ptmmm_kpi_rollback", "ptmmm_master_data",
             "source_registry_realtime", "source_registry_runner", "tekmetric_sync"}
REGISTRY_SOURCES = 3  # the first demo JSON sources: enough to map several instances, cheap on two cores
TEKMETRIC_BACKFILL = {"backfill_start": (dt.date.today() - dt.timedelta(days=120)).isoformat(), "window_days": 61}


@pytest.fixture(scope="module", autouse=True)
def report_figures():
    started = time.monotonic()
    yield
    MEASURED["test_cluster.py seconds"] = time.monotonic() - started


def assert_success(cluster, run) -> None:
    assert run.state == "success", cluster.explain(run)


def test_the_cluster_serves_every_dag_without_import_errors(airflow_cluster):
    stack = airflow_cluster.stack
    assert stack.api("GET", "/api/v2/importErrors")["total_entries"] == 0
    assert EVERY_DAG <= stack.dag_ids()
    health = stack.api("GET", "/api/v2/monitor/health", auth=False)
    assert {k: health[k]["status"] for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")} == dict.fromkeys(
        ("metadatabase", "scheduler", "triggerer", "dag_processor"), "healthy")
    # Without a token the API refuses; with a wrong password there is no token.
    assert stack.api("GET", "/api/v2/dags", auth=False, expect=(401, 403)) is not None
    wrong = stack.session.post(f"{stack.url}/auth/token", json={"username": stack.admin_user, "password": "wrong"}, timeout=10)
    assert wrong.status_code == 401


def test_optional_array_params_are_optional_in_the_trigger_form(airflow_cluster):
    """The UI's form marks a param required when its schema type does not include "null"
    (airflow/ui: ``isRequired``); read the params as the UI does, from /dags/{id}/details."""
    stack = airflow_cluster.stack
    for dag_id, name in (("tekmetric_sync", "shop_ids"), ("tekmetric_sync", "snapshot_ro_ids"),
                         ("source_registry_runner", "source_ids"), ("source_registry_realtime", "source_ids")):
        param = stack.api("GET", f"/api/v2/dags/{dag_id}/details")["params"][name]
        assert "null" in param["schema"]["type"], (dag_id, name, param["schema"])
        assert param["value"] == [] and param["description"], (dag_id, name)
    for dag_id in sorted(EVERY_DAG):
        details = stack.api("GET", f"/api/v2/dags/{dag_id}/details")
        assert details["description"], dag_id
        assert all(p.get("description") for p in details["params"].values()), dag_id


def test_db_migrate_through_the_rest_api(airflow_cluster):
    run = airflow_cluster.run("db_migrate")
    assert_success(airflow_cluster, run)
    assert set(run.tasks.values()) == {"success"}
    MEASURED["db_migrate seconds"] = run.seconds
    for conn_id, db in airflow_cluster.db.items():
        (count,) = db.query("SELECT count(*) FROM datasync_migrations")[0]
        assert count >= 2, conn_id


@pytest.fixture(scope="module")
def demo_data(airflow_cluster):
    """The demo rows the pipelines read, loaded as `make up` and compose's demo profile do."""
    with airflow_cluster.connections():
        return seed_demo(airflow_cluster.data_dir, registry_sources=REGISTRY_SOURCES)


def test_every_pipeline_runs_on_the_cluster_and_lands_its_rows(airflow_cluster, demo_data):
    cluster = airflow_cluster
    day = demo_data["kpi_day"]
    started = time.monotonic()
    triggered = [cluster.trigger("lifecycle_sync"), cluster.trigger("source_registry_runner"),
                 cluster.trigger("tekmetric_sync", TEKMETRIC_BACKFILL),
                 cluster.trigger("ptmmm_daily_kpi_etl", {"data_date": day.isoformat()})]
    runs = {t[0]: cluster.wait(t, timeout=300) for t in triggered}
    MEASURED["four pipelines in parallel seconds"] = time.monotonic() - started
    for run in runs.values():
        assert_success(cluster, run)

    # lifecycle: every source row in pmo_db
    for source, target in (("tbl_segmen", "tbl_segmen_lifecycle"), ("tbl_produk", "tbl_produk_lifecycle"),
                           ("tbl_stage_histori", "tbl_stage_histori_lifecycle")):
        want = cluster.db["lifecycle_db"].query(f"SELECT id, updated_at FROM {source} ORDER BY id")
        assert cluster.db["pmo_db"].query(f"SELECT id, updated_at FROM {target} ORDER BY id") == want, target
    assert len(cluster.db["pmo_db"].query("SELECT id FROM tbl_produk_lifecycle")) == 211

    # registry: one mapped instance per due source, each target table holding the file's records
    sync_tasks = {k: v for k, v in runs["source_registry_runner"].tasks.items() if k.startswith("sync_source")}
    assert len(sync_tasks) == REGISTRY_SOURCES and set(sync_tasks.values()) == {"success"}
    history = cluster.db["registry_db"].query(
        "SELECT r.source_id, h.sync_status, h.records_inserted FROM data_source_sync_history h "
        "JOIN data_source_registry r ON r.id = h.source_id ORDER BY 1")
    assert [(s, status) for s, status, _ in history] == sorted((s.source_id, "success") for s in demo_data["sources"])
    for source_id, _, inserted in history:
        (rows,) = cluster.db["registry_db"].query(f'SELECT count(*) FROM "{source_id}"')[0]
        assert rows == inserted > 0, source_id

    # tekmetric: the warehouse equals the emulator, table by table
    from devtools.tekmetric.compare import differences

    assert differences(cluster.emulator.store, cluster.db["tekmetric_warehouse"].query) == {}
    assert cluster.db["tekmetric_warehouse"].query("SELECT count(*) FROM repair_orders")[0][0] == 2 * 70

    # KPI: the day computed in tidb_ops and mirrored to Supabase, one row per active warehouse
    kpi = runs["ptmmm_daily_kpi_etl"].tasks
    assert kpi["export_to_sheet"] == "skipped" and kpi["mirror_to_supabase"] == "success"
    ops = cluster.db["tidb_ops"].query("SELECT warehouse_id, tx_count, closing_qty FROM inventory_kpi_daily "
                                       "WHERE data_date = %s ORDER BY warehouse_id", (day,))
    mirrored = cluster.db["supabase_ptmmm"].query("SELECT warehouse_id::text, tx_count, closing_qty FROM public.inventory_kpi_daily "
                                                  "WHERE data_date = %s ORDER BY 1", (day,))
    assert ops and [(str(w), n, q) for w, n, q in ops] == [(w, n, q) for w, n, q in mirrored]
    assert sum(n for _, n, _ in ops) > 0


def _running_instance(stack, dag_id: str, run_id: str, task_prefix: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ti in stack.task_instances(dag_id, run_id):
            if ti["task_id"].startswith(task_prefix) and ti["state"] == "running" and ti.get("pid"):
                return ti
        time.sleep(0.3)
    raise AssertionError(f"no running {task_prefix} in {dag_id} {run_id}: {stack.task_states(dag_id, run_id)}")


def test_a_worker_killed_mid_sync_recovers_with_identical_data(airflow_cluster, demo_data):
    """kill -9 the whole process tree of the worker running a Tekmetric shop sync. The scheduler
    fails the task instance once its heartbeat is HEARTBEAT_TIMEOUT seconds old, the retry runs on
    the other worker, and the warehouse ends equal to the source."""
    from devtools.tekmetric.compare import differences

    cluster, stack = airflow_cluster, airflow_cluster.stack
    emulator = cluster.emulator
    # New data at the source (a customer deleted, a repair order opened), and a slow API so the
    # kill lands in the middle of the shop's sync.
    shop = emulator.store.shop_ids[0]
    gone = emulator.store.records("customers", shop)[0]["id"]
    emulator.store.delete("customers", gone)
    opened = emulator.store.add("repair-orders", shop, status=2)["id"]
    emulator.faults.delay_seconds = 1.0
    dag_id, run_id, _ = triggered = cluster.trigger("tekmetric_sync", {**TEKMETRIC_BACKFILL, "full_backfill": True})
    victim_ti = _running_instance(stack, dag_id, run_id, "shop.customers")
    worker = stack.worker_of(victim_ti["pid"])
    assert worker is not None, f"task pid {victim_ti['pid']} is under no worker of this cluster"
    time.sleep(1.5)  # some pages read and committed, more to come
    killed_at = dt.datetime.now(dt.timezone.utc)
    tree = stack.kill(worker.name)
    emulator.faults.delay_seconds = 0.0
    assert len(tree) >= 2  # the worker and at least the task's process
    time.sleep(1)
    assert not any(alive(p) for p in tree)

    run = cluster.wait(triggered, timeout=300)
    assert_success(cluster, run)
    tis = [ti for ti in stack.task_instances(dag_id, run_id)
           if ti["task_id"] == victim_ti["task_id"] and ti["map_index"] == victim_ti["map_index"]]
    assert tis[0]["try_number"] >= 2, tis  # it was retried, not silently finished by the dead worker
    recovered = (dt.datetime.fromisoformat(tis[0]["end_date"]) - killed_at).total_seconds()
    MEASURED["recovery seconds (kill -> retried task done)"] = recovered
    MEASURED["heartbeat timeout seconds"] = HEARTBEAT_TIMEOUT
    assert differences(emulator.store, cluster.db["tekmetric_warehouse"].query) == {}
    warehouse = cluster.db["tekmetric_warehouse"]
    assert warehouse.query("SELECT ro_id FROM repair_orders WHERE ro_id = %s", (opened,)) == [(opened,)]
    assert warehouse.query("SELECT deleted_date IS NOT NULL FROM customers WHERE customer_id = %s", (gone,)) == [(True,)]

    # The cluster carries on with a replacement worker for later tests.
    stack.start_process(worker.name, worker.argv)
