"""What every connector shares: its errors, config checks and re-batching."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from datasync.registry.policy import RegistryPolicy

Record = dict[str, Any]
Batch = list[Record]

DEFAULT_BATCH_SIZE = 1000
# Keys from the seed's example configs: accepted so existing configs load, but they change nothing.
IGNORED_KEYS = frozenset({"file_type", "auto_reload", "description"})


class SourceError(RuntimeError):
    """A source cannot be read: the message names the source and, where known, file and line."""


class SourceConfigError(SourceError, ValueError):
    """The connection config itself is wrong; nothing was read."""


class SourceNotConfigured(SourceError):
    """An optional integration (e.g. the Google connection) is not set up: callers may skip."""


def check_keys(kind: str, config: Mapping[str, Any], required: Iterable[str], optional: Iterable[str] = ()) -> None:
    """Refuse missing and unknown keys, so a typo ("delimeter") is not silently ignored."""
    if not isinstance(config, Mapping):
        raise SourceConfigError(f"{kind} source: connection config must be a JSON object, not {type(config).__name__}")
    required = list(required)
    missing = [k for k in required if config.get(k) in (None, "", [])]
    if missing:
        raise SourceConfigError(f"{kind} source: connection config lacks {missing}")
    known = set(required) | set(optional) | IGNORED_KEYS
    unknown = sorted(set(config) - known)
    if unknown:
        raise SourceConfigError(f"{kind} source: unknown connection config key(s) {unknown}; known: {sorted(known - IGNORED_KEYS)}")


def positive(kind: str, name: str, value: Any, default: float | int) -> Any:
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise SourceConfigError(f"{kind} source: {name} must be a positive number, not {value!r}")
    return value


def string_list(kind: str, name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SourceConfigError(f"{kind} source: {name} must be a list of names, not {value!r}")
    return value


def check_file_path(kind: str, config: Mapping[str, Any]) -> None:
    path = config["file_path"]
    if not isinstance(path, str) or "\0" in path or not Path(path).is_absolute():
        raise SourceConfigError(f"{kind} source: file_path must be an absolute path, not {path!r}")


def open_file(kind: str, config: Mapping[str, Any], policy: RegistryPolicy) -> tuple[BinaryIO, str]:
    """The file a registry row names, opened read-only, and the source's name for messages.

    The real path (symlinks resolved) must lie inside an allowed file root; the file is opened
    without following a last-moment symlink, and what was opened is checked through the open
    descriptor (the real path again, regular file, size), so swapping the file between the
    check and the open cannot smuggle another one in. FIFOs and devices are refused unread.
    """
    from datasync.registry.policy import PolicyRefused

    given = str(config["file_path"])
    where = f"{kind} source {given}"
    try:
        real = policy.file(given)
    except PolicyRefused as exc:
        raise exc.at(where) from None
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SourceError(f"{where}: file not found") from None
    except OSError as exc:
        raise SourceError(f"{where}: cannot open the file: {exc.strerror}") from None
    try:
        opened = Path(f"/proc/self/fd/{fd}")
        if opened.is_symlink() and not policy.inside_roots(Path(os.readlink(opened))):
            raise PolicyRefused("file_roots", "the file was replaced by one outside the allowed roots while opening",
                                where=where)
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise SourceError(f"{where}: is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise PolicyRefused("file_roots", "only regular files are read (this is a FIFO, socket or device)",
                                where=where)
        policy.limits.check("file_bytes", st.st_size, "the file", where)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return f, where


def text_encoding(config: Mapping[str, Any]) -> str:
    encoding = str(config.get("encoding") or "utf-8")
    # Files exported from Excel start with a byte-order mark; utf-8-sig reads both kinds.
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def batched(records: Iterable[Record], size: int) -> Iterator[Batch]:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise SourceConfigError(f"batch_size must be a positive integer, not {size!r}")
    batch: Batch = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def check_records(where: str, records: Any) -> list[Record]:
    """Records are JSON objects; anything else is named by position rather than passed on."""
    if not isinstance(records, list):
        raise SourceError(f"{where}: expected an array of records, found {type(records).__name__}")
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise SourceError(f"{where}: record #{i} is {type(rec).__name__}, not an object: {str(rec)[:80]!r}")
    return records
