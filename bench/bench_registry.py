"""Registry runner benchmark: one cycle of many due JSON sources, and where its time goes.

    .venv/bin/python bench/bench_registry.py [--sources 100] [--records 2000] [--sample 20]

Registers ``--sources`` JSON sources of ``--records`` records each (full strategy, 7 columns,
each its own target table) in a throwaway Postgres database, then measures, in this process:

* **cycle via dag.test**: the real ``source_registry_runner`` DAG, one mapped task instance per
  source, cold (tables created, every row inserted) and warm (every row read, compared, unchanged);
* **runner loop**: ``run_source`` for every source in a plain loop, no Airflow: the runner's own cost
  (and the phase split it records: connection set-up, registry bookkeeping, target check,
  read/parse, map, write);
* **bare data work** (baseline): parse + map + COPY into a fresh table + one INSERT ... ON CONFLICT,
  for ``--sample`` sources, with no bookkeeping at all;
* **task start-up** in a real executor: a forked child parsing the DAG file (what LocalExecutor and
  Celery workers do per task instance in Airflow 3), and a fresh interpreter doing the same.

The real-executor cycle is an estimate from those measurements; it is labelled as one. The target
(500 sources in under 5 minutes via dag.test) is applied per source: 0.6 s a source. The default of 100
sources keeps ``make bench`` to two or three minutes here; ``--sources 500`` is the full-size run (about
7 minutes on a 2-core machine). The cycles, the runner loop and the task start-up are ``BENCH-RESULT``
rows (bench/benchlib.py); the registry database has a unique name and is dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]  # the package; devtools/ (emulator, demo data)
os.environ["AIRFLOW_HOME"] = str(REPO / ".airflow" / "bench")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"

from benchlib import Scratch, emit  # noqa: E402  (bench/ is this script's own folder)

DAG_FILE = REPO / "dags" / "source_registry_runner.py"
MAPPING = {"key_columns": ["id"], "cursor_field": "recorded_at", "sync_strategy": "full", "columns": [
    {"column": "id", "source": "id", "cast": "int"}, {"column": "machine", "source": "machine"},
    {"column": "line", "source": "line"}, {"column": "recorded_at", "source": "recorded_at", "cast": "timestamp"},
    {"column": "temperature", "source": "temperature", "cast": "decimal"},
    {"column": "vibration", "source": "vibration", "cast": "decimal"},
    {"column": "output_qty", "source": "output_qty", "cast": "int"}]}


def say(text: str = "") -> None:
    print(text, flush=True)


@contextlib.contextmanager
def quiet(log_path: Path):
    """Task logs of hundreds of task instances go to a file, not the table."""
    sys.stdout.flush(), sys.stderr.flush()
    with log_path.open("ab") as sink:
        saved = os.dup(1), os.dup(2)
        os.dup2(sink.fileno(), 1), os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])


def write_sources(directory: Path, sources: int, records: int) -> None:
    now = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)
    stamps = [(now - dt.timedelta(minutes=j)).isoformat() for j in range(records)]
    for i in range(sources):
        rng = random.Random(i)
        rows = [{"id": j, "machine": f"MC-{j % 12:02d}", "line": "LINE-A", "recorded_at": stamps[j],
                 "temperature": round(rng.uniform(20, 90), 2), "vibration": round(rng.uniform(0, 12), 3),
                 "output_qty": rng.randrange(0, 600)} for j in range(records)]
        (directory / f"source_{i:04d}.json").write_text(json.dumps(rows))


def register_all(directory: Path, sources: int) -> None:
    from datasync.db import connected
    from devtools.demo.registry import register

    with connected("registry_db") as db:
        for i in range(sources):
            register(db, f"bench_{i:04d}", f"Bench source {i:04d}", "json",
                     [{"name": "file", "config": {"file_path": str(directory / f"source_{i:04d}.json")}}],
                     {"target_table": f"bench_target_{i:04d}", **MAPPING}, priority=1 + i % 3)
        db.commit()


def make_due(due: bool = True) -> None:
    from datasync.db import connected

    with connected("registry_db") as db:
        db.execute("UPDATE data_source_registry SET next_sync = " + ("NULL" if due else "now() + interval '1 day'")).close()
        db.commit()


def dag_cycle(log_path: Path, due: bool = True) -> tuple[float, dict[str, int]]:
    from airflow.dag_processing.dagbag import DagBag

    from datasync.registry import runner

    with quiet(log_path):
        dag = DagBag(dag_folder=str(DAG_FILE)).get_dag("source_registry_runner")
    for task in dag.tasks:
        task.retries = 0  # dag.test would sleep through retry delays
    make_due(due)
    runner.STATS.clear()
    started = time.perf_counter()
    with quiet(log_path):
        dag_run = dag.test()
    took = time.perf_counter() - started
    states: dict[str, int] = {}
    for ti in dag_run.get_task_instances():
        if ti.task_id == "sync_source":
            states[ti.state] = states.get(ti.state, 0) + 1
    return took, states


def loop_cycle(sources: int, log_path: Path) -> tuple[float, dict[str, float]]:
    from datasync.registry import runner

    make_due()
    runner.STATS.clear()
    started = time.perf_counter()
    with quiet(log_path):
        for i in range(sources):
            runner.run_source(f"bench_{i:04d}", run_id="bench-loop")
    return time.perf_counter() - started, dict(runner.STATS)


def bare_data_work(directory: Path, sample: int) -> dict[str, float]:
    """Parse + map + COPY + one merge per source, nothing else: the work no runner can avoid."""
    from datasync.db import connected
    from datasync.registry.connectors import open_source
    from datasync.registry.mapping import compile_mapping, target_table_ddl
    from datasync.registry.policy import RegistryPolicy

    policy = RegistryPolicy.load()  # the bench's own, set in main()

    mapper = compile_mapping({k: v for k, v in MAPPING.items() if k != "sync_strategy"}, target_table="bare_target")
    times = {"parse": 0.0, "map": 0.0, "write": 0.0}
    cols = ", ".join(f'"{c}"' for c in mapper.columns)
    with connected("registry_db") as db:
        db.execute(target_table_ddl(mapper)).close()
        db.commit()
        for i in range(sample):
            t0 = time.perf_counter()
            records = [r for batch in open_source("json", {"file_path": str(directory / f"source_{i:04d}.json")},
                                                  policy=policy, batch_size=5000) for r in batch]
            t1 = time.perf_counter()
            rows = [tuple(r.values()) for r in mapper.map_batch(records).rows]
            t2 = time.perf_counter()
            cur = db.cursor()
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS bare_stage AS SELECT {cols} FROM bare_target WITH NO DATA")
            cur.execute("TRUNCATE bare_stage")
            with cur.copy(f"COPY bare_stage ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in mapper.columns if c != "id")
            cur.execute(f"INSERT INTO bare_target ({cols}) SELECT {cols} FROM bare_stage ON CONFLICT (id) DO UPDATE SET {sets}")
            db.commit()
            times["parse"] += t1 - t0
            times["map"] += t2 - t1
            times["write"] += time.perf_counter() - t2
    return {k: v / sample for k, v in times.items()}


def task_startup(samples: int = 8) -> tuple[float, float]:
    """(forked child parsing the DAG file, fresh interpreter doing the same), seconds each."""
    from airflow.dag_processing.dagbag import DagBag

    DagBag(dag_folder=str(DAG_FILE))  # what a worker parent has imported already (output: fd-level quiet)
    forks = []
    for _ in range(samples):
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            try:
                DagBag(dag_folder=str(DAG_FILE))
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        forks.append(time.perf_counter() - started)
    code = ("from airflow.dag_processing.dagbag import DagBag; import sys; "
            f"b = DagBag(dag_folder={str(DAG_FILE)!r}); sys.exit(0 if b.dags else 1)")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=dict(os.environ))
    return statistics.median(forks), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=100)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--sample", type=int, default=20, help="sources measured for the bare baseline")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()
    n, r = args.sources, args.records

    home = Path(os.environ["AIRFLOW_HOME"])
    if not (home / "airflow.db").exists():
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    log_path = home / "bench_registry.log"
    log_path.write_text("")
    directory = Path(tempfile.mkdtemp(prefix="bench_registry_"))
    # the registry policy: registry sources may read the generated files and nothing else
    os.environ["AIRFLOW_VAR_DATASYNC_REGISTRY_POLICY"] = json.dumps({"file_roots": [str(directory)]})
    with Scratch() as scratch:  # drops the registry database on the way out, SIGTERM included
        try:
            name = scratch.pg("bench_registry")
            scratch.bind(name, "registry_db")
            if args.keep:
                scratch.keep(name)
            from datasync.migrate import migrate

            with quiet(log_path):
                migrate(["registry"])
            started = time.perf_counter()
            write_sources(directory, n, r)
            register_all(directory, n)
            say(f"registry benchmark: {n} JSON sources x {r} records ({n * r:,} rows), {os.cpu_count()} CPUs; "
                f"set-up {time.perf_counter() - started:.1f}s; task logs in {log_path.relative_to(REPO)}")

            warmup, _ = dag_cycle(log_path, due=False)  # the process's first run pays DAG sync and imports
            cold, cold_states = dag_cycle(log_path)
            warm, warm_states = dag_cycle(log_path)
            empty, _ = dag_cycle(log_path, due=False)  # nothing due: what a dag.test run costs by itself
            loop, stats = loop_cycle(n, log_path)
            bare = bare_data_work(directory, min(args.sample, n))
            with quiet(log_path):
                fork_parse, cold_start = task_startup()
        finally:
            from datasync.registry import runner

            runner.close_cached()
            shutil.rmtree(directory, ignore_errors=True)

    ms = lambda seconds: seconds / n * 1000  # noqa: E731  (per source, milliseconds)
    bare_total = sum(bare.values())
    runner_per = loop / n
    # what one mapped task instance costs in dag.test beyond the runner and the run's fixed cost
    airflow_per = (warm - empty - loop) / n
    say()
    say(f"{'measure':64} {'total s':>8} {'per source ms':>14}")
    say("-" * 88)
    rows = [
        ("first dag.test run in the process, nothing due (warm-up)", warmup),
        ("dag.test run with nothing due (fixed cost of a run)", empty),
        ("cycle via dag.test, cold (create tables, insert all rows)", cold),
        ("cycle via dag.test, warm (read all, compare, unchanged)", warm),
        ("runner loop, warm, no Airflow (run_source x N)", loop),
    ]
    for label, seconds in rows:
        say(f"{label:64} {seconds:8.1f} {ms(seconds):14.1f}")
    say(f"{'  of which, per phase (runner STATS):':64}")
    for phase, label in [("connect", "connection set-up (registry_db, reused per process)"),
                         ("registry", "registry: lock, load, history, registry update"),
                         ("target", "target table check (create if missing, drift)"),
                         ("read", "read + parse the JSON file"), ("map", "map records (casts)"),
                         ("write", "write: engine (lock, sync_log, COPY, merge, deletes)"),
                         ("purge", "retention purge")]:
        say(f"    {label:60} {stats.get(phase, 0.0):8.1f} {ms(stats.get(phase, 0.0)):14.1f}")
    say(f"{'bare data work baseline (parse + map + COPY + merge)':64} {bare_total * n:8.1f} {bare_total * 1000:14.1f}")
    say(f"    {'parse / map / write':60} {'':8} {bare['parse'] * 1000:4.1f} / {bare['map'] * 1000:4.1f} / "
        f"{bare['write'] * 1000:4.1f}")
    say("-" * 88)
    say(f"{'runner overhead beyond the data work (loop - bare)':64} {(runner_per - bare_total) * n:8.1f} "
        f"{(runner_per - bare_total) * 1000:14.1f}")
    say(f"{'Airflow task instance in dag.test (warm - fixed - loop)':64} {airflow_per * n:8.1f} {airflow_per * 1000:14.1f}")
    say(f"{'per-source overhead beyond the data work (warm - bare)':64} {warm - bare_total * n:8.1f} "
        f"{(warm / n - bare_total) * 1000:14.1f}")
    say(f"{'task start-up, real executor: fork + parse the DAG file':64} {'':8} {fork_parse * 1000:14.1f}")
    say(f"{'task start-up, fresh interpreter + parse the DAG file':64} {'':8} {cold_start * 1000:14.1f}")
    cores = os.cpu_count() or 1
    estimate = n * (fork_parse + airflow_per + runner_per) / cores
    say("-" * 88)
    spawned = n * (cold_start + airflow_per + runner_per) / cores
    say(f"estimated real-executor cycle on {cores} cores, {cores} tasks at a time (scheduler latency and HTTP to the "
        "API server not included):")
    say(f"    forking workers (LocalExecutor, Celery): {estimate:.0f}s ({estimate / 60:.1f} min); "
        f"a fresh interpreter per task (e.g. Kubernetes pods): {spawned:.0f}s ({spawned / 60:.1f} min)")
    say(f"task states: cold {cold_states}, warm {warm_states}")
    # the target: 500 sources in under 300 s via dag.test, i.e. 0.6 s a source (scaled for other sizes)
    limit = 0.6 * n
    verdict = "within" if warm <= limit and cold <= limit else "OVER"
    say(f"target: one cycle of {n} sources in under {limit:g}s via dag.test: {verdict} "
        f"(cold {cold:.0f}s, warm {warm:.0f}s)")
    say()
    size = f"{n} sources x {r:,} records"
    emit(f"registry: dag.test cycle, cold ({size})", cold, limit_seconds=limit, rows=n * r,
         note=f"task states {cold_states}")
    emit(f"registry: dag.test cycle, warm ({size})", warm, baseline="bare data work", baseline_seconds=bare_total * n,
         limit_seconds=limit, rows=n * r, note=f"task states {warm_states}; limit 0.6 s a source (500 in 300 s)")
    emit(f"registry: runner loop, no Airflow ({size})", loop, baseline="bare data work",
         baseline_seconds=bare_total * n, rows=n * r,
         note=f"bare data work measured on {min(args.sample, n)} sources, scaled to {n}")
    emit("registry: task start-up, forked worker parses the DAG file", fork_parse,
         baseline="fresh interpreter", baseline_seconds=cold_start)
    return 0 if cold_states.get("success") == n and warm_states.get("success") == n else 1


if __name__ == "__main__":
    sys.exit(main())
