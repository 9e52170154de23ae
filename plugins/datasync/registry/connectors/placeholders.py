"""Secrets in connection configs are references, resolved only at run time, only where allowed.

A config says ``"Authorization": "Bearer {{ conn.machine1_api.password }}"`` or
``"api_key": "{{ var.machine1_key }}"``. Registry rows are written by the application's users,
so :class:`Secrets` resolves only the connections and variables the platform's policy opens to
placeholders (``placeholder_connections`` / ``placeholder_variables``): a row cannot ask for
``{{ conn.registry_db.password }}``. Values are resolved through Airflow (any secrets backend
works) into a *copy* of the config, and every resolved secret is registered with the process-wide
redaction (:mod:`datasync.registry.redact`). The registry rows are never rewritten.

:func:`check_no_clear_secrets` refuses configs that hold a credential in clear text, by key name
and by the shape of the value, at any depth. The database refuses the same rows
(``data_source_clear_secret`` in ``include/sql/registry/004_clear_secret_check.sql``): the
patterns below and the migration's are one list, and the tests hold them equal.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from datasync.registry.connectors.base import SourceConfigError, SourceError
from datasync.registry.redact import REDACTED, REDACTOR, redact

if TYPE_CHECKING:
    from datasync.registry.policy import RegistryPolicy

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
_CONN = re.compile(r"^conn\.([A-Za-z0-9_-]+)\.(host|login|password|schema|port|extra\.[A-Za-z0-9_-]+)$")
_VAR = re.compile(r"^var\.([A-Za-z0-9_.-]+)$")
# Parts of a connection that are addresses, not secrets: kept readable in error messages.
_NOT_SECRET = {"host", "port", "schema"}

__all__ = ["REDACTED", "Secrets", "check_no_clear_secrets", "find_clear_secret"]


class Secrets:
    """Resolves the placeholders ``policy`` allows; whatever it resolved is redacted everywhere."""

    def __init__(self, policy: RegistryPolicy) -> None:
        self.policy = policy
        self._logins: dict[str, str] = {}
        self._passwords: dict[str, str] = {}

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
            self.policy.connection_ref(conn_id)
            value = _connection_field(conn_id, field)
            if field not in _NOT_SECRET:
                REDACTOR.add(value)
                self._pair(conn_id, field, value)
        elif m := _VAR.match(ref):
            self.policy.variable_ref(m.group(1))
            value = _variable(m.group(1))
            REDACTOR.add(value)
        else:
            raise SourceConfigError(
                f"unknown placeholder '{{{{{ref}}}}}': use {{{{ conn.<conn_id>.password }}}} (or .login/.host/.extra.<key>) "
                "or {{ var.<name> }}"
            )
        if value != value.strip():
            # A stray newline would be sent as part of a header (and quoted, escaped, in the error
            # that follows). Refused here, naming the reference and never the value.
            raise SourceConfigError(
                f"placeholder {{{{ {ref} }}}} resolves to a value with leading or trailing whitespace "
                "(a stray newline?); fix it in Airflow"
            )
        return value

    def _pair(self, conn_id: str, field: str, value: str) -> None:
        """Login and password of one connection may travel together as ``Basic base64(login:password)``."""
        if field == "login":
            self._logins[conn_id] = value
        elif field == "password":
            self._passwords[conn_id] = value
        if conn_id in self._logins and conn_id in self._passwords:
            REDACTOR.add_basic_auth(self._logins[conn_id], self._passwords[conn_id])

    # -- redacting --------------------------------------------------------------------------------
    @staticmethod
    def redact(text: Any) -> str:
        return redact(text)

    @contextmanager
    def redacting_logs(self, *logger_names: str) -> Iterator[None]:
        """Redact records of third-party loggers (urllib3 logs every URL, query string included at DEBUG)."""
        loggers = [logging.getLogger(name) for name in logger_names]
        filt = _RedactFilter()
        for lg in loggers:
            lg.addFilter(filt)
        try:
            yield
        finally:
            for lg in loggers:
                lg.removeFilter(filt)

    def error(self, message: str, cls: type[SourceError] = SourceError) -> SourceError:
        return cls(redact(message))


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
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


# ---- clear-text credentials ----------------------------------------------------------------------------
# Case-insensitive; written in the regex dialect Python and PostgreSQL share. Keep in step with
# include/sql/registry/004_clear_secret_check.sql (tests/registry compares them).
SECRET_WORDS = r"pass(word|wd)?|secret|token|api[_-]?key|credentials?|private[_-]?key|authorization|cookie"
# A key whose name ends in a secret word must hold a placeholder, not a value.
SECRET_KEY_PATTERN = rf"({SECRET_WORDS})\Z"
PLACEHOLDER_PATTERN = r"\{\{[^{}]*\}\}"
# Values that look like a credential under any key (placeholders removed first, so
# "Bearer {{ conn.x.password }}" is fine and "Bearer abc123" is not). Arrays are also checked
# with their strings joined by spaces, so ["--api-token", "abc"] reads as "--api-token abc".
SECRET_VALUE_PATTERNS: dict[str, str] = {
    "URL user info with a password": r"[a-z][a-z0-9+.-]*://[^/?#@ ]*:[^/?#@ ]+@",
    "an Authorization value": r"^(bearer|basic|digest|token)[ ]+[^ ]+\Z",
    "a credential header": rf'(^|[^a-z0-9_-])[a-z0-9_-]*({SECRET_WORDS})"?[ ]*:[ ]*"?[^ ":]',
    "a credential argument": rf"(^|[ ])--?[a-z0-9_-]*({SECRET_WORDS})([ ]+|=)[^ -]",
    "a credential in a query string": rf"[?&][a-z0-9_.-]*({SECRET_WORDS})=[^&# ]",
    "a private key": r"-----begin [a-z ]*private key-----",
}
_KEY = re.compile(SECRET_KEY_PATTERN, re.I)
_HOLE = re.compile(PLACEHOLDER_PATTERN)
_SHAPES = [(what, re.compile(p, re.I)) for what, p in SECRET_VALUE_PATTERNS.items()]


def find_clear_secret(config: Any, path: str = "") -> tuple[str, str] | None:
    """``(where, what)`` of the first clear-text credential in ``config``, else None. ``where`` is
    a path such as ``headers.Authorization`` or ``parameters[2]``."""
    if isinstance(config, Mapping):
        for key, value in config.items():
            where = f"{path}.{key}" if path else str(key)
            if (_KEY.search(str(key)) and isinstance(value, (str, int, float)) and not isinstance(value, bool)
                    and str(value) != "" and not _HOLE.search(str(value))):
                return where, "a credential-named key with a literal value"
            if found := find_clear_secret(value, where):
                return found
    elif isinstance(config, list):
        if what := _shaped(" ".join(v for v in config if isinstance(v, str))):
            return path, what
        for i, value in enumerate(config):
            if found := find_clear_secret(value, f"{path}[{i}]"):
                return found
    elif isinstance(config, str) and (what := _shaped(config)):
        return path, what
    return None


def _shaped(value: str) -> str | None:
    bare = _HOLE.sub("", value)
    return next((what for what, pattern in _SHAPES if pattern.search(bare)), None)


def check_no_clear_secrets(config: Any, kind: str) -> None:
    """Refuse a config holding a credential in clear text; the message names where, never the value."""
    found = find_clear_secret(config)
    if found:
        where, what = found
        raise SourceConfigError(
            f"{kind} source: '{where}' holds a clear-text credential ({what}); store it in an Airflow connection "
            "or variable and write {{ conn.<conn_id>.password }} / {{ var.<name> }} instead"
        )
