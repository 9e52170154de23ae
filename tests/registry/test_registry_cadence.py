"""Due at the tick: which sources a run picks for its scheduled time, and where next_sync goes after
a sync (real registry database, real file sources, run_source in-process, ticks given explicitly)."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest

from datasync.registry import runner
from policies import policy_variable
from runner_fixtures import Registry, migrated_registry, registry_bound

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
MINUTE = dt.timedelta(minutes=1)
HALF_A_TICK = MINUTE / 2  # the 1-minute DAG's tolerance
MAPPING = {"key_columns": ["id"], "columns": [{"column": "id", "source": "id", "cast": "int"},
                                             {"column": "qty", "source": "qty", "cast": "int"}]}


@pytest.fixture(scope="module")
def registry(database_factory, tmp_path_factory):
    db = migrated_registry(database_factory, "regcadence")
    folder = tmp_path_factory.mktemp("cadence")
    (folder / "rows.json").write_text(json.dumps([{"id": 1, "qty": 2}, {"id": 2, "qty": 3}]))
    with registry_bound(db), policy_variable({"file_roots": [str(folder)]}):
        yield SimpleNamespace(registry=Registry(db), file=str(folder / "rows.json"))


@pytest.fixture
def fresh(registry):
    """Earlier tests' sources put aside; ``add(source_id, refresh, next_sync)`` registers one."""
    registry.registry.sql("UPDATE data_source_registry SET status = 'inactive'")

    def add(source_id: str, refresh: int, next_sync: dt.datetime | None = None) -> None:
        registry.registry.add(source_id, "json", [{"file_path": registry.file}],
                              [{"target_table": f"cad_{source_id}", **MAPPING}],
                              refresh_interval=refresh, next_sync=next_sync)
    return add


def tick(at: dt.datetime, tolerance: dt.timedelta = HALF_A_TICK, **pick) -> list[str]:
    """One run at its scheduled time ``at``: pick, then sync every picked source at that tick."""
    picked = [s["source_id"] for s in runner.pick_sources(runner.registry_database(), tick=at, tolerance=tolerance, **pick)]
    for source_id in picked:
        runner.run_source(source_id, run_id=f"tick-{at:%H%M}", tick=at, tolerance=tolerance)
    return picked


def next_sync(registry, source_id: str) -> dt.datetime:
    return registry.registry.state(source_id)["next_sync"]


def test_each_source_syncs_on_its_own_interval_at_the_ticks(registry, fresh):
    for source_id, refresh in [("every_60", 60), ("every_120", 120), ("every_90", 90), ("every_300", 300)]:
        fresh(source_id, refresh)
    runs = {at: tick(at) for at in (T0 + k * MINUTE for k in range(7))}
    synced = {sid: [k for k, at in enumerate(runs) if sid in runs[at]] for sid in ("every_60", "every_120", "every_90", "every_300")}
    assert synced == {"every_60": [0, 1, 2, 3, 4, 5, 6], "every_120": [0, 2, 4, 6],
                      # due at 0, 90, 180, 270, 360 s: each taken at the nearest tick (on average every 90 s)
                      "every_90": [0, 1, 3, 4, 6], "every_300": [0, 5]}
    # anchored to the schedule: due times are the first tick plus whole intervals, however long a sync took
    assert next_sync(registry, "every_60") == T0 + 7 * MINUTE
    assert next_sync(registry, "every_120") == T0 + 8 * MINUTE
    assert next_sync(registry, "every_90") == T0 + dt.timedelta(seconds=450)
    assert next_sync(registry, "every_300") == T0 + 10 * MINUTE


def test_a_due_time_set_from_a_finished_sync_is_taken_at_the_tick_and_does_not_drift(registry, fresh):
    # next_sync left by the old rule (finish time + interval): a few seconds after the tick
    fresh("late_by_5s", 60, T0 + dt.timedelta(seconds=4.8))
    assert tick(T0) == ["late_by_5s"]
    for k in range(1, 4):
        assert tick(T0 + k * MINUTE) == ["late_by_5s"]
    assert next_sync(registry, "late_by_5s") == T0 + 4 * MINUTE + dt.timedelta(seconds=4.8)
    # without a tolerance it waits for the following tick instead (never earlier than due)
    assert tick(T0 + 4 * MINUTE, tolerance=dt.timedelta(0)) == []
    assert tick(T0 + 5 * MINUTE, tolerance=dt.timedelta(0)) == ["late_by_5s"]
    assert next_sync(registry, "late_by_5s") == T0 + 5 * MINUTE + dt.timedelta(seconds=4.8)


def test_a_long_overdue_source_syncs_once_and_returns_to_its_grid(registry, fresh):
    fresh("paused_a_day", 300, T0 - dt.timedelta(days=1, seconds=20))
    assert tick(T0) == ["paused_a_day"]
    # the first step of its grid (a multiple of 300 s from the old due time) after this tick
    assert next_sync(registry, "paused_a_day") == T0 + dt.timedelta(seconds=280)
    assert tick(T0 + MINUTE) == []
    assert tick(T0 + 5 * MINUTE) == ["paused_a_day"]
    assert next_sync(registry, "paused_a_day") == T0 + dt.timedelta(seconds=580)


def test_a_forced_sync_keeps_the_schedule(registry, fresh):
    fresh("not_due", 600, T0 + 7 * MINUTE)
    assert tick(T0) == []
    assert tick(T0, source_ids=["not_due"]) == ["not_due"]
    assert next_sync(registry, "not_due") == T0 + 7 * MINUTE
    assert registry.registry.state("not_due")["last_sync"] is not None


def test_a_failed_sync_moves_on_the_grid_too(registry, fresh, tmp_path):
    registry.registry.add("gone_file", "json", [{"file_path": str(tmp_path / "missing.json")}],
                          [{"target_table": "cad_gone", **MAPPING}], refresh_interval=60)
    with pytest.raises(runner.SourceSyncFailed):
        runner.run_source("gone_file", run_id="t", tick=T0, tolerance=HALF_A_TICK)
    assert next_sync(registry, "gone_file") == T0 + MINUTE
    with pytest.raises(runner.SourceSyncFailed):  # an attempt Airflow will retry leaves the schedule alone
        runner.run_source("gone_file", run_id="t", tick=T0 + MINUTE, tolerance=HALF_A_TICK, final_attempt=False)
    assert next_sync(registry, "gone_file") == T0 + MINUTE


def test_the_tick_is_the_runs_scheduled_time():
    scheduled = dt.datetime(2026, 1, 5, 10, 5, tzinfo=UTC)
    run = SimpleNamespace(run_after=scheduled + dt.timedelta(seconds=3))
    assert runner.scheduled_time({"data_interval_end": scheduled, "logical_date": scheduled, "dag_run": run}) == scheduled
    # triggered without a logical date: when it was set to run
    assert runner.scheduled_time({"data_interval_end": None, "logical_date": None, "dag_run": run}) == run.run_after
    assert runner.scheduled_time({}) is None
