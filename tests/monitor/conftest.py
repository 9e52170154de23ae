"""Fixtures of the Data sync page tests: one seeded world for this folder, and Airflow's API
server with the plugin serving it (see monitor_world.py and monitor_server.py)."""

import os

import pytest

from monitor_server import in_process_api_server, login
from monitor_world import build_world


@pytest.fixture(scope="package")
def world(database_factory):
    """The world's databases are bound to the target connection ids while these tests run; the
    bindings other tests made are put back afterwards."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("AIRFLOW_CONN_")}
    yield build_world(database_factory)
    from datasync.monitor import targets

    targets.reset()
    for key in [k for k in os.environ if k.startswith("AIRFLOW_CONN_")]:
        del os.environ[key]
    os.environ.update(saved)


@pytest.fixture(scope="package")
def server(world, airflow_db, tmp_path_factory):
    with in_process_api_server(tmp_path_factory.mktemp("airflow-auth")) as base:
        yield base


@pytest.fixture(scope="package")
def token(server):
    return login(server)


@pytest.fixture(autouse=True)
def _fresh_connections():
    """Connections kept by the page between requests belong to the test that opened them."""
    yield
    from datasync.monitor import targets

    targets.reset()
