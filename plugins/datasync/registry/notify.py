"""Alerts for sources that enter status ``error``: an Airflow notifier.

``RegistryAlertNotifier`` always writes one log line (``REGISTRY ALERT: ...``). When the Airflow
connection ``registry_alerts`` exists it also delivers the alert:

* ``smtp`` / ``email`` connection: mail through the SMTP provider's ``SmtpNotifier`` (host, port,
  login, password and its extras ``from_email``, ``disable_ssl``, ``disable_tls``, ``timeout``,
  ``retry_limit``), plus extra ``"to": [...]``, the recipients;
* ``http`` / ``https`` connection: a JSON POST to ``<scheme>://host[:port]/<schema>`` (extra
  ``endpoint`` appends a path); a password is sent as ``Authorization: Bearer <password>``.

Delivery problems are logged and swallowed: the source has already failed, and a broken mail
relay must not turn one failure into two.
"""

from __future__ import annotations

import html
import json
from typing import Any

from airflow.sdk import BaseNotifier

from datasync.registry.redact import redact, redact_value

ALERT_CONN_ID = "registry_alerts"


class RegistryAlertNotifier(BaseNotifier):
    # Nothing is templated: the message quotes error text from sources, which may contain "{{ ... }}"
    # (an unresolvable placeholder, say); rendering it with Jinja would be wrong and unsafe.
    template_fields = ()

    def __init__(self, *, subject: str, message: str, details: dict[str, Any] | None = None,
                 conn_id: str = ALERT_CONN_ID) -> None:
        super().__init__()
        # Error text from sources goes to a log line, a mail or another host: redacted here, whoever built it.
        self.subject, self.message, self.details = redact(subject), redact(message), redact_value(details or {})
        self.conn_id = conn_id

    def notify(self, context: Any) -> None:
        self.log.warning("REGISTRY ALERT: %s | %s", self.subject, self.message)
        conn = _optional_connection(self.conn_id)
        if conn is None:
            self.log.info("no Airflow connection '%s': the alert was only logged", self.conn_id)
            return
        kind = (conn.conn_type or "").lower()
        try:
            if kind in ("smtp", "email"):
                self._send_mail(conn)
            elif kind in ("http", "https"):
                self._post(conn)
            else:
                self.log.warning("connection '%s' has type %r; use smtp or http", self.conn_id, conn.conn_type)
                return
        except Exception as exc:  # delivery is best effort, see the module docstring
            self.log.error("could not deliver the registry alert through '%s': %s: %s",
                           self.conn_id, type(exc).__name__, redact(exc))
            return
        self.log.info("registry alert delivered through '%s' (%s)", self.conn_id, kind)

    def _send_mail(self, conn: Any) -> None:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        extra = conn.extra_dejson or {}
        to = extra.get("to") or []
        to = [to] if isinstance(to, str) else list(to)
        if not to:
            raise ValueError("extra 'to' lists no recipient")
        body = self.message + "\n\n" + json.dumps(self.details, indent=2, default=str)
        mail = SmtpNotifier(to=to, from_email=extra.get("from_email") or extra.get("from") or conn.login or None,
                            subject=f"[datasync registry] {self.subject}", smtp_conn_id=self.conn_id,
                            html_content=f"<pre>{html.escape(body)}</pre>")
        # notify(), not the notifier's __call__: the text is sent as it is, never rendered as a template.
        mail.notify({})

    def _post(self, conn: Any) -> None:
        import requests

        extra = conn.extra_dejson or {}
        host = str(conn.host or "")
        if "://" not in host:
            host = f"{'https' if conn.conn_type == 'https' else 'http'}://{host}"
        url = host.rstrip("/") + (f":{conn.port}" if conn.port else "")
        path = "/".join(p.strip("/") for p in (conn.schema or "", extra.get("endpoint") or "") if p)
        url = f"{url}/{path}" if path else url
        headers = {"Content-Type": "application/json"}
        if conn.password:
            headers["Authorization"] = f"Bearer {conn.password}"
        body = {"subject": self.subject, "message": self.message, **self.details}
        response = requests.post(url, data=json.dumps(body, default=str), headers=headers, timeout=30)
        response.raise_for_status()


def _optional_connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception:  # not defined: alerts are logged only
        return None
