"""A registry source with the bad values an outside file can carry: every rejected row is in
sync_rejects (named, stored JSON-safely), duplicate keys are counted in the history, and the
counts add up. run_source in-process, real Postgres, a real JSON file."""

from __future__ import annotations

import json

import pytest

from datasync.registry import runner
from runner_fixtures import Registry, migrated_registry, registry_bound

HUGE = 2**70
MAPPING = {"columns": [
    {"column": "id", "source": "id", "cast": "int"},
    {"column": "qty", "source": "qty", "cast": "int"},
    {"column": "note", "source": "note", "cast": "text"}]}


@pytest.fixture(scope="module")
def registry(database_factory):
    db = migrated_registry(database_factory, "regbad")
    with registry_bound(db):
        yield Registry(db)


def test_bad_values_are_all_kept_and_duplicates_counted(registry, tmp_path, caplog):
    # Python's json (like many producers) writes NaN and Infinity as bare words; JSONB refuses them.
    records = [
        {"id": 1, "qty": float("nan"), "extra": {"reading": float("nan")}},
        {"id": 2, "qty": float("inf")},
        {"id": 3, "qty": float("-inf")},
        {"id": 4, "qty": HUGE, "extra": [HUGE]},
        {"id": 5, "qty": 5, "note": "first"},
        {"id": 5, "qty": 6, "note": "second"},
        {"id": 7, "qty": 7, "note": "nul \x00 inside"},
    ]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(records))
    registry.add("bad_src", "json", [{"file_path": str(path)}],
                 [{"target_table": "bad_values", "key_columns": ["id"], "max_rejects": 10, **MAPPING}])
    summary = runner.run_source("bad_src", run_id="bad-run")

    assert summary["status"] == "partial"
    [mapping] = summary["mappings"]
    assert (mapping["processed"], mapping["inserted"], mapping["rejected"], mapping["duplicate"]) == (7, 1, 5, 1)
    [history] = registry.sql(
        "SELECT sync_status, records_processed, records_inserted, records_rejected, records_duplicate "
        "FROM data_source_sync_history h JOIN data_source_registry r ON r.id = h.source_id WHERE r.source_id = 'bad_src'")
    assert history == ("partial", 7, 1, 5, 1)
    assert registry.sql("SELECT id, qty, note FROM bad_values") == [(5, 6, "second")]

    stored = registry.sql("SELECT row_key, column_name, value, reason, row_data, run_id FROM sync_rejects "
                          "WHERE sync_name = 'registry.bad_src.bad_values' ORDER BY id")
    assert len(stored) == mapping["rejected"], "every counted reject is stored"
    by_key = {json.loads(r[0]) if not r[0].startswith("[") else json.loads(r[0])[0]: r for r in stored}
    assert {k: r[1:4] for k, r in by_key.items()} == {
        1: ("qty", "NaN", "not a whole number"),
        2: ("qty", "Infinity", "not a whole number"),
        3: ("qty", "-Infinity", "not a whole number"),
        4: ("qty", str(HUGE), "out of range for a 64-bit integer"),
        7: ("note", "nul \\u0000 inside", "contains a NUL byte, which PostgreSQL text cannot store"),
    }
    assert by_key[1][4]["extra"] == {"reading": "NaN"} and by_key[4][4]["extra"] == [str(HUGE)]
    assert {r[5] for r in stored} == {"bad-run"}
    assert "could not store" not in caplog.text
