"""Celery workers load the DAGs' modules once (datasync.worker.CELERY_CONFIG's ``imports``), so a task
process, forked from a worker, parses the registry runner's DAG file, loads the plugins and connects
to Postgres without importing anything (each import is paid again by every task instance)."""

import json
import subprocess
import sys

import yaml

from harness import REPO

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
                          env={"PYTHONPATH": str(REPO / "plugins"), "PATH": "/usr/bin:/bin",
                               "AIRFLOW_HOME": str(REPO / ".airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                               "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins")},
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    # the plugin file itself is tiny; the Data sync page's app is built by the API server on its first request
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["datasync_ui", "source_registry_runner"]


def test_compose_and_the_local_stack_use_the_worker_settings(tmp_path):
    sys.path.insert(0, str(REPO / "scripts"))
    from airflow_stack import AirflowStack

    stack = AirflowStack(tmp_path, metadata_db="unused", redis_db=0)
    stack._write_home()
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())["x-airflow-common"]["environment"]
    for env in (stack.environment(), compose):
        assert env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] == "datasync.worker.CELERY_CONFIG"
        assert env["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] == "1"
