"""Celery workers load the DAGs' modules once (datasync.worker.CELERY_CONFIG's ``imports``), so a task
process, forked from a worker, parses the registry runner's DAG file, loads the plugins and connects
to Postgres without importing anything (each import is paid again by every task instance); and they
ready Airflow's ORM models before the pool forks, so no pool process imports them for its first result."""

import json
import subprocess
import sys

import pytest
import yaml

from harness import REPO


def probe_env() -> dict[str, str]:
    return {"PYTHONPATH": str(REPO / "plugins"), "PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(REPO / ".airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins")}

PROBE = r"""
import importlib, json, sys
# what a Celery worker of Airflow has loaded before its pool forks, then what our config adds
import airflow.providers.celery.executors.celery_executor_utils, airflow.sdk.execution_time.supervisor
import airflow.sdk.execution_time.task_runner
from datasync.worker import CELERY_CONFIG
for name in CELERY_CONFIG["imports"]:
    importlib.import_module(name)
loaded = set(sys.modules)
sys.path.insert(0, sys.argv[1])
import source_registry_runner
from airflow.sdk.listener import get_listener_manager
get_listener_manager()  # what every task process does first: load the plugins folder
from airflow.providers.postgres.hooks.postgres import PostgresHook
print(json.dumps(sorted(set(sys.modules) - loaded)))
"""


def test_a_task_process_parses_the_registry_dag_file_and_loads_plugins_without_importing_anything():
    done = subprocess.run([sys.executable, "-c", PROBE, str(REPO / "dags")], capture_output=True, text=True,
                          env=probe_env(), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    # the plugin file itself is tiny; the Data sync page's app is built by the API server on its first request
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["datasync_ui", "source_registry_runner"]


RESULT_PROBE = r"""
import json, sys
import airflow.providers.celery.executors.celery_executor_utils
from celery.signals import worker_init
import datasync.worker
if sys.argv[1] == "init":
    worker_init.send(sender=None)  # what the worker's main process does before its pool forks
loaded = set(sys.modules)
from celery.backends.database.models import Task
from sqlalchemy.orm import Session
Session().query(Task)  # what a pool process's first result does (the query object alone: no database)
print(json.dumps(sorted(set(sys.modules) - loaded)))
"""


@pytest.mark.parametrize("worker_init", [True, False], ids=["after-worker-init", "without"])
def test_a_pool_process_stores_its_first_result_without_importing_airflow_models(worker_init):
    done = subprocess.run([sys.executable, "-c", RESULT_PROBE, "init" if worker_init else "none"],
                          capture_output=True, text=True, env=probe_env(), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    if worker_init:
        assert [m for m in imported if m.startswith("airflow")] == []
    else:  # the cost the signal moves to the worker's main process
        assert "airflow.models.dagbag" in imported and "airflow.serialization.serialized_objects" in imported


def test_compose_and_the_local_stack_use_the_worker_settings(tmp_path):
    sys.path.insert(0, str(REPO / "scripts"))
    from airflow_stack import AirflowStack

    stack = AirflowStack(tmp_path, metadata_db="unused", redis_db=0)
    stack._write_home()
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())["x-airflow-common"]["environment"]
    for env in (stack.environment(), compose):
        assert env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] == "datasync.worker.CELERY_CONFIG"
        assert env["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] == "1"
