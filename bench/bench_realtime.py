"""Real-time lifecycle_sync benchmark under the real scheduler: commit in lifecycle_db -> row in pmo_db.

    .venv/bin/python bench/bench_realtime.py [--changes 100] [--spread 120] [--burst-rows 50000] [--burst-seconds 60]

Starts the test cluster (tests/cluster/cluster.py: CeleryExecutor, scheduler, dag-processor,
triggerer, two workers, all on 127.0.0.1) with event-driven scheduling on, enables the change
notifications on lifecycle_db and unpauses lifecycle_sync. Then:

* **latency**: ``--changes`` product updates, one commit each, evenly over ``--spread`` seconds;
  each one's time from commit until pmo_db shows it (polled every 50 ms) -> p50, p95, max;
* **burst**: ``--burst-rows`` new products inserted over ``--burst-seconds`` (a commit every
  0.5 s) -> rows lost (must be 0), lifecycle_sync runs it took, and seconds from the burst's last
  commit until pmo_db equals lifecycle_db.

Prints the load average with the figures: the machine is shared. Its ``BENCH-RESULT`` rows
(bench/benchlib.py) carry the targets: p95 commit -> pmo_db at most 10 s; the burst in pmo_db within
30 s of its last commit; p50 as a plain row. The cluster's databases have unique names and are
dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for folder in ("tests", "tests/cluster", "plugins"):
    sys.path.insert(0, str(REPO / folder))

import harness  # noqa: E402  (sets AIRFLOW_HOME & co. before Airflow is imported)
import realtime_probe as probe  # noqa: E402
from benchlib import Scratch, emit  # noqa: E402  (bench/ is this script's own folder)
from cluster import start_cluster  # noqa: E402


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


def latency(cluster, changes: int, spread: float) -> list[float]:
    """Commit ``changes`` updates evenly over ``spread`` seconds; seconds from each commit to pmo_db."""
    pending: dict[int, tuple[str, float]] = {}
    landed: dict[int, float] = {}
    lock, done = threading.Lock(), threading.Event()

    def watch():
        with cluster.db["pmo_db"].connect() as conn:
            while not done.is_set() or pending:
                with lock:
                    wanted = dict(pending)
                if wanted:
                    rows = conn.execute("SELECT id, nama_produk FROM tbl_produk_lifecycle WHERE id = ANY(%s)",
                                        (list(wanted),)).fetchall()
                    now = time.monotonic()
                    with lock:
                        for pid, name in rows:
                            if pid in pending and pending[pid][0] == name:
                                landed[pid] = now - pending.pop(pid)[1]
                time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with cluster.db["lifecycle_db"].connect() as conn:
        started = time.monotonic()
        for i in range(changes):
            time.sleep(max(0.0, started + i * spread / changes - time.monotonic()))
            pid, name = i + 1, f"bench-{i}-{time.time_ns()}"
            conn.execute("UPDATE tbl_produk SET nama_produk = %s WHERE id = %s", (name, pid))
            with lock:
                pending[pid] = (name, time.monotonic())
    done.set()
    watcher.join(300)
    if pending:
        raise SystemExit(f"{len(pending)} changes never landed: {sorted(pending)[:10]}")
    return [landed[i + 1] for i in range(changes)]


def burst(cluster, rows: int, seconds: float) -> dict[str, float]:
    runs_before = len(probe.runs(cluster, None))
    commits = max(1, int(seconds / 0.5))
    per_commit = -(-rows // commits)
    with cluster.db["lifecycle_db"].connect() as conn:
        started = time.monotonic()
        for c in range(commits):
            time.sleep(max(0.0, started + c * 0.5 - time.monotonic()))
            first = 100_001 + c * per_commit
            last = min(100_000 + rows, first + per_commit - 1)
            conn.execute("INSERT INTO tbl_produk (id, nama_produk, id_kategori, id_segmen, id_stage, harga) "
                         "SELECT g, 'burst ' || g, 1, 1 + g %% 5, 1 + g %% 4, 1000000 FROM generate_series(%s, %s) g",
                         (first, last))
        ended = time.monotonic()
    target = cluster.db["pmo_db"]
    while True:
        (count,) = target.query("SELECT count(*) FROM tbl_produk_lifecycle WHERE id > 100000")[0]
        if count >= rows:
            break
        if time.monotonic() - ended > 600:
            raise SystemExit(f"burst: {count} of {rows} rows after 600 s")
        time.sleep(0.1)
    equal_after = time.monotonic() - ended
    probe.settled(cluster, timeout=600, quiet=5)
    return {"rows": rows, "burst_seconds": ended - started, "equal_after_end_s": equal_after,
            "runs": len(probe.runs(cluster, None)) - runs_before, "unequal_rows": probe.unequal_rows(cluster)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=100, help="0: burst only")
    parser.add_argument("--spread", type=float, default=120)
    parser.add_argument("--burst-rows", type=int, default=50_000, help="0: latency only")
    parser.add_argument("--burst-seconds", type=float, default=60)
    args = parser.parse_args()
    with Scratch() as scratch:  # the cluster's databases: unique names, dropped at the end (SIGTERM included)
        return run(args, scratch)


def run(args, scratch: Scratch) -> int:
    def factory(kind, label):
        name = scratch.pg(f"bench_rt_{label}") if kind == "postgres" else scratch.my(f"bench_rt_{label}",
                                                                                      collation="utf8mb4_bin")
        return harness.TestDatabase(kind, name)

    print(f"load average at start: {load()}", flush=True)
    generator = start_cluster(factory)
    try:
        cluster = next(generator)
        print(f"cluster ready in {cluster.ready_seconds:.0f}s", flush=True)
        with probe.event_scheduling(cluster):
            probe.prepare_lifecycle(cluster)
            if args.changes:
                print(f"lifecycle_sync listening; latency: {args.changes} changes over {args.spread:.0f}s (load {load()})", flush=True)
                seconds = latency(cluster, args.changes, args.spread)
                probe.settled(cluster)
                runs = len(probe.runs(cluster))
                print(f"latency commit -> pmo_db: p50 {statistics.median(seconds):.1f}s  p95 {percentile(seconds, 95):.1f}s  "
                      f"max {max(seconds):.1f}s  min {min(seconds):.1f}s  ({runs} asset-triggered "
                      f"runs so far; load {load()})", flush=True)
                what = f"{args.changes} changes over {args.spread:g} s"
                note = f"max {max(seconds):.1f} s, {runs} asset-triggered runs so far, 0 lost; load {load()}"
                emit(f"realtime: commit -> pmo_db p95 ({what})", percentile(seconds, 95), limit_seconds=10, note=note)
                emit(f"realtime: commit -> pmo_db p50 ({what})", statistics.median(seconds))
            if not args.burst_rows:
                return 0
            print(f"burst: {args.burst_rows} rows over {args.burst_seconds:.0f}s (load {load()})", flush=True)
            figures = burst(cluster, args.burst_rows, args.burst_seconds)
            print(f"burst: {figures['rows']} rows in {figures['burst_seconds']:.0f}s -> target equal "
                  f"{figures['equal_after_end_s']:.1f}s after the last commit, {figures['runs']} lifecycle_sync runs, "
                  f"{figures['unequal_rows']} products differing afterwards (load {load()})", flush=True)
            emit(f"realtime: burst of {args.burst_rows:,} rows over {args.burst_seconds:g} s, landed after its end",
                 figures["equal_after_end_s"], limit_seconds=30, rows=figures["rows"],
                 note=f"{figures['runs']} lifecycle_sync runs, {figures['unequal_rows']} products differing "
                      f"afterwards (lost: 0, the wait ends only when every row is there); load {load()}")
            if figures["unequal_rows"]:
                print(f"FAILED: {figures['unequal_rows']} products differ between lifecycle_db and pmo_db", file=sys.stderr)
                return 1
    finally:
        generator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
