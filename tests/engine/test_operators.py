"""The operators inside a real DAG run (dag.test): rows from an upstream task, and a query result."""

from engine_fixtures import bookkept, create_items
from harness import REPO, load_dag, run_dag, task_states


def test_operators_in_a_dag(database_factory, airflow_db):
    src = bookkept(database_factory("postgres", "src"), "eng_src")
    tgt = bookkept(database_factory("mysql", "tgt"), "eng_tgt")
    create_items(src)
    create_items(tgt)
    src.query("INSERT INTO items VALUES (7, 'from query', 1, 1.5, NULL, '2026-03-01T00:00:00Z')")

    run = run_dag(load_dag("engine_operators", folder=REPO / "tests" / "dags"))
    assert run.state == "success", task_states(run)
    assert tgt.query("SELECT id, name, qty FROM items ORDER BY id") == [(1, "api one", 3), (2, "api two", None), (7, "from query", 1)]
    logged = tgt.query("SELECT sync_name, status, rows_inserted FROM sync_log ORDER BY id")
    assert logged == [
        ("engine_operators.upsert_rows", "success", 2),
        ("engine_operators.upsert_query", "success", 1),
        ("engine_operators.sync_table", "success", 0),
    ]
