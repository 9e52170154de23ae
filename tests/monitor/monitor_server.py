"""Serving the Data sync page for real: Airflow's own API server app (plugins, auth manager and
all) on a free loopback port, in-process with uvicorn for the API tests, or as the
``airflow api-server`` command for the browser test. Users are Airflow's SimpleAuthManager users
with known passwords."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import requests

from harness import AIRFLOW_HOME, REPO

USER, PASSWORD = "oncall", "known-Passw0rd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def auth_settings(home: Path) -> dict[str, str]:
    """Environment that makes Airflow use SimpleAuthManager with one user of a known password."""
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    return {
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
    }


def wait_until_up(url: str, seconds: float = 90, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the API server exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {seconds:.0f}s")


def login(base_url: str) -> str:
    """A JWT for the known user, from Airflow's own login endpoint."""
    response = requests.post(f"{base_url}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=10)
    response.raise_for_status()
    return response.json()["access_token"]


@contextmanager
def in_process_api_server(tmp: Path):
    """``create_app()`` of the Airflow API server, served by uvicorn in a thread."""
    import uvicorn

    settings = auth_settings(tmp)
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    from airflow.api_fastapi.app import create_app, purge_cached_app

    purge_cached_app()
    app = create_app()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/api/v2/monitor/health", 60)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        purge_cached_app()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def api_server_process(home: Path, log_path: Path, metadata_db: Path | None = None):
    """``airflow api-server`` with the plugin, its own AIRFLOW_HOME, stopped by PID. Its metadata DB
    is ``metadata_db`` (SQLite), by default the one the test session migrated, so it starts in seconds."""
    port = free_port()
    env = {
        **os.environ, **auth_settings(home),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{metadata_db or AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
        "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), os.environ.get("PYTHONPATH", "")]),
    }
    with log_path.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port),
                                 "--workers", "1"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/api/v2/monitor/health", 120, proc)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and the workers it forked
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
