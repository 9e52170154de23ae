"""db_migrate runs through Airflow (dag.test) and leaves the tables behind."""

from harness import load_dag, run_dag, task_states


def test_db_migrate_dag_creates_tables(airflow_db, database_factory):
    from datasync.migrate import TARGETS

    dbs = {}
    for name, target in TARGETS.items():
        dbs[name] = database_factory("postgres" if target.family == "postgres" else "mysql", f"dag_{name}")
        dbs[name].bind(target.conn_id)

    dag = load_dag("db_migrate")
    run = run_dag(dag, conf={"targets": ["tidb", "registry"]})
    assert run.state == "success", task_states(run)
    states = task_states(run)
    assert states["migrate_tidb"] == "success" and states["migrate_registry"] == "success"
    assert states["migrate_pmo"] == "skipped"

    def tables(db):
        schema = "'public'" if db.kind == "postgres" else "DATABASE()"
        return {t for (t,) in db.query(f"SELECT table_name FROM information_schema.tables WHERE table_schema = {schema}")}

    assert {"sync_cursors", "sync_log", "sync_rejects"} <= tables(dbs["tidb"])
    assert {"sync_cursors", "sync_log", "sync_rejects"} <= tables(dbs["registry"])
    assert "sync_log" not in tables(dbs["pmo"])
