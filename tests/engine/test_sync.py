"""The sync engine against real Postgres and MariaDB: loads, cursors, rejects, deletes, locks."""

import datetime as dt

import pytest

from harness import TestDatabase, lock_held
from datasync.db import LockTimeout
from datasync.engine import RejectThresholdExceeded, RowsSource, SchemaMismatch, SqlSource, SyncSpec, run_sync
from engine_fixtures import create_items

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def ts(db: TestDatabase, minutes: float):
    value = T0 + dt.timedelta(minutes=minutes)
    return value if db.kind == "postgres" else value.replace(tzinfo=None)


def insert_items(db: TestDatabase, rows):
    conn = db.connect()
    cur = conn.cursor()
    for r in rows:
        cur.execute("INSERT INTO items (id, name, qty, price, meta, updated_at) VALUES (%s, %s, %s, %s, %s, %s)", r)
    conn.close()


def items(db: TestDatabase):
    rows = db.query("SELECT id, name, qty, price, meta, updated_at FROM items ORDER BY id")
    out = []
    for r in rows:
        meta = r[4] if not isinstance(r[4], str) else __import__("json").loads(r[4])
        stamp = r[5] if r[5].tzinfo else r[5].replace(tzinfo=dt.timezone.utc)
        out.append((r[0], r[1], r[2], r[3], meta, stamp))
    return out


def spec(**kw):
    base = dict(name="items", target_table="items", key=["id"], cursor_column="updated_at", batch_size=3,
                lookback=dt.timedelta(minutes=5))
    base.update(kw)
    return SyncSpec(**base)


def sync(s=None, source=None, **kw):
    return run_sync(s or spec(), source or SqlSource("eng_src", table="items"), "eng_tgt",
                    run_start=kw.pop("run_start", T0 + dt.timedelta(days=1)), **kw)


def cursor_of(db):
    return db.query("SELECT cursor_value FROM sync_cursors WHERE sync_name = 'items'")


PAIRS = [("postgres", "postgres"), ("mysql", "postgres"), ("postgres", "mysql"), ("mysql", "mysql")]


@pytest.fixture(params=PAIRS, ids=lambda p: f"{p[0]}->{p[1]}")
def pair(request, database_factory):
    from engine_fixtures import bookkept

    src = bookkept(database_factory(request.param[0], "src"), "eng_src")
    tgt = bookkept(database_factory(request.param[1], "tgt"), "eng_tgt")
    create_items(src)
    create_items(tgt)
    return src, tgt


def test_initial_then_incremental_then_nothing(pair):
    src, tgt = pair
    insert_items(src, [(i, f"item {i}", i, f"{i}.50", '{"k": %d}' % i, ts(src, i)) for i in range(1, 11)])
    first = sync()
    assert (first.counts.read, first.counts.inserted, first.counts.updated) == (10, 10, 0)
    assert items(tgt) == items(src)

    conn = src.connect()
    conn.cursor().execute("UPDATE items SET qty = 99, updated_at = %s WHERE id = 4", (ts(src, 30),))
    conn.close()
    insert_items(src, [(11, "new", 1, "1.00", None, ts(src, 31))])
    second = sync()
    assert second.counts.inserted == 1 and second.counts.updated == 1
    # the lookback re-reads rows 6..10 (minutes 6..10 >= 31 - 5? no) - only rows inside it are read
    assert items(tgt) == items(src)

    third = sync()
    assert third.counts.inserted == third.counts.updated == 0
    log = tgt.query("SELECT status, rows_inserted FROM sync_log ORDER BY id")
    assert log == [("success", 10), ("success", 1), ("success", 0)]


def test_ties_on_the_cursor_across_page_boundaries(pair):
    src, tgt = pair
    # seven rows share one timestamp; pages of 3 must not lose any of them
    insert_items(src, [(i, f"tie {i}", 1, "1.00", None, ts(src, 5)) for i in range(1, 8)])
    sync()
    assert [r[0] for r in items(tgt)] == list(range(1, 8))


def test_late_row_inside_lookback_is_not_missed(pair):
    src, tgt = pair
    insert_items(src, [(i, "a", 1, "1.00", None, ts(src, 10 + i)) for i in range(1, 5)])
    sync()
    # committed after the run, stamped 2 minutes before the cursor (inside the 5 minute lookback)
    insert_items(src, [(50, "late", 1, "1.00", None, ts(src, 12))])
    result = sync()
    assert result.counts.inserted == 1
    assert 50 in [r[0] for r in items(tgt)]


def test_safety_lag_leaves_fresh_rows_for_the_next_run(pg_source, pg_target):
    create_items(pg_source)
    create_items(pg_target)
    insert_items(pg_source, [(1, "old", 1, "1", None, T0 - dt.timedelta(minutes=10)), (2, "fresh", 1, "1", None, T0 + dt.timedelta(seconds=50))])
    s = spec(safety_lag=dt.timedelta(minutes=1))
    sync(s, run_start=T0 + dt.timedelta(minutes=1))
    assert [r[0] for r in items(pg_target)] == [1]
    sync(s, run_start=T0 + dt.timedelta(minutes=5))
    assert [r[0] for r in items(pg_target)] == [1, 2]


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_bad_rows_are_rejected_by_name_and_the_rest_lands(kind, database_factory):
    from engine_fixtures import bookkept

    tgt = bookkept(database_factory(kind, "tgt"), "eng_tgt")
    create_items(tgt)
    rows = [
        (1, "ok", 1, "1.00", None, T0),
        (2, None, 1, "1.00", None, T0),  # NULL in NOT NULL
        (3, "x" * 30, 1, "1.00", None, T0),  # too long
        (4, "ok", "abc", "1.00", None, T0),  # not numeric
        (5, "ok", 1, "1.00", "{not json", T0),  # invalid JSON
        (6, "ok", 1, "1.00", {"fine": True}, T0),
    ]
    cols = ["id", "name", "qty", "price", "meta", "updated_at"]
    result = run_sync(spec(mode="upsert", max_rejects=10, batch_size=100), RowsSource(rows, cols), "eng_tgt")
    assert result.counts.inserted == 2 and result.counts.rejected == 4
    assert [r[0] for r in tgt.query("SELECT id FROM items ORDER BY id")] == [1, 6]
    rejects = {int(k): (c, reason) for k, c, reason in tgt.query("SELECT row_key, column_name, reason FROM sync_rejects")}
    assert rejects[2][0] == "name" and "NULL" in rejects[2][1]
    assert rejects[3][0] == "name" and "longer than 20" in rejects[3][1]
    assert rejects[4][0] == "qty"
    assert rejects[5][0] == "meta" and "JSON" in rejects[5][1]


def test_rejects_over_threshold_roll_back_the_page_and_fail(pg_target):
    create_items(pg_target)
    rows = [(1, "ok", 1, "1", None, T0), (2, None, 1, "1", None, T0)]
    cols = ["id", "name", "qty", "price", "meta", "updated_at"]
    with pytest.raises(RejectThresholdExceeded, match=r"items key 2 column name: NULL in a NOT NULL column"):
        run_sync(spec(mode="upsert", batch_size=100), RowsSource(rows, cols), "eng_tgt")
    assert pg_target.query("SELECT count(*) FROM items") == [(0,)]
    assert pg_target.query("SELECT row_key, column_name FROM sync_rejects") == [("2", "name")]
    assert pg_target.query("SELECT status FROM sync_log") == [("failed",)]


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_duplicate_keys_in_one_batch_keep_the_newest(kind, database_factory):
    from engine_fixtures import bookkept

    tgt = bookkept(database_factory(kind, "tgt"), "eng_tgt")
    create_items(tgt)
    cols = ["id", "name", "qty", "price", "meta", "updated_at"]
    rows = [(1, "newest", 1, "1", None, T0 + dt.timedelta(minutes=2)), (1, "older", 1, "1", None, T0), (2, "b", 1, "1", None, T0)]
    result = run_sync(spec(mode="upsert", batch_size=100), RowsSource(rows, cols), "eng_tgt")
    assert result.counts.duplicates == 1 and result.counts.inserted == 2
    assert tgt.query("SELECT name FROM items WHERE id = 1") == [("newest",)]


def test_missing_source_column_fails_before_writing(pg_source, pg_target):
    create_items(pg_target)
    pg_source.query("CREATE TABLE items (id BIGINT PRIMARY KEY, title TEXT, updated_at TIMESTAMPTZ)")
    with pytest.raises(SchemaMismatch, match=r"source eng_src.items has no column\(s\) \['name', 'qty', 'price', 'meta'\]"):
        sync()
    assert pg_target.query("SELECT count(*) FROM items") == [(0,)]
    [(status, error)] = pg_target.query("SELECT status, error FROM sync_log")
    assert status == "failed" and "renamed or dropped?" in error


def test_full_refresh_deletes_rows_gone_from_the_source(pair):
    src, tgt = pair
    insert_items(src, [(i, "a", 1, "1.00", None, ts(src, i)) for i in range(1, 8)])
    sync()
    conn = src.connect()
    conn.cursor().execute("DELETE FROM items WHERE id IN (2, 5)")
    conn.close()
    result = sync(spec(mode="full"))
    assert result.counts.deleted == 2
    assert [r[0] for r in items(tgt)] == [1, 3, 4, 6, 7]


@pytest.mark.parametrize("kind", ["postgres", "mysql"])  # advisory lock / GET_LOCK
def test_two_runs_at_once_do_not_interleave(kind, pg_source, database_factory):
    from engine_fixtures import bookkept

    target = bookkept(database_factory(kind, "tgt"), "eng_tgt")
    create_items(pg_source)
    create_items(target)
    insert_items(pg_source, [(1, "a", 1, "1.00", None, ts(pg_source, 1))])
    with lock_held("eng_tgt", "datasync:sync:items"):
        with pytest.raises(LockTimeout, match="'datasync:sync:items' is already running"):
            sync(spec(lock_wait_seconds=1), run_id="second")
    # the refused run is in sync_log, and wrote nothing
    [(status, mode, run_id, error, finished)] = target.query("SELECT status, mode, run_id, error, finished_at FROM sync_log")
    assert (status, mode, run_id) == ("failed", "incremental", "second") and finished is not None
    assert error.startswith("LockTimeout: 'datasync:sync:items' is already running against 'eng_tgt'")
    assert items(target) == []
    sync(spec(lock_wait_seconds=1))  # free again; the refused row is not taken for an abandoned run
    assert target.query("SELECT status FROM sync_log ORDER BY id") == [("failed",), ("success",)]
    assert [r[0] for r in items(target)] == [1]
