"""lifecycle_sync end to end: the real DAG through dag.test() against real Postgres."""


import pytest

from datasync.lifecycle import TABLES
from harness import load_dag, run_dag, task_states

COLUMNS = {
    "segments": "id, segmen, deskripsi, created_at, updated_at",
    "stages": "id, stage, urutan, created_at, updated_at",
    "products": "id, nama_produk, id_kategori, id_segmen, id_stage, harga, deskripsi, performance_metrics, created_at, updated_at",
    "stage_history": "id, id_produk, id_stage_from, id_stage_to, changed_at, changed_by, catatan, created_at, updated_at",
}


@pytest.fixture(scope="module")
def dag():
    return load_dag("lifecycle_sync")


def run(dag, **conf):
    result = run_dag(dag, conf=conf or None)
    return result, task_states(result)


def assert_mirrored(src, tgt, skip_ids=()):
    for t in TABLES:
        source = [r for r in src.query(f"SELECT {COLUMNS[t.name]} FROM {t.source} ORDER BY id") if (t.name, r[0]) not in skip_ids]
        target = tgt.query(f"SELECT {COLUMNS[t.name]} FROM {t.target} ORDER BY id")
        assert target == source, t.name


def sql(db, statement, params=None):
    conn = db.connect()
    conn.execute(statement, params)
    conn.close()


def last_log(tgt, task):
    return tgt.query(
        "SELECT status, rows_read, rows_inserted, rows_updated, rows_rejected, error FROM sync_log "
        "WHERE sync_name = %s ORDER BY id DESC LIMIT 1", (f"lifecycle_sync.sync_{task}",)
    )[0]


def test_initial_load_then_noop_then_incremental(dbs, dag):
    src, tgt = dbs
    result, states = run(dag)
    assert result.state == "success", states
    assert states["prune_products"] == "skipped"
    assert_mirrored(src, tgt)
    assert tgt.query("SELECT count(*) FROM tbl_produk_lifecycle") == [(211,)]
    # BIGINT harga exact, JSONB unchanged
    assert src.query("SELECT harga, performance_metrics FROM tbl_produk WHERE id = 7") == \
        tgt.query("SELECT harga, performance_metrics FROM tbl_produk_lifecycle WHERE id = 7")

    result, _ = run(dag)  # nothing changed: nothing written
    assert result.state == "success"
    assert last_log(tgt, "products")[2:4] == (0, 0)

    # inserts, updates, and a product moved to a segment created in the same hour
    sql(src, "INSERT INTO tbl_segmen (id, segmen) VALUES (6, 'Segmen Baru')")
    sql(src, "UPDATE tbl_produk SET id_segmen = 6, harga = 9007199254740993 WHERE id = 10")
    sql(src, "INSERT INTO tbl_produk (id, nama_produk, id_segmen, id_stage, harga) VALUES (300, 'Produk Baru', 6, 2, 1)")
    result, states = run(dag)
    assert result.state == "success", states
    assert last_log(tgt, "products")[2:4] == (1, 1)
    assert tgt.query("SELECT harga FROM tbl_produk_lifecycle WHERE id = 10") == [(9007199254740993,)]
    assert_mirrored(src, tgt)
    assert tgt.query("SELECT segmen, stage FROM v_produk_lifecycle WHERE id = 300") == [("Segmen Baru", "Development")]


def test_deletes_only_with_full_refresh(dbs, dag):
    src, tgt = dbs
    assert run(dag)[0].state == "success"
    sql(src, "DELETE FROM tbl_stage_histori WHERE id_produk = 5")
    sql(src, "DELETE FROM tbl_produk WHERE id = 5")
    assert run(dag)[0].state == "success"
    assert tgt.query("SELECT count(*) FROM tbl_produk_lifecycle WHERE id = 5") == [(1,)]

    result, states = run(dag, full_refresh=True)
    assert result.state == "success", states
    assert tgt.query("SELECT count(*) FROM tbl_produk_lifecycle WHERE id = 5") == [(0,)]
    assert_mirrored(src, tgt)


def test_invalid_rows_are_rejected_with_id_and_reason(dbs, dag):
    src, tgt = dbs
    sql(src, "UPDATE tbl_produk SET nama_produk = NULL WHERE id = 3")
    sql(src, "UPDATE tbl_produk SET id_segmen = 99 WHERE id = 4")
    sql(src, "UPDATE tbl_produk SET harga = -5 WHERE id = 8")
    result, states = run(dag)
    assert result.state == "success", states
    rejects = {int(k): (c, r) for k, c, r in tgt.query("SELECT row_key, column_name, reason FROM sync_rejects")}
    assert rejects[3][0] == "nama_produk" and "NULL" in rejects[3][1]
    assert rejects[4][0] == "id_segmen" and "foreign key" in rejects[4][1]
    assert rejects[8][0] == "harga" and "harga_not_negative" in rejects[8][1]
    # history rows of rejected products are refused too (unknown product), the rest lands
    assert tgt.query("SELECT count(*) FROM tbl_produk_lifecycle") == [(208,)]
    assert last_log(tgt, "products")[4] == 3


def test_failure_mid_run_then_rerun_converges(dbs, dag):
    src, tgt = dbs
    sql(src, "UPDATE tbl_produk SET nama_produk = NULL WHERE id = 3")
    result, states = run(dag, max_rejects=0)
    assert result.state == "failed"
    assert states["sync_segments"] == "success" and states["sync_products"] == "failed"
    assert states["sync_stage_history"] == "upstream_failed"
    status, *_rest, error = last_log(tgt, "products")
    assert status == "failed" and "tbl_produk_lifecycle key 3 column nama_produk" in error
    # the source is fixed; a rerun finishes the job
    sql(src, "UPDATE tbl_produk SET nama_produk = 'Diperbaiki' WHERE id = 3")
    assert run(dag)[0].state == "success"
    assert_mirrored(src, tgt)


def test_unreachable_source_fails_naming_it_and_moves_no_cursor(dbs, dag, monkeypatch):
    src, tgt = dbs
    assert run(dag)[0].state == "success"
    cursors = tgt.query("SELECT sync_name, cursor_value FROM sync_cursors ORDER BY 1")
    monkeypatch.setenv("AIRFLOW_CONN_LIFECYCLE_DB", "postgresql://postgres@127.0.0.1:9/nowhere")
    task = dag.get_task("sync_segments")
    assert task.retries >= 1 and task.retry_exponential_backoff  # the scheduler retries it
    result, states = run(dag)
    assert states["sync_segments"] == "failed"
    error = last_log(tgt, "segments")[-1]
    assert "cannot connect to 'lifecycle_db'" in error
    assert tgt.query("SELECT sync_name, cursor_value FROM sync_cursors ORDER BY 1") == cursors
