"""Test harness (imported as ``harness`` anywhere under tests/): real PostgreSQL and MariaDB, throwaway databases, Airflow connections by env.

Every session creates databases with unique names, points the Airflow connection ids at
them through ``AIRFLOW_CONN_*`` and drops them at the end. Airflow itself runs on a
project-local SQLite metadata DB (``.airflow/test``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_HOME = REPO / ".airflow" / "test"

# Before anything imports airflow.
os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
# The real DAGs, plus DAGs that exist only for tests (tests/dags), as two bundles: dag.test()
# finds a DAG through its bundle.
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps([
    {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
     "kwargs": {"path": str(REPO / "dags")}},
    {"name": "test-dags", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
     "kwargs": {"path": str(REPO / "tests" / "dags")}},
])

import psycopg  # noqa: E402
import MySQLdb  # noqa: E402
import pytest  # noqa: E402

PG_ADMIN = os.environ.get("DATASYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MY_HOST = os.environ.get("DATASYNC_TEST_MYSQL_HOST", "127.0.0.1")
MY_PORT = int(os.environ.get("DATASYNC_TEST_MYSQL_PORT", "3306"))
MY_USER = os.environ.get("DATASYNC_TEST_MYSQL_USER", "root")
MY_PASSWORD = os.environ.get("DATASYNC_TEST_MYSQL_PASSWORD", "")
RUN_TAG = uuid.uuid4().hex[:6]


@dataclass
class TestDatabase:
    __test__ = False  # not a test class
    kind: str  # "postgres" or "mysql"
    name: str

    @property
    def uri(self) -> str:
        if self.kind == "postgres":
            base = PG_ADMIN.rsplit("/", 1)[0]
            return f"{base}/{self.name}"
        auth = MY_USER + (f":{MY_PASSWORD}" if MY_PASSWORD else "")
        return f"mysql://{auth}@{MY_HOST}:{MY_PORT}/{self.name}"

    def bind(self, conn_id: str, extra: str = "") -> None:
        """Make Airflow connection ``conn_id`` point at this database."""
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = self.uri + (f"?{extra}" if extra else "")

    def connect(self):
        """A plain driver connection for assertions (autocommit)."""
        if self.kind == "postgres":
            return psycopg.connect(self.uri, autocommit=True)
        conn = MySQLdb.connect(host=MY_HOST, port=MY_PORT, user=MY_USER, password=MY_PASSWORD, database=self.name, charset="utf8mb4")
        conn.autocommit(True)
        return conn

    def query(self, sql: str, params=None) -> list[tuple]:
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()


def _pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


def _my_admin(sql: str) -> None:
    conn = MySQLdb.connect(host=MY_HOST, port=MY_PORT, user=MY_USER, password=MY_PASSWORD)
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()


def create_database(kind: str, label: str) -> TestDatabase:
    db = TestDatabase(kind, f"t_{RUN_TAG}_{uuid.uuid4().hex[:6]}_{label}"[:60])
    if kind == "postgres":
        _pg_admin(f'CREATE DATABASE "{db.name}"')
    else:
        _my_admin(f"CREATE DATABASE `{db.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    return db


def drop_database(db: TestDatabase) -> None:
    if db.kind == "postgres":
        _pg_admin(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
    else:
        _my_admin(f"DROP DATABASE IF EXISTS `{db.name}`")


def _migrated(path: Path) -> bool:
    # Importing Airflow before the first migration can leave an empty file behind.
    import sqlite3

    if not path.exists():
        return False
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'dag_run'").fetchone() is not None


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB for dag.test() runs."""
    if not _migrated(AIRFLOW_HOME / "airflow.db"):
        AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def database_factory() -> Iterator[Callable[[str, str], TestDatabase]]:
    """``make(kind, label)`` creates a fresh database; all are dropped at session end."""
    made: list[TestDatabase] = []

    def make(kind: str, label: str = "db") -> TestDatabase:
        db = create_database(kind, label)
        made.append(db)
        return db

    yield make
    if not os.environ.get("DATASYNC_KEEP_TEST_DBS"):
        for db in made:
            drop_database(db)


@pytest.fixture
def pg_db(database_factory) -> TestDatabase:
    return database_factory("postgres", "pg")


@pytest.fixture
def my_db(database_factory) -> TestDatabase:
    return database_factory("mysql", "my")


@pytest.fixture(scope="session")
def migrated_target(database_factory) -> Callable[[str], TestDatabase]:
    """``migrated_target(name)``: a fresh database for a migration target, bound to its
    connection id and migrated. Cached per session and target."""
    from datasync.migrate import TARGETS, migrate

    cache: dict[str, TestDatabase] = {}

    def get(name: str) -> TestDatabase:
        if name not in cache:
            target = TARGETS[name]
            db = database_factory("postgres" if target.family == "postgres" else "mysql", name)
            db.bind(target.conn_id)
            migrate([name])
            cache[name] = db
        return cache[name]

    return get


@contextlib.contextmanager
def lock_held(conn_id: str, name: str) -> Iterator[None]:
    """Another run holding the named lock ``name`` on ``conn_id`` (its own session, in a thread)."""
    from datasync.db import connected, named_lock

    held, release = threading.Event(), threading.Event()

    def other_run() -> None:
        with connected(conn_id) as db, named_lock(db, name):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert held.wait(10), f"could not take {name} on {conn_id}"
        yield
    finally:
        release.set()
        thread.join()


def sigkill_when_stalled(db: TestDatabase, argv: list[str], *, cwd: Path | None = None, timeout: float = 60) -> None:
    """Run ``argv`` (PYTHONPATH: the package) until one of ``db``'s sessions sleeps in ``pg_sleep`` (a
    stall trigger the test installed), SIGKILL it there, then end that session: its backend would
    sleep on, holding the dead worker's locks, until it noticed the closed socket."""
    import signal
    import time

    sleeping = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event = 'PgSleep'")
    proc = subprocess.Popen(argv, cwd=cwd, env=dict(os.environ, PYTHONPATH=str(REPO / "plugins")),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + timeout
        while not db.query(sleeping)[0][0]:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "the worker never reached the stalled row"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    db.query(sleeping.replace("count(*)", "pg_terminate_backend(pid)"))


def run_dag(dag, conf: dict | None = None, logical_date=None, retries: int = 0):
    """Run a real DAG in-process with ``dag.test()`` and return the DagRun.

    ``dag.test()`` does not raise when a task fails: assert ``dag_run.state``, then the rows.
    It also sleeps through retry delays, so tasks run with ``retries`` (default 0) here; the
    DAG integrity tests check the real retry policy.
    """
    saved = {t.task_id: t.retries for t in dag.tasks}
    for t in dag.tasks:
        t.retries = retries
    try:
        return dag.test(run_conf=conf, logical_date=logical_date)
    finally:
        for t in dag.tasks:
            t.retries = saved[t.task_id]


def load_dag(dag_id: str, file: str | None = None, folder: Path = REPO / "dags"):
    """Import a DAG the way the dag processor does (``dags/<dag_id>.py`` by default;
    ``folder=REPO / "tests" / "dags"`` for DAGs that exist only for tests)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(folder / (file or f"{dag_id}.py")))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): ti.state for ti in dag_run.get_task_instances()}

