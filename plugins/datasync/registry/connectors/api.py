"""HTTP JSON APIs: placeholders for secrets, pagination, a client-side rate limit, retries.

Retries, ``Retry-After`` and the (adaptive) rate limit are the package's one HTTP policy
(:mod:`datasync.http`): ``retries``, ``backoff`` and ``rate_limit`` below configure it per source.

Config::

    {"base_url": "https://api.machine1.factory.com", "endpoint": "/api/v1/production",
     "method": "GET", "headers": {"Authorization": "Bearer {{ conn.machine1_api.password }}"},
     "params": {"line": "A"}, "records_path": "data.items",
     "pagination": {"type": "page", "page_param": "page", "size_param": "per_page", "size": 100},
     "rate_limit": 100, "timeout": 30, "retries": 3, "backoff": 1.0}

Pagination ``type``: ``page`` (stop at a short page) or ``next`` (follow ``next_path`` in the body,
else the ``Link: rel="next"`` header). Secrets are resolved into a private copy of the config and
redacted from every message this module produces.

Where a registry row may send requests is the platform's call (``RegistryPolicy``): every URL
requested here (the first, each redirect, each next link) passes ``policy.api_url`` just before
it is sent, and the connection goes to the address that check resolved
(:class:`~datasync.registry.connectors.pinning.PinnedAdapter`).
Redirects are followed here, not by requests, because requests carries every configured header
except ``Authorization`` to whatever host a server names: configured headers, query parameters
and body go to the configured origin only. Response bodies are streamed and cut off at the
policy's ``limits.api_response_bytes``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from http.cookiejar import DefaultCookiePolicy
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from datasync.http import GaveUp, HttpPolicy, RateLimiter, Transient, retry_after_seconds
from datasync.registry.connectors.base import (
    Batch, Record, SourceConfigError, SourceError, batched, check_keys, check_records, positive,
)
from datasync.registry.connectors.placeholders import Secrets
from datasync.registry.dotted import MISSING, get_path
from datasync.registry.redact import redact

if TYPE_CHECKING:
    from datasync.registry.policy import RegistryPolicy

log = logging.getLogger(__name__)

KIND = "api"
OPTIONAL = ("endpoint", "method", "headers", "params", "body", "records_path", "pagination",
            "rate_limit", "timeout", "retries", "backoff", "max_pages")
PAGINATION_KEYS = {"page": {"type", "page_param", "size_param", "size", "start"}, "next": {"type", "next_path"}}
MAX_RETRY_AFTER = 60.0  # seconds: the longest wait between attempts, whatever Retry-After asks
MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
ERROR_BODY_BYTES = 2048  # what an error response may show of itself


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


def open_source(config: Mapping[str, Any], *, batch_size: int, policy: RegistryPolicy,
                session: Any = None) -> Iterator[Batch]:
    """``session``: a ``requests.Session`` to reuse (one is made otherwise); the policy's
    address-pinning adapter is mounted on it."""
    import requests

    from datasync.registry.connectors.pinning import PinnedAdapter

    validate(config)
    secrets = Secrets(policy)
    literal = "{{" not in str(config["base_url"])
    where = f"{KIND} source {_shown(config['base_url'])}" if literal else f"{KIND} source"
    try:
        if literal:  # a host the platform has not allowed gets no secret looked up for it
            _check_now(policy, config["base_url"])
        # Resolved now, so a missing connection fails before any request; into a private copy,
        # so the registry row keeps its placeholders.
        resolved = secrets.resolve(dict(config))
        _check_url(resolved["base_url"])
        if urlsplit(resolved["base_url"]).username is not None:
            raise SourceConfigError(f"{KIND} source: base_url may not carry user info; send credentials in headers")
        if not literal:
            _check_now(policy, resolved["base_url"])
    except _rules().PolicyRefused as exc:
        raise exc.at(redact(where)) from None
    session = session or requests.Session()
    session.trust_env = False  # no proxy (it would resolve names unchecked) and no ~/.netrc credentials
    # No cookies kept from responses: a jar does not tell ports apart, so one origin's session
    # cookie would follow a redirect to another origin on the same host.
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    adapter = PinnedAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return batched(_records(_Client(resolved, secrets, session, policy)), batch_size)


def _check_now(policy: RegistryPolicy, url: str) -> None:
    """Refuse before anything is sent what the policy refuses. A name that does not resolve (yet)
    is left to the requests, which check it again and retry."""
    try:
        policy.api_url(url)
    except _rules().PolicyRefused:
        raise
    except SourceConfigError:
        pass


def _records(client: _Client) -> Iterator[Record]:
    resolved = client.config
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
        log.info("api source %s: page %d, %d record(s)", _shown(response.url), n, len(records))
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
    raise client.secrets.error(f"{KIND} source {_shown(url)}: more than max_pages={max_pages} pages; "
                               "raise max_pages if that is expected")


def _next_link(doc: Any, response: Any, next_path: str | None) -> str | None:
    if next_path:
        value = get_path(doc, next_path)
        return value if isinstance(value, str) and value else None
    return response.links.get("next", {}).get("url")


def _rules() -> ModuleType:
    """:mod:`datasync.registry.policy`, imported on first use (it imports this package)."""
    from datasync.registry import policy

    return policy


def _shown(url: Any) -> str:
    """A URL for messages: never its query string or user info (where credentials travel)."""
    return redact(_rules().shown_url(url))


def _origin(url: str) -> str:
    return _rules().origin(url)


def _refused(rule: str, detail: str, where: str) -> SourceError:
    return _rules().PolicyRefused(rule, redact(detail), where=redact(where))


class _Client:
    def __init__(self, config: Mapping[str, Any], secrets: Secrets, session: Any, policy: RegistryPolicy) -> None:
        self.config, self.secrets, self.session, self.policy = config, secrets, session, policy
        self.limiter = RateLimiter(float(config.get("rate_limit", 60)))
        self.method = str(config.get("method", "GET")).upper()
        self.origin = _origin(config["base_url"])

    def follow(self, current: str, next_url: str, seen: set[str]) -> str:
        url = _join(current, next_url)
        if url is None:
            raise self.secrets.error(f"{KIND} source {_shown(current)}: next link {_shown(next_url)} is not a valid URL")
        # Our auth headers go with every request: never send them to a host the config did not name.
        if _same_origin(url, self.origin) is not True:
            raise self.secrets.error(f"{KIND} source: next link {_shown(url)} leaves {self.origin}; refusing to follow")
        if url in seen:
            raise self.secrets.error(f"{KIND} source: next link {_shown(url)} was already fetched (pagination loop)")
        seen.add(url)
        return url

    def get_json(self, url: str, params: Mapping[str, Any]) -> tuple[Any, Any]:
        response, body = self._request(url, params)
        try:
            return response, json.loads(body.decode(response.encoding or "utf-8"))
        except (ValueError, LookupError):  # UnicodeDecodeError is a ValueError; LookupError: unknown charset
            snippet = body[:120].decode("utf-8", "replace").replace("\n", " ")
            raise self.secrets.error(
                f"{KIND} source {_shown(response.url)}: response is not JSON "
                f"(HTTP {response.status_code}, Content-Type {response.headers.get('Content-Type')!r}): {snippet!r}"
            ) from None

    def records(self, doc: Any, url: str) -> list[Record]:
        where = self.secrets.redact(f"{KIND} source {_shown(url)}")
        path = self.config.get("records_path")
        if path:
            found = get_path(doc, path)
            if found is MISSING:
                keys = sorted(doc)[:10] if isinstance(doc, dict) else type(doc).__name__
                raise SourceError(self.secrets.redact(f"{where}: records path '{path}' not in the response (top level: {keys})"))
            return check_records(where, found)
        if isinstance(doc, dict):
            raise SourceError(self.secrets.redact(f"{where}: the response is an object (keys {sorted(doc)[:10]}); set records_path"))
        return check_records(where, doc)

    def _request(self, url: str, params: Mapping[str, Any]) -> tuple[Any, bytes]:
        """One logical GET/POST: retried on connection trouble, 429 and 5xx; redirects followed by _send."""
        import requests

        where = f"{KIND} source {self.method} {_shown(url)}"
        retries = int(self.config.get("retries", 3))
        policy = HttpPolicy(max_retries=retries, backoff_base=float(self.config.get("backoff", 1.0)),
                            backoff_cap=MAX_RETRY_AFTER)

        def attempt() -> tuple[Any, bytes]:
            try:
                response, body = self._send(url, params)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                raise Transient(_describe(exc)) from None
            except SourceError:  # refusals and limits (PolicyRefused is a ValueError too)
                raise
            except (requests.RequestException, ValueError) as exc:  # InvalidURL, ContentDecodingError, ...: final
                # (ValueError: requests parses a redirect's Location even when not following it)
                raise self.secrets.error(f"{where}: {_describe(exc)}") from None
            if response.status_code < 400:
                return response, body
            problem = f"HTTP {response.status_code}: {body[:200]!r}"
            if response.status_code != 429 and response.status_code < 500:
                hint = " (check the credentials in the Airflow connection)" if response.status_code in (401, 403) else ""
                raise self.secrets.error(f"{where}: {problem}{hint}")
            raise Transient(problem, throttled=response.status_code == 429,
                            retry_after=retry_after_seconds(response.headers.get("Retry-After")))

        def on_retry(repeat: int, transient: Transient, wait: float) -> None:
            log.warning("api source %s: %s; retry %d/%d in %.1fs", _shown(url),
                        self.secrets.redact(transient.problem)[:200], repeat, retries, wait)

        try:
            return policy.call(attempt, limiter=self.limiter, on_retry=on_retry)
        except GaveUp as exc:
            raise self.secrets.error(f"{where}: gave up after {exc.attempts} attempt(s); last: {exc.last.problem}") from None

    def _send(self, url: str, params: Mapping[str, Any]) -> tuple[Any, bytes]:
        """One request and the redirects it leads to. What the config adds (headers, query, body)
        goes to the configured origin only; a redirect elsewhere must be to an allowed origin and
        gets none of it."""
        method, headers, body, query = self.method, self.config.get("headers"), self.config.get("body"), params or None
        for hop in range(MAX_REDIRECTS + 1):
            if hop:  # the first request of an attempt waited for its slot in HttpPolicy.call
                self.limiter.acquire()
            with self.secrets.redacting_logs("urllib3.connectionpool", "requests"):
                response = self.session.request(method, url, params=query, headers=headers, json=body,
                                                timeout=float(self.config.get("timeout", 30)),
                                                allow_redirects=False, stream=True)
            try:
                if not response.is_redirect:
                    return response, self._body(response)
                target = urljoin(response.url, response.headers["Location"])  # requests parsed it already
            finally:
                response.close()
            method, body = self._redirect(response, target, method, body)
            if _same_origin(target, self.origin) is not True:
                headers = body = None
            url, query = target, None  # the Location is the whole target, query included
        raise _refused("api_redirects", f"more than {MAX_REDIRECTS} redirects", f"{KIND} source {_shown(url)}")

    def _redirect(self, response: Any, target: str, method: str, body: Any) -> tuple[str, Any]:
        """Whether (and how) ``target`` may be followed; refusals name the rule."""
        where = f"{KIND} source {_shown(response.url)}"
        hop = f"HTTP {response.status_code} redirect"
        scheme = urlsplit(target).scheme.lower()
        if scheme not in ("http", "https"):
            raise _refused("api_redirects", f"{hop} to a {scheme or 'relative'}: URL; only http(s) is followed", where)
        same = _same_origin(target, self.origin)
        if same is None:
            raise _refused("api_redirects", f"{hop} to {_shown(target)}: not a valid URL", where)
        if not same:
            target_origin = _origin(target)
            if target_origin not in self.policy.api_origins:
                raise _refused("api_origins", f"{hop} to {target_origin} leaves {self.origin}, "
                                              "and that origin is not allowed", where)
            if redact(target) != target:  # the server copied a credential into the Location
                raise _refused("api_redirects", f"{hop} to {target_origin} would carry a credential there", where)
            if body is not None and response.status_code in (307, 308):
                raise _refused("api_redirects", f"{hop} to {target_origin} would resend the request body there", where)
        if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
            return "GET", None  # what browsers do: the body is not sent again
        return method, body

    def _body(self, response: Any) -> bytes:
        """The (decoded) body, refused past the policy's limit without reading it all; of an
        error response only its first bytes."""
        if response.status_code >= 400:
            return next(response.iter_content(ERROR_BODY_BYTES), b"")[:ERROR_BODY_BYTES]
        where = f"{KIND} source {_shown(response.url)}"
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit():
            self.policy.limits.check("api_response_bytes", int(declared), "the response (Content-Length)", where)
        chunks, size = [], 0
        for chunk in response.iter_content(CHUNK_BYTES):
            size += len(chunk)
            self.policy.limits.check("api_response_bytes", size, "the response body read so far", where)
            chunks.append(chunk)
        return b"".join(chunks)


def _same_origin(url: str, origin: str) -> bool | None:
    """True/False; None when ``url`` has no origin at all (not http(s), bad port)."""
    try:
        return _origin(url) == origin
    except ValueError:  # PolicyRefused is one too
        return None


def _join(base: str, ref: str) -> str | None:
    try:
        return urljoin(base, ref)
    except ValueError:  # e.g. "http://[::1" (an unclosed IPv6 host)
        return None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
