"""What each view shows, as JSON-ready dicts: the facts of every target turned into rows a person
reads (status, freshness, lag, what to look at first). The HTML pages render exactly these."""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import quote

from datasync.engine.state import loads
from datasync.migrate import TARGETS
from datasync.monitor import facts
from datasync.monitor.safety import redact
from datasync.monitor.targets import TargetState, read_all, read_one
from datasync.ptmmm.kpi import KPI_TABLES, WIB, day_bounds

UTC = dt.timezone.utc
# Rejected rows count as open this long: a refused row is missing from the target until its
# source row changes (incremental) or a full refresh re-reads it.
REJECT_WINDOW_DAYS = int(os.environ.get("DATASYNC_MONITOR_REJECT_DAYS", "7"))
# A sync whose next run is this late (scheduler or DAG trouble) is shown as late.
LATE_AFTER = dt.timedelta(minutes=15)
KPI_WINDOW_DAYS = 30
HISTORY_LIMIT = 50
REJECTS_LIMIT = 200

# Problems first: the order rows are sorted in.
STATUS_RANK = {"unreachable": 0, "unreadable": 0, "timed out": 0, "error": 1, "failed": 1, "late": 2, "gaps": 2, "partial": 3,
               "running": 4, "never run": 5, "ok": 6, "inactive": 7, "maintenance": 7, "not configured": 8}
PROBLEMS = {s for s, rank in STATUS_RANK.items() if rank <= 3}

# sync_name prefix -> pipeline shown (the rest: the name's first part, the DAG id by convention)
PIPELINES = (
    ("lifecycle_sync.", "lifecycle"),
    ("tekmetric_sync.", "tekmetric"),
    ("ptmmm_daily_kpi_etl.mirror.", "kpi mirror"),
    ("ptmmm_kpi_rollback.", "kpi rollback"),
    ("ptmmm_master_data.", "master data"),
    ("registry.", "registry"),
)
REGISTRY_DAGS = ("source_registry_runner", "source_registry_realtime")
KPI_DAG = "ptmmm_daily_kpi_etl"


def now_utc() -> dt.datetime:
    return dt.datetime.now(UTC)


def _aware(value: Any) -> Any:
    """MySQL returns naive UTC datetimes; everything shown is aware UTC."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def iso(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return _aware(value).isoformat()
    return value


def pipeline_of(sync_name: str) -> str:
    for prefix, pipeline in PIPELINES:
        if sync_name.startswith(prefix):
            return pipeline
    return sync_name.split(".", 1)[0]


def _cursor_value(text: str | None) -> Any:
    try:
        return loads(text)
    except Exception:  # written by something else than the engine: show it as it is
        return text


def _lag_seconds(as_of: Any, now: dt.datetime) -> float | None:
    if isinstance(as_of, dt.datetime):
        return max((now - _aware(as_of)).total_seconds(), 0.0)
    if isinstance(as_of, dt.date):
        return max((now.date() - as_of).days, 0) * 86400.0
    return None


def ti_url(airflow_root: str, dag_id: str | None, run_id: str | None, task_id: str | None,
           map_index: int | None = None) -> str | None:
    """The Airflow UI page of a task instance (or of the DAG run when the task is unknown)."""
    if not dag_id or not run_id:
        return None
    url = f"{airflow_root}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    if task_id:
        url += f"/tasks/{quote(task_id, safe='')}"
        if map_index is not None and map_index >= 0:
            url += f"/mapped/{int(map_index)}"
    return url


@dataclass
class SyncRow:
    """One line of the overview: one sync (or registry source, or KPI table) on one target."""

    pipeline: str
    target: str
    name: str
    status: str
    detail: str  # path of the detail view, relative to the page root
    last_status: str | None = None
    last_run_at: Any = None
    last_success_at: Any = None
    data_as_of: Any = None
    as_of_from: str | None = None  # cursor | last success | newest day
    lag_seconds: float | None = None
    rows_read_last_run: int | None = None
    rows_moved_last_run: int | None = None
    rejects_open: int | None = None
    error_count: int = 0
    next_due: Any = None
    last_error: str | None = None
    dag_id: str | None = None
    task_url: str | None = None
    note: str | None = None

    @property
    def rank(self) -> int:
        return STATUS_RANK.get(self.status, 6)

    def as_dict(self) -> dict[str, Any]:
        return {k: iso(getattr(self, k)) for k in SYNC_ROW_FIELDS}


SYNC_ROW_FIELDS = [f.name for f in fields(SyncRow)]


@dataclass
class Overview:
    rows: list[SyncRow]
    targets: list[TargetState]
    generated_at: dt.datetime = field(default_factory=now_utc)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for row in self.rows:
            out[row.status] += 1
        return dict(sorted(out.items(), key=lambda kv: STATUS_RANK.get(kv[0], 6)))

    def as_dict(self) -> dict[str, Any]:
        return {"generated_at": iso(self.generated_at), "reject_window_days": REJECT_WINDOW_DAYS,
                "counts": self.counts(), "targets": [t.as_dict() for t in self.targets],
                "syncs": [r.as_dict() for r in self.rows]}


# ---- Airflow's side: when each DAG runs next ---------------------------------------------------------------
def dag_schedules() -> dict[str, dict[str, Any]]:
    """dag_id -> next run time and paused flag, from Airflow's metadata DB (empty if unavailable)."""
    try:
        # This runs inside the API server, which owns the metadata DB (the task SDK is for workers).
        from sqlalchemy import select

        from airflow.models.dag import DagModel
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = session.execute(select(DagModel.dag_id, DagModel.next_dagrun_create_after, DagModel.is_paused)).all()
        return {dag_id: {"next": _aware(nxt), "paused": bool(paused)} for dag_id, nxt, paused in rows}
    except Exception:  # the page is about the targets; Airflow's own pages show its health
        return {}


def _due(dag_id: str | None, schedules: dict[str, dict]) -> tuple[Any, bool]:
    info = schedules.get(dag_id or "")
    if not info:
        return None, False
    return (None if info["paused"] else info["next"]), info["paused"]


# ---- the overview -----------------------------------------------------------------------------------------
def _target_reader(name: str, since: dt.datetime):
    def read(db) -> dict[str, Any]:
        skip = "registry." if name == "registry" else None  # registry syncs are shown as their sources
        out: dict[str, Any] = {"runs": facts.latest_runs(db, skip), "cursors": facts.cursors(db),
                               "rejects": facts.open_rejects(db, since)}
        if name == "registry":
            out["sources"] = facts.registry_sources(db)
        if name in ("tidb", "supabase"):
            out["kpi_latest"] = facts.kpi_latest(db, KPI_TABLES)
            first, last = kpi_window()
            out["kpi_days"] = facts.kpi_days(db, KPI_TABLES, first, last)
            if name == "tidb":
                out["warehouses"] = facts.warehouses(db)
        return out
    return read


def _sync_rows(target: str, data: dict, schedules: dict, now: dt.datetime, airflow_root: str) -> list[SyncRow]:
    cursors = {c["sync_name"]: c for c in data["cursors"]}
    rows = []
    for run in data["runs"]:
        name = run["sync_name"]
        cursor = cursors.get(name)
        as_of, as_of_from = None, None
        if cursor and cursor["cursor_value"] is not None:
            as_of, as_of_from = _cursor_value(cursor["cursor_value"]), "cursor"
        elif run["last_success_at"] is not None:
            as_of, as_of_from = run["last_success_at"], "last success"
        dag_id = run["dag_id"] or name.split(".", 1)[0]
        next_due, paused = _due(dag_id, schedules)
        status = {"failed": "failed", "running": "running", "partial": "partial"}.get(run["status"], "ok")
        if status == "ok" and run["rows_rejected"]:
            status = "partial"
        if status in ("ok", "partial") and next_due is not None and _aware(next_due) < now - LATE_AFTER:
            status = "late"
        rows.append(SyncRow(
            pipeline=pipeline_of(name), target=target, name=name, status=status,
            detail=f"sync/{quote(target)}/{quote(name, safe='')}",
            last_status=run["status"], last_run_at=_aware(run["started_at"]), last_success_at=_aware(run["last_success_at"]),
            data_as_of=as_of, as_of_from=as_of_from, lag_seconds=_lag_seconds(as_of, now),
            rows_read_last_run=run["rows_read"],
            rows_moved_last_run=(run["rows_inserted"] or 0) + (run["rows_updated"] or 0) + (run["rows_deleted"] or 0),
            rejects_open=data["rejects"].get(name, 0), error_count=int(run["failures_since_success"] or 0),
            next_due=next_due, last_error=redact(run["error"], 500) if run["status"] == "failed" else None,
            dag_id=dag_id, task_url=ti_url(airflow_root, run["dag_id"], run["run_id"], run["task_id"], run["map_index"]),
            note="DAG paused" if paused else None,
        ))
    return rows


def registry_sync_names(source: dict) -> list[str]:
    return [f"registry.{source['source_id']}.{t}" for t in (source.get("target_tables") or [])]


def _registry_rows(data: dict, now: dt.datetime, airflow_root: str, schedules: dict | None = None) -> list[SyncRow]:
    cursors = {c["sync_name"]: c for c in data["cursors"]}
    rows = []
    for src in data["sources"]:
        names = registry_sync_names(src)
        values = [_cursor_value(cursors[n]["cursor_value"]) for n in names if n in cursors and cursors[n]["cursor_value"]]
        values = [v for v in values if v is not None]
        try:
            as_of = min(values) if values else None  # the source is as fresh as its stalest mapping
        except TypeError:
            as_of = values[0]
        as_of_from = "cursor" if as_of is not None else ("last success" if src["last_sync"] else None)
        as_of = as_of if as_of is not None else src["last_sync"]
        last = src["sync_status"]
        if src["status"] in ("error", "inactive", "maintenance"):
            status = src["status"]
        elif last is None:
            status = "never run"
        elif last == "success":
            status = "ok"
        else:
            status = last  # failed, partial, running
        next_sync = _aware(src["next_sync"])
        dag_id = REGISTRY_DAGS[1] if src["realtime"] else REGISTRY_DAGS[0]
        paused = _due(dag_id, schedules or {})[1]
        if (status in ("ok", "partial", "never run") and src["status"] == "active" and not paused and next_sync
                and next_sync < now - LATE_AFTER):
            status = "late"
        served = "; ".join(n for n in (
            f"via {src['connection_role']} '{src['connection_name']}'" if src["connection_role"] else None,
            "DAG paused" if paused else None) if n) or None
        rows.append(SyncRow(
            pipeline="registry", target="registry", name=src["source_id"], status=status,
            detail=f"registry/{quote(src['source_id'], safe='')}",
            last_status=last, last_run_at=_aware(src["sync_started_at"]), last_success_at=_aware(src["last_sync"]),
            data_as_of=as_of, as_of_from=as_of_from, lag_seconds=_lag_seconds(as_of, now),
            rows_read_last_run=src["records_processed"],
            rows_moved_last_run=None if last is None else (src["records_inserted"] or 0) + (src["records_updated"] or 0)
            + (src["records_deleted"] or 0),
            rejects_open=sum(data["rejects"].get(n, 0) for n in names), error_count=int(src["error_count"] or 0),
            next_due=next_sync, last_error=redact(src["last_error"] or (src["error_message"] if last == "failed" else None), 500),
            dag_id=dag_id, task_url=ti_url(airflow_root, dag_id, src["run_id"], "sync_source" if src["run_id"] else None),
            note=served,
        ))
    return rows


def kpi_window(now: dt.datetime | None = None) -> tuple[dt.date, dt.date]:
    last = expected_kpi_day(now)
    return last - dt.timedelta(days=KPI_WINDOW_DAYS - 1), last


def expected_kpi_day(now: dt.datetime | None = None) -> dt.date:
    """The newest WIB day whose KPIs should exist: the DAG computes day D-1 at D 23:00 WIB (an
    hour of grace before it counts as late)."""
    wib_now = (now or now_utc()).astimezone(WIB)
    return (wib_now - dt.timedelta(hours=24)).date() - dt.timedelta(days=1)


def _active(warehouse: dict, day: dt.date) -> bool:
    start, end = day_bounds(day)  # naive UTC, as the ops tables store them
    opened, closed = warehouse["opened_at"], warehouse["closed_at"]
    return (opened is None or opened < end) and (closed is None or closed > start)


def kpi_grid(tidb: dict | None, supabase: dict | None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Per KPI table and warehouse, each day of the window: present in TiDB and/or Supabase, and
    whether a row was expected (the warehouse was open that day)."""
    first, last = kpi_window(now)
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    tidb_days = (tidb or {}).get("kpi_days", {})
    supa_days = (supabase or {}).get("kpi_days", {})
    known = {str(w["id"]): w for w in (tidb or {}).get("warehouses", [])}
    tables = []
    for table in KPI_TABLES:
        in_tidb, in_supa = tidb_days.get(table, set()), supa_days.get(table, set())
        ids = sorted(set(known) | {w for _, w in in_tidb | in_supa}, key=lambda w: (known.get(w, {}).get("code") or "~", w))
        rows, missing, unmirrored = [], 0, 0
        for wid in ids:
            cells = []
            for day in days:
                t, s = (day, wid) in in_tidb, (day, wid) in in_supa
                expected = _active(known[wid], day) if wid in known else t
                state = ("ok" if t and s else "not mirrored" if t else "mirror only" if s
                         else "missing" if expected else "closed")
                missing += state == "missing"
                unmirrored += state == "not mirrored"
                cells.append(state)
            w = known.get(wid, {})
            rows.append({"warehouse_id": wid, "code": w.get("code"), "name": w.get("name"), "days": cells})
        tables.append({"table": table, "warehouses": rows, "missing_in_tidb": missing, "missing_in_supabase": unmirrored})
    return {"first_day": first.isoformat(), "last_day": last.isoformat(), "days": [d.isoformat() for d in days],
            "tidb_reachable": tidb is not None, "supabase_reachable": supabase is not None, "tables": tables}


def _kpi_rows(tidb: dict, grid: dict, schedules: dict, now: dt.datetime) -> list[SyncRow]:
    expected = expected_kpi_day(now)
    next_due, paused = _due(KPI_DAG, schedules)
    rows = []
    for table in KPI_TABLES:
        latest = tidb.get("kpi_latest", {}).get(table)
        if latest is None:
            continue  # no KPI tables on this target
        gaps = next(t for t in grid["tables"] if t["table"] == table)
        day = latest.get("data_date")
        status = "never run" if day is None else "late" if day < expected else "ok"
        if status == "ok" and gaps["missing_in_tidb"]:
            status = "gaps"
        notes = [f"{gaps['missing_in_tidb']} warehouse-day(s) missing in the last {KPI_WINDOW_DAYS} days"] if gaps["missing_in_tidb"] else []
        notes += ["DAG paused"] if paused else []
        rows.append(SyncRow(
            pipeline="kpi", target="tidb", name=f"{table} days", status=status, detail="kpi",
            last_run_at=_aware(latest.get("computed_at")), last_success_at=_aware(latest.get("computed_at")),
            data_as_of=day, as_of_from="newest day",
            lag_seconds=None if day is None else max((expected - day).days, 0) * 86400.0,
            rows_moved_last_run=latest.get("rows"), next_due=next_due, dag_id=KPI_DAG,
            note="; ".join(notes) or None,
        ))
    return rows


def _unavailable_row(state: TargetState) -> SyncRow:
    status = "not configured" if state.state == "not configured" else state.state
    return SyncRow(pipeline=", ".join(TARGET_PIPELINES.get(state.name, ())) or state.name, target=state.name,
                   name=f"{state.conn_id} ({state.name} database)", status=status, detail="", last_error=state.error)


# What lives where: named on a target's row when the target cannot be read.
TARGET_PIPELINES = {"tidb": ("kpi", "master data"), "supabase": ("kpi mirror",), "lifecycle": (),
                    "pmo": ("lifecycle",), "tekmetric": ("tekmetric",), "registry": ("registry",)}


def overview(airflow_root: str = "", *, pipeline: str | None = None, status: str | None = None,
             dag_id: str | None = None, now: dt.datetime | None = None) -> Overview:
    now = now or now_utc()
    since = now - dt.timedelta(days=REJECT_WINDOW_DAYS)
    results = read_all({name: _target_reader(name, since) for name in TARGETS})
    schedules = dag_schedules()
    rows: list[SyncRow] = []
    for name, (state, data) in results.items():
        if data is None:
            rows.append(_unavailable_row(state))
            continue
        rows += _sync_rows(name, data, schedules, now, airflow_root)
        if name == "registry":
            rows += _registry_rows(data, now, airflow_root, schedules)
    tidb, supabase = results["tidb"][1], results["supabase"][1]
    if tidb is not None:
        rows += _kpi_rows(tidb, kpi_grid(tidb, supabase, now), schedules, now)
    rows = [r for r in rows if (not pipeline or r.pipeline == pipeline) and (not status or r.status == status
            or (status == "problems" and r.status in PROBLEMS)) and (not dag_id or r.dag_id == dag_id)]
    rows.sort(key=lambda r: (r.rank, r.pipeline, r.target, r.name))
    return Overview(rows, [state for state, _ in results.values()], now)


# ---- detail views -----------------------------------------------------------------------------------------
def _run_dict(run: dict, airflow_root: str) -> dict[str, Any]:
    out = {k: iso(v) for k, v in run.items() if k not in ("error",)}
    out["error"] = redact(run.get("error"))
    out["rows_moved"] = (run.get("rows_inserted") or 0) + (run.get("rows_updated") or 0) + (run.get("rows_deleted") or 0)
    out["task_url"] = ti_url(airflow_root, run.get("dag_id"), run.get("run_id"), run.get("task_id"), run.get("map_index"))
    return out


def _reject_dict(rej: dict) -> dict[str, Any]:
    return {"id": rej["id"], "sync_name": rej["sync_name"], "run_id": rej["run_id"], "table": rej["table_name"],
            "key": redact(rej["row_key"], 300), "column": rej["column_name"], "value": redact(rej["value"], 300),
            "reason": redact(rej["reason"], 1000), "rejected_at": iso(_aware(rej["rejected_at"]))}


class NotFound(LookupError):
    pass


def sync_detail(target: str, sync_name: str, airflow_root: str = "", limit: int = HISTORY_LIMIT) -> dict[str, Any]:
    if target not in TARGETS:
        raise NotFound(f"no target {target!r}; known: {', '.join(TARGETS)}")

    def read(db):
        runs = facts.run_history(db, sync_name, limit)
        total, rejects = facts.rejects(db, [sync_name], REJECTS_LIMIT)
        return runs, facts.cursor_of(db, sync_name), total, rejects

    state, data = read_one(target, read)
    if data is None:
        return {"target": state.as_dict(), "sync_name": sync_name, "available": False}
    runs, cursor, total, rejects = data
    if not runs and cursor is None and not total:
        raise NotFound(f"no sync named {sync_name!r} on {target}")
    as_of = _cursor_value(cursor["cursor_value"]) if cursor else None
    return {
        "target": state.as_dict(), "sync_name": sync_name, "pipeline": pipeline_of(sync_name), "available": True,
        "cursor": None if cursor is None else {"value": iso(as_of), "rows_synced": cursor["rows_synced"],
                                               "updated_at": iso(_aware(cursor["updated_at"])),
                                               "lag_seconds": _lag_seconds(as_of, now_utc())},
        "runs": [_run_dict(r, airflow_root) for r in runs],
        "rejects_total": total, "rejects": [_reject_dict(r) for r in rejects],
    }


def registry_detail(source_id: str, airflow_root: str = "", limit: int = HISTORY_LIMIT) -> dict[str, Any]:
    def read(db):
        src = facts.registry_source(db, source_id)
        if src is None:
            return None
        mappings = facts.registry_mappings(db, src["id"])
        names = registry_sync_names({"source_id": source_id, "target_tables": [m["target_table"] for m in mappings]})
        history = facts.registry_history(db, src["id"], limit)
        total, rejects = facts.rejects(db, names, REJECTS_LIMIT)
        tis = facts.registry_task_instances(db, names, sorted({h["run_id"] for h in history if h["run_id"]}))
        return src, facts.registry_connections(db, src["id"]), mappings, history, total, rejects, tis

    state, data = read_one("registry", read)
    if state.state != "ok":
        return {"target": state.as_dict(), "source_id": source_id, "available": False}
    if data is None:
        raise NotFound(f"no registry source {source_id!r}")
    src, connections, mappings, history, total, rejects, tis = data
    dag_id = REGISTRY_DAGS[1] if src["realtime"] else REGISTRY_DAGS[0]
    runs = []
    for h in history:
        ti = tis.get(h["run_id"]) or {}
        runs.append({
            "id": h["id"], "run_id": h["run_id"], "status": h["sync_status"], "mode": h["sync_type"],
            "target_table": h["target_table"], "started_at": iso(_aware(h["sync_started_at"])),
            "finished_at": iso(_aware(h["sync_completed_at"])), "duration_ms": h["sync_duration_ms"],
            "rows_read": h["records_processed"], "rows_inserted": h["records_inserted"], "rows_updated": h["records_updated"],
            "rows_unchanged": h["records_unchanged"], "rows_deleted": h["records_deleted"], "rows_rejected": h["records_rejected"],
            "rows_moved": (h["records_inserted"] or 0) + (h["records_updated"] or 0) + (h["records_deleted"] or 0),
            "error": redact(h["error_message"]), "connection_role": h["connection_role"], "connection_name": h["connection_name"],
            "task_url": ti_url(airflow_root, ti.get("dag_id") or dag_id, h["run_id"], ti.get("task_id") or "sync_source",
                               ti.get("map_index")),
        })
    return {
        "target": state.as_dict(), "available": True, "source_id": source_id,
        "source": {"name": src["name"], "description": redact(src["description"]), "source_type": src["source_type"],
                   "status": src["status"], "priority": src["priority"], "refresh_interval": src["refresh_interval"],
                   "last_sync": iso(_aware(src["last_sync"])), "next_sync": iso(_aware(src["next_sync"])),
                   "error_count": src["error_count"], "last_error": redact(src["last_error"]), "dag_id": dag_id},
        "connections": [{"name": c["connection_name"], "type": c["connection_type"],
                         "role": "primary" if c["is_primary"] else "backup" if c["is_backup"] else "-", "status": c["status"]}
                        for c in connections],
        "mappings": [{k: m[k] for k in ("target_table", "sync_strategy", "sync_frequency", "is_active", "max_rejects")}
                     for m in mappings],
        "runs": runs, "rejects_total": total, "rejects": [_reject_dict(r) for r in rejects],
    }


def registry_view(status: str | None = None, airflow_root: str = "") -> dict[str, Any]:
    now = now_utc()
    since = now - dt.timedelta(days=REJECT_WINDOW_DAYS)

    def read(db):
        return {"sources": facts.registry_sources(db), "cursors": facts.cursors(db), "rejects": facts.open_rejects(db, since)}

    state, data = read_one("registry", read)
    if data is None:
        return {"target": state.as_dict(), "available": False, "by_status": {}, "sources": []}
    by_status: dict[str, int] = defaultdict(int)
    sources = []
    rows = {r.name: r for r in _registry_rows(data, now, airflow_root, dag_schedules())}
    for src in data["sources"]:
        by_status[src["status"]] += 1
        row = rows[src["source_id"]]
        if status and src["status"] != status:
            continue
        sources.append({
            "source_id": src["source_id"], "name": src["name"], "source_type": src["source_type"], "status": src["status"],
            "state": row.status, "priority": src["priority"], "last_sync": iso(_aware(src["last_sync"])),
            "next_sync": iso(_aware(src["next_sync"])), "error_count": src["error_count"],
            "last_error": redact(src["last_error"], 1000), "last_run_status": src["sync_status"],
            "connection_role": src["connection_role"], "connection_name": src["connection_name"],
            "rejects_open": row.rejects_open, "detail": row.detail,
        })
    order = {"error": 0, "active": 1, "maintenance": 2, "inactive": 3}
    sources.sort(key=lambda s: (order.get(s["status"], 9), STATUS_RANK.get(s["state"], 6), -s["error_count"], s["source_id"]))
    return {"target": state.as_dict(), "available": True,
            "by_status": dict(sorted(by_status.items(), key=lambda kv: order.get(kv[0], 9))), "sources": sources}


def kpi_view(now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or now_utc()
    first, last = kpi_window(now)

    def read_tidb(db):
        return {"kpi_days": facts.kpi_days(db, KPI_TABLES, first, last), "warehouses": facts.warehouses(db),
                "kpi_latest": facts.kpi_latest(db, KPI_TABLES)}

    def read_supabase(db):
        return {"kpi_days": facts.kpi_days(db, KPI_TABLES, first, last), "kpi_latest": facts.kpi_latest(db, KPI_TABLES)}

    results = read_all({"tidb": read_tidb, "supabase": read_supabase})
    tidb, supabase = results["tidb"][1], results["supabase"][1]
    grid = kpi_grid(tidb, supabase, now)
    grid["expected_day"] = expected_kpi_day(now).isoformat()
    grid["targets"] = [results[n][0].as_dict() for n in ("tidb", "supabase")]
    grid["latest"] = {side: {t: {k: iso(v) for k, v in info.items()} for t, info in (data or {}).get("kpi_latest", {}).items()}
                      for side, data in (("tidb", tidb), ("supabase", supabase))}
    return grid


def tekmetric_view(airflow_root: str = "") -> dict[str, Any]:
    def read(db):
        return {**facts.tekmetric_shops(db), "runs": facts.latest_runs(db)}

    state, data = read_one("tekmetric", read)
    if data is None:
        return {"target": state.as_dict(), "available": False, "shops": []}
    now = now_utc()
    latest = {r["sync_name"]: r for r in data["runs"]}
    by_shop: dict[int, list[dict]] = defaultdict(list)
    for c in data["cursors"]:
        run = latest.get(c["sync_name"], {})
        value = _cursor_value(c["cursor_value"])
        by_shop[int(c["shop_id"])].append({
            "entity": c["entity"], "cursor": iso(value), "lag_seconds": _lag_seconds(value, now),
            "rows_synced": c["rows_synced"], "cursor_updated_at": iso(_aware(c["updated_at"])),
            "last_status": run.get("status"), "last_run_at": iso(_aware(run.get("started_at"))),
            "failures_since_success": run.get("failures_since_success"), "last_error": redact(run.get("error"), 500)
            if run.get("status") == "failed" else None,
            "detail": f"sync/tekmetric/{quote(c['sync_name'], safe='')}",
            "task_url": ti_url(airflow_root, run.get("dag_id"), run.get("run_id"), run.get("task_id"), run.get("map_index")),
        })
    shops = []
    for shop in data["shops"]:
        sid = int(shop["shop_id"])
        check = data["variance_checks"].get(sid)
        shops.append({
            "shop_id": sid, "name": shop["name"], "timezone": shop["timezone"], "sync_enabled": shop["sync_enabled"],
            "entities": sorted(by_shop.get(sid, []), key=lambda e: e["entity"] or ""),
            "stale_metric_days": data["stale_days"].get(sid, 0),
            "variance_check": None if check is None else {
                "at": iso(_aware(check["finished_at"])), "status": check["status"],
                "ros_with_variance": int(check["variance_ros"]) if check["variance_ros"] is not None else None},
        })
    return {"target": state.as_dict(), "available": True, "shops": shops}


def task_instance_view(dag_id: str, run_id: str, task_id: str, map_index: int, airflow_root: str = "") -> dict[str, Any]:
    """Every sync_log row the task instance wrote, on every target, with the rejects of those runs."""
    def read(db):
        runs = facts.runs_of_task_instance(db, dag_id, run_id, task_id, map_index)
        names = sorted({r["sync_name"] for r in runs})
        total, rejects = facts.rejects(db, names, REJECTS_LIMIT)
        return runs, [r for r in rejects if r["run_id"] == run_id]

    results = read_all({name: read for name in TARGETS})
    out = []
    for name, (state, data) in results.items():
        if data is None:
            continue
        runs, rejects = data
        for run in runs:
            out.append({**_run_dict(run, airflow_root), "target": name,
                        "detail": f"sync/{quote(name)}/{quote(run['sync_name'], safe='')}",
                        "rejects": [_reject_dict(r) for r in rejects if r["sync_name"] == run["sync_name"]]})
    return {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index, "runs": out,
            "targets": [s.as_dict() for s, _ in results.values()]}
