"""Commands (the seed's ``php artisan data:sync``) whose stdout is a JSON array, NDJSON or CSV.

A registry row cannot say what to run. It names a command the platform team allowed in the
registry policy (``"command": "data_sync"``) and passes ``parameters``, each of which must match
one of that command's declared patterns as a whole; the program, its fixed arguments and its
working directory come from the policy, and ``env`` may only set the names the command declares.
The argument list runs WITHOUT a shell, so ``;``, ``&&`` or ``$(...)`` in a parameter (if a pattern
let them through at all) reach the program as literal text.

It runs in its own process group, which is killed as a whole on timeout (a ``php`` that spawned
children leaves nothing behind). Output is spooled to a temporary file (stopped past
``limits.command_output_bytes``) and parsed only after a zero exit: a command that fails
half-way contributes no rows at all.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from datasync.registry.connectors.base import (
    Batch, Record, SourceConfigError, SourceError, batched, check_keys, positive,
)
from datasync.registry.connectors.csvfile import csv_records
from datasync.registry.connectors.jsonfile import ndjson_records, parse_json, records_in
from datasync.registry.connectors.placeholders import Secrets

if TYPE_CHECKING:
    from datasync.registry.policy import Command, Limits, RegistryPolicy

KIND = "artisan"
OPTIONAL = ("parameters", "timeout", "output_format", "records_path", "env", "delimiter", "encoding")
FORMATS = ("auto", "json", "ndjson", "csv")
# A command name as the policy spells it: a word, never a path or a command line.
COMMAND_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
# The worker's own environment holds Airflow secrets (AIRFLOW_CONN_*, keys): pass only these.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
TERM_GRACE_SECONDS = 2.0
POLL_SECONDS = 0.02
# Arguments are visible to every user of the worker (ps, /proc): secrets go through 'env' instead.
_SECRET_ARG = re.compile(r"^-{1,2}[\w-]*(pass(word|wd)?|secret|token|api[_-]?key)[\w-]*=.", re.I)
STDERR_TAIL_BYTES = 2000
STDERR_TAIL_LINES = 15
MIGRATE = ("the platform team adds the program to the registry policy's \"artisan_commands\" (argv, "
           "working_directory, parameter patterns, env names) and the row names it: "
           "{\"command\": \"data_sync\", \"parameters\": [\"--source=machine1\"]}")


def validate(config: Mapping[str, Any]) -> None:
    """The row's shape only: the policy decides at run time whether the command and its
    parameters are allowed."""
    if isinstance(config, Mapping) and "working_directory" in config:
        raise SourceConfigError(f"{KIND} source: a registry row cannot choose the working directory; "
                                "it comes from the command's entry in the registry policy")
    check_keys(KIND, config, ["command"], OPTIONAL)
    command = config["command"]
    if not isinstance(command, str) or not COMMAND_NAME.fullmatch(command):
        raise SourceConfigError(
            f"{KIND} source: 'command' names a command the platform allows, not a program or command line "
            f"(got {str(command)[:80]!r}); to migrate, {MIGRATE}")
    parameters(config)
    positive(KIND, "timeout", config.get("timeout"), 60)
    if config.get("output_format", "auto") not in FORMATS:
        raise SourceConfigError(f"{KIND} source: output_format must be one of {FORMATS}")
    env = config.get("env", {})
    if not isinstance(env, Mapping) or not all(isinstance(k, str) and ENV_NAME.fullmatch(k) and isinstance(v, str)
                                               for k, v in env.items()):
        raise SourceConfigError(f"{KIND} source: 'env' must be an object of NAME: \"text\"")


def parameters(config: Mapping[str, Any]) -> list[str]:
    values = config.get("parameters") or []
    if not isinstance(values, list) or not all(isinstance(a, (str, int, float)) and not isinstance(a, bool)
                                               for a in values):
        raise SourceConfigError(f"{KIND} source: parameters must be a list of arguments")
    values = [str(a) for a in values]
    for arg in values:
        if "\0" in arg:
            raise SourceConfigError(f"{KIND} source: a parameter holds a NUL byte")
        if _SECRET_ARG.match(arg):
            raise SourceConfigError(
                f"{KIND} source: argument {arg.split('=')[0]}=... carries a credential; arguments are visible to "
                "every user of the worker, so pass it in 'env' as {{ var.<name> }} or {{ conn.<id>.password }}"
            )
    return values


def command_argv(command: Command, config: Mapping[str, Any]) -> list[str]:
    """The policy's argv prefix and the row's parameters, each matched against the command's patterns."""
    values = parameters(config)
    for value in values:
        command.check_parameter(value)
    return [*command.argv, *values]


def open_source(config: Mapping[str, Any], *, batch_size: int, policy: RegistryPolicy) -> Iterator[Batch]:
    from datasync.registry.policy import PolicyRefused

    validate(config)
    where = f"{KIND} source '{config['command']}'"
    try:
        command = policy.command(config["command"])
        argv = command_argv(command, config)
        for name in config.get("env") or {}:
            command.check_env(name)
    except PolicyRefused as exc:
        raise exc.at(where) from None
    cwd = command.working_directory
    if cwd and not Path(cwd).is_dir():
        raise SourceError(f"{where}: working_directory {cwd} (from the registry policy) does not exist")
    secrets = Secrets(policy)
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env.update(secrets.resolve(dict(config.get("env") or {})))
    return batched(_records(argv, cwd, env, config, secrets, where, policy.limits), batch_size)


def _records(argv: list[str], cwd: str | None, env: dict[str, str], config: Mapping[str, Any],
             secrets: Secrets, where: str, limits: Limits) -> Iterator[Record]:
    timeout = float(config.get("timeout", 60))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:

        def output_size() -> int:
            return max(os.fstat(out.fileno()).st_size, os.fstat(err.fileno()).st_size)

        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True)  # own process group, killable as one
        except OSError as exc:  # not found, not executable
            raise SourceError(f"{where}: cannot start {argv[0]!r}: {exc.strerror}") from None
        try:
            timed_out = not _wait_exited(proc, timeout, stop=lambda: output_size() > limits.command_output_bytes)
        finally:  # on timeout (or our task being killed) the command; otherwise stragglers it left
            _kill_group(proc)
        # checked while it runs, so a runaway command fills no disk; past the limit, its group was killed
        limits.check("command_output_bytes", output_size(), "its output (stdout or stderr)", where)
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


def _wait_exited(proc: subprocess.Popen, timeout: float, stop: Callable[[], bool] = lambda: False) -> bool:
    """Wait for the leader to exit WITHOUT reaping it: while it is a zombie its pid (= the group id)
    cannot be reused, so killing the group afterwards can never hit an unrelated process.
    False on timeout, or as soon as ``stop()`` says so."""
    deadline = time.monotonic() + timeout
    while True:
        if _has_exited(proc):
            return True
        if time.monotonic() >= deadline or stop():
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
