"""A real Airflow 3 on 127.0.0.1, run from this repository's venv: `make up` / `make down` and tests/cluster.

One :class:`AirflowStack` is one deployment: its own ``AIRFLOW_HOME``, a Postgres metadata database
of its own, CeleryExecutor on a Redis database number of its own, and the components as child
processes (scheduler, dag-processor, triggerer, api-server, Celery workers). Every process starts
in its own process group and is stopped by PID: SIGTERM to the group, SIGKILL after a grace
period. Nothing is ever stopped by name. Each process writes ``<home>/logs/processes/<name>.log``.

    python scripts/airflow_stack.py up      # what `make up` runs: demo data, prints URL and login
    python scripts/airflow_stack.py down    # stops the processes `up` recorded
    python scripts/airflow_stack.py seed-demo --data-dir DIR   # demo rows only (compose --profile demo)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("DATASYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_CLAIM_KEY = "datasync:airflow-stack:owner"  # marks a Redis DB number as taken by one stack
AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
# The pools the DAGs run in, with compose's slots (docker/airflow-init.sh).
POOLS = {
    "tekmetric_api": (4, "Tekmetric partner API: concurrent callers sharing one client's rate limit"),
    "registry_sources": (16, "source_registry_runner: sources read at the same time"),
    "db_sync": (8, "Database-to-database syncs (lifecycle, KPI mirror, warehouse writes)"),
}


class StackError(RuntimeError):
    """The stack could not start or a call to it failed; the message says which part."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# --- processes -----------------------------------------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], ppid [1], start time [19])."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields else None


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first seen, then theirs), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def root_of(pid: int, roots: Iterable[int]) -> int | None:
    """Which of ``roots`` ``pid`` descends from (itself included), or None."""
    roots = set(roots)
    while pid > 1:
        if pid in roots:
            return pid
        fields = _stat(pid)
        if not fields:
            return None
        pid = int(fields[1])
    return None


def _signal_tree(pid: int, sig: int) -> None:
    """``sig`` to the process group led by ``pid`` and to any descendant that left the group."""
    for target in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_processes(processes: Iterable[tuple[int, str | None]], grace: float = 20.0) -> None:
    """SIGTERM each process group (we start every process in a session of its own) at once,
    SIGKILL whatever still lives after ``grace`` seconds.

    Each entry is ``(pid, start time)`` as recorded at launch: a PID reused by another program
    since then is left alone.
    """
    ours = [pid for pid, started in processes if started is None or start_time(pid) == started]
    trees = {pid: [pid, *descendants(pid)] for pid in ours}
    for pid in ours:
        _signal_tree(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p) for tree in trees.values() for p in tree):
        time.sleep(0.2)
    for pid, tree in trees.items():
        if any(alive(p) for p in tree):
            _signal_tree(pid, signal.SIGKILL)
            for p in tree:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p, signal.SIGKILL)


def kill_tree(pid: int) -> list[int]:
    """kill -9 a process and everything below it at once (a machine losing power); returns the PIDs."""
    tree = [pid, *descendants(pid)]
    for p in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    return tree


@dataclass
class Process:
    name: str
    argv: list[str]
    pid: int = 0
    started: str | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        return {"name": self.name, "argv": self.argv, "pid": self.pid, "started": self.started}


# --- Redis and Postgres ----------------------------------------------------------------------------------
def claim_redis_db(tag: str) -> int:
    """A Redis database number no other stack (or anything else) uses: empty, then claimed by a key."""
    import redis

    numbers = list(range(1, 16))
    random.shuffle(numbers)
    for number in numbers:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number)
        try:
            if client.dbsize() == 0 and client.set(REDIS_CLAIM_KEY, tag, nx=True):
                return number
        finally:
            client.close()
    raise StackError(f"no free Redis database on {REDIS_HOST}:{REDIS_PORT} (1..15 all hold keys)")


def flush_redis_db(number: int, tag: str) -> None:
    """Empty our Redis database, only if it is still ours."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number)
    try:
        owner = client.get(REDIS_CLAIM_KEY)
        if owner is None or owner.decode() == tag:
            client.flushdb()
    finally:
        client.close()


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


def pg_database_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def pg_uri(name: str, driver: str = "postgresql") -> str:
    base = PG_ADMIN.rsplit("/", 1)[0].split("://", 1)[1]
    return f"{driver}://{base}/{name}"


# --- the stack ----------------------------------------------------------------------------------------
class AirflowStack:
    """One local Airflow deployment. See the module docstring; tests/cluster/cluster.py for the test API.

    ``env``: extra variables for every component (``AIRFLOW_CONN_*``, ``AIRFLOW_VAR_*``, config).
    ``metadata_db``: the Postgres database name (created if missing; ``drop_metadata_db`` on stop).
    """

    def __init__(self, home: Path, *, metadata_db: str, api_port: int | None = None, workers: int = 2,
                 worker_concurrency: int = 4, env: dict[str, str] | None = None, admin_password: str | None = None,
                 drop_metadata_db: bool = True, redis_db: int | None = None, tag: str | None = None):
        self.home = Path(home)
        self.log_dir = self.home / "logs" / "processes"
        self.metadata_db = metadata_db
        self.drop_metadata_db = drop_metadata_db
        self.api_port = api_port or free_port()
        self.workers = workers
        self.worker_concurrency = worker_concurrency
        self.extra_env = dict(env or {})
        self.admin_user = "admin"
        self.admin_password = admin_password or secrets.token_urlsafe(12)
        self.tag = tag or uuid.uuid4().hex[:8]
        self.redis_db = redis_db
        self.processes: list[Process] = []
        self._token: str | None = None
        self._session = None

    # -- configuration ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def environment(self) -> dict[str, str]:
        """The environment every component (and any `airflow` CLI call for this stack) runs with."""
        secrets_file = self.home / "stack-secrets.json"
        keys = json.loads(secrets_file.read_text())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__", "_AIRFLOW"))}
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "PYTHONPATH": str(REPO / "plugins"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.admin_user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "simple_auth_manager_passwords.json"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_uri(self.metadata_db, "postgresql+psycopg2"),
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.redis_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + pg_uri(self.metadata_db),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
            # as compose (docs/deployment.md, "Worker settings"): modules loaded once per worker,
            # a finished task's Celery process free within a second
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "datasync.worker.CELERY_CONFIG",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(keys["trigger_log_port"]),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            # An idle scheduler loop sleeps this long (default 1 s); asset events for real-time
            # sync wait for that loop to become runs and tasks (docs/realtime.md, "Latency").
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        })
        env.update(self.extra_env)
        return env

    def _write_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        secrets_file = self.home / "stack-secrets.json"
        if not secrets_file.exists():
            from cryptography.fernet import Fernet

            keys = {"fernet_key": Fernet.generate_key().decode(), "jwt_secret": secrets.token_urlsafe(32),
                    "trigger_log_port": free_port()}
            fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(keys, f)
        passwords = self.home / "simple_auth_manager_passwords.json"
        fd = os.open(passwords, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({self.admin_user: self.admin_password}, f)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """AIRFLOW_HOME, the metadata database (migrated), a Redis DB number, the pools."""
        self._write_home()
        if self.redis_db is None:
            self.redis_db = claim_redis_db(self.tag)
        if not pg_database_exists(self.metadata_db):
            _pg_admin(f'CREATE DATABASE "{self.metadata_db}"')
        self.airflow("db", "migrate", log_name="db-migrate")
        for name, (slots, description) in POOLS.items():
            self.airflow("pools", "set", name, str(slots), description, log_name="pools")

    def airflow(self, *args: str, log_name: str) -> None:
        """Run an ``airflow`` CLI command against this stack; its output goes to the process log folder."""
        log = self.log_dir / f"{log_name}.log"
        with log.open("a") as out:
            done = subprocess.run([sys.executable, "-m", "airflow", *args], env=self.environment(),
                                  stdout=out, stderr=subprocess.STDOUT, timeout=600)
        if done.returncode:
            raise StackError(f"`airflow {' '.join(args)}` failed (exit {done.returncode}); see {log}")

    def component_argv(self) -> list[tuple[str, list[str]]]:
        airflow = [sys.executable, "-m", "airflow"]
        argv = [("api-server", [*airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.api_port)]),
                ("scheduler", [*airflow, "scheduler"]),
                ("dag-processor", [*airflow, "dag-processor"]),
                ("triggerer", [*airflow, "triggerer"])]
        for n in range(1, self.workers + 1):
            argv.append((f"worker{n}", [*airflow, "celery", "worker", "--celery-hostname", f"worker{n}-{self.tag}@%h",
                                        "--concurrency", str(self.worker_concurrency)]))
        return argv

    def start(self) -> None:
        """Start every component (``prepare`` first), each in its own session."""
        for name, argv in self.component_argv():
            self.start_process(name, argv)

    def start_process(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        env = {**self.environment(), **(env or {})}
        if name.startswith("worker"):
            # Each worker serves its task logs on a port of its own.
            env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
        log = (self.log_dir / f"{name}.log").open("ab")
        popen = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, cwd=self.home)
        log.close()
        proc = Process(name, argv, popen.pid, start_time(popen.pid), popen)
        self.processes = [p for p in self.processes if p.name != name] + [proc]
        self.save_state()
        return proc

    def kill(self, name: str) -> list[int]:
        """kill -9 a component's whole process tree (a worker machine lost); returns the PIDs killed.
        The process is forgotten: ``start_process(name, argv)`` starts a replacement."""
        proc = self.process(name)
        tree = kill_tree(proc.pid)
        if proc.popen is not None:
            proc.popen.wait(timeout=10)
        self.processes.remove(proc)
        self.save_state()
        return tree

    def process(self, name: str) -> Process:
        return next(p for p in self.processes if p.name == name)

    def stop(self, grace: float = 20.0) -> None:
        """Stop every process by PID, then drop what the stack owns (Redis DB, metadata DB if asked)."""
        stop_processes(((p.pid, p.started) for p in self.processes), grace)
        for proc in self.processes:
            if proc.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=5)
        self.processes = []
        if self._session is not None:
            self._session.close()
        if self.redis_db is not None:
            flush_redis_db(self.redis_db, self.tag)
        if self.drop_metadata_db:
            _pg_admin(f'DROP DATABASE IF EXISTS "{self.metadata_db}" WITH (FORCE)')
        state = self.home / "stack.json"
        state.unlink(missing_ok=True)

    def save_state(self) -> None:
        state = {"url": self.url, "metadata_db": self.metadata_db, "redis_db": self.redis_db, "tag": self.tag,
                 "drop_metadata_db": self.drop_metadata_db, "processes": [p.to_json() for p in self.processes]}
        (self.home / "stack.json").write_text(json.dumps(state, indent=2))

    @classmethod
    def from_state(cls, home: Path) -> AirflowStack | None:
        """The stack ``up`` left running in ``home`` (None when there is none)."""
        path = Path(home) / "stack.json"
        if not path.exists():
            return None
        state = json.loads(path.read_text())
        stack = cls(home, metadata_db=state["metadata_db"], api_port=int(state["url"].rsplit(":", 1)[1]),
                    drop_metadata_db=state["drop_metadata_db"], redis_db=state["redis_db"], tag=state["tag"])
        stack.processes = [Process(p["name"], p["argv"], p["pid"], p["started"]) for p in state["processes"]]
        return stack

    # -- readiness ---------------------------------------------------------------------------------------
    def check_processes(self) -> None:
        for proc in self.processes:
            if proc.popen is not None and proc.popen.poll() is not None:
                raise StackError(f"{proc.name} exited with {proc.popen.returncode}:\n{self.log_tail(proc.name)}")

    def wait_ready(self, dag_ids: Iterable[str] = (), timeout: float = 240.0) -> float:
        """Until the API answers, scheduler, triggerer and dag-processor are healthy, every worker
        is ready and ``dag_ids`` are parsed. Returns the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        waiting_for = "api-server"
        workers = [p.name for p in self.processes if p.name.startswith("worker")]
        wanted = set(dag_ids)
        while time.monotonic() < deadline:
            self.check_processes()
            try:
                health = self.api("GET", "/api/v2/monitor/health", auth=False)
                unhealthy = [k for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")
                             if (health.get(k) or {}).get("status") != "healthy"]
                not_ready = [w for w in workers if " ready." not in self.log_text(w)]
                missing = wanted - self.dag_ids() if wanted else set()
                if not unhealthy and not not_ready and not missing:
                    return time.monotonic() - started
                waiting_for = ", ".join(unhealthy + not_ready + sorted(f"DAG {d}" for d in missing))
            except OSError as exc:
                waiting_for = f"api-server ({exc.__class__.__name__})"
            except StackError as exc:
                waiting_for = str(exc)
            time.sleep(1)
        raise StackError(f"not ready after {timeout:.0f}s, waiting for {waiting_for}\n{self.log_tails()}")

    # -- logs ------------------------------------------------------------------------------------------
    def log_text(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self, name: str, lines: int = 40) -> str:
        return "\n".join(self.log_text(name).splitlines()[-lines:])

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(f"----- {p.name} ({self.log_dir / (p.name + '.log')}) -----\n{self.log_tail(p.name, lines)}"
                         for p in self.processes)

    # -- REST API ------------------------------------------------------------------------------------
    @property
    def session(self):
        if self._session is None:
            import requests

            self._session = requests.Session()
        return self._session

    def token(self, refresh: bool = False) -> str:
        """A JWT for the admin login (POST /auth/token)."""
        if self._token is None or refresh:
            reply = self.session.post(f"{self.url}/auth/token", timeout=30,
                                      json={"username": self.admin_user, "password": self.admin_password})
            if reply.status_code not in (200, 201):
                raise StackError(f"POST /auth/token answered {reply.status_code}: {reply.text[:200]}")
            self._token = reply.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, *, json_body: Any = None, params: dict | None = None, auth: bool = True,
            expect: Iterable[int] = (200, 201)) -> Any:
        """Call ``/api/v2...`` with the admin JWT; the JSON answer, or StackError naming status and body."""
        import requests

        headers = {"Authorization": f"Bearer {self.token()}"} if auth else {}
        try:
            reply = self.session.request(method, f"{self.url}{path}", json=json_body, params=params, headers=headers, timeout=30)
        except requests.RequestException as exc:
            raise OSError(f"{method} {path}: {exc}") from exc
        if reply.status_code not in set(expect):
            raise StackError(f"{method} {path} answered {reply.status_code}: {reply.text[:500]}")
        return reply.json() if reply.content else None

    def dag_ids(self) -> set[str]:
        dags = self.api("GET", "/api/v2/dags", params={"limit": 100})["dags"]
        return {d["dag_id"] for d in dags}

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json_body={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None, unpause: bool = True) -> str:
        """Trigger a run now (unpausing the DAG first); returns its run id."""
        if unpause:
            self.unpause(dag_id)
        run = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json_body={"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 180.0) -> str:
        """Until the run finishes; its final state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_processes()
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            time.sleep(1)
        raise StackError(f"{dag_id} {run_id} still running after {timeout:.0f}s: {self.task_states(dag_id, run_id)}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """``task_id`` (``[map_index]`` for mapped instances) -> state."""
        return {ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""): ti["state"]
                for ti in self.task_instances(dag_id, run_id)}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        reply = self.api("GET", path, params={"map_index": map_index, "full_content": True})
        content = reply.get("content", "")
        return "\n".join(e.get("event", "") if isinstance(e, dict) else str(e) for e in content) if isinstance(content, list) else str(content)

    def worker_of(self, pid: int) -> Process | None:
        """The worker process whose tree runs ``pid`` (e.g. a task instance's pid)."""
        roots = {p.pid: p for p in self.processes if p.name.startswith("worker")}
        root = root_of(pid, roots)
        return roots.get(root) if root else None


# --- demo data (make up) --------------------------------------------------------------------------------
class _Say:
    """What the demo loaders report to (they call ``.say``)."""

    @staticmethod
    def say(text: str) -> None:
        print(f"[demo-data] {text}", flush=True)


def demo_connections(tekmetric_url: str, tekmetric_id: str, tekmetric_secret: str) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` for the demo databases (`make demo`'s) and the emulator."""
    from devtools.demo import DEMO_DATABASES, _uri

    env = {f"AIRFLOW_CONN_{conn_id.upper()}": _uri(conn_id) for conn_id in DEMO_DATABASES}
    env["AIRFLOW_CONN_TEKMETRIC_API"] = json.dumps({"conn_type": "http", "host": tekmetric_url, "login": tekmetric_id,
                                                    "password": tekmetric_secret})
    return env


def seed_demo(data_dir: Path, registry_sources: int | None = None) -> dict[str, Any]:
    """Migrate the databases behind the connections and load the demo rows every pipeline reads:
    lifecycle_db, tidb_ops + supabase_ptmmm (four weeks of PTMMM activity), the registry's demo JSON
    sources (the first ``registry_sources`` of them; all when None) with their files in ``data_dir``.
    Idempotent. Returns ``kpi_day`` (the last day with PTMMM activity) and the registered ``sources``."""
    import datetime as dt

    from datasync import lifecycle
    from datasync.db import connected
    from datasync.migrate import migrate
    from devtools.demo.ptmmm import load_demo_data
    from devtools.demo import registry as registry_demo
    from devtools.demo.lifecycle import load_demo_rows

    out = _Say()
    for report in migrate():
        out.say(report.summary())
    with connected(lifecycle.SOURCE_CONN) as db:
        counts = load_demo_rows(db.conn)
    out.say("lifecycle_db: " + ", ".join(f"{n} {t}" for t, n in counts.items()))
    kpi_day = load_demo_data(out)
    sources = registry_demo.JSON_SOURCES[:registry_sources]
    registry_demo.write_json_sources(data_dir, dt.datetime.now(dt.timezone.utc))
    with connected("registry_db") as db:
        registry_demo.register_json_sources(db, data_dir, sources)
        db.commit()
    out.say(f"registry_db: {len(sources)} JSON sources reading {data_dir}")
    return {"kpi_day": kpi_day, "sources": sources}


def _create_demo_databases() -> None:
    """The `make demo` databases, created when missing (never dropped here)."""
    import MySQLdb

    from devtools.demo import DEMO_DATABASES, MY

    for server, name in DEMO_DATABASES.values():
        if server == "postgres" and not pg_database_exists(name):
            _pg_admin(f'CREATE DATABASE "{name}"')
    host, port = MY.split("@", 1)[1].split(":")
    my = MySQLdb.connect(host=host, port=int(port), user="root", password="")
    try:
        for server, name in DEMO_DATABASES.values():
            if server == "mysql":
                my.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    finally:
        my.close()


LOCAL_HOME = REPO / ".airflow" / "local"


def up(port: int) -> int:
    home = LOCAL_HOME
    running = AirflowStack.from_state(home)
    if running is not None:
        if any(alive(p.pid) and start_time(p.pid) == p.started for p in running.processes):
            print(f"[up] already running at {running.url} (make down stops it)")
            return 0
        running.stop(grace=0)  # left behind by a reboot or a crash: free its Redis database
    sys.path[:0] = [str(REPO / "plugins"), str(REPO)]  # the package, and devtools/ for the demo data
    data_dir = home / "demo-data" / "registry"
    emulator_port = free_port()
    client_id, client_secret = "tekmetric-emulator", secrets.token_urlsafe(12)
    env = demo_connections(f"http://127.0.0.1:{emulator_port}", client_id, client_secret)
    # The registry's platform policy: the demo JSON files may be read from this folder only.
    env["AIRFLOW_VAR_DATASYNC_REGISTRY_POLICY"] = json.dumps({"file_roots": [str(data_dir)]})
    passwords = home / "simple_auth_manager_passwords.json"
    password = json.loads(passwords.read_text())["admin"] if passwords.exists() else None
    stack = AirflowStack(home, metadata_db="datasync_local_airflow", api_port=port if port_free(port) else None,
                         workers=1, env=env, admin_password=password, drop_metadata_db=False)
    os.environ.update(env)
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    print(f"[up] demo databases and data (logs: {stack.log_dir})", flush=True)
    _create_demo_databases()
    seed_demo(data_dir)
    print("[up] metadata database, pools", flush=True)
    stack.prepare()
    stack.start_process("tekmetric-emulator", [sys.executable, "-m", "devtools.tekmetric.emulator", "--port",
                                               str(emulator_port), "--client-id", client_id, "--client-secret", client_secret],
                        env={"PYTHONPATH": f"{REPO / 'plugins'}{os.pathsep}{REPO}"})  # devtools/ is not on the stack's path
    stack.start()
    print("[up] starting scheduler, dag-processor, triggerer, api-server, Celery worker ...", flush=True)
    try:
        took = stack.wait_ready(dag_ids=["db_migrate"], timeout=300)
    except StackError as exc:
        print(f"[up] FAILED: {exc}", file=sys.stderr)
        stack.drop_metadata_db = False
        stack.stop()
        return 1
    print(f"[up] ready in {took:.0f}s: {stack.url}  login {stack.admin_user} / {stack.admin_password}")
    print("[up] DAGs start paused: unpause and trigger them in the UI. `make down` stops everything.")
    return 0


def down() -> int:
    stack = AirflowStack.from_state(LOCAL_HOME)
    if stack is None:
        print("[down] nothing running (no .airflow/local/stack.json)")
        return 0
    for proc in stack.processes:
        print(f"[down] stopping {proc.name} (pid {proc.pid})")
    stack.stop()
    print("[down] stopped; the metadata database datasync_local_airflow and the demo databases are kept")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up_cmd = sub.add_parser("up", help="start the local Airflow with the demo data")
    up_cmd.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_UI_PORT", "8080")))
    sub.add_parser("down", help="stop it")
    seed = sub.add_parser("seed-demo", help="migrate the databases behind the connections and load the demo rows")
    seed.add_argument("--data-dir", type=Path, required=True, help="where the registry's demo files go")
    args = parser.parse_args(argv)
    try:
        if args.command == "seed-demo":
            seed_demo(args.data_dir)
            return 0
        return up(args.port) if args.command == "up" else down()
    except StackError as exc:
        print(f"[{args.command}] FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
