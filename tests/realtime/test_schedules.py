"""The DAGs' real-time wiring: on change or on the clock, the watcher's trigger serialized as
Airflow stores it (no secret), and the registry's watch list from the platform's setting."""

from __future__ import annotations

from airflow.serialization.encoders import encode_trigger
from airflow.timetables.assets import AssetOrTimeSchedule as SerializedAssetOrTime

from harness import load_dag
from datasync.lifecycle import TABLES


def _stored_timetable(dag):
    """The timetable as the scheduler sees it (after serialization)."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable


def _assets(dag) -> dict:
    """The watched assets; any one of them starts a run (AssetAny, not Airflow's default AssetAll)."""
    from airflow.sdk import AssetAny

    condition = dag.timetable.asset_condition
    assert isinstance(condition, AssetAny), condition
    return {asset.name: asset for asset in condition.objects}


def test_lifecycle_sync_runs_on_change_or_hourly():
    dag = load_dag("lifecycle_sync")
    assert dag.max_active_runs == 1  # what folds events during a run into one follow-up run
    stored = _stored_timetable(dag)
    assert isinstance(stored, SerializedAssetOrTime) and stored.timetable.summary == "0 * * * *"
    (asset,) = _assets(dag).values()
    assert asset.name == "lifecycle_db_changes"
    (watcher,) = asset.watchers
    classpath, kwargs = watcher.trigger.serialize()
    assert classpath == "datasync.realtime.PostgresChangeTrigger"
    assert kwargs["conn_id"] == "lifecycle_db" and kwargs["tables"] == sorted(t.source for t in TABLES)
    assert "password" not in str(encode_trigger(watcher.trigger)).lower()


def test_registry_realtime_watches_the_platforms_connections(monkeypatch):
    assert _stored_timetable(load_dag("source_registry_realtime", "source_registry_runner.py")).summary == "* * * * *"
    monkeypatch.setenv("DATASYNC_REGISTRY_REALTIME_WATCH", "plant_db, line_db")
    dag = load_dag("source_registry_realtime", "source_registry_runner.py")
    assert _stored_timetable(dag).timetable.summary == "* * * * *"
    assets = _assets(dag)
    assert set(assets) == {"plant_db_changes", "line_db_changes"}
    assert {a.watchers[0].trigger.conn_id for a in assets.values()} == {"plant_db", "line_db"}
    assert _stored_timetable(load_dag("source_registry_runner", "source_registry_runner.py")).summary == "*/5 * * * *"
