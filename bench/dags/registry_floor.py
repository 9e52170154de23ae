"""
### registry_floor (benchmark only)

The registry runner's shape with nothing inside: ``pick`` returns ``params.count`` small dicts and
``noop`` is mapped over them with ``sync_source``'s settings (``runner.SYNC_TASK_ARGS``: pool,
label, retries, one XCom back).
A cycle of it is what the deployment charges for the task instances alone, the floor under a
registry cycle of as many sources (``bench/bench_registry_cluster.py --floor``).
"""

from airflow.sdk import DAG, Param, task

from datasync.defaults import DEFAULT_ARGS, START_DATE
from datasync.registry import runner

with DAG(
    dag_id="registry_floor",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["bench"],
    doc_md=__doc__,
    params={"count": Param(500, type="integer", minimum=1, maximum=1024, title="Task instances")},
):

    @task(task_id="pick")
    def pick(params=None) -> list[dict]:
        return [{"source_id": f"floor-{i:04d}", "name": f"floor {i}"} for i in range(params["count"])]

    @task(task_id="noop", **runner.SYNC_TASK_ARGS)
    def noop(source: dict) -> dict:
        return {"source_id": source["source_id"], "status": "success"}

    noop.expand(source=pick())
