"""The benchmark frame (bench/benchlib.py, bench/run.py): throwaway databases that are gone afterwards
(also after an exception or a SIGTERM), the ratio/target logic, calls timed in a fresh interpreter
with their peak RSS, and the one table `make bench` prints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]  # not from harness: in_child imports this module in a bare interpreter
sys.path.insert(0, str(REPO / "bench"))

import benchlib  # noqa: E402
import run as bench_run  # noqa: E402


def allocate(mb: int) -> int:
    """Run by in_child: touch ``mb`` MiB (a filled bytes object, so the pages are really resident)."""
    block = b"\x01" * (mb << 20)
    return len(block)


# ---- Scratch --------------------------------------------------------------------------------------------------
def test_unique_names_differ_and_are_database_safe():
    names = {benchlib.unique("Bench_X") for _ in range(50)}
    assert len(names) == 50
    assert all(n.startswith(f"bench_x_{os.getpid()}_") and n.isidentifier() and len(n) < 63 for n in names)


def test_scratch_creates_binds_and_drops_both_servers():
    with benchlib.Scratch() as scratch:
        pg, my = scratch.pg("bench_t"), scratch.my("bench_t")
        assert benchlib.pg_exists(pg) and benchlib.my_exists(my)
        assert os.environ[f"AIRFLOW_CONN_{pg.upper()}"].endswith(f"@127.0.0.1:5432/{pg}")
        assert os.environ[f"AIRFLOW_CONN_{my.upper()}"] == f"mysql://root@127.0.0.1:3306/{my}"
        scratch.bind(pg, "bench_t_alias")
        assert os.environ["AIRFLOW_CONN_BENCH_T_ALIAS"] == os.environ[f"AIRFLOW_CONN_{pg.upper()}"]
        # a connection left open must not keep the database alive (DROP ... WITH (FORCE))
        import psycopg

        held = psycopg.connect(os.environ[f"AIRFLOW_CONN_{pg.upper()}"])
    try:
        assert not benchlib.pg_exists(pg) and not benchlib.my_exists(my)
    finally:
        held.close()


def test_scratch_drops_when_the_body_raises():
    with pytest.raises(RuntimeError, match="boom"):
        with benchlib.Scratch() as scratch:
            pg, my = scratch.pg("bench_t"), scratch.my("bench_t")
            raise RuntimeError("boom")
    assert not benchlib.pg_exists(pg) and not benchlib.my_exists(my)


def test_scratch_drops_when_the_process_is_terminated():
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); import benchlib\n"
            "with benchlib.Scratch() as s:\n"
            "    print(s.pg('bench_term'), s.my('bench_term'), flush=True)\n"
            "    time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(REPO / "bench")], stdout=subprocess.PIPE, text=True)
    pg = my = None
    try:
        pg, my = child.stdout.readline().split()
        assert benchlib.pg_exists(pg) and benchlib.my_exists(my)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=20) == 128 + signal.SIGTERM  # SystemExit: the with-block unwound
        assert not benchlib.pg_exists(pg) and not benchlib.my_exists(my)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if pg:  # the test failed: still leave nothing behind
            benchlib._pg_admin(f'DROP DATABASE IF EXISTS "{pg}" WITH (FORCE)')
            benchlib._my_admin(f"DROP DATABASE IF EXISTS `{my}`")


# ---- emit -----------------------------------------------------------------------------------------------------
def _emitted(capsys) -> dict:
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("BENCH-RESULT ")
    return json.loads(lines[1].removeprefix("BENCH-RESULT "))


@pytest.mark.parametrize("seconds, baseline, target, limit, ratio, met", [
    (2.0, 1.0, 0.4, None, 0.5, True),     # half the baseline's speed, target 0.4x: met
    (2.0, 1.0, 0.8, None, 0.5, False),    # ... target 0.8x: missed
    (0.5, 1.0, None, None, 2.0, None),    # twice as fast, no target: not judged
    (30.0, None, None, 75, None, True),   # under the limit
    (80.0, None, None, 75, None, False),  # over it
    (80.0, 100.0, 1.0, 75, 1.25, False),  # both given: both must hold
])
def test_emit_ratio_and_met(capsys, seconds, baseline, target, limit, ratio, met):
    result = benchlib.emit("case", seconds, baseline="b" if baseline else None, baseline_seconds=baseline,
                           target=target, limit_seconds=limit, rows=10, note="n")
    assert _emitted(capsys) == result
    assert result["ratio"] == pytest.approx(ratio) if ratio else result["ratio"] is None
    assert result["met"] is met


def test_emit_refuses_a_ratio_target_without_a_baseline():
    with pytest.raises(ValueError):
        benchlib.emit("case", 1.0, target=0.5)


# ---- in_child -------------------------------------------------------------------------------------------------
def test_in_child_returns_the_result_and_the_peak_rss_of_a_fresh_interpreter(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    small, seconds, base_rss = benchlib.in_child("test_bench_harness:allocate", 1)
    big, big_seconds, big_rss = benchlib.in_child("test_bench_harness:allocate", mb=200)
    assert (small, big) == (1 << 20, 200 << 20)
    assert 0 < seconds < 5 and 0 < big_seconds < 30
    assert big_rss - base_rss > 150, (base_rss, big_rss)
    assert big_rss > 200 > base_rss  # the child's own figure, not this (pytest) process's


def test_in_child_failure_carries_the_childs_stderr():
    with pytest.raises(RuntimeError, match="JSONDecodeError"):
        benchlib.in_child("json:loads", "{not json")


# ---- run.py's table -------------------------------------------------------------------------------------------
def _line(case, seconds, **fields) -> str:
    result = {"case": case, "seconds": seconds, "baseline": None, "baseline_seconds": None, "ratio": None,
              "target": None, "limit_seconds": None, "met": None, "rss_mb": None, "rows": None, "note": "", **fields}
    return "BENCH-RESULT " + json.dumps(result)


CANNED = [
    ["=== some output", _line("engine: pg -> pg", 10.0, baseline="raw COPY", baseline_seconds=8.0, ratio=0.8,
                               target=0.7, rss_mb=120.0),
     _line("cluster: warm cycle", 70.0, limit_seconds=75, note="0.120 CPU-s per source"), "not a result"],
    [_line("engine: pg -> pg", 20.0, baseline="raw COPY", baseline_seconds=8.0, ratio=0.4, target=0.7, rss_mb=100.0),
     _line("cluster: warm cycle", 90.0, limit_seconds=75, note="0.130 CPU-s per source")],
    [_line("engine: pg -> pg", 12.0, baseline="raw COPY", baseline_seconds=9.0, ratio=0.75, target=0.7, rss_mb=140.0),
     _line("cluster: warm cycle", 74.0, limit_seconds=75, note="0.120 CPU-s per source")],
]


def test_the_table_of_one_run():
    results = bench_run.parse_results(CANNED[0], "engine", 0)
    assert [r["bench"] for r in results] == ["engine", "engine"]
    table = bench_run.render(results, (1.5, 1.0, 0.5))
    lines = table.splitlines()
    assert [c.strip() for c in lines[0].split("|")] == bench_run.COLUMNS
    engine = [c.strip() for c in lines[2].split("|")]
    assert engine == ["engine: pg -> pg", "10.000", "raw COPY", "8.000", "0.80x", ">= 0.7x", "met", "120"]
    cluster = [c.strip() for c in lines[3].split("|")]
    assert cluster == ["cluster: warm cycle", "70.000", "", "", "", "<= 75 s", "met", ""]
    assert "2 of 2 targets met" in table
    assert "cluster: warm cycle: 0.120 CPU-s per source" in table
    assert table.splitlines()[-1] == "load average (1, 5, 15 min): 1.50 1.00 0.50"


def test_the_table_of_repeated_runs_shows_medians_and_the_spread():
    results = [r for k, lines in enumerate(CANNED) for r in bench_run.parse_results(lines, "x", k)]
    rows = {r["case"]: r for r in bench_run.summarise(results)}
    engine, cluster = rows["engine: pg -> pg"], rows["cluster: warm cycle"]
    assert (engine["seconds"], engine["min"], engine["max"], engine["runs"]) == (12.0, 10.0, 20.0, 3)
    assert engine["ratio"] == 0.75 and engine["rss_mb"] == 120.0 and engine["baseline_seconds"] == 8.0
    assert engine["met"] is True  # judged on the medians: 0.75x >= 0.7x although one run missed
    assert cluster["seconds"] == 74.0 and cluster["met"] is True
    table = bench_run.render(results)
    assert "12.000 (10.000-20.000)" in table and "74.000 (70.000-90.000)" in table
    assert "2 of 2 targets met (medians of 3 runs" in table
    assert table.count("0.120 CPU-s per source") == 1  # the same note once


def test_the_count_includes_missed_targets_and_skips_unjudged_rows():
    lines = [_line("a", 1.0, limit_seconds=0.5), _line("b", 1.0, limit_seconds=2), _line("c", 0.000471)]
    table = bench_run.render(bench_run.parse_results(lines))
    assert "1 of 2 targets met" in table and "MISSED" in table
    assert " 0.000471 " in table  # sub-millisecond times keep their digits


def test_run_py_reports_a_failing_benchmark_with_exit_1(tmp_path, monkeypatch, capsys):
    """A script that emits one row and then fails, run twice: its rows are in the table, the exit code is 1."""
    (tmp_path / "fails.py").write_text(
        "import sys\nsys.path.insert(0, sys.argv[1])\nimport benchlib\n"
        "benchlib.emit('half done', 1.0, limit_seconds=2)\nsys.exit(3)\n")
    monkeypatch.setattr(bench_run, "HERE", tmp_path)
    monkeypatch.setitem(bench_run.BENCHES, "fails", ("fails.py", [str(REPO / "bench")]))
    out = tmp_path / "raw.json"
    assert bench_run.main(["--only", "fails", "--repeat", "2", "--json", str(out)]) == 1
    saved = json.loads(out.read_text())
    assert [(r["case"], r["repeat"]) for r in saved["results"]] == [("half done", 0), ("half done", 1)]
    assert len(saved["failed"]) == 2 and "exited 3" in saved["failed"][0]
    out = capsys.readouterr().out
    assert "half done | 1.000 (1.000-1.000)" in out and "1 of 1 targets met" in out and "FAILED: fails" in out
