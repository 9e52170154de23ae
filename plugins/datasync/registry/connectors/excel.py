"""Excel workbooks (.xlsx) read with openpyxl in read-only mode, so large sheets stream.

Only worksheets stream: openpyxl reads the shared strings, styles and the other XML parts whole,
so a small workbook can unpack to gigabytes (a zip bomb, or 400 MB of shared strings in a 1 MB
file). The archive's directory is checked first, against the registry policy's limits, before
openpyxl sees the file. Python's zipfile never inflates a member past its declared size (it stops
and fails the CRC check), so the declared sizes are a real bound.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any
from xml.etree import ElementTree

from datasync.registry.connectors.base import (
    Batch, Record, SourceConfigError, SourceError, batched, check_file_path, check_keys, open_file,
)

if TYPE_CHECKING:
    from datasync.registry.policy import Limits, RegistryPolicy

KIND = "excel"
OPTIONAL = ("sheet", "header_row")
CONTENT_TYPES = "[Content_Types].xml"
WORKSHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"


def validate(config: Mapping[str, Any]) -> None:
    check_keys(KIND, config, ["file_path"], OPTIONAL)
    check_file_path(KIND, config)
    header_row = config.get("header_row", 1)
    if isinstance(header_row, bool) or not isinstance(header_row, int) or header_row < 1:
        raise SourceConfigError(f"{KIND} source: header_row is a 1-based row number, not {header_row!r}")


def open_source(config: Mapping[str, Any], *, batch_size: int, policy: RegistryPolicy) -> Iterator[Batch]:
    validate(config)
    raw, where = open_file(KIND, config, policy)
    try:
        check_archive(raw, where, policy.limits)
    except BaseException:
        raw.close()
        raise

    def records() -> Iterator[Record]:
        from openpyxl import load_workbook
        from openpyxl.utils.exceptions import InvalidFileException

        with raw:
            try:
                # data_only: formulas arrive as their last computed values, not as "=SUM(...)"
                workbook = load_workbook(raw, read_only=True, data_only=True)
            except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ElementTree.ParseError) as exc:
                raise SourceError(f"{where}: not a readable .xlsx workbook ({type(exc).__name__}: {exc})") from None
            try:
                yield from _sheet_records(workbook, config, where)
            finally:
                workbook.close()  # read-only workbooks keep the file open until closed

    return batched(records(), batch_size)


def check_archive(raw: IO[bytes], where: str, limits: Limits) -> None:
    """Refuse a workbook that would unpack past the limits, reading only the zip directory and
    ``[Content_Types].xml`` (itself size-checked first). openpyxl reads every XML part but the
    worksheets whole, so each (any part with a declared content type, or named .xml/.rels) is
    held to ``xlsx_shared_strings_bytes``; a part counts as a worksheet only if the content types
    call it nothing else. openpyxl finds the shared strings by content type, not by name, so
    renaming the part gains nothing."""
    try:
        with zipfile.ZipFile(raw) as archive:
            infos = archive.infolist()
            members = {info.filename: info for info in infos}  # what archive.open(name) would read
            types = members.get(CONTENT_TYPES)
            if types is None:
                raise SourceError(f"{where}: not a readable .xlsx workbook (no {CONTENT_TYPES})")
            limits.check("xlsx_shared_strings_bytes", types.file_size, f"part {CONTENT_TYPES}", where)
            declared = _content_types(archive.read(CONTENT_TYPES))
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{where}: not a readable .xlsx workbook (BadZipFile: {exc})") from None
    except ElementTree.ParseError as exc:
        raise SourceError(f"{where}: not a readable .xlsx workbook ({CONTENT_TYPES}: {exc})") from None
    finally:
        raw.seek(0)
    for name, info in members.items():
        types = declared.get(name, set())
        if types != {WORKSHEET} and (types or name.lower().endswith((".xml", ".rels"))):
            limits.check("xlsx_shared_strings_bytes", info.file_size, f"part {name} (read whole, not streamed)", where)
    limits.check("xlsx_uncompressed_bytes", sum(i.file_size for i in infos), "its uncompressed content", where)


def _content_types(content_types: bytes) -> dict[str, set[str]]:
    """Part name (as in the zip) -> the content types [Content_Types].xml gives it by name."""
    declared: dict[str, set[str]] = {}
    for element in ElementTree.fromstring(content_types):
        if element.tag.endswith("}Override") and element.get("PartName"):
            declared.setdefault(element.get("PartName", "").lstrip("/"), set()).add(element.get("ContentType", ""))
    return declared


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
