"""What a target table looks like, and whether a row fits it (used to name bad rows precisely)."""

from __future__ import annotations

import datetime as dt
import json
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

    @property
    def is_json(self) -> bool:
        return self.data_type in _JSON

    def problem(self, value: Any) -> str | None:
        """Why ``value`` cannot go into this column, or None when it fits."""
        if value is None:
            return None if self.nullable else "NULL in a NOT NULL column"
        t = self.data_type
        try:
            if t in _INT_RANGES:
                if isinstance(value, bool):
                    return None
                n = int(Decimal(str(value)))
                if Decimal(str(value)) != n:
                    return f"not a whole number for {t}"
                bound = _INT_RANGES[t] * (2 if "unsigned" in self.column_type else 1)
                if not (-_INT_RANGES[t] <= n < bound):
                    return f"out of range for {t}"
            elif t in _NUMERIC:
                if not isinstance(value, (int, float, Decimal)):
                    Decimal(str(value).strip())
            elif t in _TEXT:
                if self.max_length is not None and len(str(value)) > self.max_length:
                    return f"longer than {self.max_length} characters ({len(str(value))})"
            elif t in _JSON:
                if isinstance(value, (str, bytes)):
                    json.loads(value)
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
        except (InvalidOperation, ValueError, TypeError) as exc:
            kind = {**{k: "number" for k in (*_INT_RANGES, *_NUMERIC)}, "uuid": "UUID", "date": "date", "jsonb": "JSON", "json": "JSON"}.get(t, t)
            return f"not a valid {kind}" + (f" ({exc})" if t in _JSON else "")
        return None


@dataclass(frozen=True)
class TableInfo:
    name: str
    columns: dict[str, Column]
    primary_key: tuple[str, ...]

    @classmethod
    def load(cls, db: Database, table: str) -> TableInfo:
        check_table_name(table)
        schema, _, bare = table.rpartition(".")
        if db.is_postgres:
            schema_sql = "%s" if schema else "current_schema()"
            rows = db.fetchall(
                "SELECT column_name, data_type, is_nullable = 'YES', character_maximum_length, udt_name "
                f"FROM information_schema.columns WHERE table_schema = {schema_sql} AND table_name = %s ORDER BY ordinal_position",
                (schema, bare) if schema else (bare,),
            )
            pk = db.fetchall(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
                (db.quote(schema) + "." + db.quote(bare) if schema else db.quote(bare),),
            ) if rows else []
        else:
            schema_sql = "%s" if schema else "DATABASE()"
            rows = db.fetchall(
                "SELECT column_name, data_type, is_nullable = 'YES', character_maximum_length, column_type "
                f"FROM information_schema.columns WHERE table_schema = {schema_sql} AND table_name = %s ORDER BY ordinal_position",
                (schema, bare) if schema else (bare,),
            )
            pk = db.fetchall(
                "SELECT column_name FROM information_schema.key_column_usage "
                f"WHERE table_schema = {schema_sql} AND table_name = %s AND constraint_name = 'PRIMARY' ORDER BY ordinal_position",
                (schema, bare) if schema else (bare,),
            )
            if rows and "mariadb" in db.version.lower():
                # MariaDB's JSON is LONGTEXT with a json_valid() check: treat those columns as JSON.
                json_cols = {r[0] for r in db.fetchall(
                    "SELECT constraint_name FROM information_schema.check_constraints WHERE constraint_schema = "
                    f"{schema_sql} AND table_name = %s AND check_clause LIKE 'json_valid(%%'",
                    (schema, bare) if schema else (bare,),
                )}
                rows = [(r[0], "json" if r[0] in json_cols else r[1], *r[2:]) for r in rows]
        db.commit()
        if not rows:
            raise SchemaMismatch(f"target table {table} does not exist in {db.describe()}")
        columns = {}
        for name, data_type, nullable, max_len, extra in rows:
            data_type = data_type.lower()
            if data_type == "user-defined":
                data_type = str(extra).lower()
            columns[name] = Column(name, data_type, bool(nullable), max_len, str(extra).lower())
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
