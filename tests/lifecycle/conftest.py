"""lifecycle_db (seeded) and pmo_db, migrated, bound to the pipeline's connection ids."""

import pytest

from devtools.demo.lifecycle import load_demo_rows


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
    load_demo_rows(conn)
    conn.close()
    return src, tgt
