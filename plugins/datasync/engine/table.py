"""What a target table looks like, and whether a row fits it (used to name bad rows precisely)."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from datasync.db import Database
from datasync.identifiers import check_identifier, check_table_name

_INT_RANGES = {
    "smallint": 2**15, "integer": 2**31, "int": 2**31, "bigint": 2**63,
    "tinyint": 2**7, "mediumint": 2**23,
}
_TEXT = {"character varying", "varchar", "character", "char", "text", "tinytext", "mediumtext", "longtext"}
_NUMERIC = {"numeric", "decimal", "real", "double precision", "double", "float"}
_JSON = {"json", "jsonb"}
_DATES = {"date"}
_STAMPS = {"timestamp without time zone", "timestamp with time zone", "timestamp", "datetime"}


class SchemaMismatch(ValueError):
    """Source and target disagree on columns: refused before anything is written."""


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str  # information_schema data_type, lower case
    nullable: bool
    max_length: int | None
    column_type: str = ""  # MySQL full type, e.g. tinyint(1)
    precision: int | None = None  # numeric/decimal only
    scale: int | None = None
    postgres: bool = False  # the server's rules differ: NUL bytes, NaN and infinities

    @property
    def is_json(self) -> bool:
        return self.data_type in _JSON

    def problem(self, value: Any) -> str | None:
        """Why ``value`` cannot go into this column, or None when it fits. Agrees with the server:
        a value the server stores (NaN in a Postgres numeric, say) is not called a problem."""
        if value is None:
            return None if self.nullable else "NULL in a NOT NULL column"
        t = self.data_type
        if isinstance(value, str):
            if self.postgres and "\x00" in value:
                return "contains a NUL byte, which PostgreSQL text cannot store"
            if not _encodable(value):
                return "not valid Unicode text (a lone surrogate)"
        try:
            if t in _INT_RANGES:
                if isinstance(value, bool):
                    return None
                number = Decimal(str(value))
                if not number.is_finite():
                    return _not_finite(number)
                n = int(number)
                if number != n:
                    return f"not a whole number for {t}"
                bound = _INT_RANGES[t] * (2 if "unsigned" in self.column_type else 1)
                if not (-_INT_RANGES[t] <= n < bound):
                    return f"out of range for {t}"
            elif t in _NUMERIC:
                if isinstance(value, bool):
                    return None
                number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
                if not number.is_finite():
                    return self._non_finite(number)
                if self.precision is not None and t in ("numeric", "decimal") and number:
                    before = self.precision - (self.scale or 0)
                    if number.adjusted() >= before:
                        return f"out of range for {t}({self.precision},{self.scale or 0}): at most {before} digit(s) before the point"
            elif t in _TEXT:
                if self.max_length is not None and len(str(value)) > self.max_length:
                    return f"longer than {self.max_length} characters ({len(str(value))})"
            elif t in _JSON:
                return self._json_problem(value)
            elif t == "uuid":
                if not isinstance(value, uuid.UUID):
                    uuid.UUID(str(value))
            elif t in _DATES:
                if not isinstance(value, dt.date):
                    dt.date.fromisoformat(str(value))
            elif t in _STAMPS:
                if not isinstance(value, dt.datetime):
                    dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            elif t == "boolean":
                if not isinstance(value, (bool, int)) and str(value).lower() not in ("t", "f", "true", "false", "0", "1", "yes", "no"):
                    return "not a boolean"
        except (InvalidOperation, ValueError, TypeError):
            kind = {**{k: "number" for k in (*_INT_RANGES, *_NUMERIC)}, "uuid": "UUID", "date": "date"}.get(t, t)
            return f"not a valid {kind}"
        return None

    def _non_finite(self, number: Decimal) -> str | None:
        # Postgres floats hold NaN and the infinities; its numeric holds NaN always and the
        # infinities without a declared precision. MySQL-family columns hold none of them.
        if self.postgres and (self.data_type not in ("numeric", "decimal") or number.is_nan() or self.precision is None):
            return None
        return _not_finite(number)

    def _json_problem(self, value: Any) -> str | None:
        if isinstance(value, (str, bytes)):  # JSON text
            try:
                value = json.loads(value)
            except ValueError as exc:
                return f"not valid JSON ({exc})"
        for item in _json_leaves(value):
            if isinstance(item, float) and not math.isfinite(item):
                return f"not valid JSON: {_finite_name(Decimal(item))} cannot be stored in JSON"
            if isinstance(item, str) and "\x00" in item and self.postgres and self.data_type == "jsonb":
                return "contains a NUL character (\\u0000), which PostgreSQL jsonb cannot store"
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            return f"not valid JSON ({exc})"
        return None


def _json_leaves(value: Any):
    """Every key and scalar of a JSON-like structure."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _json_leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _json_leaves(v)
    else:
        yield value


def _finite_name(number: Decimal) -> str:
    return "NaN" if number.is_nan() else ("Infinity" if number > 0 else "-Infinity")


def _not_finite(number: Decimal) -> str:
    return f"not a finite number ({_finite_name(number)})"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


@dataclass(frozen=True)
class TableInfo:
    name: str
    columns: dict[str, Column]
    primary_key: tuple[str, ...]

    @classmethod
    def load(cls, db: Database, table: str) -> TableInfo:
        check_table_name(table)
        schema, _, bare = table.rpartition(".")
        rows, pk = db.dialect.table_columns(db, schema, bare)
        db.commit()
        if not rows:
            raise SchemaMismatch(f"target table {table} does not exist in {db.describe()}")
        columns = {}
        for name, data_type, nullable, max_len, extra, precision, scale in rows:
            data_type = data_type.lower()
            if data_type == "user-defined":
                data_type = str(extra).lower()
            columns[name] = Column(name, data_type, bool(nullable), max_len, str(extra).lower(),
                                   None if precision is None else int(precision), None if scale is None else int(scale),
                                   db.dialect.strict_values)
        return cls(table, columns, tuple(r[0] for r in pk))

    def require(self, names: list[str], what: str) -> None:
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise SchemaMismatch(f"{what}: {self.name} has no column(s) {missing}; it has {list(self.columns)}")

    def problems(self, columns: list[str], row: tuple) -> list[tuple[str, Any, str]]:
        out = []
        for name, value in zip(columns, row):
            reason = self.columns[name].problem(value)
            if reason:
                out.append((name, value, reason))
        return out


def check_columns(names: list[str]) -> list[str]:
    for n in names:
        check_identifier(n, "column name")
    return names
