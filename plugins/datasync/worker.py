"""Celery settings for the workers: ``[celery] celery_config_options = datasync.worker.CELERY_CONFIG``.

Airflow's defaults plus ``imports``: modules a worker loads once, when it starts, before it forks
its pool processes. Every task process is forked from one of those and inherits them, so the DAG
file it parses at task start only builds its DAG objects: measured on 2 cores, parsing the registry
runner's DAG file costs ~15 ms of CPU with these loaded against ~280 ms without (its imports),
for each of hundreds of mapped task instances per cycle. A worker reads them when it starts:
restart workers after changing ``plugins/`` (it had to be done anyway).

The worker also readies Airflow's ORM models before it forks (``worker_init``): Celery's database
result backend configures SQLAlchemy's mappers on a pool process's first result, which makes
Airflow import and map every model it has, once in each of the pool processes (~0.65 s of CPU each,
16 per 2-worker stack, all at the first cycle after a start).
"""

from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

PRELOAD = (
    # what the DAG files build their DAGs with (decorated tasks, cron timetables, params)
    "airflow.providers.standard.decorators.python",
    "airflow.sdk.definitions.decorators",
    "airflow.sdk.definitions.timetables.interval",
    "airflow.sdk.definitions.timetables.trigger",
    "croniter",
    "datasync.realtime",  # the change-event assets and on-change-or-cron schedules
    # the task code of the DAGs that run the most task instances
    "datasync.defaults",
    "datasync.registry.runner",
    "datasync.monitor",  # what the plugins folder's datasync_ui.py imports (every task process loads plugins)
    # what every registry task connects with (psycopg 3, the provider's hook): ~70 ms a task
    "airflow.providers.postgres.hooks.postgres",
)

CELERY_CONFIG = {**DEFAULT_CELERY_CONFIG, "imports": PRELOAD}


@worker_init.connect
def configure_models(**_) -> None:
    """In the worker's main process, before the pool forks (no database connection is made)."""
    from airflow.models import import_all_models
    from sqlalchemy.orm import configure_mappers

    import_all_models()
    configure_mappers()
