"""MySQL-family targets through LOAD DATA LOCAL INFILE (a staging table and one INSERT ... SELECT),
Postgres sources streamed as COPY csv into the load file, and MariaDB -> Postgres initial loads
COPYed straight into the empty target. Real PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from decimal import Decimal

import pytest

from datasync.db import connect, connected
from datasync.engine import RowsSource, SqlSource, SyncSpec, run_sync
from datasync.engine.state import read_cursor
from engine_fixtures import bookkept, create_items

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TIDB_SQL_MODE = ("ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
                 "ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION")

PG = """CREATE TABLE odd (
    id BIGINT PRIMARY KEY, note TEXT, label VARCHAR(40), doc JSONB, at TIMESTAMPTZ, plain TIMESTAMP, day DATE,
    amount NUMERIC(38,10), ratio DOUBLE PRECISION, flag BOOLEAN, big BIGINT, raw BYTEA, updated_at TIMESTAMPTZ NOT NULL)"""
MY = """CREATE TABLE odd (
    id BIGINT PRIMARY KEY, note LONGTEXT, label VARCHAR(40), doc JSON, at DATETIME(6), plain DATETIME(6), day DATE,
    amount DECIMAL(38,10), ratio DOUBLE, flag TINYINT(1), big BIGINT, raw LONGBLOB, updated_at DATETIME(6) NOT NULL)"""
COLS = ["id", "note", "label", "doc", "at", "plain", "day", "amount", "ratio", "flag", "big", "raw", "updated_at"]
TEXTS = [None, "", "NULL", "null", "\\N", "N", "a\tb", "a\nb", "a\rb", "a\r\nb", "back\\slash", "ends\\", "\\",
         'quote"d', '"', '\\"', "single'q", "comma,s", ",", "\f\v\b", "🚚 東京 – ü", "\\n not a newline", " spaced "]
DOCS = [{"a": [1, 2, {"b": "ü\n\t\"q\""}]}, [], [1, "x", None], "just a string", None, {}, 0, True]


def odd_rows(with_nul: bool = False) -> list[tuple]:
    rows = []
    for i, text in enumerate(TEXTS + (["nul\x00byte"] if with_nul else [])):
        doc = DOCS[i % len(DOCS)]
        rows.append((
            i + 1, text, None if text is None else text[:40], doc,
            T0 + dt.timedelta(microseconds=i * 1001) if i % 5 else None,
            dt.datetime(1999, 12, 31, 23, 59, 59, 999999) if i % 3 else None,
            dt.date(2000, 2, 29) if i % 4 else None,
            Decimal("-1234567890123456789012345678.0123456789") if i % 2 else Decimal("0.0000000001"),
            1.5e-300 if i % 2 else -0.0, bool(i % 2) if i % 7 else None,
            2**63 - 1 if i % 2 else -(2**63), (b"\x00\xff\t\n\"\\," + text.encode()) if text is not None else None,
            T0 + dt.timedelta(minutes=i),
        ))
    return rows


def load_odd(db, rows) -> None:
    conn = db.connect()
    cur = conn.cursor()
    for r in rows:
        r = list(r)
        r[3] = None if r[3] is None else json.dumps(r[3])
        if db.kind == "mysql":
            r[4] = r[4] and r[4].astimezone(UTC).replace(tzinfo=None)
            r[12] = r[12].astimezone(UTC).replace(tzinfo=None)
        cur.execute(f"INSERT INTO odd ({', '.join(COLS)}) VALUES ({', '.join(['%s'] * len(COLS))})", r)
    conn.close()


def landed_odd(db) -> list[tuple]:
    out = []
    for r in db.query(f"SELECT {', '.join(COLS)} FROM odd ORDER BY id"):
        r = list(r)
        r[3] = json.loads(r[3]) if db.kind == "mysql" and r[3] is not None else r[3]  # Postgres parses jsonb
        for i in (4, 12):
            r[i] = r[i] and (r[i] if r[i].tzinfo else r[i].replace(tzinfo=UTC))
        r[9] = None if r[9] is None else bool(r[9])
        r[11] = None if r[11] is None else bytes(r[11])
        out.append(tuple(r))
    return out


def loads_done(db) -> int:
    """The server's count of LOAD DATA statements so far (a test asserts it moved)."""
    return int(db.query("SELECT variable_value FROM information_schema.global_status WHERE variable_name = 'COM_LOAD'")[0][0])


@pytest.mark.parametrize("src_kind", ["postgres", "mysql"])
def test_awkward_values_round_trip_through_load_data(src_kind, database_factory, caplog):
    src = bookkept(database_factory(src_kind, "src"), "eng_src")
    tgt = bookkept(database_factory("mysql", "tgt"), "eng_tgt")
    src.query(PG if src_kind == "postgres" else MY)
    tgt.query(MY)
    rows = odd_rows(with_nul=src_kind == "mysql")  # Postgres text holds no NUL
    load_odd(src, rows)
    spec = SyncSpec(name="odd", target_table="odd", key=["id"], cursor_column="updated_at", batch_size=7)
    before = loads_done(tgt)
    with caplog.at_level(logging.INFO, logger="datasync"):
        first = run_sync(spec, SqlSource("eng_src", table="odd"), "eng_tgt", run_start=T0 + dt.timedelta(days=1))
    assert loads_done(tgt) - before >= math.ceil(len(rows) / 7), "every page went through LOAD DATA"
    assert "read as rows" not in caplog.text and "refused" not in caplog.text
    assert (first.counts.read, first.counts.inserted, first.counts.rejected) == (len(rows), len(rows), 0)
    assert landed_odd(tgt) == landed_odd(src) == rows
    # the same rows again (a full run re-reads all): nothing is rewritten
    again = run_sync(SyncSpec(name="odd_full", target_table="odd", key=["id"], mode="full", batch_size=7),
                     SqlSource("eng_src", table="odd"), "eng_tgt")
    assert (again.counts.inserted, again.counts.updated, again.counts.unchanged, again.counts.deleted) == (0, 0, len(rows), 0)
    assert landed_odd(tgt) == rows


def test_python_values_round_trip_through_load_data(my_target):
    my_target.query(MY)
    rows = odd_rows(with_nul=True)
    # a str in a JSON column is JSON text: JSON scalars are given as text
    given = [r[:3] + (r[3] if isinstance(r[3], (dict, list, type(None))) else json.dumps(r[3]),) + r[4:] for r in rows]
    result = run_sync(SyncSpec(name="odd", target_table="odd", key=["id"], mode="upsert", batch_size=10),
                      RowsSource(given, COLS), "eng_tgt")
    assert (result.counts.inserted, result.counts.rejected) == (len(rows), 0)
    assert landed_odd(my_target) == rows


def _counts(result) -> tuple:
    c = result.counts
    return c.read, c.inserted, c.updated, c.unchanged, c.duplicates, c.rejected


@pytest.mark.parametrize("dialect", ["mysql", "tidb"])
def test_counts_and_duplicates_match_the_insert_path(dialect, database_factory, caplog):
    """The same pages through LOAD DATA and through the INSERT path (LOCAL INFILE refused):
    the same counts, the same rows, the newest duplicate by the cursor (else the last) kept."""
    extra = f"dialect=tidb&sql_mode={TIDB_SQL_MODE}" if dialect == "tidb" else ""
    landed, counted = [], []
    for local_infile in (True, False):
        db = database_factory("mysql", "tgt")
        db.bind("eng_tgt", extra=extra)
        bookkept(db, "eng_tgt")
        db.bind("eng_tgt", extra=extra)
        create_items(db)
        db.query("INSERT INTO items (id, name, qty, price, updated_at) VALUES (1, 'same', 1, 1.00, %s), "
                 "(2, 'old', 1, 1.00, %s)", (T0.replace(tzinfo=None), T0.replace(tzinfo=None)))
        cols = ["id", "name", "qty", "price", "meta", "updated_at"]
        rows = [
            (1, "same", 1, Decimal("1.00"), None, T0),  # unchanged
            (2, "new", 2, Decimal("2.50"), {"k": [1]}, T0),  # updated
            (3, "older", 3, None, None, T0 - dt.timedelta(minutes=1)),
            (3, "newest", 3, None, None, T0 + dt.timedelta(minutes=1)),  # kept: the newest cursor
            (3, "oldest", 3, None, None, T0 - dt.timedelta(minutes=2)),
            (4, "first", 4, None, None, T0), (4, "last", 4, None, None, T0),  # a tie: the last one
            (5, "no cursor", 5, None, None, None), (5, "with cursor", 5, None, None, T0),
            (6, "fresh", 6, None, [], T0),
        ]
        target = connect("eng_tgt", local_infile=local_infile)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="datasync"):
            result = run_sync(SyncSpec(name="items", target_table="items", key=["id"], cursor_column="updated_at",
                                       mode="upsert", batch_size=100), RowsSource(rows, cols), "eng_tgt", target=target)
        target.close()
        refused = [r.getMessage() for r in caplog.records if "LOAD DATA LOCAL INFILE is refused" in r.getMessage()]
        assert len(refused) == (0 if local_infile else 1), refused
        assert local_infile or "local_infile" in refused[0]
        counted.append(_counts(result))
        landed.append(db.query("SELECT id, name, qty, price, meta FROM items ORDER BY id"))
    assert counted[0] == counted[1] == (10, 4, 1, 1, 4, 0)
    assert landed[0] == landed[1]
    assert [r[1] for r in landed[0]] == ["same", "new", "newest", "last", "with cursor", "fresh"]


def test_incremental_into_a_tidb_mode_target(pg_source, database_factory):
    """TiDB (here MariaDB under TiDB's sql_mode, treated as TiDB): staging table emptied with
    DELETE, never a LOAD straight into the target; pages, updates and a quiet rerun."""
    tgt = database_factory("mysql", "tidb")
    tgt.bind("eng_tgt", extra=f"dialect=tidb&sql_mode={TIDB_SQL_MODE}")
    bookkept(tgt, "eng_tgt")
    tgt.bind("eng_tgt", extra=f"dialect=tidb&sql_mode={TIDB_SQL_MODE}")
    create_items(pg_source)
    create_items(tgt)
    conn = pg_source.connect()
    with conn.cursor().copy("COPY items (id, name, qty, price, meta, updated_at) FROM STDIN") as copy:
        for i in range(1, 251):
            copy.write_row((i, f"n{i}", i, f"{i}.25", json.dumps({"i": i, "s": "a,\"b\"\n"}), T0 + dt.timedelta(seconds=i)))
    spec = SyncSpec(name="items", target_table="items", key=["id"], cursor_column="updated_at", batch_size=40,
                    lookback=dt.timedelta(seconds=30))
    before = loads_done(tgt)
    first = run_sync(spec, SqlSource("eng_src", table="items"), "eng_tgt", run_start=T0 + dt.timedelta(days=1))
    assert loads_done(tgt) - before >= 7
    assert (first.counts.read, first.counts.inserted) == (250, 250)
    conn.execute("UPDATE items SET qty = -1, updated_at = updated_at + interval '1 hour' WHERE id IN (10, 250)")
    second = run_sync(spec, SqlSource("eng_src", table="items"), "eng_tgt", run_start=T0 + dt.timedelta(days=1))
    assert (second.counts.updated, second.counts.inserted) == (2, 0)
    third = run_sync(spec, SqlSource("eng_src", table="items"), "eng_tgt", run_start=T0 + dt.timedelta(days=1))
    assert third.counts.inserted == third.counts.updated == 0 and third.counts.unchanged == third.counts.read
    conn.close()
    got = tgt.query("SELECT id, qty, meta FROM items ORDER BY id")
    assert len(got) == 250 and got[9][1] == -1 and got[249][1] == -1
    assert json.loads(got[0][2]) == {"i": 1, "s": "a,\"b\"\n"}


def test_a_value_the_server_only_warns_about_is_a_named_reject(my_target):
    """LOAD DATA turns a bad value into a warning: the page goes the slow path, which names it."""
    my_target.query("CREATE TABLE kinds (id BIGINT PRIMARY KEY, kind ENUM('car','van') NOT NULL, n INT)")
    rows = [(1, "car", 1), (2, "ship", 2), (3, "van", 3)]
    result = run_sync(SyncSpec(name="kinds", target_table="kinds", key=["id"], mode="upsert", max_rejects=5),
                      RowsSource(rows, ["id", "kind", "n"]), "eng_tgt")
    assert (result.counts.inserted, result.counts.rejected) == (2, 1)
    assert my_target.query("SELECT id, kind FROM kinds ORDER BY id") == [(1, "car"), (3, "van")]
    [(key, column, reason)] = my_target.query("SELECT row_key, column_name, reason FROM sync_rejects")
    assert (key, column) == ("2", "kind") and "kind" in reason and "_ds_stage" not in reason


def test_a_bad_value_in_a_postgres_page_reads_the_page_as_rows(pg_source, my_target):
    """COPY csv cannot say which row is bad: the page is read as rows and the bad one is named."""
    pg_source.query("CREATE TABLE vals (id BIGINT PRIMARY KEY, ratio DOUBLE PRECISION, note TEXT)")
    my_target.query("CREATE TABLE vals (id BIGINT PRIMARY KEY, ratio DOUBLE, note TEXT)")
    pg_source.query("INSERT INTO vals VALUES (1, 0.5, 'a'), (2, 'NaN', 'b'), (3, '-Infinity', 'c'), (4, 1e300, 'd')")
    result = run_sync(SyncSpec(name="vals", target_table="vals", key=["id"], mode="full", max_rejects=5),
                      SqlSource("eng_src", table="vals"), "eng_tgt")
    assert (result.counts.inserted, result.counts.rejected) == (2, 2)
    assert my_target.query("SELECT id, ratio FROM vals ORDER BY id") == [(1, 0.5), (4, 1e300)]
    assert dict((k, (c, r)) for k, c, r in my_target.query("SELECT row_key, column_name, reason FROM sync_rejects")) == {
        "2": ("ratio", "not a finite number (NaN)"), "3": ("ratio", "not a finite number (-Infinity)")}


# ---- MariaDB -> Postgres: an initial load COPYs straight into the empty target -------------------
def _record_statements(pg, table: str = "items"):
    """Each INSERT statement on ``table`` notes how it came (COPY or INSERT ... SELECT from the stage)."""
    pg.query("CREATE TABLE seen_statements (kind TEXT)")
    pg.query("CREATE FUNCTION note_statement() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             "INSERT INTO seen_statements VALUES (split_part(ltrim(current_query()), ' ', 1)); RETURN NULL; END $$")
    pg.query(f"CREATE TRIGGER note_statement AFTER INSERT ON {table} FOR EACH STATEMENT EXECUTE FUNCTION note_statement()")


def _fill_mysql_items(my, n: int, bad: int | None = None) -> None:
    conn = my.connect()
    cur = conn.cursor()
    cur.executemany("INSERT INTO items (id, name, qty, price, meta, updated_at) VALUES (%s, %s, %s, %s, %s, %s)",
                    [(i, "x\x00y" if i == bad else f"n{i}", i, f"{i}.50", json.dumps({"i": i}),
                      (T0 + dt.timedelta(seconds=i)).replace(tzinfo=None)) for i in range(1, n + 1)])
    conn.close()


def test_mariadb_to_empty_postgres_copies_straight_in(my_source, pg_target):
    create_items(my_source)
    create_items(pg_target)
    _record_statements(pg_target)
    _fill_mysql_items(my_source, 120)
    spec = SyncSpec(name="items", target_table="items", key=["id"], cursor_column="updated_at", batch_size=50)
    result = run_sync(spec, SqlSource("eng_src", table="items"), "eng_tgt", run_start=T0 + dt.timedelta(days=1))
    assert (result.counts.read, result.counts.inserted) == (120, 120)
    assert pg_target.query("SELECT kind, count(*) FROM seen_statements GROUP BY kind") == [("COPY", 3)]
    assert pg_target.query("SELECT count(*), sum(qty), min(updated_at) FROM items") == [(120, 7260, T0 + dt.timedelta(seconds=1))]
    assert pg_target.query("SELECT meta FROM items WHERE id = 7") == [({"i": 7},)]


@pytest.mark.parametrize("sql_mode", ["", "NO_BACKSLASH_ESCAPES"])
def test_awkward_values_copy_straight_from_mariadb_into_empty_postgres(sql_mode, my_source, pg_target, caplog):
    """The source spells COPY text lines itself: tabs, line ends and backslashes escaped the same
    whatever the session's sql_mode says about backslashes in string literals."""
    my_source.query(MY)
    pg_target.query(PG)
    if sql_mode:
        my_source.bind("eng_src", extra=f"sql_mode={sql_mode}")
    rows = odd_rows()
    load_odd(my_source, rows)
    _record_statements(pg_target, "odd")
    with caplog.at_level(logging.INFO, logger="datasync"):
        result = run_sync(SyncSpec(name="odd", target_table="odd", key=["id"], cursor_column="updated_at", batch_size=7),
                          SqlSource("eng_src", table="odd"), "eng_tgt", run_start=T0 + dt.timedelta(days=1))
    assert "read as rows" not in caplog.text
    assert (result.counts.read, result.counts.inserted, result.counts.rejected) == (len(rows), len(rows), 0)
    assert pg_target.query("SELECT DISTINCT kind FROM seen_statements") == [("COPY",)]
    assert landed_odd(pg_target) == rows


@pytest.mark.parametrize("case", ["not empty", "bad row"])
def test_mariadb_to_postgres_goes_through_the_stage_when_straight_copy_cannot(case, my_source, pg_target):
    create_items(my_source)
    create_items(pg_target)
    _fill_mysql_items(my_source, 120, bad=70 if case == "bad row" else None)
    if case == "not empty":
        pg_target.query("INSERT INTO items (id, name, updated_at) VALUES (5, 'stale', '2000-01-01')")
    _record_statements(pg_target)
    spec = SyncSpec(name="items", target_table="items", key=["id"], cursor_column="updated_at", batch_size=50,
                    max_rejects=5)
    result = run_sync(spec, SqlSource("eng_src", table="items"), "eng_tgt", run_start=T0 + dt.timedelta(days=1))
    kinds = dict(pg_target.query("SELECT kind, count(*) FROM seen_statements GROUP BY kind"))
    if case == "not empty":
        assert (result.counts.inserted, result.counts.updated) == (119, 1)
        assert kinds == {"WITH": 3}  # stage + merge, every page
        assert pg_target.query("SELECT name FROM items WHERE id = 5") == [("n5",)]
    else:
        assert (result.counts.inserted, result.counts.rejected) == (119, 1)
        assert kinds == {"COPY": 1, "WITH": 2}  # page 1 straight in; page 2 failed there, staged from then on
        assert pg_target.query("SELECT row_key, column_name FROM sync_rejects") == [("70", "name")]
    assert pg_target.query("SELECT count(*) FROM items") == [(120 if case == "not empty" else 119,)]


def test_source_connections_never_allow_local_infile(my_source, tmp_path):
    """With LOCAL INFILE on, a server may ask the client for any file: only targets get it."""
    import MySQLdb

    (tmp_path / "f.csv").write_text("1\n")
    my_source.query("CREATE TABLE one (id INT)")
    db = SqlSource("eng_src", table="one").open()
    try:
        with pytest.raises(MySQLdb.OperationalError) as refused:
            db.execute(f"LOAD DATA LOCAL INFILE '{tmp_path / 'f.csv'}' INTO TABLE one")
        assert refused.value.args[0] in (1148, 2068, 3948, 4166)
    finally:
        db.close()


# ---- SIGKILL mid-page on the LOAD DATA path -------------------------------------------------------
CRASH_ROWS = 3000
WORKER = r"""
import datetime as dt
from datasync.engine import SqlSource, SyncSpec, run_sync
run_sync(SyncSpec(name="items", target_table="items", key=["id"], cursor_column="updated_at", batch_size=500),
         SqlSource("eng_src", table="items"), "eng_tgt", run_start=dt.datetime(2026, 4, 1, tzinfo=dt.timezone.utc))
"""


# Mid third page of an initial load (LOAD straight into the empty target, on the run's own
# connection while the fourth loads on a second one), mid fourth page (on the second connection,
# the third committed); inside the last page when the target already holds rows (staging table +
# INSERT ... SELECT).
@pytest.mark.parametrize("stall_at,preloaded", [(1250, False), (1750, False), (2999, True)])
def test_sigkill_mid_load_page_then_rerun_converges(pg_source, my_target, stall_at, preloaded):
    import os
    import signal
    import subprocess
    import sys
    import time

    from harness import REPO

    for db in (pg_source, my_target):
        create_items(db)
    conn = pg_source.connect()
    with conn.cursor().copy("COPY items (id, name, qty, price, meta, updated_at) FROM STDIN") as copy:
        for i in range(1, CRASH_ROWS + 1):
            copy.write_row((i, f"n{i}", i % 7, f"{i}.25", '{"i": %d}' % i, T0 + dt.timedelta(seconds=i // 3)))
    conn.close()
    if preloaded:
        my_target.query("INSERT INTO items (id, name, updated_at) VALUES (1, 'stale', '2000-01-01')")
    # the target's insert of one row sleeps: the worker is then inside an uncommitted page
    my_target.query(f"CREATE TRIGGER stall BEFORE INSERT ON items FOR EACH ROW "
                    f"BEGIN IF NEW.id = {stall_at} THEN SET @slept = SLEEP(60); END IF; END")
    proc = subprocess.Popen([sys.executable, "-c", WORKER], env=dict(os.environ, PYTHONPATH=str(REPO / "plugins")),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sleeper = None
    try:
        deadline = time.monotonic() + 60
        while sleeper is None and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            found = my_target.query("SELECT id FROM information_schema.processlist WHERE db = %s AND state = 'User sleep'",
                                    (my_target.name,))
            sleeper = found[0][0] if found else None
            time.sleep(0.2)
        assert sleeper is not None, "the worker never reached the stalled row"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    my_target.query(f"KILL {int(sleeper)}")  # its session would sleep on, holding the sync's lock
    deadline = time.monotonic() + 30
    while my_target.query("SELECT count(*) FROM information_schema.processlist WHERE id = %s", (sleeper,))[0][0]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    landed = my_target.query("SELECT count(*) FROM items WHERE name <> 'stale'")[0][0]
    assert 0 < landed < CRASH_ROWS and landed % 500 == 0, "only whole pages commit"
    with connected("eng_tgt") as db:
        pos = read_cursor(db, "items")
    have = {r[0] for r in my_target.query("SELECT id FROM items WHERE name <> 'stale'")}
    covered = {i for i in range(1, CRASH_ROWS + 1) if T0 + dt.timedelta(seconds=i // 3) < pos.value}
    assert covered <= have, f"cursor {pos.value} is ahead of the data"

    my_target.query("DROP TRIGGER stall")
    result = run_sync(SyncSpec(name="items", target_table="items", key=["id"], cursor_column="updated_at", batch_size=500),
                      SqlSource("eng_src", table="items"), "eng_tgt", run_start=dt.datetime(2026, 4, 1, tzinfo=UTC))
    assert result.counts.inserted == CRASH_ROWS - landed
    cols = "id, name, qty, price, updated_at"
    assert my_target.query(f"SELECT {cols} FROM items ORDER BY id") == [
        (i, n, q, p, u.replace(tzinfo=None)) for i, n, q, p, u in pg_source.query(f"SELECT {cols} FROM items ORDER BY id")]
    assert [s for (s,) in my_target.query("SELECT status FROM sync_log ORDER BY id")] == ["failed", "success"]


# ---- an initial load loads pages side by side on two connections ----------------------------------
def _fill_pg_items(pg, n: int, nan_at: int | None = None) -> None:
    pg.query("CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, ratio DOUBLE PRECISION, "
             "updated_at TIMESTAMPTZ NOT NULL)")
    conn = pg.connect()
    with conn.cursor().copy("COPY items (id, name, ratio, updated_at) FROM STDIN") as copy:
        for i in range(1, n + 1):
            copy.write_row((i, f"n{i}", float("nan") if i == nan_at else i / 4, T0 + dt.timedelta(seconds=i)))
    conn.close()


def _note_connections(my) -> None:
    """Every row the target takes notes the connection that inserted it."""
    my.query("CREATE TABLE took (id BIGINT PRIMARY KEY, conn BIGINT NOT NULL)")
    my.query("CREATE TRIGGER took AFTER INSERT ON items FOR EACH ROW INSERT INTO took VALUES (NEW.id, CONNECTION_ID())")


def _sessions(my) -> int:
    return my.query("SELECT count(*) FROM information_schema.processlist WHERE db = %s", (my.name,))[0][0]


PAIRED_SPEC = dict(name="items", target_table="items", key=["id"], cursor_column="updated_at", batch_size=250)


@pytest.mark.parametrize("connections", [2, 1])
def test_initial_load_pages_take_turns_on_the_load_connections(pg_source, my_target, connections, caplog):
    _fill_pg_items(pg_source, 2000)
    my_target.query("CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, ratio DOUBLE, "
                    "updated_at DATETIME(6) NOT NULL, KEY items_cursor (updated_at, id))")
    _note_connections(my_target)
    idle = _sessions(my_target)
    result = run_sync(SyncSpec(**PAIRED_SPEC, load_connections=connections), SqlSource("eng_src", table="items"),
                      "eng_tgt", run_start=dt.datetime(2026, 4, 1, tzinfo=UTC))
    assert (result.counts.inserted, result.details.get("load_connections")) == (2000, 2 if connections == 2 else None)
    assert my_target.query("SELECT id, name, ratio FROM items ORDER BY id") == [(i, f"n{i}", i / 4) for i in range(1, 2001)]
    # each page of 250 rows from one connection, the pages taking turns on two
    by_page = [{c for (c,) in my_target.query("SELECT DISTINCT conn FROM took WHERE id BETWEEN %s AND %s",
                                               (p * 250 + 1, p * 250 + 250))} for p in range(8)]
    assert all(len(c) == 1 for c in by_page) and len(set.union(*by_page)) == connections
    if connections == 2:
        assert all(by_page[p] != by_page[p + 1] for p in range(7))
    with connected("eng_tgt") as db:
        assert read_cursor(db, "items").value.replace(tzinfo=UTC) == T0 + dt.timedelta(seconds=2000)
    assert _sessions(my_target) == idle, "the second connection is closed"
    assert not any(r.levelno >= logging.WARNING for r in caplog.records)


@pytest.mark.parametrize("nan_at", [1100, 1400], ids=["own-connection-page", "second-connection-page"])
def test_a_bad_value_while_loading_side_by_side_goes_on_one_page_at_a_time(pg_source, my_target, nan_at, caplog):
    """Pages of 250: 1001-1250 load on the run's connection, 1251-1500 on the second, at once. A bad
    value in either rolls both back; from there pages go one at a time and the bad row is named."""
    caplog.set_level(logging.INFO, logger="datasync")
    _fill_pg_items(pg_source, 2000, nan_at=nan_at)
    my_target.query("CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, ratio DOUBLE, "
                    "updated_at DATETIME(6) NOT NULL, KEY items_cursor (updated_at, id))")
    result = run_sync(SyncSpec(**PAIRED_SPEC, max_rejects=1), SqlSource("eng_src", table="items"), "eng_tgt",
                      run_start=dt.datetime(2026, 4, 1, tzinfo=UTC))
    assert (result.counts.inserted, result.counts.rejected, result.counts.read) == (1999, 1, 2000)
    assert my_target.query("SELECT id, name, ratio FROM items ORDER BY id") == [
        (i, f"n{i}", i / 4) for i in range(1, 2001) if i != nan_at]
    assert my_target.query("SELECT row_key, column_name FROM sync_rejects") == [(str(nan_at), "ratio")]
    assert any("one page at a time from here" in r.getMessage() for r in caplog.records)
    assert my_target.query("SELECT status, rows_inserted, rows_rejected FROM sync_log") == [("success", 1999, 1)]


def test_without_a_second_connection_the_initial_load_goes_one_page_at_a_time(pg_source, my_target, caplog):
    """A target account allowed one connection (max_user_connections): the second one is refused,
    the page loading meanwhile rolls back, and every page goes in on the run's own connection."""
    import os
    import uuid

    import MySQLdb

    from harness import MY_HOST, MY_PASSWORD, MY_PORT, MY_USER

    caplog.set_level(logging.INFO, logger="datasync")
    _fill_pg_items(pg_source, 1000)
    my_target.query("CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, ratio DOUBLE, "
                    "updated_at DATETIME(6) NOT NULL, KEY items_cursor (updated_at, id))")
    _note_connections(my_target)
    user = f"one_{uuid.uuid4().hex[:8]}"
    admin = MySQLdb.connect(host=MY_HOST, port=MY_PORT, user=MY_USER, password=MY_PASSWORD)
    try:
        cur = admin.cursor()
        cur.execute(f"CREATE USER '{user}'@'%' WITH MAX_USER_CONNECTIONS 1")
        cur.execute(f"GRANT ALL ON `{my_target.name}`.* TO '{user}'@'%'")
        os.environ["AIRFLOW_CONN_ENG_TGT_ONE"] = f"mysql://{user}@{MY_HOST}:{MY_PORT}/{my_target.name}"
        result = run_sync(SyncSpec(**PAIRED_SPEC), SqlSource("eng_src", table="items"), "eng_tgt_one",
                          run_start=dt.datetime(2026, 4, 1, tzinfo=UTC))
    finally:
        os.environ.pop("AIRFLOW_CONN_ENG_TGT_ONE", None)
        admin.cursor().execute(f"DROP USER IF EXISTS '{user}'@'%'")
        admin.close()
    assert (result.counts.inserted, result.counts.read, result.details.get("load_connections")) == (1000, 1000, None)
    assert my_target.query("SELECT id, name, ratio FROM items ORDER BY id") == [(i, f"n{i}", i / 4) for i in range(1, 1001)]
    assert my_target.query("SELECT count(DISTINCT conn) FROM took") == [(1,)]
    [stopped] = [r.getMessage() for r in caplog.records if "pages at once stopped" in r.getMessage()]
    assert "max_user_connections" in stopped and "one page at a time from here" in stopped
    assert my_target.query("SELECT status, rows_inserted FROM sync_log") == [("success", 1000)]
