"""The artisan (command) connector with real subprocesses: small Python programs stand in for php."""

import json
import os
import time
from pathlib import Path

import pytest

from datasync.registry.connectors import SourceConfigError, SourceError, open_source
from policies import allow_command

ECHO_ARGV = "import json, sys\nprint(json.dumps([{'i': i, 'arg': a} for i, a in enumerate(sys.argv[1:])]))\n"


def read_all(argv, config=None, batch_size=1000, **allowed):
    """Run ``argv`` as the policy's command 'sync' with the row ``config``."""
    config = {"command": "sync", **(config or {})}
    policy = allow_command(argv, **allowed)
    return [r for batch in open_source("artisan", config, policy=policy, batch_size=batch_size) for r in batch]


def test_json_array_output_with_parameters_and_working_directory(script, tmp_path):
    argv = script("sync.py", "import json, os, sys\n"
                             "print(json.dumps([{'cwd': os.getcwd(), 'args': sys.argv[1:]}]))\n")
    config = {"parameters": ["--source=machine1", "--type=production"], "timeout": 10}
    rows = read_all([*argv, "data:sync"], config, working_directory=tmp_path,
                    parameters=("--source=[a-z0-9]+", "--type=(production|quality)"))
    assert rows == [{"cwd": str(tmp_path), "args": ["data:sync", "--source=machine1", "--type=production"]}]


def test_ndjson_and_csv_output(script):
    ndjson = script("nd.py", "for i in range(5):\n    print('{\"id\": %d}' % i)\n")
    batches = list(open_source("artisan", {"command": "nd"}, policy=allow_command(ndjson, name="nd"), batch_size=2))
    assert [[r["id"] for r in b] for b in batches] == [[0, 1], [2, 3], [4]]
    csv_cmd = script("csv.py", "print('machine;qty')\nprint('M1;10')\n")
    assert read_all(csv_cmd, {"output_format": "csv", "delimiter": ";"}) == [{"machine": "M1", "qty": "10"}]


@pytest.mark.parametrize("dangerous", ["; touch {marker}", "&& touch {marker}", "$(touch {marker})", "`touch {marker}`", "| touch {marker}"])
def test_shell_syntax_in_a_parameter_stays_literal(script, tmp_path, dangerous):
    # even a policy that lets any text through never hands it to a shell
    argv = script("echo.py", ECHO_ARGV)
    marker = tmp_path / "pwned"
    args = [r["arg"] for r in read_all([*argv, "data:sync"], {"parameters": [dangerous.format(marker=marker)]},
                                       parameters=(".+",))]
    assert args == ["data:sync", dangerous.format(marker=marker)]
    assert not marker.exists()  # nothing ran but the program itself


def test_timeout_kills_the_whole_process_group(script, tmp_path):
    pid_file = tmp_path / "child.pid"
    argv = script("slow.py", "import subprocess, sys, time\n"
                             f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                             f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
                             "print('[', flush=True)\n"
                             "time.sleep(60)\n")
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"timed out after 1s; its process group was killed"):
        read_all(argv, {"timeout": 1})
    assert time.monotonic() - started < 5
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 2  # signals are delivered asynchronously
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child), "the grandchild outlived the timeout"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie waiting for init to reap it is dead


def test_non_zero_exit_reports_the_stderr_tail_and_no_rows(script):
    argv = script("fail.py", "import sys\nprint('[{\"id\": 1}]')\n"
                             "sys.stderr.write('noise\\n' * 500 + 'SQLSTATE[HY000] connection refused\\n')\nsys.exit(3)\n")
    with pytest.raises(SourceError, match=r"(?s)exited with code 3\. stderr tail: .*SQLSTATE\[HY000\] connection refused") as err:
        read_all(argv)
    assert len(str(err.value)) < 2500  # a tail, not the whole log


def test_garbage_output_and_missing_program(script, tmp_path):
    argv = script("garbage.py", "print('[{\"id\": 1}, oops]')\n")
    with pytest.raises(SourceError, match=r"artisan source 'sync' \(stdout\): malformed JSON at line 1"):
        read_all(argv)
    with pytest.raises(SourceError, match=r"cannot start '/no/such/php'"):
        read_all(["/no/such/php", "artisan"])
    with pytest.raises(SourceError, match=r"working_directory .*missing \(from the registry policy\) does not exist"):
        read_all(argv, working_directory=tmp_path / "missing")


def test_environment_is_minimal_and_secrets_come_from_variables(script, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SECRET_DB", "postgresql://u:hunter22@db/x")
    monkeypatch.setenv("AIRFLOW_VAR_ARTISAN_TOKEN", "tok-123456")
    argv = script("env.py", "import json, os\nprint(json.dumps([dict(os.environ)]))\n")
    env = read_all(argv, {"env": {"SYNC_TOKEN": "{{ var.artisan_token }}"}}, env=("SYNC_TOKEN",),
                   placeholder_variables=["artisan_token"])[0]
    assert env["SYNC_TOKEN"] == "tok-123456"
    assert not any(k.startswith("AIRFLOW") for k in env)  # the worker's secrets stay with the worker
    assert "PATH" in env or "PATH" not in os.environ


def test_credentials_in_arguments_are_refused():
    with pytest.raises(SourceConfigError, match=r"argument --api-token=\.\.\. carries a credential"):
        # a placeholder too: arguments are visible to every user of the worker (a literal is refused
        # earlier, as a clear-text credential)
        open_source("artisan", {"command": "sync", "parameters": ["--api-token={{ var.artisan_token }}"]},
                    policy=allow_command(["/usr/bin/php"], parameters=(".+",)))


def test_secret_in_stderr_is_redacted(script, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_ARTISAN_TOKEN", "tok-123456")
    argv = script("leak.py", "import os, sys\nsys.stderr.write('auth failed for ' + os.environ['SYNC_TOKEN'])\nsys.exit(1)\n")
    with pytest.raises(SourceError) as err:
        read_all(argv, {"env": {"SYNC_TOKEN": "{{ var.artisan_token }}"}}, env=("SYNC_TOKEN",),
                   placeholder_variables=["artisan_token"])
    assert "auth failed for ***" in str(err.value) and "tok-123456" not in str(err.value)


def test_records_path_for_an_object_document(script):
    argv = script("obj.py", f"import json\nprint(json.dumps({json.dumps({'data': {'rows': [{'id': 1}]}})}))\n")
    assert read_all(argv, {"records_path": "data.rows"}) == [{"id": 1}]
