"""Registry sources sync on their own interval under a real scheduler (CeleryExecutor, scheduled runs).

A small deployment of its own (the shared cluster runs triggered runs only): one worker, schedules on,
the one DAG of tests/cluster/cadence_dags (the registry runner's tasks on a 1-minute cron). Sources
with refresh_interval 60 must sync at every tick, those with 120 at every second tick, over five
consecutive scheduled runs, and their next_sync stays on the minute grid however long a sync took.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import tempfile
import time

import pytest

from airflow_stack import AirflowStack
from cluster import MEASURED
from harness import REPO, RUN_TAG

DAG_ID = "registry_cadence"
TICKS = 5
EVERY_MINUTE = ["every_60_a", "every_60_b"]
EVERY_2_MINUTES = ["every_120_a", "every_120_b"]
MAPPING = {"key_columns": ["id"], "sync_strategy": "full", "columns": [
    {"column": "id", "source": "id", "cast": "int"}, {"column": "qty", "source": "qty", "cast": "int"}]}


@contextlib.contextmanager
def bound(env: dict[str, str]):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="module")
def cadence(database_factory):
    from datasync.db import connected
    from datasync.migrate import migrate
    from devtools.demo.registry import register

    registry = database_factory("postgres", "cadence")
    home = tempfile.mkdtemp(prefix=f"airflow-cadence-{RUN_TAG}-")
    data_dir = os.path.join(home, "files")
    os.makedirs(data_dir)
    env = {"AIRFLOW_CONN_REGISTRY_DB": registry.uri,
           "AIRFLOW_VAR_DATASYNC_REGISTRY_POLICY": json.dumps({"file_roots": [data_dir]})}
    with bound(env):
        migrate(["registry"])
        with connected("registry_db") as db:
            for source_id in EVERY_MINUTE + EVERY_2_MINUTES:
                path = os.path.join(data_dir, f"{source_id}.json")
                with open(path, "w") as f:
                    json.dump([{"id": i, "qty": i} for i in range(50)], f)
                register(db, source_id, source_id, "json", [{"name": "file", "config": {"file_path": path}}],
                         {"target_table": source_id, **MAPPING}, refresh=60 if source_id in EVERY_MINUTE else 120)
            db.commit()
    stack = AirflowStack(home, metadata_db=f"t_{RUN_TAG}_cadence_meta", workers=1, worker_concurrency=4,
                         env={**env, "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "tests" / "cluster" / "cadence_dags")})
    started = time.monotonic()
    try:
        stack.prepare()
        stack.start()
        stack.wait_ready(dag_ids=[DAG_ID], timeout=300)
        yield stack, registry
    finally:
        stack.stop()
        MEASURED["test_cadence.py seconds (its own cluster)"] = time.monotonic() - started
        shutil.rmtree(home, ignore_errors=True)


def scheduled_runs(stack: AirflowStack) -> list[dict]:
    runs = stack.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns", params={"order_by": "logical_date", "limit": 50})["dag_runs"]
    return [r for r in runs if r["run_type"] == "scheduled"]


def test_sources_sync_on_their_own_interval_at_the_ticks(cadence):
    stack, registry = cadence
    stack.unpause(DAG_ID)
    deadline = time.monotonic() + (TICKS + 3) * 60
    while time.monotonic() < deadline:
        stack.check_processes()
        runs = scheduled_runs(stack)
        failed = [r["dag_run_id"] for r in runs if r["state"] == "failed"]
        assert not failed, "\n".join(f"{t}: {s}" for r in failed for t, s in stack.task_states(DAG_ID, r).items())
        if sum(r["state"] == "success" for r in runs) >= TICKS:
            break
        time.sleep(5)
    stack.api("PATCH", f"/api/v2/dags/{DAG_ID}", json_body={"is_paused": True})
    runs = [r for r in scheduled_runs(stack) if r["state"] == "success"][:TICKS]
    assert len(runs) == TICKS, f"{len(runs)} scheduled runs succeeded in {TICKS + 3} minutes"
    ticks = [dt.datetime.fromisoformat(r["logical_date"]) for r in runs]
    assert [(b - a).total_seconds() for a, b in zip(ticks, ticks[1:])] == [60.0] * (TICKS - 1)  # consecutive ticks

    synced = {r["dag_run_id"]: set() for r in runs}
    for source_id, run_id in registry.query(
            "SELECT r.source_id, h.run_id FROM data_source_sync_history h JOIN data_source_registry r ON r.id = h.source_id "
            "WHERE h.sync_status = 'success'"):
        if run_id in synced:
            synced[run_id].add(source_id)
    per_tick = [sorted(synced[r["dag_run_id"]]) for r in runs]
    first_run = per_tick[0]  # every source is new at the first tick
    assert first_run == sorted(EVERY_MINUTE + EVERY_2_MINUTES)
    expected = [sorted(EVERY_MINUTE + (EVERY_2_MINUTES if k % 2 == 0 else [])) for k in range(TICKS)]
    assert per_tick == expected

    # next_sync is on the schedule's grid: whole minutes after the ticks they synced at
    next_syncs = dict(registry.query("SELECT source_id, next_sync FROM data_source_registry"))
    for source_id in EVERY_MINUTE + EVERY_2_MINUTES:
        assert next_syncs[source_id].second == 0 and next_syncs[source_id].microsecond == 0, (source_id, next_syncs[source_id])
