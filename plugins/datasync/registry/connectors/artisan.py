"""Commands (the seed's ``php artisan data:sync``) whose stdout is a JSON array, NDJSON or CSV.

The command is an argument list run WITHOUT a shell: a string is split with shlex, so ``;``,
``&&`` or ``$(...)`` reach the program as literal arguments and never start anything else.
It runs in its own process group, which is killed as a whole on timeout (a ``php`` that spawned
children leaves nothing behind). Output is spooled to a temporary file and parsed only after a
zero exit: a command that fails half-way contributes no rows at all.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from datasync.registry.connectors.base import (
    Batch, Record, SourceConfigError, SourceError, batched, check_keys, positive,
)
from datasync.registry.connectors.csvfile import csv_records
from datasync.registry.connectors.jsonfile import ndjson_records, parse_json, records_in
from datasync.registry.connectors.placeholders import Secrets

KIND = "artisan"
OPTIONAL = ("parameters", "working_directory", "timeout", "output_format", "records_path", "env",
            "delimiter", "encoding")
FORMATS = ("auto", "json", "ndjson", "csv")
# The worker's own environment holds Airflow secrets (AIRFLOW_CONN_*, keys): pass only these.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
TERM_GRACE_SECONDS = 2.0
POLL_SECONDS = 0.02
# Arguments are visible to every user of the worker (ps, /proc): secrets go through 'env' instead.
_SECRET_ARG = re.compile(r"^-{1,2}[\w-]*(pass(word|wd)?|secret|token|api[_-]?key)[\w-]*=.", re.I)
STDERR_TAIL_BYTES = 2000
STDERR_TAIL_LINES = 15


def validate(config: Mapping[str, Any]) -> None:
    check_keys(KIND, config, ["command"], OPTIONAL)
    command_argv(config)
    positive(KIND, "timeout", config.get("timeout"), 60)
    if config.get("output_format", "auto") not in FORMATS:
        raise SourceConfigError(f"{KIND} source: output_format must be one of {FORMATS}")
    if not isinstance(config.get("env", {}), Mapping):
        raise SourceConfigError(f"{KIND} source: 'env' must be an object of NAME: value")


def command_argv(config: Mapping[str, Any]) -> list[str]:
    command, parameters = config["command"], config.get("parameters") or []
    if isinstance(command, str):
        argv = shlex.split(command)  # quoting rules only: nothing here is ever given to a shell
    elif isinstance(command, list) and all(isinstance(a, (str, int, float)) for a in command):
        argv = [str(a) for a in command]
    else:
        raise SourceConfigError(f"{KIND} source: command must be a string or a list of arguments")
    if not isinstance(parameters, list) or not all(isinstance(a, (str, int, float)) for a in parameters):
        raise SourceConfigError(f"{KIND} source: parameters must be a list of arguments")
    argv += [str(a) for a in parameters]
    if not argv:
        raise SourceConfigError(f"{KIND} source: command is empty")
    for arg in argv:
        if _SECRET_ARG.match(arg):
            raise SourceConfigError(
                f"{KIND} source: argument {arg.split('=')[0]}=... carries a credential; arguments are visible to "
                "every user of the worker, so pass it in 'env' as {{ var.<name> }} or {{ conn.<id>.password }}"
            )
    return argv


def open_source(config: Mapping[str, Any], *, batch_size: int) -> Iterator[Batch]:
    validate(config)
    cwd = config.get("working_directory")
    if cwd and not Path(cwd).is_dir():
        raise SourceError(f"{KIND} source: working_directory {cwd} does not exist")
    secrets = Secrets()
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env.update({str(k): str(v) for k, v in secrets.resolve(config.get("env") or {}).items()})
    return batched(_records(command_argv(config), cwd, env, config, secrets), batch_size)


def _records(argv: list[str], cwd: str | None, env: dict[str, str], config: Mapping[str, Any],
             secrets: Secrets) -> Iterator[Record]:
    where = secrets.redact(f"{KIND} source {shlex.join(argv)[:200]}")
    timeout = float(config.get("timeout", 60))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True)  # own process group, killable as one
        except OSError as exc:  # not found, not executable
            raise SourceError(f"{where}: cannot start {argv[0]!r}: {exc.strerror}") from None
        try:
            timed_out = not _wait_exited(proc, timeout)
        finally:  # on timeout (or our task being killed) the command; otherwise stragglers it left
            _kill_group(proc)
        if timed_out:
            raise SourceError(
                f"{where}: timed out after {timeout:g}s; its process group was killed. stderr tail: {_tail(err, secrets)}"
            )
        if proc.returncode != 0:
            raise SourceError(f"{where}: exited with code {proc.returncode}. stderr tail: {_tail(err, secrets)}")
        out.seek(0)
        text = io.TextIOWrapper(out, encoding=config.get("encoding", "utf-8"), newline="")
        try:
            yield from _parse(text, config, where)
        except UnicodeDecodeError as exc:
            raise SourceError(f"{where}: output is not {config.get('encoding', 'utf-8')} text at byte {exc.start}") from None
        finally:
            text.detach()  # the with-block owns the file


def _parse(text: IO[str], config: Mapping[str, Any], where: str) -> Iterator[Record]:
    where = f"{where} (stdout)"
    fmt = config.get("output_format", "auto")
    if fmt == "auto":
        head = text.read(4096).lstrip()
        text.seek(0)
        if head.startswith("["):
            fmt = "json"
        elif head.startswith("{"):
            fmt = "json" if config.get("records_path") else "ndjson"
        else:
            fmt = "csv"
    if fmt == "json":
        yield from records_in(parse_json(text.read(), where), config.get("records_path"), where)
    elif fmt == "ndjson":
        yield from ndjson_records(text, where)
    else:
        yield from csv_records(text, where, {"delimiter": config.get("delimiter", ",")})


def _wait_exited(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait for the leader to exit WITHOUT reaping it: while it is a zombie its pid (= the group id)
    cannot be reused, so killing the group afterwards can never hit an unrelated process."""
    deadline = time.monotonic() + timeout
    while True:
        if _has_exited(proc):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def _has_exited(proc: subprocess.Popen) -> bool:
    if not hasattr(os, "waitid"):  # no WNOWAIT on this platform: reap, accepting the tiny reuse window
        return proc.poll() is not None
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _kill_group(proc: subprocess.Popen) -> None:
    """TERM the whole group, give the leader a grace period, KILL what is left, then reap."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        _wait_exited(proc, TERM_GRACE_SECONDS)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group is already empty
        pass
    proc.wait()


def _tail(err: IO[bytes], secrets: Secrets) -> str:
    err.seek(0, io.SEEK_END)
    start = max(0, err.tell() - STDERR_TAIL_BYTES)
    err.seek(start)
    lines = err.read().decode("utf-8", "replace").splitlines()
    if start:  # the first line is cut: drop it, or a cut-off secret would escape redaction
        lines = lines[1:]
    lines = [line for line in lines if line.strip()][-STDERR_TAIL_LINES:]
    return secrets.redact("\n".join(lines)) if lines else "(empty)"
