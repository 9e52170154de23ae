"""The Google Sheets connector through the real GSheetsHook, pointed at a local stand-in server."""

import json

import pytest

from datasync.registry.connectors import SourceError, SourceNotConfigured
from datasync.registry.connectors import open_source as _open_source
from policies import policy


def open_source(source_type, config, **kwargs):
    return _open_source(source_type, config, policy=policy(), **kwargs)  # nothing to allow: the endpoint is the connection's

VALUES = [["Code", "Description", "Active"], ["A1", "Press line", "TRUE"], [], ["B2", "Paint"]]


@pytest.fixture
def sheets(http_server, monkeypatch):
    """Anonymous credentials: the hook's auth flow runs, but no Google account is needed."""
    monkeypatch.setenv("AIRFLOW_CONN_SHEETS_TEST", json.dumps({
        "conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "api_endpoint": http_server.url + "/"},
    }))
    http_server.route("/v4/spreadsheets/sheet-123/values/Plan!A1:C", lambda req: (200, {"values": VALUES}, {}))
    return http_server


def test_header_row_becomes_keys_and_short_rows_are_padded(sheets):
    config = {"gcp_conn_id": "sheets_test", "spreadsheet_id": "sheet-123", "range": "Plan!A1:C"}
    batches = list(open_source("gsheet", config, batch_size=1))
    assert batches == [[{"Code": "A1", "Description": "Press line", "Active": "TRUE"}],
                       [{"Code": "B2", "Description": "Paint", "Active": None}]]
    req = sheets.requests[0]
    assert req.path == "/v4/spreadsheets/sheet-123/values/Plan!A1:C"
    assert req.query["valueRenderOption"] == "FORMATTED_VALUE"


def test_api_error_is_named(sheets):
    config = {"gcp_conn_id": "sheets_test", "spreadsheet_id": "missing", "range": "Plan!A1:C"}
    with pytest.raises(SourceError, match=r"gsheet source missing range 'Plan!A1:C': cannot read values \(HttpError"):
        list(open_source("gsheet", config))


def test_unconfigured_connection_can_be_skipped():
    config = {"gcp_conn_id": "not_configured_here", "spreadsheet_id": "x", "range": "A1:B"}
    with pytest.raises(SourceNotConfigured, match="Airflow connection 'not_configured_here' is not configured"):
        list(open_source("gsheet", config))
