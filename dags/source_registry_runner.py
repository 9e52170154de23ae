"""
### source_registry_runner / source_registry_realtime

Runs the sources listed in **`registry_db.data_source_registry`** into their target
tables in `registry_db`. Logic: `datasync.registry.runner`; reference: `docs/registry.md`.

* **`pick_sources`** takes the `active` sources that are due at the run's scheduled time (its
  tick: `next_sync` never set or at most half a DAG interval after the tick), priority 1 first; `inactive`, `maintenance` and `error` sources are left alone. Param
  **`source_ids`** forces chosen sources (also ones in `error`) whatever their due time.
* **`sync_source`** is mapped: one task instance per source, labelled with the source's name.
  Each reads its connector (primary connection, else the backups), maps the records and upserts
  them: `full` (one transaction, rows gone from the source are deleted), `incremental` /
  `realtime` (cursor per mapping in `sync_cursors`). History goes to `data_source_sync_history`
  (status, counts, duration, error, which connection served); the registry row gets `last_sync`,
  `next_sync` (its due time plus `refresh_interval`, on the schedule's grid), `error_count`,
  `last_error`. After **`error_threshold`** consecutive failed runs
  (param, else Variable `registry_error_threshold`, else 3) a source goes to status `error` and an
  alert goes out (log; connection `registry_alerts`: SMTP or webhook).
* A failing source fails only its own task instance; the run is then marked failed, the other
  sources have synced. Clearing a failed instance reruns that source alone (idempotent).
* Expansion is sorted by priority (mapped instances cannot have their own `priority_weight`);
  pool `registry_sources` bounds concurrent sources (`DATASYNC_REGISTRY_POOL` overrides it).
* **`source_registry_realtime`** is the same pair of tasks every minute for sources with a
  `realtime` mapping; the 5-minute runner leaves those to it. Postgres sources whose database
  announces changes (`DATASYNC_REGISTRY_REALTIME_WATCH`, docs/realtime.md)
  also start it within seconds of a change.
"""

import os
from datetime import timedelta

from airflow.sdk import DAG, Param, get_current_context, get_parsing_context, task

from datasync.defaults import DEFAULT_ARGS, START_DATE
from datasync.realtime import changes_asset, on_change_or_cron
from datasync.registry import runner

PARAMS = {
    "source_ids": Param([], type=["array", "null"], items={"type": "string"}, title="Force sources",
                        description="source_id values to run now whatever their due time (also sources in status error)."),
    "error_threshold": Param(None, type=["null", "integer"], minimum=1, title="Failures before status 'error'",
                             description="Consecutive failed runs; empty: Variable registry_error_threshold, else 3."),
    "max_sources": Param(runner.MAX_SOURCES_PER_RUN, type="integer", minimum=1, maximum=1024,
                         title="Most sources per run", description="The rest wait for the next run (lowest priority last)."),
    "batch_size": Param(runner.DEFAULT_BATCH_SIZE, type="integer", minimum=100, title="Rows per batch",
                        description="Rows written and committed together into a target table."),
}


def registry_runner(dag_id: str, *, schedule: str, every: timedelta, description: str, realtime: bool,
                    tags: list[str]) -> DAG:
    """``every``: the time between two ticks of ``schedule``. A source due up to half of it after
    a tick is taken at that tick (its due time rounds to the nearest tick)."""
    tolerance = every / 2

    with DAG(
        dag_id=dag_id,
        description=description,
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,  # a slow cycle delays the next one instead of running sources twice
        default_args=DEFAULT_ARGS,
        tags=tags,
        doc_md=__doc__,
        params=PARAMS,
    ) as dag:

        @task(task_id="pick_sources", execution_timeout=timedelta(minutes=5))
        def pick_sources() -> list[dict]:
            return runner.pick_task(realtime=realtime, context=get_current_context(), tolerance=tolerance)

        @task(task_id="sync_source", **runner.SYNC_TASK_ARGS)
        def sync_source(source: dict) -> dict:
            return runner.sync_task(source, get_current_context(), tolerance)

        sync_source.expand(source=pick_sources())
    return dag


# A task process parses this file for its own DAG only; building the other one would cost every
# mapped instance (hundreds per cycle) its Param validation and task set-up. Airflow's parser sees both.
BUILD = get_parsing_context().dag_id
if BUILD in (None, "source_registry_runner"):
    registry_runner("source_registry_runner", schedule="*/5 * * * *", every=timedelta(minutes=5), realtime=False,
                    tags=["registry", "sync"],
                    description="Every 5 minutes (UTC): the due sources of registry_db.data_source_registry into their tables.")
if BUILD in (None, "source_registry_realtime"):
    # Platform setting: Postgres connections whose databases announce changes (`python -m datasync
    # realtime enable`); their changes start the realtime runner at once, the minute schedule stays.
    REALTIME_WATCH = [c.strip() for c in os.environ.get("DATASYNC_REGISTRY_REALTIME_WATCH", "").split(",") if c.strip()]
    registry_runner("source_registry_realtime", every=timedelta(minutes=1), realtime=True,
                    schedule=on_change_or_cron("* * * * *", [changes_asset(conn_id) for conn_id in REALTIME_WATCH]),
                    tags=["registry", "sync", "realtime"],
                    description="Every minute (UTC): the registry sources with a realtime mapping.")
