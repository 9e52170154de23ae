"""The API connector against a real HTTP server on loopback (requests is never patched)."""

import json
import logging

import pytest

from datasync.http import RateLimiter
from datasync.registry.connectors import SourceConfigError, SourceError, validate_config
from datasync.registry.connectors import open_source as _open_source
from policies import policy


def allow_api(url):
    """What the platform team writes for a test API on loopback: its origin, 127.0.0.1 and the
    placeholders these tests use."""
    return policy(api_origins=[url], api_private_networks=["127.0.0.1/32"],
                  placeholder_connections=["machine1_api", "machine2_api"], placeholder_variables=["machine1_key"])


def open_source(source_type, config, policy=None, **kwargs):
    return _open_source(source_type, config, policy=policy or allow_api(config["base_url"]), **kwargs)

SECRET = "s3cr3t-t0ken/with+chars"
KEY = "var-api-key-98765"


@pytest.fixture
def api_conn(monkeypatch):
    """An Airflow connection and variable defined only in the environment, as in production."""
    monkeypatch.setenv("AIRFLOW_CONN_MACHINE1_API", json.dumps({"conn_type": "http", "login": "svc", "password": SECRET}))
    monkeypatch.setenv("AIRFLOW_VAR_MACHINE1_KEY", KEY)


def config(server, **extra):
    return {"base_url": server.url, "endpoint": "/api/v1/production", "retries": 2, "backoff": 0.01,
            "rate_limit": 6000, "timeout": 5, **extra}


def read_all(cfg, batch_size=1000, policy=None):
    return [r for batch in open_source("api", cfg, batch_size=batch_size, policy=policy) for r in batch]


def test_placeholders_resolved_at_run_time_and_never_logged(http_server, api_conn, caplog):
    http_server.json("/api/v1/production", {"data": [{"id": 1}, {"id": 2}]})
    cfg = config(http_server, headers={"Authorization": "Bearer {{ conn.machine1_api.password }}"},
                 params={"api_key": "{{ var.machine1_key }}", "line": "A"}, records_path="data")
    before = json.dumps(cfg)
    with caplog.at_level(logging.DEBUG):
        assert read_all(cfg) == [{"id": 1}, {"id": 2}]
    req = http_server.requests[0]
    assert req.headers["Authorization"] == f"Bearer {SECRET}"
    assert req.query == {"api_key": KEY, "line": "A"}
    assert json.dumps(cfg) == before  # the config (a registry row) keeps its placeholders
    assert "page 1, 2 record(s)" in caplog.text
    assert SECRET not in caplog.text and KEY not in caplog.text


def test_secrets_redacted_from_errors_and_logs(http_server, api_conn, caplog):
    # A hostile/buggy server echoing the credentials back must not get them into our messages.
    http_server.route("/api/v1/production", lambda req: (500, f"boom {req.headers['Authorization']} {req.query}", {}))
    cfg = config(http_server, headers={"Authorization": "Bearer {{ conn.machine1_api.password }}"},
                 params={"api_key": "{{ var.machine1_key }}"})
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceError) as err:
        read_all(cfg)
    message = str(err.value)
    assert "gave up after 3 attempt(s)" in message and "HTTP 500" in message and "***" in message
    for text in (message, caplog.text):
        assert SECRET not in text and KEY not in text
    assert len(http_server.requests) == 3  # retried twice


def test_base_url_from_the_connection_host(http_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MACHINE2_API", json.dumps({"conn_type": "http", "host": http_server.url}))
    http_server.json("/api/v1/production", [{"id": 3}])
    cfg = config(http_server, base_url="{{ conn.machine2_api.host }}")
    assert read_all(cfg, policy=allow_api(http_server.url)) == [{"id": 3}]


def test_429_and_503_are_retried_then_succeed(http_server):
    answers = iter([(429, {"error": "slow down"}, {"Retry-After": "0"}), (503, "maintenance", {}), (200, [{"id": 7}], {})])
    http_server.route("/api/v1/production", lambda req: next(answers))
    assert read_all(config(http_server)) == [{"id": 7}]
    assert len(http_server.requests) == 3


def test_client_errors_are_not_retried(http_server):
    http_server.json("/api/v1/production", {"error": "bad token"}, status=401)
    with pytest.raises(SourceError, match=r"HTTP 401.*check the credentials"):
        read_all(config(http_server))
    assert len(http_server.requests) == 1


def test_garbage_response_is_a_clear_error(http_server):
    http_server.route("/api/v1/production", lambda req: (200, "<html>Gateway login</html>", {}))
    with pytest.raises(SourceError, match=r"response is not JSON \(HTTP 200, Content-Type 'text/html'\): '<html>Gateway"):
        read_all(config(http_server))


def test_page_size_pagination_stops_at_a_short_page(http_server):
    rows = [{"id": i} for i in range(1, 8)]

    def page(req):
        n, size = int(req.query["page"]), int(req.query["limit"])
        return 200, {"items": rows[(n - 1) * size:n * size]}, {}

    http_server.route("/api/v1/production", page)
    cfg = config(http_server, records_path="items",
                 pagination={"type": "page", "page_param": "page", "size_param": "limit", "size": 3})
    batches = list(open_source("api", cfg, batch_size=2))
    assert [r["id"] for b in batches for r in b] == list(range(1, 8))
    assert [req.query["page"] for req in http_server.requests] == ["1", "2", "3"]


def test_next_link_pagination_from_body_and_header(http_server):
    http_server.json("/api/v1/production", {"data": [{"id": 1}], "links": {"next": "/api/v1/production/p2?cursor=abc"}})
    http_server.route("/api/v1/production/p2", lambda req: (200, {"data": [{"id": 2}], "links": {"next": None}}, {}))
    cfg = config(http_server, records_path="data", pagination={"type": "next", "next_path": "links.next"})
    assert read_all(cfg) == [{"id": 1}, {"id": 2}]
    assert http_server.requests[1].query == {"cursor": "abc"}

    http_server.requests.clear()
    http_server.route("/h1", lambda req: (200, [{"id": 1}], {"Link": f'<{http_server.url}/h2>; rel="next"'}))
    http_server.route("/h2", lambda req: (200, [{"id": 2}], {}))
    assert read_all(config(http_server, endpoint="/h1", pagination={"type": "next"})) == [{"id": 1}, {"id": 2}]


def test_next_link_to_another_host_is_not_followed(http_server, api_conn):
    http_server.json("/api/v1/production", {"data": [], "next": "http://evil.example/steal"})
    cfg = config(http_server, records_path="data", pagination={"type": "next", "next_path": "next"},
                 headers={"Authorization": "Bearer {{ conn.machine1_api.password }}"})
    with pytest.raises(SourceError, match="leaves .* refusing to follow"):
        read_all(cfg)


def test_missing_connection_and_unknown_placeholder(http_server):
    cfg = config(http_server, headers={"Authorization": "Bearer {{ conn.no_such_conn.password }}"})
    with pytest.raises(SourceConfigError, match="rule 'placeholder_connections'.*'no_such_conn'"):
        open_source("api", cfg)  # not one the platform opened to placeholders
    allowed = policy(api_origins=[http_server.url], api_private_networks=["127.0.0.1/32"],
                     placeholder_connections=["no_such_conn"])
    with pytest.raises(SourceConfigError, match="Airflow connection 'no_such_conn' is not available"):
        open_source("api", cfg, policy=allowed)
    with pytest.raises(SourceConfigError, match=r"unknown placeholder '\{\{token\}\}'"):
        open_source("api", config(http_server, headers={"Authorization": "Bearer {{token}}"}))


def test_clear_text_secrets_in_config_are_refused():
    with pytest.raises(SourceConfigError, match=r"'headers\.Authorization' holds a clear-text credential"):
        validate_config("api", {"base_url": "https://x.example", "headers": {"Authorization": "Bearer abc123"}})
    with pytest.raises(SourceConfigError, match=r"'params\.api_key' holds a clear-text credential"):
        validate_config("api", {"base_url": "https://x.example", "params": {"api_key": "abc123"}})


def test_rate_limiter_spaces_requests_evenly():
    now, slept = [100.0], []

    def sleep(seconds):
        slept.append(round(seconds, 6))
        now[0] += seconds

    limiter = RateLimiter(120, clock=lambda: now[0], sleep=sleep)  # 2/s: one every 0.5 s
    for _ in range(3):
        limiter.acquire()
    assert slept == [0.5, 0.5]
    now[0] += 10  # idle time is not "saved up" into a burst
    limiter.acquire()
    limiter.acquire()
    assert slept == [0.5, 0.5, 0.5]
