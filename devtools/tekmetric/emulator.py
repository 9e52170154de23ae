"""A Tekmetric partner API emulator: a real HTTP server on loopback, quirks included.

It implements the partner API contract (see ``docs/tekmetric-api-emulator.md``) for
tests, benchmarks and the demo::

    with TekmetricEmulator(shops=2, seed=7) as emu:
        emu.base_url, emu.client_id, emu.client_secret  # point the hook here
        emu.store.update("customers", 200001, firstName="Ann")  # the "truth", mutable
        emu.faults.throttle_next = 3  # the next three API calls answer 429
        emu.request_count("/customers")  # what the client did

Run ``python -m devtools.tekmetric.emulator --port 8765 --shops 3 --seed 1`` for a demo server.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import random
import secrets
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devtools.tekmetric.emulator_data import KINDS, DataStore
from datasync.tekmetric.values import parse_timestamp, repair_order_money

API = "/api/v1"
PAGED = (*KINDS, "jobs")
WITH_DELETED_FILTER = ("customers", "vehicles", "repair-orders")
SORTABLE = ("id", "createdDate", "repairOrderNumber")  # never updatedDate, as in Tekmetric
DEFAULT_PAGE_SIZE = 20  # Spring's default; the hook always asks for 100
MAX_PAGE_SIZE = 100


@dataclass
class Faults:
    """Switches tests flip on a running emulator. Counters count API calls (not token requests)."""

    throttle_next: int = 0  # the next N calls answer 429 (empty body)
    retry_after: float | None = None  # ...with this Retry-After (seconds) on injected 429s
    throttle_rate: float = 0.0  # share of calls answering 429 at random: a storm
    server_errors_next: int = 0  # the next N calls answer 5xx
    server_error_status: int = 503
    disconnect_next: int = 0  # the next N calls drop the connection without an answer
    delay_seconds: float = 0.0  # answer this much later (to trip client timeouts)...
    delay_next: int | None = None  # ...for the next N calls only (None: every call)
    revoke_next: int = 0  # the next N calls revoke the current token and answer 401
    float_cents: bool = False  # money as floats with no fraction (8907.0)
    fractional_cents_ro: int | None = None  # this repair order's laborSales gets half a cent
    null_part_names: bool = False  # every part line's name is null
    naive_authorized_dates: bool = False  # job authorizedDate without a zone


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: str
    status: int  # 0: connection dropped by a fault
    reason: str  # ok, rate_limit, unauthorized, error, or fault:<kind>
    at: float  # time.time() on arrival
    monotonic: float  # time.monotonic() on arrival, for rates


@dataclass
class _PageHook:
    kind: str
    page: int
    action: Callable[[DataStore], Any]
    once: bool
    fired: int = 0


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class TekmetricEmulator:
    """The emulator; a context manager that starts and stops the server thread."""

    def __init__(self, shops: int = 3, seed: int = 1, *, host: str = "127.0.0.1", port: int = 0,
                 client_id: str = "tekmetric-emulator", client_secret: str | None = None,
                 scope: list[int] | None = None, rate_limit_per_minute: float | None = None,
                 rate_limit_window: float = 60.0, **data_options: Any):
        """``data_options`` go to :class:`DataStore` (employees, customers, repair_orders per shop, weeks, anchor)."""
        self.store = DataStore(shops, seed, **data_options)
        self.faults = Faults()
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(18)
        self.scope = list(scope) if scope is not None else self.store.shop_ids
        # Server-side limit: more than limit * window / 60 (+ slack) calls in the last window -> 429.
        self.rate_limit_per_minute = rate_limit_per_minute
        self.rate_limit_window = rate_limit_window
        self.rate_limit_slack = 1  # one request of clock jitter between client and server
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._token: str | None = None
        self._revoked: set[str] = set()
        self._log: list[RequestRecord] = []
        self._admitted: deque[float] = deque()
        self._page_hooks: list[_PageHook] = []
        self._storm = random.Random(seed)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> TekmetricEmulator:
        if self._server is None:
            self._server = _Server((self._host, self._port), _Handler)
            self._server.emulator = self
            self._port = self._server.server_address[1]
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"tekmetric-emulator:{self._port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> TekmetricEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """Scheme and host, like ``https://sandbox.tekmetric.com`` (paths live under /api/v1)."""
        return f"http://{self._host}:{self._port}"

    def airflow_connection(self, **extra: Any) -> str:
        """JSON for ``AIRFLOW_CONN_TEKMETRIC_API`` pointing at this emulator."""
        return json.dumps({"conn_type": "http", "host": self.base_url, "login": self.client_id,
                           "password": self.client_secret, "extra": extra})

    # -- auth and test controls ------------------------------------------------------------

    @property
    def token(self) -> str | None:
        """The token currently issued (None until asked for, and after a revoke)."""
        return self._token

    def revoke_token(self) -> None:
        """The current token stops working; the next token request issues a new one."""
        with self._lock:
            if self._token:
                self._revoked.add(self._token)
            self._token = None

    def after_page(self, path: str, page: int, action: Callable[[DataStore], Any], *, once: bool = True) -> None:
        """Run ``action(store)`` right after page ``page`` of list ``path`` is served (records change mid-read)."""
        kind = path.removeprefix(API).strip("/")
        if kind not in PAGED:
            raise ValueError(f"{path!r} is not a paged endpoint; one of {', '.join(PAGED)}")
        with self._lock:
            self._page_hooks.append(_PageHook(kind, page, action, once))

    def reset_faults(self) -> None:
        with self._lock:
            self.faults = Faults()
            self._page_hooks.clear()

    # -- request log -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def request_count(self, path: str | None = None, *, status: int | None = None, reason: str | None = None) -> int:
        """Requests seen, optionally only those under ``path`` (``/customers`` or ``/api/v1/customers``)."""
        prefix = None if path is None else (path if path.startswith(API) else API + "/" + path.lstrip("/"))
        return sum(1 for r in self.requests
                   if (prefix is None or r.path == prefix or r.path.startswith(prefix + "/"))
                   and (status is None or r.status == status) and (reason is None or r.reason == reason))

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    # -- request handling (server threads) -------------------------------------------------

    def _respond(self, method: str, target: str, headers: Any, body: bytes) -> _Reply | None:
        arrived, arrived_mono = time.time(), time.monotonic()
        url = urlsplit(target)
        path = url.path.rstrip("/") or "/"
        try:
            reply, reason = self._dispatch(method, path, parse_qs(url.query, keep_blank_values=True), headers, body)
        except _HttpError as exc:
            reply, reason = exc.reply, "error"
        status = reply.status if reply else 0
        if reason == "ok" and status >= 400:
            reason = "error"
        with self._lock:
            self._log.append(RequestRecord(method, path, url.query, status, reason, arrived, arrived_mono))
        return reply

    def _dispatch(self, method: str, path: str, query: dict[str, list[str]], headers: Any,
                  body: bytes) -> tuple[_Reply | None, str]:
        if not self._admit():
            return _Reply(429), "rate_limit"
        if path == f"{API}/oauth/token":
            return self._issue_token(method, headers, body), "ok"
        fault, delay = self._take_fault()
        if fault == "disconnect":
            return None, "fault:disconnect"
        if fault == "server_error":
            return _error(self.faults.server_error_status, "Internal Server Error"), "fault:server_error"
        if fault == "throttle":
            wait = self.faults.retry_after
            return _Reply(429, headers={} if wait is None else {"Retry-After": f"{wait:g}"}), "fault:throttle"
        if fault == "revoke":
            self.revoke_token()
            return _Reply(401), "fault:revoke"
        if delay:
            time.sleep(delay)
        auth = headers.get("Authorization") or ""
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        with self._lock:
            valid = token is not None and token == self._token and token not in self._revoked
        if not valid:
            return _Reply(401), "unauthorized"  # Tekmetric's 401 has an empty body
        if method != "GET":
            return _error(405, f"Request method '{method}' is not supported"), "error"
        return self._route(path, query), "ok"

    def _admit(self) -> bool:
        if not self.rate_limit_per_minute:
            return True
        now = time.monotonic()
        with self._lock:
            while self._admitted and self._admitted[0] <= now - self.rate_limit_window:
                self._admitted.popleft()
            if len(self._admitted) >= self.rate_limit_per_minute * self.rate_limit_window / 60 + self.rate_limit_slack:
                return False
            self._admitted.append(now)
            return True

    def _take_fault(self) -> tuple[str | None, float]:
        """Consume one injected fault for this call, if any, and the delay to apply."""
        with self._lock:
            f = self.faults
            delay = 0.0
            if f.delay_seconds and (f.delay_next is None or f.delay_next > 0):
                delay = f.delay_seconds
                if f.delay_next is not None:
                    f.delay_next -= 1
            for name, kind in (("disconnect_next", "disconnect"), ("server_errors_next", "server_error"),
                               ("throttle_next", "throttle"), ("revoke_next", "revoke")):
                if getattr(f, name) > 0:
                    setattr(f, name, getattr(f, name) - 1)
                    return kind, delay
            if f.throttle_rate and self._storm.random() < f.throttle_rate:
                return "throttle", delay
            return None, delay

    def _issue_token(self, method: str, headers: Any, body: bytes) -> _Reply:
        if method != "POST":
            return _error(405, f"Request method '{method}' is not supported")
        auth = headers.get("Authorization") or ""
        try:
            given = base64.b64decode(auth[6:], validate=True).decode() if auth[:6].lower() == "basic " else None
        except (binascii.Error, UnicodeDecodeError):
            given = None
        if given != f"{self.client_id}:{self.client_secret}":
            return _json(401, {"error": "invalid_client", "error_description": "Bad client credentials"})
        form = parse_qs(body.decode("utf-8", "replace"))
        if form.get("grant_type") != ["client_credentials"]:
            return _json(400, {"error": "unsupported_grant_type",
                               "error_description": "OAuth 2.0 Parameter: grant_type"})
        with self._lock:
            if self._token is None:  # the same token until revoked
                self._token = str(uuid.uuid4())
            token = self._token
        return _json(200, {"access_token": token, "token_type": "bearer", "scope": " ".join(map(str, self.scope))})

    def _route(self, path: str, query: dict[str, list[str]]) -> _Reply:
        parts = path.removeprefix(API).strip("/").split("/") if path.startswith(API + "/") else []
        if parts == ["shops"]:
            return _json(200, [self.store.shop(i) for i in self.store.shop_ids if i in self.scope])
        if len(parts) == 2 and parts[0] == "shops":
            shop_id = _int(parts[1], "shop id")
            self._check_scope(shop_id)
            if shop_id not in self.store.shops:
                raise _HttpError(_error(404, f"Shop {shop_id} not found"))
            return _json(200, self.store.shop(shop_id))
        if len(parts) == 1 and parts[0] in PAGED:
            return self._page(parts[0], query)
        if len(parts) == 2 and parts[0] in PAGED:
            return self._one(parts[0], _int(parts[1], "id"))
        return _error(404, f"No endpoint {path}")

    def _check_scope(self, shop_id: int) -> None:
        if shop_id not in self.scope:
            raise _HttpError(_error(403, "Access Denied"))

    def _one(self, kind: str, record_id: int) -> _Reply:
        store = self.store
        with store.lock:
            row = next((j for j in store.job_rows() if j["id"] == record_id), None) if kind == "jobs" \
                else store.tables[kind].get(record_id)
            if row is None:
                noun = kind.rstrip("s").replace("-", " ").capitalize()
                raise _HttpError(_error(404, f"{noun} {record_id} not found"))
            shop_id = store.tables["repair-orders"][row["repairOrderId"]]["shopId"] if kind == "jobs" else row["shopId"]
            self._check_scope(shop_id)
            return _json(200, self._serve(kind, row))

    def _page(self, kind: str, query: dict[str, list[str]]) -> _Reply:
        shop = _int_param(query, "shop")
        ro_id = _int_param(query, "repairOrderId") if kind == "jobs" else None
        if shop is None and ro_id is None:
            raise _HttpError(_error(400, "Required request parameter 'shop' for method parameter type Long "
                                         "is not present"))
        if shop is not None:
            self._check_scope(shop)
        page = max(_int_param(query, "page") or 0, 0)
        size = _int_param(query, "size") or DEFAULT_PAGE_SIZE
        size = min(size if size > 0 else DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)  # silently capped, as Tekmetric does
        sort = _last(query, "sort") or "id"
        if sort not in SORTABLE:
            raise _HttpError(_error(400, f"Sorting by '{sort}' is not supported; use one of {', '.join(SORTABLE)}"))
        descending = (_last(query, "sortDirection") or "ASC").upper() == "DESC"
        updated = (_date_param(query, "updatedDateStart"), _date_param(query, "updatedDateEnd"))
        deleted = (_date_param(query, "deletedDateStart"), _date_param(query, "deletedDateEnd"))
        deleted_only = kind in WITH_DELETED_FILTER and deleted != (None, None)
        statuses = {_int(v, "repairOrderStatusId")
                    for raw in query.get("repairOrderStatusId", []) for v in raw.split(",") if v}

        store = self.store
        with store.lock:
            if kind == "jobs":
                rows = store.job_rows(shop)
            else:
                rows = [r for r in store.tables[kind].values() if shop is None or r["shopId"] == shop]
            if ro_id is not None:
                rows = [r for r in rows if r["repairOrderId"] == ro_id]
            if deleted_only:  # only deleted records, whatever else was asked [field]
                rows = [r for r in rows if r.get("deletedDate") and _within(r["deletedDate"], deleted)]
            else:
                rows = [r for r in rows if not r.get("deletedDate") and _within(r["updatedDate"], updated)]
            if statuses and kind == "repair-orders":
                rows = [r for r in rows if r["repairOrderStatus"]["id"] in statuses]
            if kind == "jobs" and shop is None:
                rows = [r for r in rows if store.tables["repair-orders"][r["repairOrderId"]]["shopId"] in self.scope]
            rows.sort(key=lambda r: (r[sort], r["id"]), reverse=descending)
            total = len(rows)
            content = [self._serve(kind, r) for r in rows[page * size:(page + 1) * size]]
        self._fire_page_hooks(kind, page)
        pages = -(-total // size)
        order = {"empty": False, "sorted": True, "unsorted": False}
        return _json(200, {
            "content": content,
            "pageable": {"sort": order, "offset": page * size, "pageNumber": page, "pageSize": size,
                         "paged": True, "unpaged": False},
            "last": page >= pages - 1, "totalPages": pages, "totalElements": total, "size": size, "number": page,
            "sort": order, "first": page == 0, "numberOfElements": len(content), "empty": not content,
        })

    def _fire_page_hooks(self, kind: str, page: int) -> None:
        with self._lock:
            due = [h for h in self._page_hooks if h.kind == kind and h.page == page and not (h.once and h.fired)]
            for hook in due:
                hook.fired += 1
        for hook in due:
            hook.action(self.store)

    def _serve(self, kind: str, row: dict) -> dict:
        """The wire form of a row with the payload faults applied."""
        out = self.store.wire(kind, row)
        if kind not in ("repair-orders", "jobs"):
            return out
        f = self.faults
        ro = out if kind == "repair-orders" else {"jobs": [out]}
        for container, key, _ in repair_order_money(ro):
            if f.float_cents and isinstance(container[key], int):
                container[key] = float(container[key])
        if kind == "repair-orders" and f.fractional_cents_ro == out["id"]:
            out["laborSales"] = out["laborSales"] + 0.5
        for job in ro["jobs"]:
            if f.naive_authorized_dates and job.get("authorizedDate"):
                job["authorizedDate"] = job["authorizedDate"].removesuffix("Z")
            if f.null_part_names:
                for part in job["parts"]:
                    part["name"] = None
        return out


class _HttpError(Exception):
    def __init__(self, reply: _Reply):
        self.reply = reply


def _json(status: int, payload: Any) -> _Reply:
    return _Reply(status, json.dumps(payload, separators=(",", ":")).encode(), {"Content-Type": "application/json"})


def _error(status: int, message: str) -> _Reply:
    return _json(status, {"type": "ERROR", "message": message, "data": None, "details": {}})


def _last(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _HttpError(_error(400, f"Failed to convert value of type 'java.lang.String' to required type "
                                     f"'java.lang.Long' for {name}: {text!r}")) from None


def _int_param(query: dict[str, list[str]], name: str) -> int | None:
    text = _last(query, name)
    return None if text in (None, "") else _int(text, name)


def _date_param(query: dict[str, list[str]], name: str):
    text = _last(query, name)
    try:
        return parse_timestamp(text, name)
    except ValueError:
        raise _HttpError(_error(400, f"Invalid value for {name}: {text!r}")) from None


def _within(value, bounds) -> bool:
    start, end = bounds  # inclusive on both ends
    return (start is None or value >= start) and (end is None or value <= end)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    emulator: TekmetricEmulator

    def handle_error(self, request, client_address) -> None:
        pass  # clients that time out and hang up are expected here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API behind its load balancer
    server_version = "TekmetricEmulator/1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; no 40 ms delayed-ACK stalls
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.server.emulator._respond(self.command, self.path, self.headers, body)
        if reply is None:
            self.close_connection = True  # hang up without an answer
            return
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log on the emulator replaces stderr noise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.tekmetric.emulator", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--shops", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--client-id", default="tekmetric-emulator")
    parser.add_argument("--client-secret", default="emulator-secret", help="a throwaway demo secret")
    parser.add_argument("--rate-limit", type=float, default=None, help="server-side requests per minute (429 above it)")
    parser.add_argument("--customers", type=int, default=120, help="per shop")
    parser.add_argument("--repair-orders", type=int, default=150, help="per shop")
    args = parser.parse_args(argv)
    emulator = TekmetricEmulator(args.shops, args.seed, host=args.host, port=args.port, client_id=args.client_id,
                                 client_secret=args.client_secret, rate_limit_per_minute=args.rate_limit,
                                 customers=args.customers, repair_orders=args.repair_orders)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with emulator:
        shops = ", ".join(f"{s['id']} {s['name']} ({s['timeZone']})" for s in map(emulator.store.shop, emulator.scope))
        print(f"Tekmetric emulator on {emulator.base_url}/api/v1 with shops: {shops}")
        print(f"export AIRFLOW_CONN_TEKMETRIC_API='{emulator.airflow_connection()}'", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
