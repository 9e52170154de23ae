"""What the bookkeeping tables of one target database say, as plain rows (one reader per view).

Every reader takes a :class:`~datasync.db.Database` and only reads. Queries are written to stay
fast at real size (thousands of runs per sync, hundreds of registry sources with long
histories): each "latest row per sync" is an index probe, never a scan of the whole log.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from datasync.db import Database

BASE_RUN_COLUMNS = ("id", "sync_name", "run_id", "mode", "status", "started_at", "finished_at", "duration_ms", "rows_read",
                    "rows_inserted", "rows_updated", "rows_unchanged", "rows_deleted", "rows_rejected", "error")
TASK_COLUMNS = ("dag_id", "task_id", "map_index", "try_number")  # migration common/003


def run_columns(db: Database, alias: str = "") -> str:
    """The sync_log columns to read; NULL task-instance columns on a target not yet migrated to
    common/003 (the page still works there, without links to task instances)."""
    prefix = f"{alias}." if alias else ""
    task = [prefix + c for c in TASK_COLUMNS] if _has_column(db, "sync_log", "dag_id") else [f"NULL AS {c}" for c in TASK_COLUMNS]
    return ", ".join([prefix + c for c in BASE_RUN_COLUMNS] + task)


def _has_column(db: Database, table: str, column: str) -> bool:
    found = db.dialect.has_column(db, table, column)
    db.commit()
    return found


def _table_exists(db: Database, table: str) -> bool:
    found = db.dialect.table_exists(db, table)
    db.commit()
    return found


def _dicts(db: Database, sql: str, params: Any = None) -> list[dict]:
    return db.fetchdicts(sql, params)[1]


# ---- sync_log / sync_cursors / sync_rejects: every target ------------------------------------------------
def latest_runs(db: Database, skip_prefix: str | None = None) -> list[dict]:
    """Per sync name: its latest run, when it last succeeded and how many runs failed since.
    Names starting with ``skip_prefix`` are left out (shown elsewhere)."""
    if not _table_exists(db, "sync_log"):
        return []
    cols = run_columns(db, "l")
    if db.dialect.family == "postgres":
        # A loose index scan over the distinct names, then one probe per name.
        sql = f"""
            WITH RECURSIVE names(sync_name) AS (
                (SELECT sync_name FROM sync_log ORDER BY sync_name LIMIT 1)
                UNION ALL
                SELECT (SELECT s.sync_name FROM sync_log s WHERE s.sync_name > n.sync_name ORDER BY s.sync_name LIMIT 1)
                FROM names n WHERE n.sync_name IS NOT NULL
            )
            SELECT {cols}, ok.started_at AS last_success_at,
                   (SELECT count(*) FROM sync_log f WHERE f.sync_name = n.sync_name AND f.status = 'failed'
                      AND f.started_at > coalesce(ok.started_at, '-infinity')) AS failures_since_success
            FROM names n
            CROSS JOIN LATERAL (SELECT * FROM sync_log x WHERE x.sync_name = n.sync_name
                                ORDER BY x.started_at DESC, x.id DESC LIMIT 1) l
            LEFT JOIN LATERAL (SELECT started_at FROM sync_log y WHERE y.sync_name = n.sync_name AND y.status = 'success'
                               ORDER BY y.started_at DESC LIMIT 1) ok ON true
            WHERE n.sync_name IS NOT NULL AND (%(skip)s::text IS NULL OR NOT starts_with(n.sync_name, %(skip)s))"""
    else:
        sql = f"""
            SELECT {cols}, ok.last_success_at,
                   (SELECT COUNT(*) FROM sync_log f WHERE f.sync_name = l.sync_name AND f.status = 'failed'
                      AND f.started_at > COALESCE(ok.last_success_at, '1000-01-01')) AS failures_since_success
            FROM sync_log l
            JOIN (SELECT sync_name, MAX(id) AS id FROM sync_log GROUP BY sync_name) last ON last.id = l.id
            LEFT JOIN (SELECT sync_name, MAX(started_at) AS last_success_at FROM sync_log WHERE status = 'success'
                       GROUP BY sync_name) ok ON ok.sync_name = l.sync_name
            WHERE %(skip)s IS NULL OR LEFT(l.sync_name, CHAR_LENGTH(%(skip)s)) <> %(skip)s"""
    return _dicts(db, sql, {"skip": skip_prefix})


def cursors(db: Database) -> list[dict]:
    if not _table_exists(db, "sync_cursors"):
        return []
    return _dicts(db, "SELECT sync_name, cursor_value, rows_synced, updated_at FROM sync_cursors")


def open_rejects(db: Database, since: dt.datetime) -> dict[str, int]:
    """Rejected rows per sync name recorded since ``since``."""
    if not _table_exists(db, "sync_rejects"):
        return {}
    rows = db.fetchall("SELECT sync_name, COUNT(*) FROM sync_rejects WHERE rejected_at >= %s GROUP BY sync_name",
                       (db.dialect.param(since),))
    db.commit()
    return {name: int(n) for name, n in rows}


def run_history(db: Database, sync_name: str, limit: int) -> list[dict]:
    return _dicts(db, f"SELECT {run_columns(db)} FROM sync_log WHERE sync_name = %s ORDER BY started_at DESC, id DESC LIMIT %s",
                  (sync_name, limit))


def runs_of_task_instance(db: Database, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[dict]:
    if not _has_column(db, "sync_log", "dag_id"):
        return []
    return _dicts(db, f"SELECT {run_columns(db)} FROM sync_log WHERE run_id = %s AND dag_id = %s AND task_id = %s "
                      "AND map_index = %s ORDER BY started_at", (run_id, dag_id, task_id, map_index))


def rejects(db: Database, sync_names: list[str], limit: int) -> tuple[int, list[dict]]:
    """How many rejected rows the syncs have, and the newest ``limit`` of them."""
    if not sync_names or not _table_exists(db, "sync_rejects"):
        return 0, []
    marks = ", ".join(["%s"] * len(sync_names))
    (total,) = db.fetchone(f"SELECT COUNT(*) FROM sync_rejects WHERE sync_name IN ({marks})", sync_names)
    rows = _dicts(db, f"SELECT id, sync_name, run_id, table_name, row_key, column_name, value, reason, rejected_at "
                      f"FROM sync_rejects WHERE sync_name IN ({marks}) ORDER BY rejected_at DESC, id DESC LIMIT %s",
                  [*sync_names, limit])
    return int(total), rows


def cursor_of(db: Database, sync_name: str) -> dict | None:
    rows = _dicts(db, "SELECT sync_name, cursor_value, rows_synced, updated_at FROM sync_cursors WHERE sync_name = %s",
                  (sync_name,))
    return rows[0] if rows else None


# ---- the registry (registry_db) --------------------------------------------------------------------------
def registry_sources(db: Database) -> list[dict]:
    """Every registered source with its latest history row and the connection that served it."""
    if not _table_exists(db, "data_source_registry"):
        return []
    return _dicts(db, """
        SELECT r.id, r.source_id, r.name, r.source_type, r.status, r.priority, r.refresh_interval, r.last_sync,
               r.next_sync, r.error_count, r.last_error,
               h.sync_status, h.sync_type, h.run_id, h.sync_started_at, h.sync_completed_at, h.sync_duration_ms,
               h.records_processed, h.records_inserted, h.records_updated, h.records_deleted, h.records_rejected,
               h.error_message, h.connection_role, c.connection_name,
               coalesce(m.realtime, false) AS realtime, coalesce(m.target_tables, '{}') AS target_tables
        FROM data_source_registry r
        LEFT JOIN (SELECT source_id, bool_or(is_active AND sync_strategy = 'realtime') AS realtime,
                          array_agg(target_table ORDER BY id) AS target_tables
                   FROM data_source_mappings GROUP BY source_id) m ON m.source_id = r.id
        LEFT JOIN LATERAL (SELECT * FROM data_source_sync_history x WHERE x.source_id = r.id
                           ORDER BY x.sync_started_at DESC, x.id DESC LIMIT 1) h ON true
        LEFT JOIN data_source_connections c ON c.id = h.connection_id""")


def registry_source(db: Database, source_id: str) -> dict | None:
    rows = _dicts(db, """
        SELECT r.id, r.source_id, r.name, r.description, r.source_type, r.status, r.priority, r.refresh_interval,
               r.last_sync, r.next_sync, r.error_count, r.last_error,
               EXISTS (SELECT 1 FROM data_source_mappings m WHERE m.source_id = r.id AND m.is_active
                       AND m.sync_strategy = 'realtime') AS realtime
        FROM data_source_registry r WHERE r.source_id = %s""", (source_id,))
    return rows[0] if rows else None


def registry_connections(db: Database, source_pk: int) -> list[dict]:
    # Names, kinds and roles only: a connection's config is never shown.
    return _dicts(db, "SELECT id, connection_name, connection_type, is_primary, is_backup, status "
                      "FROM data_source_connections WHERE source_id = %s ORDER BY is_primary DESC, id", (source_pk,))


def registry_mappings(db: Database, source_pk: int) -> list[dict]:
    return _dicts(db, "SELECT id, target_table, sync_strategy, sync_frequency, is_active, max_rejects "
                      "FROM data_source_mappings WHERE source_id = %s ORDER BY id", (source_pk,))


def registry_history(db: Database, source_pk: int, limit: int) -> list[dict]:
    return _dicts(db, """
        SELECT h.id, h.run_id, h.sync_type, h.sync_status, h.sync_started_at, h.sync_completed_at, h.sync_duration_ms,
               h.records_processed, h.records_inserted, h.records_updated, h.records_unchanged, h.records_deleted,
               h.records_rejected, h.error_message, h.connection_role, c.connection_name, m.target_table
        FROM data_source_sync_history h
        LEFT JOIN data_source_connections c ON c.id = h.connection_id
        LEFT JOIN data_source_mappings m ON m.id = h.mapping_id
        WHERE h.source_id = %s ORDER BY h.sync_started_at DESC, h.id DESC LIMIT %s""", (source_pk, limit))


def registry_task_instances(db: Database, sync_names: list[str], run_ids: list[str]) -> dict[str, dict]:
    """run_id -> the task instance the engine recorded for that run of these syncs."""
    if not sync_names or not run_ids or not _has_column(db, "sync_log", "dag_id"):
        return {}
    rows = _dicts(db, f"SELECT run_id, dag_id, task_id, map_index, try_number FROM sync_log "
                      f"WHERE sync_name IN ({', '.join(['%s'] * len(sync_names))}) "
                      f"AND run_id IN ({', '.join(['%s'] * len(run_ids))}) AND dag_id IS NOT NULL",
                  [*sync_names, *run_ids])
    return {r["run_id"]: r for r in rows}


# ---- KPI days (tidb_ops and supabase_ptmmm) -------------------------------------------------------------
def kpi_days(db: Database, tables: tuple[str, ...], first: dt.date, last: dt.date) -> dict[str, set[tuple[dt.date, str]]]:
    """Per KPI table: the (data_date, warehouse_id) pairs present between ``first`` and ``last``."""
    out: dict[str, set[tuple[dt.date, str]]] = {}
    for table in tables:
        if not _table_exists(db, table):
            continue
        rows = db.fetchall(f"SELECT data_date, warehouse_id FROM {table} WHERE data_date BETWEEN %s AND %s", (first, last))
        db.commit()
        out[table] = {(d, str(w)) for d, w in rows}
    return out


def kpi_latest(db: Database, tables: tuple[str, ...]) -> dict[str, dict]:
    """Per KPI table: the newest data_date, its row count and when it was computed."""
    out = {}
    for table in tables:
        if not _table_exists(db, table):
            continue
        row = db.fetchone(f"SELECT data_date, COUNT(*), MAX(updated_at) FROM {table} "
                          f"WHERE data_date = (SELECT MAX(data_date) FROM {table}) GROUP BY data_date")
        db.commit()
        out[table] = {"data_date": row[0], "rows": int(row[1]), "computed_at": row[2]} if row else {}
    return out


def warehouses(db: Database) -> list[dict]:
    if not _table_exists(db, "warehouses"):
        return []
    return _dicts(db, "SELECT id, code, name, opened_at, closed_at FROM warehouses ORDER BY code")


# ---- Tekmetric (tekmetric_warehouse) --------------------------------------------------------------------
def tekmetric_shops(db: Database) -> dict[str, Any]:
    if not _table_exists(db, "shops"):
        return {"shops": [], "cursors": [], "runs": [], "stale_days": {}}
    shops = _dicts(db, "SELECT shop_id, name, timezone, sync_enabled FROM shops ORDER BY shop_id")
    cursors_ = _dicts(db, "SELECT sync_name, shop_id, entity, cursor_value, rows_synced, updated_at FROM sync_cursors "
                          "WHERE shop_id IS NOT NULL")
    stale = dict(db.fetchall("SELECT shop_id, COUNT(*) FROM daily_shop_metrics WHERE stale GROUP BY shop_id"))
    db.commit()
    # The latest variance check is the latest repair-order run's count of ROs whose totals disagree.
    checks = _dicts(db, """
        SELECT DISTINCT ON (shop_id) shop_id, finished_at, status, details->>'variance_ros' AS variance_ros
        FROM sync_log WHERE shop_id IS NOT NULL AND entity = 'repair_orders' AND status <> 'running'
        ORDER BY shop_id, started_at DESC""")
    return {"shops": shops, "cursors": cursors_, "stale_days": {int(k): int(v) for k, v in stale.items()},
            "variance_checks": {int(c["shop_id"]): c for c in checks}}
