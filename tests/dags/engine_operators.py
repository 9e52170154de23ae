"""
### engine_operators (tests only)

The engine in one DAG: rows from a task (an API stand-in) through `run_sync` with a `RowsSource`,
a query result upserted by `SyncTableOperator` (`mode="full"`, `delete_missing=False`), then a
table incrementally, from connection `eng_src` into `eng_tgt` (bound by tests/engine/test_operators.py).
"""

from datetime import timedelta

from airflow.sdk import DAG, task

from datasync.defaults import DEFAULT_ARGS, START_DATE
from datasync.operators import SyncTableOperator

with DAG("engine_operators", schedule=None, start_date=START_DATE, catchup=False, max_active_runs=1,
         default_args=DEFAULT_ARGS, tags=["tests"], doc_md=__doc__):

    @task
    def upsert_rows(**context) -> dict:
        from datasync.engine import RowsSource, SyncSpec, run_sync

        at = "2026-03-01T00:00:00"
        rows = [{"id": 1, "name": "api one", "qty": 3, "price": "2.50", "meta": {"k": 1}, "updated_at": at},
                {"id": 2, "name": "api two", "qty": None, "price": None, "meta": None, "updated_at": at}]
        spec = SyncSpec(name="engine_operators.upsert_rows", target_table="items", key=["id"], columns=list(rows[0]),
                        mode="upsert")
        return run_sync(spec, RowsSource(rows, list(rows[0])), "eng_tgt", run_id=context["run_id"]).as_dict()

    query = SyncTableOperator(
        task_id="upsert_query", source_conn_id="eng_src", source_query="SELECT * FROM items WHERE id = 7",
        target_conn_id="eng_tgt", target_table="items", key=["id"], mode="full", delete_missing=False,
        bulk_load_empty=False,
    )
    table = SyncTableOperator(
        task_id="sync_table", source_conn_id="eng_src", source_table="items", target_conn_id="eng_tgt",
        target_table="items", key=["id"], cursor_column="updated_at", lookback=timedelta(minutes=5),
    )
    upsert_rows() >> query >> table
