"""Mappings: casts, rejects, identifier checks, and the target table's DDL and drift on real Postgres."""

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from datasync.db import connected
from datasync.identifiers import InvalidIdentifier
from datasync.registry.mapping import (
    MappingError, SchemaDrift, check_drift, compile_mapping, drift_problems, ensure_target_table, target_table_ddl,
)

UTC = dt.timezone.utc
CONFIG = {
    "target_table": "production_data",
    "key_columns": ["machine_id", "produced_on"],
    "cursor_field": "updated_at",
    "retention_date_column": "produced_on",
    "columns": [
        {"column": "machine_id", "source": "machine.id", "cast": "int"},
        {"column": "produced_on", "source": "date", "cast": "date", "format": "%d/%m/%Y"},
        {"column": "qty", "source": "qty", "cast": "decimal", "default": 0},
        {"column": "ok", "source": "ok", "cast": "bool"},
        {"column": "line", "constant": "L1"},
        {"column": "note", "source": "note"},
        {"column": "extra", "source": "extra", "cast": "json"},
        {"column": "updated_at", "source": "updated", "cast": "timestamp",
         "format": "%Y-%m-%d %H:%M:%S", "timezone": "Asia/Jakarta"},
    ],
}
GOOD = {"machine": {"id": " 7 "}, "date": "05/01/2026", "qty": "12.50", "ok": "yes", "note": "  shift 1 ",
        "extra": '{"a": 1}', "updated": "2026-01-05 08:00:00"}


def test_a_good_record_is_cast_trimmed_and_completed():
    row, reject = compile_mapping(CONFIG).map_record(GOOD)
    assert reject is None
    assert row == {"machine_id": 7, "produced_on": dt.date(2026, 1, 5), "qty": Decimal("12.50"), "ok": True,
                   "line": "L1", "note": "shift 1", "extra": {"a": 1},
                   "updated_at": dt.datetime(2026, 1, 5, 1, 0, tzinfo=UTC)}  # 08:00 WIB is 01:00 UTC


@pytest.mark.parametrize("value, cast", [(7, 7), (-2**63, -2**63), (2**63 - 1, 2**63 - 1), (7.0, 7), ("+7", 7), ("7.00", 7)])
def test_integers_from_json_numbers_and_text(value, cast):
    row, reject = compile_mapping(CONFIG).map_record({**GOOD, "machine": {"id": value}})
    assert reject is None and row["machine_id"] == cast and type(row["machine_id"]) is int


def test_defaults_and_empty_values():
    row, _ = compile_mapping(CONFIG).map_record({**GOOD, "qty": "  ", "note": "", "ok": None, "extra": None})
    assert (row["qty"], row["note"], row["ok"], row["extra"]) == (0, None, None, None)


@pytest.mark.parametrize("field, value, column, reason", [
    ("machine", {"id": 7.5}, "machine_id", "not a whole number"),
    ("machine", {"id": "7.5"}, "machine_id", "not an integer"),
    ("machine", {"id": "1_000"}, "machine_id", "not an integer"),
    ("machine", {"id": True}, "machine_id", "a boolean, not an integer"),
    ("machine", {"id": 2**63}, "machine_id", "out of range for a 64-bit integer"),
    ("machine", {"id": -2**63 - 1}, "machine_id", "out of range for a 64-bit integer"),
    ("machine", {"id": "9223372036854775808"}, "machine_id", "out of range for a 64-bit integer"),
    ("machine", {}, "machine_id", "required value is missing"),  # key columns are required
    ("date", "2026-01-05", "produced_on", "not a date in format %d/%m/%Y"),
    ("qty", "12,5", "qty", "not a number"),
    ("qty", "NaN", "qty", "not a number"),
    ("ok", "maybe", "ok", "not a boolean"),
    ("note", {"nested": 1}, "note", "an object/array, not text"),
    ("extra", "{broken", "extra", "not JSON text"),
    ("updated", "05/01/2026", "updated_at", "not a timestamp in format %Y-%m-%d %H:%M:%S"),
])
def test_a_value_that_does_not_cast_is_a_reject_not_an_exception(field, value, column, reason):
    mapper = compile_mapping(CONFIG)
    record = {**GOOD, field: value}
    row, reject = mapper.map_record(record)
    assert row is None
    assert (reject.table, reject.column) == ("production_data", column)
    assert reject.reason.startswith(reason)
    assert reject.value == (value.get("id") if field == "machine" else value)
    assert reject.row == record


def test_batch_keeps_going_and_names_every_bad_column():
    mapper = compile_mapping(CONFIG)
    bad = {**GOOD, "qty": "lots", "ok": "perhaps"}
    result = mapper.map_batch([GOOD, bad, {**GOOD, "machine": {"id": 8}}])
    assert [r["machine_id"] for r in result.rows] == [7, 8]
    [reject] = result.rejects
    assert reject.key == (7, dt.date(2026, 1, 5))
    assert reject.column == "qty" and reject.reason == "not a number; also bad: ok"
    assert "qty" in reject.describe() and "lots" in reject.describe()


def test_excel_datetimes_epoch_and_iso_timestamps():
    mapper = compile_mapping({"target_table": "t", "key_columns": ["d"], "columns": [
        {"column": "d", "source": "d", "cast": "date"},
        {"column": "e", "source": "e", "cast": "timestamp", "format": "epoch"},
        {"column": "i", "source": "i", "cast": "timestamp"},
    ]})
    row, _ = mapper.map_record({"d": dt.datetime(2026, 1, 5), "e": 1767571200, "i": "2026-01-05T07:00:00+07:00"})
    assert row == {"d": dt.date(2026, 1, 5), "e": dt.datetime(2026, 1, 5, tzinfo=UTC),
                   "i": dt.datetime(2026, 1, 5, tzinfo=UTC)}
    _, reject = mapper.map_record({"d": dt.datetime(2026, 1, 5, 13, 30)})
    assert reject.reason == "a timestamp with a time of day, not a date"


def test_absent_source_fields_are_reported(caplog):
    result = compile_mapping(CONFIG).map_batch([{k: v for k, v in GOOD.items() if k != "note"}])
    assert result.absent_sources == ["note"]
    assert "source field(s) ['note'] appear in none of 1 record(s)" in caplog.text


@pytest.mark.parametrize("change, error, message", [
    ({"target_table": "x; DROP TABLE y"}, InvalidIdentifier, "refusing table name"),
    ({"target_table": 'prod"uction'}, InvalidIdentifier, "refusing table name"),
    ({"target_table": "data_source_registry"}, InvalidIdentifier, "registry's own tables"),
    ({"columns": [{"column": "id; DROP TABLE y", "source": "id"}]}, InvalidIdentifier, "refusing column name"),
    ({"key_columns": ["id'--"], "columns": [{"column": "id", "source": "id"}]}, InvalidIdentifier, "refusing key column"),
    ({"key_columns": ["nope"]}, MappingError, "key column 'nope' is not one of the mapped columns"),
    ({"key_columns": "machine_id"}, MappingError, "key_columns must be a list"),
    ({"cursor_field": "missing"}, MappingError, "cursor field 'missing' is not one of"),
    ({"retention_date_column": "note"}, MappingError, "must be cast to date or timestamp"),
    ({"columns": [{"column": "a", "source": "a", "cast": "eval"}]}, MappingError, "unknown cast 'eval'"),
    ({"columns": [{"column": "a", "source": "a", "cats": "int"}]}, MappingError, r"unknown key\(s\) \['cats'\]"),
    ({"columns": [{"column": "a", "source": "a", "constant": 1}]}, MappingError, "exactly one"),
    ({"columns": [{"column": "a", "source": "a", "cast": "int", "default": "zero"}]}, MappingError, "default 'zero'"),
    ({"columns": [{"column": "a", "source": "a", "cast": "int", "format": "%Y"}]}, MappingError, "'format'"),
    ({"columns": [{"column": "a", "source": "a", "cast": "timestamp", "timezone": "Mars/Base"}]}, MappingError, "unknown timezone"),
    ({"columns": [{"column": "a", "source": "a"}, {"column": "a", "source": "b"}]}, MappingError, "mapped twice"),
    ({"transform": "__import__('os')"}, MappingError, r"unknown mapping config key\(s\) \['transform'\]"),
])
def test_bad_configs_are_refused_when_compiled(change, error, message):
    config = {**CONFIG, **change}
    if "columns" in change and "key_columns" not in change:
        config.update(key_columns=[change["columns"][0]["column"]], cursor_field=None, retention_date_column=None)
    with pytest.raises(error, match=message):
        compile_mapping(config)


def test_registry_row_columns_override_the_config():
    mapper = compile_mapping('{"columns": [{"column": "id", "source": "ID", "cast": "int"}]}',
                             target_table="plant.machines", key_columns=["id"])
    assert (mapper.target_table, mapper.key_columns, mapper.columns) == ("plant.machines", ("id",), ["id"])


# ---- DDL and drift on real Postgres -------------------------------------------------------------
@pytest.fixture
def registry(migrated_target):
    migrated_target("registry")
    with connected("registry_db") as db:
        yield db


def _mapping(table):
    return compile_mapping({**CONFIG, "target_table": table})


def test_ddl_creates_a_table_that_matches_its_mapping(registry):
    table = f"prod_{uuid.uuid4().hex[:8]}"
    mapping = _mapping(table)
    ddl = target_table_ddl(mapping)
    assert ddl.startswith(f'CREATE TABLE IF NOT EXISTS "{table}" (')
    assert '"machine_id" BIGINT NOT NULL' in ddl and '"updated_at" TIMESTAMPTZ' in ddl
    assert 'PRIMARY KEY ("machine_id", "produced_on")' in ddl
    ensure_target_table(registry, mapping)
    ensure_target_table(registry, mapping)  # idempotent
    assert drift_problems(registry, mapping) == []
    types = dict(registry.fetchall("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s", (table,)))
    registry.commit()
    assert types["qty"] == "numeric" and types["extra"] == "jsonb" and types["produced_on"] == "date"


def test_drift_names_missing_and_mistyped_columns_and_the_key(registry):
    table = f"prod_{uuid.uuid4().hex[:8]}"
    registry.execute(f'CREATE TABLE "{table}" (machine_id INT, produced_on TEXT, qty NUMERIC, ok BOOLEAN, line TEXT, '
                     "note VARCHAR(50), extra JSON, batch_no INT NOT NULL)")
    registry.commit()
    with pytest.raises(SchemaDrift) as err:
        check_drift(registry, _mapping(table))
    message = str(err.value)
    assert f"target table {table}" in message
    assert "column produced_on is text, but the mapping casts it to date" in message
    assert "column updated_at is missing" in message
    assert "column batch_no is NOT NULL without a default" in message
    assert "no primary key or unique index on exactly the key columns ['machine_id', 'produced_on']" in message
    assert "machine_id is" not in message and "note" not in message  # compatible types pass


def test_drift_on_a_missing_table(registry):
    assert drift_problems(registry, _mapping("no_such_table")) == [
        "table no_such_table does not exist (create it with target_table_ddl)"]
