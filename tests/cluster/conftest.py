"""The ``airflow_cluster`` fixture: a real Airflow deployment shared by every test in tests/cluster
(API in cluster.py). It stops when the last of those tests has run, not at the end of the session,
so the rest of the suite does not share two cores with an idle scheduler."""

from __future__ import annotations

import shutil

import pytest

from cluster import MEASURED, Cluster, start_cluster

_running: dict[str, object] = {}
_failed: list[str] = []  # tests that failed while the cluster ran: its folder is kept for them


@pytest.fixture(scope="session")
def airflow_cluster(database_factory) -> Cluster:
    generator = start_cluster(database_factory)
    cluster = next(generator)
    _running["generator"], _running["cluster"] = generator, cluster
    yield cluster
    _stop()


def _stop() -> None:
    generator = _running.pop("generator", None)
    cluster = _running.pop("cluster", None)
    if generator is not None:
        generator.close()  # runs start_cluster's finally: stop by PID, drop the metadata DB
    if cluster is not None:
        if _failed:
            print(f"\nairflow cluster logs kept in {cluster.stack.home / 'logs'} ({len(_failed)} failed test(s))")
        else:
            shutil.rmtree(cluster.stack.home, ignore_errors=True)


def pytest_runtest_teardown(item, nextitem):
    if not _running:
        return
    items = item.session.items
    rest = items[items.index(nextitem):] if nextitem in items else []
    if not any("airflow_cluster" in getattr(i, "fixturenames", ()) for i in rest):
        _stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    cluster = _running.get("cluster")
    if report.failed and cluster is not None:
        _failed.append(item.nodeid)
        report.sections.append(("airflow cluster process logs", cluster.stack.log_tails(lines=15)))
    return report


def pytest_terminal_summary(terminalreporter):
    if MEASURED:
        terminalreporter.section("Airflow cluster")
        for name, value in MEASURED.items():
            terminalreporter.write_line(f"{value:8.1f}  {name}")
