"""Fixtures of the Data sync page tests: one seeded world for the session, and Airflow's API
server with the plugin serving it (see monitor_world.py and monitor_server.py)."""

import pytest

from monitor_server import in_process_api_server, login
from monitor_world import build_world


@pytest.fixture(scope="session")
def world(migrated_target, database_factory):
    return build_world(migrated_target, database_factory)


@pytest.fixture(scope="session")
def server(world, airflow_db, tmp_path_factory):
    with in_process_api_server(tmp_path_factory.mktemp("airflow-auth")) as base:
        yield base


@pytest.fixture(scope="session")
def token(server):
    return login(server)


@pytest.fixture(autouse=True)
def _fresh_connections():
    """Connections kept by the page between requests belong to the test that opened them."""
    yield
    from datasync.monitor import targets

    targets.reset()
