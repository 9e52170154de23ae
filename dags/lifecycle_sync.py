"""
### lifecycle_sync

Mirrors the product lifecycle tables from **`lifecycle_db`** into **`pmo_db`** every hour
(replacing the `sync-lifecycle-data.ts` cron job) and, once `SELECT datasync_realtime(true)`
ran on `lifecycle_db`, within seconds of a change (asset `lifecycle_db_changes`, watched by the
triggerer; a burst during a run starts exactly one follow-up run).

* Order keeps foreign keys valid: segments -> stages -> products -> stage history.
* **Incremental** by `updated_at` (10 minute lookback for late commits); the cursor lives in
  `pmo_db.sync_cursors` and moves with each committed batch.
* **`full_refresh`** re-reads everything and then removes rows deleted at the source,
  children before parents.
* Every table is read up to the same moment (the run's start), so a product and its stage history
  arrive in the same run; a history row whose product committed too late waits for the next run
  (`deferred` in `sync_log.details`, never a reject, never skipped).
* Rows `pmo_db` refuses (NULL name, unknown segment or stage, negative `harga`) go to
  `pmo_db.sync_rejects` with the id and reason; up to `max_rejects` per table the rest still
  lands, past it the task fails.
* Every table run is recorded in `pmo_db.sync_log`. Clearing and rerunning any task is safe.
* Tasks run in pool `db_sync` (create it in a real deployment; compose's init does).
"""

from datetime import timedelta

from airflow.sdk import DAG, Param, chain, task

from datasync.defaults import DEFAULT_ARGS, START_DATE
from datasync.lifecycle import SOURCE_CONN, TABLES, TARGET_CONN
from datasync.operators import SyncTableOperator
from datasync.realtime import changes_asset, on_change_or_cron

with DAG(
    dag_id="lifecycle_sync",
    description="On change (when enabled) and hourly at minute 0 (UTC): product lifecycle tables lifecycle_db -> pmo_db.",
    # An asset event when lifecycle_db announces a change (opt-in, docs/realtime.md).
    schedule=on_change_or_cron("0 * * * *", [changes_asset(SOURCE_CONN, [t.source for t in TABLES])]),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # runs would queue on the per-table locks anyway
    default_args=DEFAULT_ARGS,
    tags=["lifecycle", "pmo", "sync"],
    doc_md=__doc__,
    params={
        "full_refresh": Param(False, type="boolean", title="Full refresh",
                              description="Re-read every row and delete target rows that the source no longer has."),
        "max_rejects": Param(25, type="integer", minimum=0, title="Max rejects per table",
                             description="Rows pmo_db may refuse before a table's task fails."),
    },
):
    # What every task shares; `db_sync` bounds concurrent database syncs across DAGs.
    table_task = {"source_conn_id": SOURCE_CONN, "target_conn_id": TARGET_CONN, "key": ["id"], "pool": "db_sync"}
    syncs = [
        SyncTableOperator(
            task_id=f"sync_{t.name}",
            source_table=t.source,
            target_table=t.target,
            cursor_column="updated_at",
            mode="{{ 'full' if params.full_refresh else 'incremental' }}",
            delete_missing=False,  # deletes run after all upserts, children first (below)
            lookback=timedelta(minutes=10),
            # every task reads up to the run's moment; a child whose parent committed too late
            # for this run waits for the next one (counted as deferred in sync_log)
            defer_missing_parents=timedelta(days=1),
            max_rejects="{{ params.max_rejects }}",
            **table_task,
        )
        for t in TABLES
    ]

    @task.short_circuit(task_id="full_refresh_requested")
    def full_refresh_requested(params=None) -> bool:
        return bool(params["full_refresh"])

    prunes = [
        SyncTableOperator(task_id=f"prune_{t.name}", source_table=t.source, target_table=t.target, mode="prune", **table_task)
        for t in reversed(TABLES)
    ]
    chain(*syncs, full_refresh_requested(), *prunes)
