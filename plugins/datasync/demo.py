"""``make demo``: local demo databases, then each pipeline's DAG run through Airflow itself.

The demo databases live on the local PostgreSQL and MariaDB (``demo_*``); the Airflow
connections point at them through ``AIRFLOW_CONN_*`` variables set for the DAG runs. Each
pipeline adds a step to ``STEPS`` (``"module:function"``, called with a :class:`Demo`).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from datasync.paths import REPO_ROOT

PG = os.environ.get("DATASYNC_DEMO_PG", "postgresql://postgres@127.0.0.1:5432")
MY = os.environ.get("DATASYNC_DEMO_MYSQL", "mysql://root@127.0.0.1:3306")

# conn id -> (server, database name)
DEMO_DATABASES = {
    "tidb_ops": ("mysql", "demo_ptmmm_ops"),
    "supabase_ptmmm": ("postgres", "demo_supabase"),
    "lifecycle_db": ("postgres", "demo_lifecycle"),
    "pmo_db": ("postgres", "demo_pmo"),
    "tekmetric_warehouse": ("postgres", "demo_tekmetric"),
    "registry_db": ("postgres", "demo_registry"),
}

STEPS: list[str] = [
    "datasync.demo:migrate_step",
    "datasync.lifecycle:demo_step",
    "datasync.ptmmm.demo:demo_step",
    "datasync.registry.demo:demo_step",
    "datasync.tekmetric.demo:demo_step",
]


@dataclass
class Demo:
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path = REPO_ROOT / ".airflow" / "demo-logs"

    def say(self, text: str) -> None:
        print(f"[demo] {text}", flush=True)

    def airflow(self, *args: str, log_name: str) -> None:
        """Run an ``airflow`` CLI command (e.g. ``dags test``) with the demo connections."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{log_name}.log"
        started = time.monotonic()
        with log_path.open("w") as out:
            proc = subprocess.run(
                [sys.executable, "-m", "airflow", *args], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        took = time.monotonic() - started
        finished = [line for line in log_path.read_text().splitlines() if "DagRun Finished" in line]
        if proc.returncode != 0 or any("state=failed" in line for line in finished):
            raise RuntimeError(f"`airflow {' '.join(args)}` failed after {took:.0f}s; see {log_path}")
        self.say(f"airflow {' '.join(args)}: ok in {took:.1f}s (log: {log_path.relative_to(REPO_ROOT)})")

    def dag_test(self, dag_id: str, conf: dict | None = None, logical_date: str | None = None, log_name: str | None = None) -> None:
        import json

        args = ["dags", "test", dag_id]
        if logical_date:
            args.append(logical_date)
        if conf:
            args += ["--conf", json.dumps(conf)]
        self.airflow(*args, log_name=log_name or dag_id)


def _uri(conn_id: str) -> str:
    server, name = DEMO_DATABASES[conn_id]
    return f"{PG if server == 'postgres' else MY}/{name}"


def fresh_databases() -> None:
    """Drop and recreate the demo databases, so every ``make demo`` shows a first run and a rerun."""
    import MySQLdb
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as pg:
        for server, name in DEMO_DATABASES.values():
            if server == "postgres":
                pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                pg.execute(f'CREATE DATABASE "{name}"')
    host, port = MY.split("@", 1)[1].split(":")
    my = MySQLdb.connect(host=host, port=int(port), user="root", password="")
    for server, name in DEMO_DATABASES.values():
        if server == "mysql":
            my.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
            my.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    my.close()


def migrate_step(demo: Demo) -> None:
    demo.dag_test("db_migrate")
    from datasync.db import connected

    for conn_id in DEMO_DATABASES:
        with connected(conn_id) as db:
            (count,) = db.fetchone("SELECT count(*) FROM datasync_migrations")
            demo.say(f"  {conn_id:20} {count} migrations applied on {db.version}")


def run_demo() -> int:
    demo = Demo(env=dict(os.environ))
    for conn_id in DEMO_DATABASES:
        demo.env[f"AIRFLOW_CONN_{conn_id.upper()}"] = _uri(conn_id)
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = _uri(conn_id)
    fresh_databases()
    demo.say("demo databases: " + ", ".join(f"{c} -> {_uri(c)}" for c in DEMO_DATABASES))
    for ref in STEPS:
        module, func = ref.split(":")
        demo.say(f"step {ref}")
        getattr(importlib.import_module(module), func)(demo)
    demo.say("done")
    how_to_open_the_page(demo)
    return 0


def how_to_open_the_page(demo: Demo) -> None:
    """The Data sync page on the demo databases: Airflow's API server with the demo connections."""
    root = REPO_ROOT
    env = [f"AIRFLOW_HOME={root / '.airflow'}", f"AIRFLOW__CORE__DAGS_FOLDER={root / 'dags'}",
           f"AIRFLOW__CORE__PLUGINS_FOLDER={root / 'plugins'}", "AIRFLOW__CORE__LOAD_EXAMPLES=False",
           f"PYTHONPATH={root / 'plugins'}"] + [f"AIRFLOW_CONN_{c.upper()}={_uri(c)}" for c in DEMO_DATABASES]
    command = " \\\n    ".join(["env", *env, f"{root / '.venv' / 'bin' / 'airflow'} api-server --port 8080"])
    demo.say("The Data sync page on the demo data: start Airflow's API server with the demo connections")
    print(f"\n  {command}\n", flush=True)
    demo.say("then open http://localhost:8080/datasync/ (or 'Data sync' in the Airflow UI) and sign in as admin; "
             f"the password is in {root / '.airflow' / 'simple_auth_manager_passwords.json.generated'}")
