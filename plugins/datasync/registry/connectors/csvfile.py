"""CSV files: delimiter, quote character, header row (or explicit column names), encoding."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from datasync.registry.connectors.base import (
    Batch, Record, SourceConfigError, SourceError, batched, check_file_path, check_keys, open_file, string_list,
    text_encoding,
)

if TYPE_CHECKING:
    from datasync.registry.policy import RegistryPolicy

KIND = "csv"
OPTIONAL = ("delimiter", "quotechar", "has_header", "columns", "encoding")


def validate(config: Mapping[str, Any]) -> None:
    check_keys(KIND, config, ["file_path"], OPTIONAL)
    check_file_path(KIND, config)
    for key in ("delimiter", "quotechar"):
        if key in config and not (isinstance(config[key], str) and len(config[key]) == 1):
            raise SourceConfigError(f"{KIND} source: {key} must be one character, not {config[key]!r}")
    string_list(KIND, "columns", config.get("columns"))
    if not config.get("has_header", True) and not config.get("columns"):
        raise SourceConfigError(f"{KIND} source: without a header row, list the column names in 'columns'")


def open_source(config: Mapping[str, Any], *, batch_size: int, policy: RegistryPolicy) -> Iterator[Batch]:
    validate(config)
    raw, where = open_file(KIND, config, policy)

    def records() -> Iterator[Record]:
        try:
            # newline="" lets the csv module handle quoted line breaks itself
            with io.TextIOWrapper(raw, encoding=text_encoding(config), newline="") as f:
                yield from csv_records(f, where, config)
        except UnicodeDecodeError as exc:
            raise SourceError(f"{where}: not {config.get('encoding') or 'utf-8'} text at byte {exc.start}") from None

    return batched(records(), batch_size)


def csv_records(lines: Iterable[str], where: str, config: Mapping[str, Any]) -> Iterator[Record]:
    """Rows as dicts; a row whose field count differs from the header is an error, not a guess."""
    reader = csv.reader(lines, delimiter=config.get("delimiter", ","), quotechar=config.get("quotechar", '"'), strict=True)
    names = [str(c) for c in config["columns"]] if config.get("columns") else None
    # With a header row, 'columns' renames it; without one, 'columns' is the header.
    header = None if config.get("has_header", True) else names
    try:
        for row in reader:
            if header is None:
                header = names or [name.strip() for name in row]
                duplicates = sorted({n for n in header if header.count(n) > 1})
                if duplicates or "" in header:
                    raise SourceError(f"{where} line {reader.line_num}: header has duplicate or empty names {duplicates or ['']}")
                continue
            if not row:  # blank line
                continue
            if len(row) != len(header):
                raise SourceError(
                    f"{where} line {reader.line_num}: {len(row)} fields, but the header has {len(header)} ({row[:5]!r}...)"
                )
            yield dict(zip(header, row))
    except csv.Error as exc:
        raise SourceError(f"{where} line {reader.line_num}: malformed CSV: {exc}") from None
