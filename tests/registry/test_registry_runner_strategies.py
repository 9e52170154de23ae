"""The runner's sync strategies and bookkeeping, one source at a time (run_source in-process,
real Postgres, real files): full deletes, incremental cursors, retention, rejects, drift,
failover, picking, error counting."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from datasync.registry import runner
from policies import policy_variable
from runner_fixtures import Registry, migrated_registry, registry_bound

UTC = dt.timezone.utc
MAPPING = {"columns": [
    {"column": "id", "source": "id", "cast": "int"},
    {"column": "qty", "source": "qty", "cast": "int"},
    {"column": "updated_at", "source": "updated_at", "cast": "timestamp"}]}


@pytest.fixture(scope="module")
def registry(database_factory, tmp_path_factory):
    db = migrated_registry(database_factory, "regstrat")
    # files written by the tests, and a directory that does not exist (missing files are named as such)
    roots = [str(tmp_path_factory.getbasetemp()), "/nonexistent"]
    with registry_bound(db), policy_variable({"file_roots": roots}):
        yield Registry(db)


@pytest.fixture
def files(tmp_path):
    def write(name: str, records) -> str:
        path = tmp_path / name
        path.write_text(records if isinstance(records, str) else json.dumps(records))
        return str(path)
    return write


def stamp(hour: int, minute: int = 0) -> str:
    return dt.datetime(2026, 1, 5, hour, minute, tzinfo=UTC).isoformat()


def run(source_id: str, **kwargs):
    try:
        return runner.run_source(source_id, run_id="test", **kwargs)
    except runner.SourceSyncFailed as exc:
        return exc


def last(registry: Registry, source_id: str) -> dict:
    return registry.history(source_id)[-1]


def test_full_strategy_upserts_and_deletes_rows_gone_from_the_source(registry, files):
    path = files("machines.json", [{"id": i, "qty": i, "updated_at": stamp(i)} for i in (1, 2, 3)])
    registry.add("full_src", "json", [{"file_path": path}],
                 [{"target_table": "machines_full", "key_columns": ["id"], "cursor_field": "updated_at", **MAPPING}])
    summary = run("full_src")
    assert summary["status"] == "success" and summary["mappings"][0]["inserted"] == 3
    files("machines.json", [{"id": 1, "qty": 10, "updated_at": stamp(4)}, {"id": 3, "qty": 3, "updated_at": stamp(3)}])
    run("full_src")
    assert registry.db.query("SELECT id, qty FROM machines_full ORDER BY id") == [(1, 10), (3, 3)]
    h = last(registry, "full_src")
    assert (h["sync_type"], h["records_processed"], h["records_updated"], h["records_unchanged"], h["records_deleted"]) == \
        ("full", 2, 1, 1, 1)


def test_unmappable_rows_are_rejected_named_and_block_deletes(registry, files):
    path = files("parts.json", [{"id": i, "qty": i, "updated_at": stamp(i)} for i in (1, 2, 3)])
    registry.add("rejects_src", "json", [{"file_path": path}],
                 [{"target_table": "parts", "key_columns": ["id"], "max_rejects": 1, **MAPPING}])
    run("rejects_src")
    # row 2 now has a bad qty: it is rejected, and (it may still exist) not deleted either
    files("parts.json", [{"id": 1, "qty": 1, "updated_at": stamp(1)}, {"id": 2, "qty": "lots", "updated_at": stamp(2)}])
    summary = run("rejects_src")
    assert summary["status"] == "partial"
    h = last(registry, "rejects_src")
    assert (h["sync_status"], h["records_rejected"], h["records_deleted"]) == ("partial", 1, 0)
    assert "not deleted" in h["error_message"]
    assert registry.db.query("SELECT id FROM parts ORDER BY id") == [(1,), (2,), (3,)]
    assert registry.db.query("SELECT row_key, column_name, value, reason FROM sync_rejects "
                             "WHERE sync_name = 'registry.rejects_src.parts'") == [("[2]", "qty", "lots", "not an integer")]
    # past max_rejects the whole full sync is rolled back and the run fails
    files("parts.json", [{"id": 1, "qty": "x", "updated_at": stamp(1)}, {"id": 4, "qty": "y", "updated_at": stamp(4)}])
    exc = run("rejects_src")
    assert isinstance(exc, runner.SourceSyncFailed) and "more than max_rejects=1" in str(exc)
    assert registry.db.query("SELECT id FROM parts ORDER BY id") == [(1,), (2,), (3,)]
    assert registry.db.query("SELECT count(*) FROM sync_rejects WHERE sync_name = 'registry.rejects_src.parts'") == [(3,)]


def test_bad_values_are_all_kept_and_duplicates_counted(registry, files, caplog):
    """NaN, Infinity, 2**70 and a NUL byte from an outside file: every counted reject is stored
    (JSON-safely), and a key repeated in the file is counted in the history."""
    # Python's json (like many producers) writes NaN and Infinity as bare words; JSONB refuses them.
    records = [
        {"id": 1, "qty": float("nan"), "extra": {"reading": float("nan")}},
        {"id": 2, "qty": float("inf")},
        {"id": 3, "qty": float("-inf")},
        {"id": 4, "qty": 2**70, "extra": [2**70]},
        {"id": 5, "qty": 5, "note": "first"},
        {"id": 5, "qty": 6, "note": "second"},
        {"id": 7, "qty": 7, "note": "nul \x00 inside"},
    ]
    path = files("bad.json", records)
    columns = [{"column": "id", "source": "id", "cast": "int"}, {"column": "qty", "source": "qty", "cast": "int"},
               {"column": "note", "source": "note", "cast": "text"}]
    registry.add("bad_src", "json", [{"file_path": path}],
                 [{"target_table": "bad_values", "key_columns": ["id"], "max_rejects": 10, "columns": columns}])
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
    keys = [json.loads(r[0]) for r in stored]  # the mapping names a key as [id], the engine as id
    by_key = {k[0] if isinstance(k, list) else k: r for k, r in zip(keys, stored)}
    assert {k: r[1:4] for k, r in by_key.items()} == {
        1: ("qty", "NaN", "not a whole number"),
        2: ("qty", "Infinity", "not a whole number"),
        3: ("qty", "-Infinity", "not a whole number"),
        4: ("qty", str(2**70), "out of range for a 64-bit integer"),
        7: ("note", "nul \\u0000 inside", "contains a NUL byte, which PostgreSQL text cannot store"),
    }
    assert by_key[1][4]["extra"] == {"reading": "NaN"} and by_key[4][4]["extra"] == [str(2**70)]
    assert {r[5] for r in stored} == {"bad-run"}
    assert "could not store" not in caplog.text


def test_incremental_moves_the_cursor_and_skips_what_is_behind_it(registry, files):
    rows = [{"id": i, "qty": i, "updated_at": stamp(8 + i)} for i in (1, 2, 3)]
    path = files("readings.json", rows)
    registry.add("inc_src", "json", [{"file_path": path}],
                 [{"target_table": "readings", "key_columns": ["id"], "cursor_field": "updated_at",
                   "sync_strategy": "incremental", **MAPPING}])
    run("inc_src")
    cursor = "SELECT cursor_value FROM sync_cursors WHERE sync_name = 'registry.inc_src.readings'"
    assert json.loads(registry.db.query(cursor)[0][0]) == {"datetime": "2026-01-05T11:00:00+00:00"}
    rows[0]["qty"] = 100  # changed, but its timestamp is far behind the cursor: not re-read
    rows[2]["qty"] = 300  # at the cursor: re-read (lookback), updated
    rows.append({"id": 4, "qty": 4, "updated_at": stamp(11, 5)})  # within the lookback window
    rows.append({"id": 5, "qty": 5, "updated_at": stamp(12)})
    files("readings.json", rows)
    run("inc_src")
    h = last(registry, "inc_src")
    assert (h["records_processed"], h["records_inserted"], h["records_updated"], h["records_unchanged"]) == (5, 2, 1, 0)
    assert "2 record(s) behind the cursor skipped" in h["error_message"]
    assert registry.db.query("SELECT id, qty FROM readings ORDER BY id") == [(1, 1), (2, 2), (3, 300), (4, 4), (5, 5)]
    assert json.loads(registry.db.query(cursor)[0][0]) == {"datetime": "2026-01-05T12:00:00+00:00"}


def test_retention_skips_and_purges_rows_older_than_the_window(registry, files):
    today = dt.datetime.now(UTC).date()
    records = [{"id": 1, "day": str(today - dt.timedelta(days=3))}, {"id": 2, "day": str(today - dt.timedelta(days=40))}]
    path = files("calendar.json", records)
    registry.add("ret_src", "json", [{"file_path": path}],
                 [{"target_table": "production_calendar", "key_columns": ["id"], "retention_date_column": "day",
                   "data_retention_days": 30, "sync_strategy": "full", "columns": [
                       {"column": "id", "source": "id", "cast": "int"}, {"column": "day", "source": "day", "cast": "date"}]}])
    run("ret_src")
    assert registry.db.query("SELECT id FROM production_calendar") == [(1,)]
    assert "1 record(s) older than 30 days skipped" in last(registry, "ret_src")["error_message"]
    # a row that aged out in the table (e.g. written by an earlier, longer retention) is purged
    registry.db.query("ALTER TABLE production_calendar ADD COLUMN note TEXT")
    registry.db.query("INSERT INTO production_calendar VALUES (9, %s, 'old')", (today - dt.timedelta(days=90),))
    registry.sql("UPDATE data_source_mappings SET sync_strategy = 'incremental', cursor_field = 'day' "
                 "WHERE target_table = 'production_calendar'")
    run("ret_src")
    h = last(registry, "ret_src")
    assert h["records_deleted"] == 1 and "1 expired row(s) purged" in h["error_message"]
    assert registry.db.query("SELECT id FROM production_calendar") == [(1,)]


def test_drift_and_shared_full_targets_are_clear_errors(registry, files):
    path = files("drift.json", [{"id": 1, "qty": 1, "updated_at": stamp(1)}])
    registry.db.query("CREATE TABLE drifted (id BIGINT PRIMARY KEY, qty TEXT, updated_at TIMESTAMPTZ)")
    registry.add("drift_src", "json", [{"file_path": path}],
                 [{"target_table": "drifted", "key_columns": ["id"], **MAPPING}])
    exc = run("drift_src")
    assert isinstance(exc, runner.SourceSyncFailed)
    assert "target table drifted" in str(exc) and "column qty is text, but the mapping casts it to int" in str(exc)
    registry.add("share_a", "json", [{"file_path": path}],
                 [{"target_table": "shared_tbl", "key_columns": ["id"], "cursor_field": "updated_at",
                   "sync_strategy": "incremental", **MAPPING}])
    registry.add("share_b", "json", [{"file_path": path}],
                 [{"target_table": "shared_tbl", "key_columns": ["id"], **MAPPING}])
    assert run("share_a")["status"] == "success"
    exc = run("share_b")
    assert isinstance(exc, runner.SourceSyncFailed) and "also filled by 1 other source(s)" in str(exc)


def test_backup_serves_when_the_primary_is_missing(registry, files):
    backup = files("mirror.json", [{"id": 1, "qty": 1, "updated_at": stamp(1)}])
    registry.add("failover_src", "json",
                 [{"name": "share", "file_path": "/nonexistent/primary.json"}, {"name": "mirror", "file_path": backup}],
                 [{"target_table": "failover_tbl", "key_columns": ["id"], **MAPPING}])
    summary = run("failover_src")
    assert summary["mappings"][0]["connection_role"] == "backup"
    h = last(registry, "failover_src")
    assert (h["sync_status"], h["connection_role"]) == ("success", "backup")
    assert "primary 'share' failed: json source /nonexistent/primary.json: file not found" in h["error_message"]
    registry.sql("UPDATE data_source_connections SET connection_config = '{\"file_path\": \"/nonexistent/b.json\"}' "
                 "WHERE connection_name = 'mirror'")
    exc = run("failover_src")
    assert "every connection failed" in str(exc) and "backup 'mirror' failed" in str(exc)
    assert last(registry, "failover_src")["connection_role"] is None


def test_error_count_counts_runs_not_retries_and_resets_on_success(registry, files):
    registry.add("count_src", "json", [{"file_path": "/nonexistent/c.json"}],
                 [{"target_table": "count_tbl", "key_columns": ["id"], **MAPPING}])
    run("count_src", final_attempt=False)  # Airflow will retry this attempt
    state = registry.state("count_src")
    assert (state["error_count"], state["status"]) == (0, "active") and "not found" in state["last_error"]
    for n in (1, 2):
        run("count_src", error_threshold=2)
        assert registry.state("count_src")["error_count"] == n
    assert registry.state("count_src")["status"] == "error"
    assert len(registry.history("count_src")) == 3  # every attempt is in the history
    registry.sql("UPDATE data_source_connections SET connection_config = %s::jsonb "
                 "WHERE source_id = (SELECT id FROM data_source_registry WHERE source_id = 'count_src')",
                 (json.dumps({"file_path": files("c.json", [])}),))
    assert run("count_src")["status"] == "success"
    state = registry.state("count_src")
    assert (state["error_count"], state["status"], state["last_error"]) == (0, "active", None)


def test_a_source_without_mappings_fails_clearly(registry):
    registry.add("no_map", "json", [{"file_path": "/x.json"}], [])
    exc = run("no_map")
    assert "has no active mapping" in str(exc)
    assert last(registry, "no_map")["sync_status"] == "failed"


def test_pick_orders_by_priority_and_overdue_and_forces(registry):
    db = runner.registry_database()
    registry.sql("UPDATE data_source_registry SET status = 'inactive'")  # earlier tests' sources
    now = dt.datetime.now(UTC)
    for sid, priority, next_sync, status in [("p3", 3, None, "active"), ("p1_late", 1, now - dt.timedelta(hours=2), "active"),
                                             ("p1_new", 1, None, "active"), ("p2", 2, now - dt.timedelta(hours=5), "active"),
                                             ("future", 1, now + dt.timedelta(hours=1), "active"),
                                             ("held", 1, None, "maintenance"), ("broken", 1, None, "error")]:
        registry.add(sid, "json", [{"file_path": "/x.json"}], [{"target_table": "t_pick", "key_columns": ["id"],
                                                                "cursor_field": "id", "sync_strategy": "incremental",
                                                                **MAPPING}],
                     priority=priority, next_sync=next_sync, status=status)
    picked = [s["source_id"] for s in runner.pick_sources(db)]
    assert picked == ["p1_new", "p1_late", "p2", "p3"]
    assert [s["source_id"] for s in runner.pick_sources(db, limit=2)] == ["p1_new", "p1_late"]
    assert runner.pick_sources(db, realtime=True) == []
    forced = runner.pick_sources(db, source_ids=["future", "broken", "held"])
    assert [s["source_id"] for s in forced] == ["future", "broken"]
    assert forced[0] == {"source_id": "future", "name": "future", "priority": 1}
    with pytest.raises(ValueError, match=r"not in data_source_registry: \['ghost'\]"):
        runner.pick_sources(db, source_ids=["ghost", "p2"])


def test_error_threshold_comes_from_param_then_variable(monkeypatch):
    assert runner.error_threshold(5) == 5
    monkeypatch.setenv("AIRFLOW_VAR_REGISTRY_ERROR_THRESHOLD", "7")
    assert runner.error_threshold(None) == 7
    monkeypatch.delenv("AIRFLOW_VAR_REGISTRY_ERROR_THRESHOLD")
    assert runner.error_threshold(None) == runner.DEFAULT_ERROR_THRESHOLD


def test_unconfigured_google_sheet_is_skipped_not_failed(registry):
    registry.add("sheet_src", "gsheet", [{"spreadsheet_id": "abc", "range": "Sheet1!A1:C",
                                          "gcp_conn_id": "registry_test_no_such_gcp"}],
                 [{"target_table": "sheet_tbl", "key_columns": ["id"], **MAPPING}])
    summary = run("sheet_src")
    assert summary["status"] == "skipped" and "is not configured" in summary["note"]
    state = registry.state("sheet_src")
    assert (state["status"], state["error_count"], state["last_sync"]) == ("active", 0, None)
    assert state["next_sync"] is not None and registry.history("sheet_src") == []
