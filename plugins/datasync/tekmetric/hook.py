"""Airflow hook for Tekmetric's partner API: OAuth token, paging, rate limit and retries.

Built on the HTTP provider's ``HttpHook`` (session, TCP keep-alive, base URL); retries, Retry-After
and the adaptive rate limit are the package's one HTTP policy (:mod:`datasync.http`).

Connection ``tekmetric_api`` (type http): host = base URL (``https://sandbox.tekmetric.com`` or
``https://shop.tekmetric.com``; a bare host gets https, a loopback one http), login = client id,
password = client secret, extra e.g. ``{"rate_limit_per_minute": 300, "timeout": 30,
"max_retries": 8, "backoff_base": 1}``. The token, the secret and the Authorization header
never reach a log line or an exception message.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from airflow.providers.http.hooks.http import HttpHook

from datasync.http import GaveUp, HttpPolicy, RateLimiter, Transient, retry_after_seconds
from datasync.tekmetric.values import UTC, format_timestamp, parse_timestamp

__all__ = ["RateLimiter", "TekmetricHook", "TekmetricError", "TekmetricAuthError", "TekmetricHTTPError",
           "TekmetricUnavailable", "WindowRead", "WindowStats"]

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
DEFAULT_CONN_ID = "tekmetric_api"
NO_DELETED_FILTER = ("employees", "jobs")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class TekmetricError(RuntimeError):
    """Anything the Tekmetric API or its connection gets wrong."""


class TekmetricAuthError(TekmetricError):
    """Credentials refused, or a fresh token rejected too."""


class TekmetricHTTPError(TekmetricError):
    """A 4xx answer other than 401/429: the request itself is wrong."""

    def __init__(self, status: int, method: str, where: str, message: str | None):
        self.status, self.method, self.where, self.message = status, method, where, message
        super().__init__(f"Tekmetric answered HTTP {status} to {method} {where}: {message or 'no message'}")


class TekmetricUnavailable(TekmetricError):
    """429, 5xx, timeouts or connection errors outlasted every retry."""

    def __init__(self, method: str, where: str, attempts: int, problem: str, message: str | None = None):
        self.method, self.where, self.attempts, self.problem = method, where, attempts, problem
        detail = f" ({message})" if message else ""
        super().__init__(f"Tekmetric {method} {where} still failing after {attempts} attempts: {problem}{detail}")


@dataclass(frozen=True)
class TekmetricSettings:
    base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    rate_limit_per_minute: float
    timeout: float
    max_retries: int
    backoff_base: float
    backoff_cap: float


@dataclass
class WindowStats:
    requests: int = 0  # HTTP requests made, retries and token requests included
    pages: int = 0
    rereads: int = 0
    received: int = 0  # records received, duplicates included
    total_elements: int = 0  # as the last pass's first page announced it
    consistent: bool = True  # the last pass saw exactly totalElements distinct records


@dataclass
class WindowRead:
    records: list[dict]
    stats: WindowStats


class TekmetricHook(HttpHook):
    """Talks to Tekmetric for one connection; safe to share between threads. No I/O until first use.

    Unlike a plain ``HttpHook``, the session carries no credentials (the client secret goes to the
    token endpoint only, the token per request) and the connection's extra holds settings, not headers.
    """

    conn_name_attr = "tekmetric_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "http"
    hook_name = "Tekmetric"

    def __init__(self, tekmetric_conn_id: str = DEFAULT_CONN_ID, *, rate_limit_per_minute: float | None = None,
                 timeout: float | None = None, max_retries: int | None = None, backoff_base: float | None = None,
                 backoff_cap: float | None = None, page_size: int = 100):
        super().__init__(method="GET", http_conn_id=tekmetric_conn_id)
        self.tekmetric_conn_id = tekmetric_conn_id
        self.page_size = page_size
        self._overrides = {"rate_limit_per_minute": rate_limit_per_minute, "timeout": timeout,
                           "max_retries": max_retries, "backoff_base": backoff_base, "backoff_cap": backoff_cap}
        self._settings: TekmetricSettings | None = None
        self._session: requests.Session | None = None
        self._limiter: RateLimiter | None = None
        self._setup_lock = threading.Lock()
        self._token: str | None = None
        self._scope: list[int] = []
        self._token_lock = threading.Lock()
        self._requests_made = 0
        self._count_lock = threading.Lock()
        self._local = threading.local()

    # -- configuration ---------------------------------------------------------------------

    @property
    def settings(self) -> TekmetricSettings:
        if self._settings is None:
            with self._setup_lock:
                if self._settings is None:
                    settings = self._load_settings()
                    self._limiter = RateLimiter(settings.rate_limit_per_minute)
                    self._policy = HttpPolicy(settings.max_retries, settings.backoff_base, settings.backoff_cap)
                    self._session = super().get_conn(
                        headers={"Accept": "application/json", "User-Agent": "datasync-tekmetric/1"})
                    self._settings = settings
        return self._settings

    def _load_settings(self) -> TekmetricSettings:
        conn = self.get_connection(self.tekmetric_conn_id)
        if not conn.login or not conn.password:
            raise TekmetricError(f"Connection {self.tekmetric_conn_id!r} needs login (client id) "
                                 "and password (client secret)")
        base_url = _base_url(conn.host, conn.schema, conn.port, self.tekmetric_conn_id)
        extra = conn.extra_dejson or {}
        default_rate = 300 if "sandbox" in (urlsplit(base_url).hostname or "") else 600

        def pick(name: str, default: float, cast: type) -> Any:
            value = self._overrides.get(name)
            value = extra.get(name, default) if value is None else value
            try:
                return cast(value)
            except (TypeError, ValueError):
                raise TekmetricError(
                    f"Connection {self.tekmetric_conn_id!r}: extra {name}={value!r} is not a number") from None

        return TekmetricSettings(
            base_url=base_url, client_id=conn.login, client_secret=conn.password,
            rate_limit_per_minute=pick("rate_limit_per_minute", default_rate, float),
            timeout=pick("timeout", 30, float),
            max_retries=pick("max_retries", 8, int), backoff_base=pick("backoff_base", 1.0, float),
            backoff_cap=pick("backoff_cap", 60.0, float),
        )

    def get_conn(self, headers: dict[str, Any] | None = None, extra_options: dict[str, Any] | None = None) -> requests.Session:
        """The hook's one ``requests`` session (no auth on it: tokens go per request)."""
        self.settings  # read (and validate) the connection before handing out the session
        return self._session

    # HttpHook's session set-up, adapted: our base URL rules, no session auth, extras are settings.
    def _set_base_url(self, connection: Any) -> None:
        self.base_url = _base_url(connection.host, connection.schema, connection.port, self.tekmetric_conn_id)
        self._base_url_initialized = True

    def _extract_auth(self, connection: Any) -> None:
        return None

    def _configure_session_from_extra(self, session: requests.Session, connection: Any,
                                      extra_options: dict[str, Any]) -> requests.Session:
        return session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema"],
            "relabeling": {"host": "Base URL", "login": "Client ID", "password": "Client secret"},
            "placeholders": {"host": "https://sandbox.tekmetric.com",
                             "extra": '{"rate_limit_per_minute": 300, "timeout": 30, "max_retries": 8}'},
        }

    def test_connection(self) -> tuple[bool, str]:
        try:
            shops = self.get_shops()
        except Exception as exc:  # the UI shows the message
            return False, str(exc)
        return True, f"Token covers shops {self.scope_shop_ids()}; {len(shops)} shop(s) readable"

    # -- token -----------------------------------------------------------------------------

    def get_token(self) -> str:
        """The cached token, fetched on first use (Tekmetric tokens live until revoked)."""
        with self._token_lock:  # one fetch even when many threads need it
            if self._token is None:
                self._token, self._scope = self._fetch_token()
            return self._token

    def scope_shop_ids(self) -> list[int]:
        """Shop ids the token may read (the token response's ``scope``)."""
        self.get_token()
        return list(self._scope)

    def _fetch_token(self) -> tuple[str, list[int]]:
        s = self.settings
        where = f"{API_PREFIX}/oauth/token"
        response = self._send("POST", where, where, data={"grant_type": "client_credentials"},
                              auth=(s.client_id, s.client_secret),
                              headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"})
        if response.status_code in (400, 401, 403):
            raise TekmetricAuthError(
                f"Tekmetric refused the client credentials of connection {self.tekmetric_conn_id!r} "
                f"(HTTP {response.status_code} on POST {where}: {_message(response) or 'no message'}); "
                "check its login (client id) and password (client secret)")
        if response.status_code >= 400:
            raise TekmetricHTTPError(response.status_code, "POST", where, _message(response))
        payload = _json(response, "POST", where)
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not token:
            raise TekmetricAuthError(f"Tekmetric's answer to POST {where} has no access_token")
        _mask(token)
        scope = [int(part) for part in str(payload.get("scope") or "").split() if part.isdigit()]
        log.info("Got a Tekmetric API token for connection %s; it covers shops %s", self.tekmetric_conn_id, scope)
        return token, scope

    def _drop_token(self, token: str) -> None:
        with self._token_lock:
            if self._token == token:  # another thread may have refreshed it already
                self._token = None

    # -- requests --------------------------------------------------------------------------

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET an API path (``/customers`` or ``/api/v1/customers``) and return its JSON."""
        path = _api_path(path)
        where = _where(path, params)
        refreshed = False
        while True:
            token = self.get_token()
            response = self._send("GET", path, where, params=params, headers={"Authorization": f"Bearer {token}"})
            if response.status_code != 401:
                break
            if refreshed:
                raise TekmetricAuthError(
                    f"Tekmetric answered 401 Unauthorized to GET {where} even with a freshly issued token "
                    f"(connection {self.tekmetric_conn_id!r}); the app's access was revoked or the token is being "
                    "revoked repeatedly. Check the app in Tekmetric before rerunning.")
            log.warning("Tekmetric answered 401 to GET %s (token revoked or invalid); "
                        "getting a new token and retrying once", where)
            self._drop_token(token)
            refreshed = True
        if response.status_code >= 400:
            raise TekmetricHTTPError(response.status_code, "GET", where, _message(response))
        return _json(response, "GET", where)

    def _send(self, method: str, path: str, where: str, **kwargs: Any) -> requests.Response:
        """One call through the rate limiter, retried on 429, 5xx, timeouts and connection errors."""
        s = self.settings

        def attempt() -> requests.Response:
            with self._count_lock:
                self._requests_made += 1
            self._local.requests = getattr(self._local, "requests", 0) + 1
            request = self._session.prepare_request(requests.Request(method, self.url_from_endpoint(path), **kwargs))
            try:
                response = self.run_and_check(self._session, request, {"timeout": s.timeout, "check_response": False})
            except requests.Timeout:
                raise Transient(f"no answer within {s.timeout:g} s") from None
            except requests.ConnectionError as exc:
                raise Transient(f"connection failed ({type(exc).__name__})") from None
            if response.status_code == 429 or response.status_code >= 500:
                raise Transient(f"HTTP {response.status_code}", response=response, throttled=response.status_code == 429,
                                retry_after=retry_after_seconds(response.headers.get("Retry-After")))
            return response

        def on_retry(repeat: int, problem: Transient, wait: float) -> None:
            log.warning("Tekmetric %s %s: %s; retry %d of %d in %.2f s", method, where, problem.problem,
                        repeat, s.max_retries, wait)

        try:
            return self._policy.call(attempt, limiter=self._limiter, on_retry=on_retry)
        except GaveUp as exc:
            detail = _message(exc.last.response) if exc.last.response is not None else None
            raise TekmetricUnavailable(method, where, exc.attempts, exc.last.problem, detail) from None

    @property
    def requests_made(self) -> int:
        """HTTP requests this hook has sent (all threads, retries and token requests included)."""
        with self._count_lock:
            return self._requests_made

    # -- endpoints -------------------------------------------------------------------------

    def get_shops(self) -> list[dict]:
        shops = self.get_json("/shops")
        if not isinstance(shops, list):
            raise TekmetricError("Tekmetric's /shops answer is not a list")
        log.info("Fetched %d shop(s) from Tekmetric", len(shops))
        return shops

    def get_repair_order(self, repair_order_id: int) -> dict:
        return self.get_json(f"/repair-orders/{int(repair_order_id)}")

    def iter_pages(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[tuple[int, list[dict], dict]]:
        """``(page number, records, envelope)`` for each page until Tekmetric says ``last``."""
        path = _api_path(path)
        query = {"size": self.page_size, **(params or {})}
        page = int(query.pop("page", 0))
        shop = f" for shop {query['shop']}" if "shop" in query else ""
        while True:
            envelope = self.get_json(path, {**query, "page": page})
            if not isinstance(envelope, dict) or "content" not in envelope:
                raise TekmetricError(f"Tekmetric's answer to GET {_where(path, query)} is not a page")
            content = envelope["content"] or []
            log.info("Fetched page %d of %s%s: %d records (%s in total)", page, path.removeprefix(API_PREFIX), shop,
                     len(content), envelope.get("totalElements"))
            yield page, content, envelope
            if envelope.get("last", True) or not content:
                return
            page += 1

    def iter_records(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[dict]:
        for _, content, _ in self.iter_pages(path, params):
            yield from content

    def read_window(self, path: str, shop_id: int, start: dt.datetime | str | None, end: dt.datetime | str | None,
                    deleted: bool = False, *, max_rereads: int = 1,
                    params: Mapping[str, Any] | None = None) -> WindowRead:
        """Every record of one shop changed (or, with ``deleted``, deleted) within ``[start, end]``.

        Tekmetric pages by offset and cannot sort by updatedDate, so records changing during
        the read shift the pages. Each pass is checked against ``totalElements``; a pass that
        saw fewer distinct records (or a changing total) is read again, up to ``max_rereads``
        times, and all passes are merged by id keeping the newest ``updatedDate``. Bounds go
        out at whole seconds, widened (start down, end up): the window never shrinks.
        """
        path = _api_path(path)
        kind = path.removeprefix(API_PREFIX + "/")
        if deleted and kind in NO_DELETED_FILTER:
            raise ValueError(f"/{kind} has no deleted-date filter in Tekmetric; read it fully instead")
        field_name = "deletedDate" if deleted else "updatedDate"
        query: dict[str, Any] = {**(params or {}), "shop": shop_id}
        if start is not None:
            query[f"{field_name}Start"] = _bound(start, up=False)
        if end is not None:
            query[f"{field_name}End"] = _bound(end, up=True)
        stats, merged = WindowStats(), {}
        requests_before = getattr(self._local, "requests", 0)
        for attempt in range(max_rereads + 1):
            if attempt:
                stats.rereads += 1
            seen: set[Any] = set()
            totals: list[int] = []
            for _, content, envelope in self.iter_pages(path, query):
                stats.pages += 1
                totals.append(envelope.get("totalElements") or 0)
                for record in content:
                    stats.received += 1
                    seen.add(record["id"])
                    _keep_newest(merged, record)
            stats.total_elements = totals[0] if totals else 0
            stats.consistent = len(set(totals)) <= 1 and len(seen) == stats.total_elements
            if stats.consistent:
                break
            log.warning("Records of %s for shop %s changed while paging (%d distinct received, totalElements %s)%s",
                        kind, shop_id, len(seen), "/".join(map(str, dict.fromkeys(totals))),
                        "; reading the window again" if attempt < max_rereads
                        else "; giving up re-reading, the overlap of the next window covers the rest")
        stats.requests = getattr(self._local, "requests", 0) - requests_before
        label = "deleted" if deleted else "changed"
        log.info("Read %d %s %s of shop %s between %s and %s: %d pages, %d requests, %d re-reads",
                 len(merged), label, kind, shop_id, query.get(f"{field_name}Start", "the beginning"),
                 query.get(f"{field_name}End", "now"), stats.pages, stats.requests, stats.rereads)
        return WindowRead(sorted(merged.values(), key=lambda r: r["id"]), stats)


def _base_url(host: str | None, schema: str | None, port: int | None, conn_id: str) -> str:
    host = (host or "").strip().rstrip("/")
    if not host:
        raise TekmetricError(f"Connection {conn_id!r} has no host; "
                             "use https://sandbox.tekmetric.com or https://shop.tekmetric.com")
    if "://" not in host:
        bare = host.split("/")[0].rsplit(":", 1)[0].strip("[]")
        scheme = schema if schema in ("http", "https") else ("http" if bare in LOOPBACK else "https")
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    netloc = parts.netloc if parts.port or not port else f"{parts.netloc}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/').removesuffix(API_PREFIX)}"


def _api_path(path: str) -> str:
    path = "/" + path.strip("/")
    return path if path.startswith(API_PREFIX + "/") else API_PREFIX + path


def _where(path: str, params: Mapping[str, Any] | None) -> str:
    """Path and query for messages (the query holds shop ids and dates, never credentials)."""
    return f"{path}?{urlencode(params, doseq=True)}" if params else path


def _message(response: requests.Response) -> str | None:
    """Tekmetric's error text: ``message`` (API errors) or ``error_description``/``error`` (OAuth)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200] or None
    if isinstance(body, dict):
        return body.get("message") or body.get("error_description") or body.get("error")
    return None


def _json(response: requests.Response, method: str, where: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise TekmetricError(
            f"Tekmetric's answer to {method} {where} is not JSON (HTTP {response.status_code})") from None


def _bound(value: dt.datetime | str, *, up: bool) -> str:
    moment = parse_timestamp(value, "window bound")
    whole = moment.replace(microsecond=0)
    if up and whole != moment:
        whole += dt.timedelta(seconds=1)
    return format_timestamp(whole)


def _keep_newest(merged: dict[Any, dict], record: dict) -> None:
    old = merged.get(record["id"])
    if old is None or (parse_timestamp(record.get("updatedDate"), "updatedDate") or _EPOCH) >= (
            parse_timestamp(old.get("updatedDate"), "updatedDate") or _EPOCH):
        merged[record["id"]] = record


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def _mask(secret: str) -> None:
    """Register with Airflow's log masker too, as a second line of defence."""
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(secret)
    except Exception:  # masking is best effort outside a task
        pass
