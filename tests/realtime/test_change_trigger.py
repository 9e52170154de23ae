"""PostgresChangeTrigger against real Postgres: the lifecycle migration's notifications, bursts
folded into one event, unwatched tables ignored, reconnection after the backend is terminated
and after a (private) server restarts. The trigger's ``run()`` runs in a thread of its own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest

from harness import REPO
from datasync import realtime
from datasync.realtime import PostgresChangeTrigger

TABLES = ["tbl_segmen", "tbl_stage", "tbl_produk", "tbl_stage_histori"]
FAST = {"quiet_seconds": 0.3, "max_delay_seconds": 1.0}


class Watching:
    """``trigger.run()`` on an event loop in a thread; its events land in ``events``."""

    def __init__(self, trigger):
        self.events: queue.Queue = queue.Queue()
        self.loop = asyncio.new_event_loop()
        self.task = None
        self.thread = threading.Thread(target=self._run, args=(trigger,), daemon=True)
        self.thread.start()

    def _run(self, trigger):
        async def consume():
            async for event in trigger.run():
                self.events.put(event.payload)

        self.task = self.loop.create_task(consume())
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)
        self.loop.close()

    def next(self, timeout: float = 10) -> dict:
        return self.events.get(timeout=timeout)

    def quiet_for(self, seconds: float) -> list[dict]:
        time.sleep(seconds)
        got = []
        while not self.events.empty():
            got.append(self.events.get())
        return got

    def stop(self):
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)


@pytest.fixture
def lifecycle(migrated_target):
    db = migrated_target("lifecycle")
    db.bind("lifecycle_db")  # other tests point the connection at databases of their own
    db.query("SELECT datasync_realtime(true)")
    yield db
    db.query("SELECT datasync_realtime(false)")


@contextlib.contextmanager
def watching(**kwargs):
    w = Watching(PostgresChangeTrigger(**{**FAST, **kwargs}))
    try:
        first = w.next()
        assert first["reconnected"] and first["tables"] == [], first  # the connect-time catch-up event
        yield w
    finally:
        w.stop()


def listeners(db) -> list[int]:
    return [pid for (pid,) in db.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                       "AND application_name = 'datasync-realtime'")]


def test_migration_installs_opt_in_statement_triggers(lifecycle):
    """The functions come with migration 002; the triggers only after datasync_realtime(true)."""
    migration = (REPO / "include/sql/lifecycle/002_change_notifications.sql").read_text()
    assert realtime.FUNCTIONS_SQL in migration  # one text for lifecycle_db and any watched source
    names = {n for (n,) in lifecycle.query("SELECT tgname FROM pg_trigger WHERE tgname LIKE 'datasync_notify_%%'")}
    assert names == {f"datasync_notify_{t}" for t in TABLES}
    lifecycle.query("SELECT datasync_realtime(false)")
    assert lifecycle.query("SELECT tgname FROM pg_trigger WHERE tgname LIKE 'datasync_notify_%%'") == []
    lifecycle.query("SELECT datasync_realtime(true)")
    with lifecycle.connect() as listen, lifecycle.connect() as write:
        listen.execute("LISTEN datasync_changes")
        write.execute("INSERT INTO tbl_segmen (id, segmen) SELECT g, 'S' || g FROM generate_series(9001, 9500) g")
        write.execute("UPDATE tbl_segmen SET deskripsi = 'x' WHERE id > 9000")
        write.execute("DELETE FROM tbl_segmen WHERE id > 9000")
        payloads = [n.payload for n in listen.notifies(timeout=1)]
    assert payloads == ["public.tbl_segmen"] * 3  # one per statement, not per row


def test_a_burst_is_one_event_and_other_tables_are_ignored(lifecycle):
    lifecycle.query("CREATE TABLE IF NOT EXISTS audit_note (id int)")
    lifecycle.query("SELECT datasync_watch('audit_note')")  # announced, but not a table the sync covers
    with watching(conn_id="lifecycle_db", tables=TABLES) as w, lifecycle.connect() as write:
        for i in range(30):
            write.execute("INSERT INTO tbl_produk (id, nama_produk) VALUES (%s, 'p') ON CONFLICT (id) DO UPDATE SET harga = 1", (50_000 + i,))
            write.execute("INSERT INTO tbl_stage (id, stage) VALUES (%s, 's') ON CONFLICT (id) DO NOTHING", (50_000 + i,))
        event = w.next()
        assert event["tables"] == ["public.tbl_produk", "public.tbl_stage"] and event["notifications"] == 60
        assert w.quiet_for(1.0) == []
        for _ in range(20):
            write.execute("INSERT INTO audit_note VALUES (1)")
        assert w.quiet_for(1.5) == []  # notifications for tables outside the sync start nothing


def test_constant_change_fires_every_max_delay(lifecycle):
    with watching(conn_id="lifecycle_db", tables=TABLES) as w, lifecycle.connect() as write:
        started = time.monotonic()
        while time.monotonic() - started < 3.5:  # a change every 0.1 s: never a quiet period
            write.execute("UPDATE tbl_produk SET harga = harga WHERE id = 1")
            time.sleep(0.1)
        events = w.quiet_for(1.0)
    assert 2 <= len(events) <= 6, events  # about one per max_delay_seconds (1 s), not 35


def test_reconnects_after_backend_terminated(lifecycle):
    """pg_terminate_backend is what a server restart looks like from the client."""
    with watching(conn_id="lifecycle_db", tables=TABLES) as w:
        (pid,) = listeners(lifecycle)
        lifecycle.query("SELECT pg_terminate_backend(%s)", (pid,))
        lifecycle.query("UPDATE tbl_segmen SET deskripsi = 'while away' WHERE id = 1")  # nobody listening
        event = w.next(timeout=15)
        assert event["reconnected"], event  # changes while disconnected: the reconnection fires
        assert listeners(lifecycle) != [pid] and len(listeners(lifecycle)) == 1
        lifecycle.query("UPDATE tbl_stage SET urutan = urutan WHERE id = 1")
        assert w.next()["tables"] == ["public.tbl_stage"]


def test_serialized_trigger_names_the_connection_not_its_secret(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SECRET_PG", "postgresql://user:s3cr3t-pw@127.0.0.1:5432/x")
    classpath, kwargs = PostgresChangeTrigger(conn_id="secret_pg", tables=["tbl_produk"]).serialize()
    assert classpath == "datasync.realtime.PostgresChangeTrigger" and "s3cr3t" not in repr(kwargs)
    again = PostgresChangeTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    # Several watchers on one database and channel share one LISTEN (the triggerer's shared streams).
    other = PostgresChangeTrigger(conn_id="secret_pg", tables=["tbl_stage"])
    assert again.shared_stream_key() == other.shared_stream_key()
    assert PostgresChangeTrigger(conn_id="secret_pg", channel="other").shared_stream_key() != other.shared_stream_key()
    for bad in ({"channel": "x; drop"}, {"tables": ["a b"]}, {"conn_id": ""}, {"quiet_seconds": 9}):
        with pytest.raises(ValueError):
            PostgresChangeTrigger(**{"conn_id": "secret_pg", **bad})


def test_watch_refuses_mysql_sources(my_db):
    from datasync.db import connected

    my_db.bind("rt_mysql_source")
    with connected("rt_mysql_source") as db, pytest.raises(ValueError, match="polling"):
        realtime.watch(db, ["t"])


# --- a private server that really restarts ------------------------------------------------------------
PG_BIN = Path(shutil.which("pg_ctl") or "/usr/local/bin/pg_ctl").parent


@pytest.fixture
def private_postgres():
    """A throwaway Postgres cluster on a free port (run as user postgres), stopped at the end."""
    if not os.access(PG_BIN / "initdb", os.X_OK):
        pytest.skip("initdb not available")
    data = Path(tempfile.mkdtemp(prefix="rt-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")  # the server refuses to run as root
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def pg_ctl(*args):
        subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data / "db"), "-w", "-t", "30", *args],
                       check=True, capture_output=True)

    subprocess.run([*as_pg, str(PG_BIN / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl("-o", options, "-l", str(data / "log"), "start")
    try:
        yield port, lambda: pg_ctl("-m", "immediate", "stop"), lambda: pg_ctl("-o", options, "-l", str(data / "log"), "start")
    finally:
        subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def test_server_restart_while_watched(private_postgres, monkeypatch):
    port, stop, start = private_postgres
    uri = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    monkeypatch.setenv("AIRFLOW_CONN_RT_PRIVATE", uri)
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(realtime.FUNCTIONS_SQL)
        conn.execute("CREATE TABLE machine_status (id int PRIMARY KEY, status text)")
        conn.execute("SELECT datasync_watch('machine_status')")
    with watching(conn_id="rt_private", tables=["machine_status"]) as w:
        stop()
        time.sleep(2)  # down for a while: the trigger backs off and retries
        start()
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("INSERT INTO machine_status VALUES (1, 'changed while the trigger was away')")
        assert w.next(timeout=40)["reconnected"]  # and the DAG then reads the row from its cursor
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("UPDATE machine_status SET status = 'up' WHERE id = 1")
        assert w.next(timeout=10)["tables"] == ["public.machine_status"]


def test_cli_enables_a_registry_database_source(pg_db):
    """What the platform runs on a registry `database` source's server (docs/registry.md)."""
    from datasync.cli import main

    pg_db.bind("rt_plant_db")
    pg_db.query("CREATE SCHEMA plant; CREATE TABLE plant.machine_status (id int PRIMARY KEY, status text)")
    assert main(["realtime", "enable", "rt_plant_db", "plant.machine_status"]) == 0
    with pg_db.connect() as listen:
        listen.execute("LISTEN datasync_changes")
        pg_db.query("INSERT INTO plant.machine_status VALUES (1, 'up')")
        assert [n.payload for n in listen.notifies(timeout=1)] == ["plant.machine_status"]
        assert main(["realtime", "disable", "rt_plant_db", "plant.machine_status"]) == 0
        pg_db.query("INSERT INTO plant.machine_status VALUES (2, 'up')")
        assert [n.payload for n in listen.notifies(timeout=0.5)] == []
    assert main(["realtime", "enable", "rt_plant_db", "plant.no_such_table"]) == 1
