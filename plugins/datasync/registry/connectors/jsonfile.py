"""JSON files: a top-level array of objects, an array inside an object (``records_path``
such as ``data.items``), or one object per line (``json_lines``)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from datasync.registry.connectors.base import (
    Batch, Record, SourceError, batched, check_file_path, check_keys, check_records, open_file, text_encoding,
)
from datasync.registry.dotted import MISSING, get_path

if TYPE_CHECKING:
    from datasync.registry.policy import RegistryPolicy

KIND = "json"
OPTIONAL = ("encoding", "records_path", "json_lines")


def validate(config: Mapping[str, Any]) -> None:
    check_keys(KIND, config, ["file_path"], OPTIONAL)
    check_file_path(KIND, config)


def open_source(config: Mapping[str, Any], *, batch_size: int, policy: RegistryPolicy) -> Iterator[Batch]:
    validate(config)
    raw, where = open_file(KIND, config, policy)

    def records() -> Iterator[Record]:
        try:
            with io.TextIOWrapper(raw, encoding=text_encoding(config)) as f:
                if config.get("json_lines"):
                    yield from ndjson_records(f, where)
                else:
                    yield from records_in(parse_json(f.read(), where), config.get("records_path"), where)
        except UnicodeDecodeError as exc:
            raise SourceError(f"{where}: not {config.get('encoding') or 'utf-8'} text at byte {exc.start}") from None

    return batched(records(), batch_size)


def parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{where}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def records_in(doc: Any, records_path: str | None, where: str) -> list[Record]:
    """The array of records in a parsed document."""
    if records_path:
        found = get_path(doc, records_path)
        if found is MISSING:
            keys = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
            raise SourceError(f"{where}: records path '{records_path}' not found (top level: {keys})")
        return check_records(f"{where} at '{records_path}'", found)
    if isinstance(doc, dict):
        raise SourceError(f"{where}: the document is an object (keys {sorted(doc)[:10]}); set records_path to its array")
    return check_records(where, doc)


def ndjson_records(lines: Iterable[str], where: str) -> Iterator[Record]:
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{where}: malformed JSON on line {lineno} column {exc.colno}: {exc.msg}") from None
        if not isinstance(record, dict):
            raise SourceError(f"{where}: line {lineno} is {type(record).__name__}, not an object")
        yield record
