"""Secrets in connection configs are references, resolved only at run time.

A config says ``"Authorization": "Bearer {{ conn.machine1_api.password }}"`` or
``"api_key": "{{ var.machine1_key }}"``; :class:`Secrets` resolves those through Airflow
(connections and variables, so any secrets backend works) into a *copy* of the config and
remembers every resolved value so error messages can be redacted. The registry rows are never
rewritten, and resolved values never reach a log line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, quote_plus

from datasync.registry.connectors.base import SourceConfigError, SourceError

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
_CONN = re.compile(r"^conn\.([A-Za-z0-9_-]+)\.(host|login|password|schema|port|extra\.[A-Za-z0-9_-]+)$")
_VAR = re.compile(r"^var\.([A-Za-z0-9_.-]+)$")
# Parts of a connection that are addresses, not secrets: kept readable in error messages.
_NOT_SECRET = {"host", "port", "schema"}
# Config keys whose value is a credential: it must come from a placeholder, never be written in clear.
SECRET_KEY = re.compile(r"(pass(word|wd)?|secret|token|api[_-]?key|authorization|credential|private[_-]?key)$", re.I)
REDACTED = "***"


class Secrets:
    """Resolves placeholders and redacts whatever it resolved."""

    def __init__(self, policy: Any = None) -> None:
        self.policy = policy  # the registry policy: which connections/variables a placeholder may name
        self._values: set[str] = set()

    # -- resolving --------------------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        """A deep copy of ``value`` with every placeholder in its strings replaced."""
        if isinstance(value, str):
            return _PLACEHOLDER.sub(lambda m: self._lookup(m.group(1).strip()), value)
        if isinstance(value, Mapping):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.resolve(v) for v in value]
        return value

    def _lookup(self, ref: str) -> str:
        if m := _CONN.match(ref):
            conn_id, field = m.groups()
            value = _connection_field(conn_id, field)
            if field not in _NOT_SECRET:
                self._remember(value)
            return value
        if m := _VAR.match(ref):
            value = _variable(m.group(1))
            self._remember(value)
            return value
        raise SourceConfigError(
            f"unknown placeholder '{{{{{ref}}}}}': use {{{{ conn.<conn_id>.password }}}} (or .login/.host/.extra.<key>) "
            "or {{ var.<name> }}"
        )

    def _remember(self, value: str) -> None:
        if not value:
            return
        # URLs carry secrets percent-encoded, so redact those spellings too.
        self._values.update({value, quote(value, safe=""), quote_plus(value)})
        try:  # Airflow's own masker then hides them in task logs, even from third-party loggers
            from airflow.sdk.log import mask_secret

            mask_secret(value)
        except Exception:  # masking is a second line of defence; redact() is the first
            pass

    # -- redacting --------------------------------------------------------------------------------
    def redact(self, text: Any) -> str:
        text = str(text)
        for secret in sorted(self._values, key=len, reverse=True):  # longest first: no partial leftovers
            text = text.replace(secret, REDACTED)
        return text

    @contextmanager
    def redacting_logs(self, *logger_names: str) -> Iterator[None]:
        """Redact records of third-party loggers (urllib3 logs every URL, query string included at DEBUG)."""
        loggers = [logging.getLogger(name) for name in logger_names]
        filt = _RedactFilter(self)
        for lg in loggers:
            lg.addFilter(filt)
        try:
            yield
        finally:
            for lg in loggers:
                lg.removeFilter(filt)

    def error(self, message: str, cls: type[SourceError] = SourceError) -> SourceError:
        return cls(self.redact(message))


class _RedactFilter(logging.Filter):
    def __init__(self, secrets: Secrets) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.secrets.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _connection_field(conn_id: str, field: str) -> str:
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # not found / backend down: the id is what the operator needs
        raise SourceConfigError(f"Airflow connection '{conn_id}' is not available: {type(exc).__name__}") from None
    if field.startswith("extra."):
        value = (conn.extra_dejson or {}).get(field[len("extra."):])
    else:
        value = getattr(conn, field)
    if value in (None, ""):
        raise SourceConfigError(f"Airflow connection '{conn_id}' has no {field}")
    return str(value)


def _variable(name: str) -> str:
    from airflow.sdk import Variable

    try:
        return str(Variable.get(name))
    except Exception as exc:  # Airflow raises different types per context; the name is what matters
        raise SourceConfigError(f"Airflow variable '{name}' is not available: {type(exc).__name__}") from None


def check_no_clear_secrets(config: Any, kind: str, path: str = "") -> None:
    """Refuse credential-looking keys whose value is written out instead of referenced."""
    if isinstance(config, Mapping):
        for key, value in config.items():
            where = f"{path}.{key}" if path else str(key)
            if SECRET_KEY.search(str(key)) and isinstance(value, str) and value and not _PLACEHOLDER.search(value):
                raise SourceConfigError(
                    f"{kind} source: '{where}' holds a clear-text credential; store it in an Airflow connection "
                    "or variable and write {{ conn.<conn_id>.password }} / {{ var.<name> }} instead"
                )
            check_no_clear_secrets(value, kind, where)
    elif isinstance(config, list):
        for i, value in enumerate(config):
            check_no_clear_secrets(value, kind, f"{path}[{i}]")
