"""Mappings: a registry mapping config (JSON) compiled into a mapper from source records to rows.

Config (``data_source_mappings.mapping_config``; the table's own columns ``target_table``,
``key_columns``, ``cursor_field`` and ``retention_date_column`` may be given there or as arguments)::

    {"target_table": "production_data",
     "key_columns": ["machine_id", "produced_on"],
     "trim": true,
     "columns": [
       {"column": "machine_id", "source": "machine.id", "cast": "int"},
       {"column": "produced_on", "source": "date", "cast": "date", "format": "%d/%m/%Y"},
       {"column": "qty", "source": "qty", "cast": "decimal", "default": 0},
       {"column": "line", "constant": "L1"},
       {"column": "updated_at", "source": "updated", "cast": "timestamp",
        "format": "%Y-%m-%d %H:%M:%S", "timezone": "Asia/Jakarta"}]}

``columns`` is a list because JSONB does not keep object key order. Every name is checked with
:mod:`datasync.identifiers` when the mapping is compiled, before any SQL exists. Casts come from a
fixed table: nothing in a config is ever evaluated. A value that does not cast makes its row a
:class:`~datasync.engine.state.Reject` (column, value, reason); the batch goes on.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from datasync.db import Database
from datasync.engine.state import Reject
from datasync.identifiers import InvalidIdentifier, check_identifier, check_table_name
from datasync.registry.casts import CASTS, CastError
from datasync.registry.dotted import MISSING, get_path

log = logging.getLogger(__name__)


class MappingError(ValueError):
    """The mapping config is wrong: refused when compiled, nothing ran."""


class SchemaDrift(MappingError):
    """The target table no longer matches its mapping (columns missing, retyped, key changed)."""


# The registry's own tables must never be a sync target: a source could overwrite its own config.
RESERVED_TABLE = re.compile(r"^(public\.)?(data_source_|sync_|datasync_|users$)", re.I)


# ---- compiled mapping ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnRule:
    column: str
    source: str | None = None  # dotted path into the record
    constant: Any = MISSING
    cast: str = "text"
    format: str | None = None  # strptime format (date, timestamp) or "epoch" (timestamp)
    timezone: str | None = None  # zone of naive timestamps
    trim: bool = True
    default: Any = MISSING  # used when the source value is absent, null or empty
    required: bool = False

    def raw(self, record: Mapping[str, Any]) -> Any:
        return self.constant if self.constant is not MISSING else get_path(record, self.source, None)

    def value_of(self, record: Mapping[str, Any]) -> Any:
        """The cast value for this column (None when empty and no default); CastError otherwise."""
        raw = self.raw(record)
        if isinstance(raw, str) and self.trim:
            raw = raw.strip()
        if raw is None or raw == "":
            raw = None if self.default is MISSING else self.default
        if raw is None:
            if self.required:
                raise CastError("required value is missing")
            return None
        return CASTS[self.cast].convert(raw, self)


_RULE_KEYS = {"column", "source", "constant", "cast", "format", "timezone", "trim", "default", "required"}


@dataclass
class MappedBatch:
    rows: list[dict[str, Any]]
    rejects: list[Reject]
    absent_sources: list[str] = field(default_factory=list)  # paths found in no record of the batch


@dataclass(frozen=True)
class Mapper:
    target_table: str
    key_columns: tuple[str, ...]
    rules: tuple[ColumnRule, ...]
    cursor_field: str | None = None
    retention_date_column: str | None = None

    @property
    def columns(self) -> list[str]:
        return [r.column for r in self.rules]

    def rule(self, column: str) -> ColumnRule:
        return next(r for r in self.rules if r.column == column)

    def map_record(self, record: Mapping[str, Any]) -> tuple[dict[str, Any] | None, Reject | None]:
        """``(row, None)`` or ``(None, reject)``: a bad value never raises."""
        row: dict[str, Any] = {}
        failures: list[tuple[ColumnRule, Any, str]] = []
        for rule in self.rules:
            try:
                row[rule.column] = rule.value_of(record)
            except CastError as exc:
                failures.append((rule, rule.raw(record), str(exc)))
        if not failures:
            return row, None
        rule, raw, reason = failures[0]
        if len(failures) > 1:
            reason += "; also bad: " + ", ".join(f.column for f, _, _ in failures[1:])
        key = tuple(row[k] if k in row else self.rule(k).raw(record) for k in self.key_columns)
        return None, Reject(self.target_table, key, rule.column, raw, reason, dict(record))

    def map_batch(self, records: Iterable[Mapping[str, Any]]) -> MappedBatch:
        rows, rejects = [], []
        seen_sources: set[str] = set()
        sources = {r.source for r in self.rules if r.source}
        count = 0
        for record in records:
            count += 1
            seen_sources.update(s for s in sources - seen_sources if get_path(record, s) is not MISSING)
            row, reject = self.map_record(record)
            if row is not None:
                rows.append(row)
            else:
                rejects.append(reject)
        absent = sorted(sources - seen_sources) if count else []
        if absent:  # usually a typo in a source path, which would otherwise load a column of NULLs
            log.warning("%s: source field(s) %s appear in none of %d record(s)", self.target_table, absent, count)
        return MappedBatch(rows, rejects, absent)


def compile_mapping(
    config: Mapping[str, Any] | str,
    *,
    target_table: str | None = None,
    key_columns: Iterable[str] | None = None,
    cursor_field: str | None = None,
    retention_date_column: str | None = None,
) -> Mapper:
    """Check and compile a mapping config; arguments (the registry row's columns) win over the config."""
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except json.JSONDecodeError as exc:
            raise MappingError(f"mapping config is not JSON: {exc}") from None
    if not isinstance(config, Mapping):
        raise MappingError("mapping config must be a JSON object")
    unknown = set(config) - {"target_table", "key_columns", "cursor_field", "retention_date_column", "trim", "columns"}
    if unknown:
        raise MappingError(f"unknown mapping config key(s) {sorted(unknown)}")
    table = target_table or config.get("target_table")
    keys = key_columns if key_columns is not None else config.get("key_columns") or []
    if isinstance(keys, str) or not all(isinstance(k, str) for k in keys):
        raise MappingError(f"key_columns must be a list of column names, not {keys!r}")
    keys = list(keys)
    cursor = cursor_field or config.get("cursor_field")
    retention = retention_date_column or config.get("retention_date_column")
    if not table:
        raise MappingError("mapping has no target_table")
    check_table_name(table)
    if RESERVED_TABLE.match(table):
        raise InvalidIdentifier(f"refusing target table {table!r}: the registry's own tables are not sync targets")
    specs = config.get("columns")
    if not isinstance(specs, list) or not specs:
        raise MappingError(f"mapping for {table}: 'columns' must be a non-empty list of column rules")
    rules = tuple(_rule(spec, table, bool(config.get("trim", True)), keys) for spec in specs)
    names = [r.column for r in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise MappingError(f"mapping for {table}: column(s) {duplicates} mapped twice")
    if not keys:
        raise MappingError(f"mapping for {table}: key_columns are required (the upsert key)")
    for what, cols in (("key column", keys), ("cursor field", [cursor] if cursor else []),
                       ("retention date column", [retention] if retention else [])):
        for col in cols:
            check_identifier(col, what)
            if col not in names:
                raise MappingError(f"mapping for {table}: {what} {col!r} is not one of the mapped columns {names}")
    if retention and next(r for r in rules if r.column == retention).cast not in ("date", "timestamp"):
        raise MappingError(f"mapping for {table}: retention date column {retention!r} must be cast to date or timestamp")
    return Mapper(table, tuple(keys), rules, cursor, retention)


def _rule(spec: Any, table: str, trim: bool, keys: list[str]) -> ColumnRule:
    if not isinstance(spec, Mapping) or "column" not in spec:
        raise MappingError(f"mapping for {table}: each column rule is an object with a 'column', not {spec!r}")
    column = check_identifier(spec["column"], "column name")
    where = f"mapping for {table}, column {column}"
    unknown = set(spec) - _RULE_KEYS
    if unknown:
        raise MappingError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(_RULE_KEYS)}")
    if ("source" in spec) == ("constant" in spec):
        raise MappingError(f"{where}: give a 'source' path or a 'constant', exactly one")
    if "source" in spec and not (isinstance(spec["source"], str) and spec["source"]):
        raise MappingError(f"{where}: 'source' must be a non-empty path such as 'machine.id'")
    cast = spec.get("cast", "text")
    if cast not in CASTS:
        raise MappingError(f"{where}: unknown cast {cast!r}; known: {sorted(CASTS)}")
    fmt = spec.get("format")
    if fmt is not None and (cast not in ("date", "timestamp") or not isinstance(fmt, str) or (fmt == "epoch" and cast == "date")):
        raise MappingError(f"{where}: 'format' is a strptime format for date/timestamp casts (or 'epoch' for timestamps)")
    if spec.get("timezone") is not None:
        if cast != "timestamp":
            raise MappingError(f"{where}: 'timezone' applies to the timestamp cast only")
        try:
            ZoneInfo(str(spec["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            raise MappingError(f"{where}: unknown timezone {spec['timezone']!r}") from None
    rule = ColumnRule(
        column=column,
        source=spec.get("source"),
        constant=spec.get("constant", MISSING),
        cast=cast,
        format=spec.get("format"),
        timezone=spec.get("timezone"),
        trim=bool(spec.get("trim", trim)),
        default=spec.get("default", MISSING),
        required=bool(spec.get("required", False)) or column in keys,  # keys are never NULL
    )
    for what, value in (("constant", rule.constant), ("default", rule.default)):
        if value is not MISSING and value is not None:
            try:  # a constant or default that cannot cast would reject every row: refuse it now
                CASTS[cast].convert(value.strip() if isinstance(value, str) and rule.trim else value, rule)
            except CastError as exc:
                raise MappingError(f"{where}: {what} {value!r} is {exc}") from None
    return rule


# ---- the target table ---------------------------------------------------------------------------
def _quote(name: str) -> str:
    return ".".join(f'"{part}"' for part in name.split("."))  # parts are validated identifiers


def target_table_ddl(mapping: Mapper) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for Postgres: types from the casts, primary key from the keys."""
    lines = [f"    {_quote(r.column)} {CASTS[r.cast].pg_type}{' NOT NULL' if r.required else ''}" for r in mapping.rules]
    lines.append(f"    PRIMARY KEY ({', '.join(_quote(k) for k in mapping.key_columns)})")
    return f"CREATE TABLE IF NOT EXISTS {_quote(mapping.target_table)} (\n" + ",\n".join(lines) + "\n)"


def drift_problems(db: Database, mapping: Mapper) -> list[str]:
    """What in the existing table disagrees with the mapping (empty: nothing)."""
    if db.dialect.family != "postgres":
        raise MappingError(f"registry target tables live in Postgres, not {db.describe()}")
    schema, _, table = mapping.target_table.rpartition(".")
    schema_sql = "%s" if schema else "current_schema()"
    params = (schema, table) if schema else (table,)
    rows = db.fetchall(
        "SELECT column_name, data_type, is_nullable = 'YES', column_default IS NOT NULL OR is_identity = 'YES' "
        f"FROM information_schema.columns WHERE table_schema = {schema_sql} AND table_name = %s",
        params,
    )
    if not rows:
        db.commit()
        return [f"table {mapping.target_table} does not exist (create it with target_table_ddl)"]
    have = {name: (data_type, nullable, has_default) for name, data_type, nullable, has_default in rows}
    problems = []
    for rule in mapping.rules:
        if rule.column not in have:
            problems.append(f"column {rule.column} is missing (mapping casts it to {rule.cast})")
        elif have[rule.column][0] not in CASTS[rule.cast].accepts:
            problems.append(f"column {rule.column} is {have[rule.column][0]}, but the mapping casts it to {rule.cast} "
                            f"(expects {' or '.join(sorted(CASTS[rule.cast].accepts))})")
    for name, (_, nullable, has_default) in have.items():
        if name not in mapping.columns and not nullable and not has_default:
            problems.append(f"column {name} is NOT NULL without a default, but the mapping does not fill it")
    # The upsert's ON CONFLICT needs a unique index on exactly the key columns.
    unique_sets = db.fetchall(
        "SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND i.indpred IS NULL GROUP BY i.indexrelid",
        (_quote(mapping.target_table),),
    )
    db.commit()
    if sorted(mapping.key_columns) not in [sorted(r[0]) for r in unique_sets]:
        problems.append(f"no primary key or unique index on exactly the key columns {list(mapping.key_columns)}")
    return problems


def check_drift(db: Database, mapping: Mapper) -> None:
    """Raise :class:`SchemaDrift` naming every missing or mistyped column."""
    problems = drift_problems(db, mapping)
    if problems:
        raise SchemaDrift(f"target table {mapping.target_table} in {db.describe()} does not match its mapping: "
                          + "; ".join(problems))


def ensure_target_table(db: Database, mapping: Mapper) -> None:
    """Create the table when it is missing, then insist it matches (an existing table is never altered)."""
    db.execute(target_table_ddl(mapping)).close()
    db.commit()
    check_drift(db, mapping)
