"""Excel workbooks (.xlsx) read with openpyxl in read-only mode, so large sheets stream."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from typing import Any

from datasync.registry.connectors.base import (
    Batch, Record, SourceConfigError, SourceError, batched, check_keys, existing_file,
)

KIND = "excel"
OPTIONAL = ("sheet", "header_row")


def validate(config: Mapping[str, Any]) -> None:
    check_keys(KIND, config, ["file_path"], OPTIONAL)
    header_row = config.get("header_row", 1)
    if isinstance(header_row, bool) or not isinstance(header_row, int) or header_row < 1:
        raise SourceConfigError(f"{KIND} source: header_row is a 1-based row number, not {header_row!r}")


def open_source(config: Mapping[str, Any], *, batch_size: int) -> Iterator[Batch]:
    validate(config)
    path = existing_file(KIND, config)
    where = f"{KIND} source {path}"

    def records() -> Iterator[Record]:
        from openpyxl import load_workbook
        from openpyxl.utils.exceptions import InvalidFileException

        try:
            # data_only: formulas arrive as their last computed values, not as "=SUM(...)"
            workbook = load_workbook(path, read_only=True, data_only=True)
        except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
            raise SourceError(f"{where}: not a readable .xlsx workbook ({type(exc).__name__}: {exc})") from None
        try:
            yield from _sheet_records(workbook, config, where)
        finally:
            workbook.close()  # read-only workbooks keep the file open until closed

    return batched(records(), batch_size)


def _sheet_records(workbook: Any, config: Mapping[str, Any], where: str) -> Iterator[Record]:
    sheet = config.get("sheet")
    if sheet is None:
        ws = workbook.worksheets[0]
    elif isinstance(sheet, int) and not isinstance(sheet, bool):
        if not 0 <= sheet < len(workbook.worksheets):
            raise SourceError(f"{where}: no sheet #{sheet}; it has {len(workbook.worksheets)}")
        ws = workbook.worksheets[sheet]
    elif sheet in workbook.sheetnames:
        ws = workbook[sheet]
    else:
        raise SourceError(f"{where}: no sheet {sheet!r}; sheets: {workbook.sheetnames}")
    where = f"{where} sheet {ws.title!r}"
    header_row = config.get("header_row", 1)
    header: list[str | None] | None = None
    for row_no, row in enumerate(ws.iter_rows(min_row=header_row, values_only=True), header_row):
        if header is None:
            header = [None if v is None else str(v).strip() or None for v in row]
            named = [h for h in header if h]
            if not named:
                raise SourceError(f"{where} row {row_no}: the header row is empty")
            duplicates = sorted({h for h in named if named.count(h) > 1})
            if duplicates:
                raise SourceError(f"{where} row {row_no}: duplicate header names {duplicates}")
            continue
        if all(v is None for v in row):  # formatted but empty rows are common at the end of sheets
            continue
        extra = [v for h, v in zip(header, row) if h is None and v is not None]
        if extra or any(v is not None for v in row[len(header):]):
            raise SourceError(f"{where} row {row_no}: values in a column without a header name")
        yield {h: (row[i] if i < len(row) else None) for i, h in enumerate(header) if h}
