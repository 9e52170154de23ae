"""The operator on the sync engine, for DAGs that move tables between databases.

``SyncTableOperator``: a table or query from one connection into a table of another, by key:
incremental by a cursor column, or a full refresh that also deletes what the source lost
(``delete_missing=False``: a plain upsert of the query's rows). Rows from an API or a file go
through the engine in a ``@task``: ``run_sync(SyncSpec(..., mode="upsert"), RowsSource(...), conn_id)``.

It logs one line saying what moved where, records the run in the target's ``sync_log`` and
returns the counts (XCom). Rerunning a cleared task is safe: the cursor lives in the target
database and moves only with the rows it covers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from datasync.engine import SqlSource, SyncSpec, run_sync


def _as_timedelta(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.timedelta(seconds=value)
    return value


def run_moment(context) -> dt.datetime | None:
    """The moment a DAG run stands for, the same for all its tasks and for any rerun of one:
    ``run_after`` (when the run became due), else its data interval's end."""
    dag_run = context.get("dag_run")
    for moment in (getattr(dag_run, "run_after", None), context.get("data_interval_end")):
        if isinstance(moment, dt.datetime):
            return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
    return None


class SyncTableOperator(BaseOperator):
    """Sync ``source_table`` (or ``source_query``) on ``source_conn_id`` into ``target_table`` on
    ``target_conn_id`` by ``key``.

    :param mode: ``incremental`` (needs ``cursor_column``), ``full`` (reads everything and, with
        ``delete_missing``, deletes target rows the source no longer has, in one transaction), or
        ``prune`` (only that delete; for parent/child tables: upsert parents first, prune children
        first). Templated, e.g. ``"{{ 'full' if params.full_refresh else 'incremental' }}"``.
    :param lookback: how far before the stored cursor each run re-reads (late commits).
    :param safety_lag: rows newer than run start minus this wait for the next run.
    :param max_rejects: rows the target refuses that the run tolerates (0: any reject fails it).
    :param bulk_load_empty: an initial load into an empty table is COPYed (Postgres) or LOADed
        (MySQL family) straight in (no staging table); the first error falls back to staging + merge.
        False turns it off.
    :param load_connections: an incremental initial load into an empty MySQL-family table loads this
        many pages at once, each on its own target connection (still committed in page order);
        1 keeps to the task's one connection.
    :param sync_name: names the cursor, lock and log rows; default ``<dag_id>.<task_id>``.
    :param defer_missing_parents: a row whose parent row is not in the target yet (and whose cursor
        is within this of the run's upper bound) waits for the next run instead of being rejected.

    Every task of a DAG run reads up to the same moment: the run's ``run_after`` (else the end of
    its data interval) minus ``safety_lag``, so parent and child tables synced by separate tasks
    agree, also when one task is cleared and rerun later.
    """

    template_fields: Sequence[str] = (
        "source_conn_id", "source_table", "source_query", "target_conn_id", "target_table", "mode", "sync_name",
        "max_rejects",
    )
    template_fields_renderers = {"source_query": "sql"}
    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        source_conn_id: str,
        target_conn_id: str,
        target_table: str,
        key: list[str],
        source_table: str | None = None,
        source_query: str | None = None,
        columns: list[str] | None = None,
        cursor_column: str | None = None,
        mode: str = "incremental",
        sync_name: str | None = None,
        lookback: dt.timedelta | float = dt.timedelta(0),
        safety_lag: dt.timedelta | float = dt.timedelta(0),
        batch_size: int = 100_000,
        max_rejects: int = 0,
        lock_wait_seconds: float = 60,
        delete_missing: bool = True,
        bulk_load_empty: bool = True,
        load_connections: int = 2,
        defer_missing_parents: dt.timedelta | float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.delete_missing, self.bulk_load_empty = delete_missing, bulk_load_empty
        self.load_connections = load_connections
        self.defer_missing_parents = _as_timedelta(defer_missing_parents)
        self.source_conn_id, self.target_conn_id = source_conn_id, target_conn_id
        self.source_table, self.source_query, self.target_table = source_table, source_query, target_table
        self.key, self.columns, self.cursor_column = list(key), columns, cursor_column
        self.mode, self.sync_name = mode, sync_name
        self.lookback, self.safety_lag = _as_timedelta(lookback), _as_timedelta(safety_lag)
        self.batch_size, self.max_rejects, self.lock_wait_seconds = batch_size, max_rejects, lock_wait_seconds

    def execute(self, context) -> dict:
        if self.mode not in ("incremental", "full", "prune"):
            raise ValueError(f"mode must be 'incremental', 'full' or 'prune', not {self.mode!r}")
        spec = SyncSpec(
            name=self.sync_name or f"{self.dag_id}.{self.task_id}",
            target_table=self.target_table,
            key=self.key,
            columns=self.columns,
            cursor_column=self.cursor_column,
            mode=self.mode,  # type: ignore[arg-type]
            lookback=self.lookback,
            safety_lag=self.safety_lag,
            batch_size=self.batch_size,
            max_rejects=int(self.max_rejects),
            lock_wait_seconds=self.lock_wait_seconds,
            delete_missing=self.delete_missing,
            bulk_load_empty=self.bulk_load_empty,
            load_connections=self.load_connections,
            defer_missing_parents=self.defer_missing_parents,
        )
        source = SqlSource(self.source_conn_id, table=self.source_table, query=self.source_query)
        result = run_sync(spec, source, self.target_conn_id, run_id=context.get("run_id"),  # logs the summary
                          run_start=run_moment(context))
        return result.as_dict()

