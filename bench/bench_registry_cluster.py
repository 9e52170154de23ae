"""Registry runner under a real scheduler: one cycle of many due JSON sources on a CeleryExecutor stack.

    .venv/bin/python bench/bench_registry_cluster.py [--sources 500] [--records 2000] [--cycles 2]

Starts the stack of scripts/airflow_stack.py (scheduler, dag-processor, triggerer, api-server, two
Celery workers; its own metadata database and Redis number), registers ``--sources`` JSON sources of
``--records`` records each (full strategy, each its own table) in a throwaway registry database,
then triggers ``source_registry_runner`` ``--cycles`` times (the first creates the tables and inserts
every row, the next ones read, compare and leave every row unchanged). For each cycle it reports:

* **cycle**: trigger to run finished (what an operator waits for);
* **CPU-s per source**: user + system CPU of every stack process tree during the cycle, divided by the
  sources (the database servers are not counted);
* per task instance, from the metadata: queue wait (queued -> start) and run time (start -> end).

Each cycle is a ``BENCH-RESULT`` row (bench/benchlib.py); at the default size the warm one carries the
target: 500 sources x 2,000 records in at most 75 s. Everything it creates is dropped afterwards (the
registry and metadata databases, unique names; the Redis number; the files), also on SIGTERM/SIGINT.
``--tree DIR`` runs another checkout's dags/ and plugins/ (before/after comparisons);
``--set SECTION__KEY=VALUE`` overrides an Airflow setting (``AIRFLOW__`` prefix added).
``--floor`` then runs ``bench/dags/registry_floor.py`` on the same warm stack: as many mapped
instances with ``sync_source``'s settings that do nothing, i.e. what the task instances alone cost,
the floor under a cycle of that many sources.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "bench"))

from airflow_stack import AirflowStack, descendants  # noqa: E402
from benchlib import Scratch, emit, unique  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds of a process tree: each live process's own time plus what it reaped from its children."""
    total = 0
    for pid in [root, *descendants(root)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / TICKS


def stack_cpu(stack: AirflowStack) -> dict[str, float]:
    """CPU seconds per stack component (scheduler, api-server, worker1, ...)."""
    return {p.name: tree_cpu(p.pid) for p in stack.processes}


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine (database servers included): /proc/stat's first line."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICKS  # all but idle and iowait


def profile(stack: AirflowStack, directory: Path) -> list:
    """One py-spy per component (its task processes included), sampling until sent SIGINT."""
    import subprocess

    directory.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    return [subprocess.Popen([str(spy), "record", "--pid", str(p.pid), "--subprocesses", "--rate", "50", "--format", "raw",
                              "--output", str(directory / f"{p.name}.txt"), "--nonblocking"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in stack.processes]


def instances(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> list[dict]:
    """Every instance of ``task_id`` in the run (the API answers 100 per page)."""
    found: list[dict] = []
    while True:
        page = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                         params={"task_id": task_id, "limit": 100, "offset": len(found)})
        found += page["task_instances"]
        if not page["task_instances"] or len(found) >= page["total_entries"]:
            return found


def parse_time(text: str | None) -> float | None:
    import datetime as dt

    return dt.datetime.fromisoformat(text).timestamp() if text else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=None, help="[celery] worker_concurrency (stack default)")
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout whose dags/ and plugins/ run")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION__KEY=VALUE")
    parser.add_argument("--floor", action="store_true",
                        help="after the cycles, as many no-op mapped instances (bench/dags/registry_floor.py)")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="py-spy every component during the last run (the floor with --floor): DIR/<component>.txt")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "plugins"))

    with Scratch() as scratch:  # the registry database, dropped at the end (SIGTERM and SIGINT included)
        directory = Path(tempfile.mkdtemp(prefix="bench_regcluster_"))
        home = Path(tempfile.mkdtemp(prefix="bench_regcluster_home_"))
        try:
            return run(args, scratch, directory, home)
        finally:
            shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(directory, ignore_errors=True)


def dags_folder(tree: Path, home: Path, floor: bool) -> Path:
    """The tree's dags/, or with ``floor`` a folder linking its DAG files and the floor DAG."""
    if not floor:
        return tree / "dags"
    folder = home / "dags"
    folder.mkdir()
    for path in [*(tree / "dags").glob("*.py"), REPO / "bench" / "dags" / "registry_floor.py"]:
        (folder / path.name).symlink_to(path)
    return folder


def measure(stack: AirflowStack, dag_id: str, task_id: str, conf: dict, profile_dir: Path | None = None) -> dict:
    """Trigger ``dag_id`` and wait: wall and CPU seconds (per component, whole machine), ``task_id``'s instances."""
    profilers = profile(stack, profile_dir) if profile_dir else []
    cpu0, machine0, t0 = stack_cpu(stack), machine_cpu(), time.monotonic()
    run_id = stack.trigger(dag_id, conf=conf)
    state = stack.wait_run(dag_id, run_id, timeout=1800)
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        profiler.wait(60)
    cpu1, machine = stack_cpu(stack), machine_cpu() - machine0
    took = time.monotonic() - t0
    parts = {name: cpu1[name] - cpu0.get(name, 0.0) for name in cpu1}
    tis = instances(stack, dag_id, run_id, task_id)
    return {"state": state, "took": took, "parts": parts, "cpu": sum(parts.values()), "machine": machine,
            "ok": sum(ti["state"] == "success" for ti in tis),
            "waits": [parse_time(ti["start_date"]) - parse_time(ti["queued_when"]) for ti in tis
                      if ti.get("queued_when") and ti.get("start_date")],
            "runs": [parse_time(ti["end_date"]) - parse_time(ti["start_date"]) for ti in tis
                     if ti.get("start_date") and ti.get("end_date")]}


def describe(m: dict, n: int) -> str:
    return (f"{m['state']}, {m['ok']}/{n} ok, {m['took']:.1f} s, {m['cpu']:.1f} CPU-s ({m['cpu'] / n:.3f} per instance; "
            f"machine {m['machine'] / n:.3f}), queue wait median {statistics.median(m['waits']) if m['waits'] else 0:.2f} s, "
            f"task run median {statistics.median(m['runs']) if m['runs'] else 0:.2f} s; CPU-s by component: "
            + ", ".join(f"{k} {v:.1f}" for k, v in sorted(m["parts"].items())))


def run(args, scratch: Scratch, directory: Path, home: Path) -> int:
    n, tree = args.sources, args.tree.resolve()
    registry_uri = scratch.bind(scratch.pg("bench_regcluster"), "registry_db")
    env = {"AIRFLOW_CONN_REGISTRY_DB": registry_uri,
           "AIRFLOW_VAR_DATASYNC_REGISTRY_POLICY": json.dumps({"file_roots": [str(directory)]}),
           "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # triggered cycles only
           "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder(tree, home, args.floor)),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(tree / "plugins"), "PYTHONPATH": str(tree / "plugins")}
    for item in args.set:
        key, value = item.split("=", 1)
        env[f"AIRFLOW__{key.upper()}"] = value
    os.environ.update({k: v for k, v in env.items() if k.startswith("AIRFLOW_CONN_") or k.startswith("AIRFLOW_VAR_")})
    options = {"worker_concurrency": args.concurrency} if args.concurrency else {}
    # the stack creates its metadata database and drops it in stop()
    stack = AirflowStack(home, metadata_db=unique("bench_regcluster_meta"), workers=args.workers, env=env, **options)
    # the target: a warm cycle of 500 sources x 2,000 records in at most 75 s
    limit = 75.0 if (n, args.records) == (500, 2000) else None
    size = f"{n} sources x {args.records:,} records, {args.workers} workers x {stack.worker_concurrency}"
    measured: list[dict] = []  # the registry cycles, then the floor
    try:
        from bench_registry import register_all, write_sources
        from datasync.db import connected
        from datasync.migrate import migrate

        migrate(["registry"])
        write_sources(directory, n, args.records)
        register_all(directory, n)
        stack.prepare()
        stack.start()
        stack.wait_ready(dag_ids=["source_registry_runner"], timeout=300)
        for sig in (signal.SIGINT, signal.SIGTERM):  # stop the stack, drop the databases (Airflow's handlers would not)
            signal.signal(sig, lambda *_: sys.exit(130))
        print(f"{n} sources x {args.records} records, {args.workers} workers x concurrency "
              f"{stack.worker_concurrency}, tree {tree}, settings {args.set or 'default'}; load {os.getloadavg()}",
              flush=True)
        for cycle in range(args.cycles):
            with connected("registry_db") as db:
                db.execute("UPDATE data_source_registry SET next_sync = NULL").close()
                db.commit()
            load = os.getloadavg()[0]
            last = cycle == args.cycles - 1
            m = measure(stack, "source_registry_runner", "sync_source", {}, args.profile if last and not args.floor else None)
            measured.append(m)
            kind = "cold" if cycle == 0 else "warm"
            print(f"cycle {cycle + 1} ({kind}): " + describe(m, n) + f"; load at start {load:.2f}", flush=True)
            emit(f"registry cluster: cycle {cycle + 1}, {kind} ({size})", m["took"], rows=n * args.records,
                 limit_seconds=limit if cycle > 0 else None,
                 note=f"{m['cpu'] / n:.3f} CPU-s per source; {m['state']}, {m['ok']}/{n} sources ok; "
                      f"load at start {load:.2f}")
        if args.floor:  # after the cycles: every pool process has started and warmed up, as for a warm cycle
            stack.wait_ready(dag_ids=["registry_floor"], timeout=120)
            warm = measured[1:] or measured
            floor = measure(stack, "registry_floor", "noop", {"count": n}, args.profile)
            measured.append(floor)
            print(f"floor ({n} no-op instances): " + describe(floor, n), flush=True)
            emit(f"registry cluster: floor, {n} no-op mapped instances ({size})", floor["took"],
                 note=f"{floor['cpu'] / n:.3f} CPU-s per instance; {floor['state']}, {floor['ok']}/{n} ok"
                      + (f"; a warm cycle takes {min(m['took'] for m in warm) / floor['took']:.2f}x its time" if warm else ""))
    finally:
        stack.stop()
    return 0 if measured and all(m["state"] == "success" and m["ok"] == n for m in measured) else 1


if __name__ == "__main__":
    sys.exit(main())
