"""Fixtures for the registry tests: a real HTTP server on loopback and small helper programs."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

# Importing Airflow configures its logging, replacing the root logger's handlers. Do it at
# collection time, so it cannot remove caplog's handler in the middle of a test.
import airflow.sdk  # noqa: F401,E402


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    target: str = ""  # the request line's target as sent (path and query, still encoded)


@dataclass
class Raw:
    """A route body written to the socket as it is, status line and headers included (a broken server)."""

    data: bytes


# A route answers (status, body, headers); a body that is not bytes/str is sent as JSON, an
# iterator of bytes is streamed without a Content-Length, and a Raw body is written verbatim.
Route = Callable[[Request], tuple[int, Any, dict[str, str]]]


@dataclass
class LocalServer:
    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def route(self, path: str, handler: Route) -> None:
        self.routes[path] = handler

    def json(self, path: str, body: Any, status: int = 200) -> None:
        self.routes[path] = lambda req: (status, body, {})

    @staticmethod
    def raw(data: bytes) -> Raw:
        """A route body sent verbatim: status line, headers and all (a broken server)."""
        return Raw(data)


def _handler(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            req = Request(self.command, unquote(parts.path), {k: v[-1] for k, v in parse_qs(parts.query).items()},
                          dict(self.headers), self.rfile.read(length) if length else b"", self.path)
            server.requests.append(req)
            route = server.routes.get(req.path)
            status, body, headers = route(req) if route else (404, {"error": "no route"}, {})
            if isinstance(body, Raw):
                self.wfile.write(body.data)
                return
            if isinstance(body, Iterator):
                self._stream(status, body, headers)
                return
            if isinstance(body, str):
                data, ctype = body.encode(), "text/html"
            elif isinstance(body, bytes):
                data, ctype = body, "application/octet-stream"
            else:
                data, ctype = json.dumps(body).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", headers.pop("Content-Type", ctype))
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, status: int, chunks: Iterator[bytes], headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            try:
                for chunk in chunks:
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: what we test for
                pass

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

    return Handler


@contextlib.contextmanager
def local_server() -> Iterator[LocalServer]:
    """A real stdlib HTTP server on 127.0.0.1 (random port), routes set by the caller."""
    state = LocalServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    with local_server() as server:
        yield server


@pytest.fixture
def other_server() -> Iterator[LocalServer]:
    """A second server (another port, so another origin) that records whatever reaches it."""
    with local_server() as server:
        yield server


@pytest.fixture
def script(tmp_path: Path) -> Callable[[str, str], list[str]]:
    """``script(name, source)`` writes a Python program and returns the argv that runs it."""

    def make(name: str, source: str) -> list[str]:
        path = tmp_path / name
        path.write_text(source)
        return [sys.executable, str(path)]

    return make


@pytest.fixture(scope="module")
def module_servers() -> Iterator[tuple[LocalServer, LocalServer]]:
    """Two servers (two origins) for a whole module, e.g. one DAG run checked by many tests."""
    with local_server() as first, local_server() as second:
        yield first, second
