"""Registry alerts delivered by mail through Airflow's SMTP provider, to a real SMTP server on loopback."""

from __future__ import annotations

import html
import json
import socket

import pytest

from datasync.registry.notify import RegistryAlertNotifier
from datasync.registry.redact import REDACTOR
from smtp_server import SmtpServer

SOURCE_SECRET = "mail-secret-5q/+"  # a resolved source credential quoted by an error text
SMTP_PASSWORD = "smtp-pass-8k"


def alert_connection(monkeypatch, port: int, **extra) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_REGISTRY_ALERTS", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port, "login": "alerts", "password": SMTP_PASSWORD,
        "extra": {"to": ["oncall@example.com", "data@example.com"], "from_email": "airflow@example.com",
                  "disable_ssl": True, "disable_tls": True, "retry_limit": 0, "timeout": 5, **extra}}))


def test_the_alert_mail_arrives_as_written_and_without_secrets(monkeypatch, caplog, capfd):
    REDACTOR.add(SOURCE_SECRET)
    notifier = RegistryAlertNotifier(
        subject="source 7 (plant_a) is now in status error",
        message=f"last error: token {SOURCE_SECRET} refused; placeholder {{{{ var.missing }}}} unresolved <b>",
        details={"source_id": 7, "last_error": {"text": SOURCE_SECRET}})
    with SmtpServer() as smtp, caplog.at_level("INFO"):
        alert_connection(monkeypatch, smtp.port)
        notifier.notify({})
    [mail] = smtp.messages
    assert mail.sender == "airflow@example.com"
    assert mail.recipients == ["oncall@example.com", "data@example.com"]
    assert mail.message["Subject"] == "[datasync registry] source 7 (plant_a) is now in status error"
    body = html.unescape(mail.message.get_body(("html", "plain")).get_content())
    # Sent as written: redacted, and the source's "{{ ... }}" is not rendered as a template.
    assert "last error: token *** refused; placeholder {{ var.missing }} unresolved <b>" in body
    assert '"source_id": 7' in body and '"text": "***"' in body
    assert smtp.logins == [("alerts", SMTP_PASSWORD)]  # the relay password goes to AUTH only
    logged = caplog.text + "".join(capfd.readouterr())
    assert "registry alert delivered through 'registry_alerts' (smtp)" in logged
    for secret in (SOURCE_SECRET, SMTP_PASSWORD):
        assert secret not in body and secret.encode() not in mail.raw and secret not in logged


def test_a_relay_that_is_down_is_logged_not_raised(monkeypatch, caplog, capfd):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    alert_connection(monkeypatch, port)
    with caplog.at_level("INFO"):
        RegistryAlertNotifier(subject="source 8 failed", message="boom").notify({})
    logged = caplog.text + "".join(capfd.readouterr())
    assert "REGISTRY ALERT: source 8 failed | boom" in logged
    assert "could not deliver the registry alert through 'registry_alerts'" in logged
    assert SMTP_PASSWORD not in logged


@pytest.mark.parametrize("to", [[], ""])
def test_a_connection_without_recipients_is_named(monkeypatch, caplog, capfd, to):
    with SmtpServer() as smtp:
        alert_connection(monkeypatch, smtp.port, to=to)
        RegistryAlertNotifier(subject="s", message="m").notify({})
    assert smtp.messages == [] and "extra 'to' lists no recipient" in caplog.text + "".join(capfd.readouterr())
