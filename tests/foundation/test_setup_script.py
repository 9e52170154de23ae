"""scripts/setup.sh: quick and quiet when everything is in place, one clear line when not."""

import os
import subprocess
import time

from harness import REPO


def _setup(**env):
    return subprocess.run(["bash", str(REPO / "scripts" / "setup.sh")], capture_output=True, text=True,
                          env={**os.environ, "AIRFLOW_HOME": str(REPO / ".airflow"), **env}, timeout=600)


def test_second_run_is_quick_and_reports_ready():
    _setup()  # whatever the first run had to do
    started = time.monotonic()
    done = _setup()
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("[setup] ready:")
    assert took < 15, f"a set-up with nothing to do took {took:.1f}s"


def test_a_missing_prerequisite_is_one_clear_line():
    failed = _setup(PYTHON="/nonexistent/python3.11")
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert lines == ["[setup] FAILED: no /nonexistent/python3.11 on PATH: install Python 3.11 (apt-get install python3) and rerun"]
