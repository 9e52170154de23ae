"""docs/adding-a-pipeline.md, followed as written: its source and target SQL run on real Postgres,
its DAG file is written out and run through dag.test(), and the rows land. A change to the doc that
breaks the recipe breaks this test."""

from __future__ import annotations

import datetime as dt
import re

from harness import REPO, load_dag, run_dag, task_states

DOC = REPO / "docs" / "adding-a-pipeline.md"


def doc_blocks() -> dict[str, str]:
    """The labelled code blocks of the doc: ```sql source, ```sql target, ```python dag."""
    return {label: body for _, label, body in re.findall(r"(?ms)^```(\w+) (\w+)\n(.*?)^```", DOC.read_text())}


def test_the_doc_has_every_step():
    text = DOC.read_text()
    assert set(doc_blocks()) == {"source", "target", "dag"}
    for step in ("## 1. Source table", "## 2. Target migration", "## 3. DAG, with a pool", "## 4. Test", "## 5. Demo"):
        assert step in text
    for place in ("plugins/datasync/migrate.py", "docker-compose.yaml", "docker/warehouse-db", "devtools/demo/__init__.py",
                  "tests/cluster/cluster.py", ".env.example"):
        assert place in text and (REPO / place).exists(), place


def test_the_doc_recipe_runs_end_to_end(database_factory, airflow_db):
    from datasync.db import connected
    from datasync.migrate import Target, migrate_database

    blocks = doc_blocks()
    source = database_factory("postgres", "shop")
    source.bind("shop_db")
    target = database_factory("postgres", "warehouse")
    target.bind("warehouse_db")
    source.query(blocks["source"])
    with connected("warehouse_db") as db:  # what db_migrate gives a new target: the bookkeeping tables
        migrate_database(Target("orders_doc", "warehouse_db", "postgres"), db)
    target.query(blocks["target"])
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    for i in range(1, 4):
        source.query("INSERT INTO orders VALUES (%s, %s, %s, %s)", (i, f"customer {i}", 10 * i, past))

    # Beside the test DAGs (dag.test() runs DAGs from inside the repository), for this test only.
    dag_file = REPO / "tests" / "dags" / "orders_sync_from_the_doc.py"
    dag_file.write_text(blocks["dag"])
    try:
        dag = load_dag("orders_sync", file=dag_file.name, folder=dag_file.parent)
        check_and_run(dag, source, target, past)
    finally:
        dag_file.unlink()


def check_and_run(dag, source, target, past) -> None:
    [task] = dag.tasks
    assert task.pool == "db_sync"
    assert "airflow pools set db_sync " in (REPO / "docker" / "airflow-init.sh").read_text()
    assert dag.max_active_runs == 1 and dag.doc_md and task.retries >= 1 and task.retry_exponential_backoff

    run = run_dag(dag)
    assert run.state == "success", task_states(run)
    assert target.query("SELECT id, customer, total FROM orders ORDER BY id") == [
        (1, "customer 1", 10), (2, "customer 2", 20), (3, "customer 3", 30)]

    source.query("UPDATE orders SET total = 99, updated_at = %s WHERE id = 2", (past + dt.timedelta(minutes=1),))
    run = run_dag(dag)
    assert run.state == "success", task_states(run)
    assert target.query("SELECT total FROM orders WHERE id = 2") == [(99,)]
    logged = target.query("SELECT sync_name, status, rows_inserted, rows_updated FROM sync_log ORDER BY id")
    assert logged == [("orders_sync.sync_orders", "success", 3, 0), ("orders_sync.sync_orders", "success", 0, 1)]
