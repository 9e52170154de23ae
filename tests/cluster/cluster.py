"""A real Airflow 3 deployment for tests: CeleryExecutor on 127.0.0.1, started from the repo's venv.

Fixture ``airflow_cluster`` (session scope, tests/cluster/conftest.py) yields a :class:`Cluster`:

* ``cluster.stack``: the :class:`airflow_stack.AirflowStack` (scripts/airflow_stack.py, also behind
  `make up`): scheduler, dag-processor, triggerer, api-server and two Celery workers, each its own
  process group, stopped by PID; a fresh Postgres metadata database (dropped at the end), a Redis
  database number of its own (flushed at the end), ``AIRFLOW_HOME`` in a temporary folder, process
  logs in ``<home>/logs/processes`` (their tails are printed when a test fails).
* ``cluster.stack.url``, ``cluster.stack.admin_user`` / ``admin_password``, ``cluster.stack.token()``
  (a JWT from POST /auth/token) and ``cluster.stack.api(method, "/api/v2/...", json_body=..., params=...)``.
* ``cluster.run(dag_id, conf)`` triggers (unpausing the DAG) and waits; returns a :class:`Run` with
  ``state`` and ``tasks`` (task id -> state). ``cluster.trigger`` / ``cluster.wait`` split the two so
  several runs go at once.
* ``cluster.db[conn_id]``: the :class:`harness.TestDatabase` behind each connection of
  :data:`CONNECTIONS` (``.query(sql)`` for assertions). The cluster's processes see them as
  ``AIRFLOW_CONN_*``; the test process does not (other tests keep their own bindings):
  ``with cluster.connections(): ...`` binds them in-process for a while (seeding, ``datasync.db``).
* ``cluster.emulator``: the Tekmetric emulator (in-process, on a free loopback port) behind
  ``tekmetric_api``; ``cluster.data_dir``: a folder the registry policy allows file sources to read.
* ``cluster.explain(run)``: a failed run's task states and the tails of its failed task logs (use it
  as the assertion message). ``cluster.stack.task_instances(dag_id, run_id)`` / ``task_log(...)``:
  the REST API's task instances (state, try_number, pid, hostname, dates) and logs.
* Failure injection: ``cluster.stack.worker_of(pid)`` names the worker whose process tree runs a
  pid (a task instance's ``pid``); ``cluster.stack.kill(name)`` kill -9s that component's whole tree;
  ``cluster.stack.start_process(name, argv)`` starts a replacement (keep the cluster whole for the
  tests after yours).
* Demo data: ``with cluster.connections(): airflow_stack.seed_demo(cluster.data_dir, n)`` loads what
  `make up` loads (lifecycle, PTMMM ops, the first ``n`` registry JSON sources), migrating the
  databases first (nothing to do after a ``db_migrate`` run).
* A browser test logs in at ``cluster.stack.url`` with ``admin_user`` / ``admin_password``.

Schedules are off (``use_job_schedule = False``): only triggered runs run. Task instances whose
worker stops heart-beating fail after :data:`HEARTBEAT_TIMEOUT` seconds (then retry as the DAG says).
The cluster is shared by every test under tests/cluster and stopped after the last of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness import REPO, RUN_TAG, TestDatabase

sys.path.insert(0, str(REPO / "scripts"))
from airflow_stack import AirflowStack  # noqa: E402

# conn id -> server kind of the throwaway database behind it (tidb_ops: MariaDB stands in for TiDB).
CONNECTIONS = {
    "tidb_ops": "mysql",
    "supabase_ptmmm": "postgres",
    "lifecycle_db": "postgres",
    "pmo_db": "postgres",
    "tekmetric_warehouse": "postgres",
    "registry_db": "postgres",
}
HEARTBEAT_TIMEOUT = 30  # seconds; production keeps a longer one (docs/runbook.md, "A worker died")
MEASURED: dict[str, float] = {}  # figures shown at the end of the test run (start-up, runs, recovery)
# Small but with several pages per entity (as tests/tekmetric uses it).
EMULATOR_DATA = {"shops": 2, "seed": 11, "employees": 6, "customers": 130, "repair_orders": 70}


@dataclass
class Run:
    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, str]
    seconds: float


@dataclass
class Cluster:
    stack: AirflowStack
    db: dict[str, TestDatabase]
    emulator: object  # devtools.tekmetric.emulator.TekmetricEmulator
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)  # what the cluster sees beyond its own config
    ready_seconds: float = 0.0

    @contextlib.contextmanager
    def connections(self) -> Iterator[None]:
        """Bind the cluster's connections (and variables) in this process for a while."""
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def trigger(self, dag_id: str, conf: dict | None = None) -> tuple[str, str, float]:
        return dag_id, self.stack.trigger(dag_id, conf), time.monotonic()

    def wait(self, triggered: tuple[str, str, float], timeout: float = 240) -> Run:
        dag_id, run_id, started = triggered
        state = self.stack.wait_run(dag_id, run_id, timeout)
        return Run(dag_id, run_id, state, self.stack.task_states(dag_id, run_id), time.monotonic() - started)

    def run(self, dag_id: str, conf: dict | None = None, timeout: float = 240) -> Run:
        return self.wait(self.trigger(dag_id, conf), timeout)

    def explain(self, run: Run) -> str:
        """A failed run's task states and the last lines of its failed tasks' logs."""
        lines = [f"{run.dag_id} {run.run_id}: {run.state} {run.tasks}"]
        for ti in self.stack.task_instances(run.dag_id, run.run_id):
            if ti["state"] not in ("success", "skipped"):
                try:
                    log = self.stack.task_log(run.dag_id, run.run_id, ti["task_id"], max(ti["try_number"], 1), ti["map_index"])
                except Exception as exc:  # the log is a help, not the assertion
                    log = f"(no log: {exc})"
                lines.append(f"--- {ti['task_id']}[{ti['map_index']}] {ti['state']} ---\n" + "\n".join(log.splitlines()[-30:]))
        return "\n".join(lines)


def start_cluster(database_factory) -> Iterator[Cluster]:
    """The generator behind the ``airflow_cluster`` fixture (see the module docstring)."""
    from devtools.tekmetric.emulator import TekmetricEmulator

    home = Path(tempfile.mkdtemp(prefix=f"airflow-cluster-{RUN_TAG}-"))
    data_dir = home / "registry-files"
    data_dir.mkdir()
    dbs = {conn_id: database_factory(kind, conn_id) for conn_id, kind in CONNECTIONS.items()}
    with TekmetricEmulator(**EMULATOR_DATA) as emulator:
        env = {f"AIRFLOW_CONN_{conn_id.upper()}": db.uri for conn_id, db in dbs.items()}
        env["AIRFLOW_CONN_TEKMETRIC_API"] = emulator.airflow_connection(
            backoff_base=0.001, rate_limit_per_minute=60_000, timeout=10, max_retries=6)
        # The registry's platform policy: file sources may be read from data_dir only.
        env["AIRFLOW_VAR_DATASYNC_REGISTRY_POLICY"] = json.dumps({"file_roots": [str(data_dir)]})
        config = {
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # triggered runs only
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        }
        stack = AirflowStack(home, metadata_db=f"t_{RUN_TAG}_airflow_meta", workers=2, worker_concurrency=4,
                             env={**env, **config})
        cluster = Cluster(stack, dbs, emulator, data_dir, env)
        started = time.monotonic()
        try:
            stack.prepare()
            stack.start()
            cluster.ready_seconds = stack.wait_ready(dag_ids=["db_migrate", "tekmetric_sync"])
            MEASURED["start-up seconds (metadata DB, processes, healthy)"] = time.monotonic() - started
            yield cluster
        finally:
            stopping = time.monotonic()
            stack.stop()
            MEASURED["shutdown seconds"] = time.monotonic() - stopping
            MEASURED["cluster lifetime seconds"] = time.monotonic() - started
