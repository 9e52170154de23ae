"""Registry rows are untrusted: API sources, placeholders, redaction and clear-text secrets, tried
as an attacker would. Real HTTP servers on loopback (a second one plays "another origin" and
records whatever reaches it), placeholders resolved from AIRFLOW_CONN_*/AIRFLOW_VAR_* like in
production, real PostgreSQL for the CHECK and for DAG runs of the registry runner.

Every refusal is asserted by its message (the source and the policy rule), by what the servers
received (nothing, or nothing secret), and by the absence of every spelling of every secret from
whatever the run kept: history, the registry row, sync_log, sync_rejects, XCom, the task log."""

from __future__ import annotations

import base64
import gzip
import json
import os
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, quote_plus

import psycopg
import pytest

from datasync.registry.connectors import SourceConfigError, SourceError, open_source, validate_config
from datasync.registry.connectors import api as api_connector
from datasync.registry.connectors.placeholders import (
    PLACEHOLDER_PATTERN, SECRET_KEY_PATTERN, SECRET_VALUE_PATTERNS, find_clear_secret,
)
from datasync.registry.policy import PolicyRefused, RegistryPolicy
from datasync.registry.redact import REDACTOR, redact
from policies import allow_command, policy

SECRET = "pa$$/w+rd=x?&'q\\z-7Hk2"  # a connection password: '/', '+', '=', '?', '&', quote and backslash
LOGIN = "svc-reader-4411"
KEY = "var-key 0x5EED/+?"  # a variable: a space, '/', '+', '?'
DB_PASSWORD = "Registry-DB-Pw-93f1!"  # the registry database's own password (platform-owned)


def spellings(secret: str) -> dict[str, str]:
    """Every form a secret takes in text, written out here independently of the code under test."""
    raw = secret.encode()
    return {
        "plain": secret, "repr": repr(secret)[1:-1], "json": json.dumps(secret)[1:-1],
        "percent": quote(secret, safe=""), "percent-path": quote(secret), "percent-plus": quote_plus(secret),
        "base64": base64.b64encode(raw).decode(), "base64-urlsafe": base64.urlsafe_b64encode(raw).decode(),
    }


BASIC = base64.b64encode(f"{LOGIN}:{SECRET}".encode()).decode()


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets or (SECRET, KEY, DB_PASSWORD):
        for form, value in spellings(secret).items():
            assert value not in text, f"the {form} form of a secret leaked"
    assert BASIC not in text, "the Basic-auth form of login:password leaked"


def received(server) -> str:
    return json.dumps([[r.method, r.target, r.headers, r.body.decode("latin-1")] for r in server.requests])


@pytest.fixture
def secrets_env(monkeypatch):
    """Airflow connections and variables as the platform team defines them (environment)."""
    monkeypatch.setenv("AIRFLOW_CONN_MACHINE1_API", json.dumps({"conn_type": "http", "login": LOGIN, "password": SECRET}))
    monkeypatch.setenv("AIRFLOW_VAR_MACHINE1_KEY", KEY)
    monkeypatch.setenv("AIRFLOW_VAR_NEWLINE_KEY", "nl-key-55aa\n")
    monkeypatch.setenv("AIRFLOW_CONN_PADDED_API", json.dumps({"conn_type": "http", "password": " padded-pw-77 "}))
    monkeypatch.setenv("AIRFLOW_CONN_REGISTRY_DB", f"postgresql://postgres:{quote(DB_PASSWORD, safe='')}@127.0.0.1:5432/x")


def allow(*origins: str, networks=("127.0.0.1/32",), **doc):
    doc.setdefault("placeholder_connections", ["machine1_api", "padded_api"])
    doc.setdefault("placeholder_variables", ["machine1_key", "newline_key"])
    return policy(api_origins=list(origins), api_private_networks=list(networks), **doc)


def api(base_url: str, **extra) -> dict:
    """A config carrying secrets every way a config can: headers, query, a Basic pair."""
    return {"base_url": base_url, "endpoint": "/data", "retries": 1, "backoff": 0.01, "rate_limit": 60000, "timeout": 5,
            "headers": {"X-Api-Key": "{{ var.machine1_key }}", "Authorization": "Bearer {{ conn.machine1_api.password }}",
                        "X-Basic": "{{ conn.machine1_api.login }}:{{ conn.machine1_api.password }}"},
            "params": {"api_key": "{{ var.machine1_key }}"}, **extra}


def read(config: dict, pol: RegistryPolicy, session=None) -> list[dict]:
    if session is not None:  # only the connector itself takes a session
        validate_config("api", config)
        batches = api_connector.open_source(config, policy=pol, batch_size=1000, session=session)
    else:
        batches = open_source("api", config, policy=pol, batch_size=1000)
    return [r for batch in batches for r in batch]


def refused(config: dict, pol: RegistryPolicy, rule: str, *, exc=PolicyRefused, **kw) -> str:
    with pytest.raises(exc) as err:
        read(config, pol, **kw)
    message = str(err.value)
    assert f"rule '{rule}'" in message, message
    assert_no_secret(message)
    return message


# ---- where a registry row may send requests ----------------------------------------------------------
def test_default_policy_allows_no_api_at_all(http_server, secrets_env):
    http_server.json("/data", [{"id": 1}])
    message = refused(api(http_server.url), policy(), "api_origins")
    assert f"api source {http_server.url}: " in message and "is not allowed" in message
    assert http_server.requests == []


def test_postgres_port_on_loopback_is_refused(http_server, secrets_env):
    message = refused(api("http://127.0.0.1:5432/"), allow(http_server.url), "api_origins")
    assert "API origin http://127.0.0.1:5432 is not allowed" in message
    # allowed as an origin but not as a network: still refused, before any connection
    message = refused(api("http://127.0.0.1:5432/"), allow("http://127.0.0.1:5432", networks=()), "api_private_networks")
    assert "resolves to non-public address 127.0.0.1" in message


@pytest.mark.parametrize("host", ["169.254.169.254", "10.0.0.7", "172.16.5.4", "192.168.1.1", "100.64.0.1", "0.0.0.0",
                                  "[::1]", "[fe80::1]", "[fc00::1]", "[::ffff:10.0.0.1]", "[::ffff:169.254.169.254]"])
def test_metadata_private_loopback_and_link_local_addresses_are_refused(host, secrets_env):
    url = f"http://{host}:8080"
    started = time.monotonic()
    message = refused(api(url), allow(url), "api_private_networks")  # origin allowed, address not
    assert "resolves to non-public address" in message
    assert time.monotonic() - started < 2  # refused, not tried


def test_a_name_resolving_to_loopback_is_refused(http_server, secrets_env):
    http_server.json("/data", [{"id": 1}])
    port = http_server.url.rsplit(":", 1)[1]
    message = refused(api(f"http://localhost:{port}"), allow(f"http://localhost:{port}", networks=()), "api_private_networks")
    assert "API host localhost resolves to non-public address 127.0.0.1" in message
    assert http_server.requests == []  # the server behind "localhost" heard nothing


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "017700000001", "0177.0.0.1", "127.1", "0x7f.0.0.1", "127.0.0.1."])
def test_unusual_spellings_of_an_ip_address_are_refused(http_server, host, secrets_env):
    http_server.json("/data", [{"id": 1}])
    port = http_server.url.rsplit(":", 1)[1]
    message = refused(api(f"http://{host}:{port}/"), allow(http_server.url), "api_origins")
    assert "unusual spelling of an IP address" in message
    assert http_server.requests == []
    with pytest.raises(SourceConfigError, match="unusual spelling"):  # and the platform cannot allow one by accident
        allow(f"http://{host}:{port}")


def test_a_name_that_does_not_resolve_is_down_not_a_config_error(secrets_env):
    url = "http://no-such-host.invalid:8080"
    with pytest.raises(SourceError) as err:
        read(api(url), allow(url))
    message = str(err.value)
    assert "gave up after 2 attempt(s)" in message and "API host no-such-host.invalid does not resolve" in message
    assert not isinstance(err.value, PolicyRefused)


@dataclass(frozen=True)
class AnswersWith(RegistryPolicy):
    """The policy with a stand-in for DNS: ``api.invalid`` (which never resolves) is said to be
    ``answer``, so a request can only arrive if it went to the checked address."""

    answer: str = "127.0.0.1"
    checked: list = field(default_factory=list)

    def api_url(self, url: str) -> list[str]:
        self.checked.append(url)
        return [self.answer]


def test_requests_connect_to_the_checked_address_and_keep_the_host_name(http_server, secrets_env):
    http_server.json("/data", [{"id": 1}])
    port = http_server.url.rsplit(":", 1)[1]
    pinned = AnswersWith(placeholder_variables=frozenset({"machine1_key"}),
                         placeholder_connections=frozenset({"machine1_api"}))
    assert read(api(f"http://api.invalid:{port}"), pinned) == [{"id": 1}]
    (req,) = http_server.requests
    assert req.headers["Host"] == f"api.invalid:{port}"  # the name, although the connection went to 127.0.0.1
    assert pinned.checked == [f"http://api.invalid:{port}", f"http://api.invalid:{port}/data?api_key={quote_plus(KEY)}"]


def test_configured_host_header_cannot_retarget_a_virtual_host(http_server, secrets_env):
    http_server.json("/data", [{"id": 1}])
    cfg = api(http_server.url)
    cfg["headers"]["Host"] = "metadata.internal"
    assert read(cfg, allow(http_server.url)) == [{"id": 1}]
    assert http_server.requests[0].headers["Host"] == http_server.url.split("//")[1]


def test_tls_keeps_the_host_name_for_sni_and_the_certificate_check(tmp_path, secrets_env):
    import requests

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append({"host": self.headers["Host"], "sni": getattr(self.connection, "sni", None)})
            data = b'[{"id": 1}]'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    names: list[str | None] = []
    ctx.sni_callback = lambda sock, name, _ctx: names.append(name)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    port = httpd.server_address[1]
    try:
        session = requests.Session()
        session.verify = str(cert)
        url = f"https://localhost:{port}"
        assert read(api(url), allow(url), session=session) == [{"id": 1}]
        assert names == ["localhost"] and seen[0]["host"] == f"localhost:{port}"
        # the certificate names localhost, not 127.0.0.1: pinning must not switch the name check off
        url = f"https://127.0.0.1:{port}"
        session = requests.Session()
        session.verify = str(cert)
        with pytest.raises(SourceError, match="SSLError"):
            read(api(url, retries=0), allow(url), session=session)
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---- redirects ---------------------------------------------------------------------------------------------
def test_302_to_another_host_is_refused_and_carries_nothing_there(http_server, other_server, secrets_env):
    """The issue's case: requests strips only Authorization, so X-Api-Key went along."""
    http_server.route("/data", lambda req: (302, "", {"Location": f"{other_server.url}/steal"}))
    message = refused(api(http_server.url), allow(http_server.url), "api_origins")
    assert f"HTTP 302 redirect to {other_server.url} leaves {http_server.url}, and that origin is not allowed" in message
    assert other_server.requests == []


def test_redirect_to_an_allowed_origin_is_followed_without_configured_headers_or_query(http_server, other_server,
                                                                                       secrets_env):
    # (cookies do not tell ports apart: one set by the first server would go to the second)
    http_server.route("/data", lambda req: (302, "", {"Location": f"{other_server.url}/mirror?page=1",
                                                      "Set-Cookie": "sid=origin-session-cookie; Path=/"}))
    other_server.json("/mirror", [{"id": 9}])
    assert read(api(http_server.url), allow(http_server.url, other_server.url)) == [{"id": 9}]
    assert http_server.requests[0].headers["X-Api-Key"] == KEY  # the configured origin gets them
    (there,) = other_server.requests
    assert there.target == "/mirror?page=1"
    assert not {"X-Api-Key", "Authorization", "X-Basic", "Cookie"} & set(there.headers)
    assert_no_secret(received(other_server))


def test_redirect_to_ftp_with_the_key_in_the_query_is_refused_without_echoing_it(http_server, secrets_env):
    """The issue's case: requests' InvalidSchema quoted the URL, key and all, into history."""
    http_server.route("/data", lambda req: (302, "", {"Location": f"ftp://files.example/x?api_key={quote_plus(req.query['api_key'])}"}))
    message = refused(api(http_server.url), allow(http_server.url), "api_redirects")
    assert "HTTP 302 redirect to a ftp: URL; only http(s) is followed" in message


@pytest.mark.parametrize("location", ["file:///etc/passwd", "gopher://127.0.0.1:6379/_FLUSHALL", "javascript:alert(1)"])
def test_redirects_to_other_schemes_are_refused(http_server, location, secrets_env):
    http_server.route("/data", lambda req: (301, "", {"Location": location}))
    refused(api(http_server.url), allow(http_server.url), "api_redirects")
    assert len(http_server.requests) == 1


def test_a_redirect_whose_location_carries_a_credential_is_not_followed(http_server, other_server, secrets_env):
    # the server copies our key into the Location: following it would hand the key to the other origin
    http_server.route("/data", lambda req: (307, "", {"Location": f"{other_server.url}/x?k={quote(req.headers['X-Api-Key'], safe='')}"}))
    message = refused(api(http_server.url), allow(http_server.url, other_server.url), "api_redirects")
    assert "would carry a credential there" in message
    assert other_server.requests == []


def test_post_body_is_not_resent_to_another_origin(http_server, other_server, secrets_env):
    http_server.route("/data", lambda req: (307, "", {"Location": f"{other_server.url}/x"}))
    cfg = api(http_server.url, method="POST", body={"token": "{{ var.machine1_key }}"})
    message = refused(cfg, allow(http_server.url, other_server.url), "api_redirects")
    assert "would resend the request body there" in message
    assert other_server.requests == []


def test_same_origin_redirects_keep_the_headers_and_303_drops_the_body(http_server, secrets_env):
    http_server.route("/data", lambda req: (303, "", {"Location": "/result"}))
    http_server.json("/result", [{"id": 5}])
    cfg = api(http_server.url, method="POST", body={"since": "2026-01-01"})
    assert read(cfg, allow(http_server.url)) == [{"id": 5}]
    first, second = http_server.requests
    assert (first.method, second.method, second.body) == ("POST", "GET", b"")
    assert second.headers["X-Api-Key"] == KEY


def test_redirect_hops_are_bounded(http_server, secrets_env):
    hops = iter(range(100))
    http_server.route("/data", lambda req: (302, "", {"Location": f"/data?hop={next(hops)}"}))
    message = refused(api(http_server.url, retries=0), allow(http_server.url), "api_redirects")
    assert "more than 5 redirects" in message
    assert len(http_server.requests) == 6


def test_redirect_to_the_metadata_address_is_refused_at_the_hop(http_server, secrets_env):
    meta = "http://169.254.169.254"
    http_server.route("/data", lambda req: (302, "", {"Location": f"{meta}/latest/meta-data/iam"}))
    message = refused(api(http_server.url), allow(http_server.url, meta), "api_private_networks")
    assert "169.254.169.254" in message


def test_unparsable_locations_and_next_links_are_refused_by_name(http_server, secrets_env):
    http_server.route("/data", lambda req: (302, "", {"Location": "http://[::1/x?api_key=" + quote_plus(KEY)}))
    with pytest.raises(SourceError, match=f"api source GET {http_server.url}/data: ValueError: Invalid IPv6 URL") as err:
        read(api(http_server.url), allow(http_server.url))
    assert_no_secret(str(err.value))
    assert len(http_server.requests) == 1  # not retried, nothing followed
    http_server.json("/list", {"items": [], "next": "http://[::1/y"})
    cfg = api(http_server.url, endpoint="/list", records_path="items", pagination={"type": "next", "next_path": "next"})
    with pytest.raises(SourceError, match=r"next link http://\.\.\. is not a valid URL"):
        read(cfg, allow(http_server.url))


def test_next_link_to_another_origin_is_not_followed(http_server, other_server, secrets_env):
    http_server.json("/data", {"items": [{"id": 1}], "next": f"{other_server.url}/page2"})
    cfg = api(http_server.url, records_path="items", pagination={"type": "next", "next_path": "next"})
    with pytest.raises(SourceError, match=f"next link {other_server.url}/page2 leaves {http_server.url}"):
        read(cfg, allow(http_server.url, other_server.url))
    assert other_server.requests == []


# ---- response size ---------------------------------------------------------------------------------------
def test_a_response_over_the_limit_is_refused_by_content_length(http_server, secrets_env):
    http_server.json("/data", [{"pad": "x" * 5000}])
    message = refused(api(http_server.url), allow(http_server.url, limits={"api_response_bytes": 4096}),
                      "limits.api_response_bytes")
    assert f"api source {http_server.url}/data?...: " in message and "over the limit of 4096 bytes" in message


def test_a_streamed_response_is_cut_off_at_the_limit(http_server, secrets_env):
    sent = []

    def endless():
        yield b"["
        for i in range(100_000):  # ~6 MB if read to the end
            sent.append(i)
            yield b'{"id": %d, "pad": "%s"},' % (i, b"y" * 40)

    http_server.route("/data", lambda req: (200, endless(), {}))
    message = refused(api(http_server.url), allow(http_server.url, limits={"api_response_bytes": 65536}),
                      "limits.api_response_bytes")
    assert "the response body read so far" in message
    time.sleep(0.2)
    assert len(sent) < 50_000  # the client stopped reading; the server could not push it all


def test_a_gzip_bomb_is_measured_after_decoding(http_server, secrets_env):
    bomb = gzip.compress(b"[" + b" " * 3_000_000 + b"]")
    assert len(bomb) < 10_000
    http_server.route("/data", lambda req: (200, bomb, {"Content-Encoding": "gzip", "Content-Type": "application/json"}))
    refused(api(http_server.url), allow(http_server.url, limits={"api_response_bytes": 100_000}), "limits.api_response_bytes")


# ---- placeholders ----------------------------------------------------------------------------------------
def test_registry_db_password_in_a_header_to_an_arbitrary_host_is_refused(other_server, secrets_env):
    """The issue's case: {{ conn.registry_db.password }} was sent to whatever host a row named."""
    cfg = {"base_url": other_server.url, "headers": {"X-Leak": "{{ conn.registry_db.password }}"}}
    message = refused(cfg, allow(other_server.url), "placeholder_connections")
    assert f"api source {other_server.url}: " in message and "Airflow connection 'registry_db'" in message
    assert other_server.requests == []


def test_registry_db_password_through_env_into_a_table_is_refused(script, tmp_path, secrets_env):
    """The issue's case through an artisan command's environment: the command never starts."""
    marker = tmp_path / "ran"
    argv = script("env.py", f"import json, os\nopen({str(marker)!r}, 'w').close()\nprint(json.dumps([{{'v': os.environ['X']}}]))\n")
    cfg = {"command": "sync", "env": {"X": "{{ conn.registry_db.password }}"}}
    with pytest.raises(PolicyRefused, match="rule 'placeholder_connections'.*'registry_db'") as err:
        list(open_source("artisan", cfg, policy=allow_command(argv, env=("X",)), batch_size=10))
    assert_no_secret(str(err.value))
    assert not marker.exists()


def test_placeholder_variables_are_allowlisted_too(http_server, secrets_env):
    http_server.json("/data", [])
    cfg = api(http_server.url)
    message = refused(cfg, allow(http_server.url, placeholder_variables=[]), "placeholder_variables")
    assert "Airflow variable 'machine1_key'" in message
    assert http_server.requests == []


@pytest.mark.parametrize("ref, shown", [("var.newline_key", "{{ var.newline_key }}"),
                                        ("conn.padded_api.password", "{{ conn.padded_api.password }}")])
def test_secrets_with_surrounding_whitespace_are_refused_at_resolution(http_server, ref, shown, secrets_env):
    """The issue's case: a variable ending in a newline reached history repr-escaped."""
    http_server.json("/data", [])
    cfg = {"base_url": http_server.url, "headers": {"X-Api-Key": "{{ %s }}" % ref}}
    with pytest.raises(SourceConfigError) as err:
        read(cfg, allow(http_server.url))
    message = str(err.value)
    assert f"placeholder {shown} resolves to a value with leading or trailing whitespace" in message
    assert "nl-key-55aa" not in message and "padded-pw-77" not in message
    assert http_server.requests == []


def test_airflow_masker_gets_every_spelling_as_a_second_line(http_server, secrets_env):
    from airflow.sdk.log import _secrets_masker

    http_server.json("/data", [])
    read(api(http_server.url), allow(http_server.url))
    masked = _secrets_masker().redact(" | ".join([*spellings(SECRET).values(), *spellings(KEY).values(), BASIC]))
    assert_no_secret(masked)


# ---- redaction of everything a request can raise ----------------------------------------------------------
def _broken_chunk(server):
    """A chunked body whose chunk-size line is our key: ChunkedEncodingError quotes that line."""
    return lambda req: (0, server.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      + req.headers["X-Api-Key"].encode() + b"\r\n"), {})


def test_each_spelling_of_a_resolved_secret_is_redacted():
    secret = "r3dact-me/+?&'\\x"
    REDACTOR.add(secret)
    REDACTOR.add_basic_auth("someone", secret)
    forms = [*spellings(secret).values(), base64.b64encode(f"someone:{secret}".encode()).decode()]
    assert redact(" ".join(f"<{f}>" for f in forms)) == " ".join("<***>" for _ in forms)
    # quoted twice over, as exception arguments inside a repr are
    for text in (repr(repr(secret)), repr([repr(secret + "\n")]), str(ValueError(repr(secret)).args)):
        assert "r3dact" not in redact(text), text


def test_alert_text_is_redacted_whoever_built_it(caplog, capfd):
    from datasync.registry.notify import RegistryAlertNotifier

    REDACTOR.add("alert-secret-9x/+")
    notifier = RegistryAlertNotifier(subject="source s: alert-secret-9x/+", message=f"last: {quote_plus('alert-secret-9x/+')}",
                                     details={"last_error": {"nested": base64.b64encode(b"alert-secret-9x/+").decode()}})
    with caplog.at_level("INFO"):
        notifier.notify({})
    logged = caplog.text + "".join(capfd.readouterr())
    assert "REGISTRY ALERT: source s: ***" in logged
    text = notifier.subject + notifier.message + json.dumps(notifier.details) + logged
    assert_no_secret(text, "alert-secret-9x/+")


def test_a_broken_chunked_body_echoing_the_key_is_redacted(http_server, secrets_env):
    # ChunkedEncodingError quotes the bad chunk-size line, which the server filled with our key
    http_server.route("/data", _broken_chunk(http_server))
    with pytest.raises(SourceError) as err:
        read(api(http_server.url), allow(http_server.url))
    message = str(err.value)
    assert "ChunkedEncodingError" in message and "gave up after 2 attempt(s)" in message and "***" in message
    assert_no_secret(message)


def test_undecodable_content_is_not_retried_and_names_the_source(http_server, secrets_env):
    http_server.route("/data", lambda req: (200, b"not gzip at all", {"Content-Encoding": "gzip"}))
    with pytest.raises(SourceError, match=f"api source GET {http_server.url}/data: ContentDecodingError"):
        read(api(http_server.url), allow(http_server.url))
    assert len(http_server.requests) == 1


def test_an_error_body_echoing_every_encoding_is_redacted(http_server, caplog, secrets_env):
    def echo(req):
        body = json.dumps({"got": req.headers, "b64": base64.b64encode(req.headers["Authorization"].encode()).decode()})
        return 500, body + req.target, {}

    http_server.route("/data", echo)
    with pytest.raises(SourceError) as err:
        read(api(http_server.url), allow(http_server.url))
    assert "HTTP 500" in str(err.value)
    assert_no_secret(str(err.value) + caplog.text)


# ---- clear-text secrets: by key name and by value shape, in Python and in the database ---------------------
CLEAR = [
    ({"base_url": "https://user:pw-123@api.example"}, "base_url"),
    ({"base_url": "https://api.example", "headers": {"X-Session": "Cookie: session=abc123"}}, "headers.X-Session"),
    ({"base_url": "https://api.example", "headers": {"Cookie": "session=abc123"}}, "headers.Cookie"),
    ({"base_url": "https://api.example", "headers": {"X-Auth": "Bearer eyJhbGciOi.abc"}}, "headers.X-Auth"),
    ({"base_url": "https://api.example", "headers": {"Proxy": "Basic dXNlcjpwYXNz"}}, "headers.Proxy"),
    ({"base_url": "https://api.example", "params": {"q": {"deep": {"headers": {"Authorization": "abc"}}}}},
     "params.q.deep.headers.Authorization"),
    ({"command": "sync", "parameters": ["--api-token", "abc123"]}, "parameters"),
    ({"command": "sync", "parameters": ["--since=2026-01-01", "--x-token", "abc123"]}, "parameters"),
    ({"command": "sync", "parameters": ["--token=abc123"]}, "parameters"),
    ({"command": "php artisan data:sync --api-token abc123"}, "command"),
    ({"command": "sync", "env": {"DB_URL": "postgres://u:pw@db.internal/x"}}, "env.DB_URL"),
    ({"command": "sync", "env": {"LINE": "env DB_URL=postgres://u:pw@db/x"}}, "env.LINE"),
    ({"base_url": "https://api.example/v1?api_key=abc123"}, "base_url"),
    ({"base_url": "https://api.example", "params": {"pin": 123456, "password": 123456}}, "params.password"),
    ({"base_url": "https://api.example", "body": ["-----BEGIN RSA PRIVATE KEY-----", "MIIE"]}, "body"),
    ({"conn_id": "machine_db", "extra": {"client_secret": "s3"}}, "extra.client_secret"),
]
NOT_CLEAR = [
    {"base_url": "https://{{ conn.m.login }}:{{ conn.m.password }}@api.example"},
    {"base_url": "https://api.example:8443/v1?page=2&line=A", "headers": {"Authorization": "Bearer {{ conn.m.password }}"}},
    {"base_url": "https://api.example", "headers": {"Cookie": "session={{ var.s }}", "X-Auth": "Basic {{ var.b }}"}},
    {"base_url": "https://api.example/v1?api_key={{ var.k }}&x=1"},
    {"command": "sync", "parameters": ["--api-token", "{{ var.t }}", "--since=2026-01-01"], "env": {"API_TOKEN": "{{ var.t }}"}},
    {"conn_id": "machine_db", "query": "SELECT basic_salary, token_count FROM payroll WHERE password_changed::date > now()"},
    {"spreadsheet_id": "abc", "range": "Tokens!A1:Z", "password_file": "/run/secrets/pw"},
    {"file_path": "/data/passwords/report.csv", "delimiter": ";"},
]


@pytest.mark.parametrize("config, where", CLEAR, ids=[w for _, w in CLEAR])
def test_clear_text_credentials_are_refused_before_anything_runs(config, where):
    kind = "artisan" if "command" in config else "database" if "conn_id" in config else "api"
    with pytest.raises(SourceConfigError, match=rf"{kind} source: '{where}' holds a clear-text credential") as err:
        validate_config(kind, config)
    assert "abc123" not in str(err.value) and "pw@" not in str(err.value)


@pytest.mark.parametrize("config", NOT_CLEAR)
def test_placeholders_and_ordinary_values_pass(config):
    assert find_clear_secret(config) is None


@pytest.fixture(scope="module")
def registry(database_factory):
    from runner_fixtures import migrated_registry

    db = migrated_registry(database_factory, "trust")
    with psycopg.connect(db.uri, autocommit=True) as conn:
        conn.execute("INSERT INTO data_source_registry (source_id, name, source_type, connection_type) "
                     "VALUES ('s', 's', 'api', 'api')")
    return db


def insert_connection(db, config: dict) -> None:
    with psycopg.connect(db.uri, autocommit=True) as conn:
        kind = "artisan" if "command" in config else "database" if "conn_id" in config else "file" if "file_path" in config \
            else "gsheet" if "spreadsheet_id" in config else "api"
        conn.execute("INSERT INTO data_source_connections (source_id, connection_name, connection_type, connection_config) "
                     "SELECT id, %s, %s, %s::jsonb FROM data_source_registry WHERE source_id = 's'",
                     (f"c{time.monotonic_ns()}", kind, json.dumps(config)))


def test_database_and_python_share_one_list_of_patterns(registry):
    (key, values, hole), = registry.query("SELECT data_source_secret_key_pattern(), data_source_secret_value_patterns(), "
                                          "data_source_placeholder_pattern()")
    assert (key, values, hole) == (SECRET_KEY_PATTERN, list(SECRET_VALUE_PATTERNS.values()), PLACEHOLDER_PATTERN)


@pytest.mark.parametrize("config, where", CLEAR, ids=[w for _, w in CLEAR])
def test_database_check_refuses_clear_text_credentials_nested_too(registry, config, where):
    with pytest.raises(psycopg.errors.CheckViolation, match="data_source_connections_no_secrets"):
        insert_connection(registry, config)
    (found,), = registry.query("SELECT data_source_clear_secret(%s::jsonb)", (json.dumps(config),))
    assert found == where  # the same place Python names


@pytest.mark.parametrize("config", NOT_CLEAR)
def test_database_check_accepts_placeholders_and_ordinary_values(registry, config):
    insert_connection(registry, config)


def test_database_check_also_guards_updates_and_templates(registry):
    insert_connection(registry, {"base_url": "https://api.example"})
    with pytest.raises(psycopg.errors.CheckViolation, match="data_source_connections_no_secrets"):
        registry.query("UPDATE data_source_connections SET connection_config = "
                       "jsonb_set(connection_config, '{headers}', '{\"a\": {\"b\": {\"Authorization\": \"Bearer x1y2z3w4\"}}}')")
    with pytest.raises(psycopg.errors.CheckViolation, match="data_source_templates_no_secrets"):
        registry.query("INSERT INTO data_source_templates (template_name, template_type, source_type, template_config) "
                       "VALUES ('t', 'api', 'api', %s::jsonb)",
                       (json.dumps({"connection_config": {"base_url": "https://u:p4ss@h.example"}}),))
    assert registry.query("SELECT count(*) FROM data_source_templates WHERE data_source_clear_secret(template_config) "
                          "IS NOT NULL") == [(0,)]


def test_migration_keeps_old_rows_and_names_them(database_factory):
    """A deployment that stored a nested clear secret under 001's top-level-only CHECK: the new
    migration names the row in a warning, keeps it, and guards every new row."""
    from datasync.migrate import TARGETS, plan, statements

    db = database_factory("postgres", "trustold")
    migrations = [m for m in plan(TARGETS["registry"]) if not m.version.startswith("registry/") or m.version < "registry/004"]
    warnings: list[str] = []
    with psycopg.connect(db.uri, autocommit=True) as conn:
        for mig in migrations:
            for stmt in statements(mig.sql):
                conn.execute(stmt)
        conn.execute("INSERT INTO data_source_registry (source_id, name, source_type, connection_type) VALUES ('old', 'o', 'api', 'api')")
        (old_id,), = conn.execute(
            "INSERT INTO data_source_connections (source_id, connection_name, connection_type, connection_config) "
            "SELECT id, 'legacy', 'api', %s::jsonb FROM data_source_registry RETURNING id",
            (json.dumps({"base_url": "https://api.example", "headers": {"Authorization": "Bearer abc123abc"}}),)).fetchall()
        conn.add_notice_handler(lambda notice: warnings.append(notice.message_primary))
        (mig,) = [m for m in plan(TARGETS["registry"]) if m.version == "registry/004"]
        for stmt in statements(mig.sql):
            conn.execute(stmt)
        assert warnings == [f"data_source_connections rows hold clear-text credentials: id {old_id} "
                            "(headers.Authorization); replace them with {{ conn.<id>.password }} / {{ var.<name> }} placeholders"]
        assert conn.execute("SELECT conname, convalidated FROM pg_constraint WHERE conname LIKE '%no_secrets' ORDER BY 1"
                            ).fetchall() == [("data_source_connections_no_secrets", False),
                                             ("data_source_templates_no_secrets", True)]
        assert conn.execute("SELECT count(*) FROM data_source_connections").fetchall() == [(1,)]
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO data_source_connections (source_id, connection_name, connection_type, connection_config) "
                         "SELECT id, 'new', 'api', %s::jsonb FROM data_source_registry",
                         (json.dumps({"base_url": "https://u:pw1@api.example"}),))


# ---- the runner: one DAG run over hostile API sources, then every place a secret could land ---------------
RUNNER_ENV = {
    "AIRFLOW_CONN_MACHINE1_API": json.dumps({"conn_type": "http", "login": LOGIN, "password": SECRET}),
    "AIRFLOW_VAR_MACHINE1_KEY": KEY,
    "AIRFLOW_VAR_NEWLINE_KEY": "nl-key-55aa\n",
}
# source_id -> (what the history and registry rows must say, the rule named)
HOSTILE = {
    "api_registry_db": ("Airflow connection 'registry_db'", "placeholder_connections"),
    "api_arbitrary_host": ("is not allowed", "api_origins"),
    "api_redirect_other": ("leaves", "api_origins"),
    "api_redirect_ftp": ("HTTP 302 redirect to a ftp: URL", "api_redirects"),
    "api_newline_var": ("placeholder {{ var.newline_key }} resolves to a value with leading or trailing whitespace", None),
    "api_postgres_port": ("API origin http://127.0.0.1:5432 is not allowed", "api_origins"),
    "api_metadata": ("API origin http://169.254.169.254:80 is not allowed", "api_origins"),
    "api_chunked_echo": ("ChunkedEncodingError", None),
    "api_too_big": ("over the limit of 4096 bytes", "limits.api_response_bytes"),
    "api_echo_500": ("HTTP 500", None),
    "api_midway": ("ChunkedEncodingError", None),
    "env_registry_db": ("Airflow connection 'registry_db'", "placeholder_connections"),
}


@pytest.fixture(scope="module")
def hostile(database_factory, airflow_db, module_servers, tmp_path_factory):
    from harness import load_dag, run_dag
    from policies import command_spec, policy_variable
    from runner_fixtures import Registry, captured_output, migrated_registry, program, registry_bound

    origin, other = module_servers
    d = tmp_path_factory.mktemp("trust_api")
    saved = {k: os.environ.get(k) for k in RUNNER_ENV}
    os.environ.update(RUNNER_ENV)
    db = migrated_registry(database_factory, "trustrun")

    def ok(req):
        assert req.headers["X-Api-Key"] == KEY and req.headers["Authorization"] == f"Bearer {SECRET}"
        return 200, {"items": [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]}, {}

    def echo_rows(req):  # the API puts our key into a row: the row is rejected (not an int) and kept
        return 200, {"items": [{"id": req.headers["X-Api-Key"], "v": "x"}, {"id": 3, "v": "c"}]}, {}

    def echo_500(req):
        auth = req.headers["Authorization"].encode()
        return 500, json.dumps({"headers": req.headers, "b64": base64.b64encode(auth).decode(), "query": req.target}), {}

    origin.routes.update({
        "/ok": ok, "/echo-rows": echo_rows, "/echo-500": echo_500, "/chunked": _broken_chunk(origin),
        "/redirect-other": lambda req: (302, "", {"Location": f"{other.url}/steal"}),
        "/redirect-ftp": lambda req: (302, "", {"Location": f"ftp://files.example/x?api_key={quote_plus(req.query['api_key'])}"}),
        "/big": lambda req: (200, [{"id": 1, "pad": "z" * 5000}], {}),
        "/mid1": lambda req: (200, {"items": [{"id": i, "v": "a"} for i in range(100)], "next": "/mid2"}, {}),
        "/mid2": _broken_chunk(origin),
    })
    marker = d / "command-ran"
    envdump = program(d, "envdump.py", f"import json, os\nopen({str(marker)!r}, 'w').close()\n"
                                       "print(json.dumps([{'id': 1, 'v': os.environ.get('X', '')}]))\n")
    base = {"retries": 1, "backoff": 0.01, "rate_limit": 60000, "timeout": 5, "records_path": "items",
            "headers": {"X-Api-Key": "{{ var.machine1_key }}", "Authorization": "Bearer {{ conn.machine1_api.password }}",
                        "X-Basic": "{{ conn.machine1_api.login }}:{{ conn.machine1_api.password }}"},
            "params": {"api_key": "{{ var.machine1_key }}"}}
    configs = {
        "api_ok": {**base, "base_url": origin.url, "endpoint": "/ok"},
        "api_echo_rows": {**base, "base_url": origin.url, "endpoint": "/echo-rows"},
        "api_registry_db": {**base, "base_url": origin.url, "headers": {"X-Leak": "{{ conn.registry_db.password }}"}},
        "api_arbitrary_host": {**base, "base_url": other.url, "headers": {"X-Leak": "{{ conn.registry_db.password }}"}},
        "api_redirect_other": {**base, "base_url": origin.url, "endpoint": "/redirect-other"},
        "api_redirect_ftp": {**base, "base_url": origin.url, "endpoint": "/redirect-ftp"},
        "api_newline_var": {**base, "base_url": origin.url, "endpoint": "/ok", "headers": {"X-Api-Key": "{{ var.newline_key }}"}},
        "api_postgres_port": {**base, "base_url": "http://127.0.0.1:5432/"},
        "api_metadata": {**base, "base_url": "http://169.254.169.254/latest/meta-data/"},
        "api_chunked_echo": {**base, "base_url": origin.url, "endpoint": "/chunked"},
        "api_too_big": {**base, "base_url": origin.url, "endpoint": "/big"},
        "api_echo_500": {**base, "base_url": origin.url, "endpoint": "/echo-500"},
        "api_midway": {**base, "base_url": origin.url, "endpoint": "/mid1", "pagination": {"type": "next", "next_path": "next"}},
    }
    reg = Registry(db)
    cols = {"columns": [{"column": "id", "source": "id", "cast": "int"}, {"column": "v", "source": "v"}]}
    for sid, config in configs.items():
        reg.add(sid, "api", [config], [{"target_table": f"t_{sid}", "key_columns": ["id"], "max_rejects": 5, **cols}])
    reg.add("env_registry_db", "artisan", [{"command": "envdump", "env": {"X": "{{ conn.registry_db.password }}"}}],
            [{"target_table": "t_env_registry_db", "key_columns": ["id"], **cols}])
    allowed = {
        "api_origins": [origin.url], "api_private_networks": ["127.0.0.1/32"],
        "placeholder_connections": ["machine1_api"], "placeholder_variables": ["machine1_key", "newline_key"],
        "artisan_commands": {"envdump": command_spec(envdump, env=("X",))},
        "limits": {"api_response_bytes": 4096},
    }
    with registry_bound(db), policy_variable(allowed):
        # the registry database's own login has a password (trust auth ignores it): it must leak nowhere
        os.environ["AIRFLOW_CONN_REGISTRY_DB"] = db.uri.replace("postgres@", f"postgres:{quote(DB_PASSWORD, safe='')}@", 1)
        dag = load_dag("source_registry_runner")
        with captured_output() as output:
            dag_run = run_dag(dag, conf={"batch_size": 100})  # api_midway's page 1 is a batch: page 2 fails inside the engine
        yield {"db": db, "reg": reg, "dag": dag, "run": dag_run, "output": output(), "origin": origin, "other": other,
               "marker": marker}
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_runner_refuses_each_hostile_source_by_rule_and_keeps_the_others_going(hostile):
    reg = hostile["reg"]
    for sid, (says, rule) in HOSTILE.items():
        (h,) = reg.history(sid)
        state = reg.state(sid)
        assert h["sync_status"] == "failed" and says in h["error_message"], (sid, h["error_message"])
        assert state["last_error"] == f"t_{sid}: {h['error_message']}" and state["error_count"] == 1, sid
        if rule:
            assert f"refused by registry policy rule '{rule}'" in h["error_message"], (sid, h["error_message"])
        assert f"source {sid} (" in hostile["output"]  # the task log names the source
    (h,) = reg.history("api_ok")
    assert (h["sync_status"], h["records_inserted"]) == ("success", 2)
    assert hostile["db"].query("SELECT id, v FROM t_api_ok ORDER BY id") == [(1, "a"), (2, "b")]


def test_nothing_reached_the_other_host_and_the_command_never_started(hostile):
    assert hostile["other"].requests == []
    assert not hostile["marker"].exists()
    assert hostile["db"].query("SELECT to_regclass('t_env_registry_db') IS NULL OR NOT EXISTS "
                               "(SELECT 1 FROM t_env_registry_db)") in ([(True,)], [(None,)])


def test_a_row_carrying_the_key_is_kept_as_a_reject_with_the_key_redacted(hostile):
    (h,) = hostile["reg"].history("api_echo_rows")
    assert (h["sync_status"], h["records_inserted"], h["records_rejected"]) == ("partial", 1, 1)
    (reject,) = hostile["db"].query("SELECT value, reason, row_data::text FROM sync_rejects "
                                    "WHERE sync_name = 'registry.api_echo_rows.t_api_echo_rows'")
    assert reject[0] == "***" and "***" in reject[2]


def test_a_failure_midway_reaches_sync_log_redacted(hostile):
    (row,) = hostile["db"].query("SELECT status, error FROM sync_log WHERE sync_name = 'registry.api_midway.t_api_midway'")
    assert row[0] == "failed" and "ChunkedEncodingError" in row[1] and "***" in row[1]


def test_no_secret_in_any_form_anywhere_the_run_kept(hostile):
    from runner_fixtures import xcom_and_rendered_text

    db = hostile["db"]
    tables = ["data_source_sync_history", "data_source_registry", "data_source_connections", "sync_log", "sync_rejects"]
    stored = json.dumps([db.query(f"SELECT * FROM {t}") for t in tables], default=str)
    assert "{{ conn.registry_db.password }}" in stored  # the rows keep their placeholders
    assert_no_secret(stored)
    assert_no_secret(hostile["output"])
    assert "rule 'api_redirects'" in hostile["output"] and "HTTP 500" in hostile["output"]
    assert_no_secret(xcom_and_rendered_text(hostile["dag"].dag_id, hostile["run"].run_id))
    # and the origin server saw them only on the sources that were allowed to send them
    assert KEY in received(hostile["origin"])


def test_run_source_directly_keeps_secrets_out_of_caplog_and_capfd(hostile, caplog, capfd):
    from policies import policy_variable
    from runner_fixtures import registry_bound

    from datasync.registry import runner

    allowed = {"api_origins": [hostile["origin"].url], "api_private_networks": ["127.0.0.1/32"],
               "placeholder_connections": ["machine1_api"], "placeholder_variables": ["machine1_key"]}
    with registry_bound(hostile["db"]), policy_variable(allowed), caplog.at_level("DEBUG"):
        for sid in ("api_chunked_echo", "api_echo_500", "api_redirect_ftp"):
            with pytest.raises(runner.SourceSyncFailed) as err:
                runner.run_source(sid, run_id="direct")
            assert f"source {sid} ({sid}) failed" in str(err.value)
            assert_no_secret(str(err.value))
    out, err_text = capfd.readouterr()
    assert "ChunkedEncodingError" in caplog.text
    assert_no_secret(caplog.text + out + err_text)
