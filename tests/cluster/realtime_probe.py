"""Event-driven lifecycle_sync on a :class:`cluster.Cluster`: what tests/cluster/test_realtime.py
and bench/bench_realtime.py share.

* :func:`event_scheduling`: the cluster's scheduler normally creates triggered runs only; inside
  this context it runs with ``use_job_schedule`` on (asset-triggered and timed runs), every DAG but
  ``dag_ids`` paused, and the normal scheduler comes back afterwards.
* :func:`prepare_lifecycle`: lifecycle_db / pmo_db migrated and seeded, change notifications on,
  lifecycle_sync unpaused, and back once its watcher listens and the connect-time run is done.
* :func:`change_product` / :func:`landed`: commit a change in lifecycle_db; wait until pmo_db has it.
"""

from __future__ import annotations

import contextlib
import time
import uuid

import psycopg
from collections.abc import Iterator

from cluster import Cluster

DAG_ID = "lifecycle_sync"


def scheduler_argv(cluster: Cluster) -> list[str]:
    return dict(cluster.stack.component_argv())["scheduler"]


@contextlib.contextmanager
def event_scheduling(cluster: Cluster, dag_ids: tuple[str, ...] = (DAG_ID,)) -> Iterator[None]:
    stack = cluster.stack
    for dag in stack.api("GET", "/api/v2/dags", params={"limit": 100})["dags"]:
        if dag["dag_id"] not in dag_ids and not dag["is_paused"]:
            stack.api("PATCH", f"/api/v2/dags/{dag['dag_id']}", json_body={"is_paused": True})
    stack.kill("scheduler")
    stack.start_process("scheduler", scheduler_argv(cluster), env={"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True"})
    try:
        yield
    finally:
        if stack.processes:  # else the cluster already stopped (its last test has run)
            for dag_id in dag_ids:
                stack.api("PATCH", f"/api/v2/dags/{dag_id}", json_body={"is_paused": True})
            stack.kill("scheduler")
            stack.start_process("scheduler", scheduler_argv(cluster))


def listeners(cluster: Cluster) -> list[int]:
    """Backends LISTENing for the trigger on lifecycle_db."""
    return [pid for (pid,) in cluster.db["lifecycle_db"].query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'datasync-realtime'")]


def _metadata(cluster: Cluster, sql: str, params=()) -> list[tuple]:
    """A read from the cluster's metadata database (cheaper than the REST API on a loaded machine)."""
    from airflow_stack import pg_uri

    with psycopg.connect(pg_uri(cluster.stack.metadata_db), autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def runs(cluster: Cluster, run_type: str | None = "asset_triggered") -> list[dict]:
    """lifecycle_sync's runs, oldest first (``run_type`` None: all)."""
    rows = _metadata(cluster, "SELECT run_id, state, run_type, run_after, start_date, end_date FROM dag_run "
                              "WHERE dag_id = %s AND (%s::text IS NULL OR run_type = %s) ORDER BY run_after, id",
                     (DAG_ID, run_type, run_type))
    return [dict(zip(("run_id", "state", "run_type", "run_after", "start_date", "end_date"), r)) for r in rows]


def asset_events(cluster: Cluster, since) -> list[dict]:
    """Events of the lifecycle_db_changes asset after ``since`` (a datetime)."""
    rows = _metadata(cluster, "SELECT e.id, e.timestamp, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                              "WHERE a.name = 'lifecycle_db_changes' AND e.timestamp > %s ORDER BY e.timestamp", (since,))
    return [dict(zip(("id", "timestamp", "extra"), r)) for r in rows]


def wait_for(what: str, check, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"no {what} after {timeout:.0f}s")


def settled(cluster: Cluster, timeout: float = 180, quiet: float = 3) -> list[dict]:
    """Until no lifecycle_sync run has been queued or running for ``quiet`` seconds; the asset-triggered runs."""
    deadline, idle_since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if any(r["state"] in ("queued", "running") for r in runs(cluster, None)):
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= quiet:
            return runs(cluster)
        time.sleep(0.5)
    raise AssertionError(f"lifecycle_sync still busy after {timeout:.0f}s: {runs(cluster, None)[-3:]}")


def prepare_lifecycle(cluster: Cluster, timeout: float = 240) -> None:
    from datasync import lifecycle
    from datasync.db import connected
    from datasync.migrate import migrate
    from devtools.demo.lifecycle import load_demo_rows

    with cluster.connections():
        list(migrate(["lifecycle", "pmo"]))
        with connected(lifecycle.SOURCE_CONN) as db:
            load_demo_rows(db.conn)
    cluster.db["lifecycle_db"].query("SELECT datasync_realtime(true)")
    cluster.stack.unpause(DAG_ID)
    # The watcher starts when the dag-processor next parses the DAG file after the unpause.
    wait_for("listening trigger on lifecycle_db", lambda: listeners(cluster), timeout)
    wait_for("connect-time run", lambda: runs(cluster), 120)
    settled(cluster)


def change_product(cluster: Cluster, product_id: int = 1) -> str:
    """Commit a new name for a product; returns it."""
    name = f"rt-{uuid.uuid4().hex[:10]}"
    cluster.db["lifecycle_db"].query("UPDATE tbl_produk SET nama_produk = %s WHERE id = %s", (name, product_id))
    return name


def landed(cluster: Cluster, product_id: int, name: str, timeout: float = 120, every: float = 0.05) -> float:
    """Seconds until pmo_db shows ``name`` for the product (measured from the call)."""
    started = time.monotonic()
    with cluster.db["pmo_db"].connect() as conn:
        while time.monotonic() - started < timeout:
            row = conn.execute("SELECT nama_produk FROM tbl_produk_lifecycle WHERE id = %s", (product_id,)).fetchone()
            if row and row[0] == name:
                return time.monotonic() - started
            time.sleep(every)
    raise AssertionError(f"product {product_id} not '{name}' in pmo_db after {timeout:.0f}s")


def unequal_rows(cluster: Cluster) -> int:
    """Products whose name differs between lifecycle_db and pmo_db (or are missing there)."""
    source = dict(cluster.db["lifecycle_db"].query("SELECT id, nama_produk FROM tbl_produk"))
    target = dict(cluster.db["pmo_db"].query("SELECT id, nama_produk FROM tbl_produk_lifecycle"))
    return sum(1 for k, v in source.items() if target.get(k) != v)
