"""`python -m datasync migrate|status` on a deployment whose connections live in the metadata
database (added through the REST API, as an admin would in the UI): found like a task finds them."""

from __future__ import annotations

import subprocess
import sys


def test_cli_finds_a_connection_stored_in_the_metadata_db(airflow_cluster, database_factory):
    stack = airflow_cluster.stack
    db = database_factory("postgres", "cli_meta")
    conn_id = "registry_db"
    body = {"connection_id": conn_id, "conn_type": "postgres", "host": "127.0.0.1", "port": 5432,
            "login": "postgres", "schema": db.name}
    stack.api("POST", "/api/v2/connections", json_body=body)
    # The deployment's environment without the connection variables: only the metadata DB has it.
    env = {k: v for k, v in stack.environment().items() if not k.startswith("AIRFLOW_CONN_")}
    try:
        for command in ("migrate", "status"):
            done = subprocess.run([sys.executable, "-m", "datasync", command, "registry"], env=env,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        rows = [line for line in done.stdout.splitlines() if line.startswith("registry ")]
        assert rows and all(" applied " in line for line in rows)
        assert db.query("SELECT count(*) FROM datasync_migrations")[0][0] == len(rows)
    finally:
        stack.api("DELETE", f"/api/v2/connections/{conn_id}", expect=(204,))
