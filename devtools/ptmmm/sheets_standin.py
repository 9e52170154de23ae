"""A small stateful stand-in for the Google Sheets API v4 on loopback, for tests and the demo.

The real ``GSheetsHook`` talks to it through the connection extra ``api_endpoint`` with
anonymous credentials (``{"is_anonymous": true, "api_endpoint": "http://127.0.0.1:PORT/"}``),
so the export and the master-data import run the same code as against Google.

It keeps spreadsheets as tabs of cell rows and implements what the PTMMM tasks use:

* ``GET  /v4/spreadsheets/{id}``                      titles of the tabs
* ``POST /v4/spreadsheets/{id}:batchUpdate``          ``addSheet`` requests
* ``GET  /v4/spreadsheets/{id}/values/{range}``       values, trailing empty cells and rows dropped
* ``PUT  /v4/spreadsheets/{id}/values/{range}``       ``valueInputOption=RAW`` writes ("" empties a cell,
  null leaves it)
* ``POST /v4/spreadsheets/{id}/values/{range}:clear``

Ranges are A1 notation (``Tab``, ``'My tab'!A1``, ``Tab!A2:P``). Errors use Google's JSON shape,
so the client raises ``HttpError`` as it would in production.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_RANGE = re.compile(
    r"^(?:'(?P<quoted>(?:[^']|'')+)'|(?P<bare>[^!]+?))"
    r"(?:!(?P<c1>[A-Z]*)(?P<r1>\d*)(?::(?P<c2>[A-Z]*)(?P<r2>\d*))?)?$"
)


class SheetsApiError(Exception):
    def __init__(self, status: int, message: str, reason: str):
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason


def _col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def parse_range(text: str) -> tuple[str, int, int, int | None, int | None]:
    """``(tab, first_row, first_col, last_row, last_col)``, 0-based, ends inclusive or None."""
    m = _RANGE.match(text)
    if not m:
        raise SheetsApiError(400, f"Unable to parse range: {text}", "INVALID_ARGUMENT")
    tab = m.group("quoted").replace("''", "'") if m.group("quoted") is not None else m.group("bare")
    c1, r1, c2, r2 = m.group("c1") or "", m.group("r1") or "", m.group("c2") or "", m.group("r2") or ""
    first_row = int(r1) - 1 if r1 else 0
    first_col = _col_index(c1) if c1 else 0
    last_row = int(r2) - 1 if r2 else None
    last_col = _col_index(c2) if c2 else None
    return tab, first_row, first_col, last_row, last_col


def _formatted(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class SheetsStandIn:
    """``with SheetsStandIn() as sheets: sheets.url ...``; state is inspected with :meth:`values`."""

    def __init__(self) -> None:
        self.spreadsheets: dict[str, dict[str, list[list[Any]]]] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) in arrival order
        self.fail_next: list[tuple[int, str]] = []  # (status, message) answered to the next requests
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self.url = ""

    # -- state ----------------------------------------------------------------------------------
    def add_spreadsheet(self, spreadsheet_id: str, tabs: dict[str, list[list[Any]]] | None = None) -> None:
        with self._lock:
            self.spreadsheets[spreadsheet_id] = {t: [list(r) for r in rows] for t, rows in (tabs or {}).items()}

    def values(self, spreadsheet_id: str, tab: str) -> list[list[Any]]:
        """The tab's cells as the API returns them (UNFORMATTED_VALUE)."""
        with self._lock:
            return self._read(self._tab(spreadsheet_id, tab), 0, 0, None, None, formatted=False)

    # -- server ---------------------------------------------------------------------------------
    def start(self) -> SheetsStandIn:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> SheetsStandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def connection_json(self) -> str:
        """An ``AIRFLOW_CONN_GOOGLE_SHEETS`` value pointing the hook here."""
        return json.dumps({"conn_type": "google_cloud_platform",
                           "extra": {"is_anonymous": True, "api_endpoint": self.url + "/", "num_retries": 0}})

    # -- the API ----------------------------------------------------------------------------------
    def _tab(self, sid: str, tab: str) -> list[list[Any]]:
        if sid not in self.spreadsheets:
            raise SheetsApiError(404, "Requested entity was not found.", "NOT_FOUND")
        if tab not in self.spreadsheets[sid]:
            raise SheetsApiError(400, f"Unable to parse range: {tab}", "INVALID_ARGUMENT")
        return self.spreadsheets[sid][tab]

    @staticmethod
    def _read(grid, r0, c0, r1, c1, formatted: bool) -> list[list[Any]]:
        rows = grid[r0:None if r1 is None else r1 + 1]
        out = []
        for row in rows:
            cells = row[c0:None if c1 is None else c1 + 1]
            while cells and cells[-1] in (None, ""):
                cells = cells[:-1]
            out.append(["" if v is None else _formatted(v) if formatted else v for v in cells])
        while out and not out[-1]:
            out.pop()
        return out

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        m = re.fullmatch(r"/v4/spreadsheets/([^/:]+)(?::batchUpdate|/values/(.+))?", path)
        if not m:
            raise SheetsApiError(404, f"no such method: {method} {path}", "NOT_FOUND")
        sid, range_text = m.group(1), m.group(2)
        with self._lock:
            if sid not in self.spreadsheets:
                raise SheetsApiError(404, "Requested entity was not found.", "NOT_FOUND")
            book = self.spreadsheets[sid]
            if range_text is None and path.endswith(":batchUpdate") and method == "POST":
                replies = []
                for req in body.get("requests", []):
                    title = req["addSheet"]["properties"]["title"]
                    if title in book:
                        raise SheetsApiError(400, f'A sheet with the name "{title}" already exists.', "INVALID_ARGUMENT")
                    book[title] = []
                    replies.append({"addSheet": {"properties": {"title": title, "sheetId": len(book)}}})
                return 200, {"spreadsheetId": sid, "replies": replies}
            if range_text is None and method == "GET":
                return 200, {"spreadsheetId": sid,
                             "sheets": [{"properties": {"title": t, "sheetId": i}} for i, t in enumerate(book)]}
            action = None
            if range_text.endswith((":clear", ":append")):
                range_text, action = range_text.rsplit(":", 1)
            tab, r0, c0, r1, c1 = parse_range(range_text)
            grid = self._tab(sid, tab)
            if method == "GET":
                formatted = query.get("valueRenderOption", "FORMATTED_VALUE") == "FORMATTED_VALUE"
                values = self._read(grid, r0, c0, r1, c1, formatted)
                return 200, {"range": range_text, "majorDimension": "ROWS", **({"values": values} if values else {})}
            if method == "POST" and action == "clear":
                for r in range(r0, len(grid) if r1 is None else min(r1 + 1, len(grid))):
                    row = grid[r]
                    for c in range(c0, len(row) if c1 is None else min(c1 + 1, len(row))):
                        row[c] = None
                return 200, {"spreadsheetId": sid, "clearedRange": range_text}
            if method == "PUT" and action is None:
                if query.get("valueInputOption") != "RAW":
                    raise SheetsApiError(400, "this stand-in only implements valueInputOption=RAW", "INVALID_ARGUMENT")
                values = body.get("values", [])
                for i, row in enumerate(values):
                    while len(grid) <= r0 + i:
                        grid.append([])
                    target = grid[r0 + i]
                    for j, value in enumerate(row):
                        if value is None:  # as in the API: null leaves the cell as it is
                            continue
                        while len(target) <= c0 + j:
                            target.append(None)
                        target[c0 + j] = None if value == "" else value
                cells = sum(len(r) for r in values)
                return 200, {"spreadsheetId": sid, "updatedRange": range_text, "updatedRows": len(values),
                             "updatedCells": cells}
        raise SheetsApiError(404, f"no such method: {method} {path}", "NOT_FOUND")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                path = unquote(parts.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                standin.requests.append((self.command, path))
                try:
                    if standin.fail_next:
                        status, message = standin.fail_next.pop(0)
                        raise SheetsApiError(status, message, "UNAVAILABLE" if status >= 500 else "PERMISSION_DENIED")
                    status, body = standin.handle(self.command, path, query, json.loads(raw) if raw else {})
                except SheetsApiError as exc:
                    status, body = exc.status, {"error": {"code": exc.status, "message": exc.message, "status": exc.reason}}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
