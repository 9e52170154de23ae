"""Parent and child tables synced by separate tasks read as of one moment: products and their
stage history committed while the run is under way never become spurious FK rejects."""

import datetime as dt
import threading
import time

from datasync.engine import SqlSource, SyncSpec, run_sync
from datasync.lifecycle import SOURCE_CONN, TABLES, TARGET_CONN

UTC = dt.timezone.utc


def sync(table, run_start: dt.datetime, run_id: str, batch_size: int = 20):
    """What the DAG's sync_<table> task runs (same spec as dags/lifecycle_sync.py), small pages."""
    spec = SyncSpec(name=f"lifecycle_sync.sync_{table.name}", target_table=table.target, key=["id"],
                    cursor_column="updated_at", lookback=dt.timedelta(minutes=10), max_rejects=0,
                    batch_size=batch_size, defer_missing_parents=dt.timedelta(days=1))
    return run_sync(spec, SqlSource(SOURCE_CONN, table=table.source), TARGET_CONN, run_id=run_id, run_start=run_start)


def add_product_with_history(src, pid: int, at: str = "now()") -> None:
    """A product and its stage-history row, each in its own transaction (as the application does)."""
    conn = src.connect()
    conn.execute("INSERT INTO tbl_produk (id, nama_produk, id_segmen, id_stage, harga, created_at, updated_at) "
                 f"VALUES (%s, %s, 1, 1, 1000, {at}, {at})", (pid, f"Race {pid}"))
    conn.commit()
    conn.execute("INSERT INTO tbl_stage_histori (id, id_produk, id_stage_from, id_stage_to, changed_at, created_at, "
                 f"updated_at) VALUES (%s, %s, 1, 2, {at}, {at}, {at})", (pid, pid))
    conn.commit()
    conn.close()


def test_rows_committed_during_a_run_wait_for_the_next(dbs):
    src, tgt = dbs
    # Every insert of a product into the target sleeps a little: sync_products takes seconds.
    tgt.query("CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.01); "
              "RETURN NEW; END $$")
    tgt.query("CREATE TRIGGER slow BEFORE INSERT ON tbl_produk_lifecycle FOR EACH ROW EXECUTE FUNCTION slow()")
    moment = dt.datetime.now(UTC)  # the DAG run's start: every task reads up to it
    stop = threading.Event()
    added: list[int] = []

    def application():  # commits products and their history while the run is under way
        pid = 10_000
        while not stop.is_set():
            pid += 1
            add_product_with_history(src, pid)
            added.append(pid)
            time.sleep(0.02)

    writer = threading.Thread(target=application)
    results = {}
    for table in TABLES:
        if table.name == "products":
            writer.start()
        results[table.name] = sync(table, moment, "run1")
        if table.name == "products":
            # A product committed late with a timestamp before the run's moment (a long
            # transaction): its history row is read, its product was not.
            add_product_with_history(src, 20_000, f"'{(moment - dt.timedelta(seconds=5)).isoformat()}'")
    stop.set()
    writer.join()
    assert len(added) > 5, "the application committed during the run"

    logs = tgt.query("SELECT sync_name, status, rows_rejected, details FROM sync_log ORDER BY id")
    assert [(s, r) for _n, s, r, _d in logs] == [("success", 0)] * 4
    history = results["stage_history"]
    assert history.counts.rejected == 0 and history.counts.deferred == 1
    assert logs[-1][3]["deferred"] == 1 and logs[-1][3]["deferred_keys"] == [20_000]
    assert tgt.query("SELECT count(*) FROM sync_rejects") == [(0,)]
    assert tgt.query("SELECT count(*) FROM tbl_stage_histori_lifecycle WHERE id = 20000") == [(0,)]

    # The next run lands every row, the deferred one included.
    tgt.query("DROP TRIGGER slow ON tbl_produk_lifecycle")
    later = dt.datetime.now(UTC) + dt.timedelta(seconds=1)
    for table in TABLES:
        assert sync(table, later, "run2").counts.rejected == 0
    for table in TABLES:
        cols = "id, updated_at"
        assert tgt.query(f"SELECT {cols} FROM {table.target} ORDER BY id") == \
            src.query(f"SELECT {cols} FROM {table.source} ORDER BY id"), table.name
    assert tgt.query("SELECT count(*) FROM tbl_stage_histori_lifecycle WHERE id >= 10000") == [(len(added) + 1,)]
    assert tgt.query("SELECT count(*) FROM sync_rejects") == [(0,)]
