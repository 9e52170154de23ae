"""Every DAG file imports cleanly, follows the house rules, and does no I/O at import time."""

import ast
import json
import os
import subprocess
import sys

import pytest

from harness import REPO

DAG_FILES = sorted(p for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_"))
PARSE_TIMES: dict[str, float] = {}

# Imports every DAG file with all sockets refused, and reports import errors, parse times
# and any connection a DAG file tried to open.
_PROBE = r"""
import json, socket, sys, time
attempts = []
def refuse(self, address, *a, **k):
    attempts.append(repr(address))
    raise ConnectionRefusedError(f"DAG import tried to connect to {address!r}")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
from airflow.dag_processing.dagbag import DagBag
out = {}
for path in sys.argv[1:]:
    started = time.perf_counter()
    bag = DagBag(dag_folder=path)
    out[path] = {"seconds": time.perf_counter() - started, "errors": {k: str(v) for k, v in bag.import_errors.items()},
                 "dags": sorted(bag.dag_ids)}
print("RESULT" + json.dumps({"files": out, "connects": attempts}))
"""


def run_probe(paths, **env_extra) -> dict:
    env = {**os.environ, **env_extra}
    # Every connection id points nowhere: a DAG that reads one at import would fail loudly.
    for conn_id in ("tidb_ops", "supabase_ptmmm", "lifecycle_db", "pmo_db", "tekmetric_warehouse", "registry_db"):
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = "postgresql://nobody@127.0.0.1:9/none"
    env["AIRFLOW_CONN_TEKMETRIC_API"] = "http://x:y@127.0.0.1:9"
    proc = subprocess.run([sys.executable, "-c", _PROBE, *map(str, paths)], env=env, capture_output=True, text=True,
                          timeout=300)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line, proc.stderr[-3000:]
    return json.loads(line[len("RESULT"):])


@pytest.fixture(scope="module")
def probe():
    result = run_probe(DAG_FILES)
    for path, info in result["files"].items():
        PARSE_TIMES[os.path.basename(path)] = info["seconds"]
    return result


def test_dag_files_import_without_errors_or_io(probe):
    errors = {p: i["errors"] for p, i in probe["files"].items() if i["errors"]}
    assert not errors
    assert probe["connects"] == [], f"DAG files opened connections at import time: {probe['connects']}"
    assert all(i["dags"] for i in probe["files"].values()), "a file in dags/ defines no DAG"


def test_every_dag_follows_house_rules(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors
    assert bag.dags
    for dag_id, dag in bag.dags.items():
        assert dag.owner and dag.owner != "airflow", f"{dag_id}: set an owner"
        assert dag.tags, f"{dag_id}: add tags"
        assert dag.doc_md and len(dag.doc_md) > 80, f"{dag_id}: write a doc_md"
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id}: retries >= 1"
            assert task.retry_exponential_backoff, f"{dag_id}.{task.task_id}: exponential backoff"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_max_active_runs_is_set_deliberately(path):
    tree = ast.parse(path.read_text())
    keywords = {kw.arg for node in ast.walk(tree) if isinstance(node, ast.Call) for kw in node.keywords}
    assert "max_active_runs" in keywords, f"{path.name}: choose max_active_runs explicitly"


@pytest.fixture(scope="module")
def dag_bag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors
    return bag


def test_every_dag_has_a_description_naming_its_schedule_time_zone(dag_bag):
    """The DAG list shows the description; a cron string there has no zone, so the description says it."""
    for dag_id, dag in dag_bag.dags.items():
        assert dag.description and len(dag.description) > 20, f"{dag_id}: set description="
        if dag.timetable.can_be_scheduled:
            zone = str(getattr(dag.timetable, "_timezone", None) or dag.timezone)
            names = {"UTC": "(UTC)", "Asia/Jakarta": "WIB (Asia/Jakarta)"}
            assert names.get(zone, zone) in dag.description, f"{dag_id}: say the schedule's zone ({zone}) in the description"


def test_every_param_has_a_title_and_description(dag_bag):
    for dag_id, dag in dag_bag.dags.items():
        for name in dag.params:
            param = dag.params.get_param(name)
            assert param.schema.get("title") and param.description, f"{dag_id}.{name}: give the param a title and description"


def test_optional_params_are_optional_in_the_trigger_form(dag_bag):
    """The trigger form requires every param whose schema type does not include "null" (Airflow's UI
    rule). A param with an empty default ([] or None) is optional, so its type must allow null, and
    the DAG must accept null as "nothing chosen" (checked by validating it)."""
    for dag_id, dag in dag_bag.dags.items():
        for name in dag.params:
            param = dag.params.get_param(name)
            if param.value in ([], None):
                types = param.schema.get("type")
                types = types if isinstance(types, list) else [types]
                assert "null" in types, f"{dag_id}.{name}: empty default but the form would require it; type [..., 'null']"
                param.resolve(None)  # validates: null is accepted


@pytest.mark.parametrize("dag_id", ["source_registry_runner", "source_registry_realtime"])
def test_a_task_process_builds_only_its_own_dag_of_the_registry_file(dag_id):
    """Airflow names the DAG a task process parses for (its parsing context); the file with two DAGs
    builds just that one there (hundreds of mapped instances per cycle parse it)."""
    path = str(REPO / "dags" / "source_registry_runner.py")
    assert run_probe([path], _AIRFLOW_PARSING_CONTEXT_DAG_ID=dag_id)["files"][path]["dags"] == [dag_id]


def test_the_dag_processor_sees_both_registry_dags(probe):
    assert probe["files"][str(REPO / "dags" / "source_registry_runner.py")]["dags"] == [
        "source_registry_realtime", "source_registry_runner"]
