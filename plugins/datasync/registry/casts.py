"""Casts a mapping can apply: a fixed table of converters (nothing from configuration is evaluated).

Each converter takes a non-empty source value and returns the Python value for its Postgres type,
or raises :class:`CastError` with a reason short enough to store beside the rejected row.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from zoneinfo import ZoneInfo


class CastError(ValueError):
    """One value does not fit its column: the row becomes a reject."""


class CastOptions(Protocol):
    format: str | None  # strptime format (date, timestamp) or "epoch" (timestamp)
    timezone: str | None  # zone of naive timestamps; UTC when None


_INT_TEXT = re.compile(r"^[+-]?\d+(\.0*)?$")
_DECIMAL_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
_BIGINT = 2**63


def _to_int(value: Any, rule: CastOptions) -> int:
    if type(value) is int:  # JSON's own integers, most values: no text round trip
        if not -_BIGINT <= value < _BIGINT:
            raise CastError("out of range for a 64-bit integer")
        return value
    if isinstance(value, bool):
        raise CastError("a boolean, not an integer")
    if isinstance(value, str) and not _INT_TEXT.match(value):
        raise CastError("not an integer")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise CastError("not an integer") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise CastError("not a whole number")
    if not -_BIGINT <= number < _BIGINT:
        raise CastError("out of range for a 64-bit integer")
    return int(number)


def _to_decimal(value: Any, rule: CastOptions) -> Decimal:
    if isinstance(value, bool) or (isinstance(value, str) and not _DECIMAL_TEXT.match(value)):
        raise CastError("not a number")
    try:
        number = Decimal(str(value))  # str(): floats keep the digits they print, not binary noise
    except InvalidOperation:
        raise CastError("not a number") from None
    if not number.is_finite():
        raise CastError("not a finite number")
    return number


def _to_bool(value: Any, rule: CastOptions) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CastError("not a boolean (true/false, yes/no, 1/0)")


def _to_date(value: Any, rule: CastOptions) -> dt.date:
    if isinstance(value, dt.datetime):  # spreadsheets hand dates over as midnight datetimes
        if value.time() != dt.time(0):
            raise CastError("a timestamp with a time of day, not a date")
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        if rule.format:
            return dt.datetime.strptime(str(value), rule.format).date()
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise CastError(f"not a date in format {rule.format or 'YYYY-MM-DD'}") from None


def _to_timestamp(value: Any, rule: CastOptions) -> dt.datetime:
    zone = ZoneInfo(rule.timezone or "UTC")
    if isinstance(value, dt.datetime):
        stamp = value
    elif rule.format == "epoch":
        try:
            stamp = dt.datetime.fromtimestamp(float(_to_decimal(value, rule)), dt.timezone.utc)
        except (CastError, OverflowError, OSError, ValueError):
            raise CastError("not a Unix timestamp in seconds") from None
    else:
        try:
            stamp = dt.datetime.strptime(str(value), rule.format) if rule.format else dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise CastError(f"not a timestamp in format {rule.format or 'ISO 8601'}") from None
    # Naive values are wall-clock time in the rule's zone (UTC unless told otherwise); rows carry UTC.
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=zone)).astimezone(dt.timezone.utc)


def _to_text(value: Any, rule: CastOptions) -> str:
    if isinstance(value, (dict, list)):
        raise CastError("an object/array, not text (use cast 'json')")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def _to_json(value: Any, rule: CastOptions) -> Any:
    if isinstance(value, str):  # text cells (CSV, sheets) carry JSON as text
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise CastError(f"not JSON text ({exc.msg})") from None
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise CastError(f"{type(value).__name__} cannot be stored as JSON") from None
    return value


@dataclass(frozen=True)
class Cast:
    convert: Callable[[Any, CastOptions], Any]
    pg_type: str  # the type target_table_ddl writes
    accepts: frozenset[str]  # information_schema data_types check_drift accepts


CASTS: dict[str, Cast] = {
    "text": Cast(_to_text, "TEXT", frozenset({"text", "character varying", "character"})),
    "int": Cast(_to_int, "BIGINT", frozenset({"bigint", "integer", "smallint", "numeric"})),
    "decimal": Cast(_to_decimal, "NUMERIC", frozenset({"numeric"})),
    "bool": Cast(_to_bool, "BOOLEAN", frozenset({"boolean"})),
    "date": Cast(_to_date, "DATE", frozenset({"date"})),
    # a session in UTC (datasync.db) stores aware values into plain timestamps as UTC
    "timestamp": Cast(_to_timestamp, "TIMESTAMPTZ", frozenset({"timestamp with time zone", "timestamp without time zone"})),
    "json": Cast(_to_json, "JSONB", frozenset({"jsonb", "json"})),
}
