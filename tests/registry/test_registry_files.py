"""File connectors (json, csv, excel) against real files: happy path, malformed input, missing file."""

import datetime as dt
import json
from pathlib import Path

import pytest
from openpyxl import Workbook

from datasync.registry.connectors import SourceConfigError, SourceError, open_source, validate_config
from policies import allow_files


def read_all(source_type, config, batch_size=1000):
    """Read a file with its own directory as the allowed root."""
    policy = allow_files(Path(config["file_path"]).parent)
    return list(open_source(source_type, config, policy=policy, batch_size=batch_size))


# ---- json ----------------------------------------------------------------------------------------
def test_json_top_level_array_in_batches(tmp_path):
    path = tmp_path / "actual_production.json"
    path.write_text(json.dumps([{"id": i, "qty": i * 10} for i in range(5)]))
    batches = read_all("json", {"file_path": str(path), "file_type": "json", "auto_reload": True}, batch_size=2)
    assert [len(b) for b in batches] == [2, 2, 1]
    assert batches[2] == [{"id": 4, "qty": 40}]


def test_json_records_path_inside_an_object(tmp_path):
    path = tmp_path / "nested.json"
    path.write_text(json.dumps({"meta": {"n": 2}, "data": {"items": [{"id": 1}, {"id": 2}]}}))
    assert read_all("json", {"file_path": str(path), "records_path": "data.items"}) == [[{"id": 1}, {"id": 2}]]


def test_json_lines(tmp_path):
    path = tmp_path / "rows.ndjson"
    path.write_text('{"id": 1}\n\n{"id": 2}\n')
    assert read_all("json", {"file_path": str(path), "json_lines": True}) == [[{"id": 1}, {"id": 2}]]


def test_json_malformed_names_file_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"id": 1},\n  {"id": 2,,}\n]')
    with pytest.raises(SourceError, match=r"broken\.json: malformed JSON at line 3 column 12"):
        read_all("json", {"file_path": str(path)})


def test_json_wrong_shapes_are_named(tmp_path):
    obj = tmp_path / "obj.json"
    obj.write_text('{"data": {"items": [1, 2]}}')
    with pytest.raises(SourceError, match="set records_path"):
        read_all("json", {"file_path": str(obj)})
    with pytest.raises(SourceError, match=r"records path 'data\.rows' not found"):
        read_all("json", {"file_path": str(obj), "records_path": "data.rows"})
    with pytest.raises(SourceError, match=r"record #0 is int, not an object"):
        read_all("json", {"file_path": str(obj), "records_path": "data.items"})


def test_missing_file_is_named_when_opened(tmp_path):
    for kind in ("json", "csv", "excel"):
        with pytest.raises(SourceError, match=rf"{kind} source .*nope\.{kind}: file not found"):
            open_source(kind, {"file_path": str(tmp_path / f"nope.{kind}")}, policy=allow_files(tmp_path))


def test_unknown_config_key_is_refused_not_ignored(tmp_path):
    with pytest.raises(SourceConfigError, match=r"unknown connection config key\(s\) \['delimeter'\]"):
        validate_config("csv", {"file_path": "x.csv", "delimeter": ";"})
    with pytest.raises(SourceConfigError, match="unknown source type 'xml'"):
        validate_config("xml", {})


# ---- csv -----------------------------------------------------------------------------------------
def test_csv_delimiter_header_encoding_and_bom(tmp_path):
    path = tmp_path / "production.csv"
    path.write_bytes("\ufeffmesin;jumlah;catatan\nM1;10;\"ok; baik\"\nM2;20;\"dua\nbaris\"\n".encode("utf-8"))
    batches = read_all("csv", {"file_path": str(path), "delimiter": ";", "has_header": True, "encoding": "utf-8"})
    assert batches == [[{"mesin": "M1", "jumlah": "10", "catatan": "ok; baik"},
                        {"mesin": "M2", "jumlah": "20", "catatan": "dua\nbaris"}]]


def test_csv_latin1_and_explicit_columns_without_header(tmp_path):
    path = tmp_path / "legacy.csv"
    path.write_bytes("Café,1\nNiño,2\n".encode("latin-1"))
    config = {"file_path": str(path), "has_header": False, "columns": ["name", "n"], "encoding": "latin-1"}
    assert read_all("csv", config) == [[{"name": "Café", "n": "1"}, {"name": "Niño", "n": "2"}]]


def test_csv_ragged_row_names_the_line(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(SourceError, match=r"ragged\.csv line 3: 3 fields, but the header has 2"):
        read_all("csv", {"file_path": str(path)})


def test_csv_bad_quoting_and_bad_encoding(tmp_path):
    path = tmp_path / "quotes.csv"
    path.write_text('a,b\n1,"unterminated\n')
    with pytest.raises(SourceError, match=r"quotes\.csv line \d+: malformed CSV"):
        read_all("csv", {"file_path": str(path)})
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"a,b\n\xff\xfe,1\n")
    with pytest.raises(SourceError, match=r"binary\.csv: not utf-8 text at byte"):
        read_all("csv", {"file_path": str(binary)})


# ---- excel ---------------------------------------------------------------------------------------
def _workbook(path, rows, title="Plan", extra_sheet=True):
    wb = Workbook()
    ws = wb.active
    ws.title = title
    for row in rows:
        ws.append(row)
    if extra_sheet:
        wb.create_sheet("Other").append(["x"])
    wb.save(path)


def test_excel_sheet_and_header_row(tmp_path):
    path = tmp_path / "plan.xlsx"
    _workbook(path, [["Production plan"], [], ["Date", "Line", "Target"],
                     [dt.datetime(2026, 1, 5), "L1", 100], [None, None, None], [dt.datetime(2026, 1, 6), "L2", 120]])
    batches = read_all("excel", {"file_path": str(path), "sheet": "Plan", "header_row": 3}, batch_size=1)
    assert batches == [[{"Date": dt.datetime(2026, 1, 5), "Line": "L1", "Target": 100}],
                       [{"Date": dt.datetime(2026, 1, 6), "Line": "L2", "Target": 120}]]


def test_excel_unknown_sheet_lists_the_sheets(tmp_path):
    path = tmp_path / "plan.xlsx"
    _workbook(path, [["a"], [1]])
    with pytest.raises(SourceError, match=r"no sheet 'Missing'; sheets: \['Plan', 'Other'\]"):
        read_all("excel", {"file_path": str(path), "sheet": "Missing"})


def test_excel_malformed_workbook(tmp_path):
    path = tmp_path / "fake.xlsx"
    path.write_text("this is not a zip archive")
    with pytest.raises(SourceError, match=r"fake\.xlsx: not a readable \.xlsx workbook"):
        read_all("excel", {"file_path": str(path)})


def test_excel_duplicate_headers_and_unnamed_values(tmp_path):
    dup = tmp_path / "dup.xlsx"
    _workbook(dup, [["a", "a"], [1, 2]])
    with pytest.raises(SourceError, match=r"row 1: duplicate header names \['a'\]"):
        read_all("excel", {"file_path": str(dup)})
    unnamed = tmp_path / "unnamed.xlsx"
    _workbook(unnamed, [["a", None], [1, 2]])
    with pytest.raises(SourceError, match=r"row 2: values in a column without a header name"):
        read_all("excel", {"file_path": str(unnamed)})
