"""
### engine_operators (tests only)

The engine's operators in one DAG: rows from an upstream task (an API stand-in) and a query
result through `UpsertOperator`, then a table through `SyncTableOperator`, from connection
`eng_src` into `eng_tgt` (bound by tests/engine/test_operators.py).
"""

from datetime import timedelta

from airflow.sdk import DAG, task

from datasync.defaults import DEFAULT_ARGS, START_DATE
from datasync.operators import SyncTableOperator, UpsertOperator

with DAG("engine_operators", schedule=None, start_date=START_DATE, catchup=False, max_active_runs=1,
         default_args=DEFAULT_ARGS, tags=["tests"], doc_md=__doc__):

    @task
    def fetch() -> list[dict]:
        at = "2026-03-01T00:00:00"
        return [{"id": 1, "name": "api one", "qty": 3, "price": "2.50", "meta": {"k": 1}, "updated_at": at},
                {"id": 2, "name": "api two", "qty": None, "price": None, "meta": None, "updated_at": at}]

    rows = UpsertOperator(task_id="upsert_rows", rows=fetch(), target_conn_id="eng_tgt", target_table="items", key=["id"])
    query = UpsertOperator(
        task_id="upsert_query", source_conn_id="eng_src", sql="SELECT * FROM items WHERE id = 7",
        target_conn_id="eng_tgt", target_table="items", key=["id"],
    )
    table = SyncTableOperator(
        task_id="sync_table", source_conn_id="eng_src", source_table="items", target_conn_id="eng_tgt",
        target_table="items", key=["id"], cursor_column="updated_at", lookback=timedelta(minutes=5),
    )
    rows >> query >> table
