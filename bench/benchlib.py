"""What every benchmark under bench/ shares: throwaway databases, one result format, child processes.

* ``unique(prefix)``: a database-safe name no other run uses.
* ``Scratch``: creates databases on the local PostgreSQL / MariaDB, points ``AIRFLOW_CONN_<NAME>`` at
  them and drops every one on the way out (exception, SIGTERM and SIGINT included).
* ``emit(case, seconds, ...)``: one result; prints a human line and a ``BENCH-RESULT <json>`` line
  that ``bench/run.py`` collects into its table.
* ``in_child("module:function", ...)``: a call timed in a fresh interpreter, with that child's peak RSS.
* ``peak_rss_mb()``: this process's peak RSS.

Database drivers are imported when first needed, so a child started by ``in_child`` stays light.
"""

from __future__ import annotations

import collections
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PG = os.environ.get("DATASYNC_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
MY = dict(host="127.0.0.1", port=3306, user="root", password="")
RESULT_TAG = "BENCH-RESULT"


def unique(prefix: str) -> str:
    """``<prefix>_<pid>_<6 hex>``, lower case: valid unquoted in PostgreSQL and MariaDB, under 63 chars."""
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}".lower()


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def _my_admin(sql: str) -> None:
    import MySQLdb

    conn = MySQLdb.connect(**MY)
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()


def pg_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def my_exists(name: str) -> bool:
    import MySQLdb

    conn = MySQLdb.connect(**MY)
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,))
        return cur.fetchone() is not None
    finally:
        conn.close()


class Scratch:
    """Throwaway databases for one benchmark run::

        with Scratch() as scratch:
            src = scratch.my("bench_src")      # AIRFLOW_CONN_<SRC.upper()> points at it
            scratch.bind(scratch.pg("bench_registry"), "registry_db")

    Everything created is dropped in ``__exit__``. While the block runs, SIGTERM raises SystemExit and
    SIGINT KeyboardInterrupt, so a killed run unwinds through ``__exit__`` too (SIGKILL cannot be caught).
    """

    def __init__(self) -> None:
        self.made: list[tuple[str, str]] = []  # (kind, name), in creation order
        self._saved: dict[int, Any] = {}
        self._dropping = False

    # ---- databases
    def pg(self, prefix: str) -> str:
        name = unique(prefix)
        self.made.append(("postgres", name))  # before CREATE: a signal mid-way must still drop it
        _pg_admin(f'CREATE DATABASE "{name}"')
        os.environ[f"AIRFLOW_CONN_{name.upper()}"] = self.uri(name)
        return name

    def my(self, prefix: str, *, collation: str | None = None) -> str:
        """``collation``: e.g. ``utf8mb4_bin`` where a target needs TiDB's binary comparison."""
        name = unique(prefix)
        self.made.append(("mysql", name))
        _my_admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4" + (f" COLLATE {collation}" if collation else ""))
        os.environ[f"AIRFLOW_CONN_{name.upper()}"] = self.uri(name)
        return name

    def uri(self, name: str) -> str:
        kind = dict((n, k) for k, n in self.made)[name]
        if kind == "postgres":
            return f"{PG}/{name}"
        return f"mysql://{MY['user']}@{MY['host']}:{MY['port']}/{name}"

    def bind(self, name: str, conn_id: str) -> str:
        """Point another Airflow connection id (``registry_db``, ...) at database ``name``; returns the URI."""
        uri = self.uri(name)
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = uri
        return uri

    def keep(self, name: str) -> None:
        """Leave database ``name`` behind (to look at it after the run); the caller drops it."""
        self.made = [(k, n) for k, n in self.made if n != name]

    def drop_all(self) -> None:
        while self.made:
            kind, name = self.made.pop()
            try:
                if kind == "postgres":
                    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                else:
                    _my_admin(f"DROP DATABASE IF EXISTS `{name}`")
            except Exception as exc:  # keep dropping the others; say which one is left
                print(f"[bench] could not drop {kind} database {name}: {exc}", file=sys.stderr, flush=True)

    # ---- context manager and signals
    def _on_signal(self, signum, _frame) -> None:
        if self._dropping:
            return  # a second signal must not cut the clean-up short
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    def __enter__(self) -> Scratch:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._saved[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        self._dropping = True
        try:
            self.drop_all()
        finally:
            for sig, handler in self._saved.items():
                signal.signal(sig, handler)
            self._saved.clear()
            self._dropping = False


# ---- results ----------------------------------------------------------------------------------------------
def seconds_text(seconds: float) -> str:
    """Milliseconds stay readable: 12.345, 0.123, 0.000471."""
    return f"{seconds:.3f}" if seconds >= 0.1 else f"{seconds:.3g}"


def judge(seconds: float, ratio: float | None, target: float | None, limit_seconds: float | None) -> bool | None:
    """True/False against the target (ratio >= target) and/or the limit (seconds <= limit); None without either."""
    if target is None and limit_seconds is None:
        return None
    met = True
    if target is not None:
        met = ratio is not None and ratio >= target
    if limit_seconds is not None:
        met = met and seconds <= limit_seconds
    return met


def emit(case: str, seconds: float, *, baseline: str | None = None, baseline_seconds: float | None = None,
         target: float | None = None, limit_seconds: float | None = None, rss_mb: float | None = None,
         rows: int | None = None, note: str = "") -> dict:
    """One result. ``ratio`` = baseline_seconds / seconds: the speed relative to the baseline, higher is better."""
    if target is not None and baseline_seconds is None:
        raise ValueError(f"{case}: a ratio target needs a baseline time")
    ratio = baseline_seconds / seconds if baseline_seconds is not None and seconds > 0 else None
    result = {"case": case, "seconds": seconds, "baseline": baseline, "baseline_seconds": baseline_seconds,
              "ratio": ratio, "target": target, "limit_seconds": limit_seconds,
              "met": judge(seconds, ratio, target, limit_seconds), "rss_mb": rss_mb, "rows": rows, "note": note}
    parts = [f"{case}: {seconds_text(seconds)} s"]
    if rows:
        parts.append(f"{rows:,} rows ({rows / seconds:,.0f}/s)" if seconds > 0 else f"{rows:,} rows")
    if baseline_seconds is not None:
        ratio_text = "n/a" if ratio is None else f"{ratio:.2f}x"
        parts.append(f"baseline {baseline or '?'} {seconds_text(baseline_seconds)} s, ratio {ratio_text}")
    if target is not None:
        parts.append(f"target >= {target:g}x")
    if limit_seconds is not None:
        parts.append(f"limit {limit_seconds:g} s")
    if result["met"] is not None:
        parts.append("met" if result["met"] else "MISSED")
    if rss_mb is not None:
        parts.append(f"peak RSS {rss_mb:.0f} MiB")
    if note:
        parts.append(note)
    print("  ".join(parts), flush=True)
    print(f"{RESULT_TAG} {json.dumps(result)}", flush=True)
    return result


# ---- processes --------------------------------------------------------------------------------------------
def peak_rss_mb() -> float:
    """Peak RSS of this process so far, MiB. Linux: the memory map's own high-water mark (VmHWM);
    ru_maxrss would carry over the parent's RSS through fork and exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def in_child(target: str, *args, **kwargs) -> tuple[Any, float, float]:
    """Call ``"module:function"`` in a fresh interpreter (not a fork): ``(result, seconds, peak_rss_mb)``.

    Arguments and result travel as JSON; only the call is timed. The child inherits the environment
    (AIRFLOW_CONN_* included); its stdout and stderr pass through. If it fails, RuntimeError carries
    the last lines of its stderr.
    """
    with tempfile.TemporaryDirectory(prefix="benchlib_") as tmp:
        out = Path(tmp) / "result.json"
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(out)],
                                stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        tail: collections.deque[str] = collections.deque(maxlen=20)

        def relay() -> None:
            for line in proc.stderr:
                sys.stderr.write(line)
                tail.append(line)
            sys.stderr.flush()

        relayer = threading.Thread(target=relay, daemon=True)
        relayer.start()
        try:
            proc.stdin.write(json.dumps({"target": target, "args": args, "kwargs": kwargs}))
            proc.stdin.close()
            code = proc.wait()
        except BaseException:
            proc.terminate()  # interrupted: the child must not outlive us
            proc.wait()
            raise
        relayer.join()
        if code != 0:
            raise RuntimeError(f"{target} failed in its child process (exit {code}):\n" + "".join(tail).rstrip())
        answer = json.loads(out.read_text())
    return answer["result"], answer["seconds"], answer["rss_mb"]


def _child(result_path: str) -> None:
    sys.path[:0] = [str(BENCH), str(REPO / "plugins"), str(REPO)]
    request = json.loads(sys.stdin.read())
    module, _, function = request["target"].partition(":")
    import importlib

    fn = getattr(importlib.import_module(module), function)
    started = time.perf_counter()
    result = fn(*request["args"], **request["kwargs"])
    seconds = time.perf_counter() - started
    Path(result_path).write_text(json.dumps({"result": result, "seconds": seconds, "rss_mb": peak_rss_mb()}))


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    _child(sys.argv[2])
