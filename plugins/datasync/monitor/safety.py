"""The one place the Data sync page makes stored text safe to show.

Errors, reasons and values come from bookkeeping tables that pipelines (and, through the
registry, application users) filled; every such text passes :func:`redact` before it reaches a
page or a JSON answer. It is the registry's redaction (:mod:`datasync.registry.redact`: every
spelling of every secret known to this process), taught the passwords of the connections the page
itself uses, plus anything shaped like a credential: a URL's password, ``password=...`` /
``token: ...`` pairs, ``Bearer``/``Basic`` values.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from datasync.registry.redact import REDACTED, REDACTOR
from datasync.registry.redact import redact as redact_known

# user:password@ in any URL-like text (postgresql://, https://, mysql://...)
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@'\"]*:)[^\s@/'\"]+@")
# key=value / key: value / "key": "value" where the key names a credential
_SECRET_PAIR = re.compile(
    r"(?i)([\"']?\b[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key"
    r"|credential|authorization)[\w.-]*[\"']?\s*[=:]\s*[\"']?)(?:(?:bearer|basic)\s+)?[^\s\"'&,;}\]]+"
)
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")

_CACHE_SECONDS = 60.0
_lock = threading.Lock()
_learned_at: float | None = None


def _learn_connection_passwords() -> None:
    """Teach the redaction the passwords of every target connection (at most once a minute)."""
    global _learned_at
    with _lock:
        if _learned_at is not None and time.monotonic() - _learned_at < _CACHE_SECONDS:
            return
        _learned_at = time.monotonic()
    from airflow.sdk import BaseHook

    from datasync.migrate import TARGETS

    for target in TARGETS.values():
        try:
            password = BaseHook.get_connection(target.conn_id).password
        except Exception:  # no such connection: nothing to hide
            continue
        if password:
            REDACTOR.add(password)


def redact(text: Any, limit: int = 2000) -> str | None:
    """``text`` safe to show (None stays None), cut to ``limit`` characters."""
    if text is None:
        return None
    _learn_connection_passwords()
    out = redact_known(text)
    out = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + "@", out)
    out = _SECRET_PAIR.sub(lambda m: m.group(1) + REDACTED, out)
    out = _AUTH_SCHEME.sub(lambda m: m.group(1) + " " + REDACTED, out)
    return out if len(out) <= limit else out[: limit - 1] + "…"
