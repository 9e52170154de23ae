"""`python -m datasync migrate|status` as users run it: connections from env vars or a secrets
backend (the metadata database: tests/cluster/test_cli_metadata_db.py); failures are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from harness import REPO


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    return subprocess.run([sys.executable, "-m", "datasync", *args], capture_output=True, text=True, timeout=120,
                          env={**base, "PYTHONPATH": str(REPO / "plugins"), **env}, cwd=REPO)


def test_migrate_and_status_through_a_secrets_backend(pg_db, tmp_path, airflow_db):
    connections = tmp_path / "connections.json"
    connections.write_text(json.dumps({"registry_db": pg_db.uri}))
    env = {"AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
           "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(connections)})}
    done = cli("migrate", "registry", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("registry on 'registry_db' (postgres, PostgreSQL")
    applied = pg_db.query("SELECT count(*) FROM datasync_migrations")[0][0]
    assert applied >= 2
    status = cli("status", "registry", env=env)
    assert status.returncode == 0, status.stderr
    lines = [line for line in status.stdout.splitlines() if line.startswith("registry ")]
    assert len(lines) == applied and all(" applied " in line for line in lines)


def test_status_of_a_fresh_database_lists_everything_pending(pg_db, airflow_db):
    done = cli("status", "registry", env={"AIRFLOW_CONN_REGISTRY_DB": pg_db.uri})
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("registry ")]
    assert lines and all(" PENDING " in line for line in lines)


def test_an_undefined_connection_is_one_line_saying_what_to_do(airflow_db):
    done = cli("migrate", "registry", env={})
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: connection 'registry_db' is not defined: set AIRFLOW_CONN_REGISTRY_DB, add it with "
        "`airflow connections add registry_db --conn-uri ...` (metadata database) or to your secrets backend, then rerun"]


def test_an_unreachable_server_is_one_line_naming_the_connection(airflow_db):
    done = cli("status", "pmo", env={"AIRFLOW_CONN_PMO_DB": "postgresql://postgres:s3cret-pw@127.0.0.1:9/pmo"})
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("error: cannot connect to 'pmo_db' (postgres at 127.0.0.1:9/pmo)")
    assert line.endswith("check the connection's host, port and login, and that the server is up")
    assert "s3cret-pw" not in done.stderr + done.stdout


def test_demo_without_devtools_is_one_clear_line(tmp_path):
    # As in the production image: the package on PYTHONPATH, devtools/ nowhere (cwd is not the checkout).
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    done = subprocess.run([sys.executable, "-m", "datasync", "demo"], capture_output=True, text=True, timeout=120,
                          env={**base, "PYTHONPATH": str(REPO / "plugins")}, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "devtools/" in done.stderr
    assert "Traceback" not in done.stderr
