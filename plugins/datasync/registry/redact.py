"""One redaction for everything the registry writes down: history, the registry row, XCom, logs.

Every secret a placeholder resolves (:class:`~datasync.registry.connectors.placeholders.Secrets`)
is registered here, in every spelling it takes on its way into a message: plain, ``repr``/JSON
escaped (an exception quoting a URL with a newline in it), percent-encoded (a query string),
base64 (an ``Authorization: Basic`` header, urlsafe too). :func:`redact` removes them all; the
runner passes every text it stores or logs through it, so a connector that forgets to redact
cannot leak. Each spelling also goes to Airflow's secrets masker, a second line for log records
this package never sees.

The set is per process: a worker process runs one task, and a secret stays a secret for the
rest of a longer process (dag.test, the benchmark) too.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "***"


def spellings(secret: str) -> set[str]:
    """The forms ``secret`` can take inside a message, log line or URL."""
    # escaped twice: the repr of a message that already held a repr (exception args in a tuple)
    forms = {secret, *(twice for once in _escaped(secret) for twice in _escaped(once))}
    forms |= {quote(secret, safe=""), quote(secret), quote_plus(secret), quote(quote(secret, safe=""), safe="")}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode(secret.encode()).decode("ascii")
        forms |= {encoded, encoded.rstrip("=")}
    return {f for f in forms if f}


def _escaped(text: str) -> set[str]:
    """``text`` inside a quoted literal (repr, JSON), whichever quote character the writer chose."""
    body = text.encode("unicode_escape").decode("ascii")  # backslashes, newlines, non-ASCII
    return {text, repr(text)[1:-1], ascii(text)[1:-1], json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1],
            body, body.replace("'", "\\'"), body.replace('"', '\\"')}


class Redactor:
    """The secrets seen so far, compiled into one pattern (longest spelling first, so nothing is
    left half-redacted)."""

    def __init__(self) -> None:
        self._needles: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        if not secret:
            return
        forms = spellings(secret)
        with self._lock:
            if forms <= self._needles:
                return
            self._needles |= forms
            self._pattern = re.compile("|".join(re.escape(n) for n in sorted(self._needles, key=len, reverse=True)))
        _mask(forms)

    def add_basic_auth(self, login: str, password: str) -> None:
        """``Authorization: Basic base64(login:password)`` hides both inside one encoding."""
        self.add(f"{login}:{password}")

    def __call__(self, text: Any) -> str:
        text = str(text)
        pattern = self._pattern
        return pattern.sub(REDACTED, text) if pattern is not None else text


REDACTOR = Redactor()


def redact(text: Any) -> str:
    """``text`` without any spelling of any secret resolved in this process."""
    return REDACTOR(text)


def redact_value(value: Any) -> Any:
    """:func:`redact` through the strings of a JSON-like value (XCom summaries, alert details)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


def _mask(forms: set[str]) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # not inside Airflow: redact() alone
        return
    for form in forms:
        try:
            mask_secret(form)
        except Exception:  # the masker is the second line; redact() is the first
            pass
