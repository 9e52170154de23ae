"""Fixtures for the registry runner tests: a registry database of their own, a way to register
sources, a loopback HTTP server, helper programs, and rerunning one cleared task instance."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

REGISTRY_ENV = "AIRFLOW_CONN_REGISTRY_DB"


@contextlib.contextmanager
def registry_bound(db) -> Iterator[None]:
    """Point ``registry_db`` at ``db`` for a while; other tests keep theirs afterwards."""
    from datasync.registry import runner

    saved = os.environ.get(REGISTRY_ENV)
    db.bind("registry_db")
    try:
        yield
    finally:
        runner.close_cached()
        if saved is None:
            os.environ.pop(REGISTRY_ENV, None)
        else:
            os.environ[REGISTRY_ENV] = saved


def migrated_registry(database_factory, label: str):
    from datasync.migrate import migrate

    db = database_factory("postgres", label)
    with registry_bound(db):
        migrate(["registry"])
    return db


@dataclass
class Registry:
    """Registers sources the way an admin would: plain rows in the registry tables."""

    db: Any  # harness.TestDatabase

    def sql(self, statement: str, params: Any = None) -> list[tuple]:
        return self.db.query(statement, params)

    def add(self, source_id: str, source_type: str, connections: list[dict], mappings: list[dict], *,
            name: str | None = None, **registry: Any) -> int:
        conn_type = "file" if source_type in ("json", "csv", "excel") else source_type
        values = {"source_id": source_id, "name": name or source_id, "source_type": source_type,
                  "connection_type": conn_type, **registry}
        with psycopg.connect(self.db.uri, autocommit=False) as conn:
            sid = _insert(conn, "data_source_registry", values)
            for i, c in enumerate(connections):
                c = dict(c)
                _insert(conn, "data_source_connections", {
                    "source_id": sid, "connection_name": c.pop("name", f"conn{i}"), "connection_type": conn_type,
                    "is_primary": c.pop("is_primary", i == 0), "is_backup": c.pop("is_backup", i > 0),
                    "status": c.pop("status", "active"), "connection_config": c})
            for m in mappings:
                m = dict(m)
                _insert(conn, "data_source_mappings", {
                    "source_id": sid, "target_table": m.pop("target_table"), "key_columns": m.pop("key_columns"),
                    "cursor_field": m.pop("cursor_field", None), "sync_strategy": m.pop("sync_strategy", "full"),
                    "retention_date_column": m.pop("retention_date_column", None),
                    "data_retention_days": m.pop("data_retention_days", None), "max_rejects": m.pop("max_rejects", 0),
                    "mapping_config": m})
            conn.commit()
        return sid

    def history(self, source_id: str) -> list[dict]:
        cols = ["sync_type", "sync_status", "connection_role", "records_processed", "records_inserted",
                "records_updated", "records_unchanged", "records_deleted", "records_rejected", "error_message",
                "run_id", "sync_duration_ms"]
        rows = self.sql(f"SELECT {', '.join('h.' + c for c in cols)} FROM data_source_sync_history h "
                        "JOIN data_source_registry r ON r.id = h.source_id WHERE r.source_id = %s ORDER BY h.id",
                        (source_id,))
        return [dict(zip(cols, r)) for r in rows]

    def state(self, source_id: str) -> dict:
        cols = ["status", "error_count", "last_error", "last_sync", "next_sync"]
        row = self.sql(f"SELECT {', '.join(cols)} FROM data_source_registry WHERE source_id = %s", (source_id,))[0]
        return dict(zip(cols, row))


def _insert(conn, table: str, values: dict) -> int:
    cols = ", ".join(values)
    marks = ", ".join("%s::jsonb" if isinstance(v, dict) else "%s" for v in values.values())
    params = [json.dumps(v) if isinstance(v, dict) else v for v in values.values()]
    return conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks}) RETURNING id", params).fetchone()[0]


# ---- a loopback HTTP server (module scoped, unlike conftest's) ------------------------------------------
Route = Callable[[dict], tuple[int, Any]]


@dataclass
class Server:
    url: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[dict] = field(default_factory=list)


@contextlib.contextmanager
def loopback_server() -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            req = {"path": self.path.split("?")[0], "headers": dict(self.headers),
                   "body": self.rfile.read(length) if length else b""}
            state.seen.append(req)
            route = state.routes.get(req["path"])
            status, body = route(req) if route else (404, {"error": "no route"})
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if isinstance(body, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def program(directory: Path, name: str, source: str) -> list[str]:
    path = directory / name
    path.write_text(source)
    return [sys.executable, str(path)]


# ---- output of in-process DAG runs ----------------------------------------------------------------------
class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")
        if record.exc_info:
            self.lines.append(logging.Formatter().formatException(record.exc_info))


class _Tee(io.TextIOBase):
    """Stands in for sys.stdout/stderr while capturing. Loggers may keep a reference to whatever
    sys.stdout was when they were first used (structlog does), so it is never closed: afterwards
    it simply writes on to the stream it replaced."""

    def __init__(self, original) -> None:
        self.original, self.parts = original, None

    def write(self, text: str) -> int:
        if self.parts is not None:
            self.parts.append(text)
        return self.original.write(text) if self.parts is None else len(text)

    def flush(self) -> None:
        self.original.flush()


@contextlib.contextmanager
def captured_output() -> Iterator[Callable[[], str]]:
    """What a dag.test() run logs: every log record (task logs, tracebacks included) and
    everything written to sys.stdout/stderr and to fd 1 and 2."""
    collect = _Collect()
    root = logging.getLogger()
    root.addHandler(collect)
    saved_streams = sys.stdout, sys.stderr
    tees = [s if isinstance(s, _Tee) else _Tee(s) for s in saved_streams]
    parts: list[str] = []
    for tee in tees:
        tee.parts = parts
    sys.stdout, sys.stderr = tees
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(1), os.dup(2)
        os.dup2(sink.fileno(), 1), os.dup2(sink.fileno(), 2)
        text: list[str] = []
        try:
            yield lambda: "\n".join(collect.lines) + "\n" + "".join(parts) + "".join(text)
        finally:
            root.removeHandler(collect)
            for tee in tees:
                tee.parts = None
            sys.stdout, sys.stderr = saved_streams
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])
            sink.seek(0)
            text.append(sink.read().decode("utf-8", "replace"))


# ---- clearing one task instance, as the UI's "Clear" does, and running what became runnable -----------
def rerun_cleared(dag, dag_run, task_id: str, map_index: int):
    """Clear one (mapped) task instance of a finished run and run the run on, dag.test style:
    only the cleared instance runs, with the input the run stored when it expanded."""
    from sqlalchemy import select

    from airflow.models import DagRun  # metadata-DB model: tests emulate the UI's Clear
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.sdk.definitions.dag import _run_task
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    with create_session() as session:
        ti = session.scalar(select(TaskInstance).where(
            TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dag_run.run_id,
            TaskInstance.task_id == task_id, TaskInstance.map_index == map_index))
        clear_task_instances([ti], session, dag_run_state=DagRunState.RUNNING)
    ran = []
    with create_session() as session:
        dr = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == dag_run.run_id))
        dr.dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))  # what dag.test schedules with
        while dr.state == DagRunState.RUNNING:
            schedulable, _ = dr.update_state(session=session)
            for s in schedulable:
                s.try_number += 1
                s.state = TaskInstanceState.SCHEDULED
            session.commit()
            todo = [t for t in dr.get_task_instances(session=session) if t.state == TaskInstanceState.SCHEDULED]
            if not todo:
                break
            for t in todo:
                ran.append((t.task_id, t.map_index))
                _run_task(ti=t, task=dag.task_dict[t.task_id])
            session.expire_all()
    with create_session() as session:
        dr = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == dag_run.run_id))
        session.expunge(dr)
    return dr, ran


def xcom_and_rendered_text(dag_id: str, run_id: str) -> str:
    """Every XCom value and rendered template field the run stored, as one text."""
    from sqlalchemy import select

    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcoms = session.scalars(select(XComModel.value).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id)).all()
        rendered = session.scalars(select(RTIF.rendered_fields).where(RTIF.dag_id == dag_id, RTIF.run_id == run_id)).all()
    assert xcoms and rendered, "the run stored no XCom or rendered fields to check"
    return json.dumps([xcoms, rendered], default=str)


@pytest.fixture(scope="module")
def loopback():
    with loopback_server() as server:
        yield server
