"""`make bench`: every benchmark, one after the other, and ONE table of their results at the end.

    .venv/bin/python bench/run.py [--rows 1000000] [--only engine,registry,...] [--repeat K] [--json PATH]
    make bench BENCH_ARGS="--rows 100000 --only engine"

Each benchmark runs as its own process; its output passes through, and the ``BENCH-RESULT`` lines it
prints (bench/benchlib.py ``emit``) become the table's rows: time, baseline, ratio against the
baseline, target, met/missed, peak RSS. With ``--repeat K`` everything runs K times and the table
shows the median per case with the min-max of its times. A benchmark that fails makes the exit code
1 (after the table); a missed target does not, it is in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib import RESULT_TAG, judge, seconds_text  # noqa: E402

# name -> (script, arguments); ``{rows}`` is replaced by --rows. Ordered as they run.
BENCHES: dict[str, tuple[str, list[str]]] = {
    "engine": ("bench_engine.py", ["--rows", "{rows}"]),
    "registry": ("bench_registry.py", []),
    "tekmetric": ("bench_tekmetric.py", ["--quick"]),
    "registry_cluster": ("bench_registry_cluster.py", ["--concurrency", "8", "--floor"]),
    "realtime": ("bench_realtime.py", []),
    # not throughput benchmarks: only with --only
    "monitor": ("bench_monitor.py", []),
    "http_policy": ("bench_http_policy.py", []),
}
DEFAULT = ["engine", "registry", "tekmetric", "registry_cluster", "realtime"]
COLUMNS = ["case", "time (s)", "baseline", "baseline time (s)", "ratio", "target", "met/missed", "peak RSS (MiB)"]


def parse_results(lines, bench: str = "", repeat: int = 0) -> list[dict]:
    """The ``BENCH-RESULT`` lines among ``lines``, each tagged with its benchmark and repetition."""
    found = []
    for line in lines:
        if line.startswith(RESULT_TAG + " "):
            found.append({**json.loads(line[len(RESULT_TAG) + 1:]), "bench": bench, "repeat": repeat})
    return found


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(results: list[dict]) -> list[dict]:
    """One row per case (in first-seen order): medians over repetitions, min-max of the times, met judged
    on the medians."""
    cases: dict[str, list[dict]] = {}
    for r in results:
        cases.setdefault(r["case"], []).append(r)
    rows = []
    for case, runs in cases.items():
        last = runs[-1]
        seconds = statistics.median(r["seconds"] for r in runs)
        ratio = _median([r["ratio"] for r in runs])
        rows.append({"case": case, "bench": last.get("bench", ""), "runs": len(runs), "seconds": seconds,
                     "min": min(r["seconds"] for r in runs), "max": max(r["seconds"] for r in runs),
                     "baseline": last["baseline"], "baseline_seconds": _median([r["baseline_seconds"] for r in runs]),
                     "ratio": ratio, "target": last["target"], "limit_seconds": last["limit_seconds"],
                     "met": judge(seconds, ratio, last["target"], last["limit_seconds"]),
                     "rss_mb": _median([r["rss_mb"] for r in runs]),
                     "notes": [r["note"] for r in runs if r.get("note")]})
    return rows


def _num(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _target(row: dict) -> str:
    parts = []
    if row["target"] is not None:
        parts.append(f">= {row['target']:g}x")
    if row["limit_seconds"] is not None:
        parts.append(f"<= {row['limit_seconds']:g} s")
    return ", ".join(parts)


def render(results: list[dict], load: tuple[float, float, float] | None = None) -> str:
    """The table (text) of ``results``; ``load``: the load average to print under it."""
    rows = summarise(results)
    cells = []
    for row in rows:
        time_cell = seconds_text(row["seconds"])
        if row["runs"] > 1:
            time_cell += f" ({seconds_text(row['min'])}-{seconds_text(row['max'])})"
        baseline_cell = "" if row["baseline_seconds"] is None else seconds_text(row["baseline_seconds"])
        cells.append([row["case"], time_cell, row["baseline"] or "", baseline_cell,
                      "" if row["ratio"] is None else f"{row['ratio']:.2f}x", _target(row),
                      {True: "met", False: "MISSED", None: ""}[row["met"]], _num(row["rss_mb"], 0)])
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(COLUMNS)]
    left = {0, 2, 5, 6}  # text columns; the others are numbers

    def line(values):
        padded = (v.ljust(w) if i in left else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths)))
        return " | ".join(padded).rstrip()

    out = [line(COLUMNS), "-+-".join("-" * w for w in widths), *(line(c) for c in cells)]
    judged = [r for r in rows if r["met"] is not None]
    repeats = max((r["runs"] for r in rows), default=0)
    out.append("")
    out.append(f"{sum(r['met'] for r in judged)} of {len(judged)} targets met"
               + (f" (medians of {repeats} runs; time column: median (min-max))" if repeats > 1 else ""))
    notes = [(r["case"], n) for r in rows for n in dict.fromkeys(r["notes"])]
    if notes:
        out.append("notes:")
        out += [f"  {case}: {note}" for case, note in notes]
    if load is not None:
        out.append("load average (1, 5, 15 min): " + " ".join(f"{x:.2f}" for x in load))
    return "\n".join(out)


def run_script(script: str, argv: list[str], lines: list[str]) -> int:
    """Run one benchmark, passing its output through and collecting its stdout lines into ``lines``
    (kept when interrupted); its exit code."""
    proc = subprocess.Popen([sys.executable, str(HERE / script), *argv], stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line.rstrip("\n"))
        return proc.wait()
    except BaseException:
        # interrupted: let the benchmark clean up (it drops its databases on SIGTERM), then go on unwinding
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=180)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the engine benchmark")
    parser.add_argument("--only", default=",".join(DEFAULT),
                        help=f"comma-separated, of: {', '.join(BENCHES)} (default: {','.join(DEFAULT)})")
    parser.add_argument("--repeat", type=int, default=1, help="run everything K times; the table shows medians")
    parser.add_argument("--json", type=Path, help="save every raw result here")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown or not chosen or args.repeat < 1:
        parser.error(f"--only: unknown {unknown}; choose from {', '.join(BENCHES)}" if unknown or not chosen
                     else "--repeat must be at least 1")

    # on SIGTERM, unwind: stop the running benchmark (it drops its databases), print what finished
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return _run_all(args, chosen)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_all(args, chosen: list[str]) -> int:
    results: list[dict] = []
    failed: list[str] = []
    interrupted = False
    started = time.monotonic()
    try:
        for k in range(args.repeat):
            for name in chosen:
                script, extra = BENCHES[name]
                extra = [a.format(rows=args.rows) for a in extra]
                label = f"{name} (run {k + 1} of {args.repeat})" if args.repeat > 1 else name
                print(f"\n=== {' '.join(['bench/' + script, *extra])}  [{label}]", flush=True)
                lines: list[str] = []
                try:
                    code = run_script(script, extra, lines)
                finally:
                    results += parse_results(lines, name, k)
                if code != 0:
                    failed.append(f"{label}: bench/{script} exited {code}")
    except (KeyboardInterrupt, SystemExit):
        interrupted = True
    if args.json:
        options = {"rows": args.rows, "only": chosen, "repeat": args.repeat}
        args.json.write_text(json.dumps({"options": options, "results": results, "failed": failed,
                                         "load": os.getloadavg()}, indent=1))
    print(f"\n=== benchmark results ({time.monotonic() - started:.0f} s)", flush=True)
    print(render(results, os.getloadavg()))
    for failure in failed:
        print(f"FAILED: {failure}")
    if interrupted:
        print("interrupted: the table shows what had finished")
        return 130
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
