"""lifecycle_db (seeded) and pmo_db, migrated, bound to the pipeline's connection ids."""

import pytest

from datasync.lifecycle import seed_demo


@pytest.fixture
def dbs(database_factory, airflow_db):
    from datasync.migrate import TARGETS, migrate

    src = database_factory("postgres", "lifecycle")
    tgt = database_factory("postgres", "pmo")
    src.bind(TARGETS["lifecycle"].conn_id)
    tgt.bind(TARGETS["pmo"].conn_id)
    migrate(["lifecycle", "pmo"])
    conn = src.connect()
    conn.autocommit = False
    seed_demo(conn)
    conn.close()
    return src, tgt
