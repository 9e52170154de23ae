"""A sync process killed with SIGKILL mid-batch: target and cursor stay consistent, a rerun converges."""

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest

from datasync.db import connected
from datasync.engine import SqlSource, SyncSpec, run_sync
from datasync.engine.state import read_cursor
from engine_fixtures import bookkept, create_items
from harness import REPO

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
ROWS = 3000

# Runs the sync in its own process, to be killed with SIGKILL.
WORKER = r"""
import datetime as dt
from datasync.engine import SqlSource, SyncSpec, run_sync
run_sync(SyncSpec(name="items", target_table="items", key=["id"], cursor_column="updated_at", batch_size=500),
         SqlSource("eng_src", table="items"), "eng_tgt", run_start=dt.datetime(2026, 4, 1, tzinfo=dt.timezone.utc))
"""


def _stall_target_at(db, row_id: int):
    """The target's insert of one row sleeps: the worker is then inside an uncommitted page."""
    db.query(
        "CREATE OR REPLACE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN IF NEW.id = {row_id} THEN PERFORM pg_sleep(60); END IF; RETURN NEW; END $$"
    )
    db.query("CREATE OR REPLACE TRIGGER stall BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION stall()")


def _spawn():
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'plugins'}")
    return subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_until_stalled(proc, tgt, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        sleeping = tgt.query(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'"
        )[0][0]
        if sleeping:
            return
        time.sleep(0.2)
    raise AssertionError("the worker never reached the stalled row")


@pytest.fixture
def src_tgt(database_factory):
    src = bookkept(database_factory("postgres", "src"), "eng_src")
    tgt = bookkept(database_factory("postgres", "tgt"), "eng_tgt")
    for db in (src, tgt):
        create_items(db)
    conn = src.connect()
    with conn.cursor().copy("COPY items (id, name, qty, price, meta, updated_at) FROM STDIN") as copy:
        for i in range(1, ROWS + 1):
            copy.write_row((i, f"n{i}", i % 7, f"{i}.25", '{"i": %d}' % i, T0 + dt.timedelta(seconds=i // 3)))
    conn.close()
    return src, tgt


def _assert_consistent(tgt):
    """The cursor is never ahead of the data: every source row up to it is in the target."""
    with connected("eng_tgt") as db:
        pos = read_cursor(db, "items")
    landed = {r[0] for r in tgt.query("SELECT id FROM items")}
    if pos.value is None:
        assert not landed or len(landed) % 500 == 0
        return
    covered = {i for i in range(1, ROWS + 1) if T0 + dt.timedelta(seconds=i // 3) < pos.value}
    assert covered <= landed, f"cursor {pos.value} is ahead of the data"
    return pos


# Mid third page of an initial load (straight COPY into the empty target); inside the last page
# when the target already holds rows (staging table + merge).
@pytest.mark.parametrize("stall_at,preloaded", [(1250, False), (2999, True)])
def test_sigkill_mid_page_then_rerun_converges(src_tgt, stall_at, preloaded):
    src, tgt = src_tgt
    if preloaded:
        tgt.query("INSERT INTO items (id, name, updated_at) VALUES (1, 'stale', '2000-01-01')")
    _stall_target_at(tgt, stall_at)
    proc = _spawn()
    try:
        _wait_until_stalled(proc, tgt)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # The dead worker's backend would sleep on until it noticed the closed socket (holding the
    # sync's session lock meanwhile); end it now instead of waiting.
    tgt.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'")
    landed = tgt.query("SELECT count(*) FROM items")[0][0]
    assert 0 < landed < ROWS and landed % 500 == 0, "only whole pages commit"
    pos = _assert_consistent(tgt)
    assert pos is not None
    # The killed attempt's own row says what it had committed: its counts moved with each page.
    (status, read, inserted, updated), = tgt.query("SELECT status, rows_read, rows_inserted, rows_updated FROM sync_log")
    assert status == "running" and read == inserted + updated == landed

    tgt.query("DROP TRIGGER stall ON items")  # the stall is gone; rerun the same sync
    result = run_sync(
        SyncSpec(name="items", target_table="items", key=["id"], cursor_column="updated_at", batch_size=500),
        SqlSource("eng_src", table="items"), "eng_tgt", run_start=dt.datetime(2026, 4, 1, tzinfo=dt.timezone.utc),
    )
    assert result.counts.inserted == ROWS - landed
    cols = "id, name, qty, price, meta, updated_at"
    assert tgt.query(f"SELECT {cols} FROM items ORDER BY id") == src.query(f"SELECT {cols} FROM items ORDER BY id")
    statuses = [s for (s,) in tgt.query("SELECT status FROM sync_log ORDER BY id")]
    assert statuses == ["failed", "success"]  # the killed run is marked abandoned by the next one
    assert "abandoned" in tgt.query("SELECT error FROM sync_log ORDER BY id LIMIT 1")[0][0]
