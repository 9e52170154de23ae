"""A registry runner on a 1-minute tick for the cadence test (tests/cluster/test_cadence.py): the
production runner's two tasks (datasync.registry.runner.pick_task / sync_task) under a real scheduler,
half a tick of tolerance as dags/source_registry_runner.py gives its DAGs."""

from datetime import timedelta

from airflow.sdk import DAG, get_current_context, task

from datasync.defaults import START_DATE
from datasync.registry import runner

TICK = timedelta(minutes=1)

with DAG(dag_id="registry_cadence", schedule="* * * * *", start_date=START_DATE, catchup=False,
         max_active_runs=1, tags=["test"], description="Test only: the registry runner every minute."):

    @task
    def pick_sources() -> list[dict]:
        return runner.pick_task(realtime=False, context=get_current_context(), tolerance=TICK / 2)

    @task(multiple_outputs=False, map_index_template="{{ task.op_kwargs['source']['name'] }}")
    def sync_source(source: dict) -> dict:
        return runner.sync_task(source, get_current_context(), TICK / 2)

    sync_source.expand(source=pick_sources())
