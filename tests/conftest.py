"""Fixtures for every test: see harness.py (real databases, Airflow connections, dag.test)."""

import sys

from harness import (  # noqa: F401  (fixtures are found by name)
    airflow_db,
    database_factory,
    load_dag,
    migrated_target,
    my_db,
    pg_db,
    run_dag,
    task_states,
    TestDatabase,
)


def pytest_terminal_summary(terminalreporter):
    """Show each DAG file's parse time (measured by the integrity test) at the end of the run."""
    module = next((m for name, m in sys.modules.items() if name.endswith("test_dag_integrity")), None)
    PARSE_TIMES = getattr(module, "PARSE_TIMES", None)
    if PARSE_TIMES:
        terminalreporter.section("DAG parse times")
        for name, seconds in sorted(PARSE_TIMES.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{seconds * 1000:8.0f} ms  dags/{name}")
