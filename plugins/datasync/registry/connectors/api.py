"""HTTP JSON APIs: placeholders for secrets, pagination, a client-side rate limit, retries.

Config::

    {"base_url": "https://api.machine1.factory.com", "endpoint": "/api/v1/production",
     "method": "GET", "headers": {"Authorization": "Bearer {{ conn.machine1_api.password }}"},
     "params": {"line": "A"}, "records_path": "data.items",
     "pagination": {"type": "page", "page_param": "page", "size_param": "per_page", "size": 100},
     "rate_limit": 100, "timeout": 30, "retries": 3, "backoff": 1.0}

Pagination ``type``: ``page`` (stop at a short page) or ``next`` (follow ``next_path`` in the body,
else the ``Link: rel="next"`` header). Secrets are resolved into a private copy of the config and
redacted from every message this module produces.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from datasync.registry.connectors.base import (
    Batch, Record, SourceConfigError, SourceError, batched, check_keys, check_records, positive,
)
from datasync.registry.connectors.placeholders import Secrets
from datasync.registry.dotted import MISSING, get_path

log = logging.getLogger(__name__)

KIND = "api"
OPTIONAL = ("endpoint", "method", "headers", "params", "body", "records_path", "pagination",
            "rate_limit", "timeout", "retries", "backoff", "max_pages")
PAGINATION_KEYS = {"page": {"type", "page_param", "size_param", "size", "start"}, "next": {"type", "next_path"}}
MAX_RETRY_AFTER = 60.0  # seconds: a server asking for longer is treated as down


def validate(config: Mapping[str, Any]) -> None:
    check_keys(KIND, config, ["base_url"], OPTIONAL)
    if "{{" not in str(config["base_url"]):  # e.g. {{ conn.x.host }}: checked once resolved
        _check_url(config["base_url"])
    if str(config.get("method", "GET")).upper() not in ("GET", "POST"):
        raise SourceConfigError(f"{KIND} source: method must be GET or POST")
    for key in ("headers", "params"):
        if not isinstance(config.get(key, {}), Mapping):
            raise SourceConfigError(f"{KIND} source: '{key}' must be an object")
    for key, default in (("rate_limit", 60), ("timeout", 30), ("backoff", 1.0), ("max_pages", 10_000)):
        positive(KIND, key, config.get(key), default)
    retries = config.get("retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise SourceConfigError(f"{KIND} source: retries must be a whole number >= 0")
    pagination = config.get("pagination")
    if pagination is not None:
        kind = pagination.get("type") if isinstance(pagination, Mapping) else None
        if kind not in PAGINATION_KEYS:
            raise SourceConfigError(f"{KIND} source: pagination.type must be one of {sorted(PAGINATION_KEYS)}")
        unknown = set(pagination) - PAGINATION_KEYS[kind]
        if unknown:
            raise SourceConfigError(f"{KIND} source: unknown pagination key(s) {sorted(unknown)} for type '{kind}'")


def _check_url(url: Any) -> None:
    if urlsplit(str(url)).scheme not in ("http", "https"):
        raise SourceConfigError(f"{KIND} source: base_url must be an http(s) URL, not {url!r}")


class RateLimiter:
    """At most ``per_minute`` requests, evenly spaced (the API's quota is per client, not per page)."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 60.0 / per_minute
        self.clock, self.sleep = clock, sleep
        self._next = float("-inf")

    def wait(self) -> None:
        now = self.clock()
        if now < self._next:
            self.sleep(self._next - now)
            now = self._next
        self._next = now + self.interval


def open_source(config: Mapping[str, Any], *, batch_size: int, policy: Any, session: Any = None) -> Iterator[Batch]:
    """``session``: a ``requests.Session`` to reuse (one is made otherwise)."""
    import requests

    validate(config)
    secrets = Secrets()
    # Resolved now, so a missing connection fails before any request; into a private copy,
    # so the registry row keeps its placeholders.
    resolved = secrets.resolve(dict(config))
    _check_url(resolved["base_url"])
    return batched(_records(_Client(resolved, secrets, session or requests.Session())), batch_size)


def _records(client: _Client) -> Iterator[Record]:
    resolved, secrets = client.config, client.secrets
    pagination = resolved.get("pagination") or {}
    url = urljoin(resolved["base_url"].rstrip("/") + "/", str(resolved.get("endpoint") or "").lstrip("/"))
    params = dict(resolved.get("params") or {})
    max_pages = int(resolved.get("max_pages", 10_000))
    seen: set[str] = set()
    page = int(pagination.get("start", 1))
    for n in range(1, max_pages + 1):
        if pagination.get("type") == "page":
            size = int(pagination.get("size", 100))
            params.update({pagination.get("page_param", "page"): page, pagination.get("size_param", "per_page"): size})
        response, doc = client.get_json(url, params)
        records = client.records(doc, url)
        log.info("api source %s: page %d, %d record(s)", secrets.redact(response.url), n, len(records))
        yield from records
        if pagination.get("type") == "page":
            if len(records) < size:
                return
            page += 1
        elif pagination.get("type") == "next":
            next_url = _next_link(doc, response, pagination.get("next_path"))
            if not next_url:
                return
            url, params = client.follow(url, next_url, seen), {}  # the next link carries its own query
        else:
            return
    raise secrets.error(f"{KIND} source {url}: more than max_pages={max_pages} pages; raise max_pages if that is expected")


def _next_link(doc: Any, response: Any, next_path: str | None) -> str | None:
    if next_path:
        value = get_path(doc, next_path)
        return value if isinstance(value, str) and value else None
    return response.links.get("next", {}).get("url")


class _Client:
    def __init__(self, config: Mapping[str, Any], secrets: Secrets, session: Any) -> None:
        self.config, self.secrets, self.session = config, secrets, session
        self.limiter = RateLimiter(float(config.get("rate_limit", 60)))
        self.method = str(config.get("method", "GET")).upper()
        self.origin = urlsplit(config["base_url"])[:2]

    def follow(self, current: str, next_url: str, seen: set[str]) -> str:
        url = urljoin(current, next_url)
        # Our auth headers go with every request: never send them to a host the config did not name.
        if urlsplit(url)[:2] != self.origin:
            raise self.secrets.error(f"{KIND} source: next link {url} leaves {self.config['base_url']}; refusing to follow")
        if url in seen:
            raise self.secrets.error(f"{KIND} source: next link {url} was already fetched (pagination loop)")
        seen.add(url)
        return url

    def get_json(self, url: str, params: Mapping[str, Any]) -> tuple[Any, Any]:
        response = self._request(url, params)
        try:
            return response, response.json()
        except ValueError:
            snippet = response.text[:120].replace("\n", " ")
            raise self.secrets.error(
                f"{KIND} source {response.url}: response is not JSON "
                f"(HTTP {response.status_code}, Content-Type {response.headers.get('Content-Type')!r}): {snippet!r}"
            ) from None

    def records(self, doc: Any, url: str) -> list[Record]:
        where = self.secrets.redact(f"{KIND} source {url}")
        path = self.config.get("records_path")
        if path:
            found = get_path(doc, path)
            if found is MISSING:
                keys = sorted(doc)[:10] if isinstance(doc, dict) else type(doc).__name__
                raise SourceError(f"{where}: records path '{path}' not in the response (top level: {keys})")
            return check_records(where, found)
        if isinstance(doc, dict):
            raise SourceError(f"{where}: the response is an object (keys {sorted(doc)[:10]}); set records_path")
        return check_records(where, doc)

    def _request(self, url: str, params: Mapping[str, Any]) -> Any:
        import requests

        retries = int(self.config.get("retries", 3))
        backoff = float(self.config.get("backoff", 1.0))
        for attempt in range(retries + 1):
            self.limiter.wait()
            delay = backoff * 2**attempt
            try:
                with self.secrets.redacting_logs("urllib3.connectionpool", "requests"):
                    response = self.session.request(
                        self.method, url, params=params or None, headers=self.config.get("headers"),
                        json=self.config.get("body"), timeout=float(self.config.get("timeout", 30)),
                    )
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return response
                problem = f"HTTP {response.status_code}: {response.text[:200]!r}"
                if response.status_code != 429 and response.status_code < 500:
                    hint = " (check the credentials in the Airflow connection)" if response.status_code in (401, 403) else ""
                    raise self.secrets.error(f"{KIND} source {self.method} {response.url}: {problem}{hint}")
                delay = max(delay, _retry_after(response))
            if attempt < retries:
                log.warning("api source %s: %s; retry %d/%d in %.1fs", self.secrets.redact(url),
                            self.secrets.redact(problem)[:200], attempt + 1, retries, delay)
                time.sleep(delay)
        raise self.secrets.error(f"{KIND} source {self.method} {url}: gave up after {retries + 1} attempt(s); last: {problem}")


def _retry_after(response: Any) -> float:
    try:
        return min(float(response.headers.get("Retry-After", 0)), MAX_RETRY_AFTER)
    except ValueError:  # an HTTP date: not worth parsing for a bounded wait
        return 0.0
