"""The one place the Data sync page makes stored text safe to show.

Errors, reasons and values come from bookkeeping tables that pipelines (and, through the
registry, application users) filled; every such text passes :func:`redact` before it reaches a
page or a JSON answer. It hides what the registry's :class:`Secrets` hides for resolved values
(here: the passwords of the connections the page itself uses) plus anything shaped like a
credential: a URL's password, ``password=...``/``token: ...`` pairs, ``Bearer``/``Basic`` values.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from datasync.registry.connectors.placeholders import REDACTED, Secrets

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
_cached: tuple[float, Secrets] | None = None


def _known_secrets() -> Secrets:
    """Secrets holding the passwords of every target connection (looked up at most once a minute)."""
    global _cached
    with _lock:
        if _cached and time.monotonic() - _cached[0] < _CACHE_SECONDS:
            return _cached[1]
        from datasync.migrate import TARGETS

        secrets = Secrets()
        for target in TARGETS.values():
            try:
                secrets.resolve(f"{{{{ conn.{target.conn_id}.password }}}}")
            except Exception:  # no such connection, or no password: nothing to hide
                pass
        _cached = (time.monotonic(), secrets)
        return secrets


def redact(text: Any, limit: int = 2000) -> str | None:
    """``text`` safe to show (None stays None), cut to ``limit`` characters."""
    if text is None:
        return None
    out = _known_secrets().redact(str(text))
    out = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + "@", out)
    out = _SECRET_PAIR.sub(lambda m: m.group(1) + REDACTED, out)
    out = _AUTH_SCHEME.sub(lambda m: m.group(1) + " " + REDACTED, out)
    return out if len(out) <= limit else out[: limit - 1] + "…"
