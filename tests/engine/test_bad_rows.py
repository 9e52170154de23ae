"""Bad rows are always named and kept: every row the engine counts as rejected is in
``sync_rejects`` (key, column, value, reason), stored JSON-safely, whatever the value was;
duplicate keys in one page are counted and logged. Real PostgreSQL and MariaDB. (A run refused
by its lock: tests/engine/test_sync.py.)"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from decimal import Decimal

import pytest

from datasync.db import connected
from datasync.engine import RowsSource, SyncSpec, run_sync
from datasync.engine import state
from datasync.engine.state import Reject
from engine_fixtures import bookkept

KINDS = ["postgres", "mysql"]
COLS = ["id", "big", "amount", "wide", "ratio", "doc", "note", "label"]
PG = """CREATE TABLE vals (id BIGINT PRIMARY KEY, big BIGINT, amount NUMERIC(12,2), wide NUMERIC(40,0),
    ratio DOUBLE PRECISION, doc JSONB, note TEXT, label VARCHAR(20))"""
MY = """CREATE TABLE vals (id BIGINT PRIMARY KEY, big BIGINT, amount DECIMAL(12,2), wide DECIMAL(40,0),
    ratio DOUBLE, doc JSON, note LONGTEXT, label VARCHAR(20))"""
HUGE = 2**70
NUL_TEXT = "contains a NUL byte, which PostgreSQL text cannot store"


@pytest.fixture(params=KINDS)
def tgt(request, database_factory):
    db = bookkept(database_factory(request.param, "bad"), "eng_tgt")
    db.query(PG if db.kind == "postgres" else MY)
    return db


def row(id_: int, **values) -> tuple:
    return tuple([id_] + [values.get(c) for c in COLS[1:]])


def load(rows, name: str = "vals", **kw):
    spec = SyncSpec(name=name, target_table="vals", key=["id"], mode="upsert", max_rejects=100, batch_size=100, **kw)
    return run_sync(spec, RowsSource(rows, COLS), "eng_tgt", run_id="run-1")


def rejects(db) -> dict:
    """{key: (column, value, reason, row_data)} as stored, row_data parsed back from its JSON."""
    out = {}
    for key, column, value, reason, data in db.query(
            "SELECT row_key, column_name, value, reason, row_data FROM sync_rejects ORDER BY id"):
        key = json.loads(key)
        out[tuple(key) if isinstance(key, list) else key] = (
            column, value, reason, data if isinstance(data, (dict, type(None))) else json.loads(data))
    return out


def landed(db) -> list[int]:
    return [r[0] for r in db.query("SELECT id FROM vals ORDER BY id")]


def assert_all_kept(db, result) -> None:
    """Nothing counted as rejected is missing from sync_rejects, and the run log agrees."""
    assert db.query("SELECT count(*) FROM sync_rejects") == [(result.counts.rejected,)]
    assert db.query("SELECT status, rows_rejected FROM sync_log ORDER BY id DESC LIMIT 1") == [("success", result.counts.rejected)]


# ---- non-finite numbers --------------------------------------------------------------------------
def test_nan_and_infinities_are_named_rejects_stored_as_text(tgt):
    rows = [
        row(1, big=1),
        row(2, big=math.nan),
        row(3, big=-math.inf),
        row(4, amount=math.inf),
        row(5, amount=Decimal("-Infinity")),
        row(6, doc={"reading": math.nan}),
        row(7, note="fine"),
    ]
    result = load(rows)
    assert (result.counts.inserted, result.counts.rejected) == (2, 5)
    assert landed(tgt) == [1, 7]
    got = rejects(tgt)
    assert {k: v[:3] for k, v in got.items()} == {
        2: ("big", "NaN", "not a finite number (NaN)"),
        3: ("big", "-Infinity", "not a finite number (-Infinity)"),
        4: ("amount", "Infinity", "not a finite number (Infinity)"),
        5: ("amount", "-Infinity", "not a finite number (-Infinity)"),
        6: ("doc", '{"reading": "NaN"}', "not valid JSON: NaN cannot be stored in JSON"),
    }
    # the whole row is kept, JSON-safely: the non-finite numbers as strings
    assert got[2][3]["big"] == "NaN" and got[3][3]["big"] == "-Infinity" and got[4][3]["amount"] == "Infinity"
    assert got[6][3]["doc"] == {"reading": "NaN"}
    assert_all_kept(tgt, result)


def test_nan_in_a_float_column_is_stored_where_the_server_can_hold_it(tgt):
    result = load([row(1, ratio=math.nan), row(2, ratio=math.inf), row(3, ratio=0.5)])
    if tgt.kind == "postgres":  # double precision holds NaN and the infinities
        assert (result.counts.inserted, result.counts.rejected) == (3, 0)
        stored = dict(tgt.query("SELECT id, ratio FROM vals"))
        assert math.isnan(stored[1]) and stored[2] == math.inf
    else:  # MariaDB's DOUBLE cannot
        assert (result.counts.inserted, result.counts.rejected) == (1, 2)
        assert {k: v[:3] for k, v in rejects(tgt).items()} == {
            1: ("ratio", "NaN", "not a finite number (NaN)"),
            2: ("ratio", "Infinity", "not a finite number (Infinity)"),
        }
    assert_all_kept(tgt, result)


# ---- integers past what a column (or JSON) holds -------------------------------------------------
def test_huge_integer_into_bigint_is_rejected_and_kept_as_text(tgt):
    result = load([row(1, big=2**63 - 1), row(2, big=HUGE), row(3, big=-(2**63) - 1)])
    assert (result.counts.inserted, result.counts.rejected) == (1, 2)
    got = rejects(tgt)
    assert got[2][:3] == ("big", str(HUGE), "out of range for bigint")
    assert got[3][:3] == ("big", str(-(2**63) - 1), "out of range for bigint")
    # past 2**53 a JSON number is rounded by most readers: row_data keeps it as exact text
    assert got[2][3]["big"] == str(HUGE) and got[2][3]["id"] == 2
    assert tgt.query("SELECT big FROM vals") == [(2**63 - 1,)]
    assert_all_kept(tgt, result)


def test_huge_integer_lands_in_numeric_and_json_exactly_and_is_named_where_it_cannot(tgt):
    result = load([row(1, wide=HUGE, doc={"n": HUGE}), row(2, amount=HUGE), row(3, amount=Decimal("9999999999.99"))])
    assert (result.counts.inserted, result.counts.rejected) == (2, 1)
    assert {k: v[:3] for k, v in rejects(tgt).items()} == {
        2: ("amount", str(HUGE), f"out of range for {'numeric' if tgt.kind == 'postgres' else 'decimal'}(12,2): "
                                 "at most 10 digit(s) before the point"),
    }
    wide, doc = tgt.query("SELECT wide, doc FROM vals WHERE id = 1")[0]
    assert wide == HUGE
    assert (doc if isinstance(doc, dict) else json.loads(doc)) == {"n": HUGE}
    assert_all_kept(tgt, result)


# ---- NUL bytes -----------------------------------------------------------------------------------
def test_nul_byte_in_text_is_a_named_reject_on_postgres_and_stored_on_mariadb(tgt):
    rows = [row(1, note="before"), row(2, note="a\x00b"), row(3, label="x\x00"), row(4, note="after")]
    result = load(rows)
    if tgt.kind == "postgres":
        assert (result.counts.inserted, result.counts.rejected) == (2, 2)
        got = rejects(tgt)
        assert got[2][:3] == ("note", "a\\u0000b", NUL_TEXT)
        assert got[3][:3] == ("label", "x\\u0000", NUL_TEXT)
        assert got[2][3] == {"id": 2, "big": None, "amount": None, "wide": None, "ratio": None, "doc": None,
                             "note": "a\\u0000b", "label": None}
        assert landed(tgt) == [1, 4]
    else:  # MariaDB text holds any byte: the value lands unchanged
        assert (result.counts.inserted, result.counts.rejected) == (4, 0)
        assert dict(tgt.query("SELECT id, note FROM vals WHERE id = 2")) == {2: "a\x00b"}
        assert dict(tgt.query("SELECT id, label FROM vals WHERE id = 3")) == {3: "x\x00"}
    assert_all_kept(tgt, result)


def test_nul_in_a_json_value(tgt):
    result = load([row(1, doc={"k": "v\x00w", "list": ["\x00"]}), row(2, doc={"k": "plain"})])
    if tgt.kind == "postgres":  # jsonb cannot hold \u0000
        assert (result.counts.inserted, result.counts.rejected) == (1, 1)
        column, value, reason, data = rejects(tgt)[1]
        assert (column, reason) == ("doc", "contains a NUL character (\\u0000), which PostgreSQL jsonb cannot store")
        assert json.loads(value) == {"k": "v\\u0000w", "list": ["\\u0000"]}
        assert data["doc"] == {"k": "v\\u0000w", "list": ["\\u0000"]}
    else:
        assert (result.counts.inserted, result.counts.rejected) == (2, 0)
        assert json.loads(tgt.query("SELECT doc FROM vals WHERE id = 1")[0][0]) == {"k": "v\x00w", "list": ["\x00"]}
    assert_all_kept(tgt, result)


def test_lone_surrogate_is_a_named_reject(tgt):
    result = load([row(1, note="ok"), row(2, note="half \ud800 a pair")])
    assert (result.counts.inserted, result.counts.rejected) == (1, 1)
    column, value, reason, data = rejects(tgt)[2]
    assert (column, value, reason) == ("note", "half \\ud800 a pair", "not valid Unicode text (a lone surrogate)")
    assert data["note"] == "half \\ud800 a pair"
    assert_all_kept(tgt, result)


# ---- what a reject may carry ---------------------------------------------------------------------
def test_rejects_with_any_python_value_are_stored_json_safely(tgt):
    stamp = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.timezone.utc)
    odd = [
        Reject("vals", 1, "big", b"\x00\xffraw", "bytes", {"blob": b"\x00\xff", "at": stamp}),
        Reject("vals", 2, "note", stamp, "a datetime", {"day": dt.date(2026, 3, 1), "at": stamp}),
        Reject("vals", [3, "a\x00"], "doc", {"deep": {"n": [math.nan, HUGE, math.inf, "\x00", b"b"]}}, "nested",
               {"doc": {"deep": {"n": [math.nan, HUGE, -math.inf]}}, "d": Decimal("1.50"), "s": {1}}),
        Reject("vals", 4, None, None, "reason with a NUL \x00", {}),
    ]
    with connected("eng_tgt") as db:
        state.write_rejects(db, "odd", "run-1", odd)
        db.commit()
    got = rejects(tgt)
    assert got[1][:3] == ("big", "b'\\x00\\xffraw'", "bytes")
    assert got[1][3] == {"blob": "b'\\x00\\xff'", "at": "2026-03-01T12:30:00+00:00"}
    assert got[2][:3] == ("note", "2026-03-01T12:30:00+00:00", "a datetime")
    assert got[2][3] == {"day": "2026-03-01", "at": "2026-03-01T12:30:00+00:00"}
    column, value, reason, data = got[(3, "a\\u0000")]
    assert (column, reason) == ("doc", "nested")
    assert json.loads(value) == {"deep": {"n": ["NaN", str(HUGE), "Infinity", "\\u0000", "b'b'"]}}
    assert data == {"doc": {"deep": {"n": ["NaN", str(HUGE), "-Infinity"]}}, "d": "1.50", "s": [1]}
    assert got[4] == (None, None, "reason with a NUL \\u0000", {})
    assert tgt.query("SELECT count(*) FROM sync_rejects") == [(4,)]


def test_a_reject_the_table_cannot_take_whole_is_kept_in_a_safe_form(tgt):
    # Fault injection: this sync_rejects refuses any row_data longer than 200 characters.
    tgt.query("ALTER TABLE sync_rejects ADD CONSTRAINT row_data_small CHECK (char_length(row_data) < 200)"
              if tgt.kind == "mysql" else
              "ALTER TABLE sync_rejects ADD CONSTRAINT row_data_small CHECK (length(row_data::text) < 200)")
    result = load([row(1, big=HUGE, note="n" * 500), row(2, big=1)])
    assert (result.counts.inserted, result.counts.rejected) == (1, 1)
    [(key, column, value, reason, data)] = tgt.query("SELECT row_key, column_name, value, reason, row_data FROM sync_rejects")
    assert (key, column, value, data) == ("1", "big", str(HUGE), None)
    assert reason.startswith("out of range for bigint (the row itself could not be stored: ")
    assert_all_kept(tgt, result)


# ---- duplicate keys --------------------------------------------------------------------------------
def test_duplicate_keys_in_one_page_are_counted_logged_and_recorded(tgt, caplog):
    rows = [row(1, note="first"), row(2, note="x"), row(1, note="second"), row(3, note="y"), row(1, note="third"),
            row(3, note="z")]
    with caplog.at_level(logging.INFO, logger="datasync.engine"):
        result = load(rows)
    assert (result.counts.read, result.counts.inserted, result.counts.duplicates) == (6, 3, 3)
    assert tgt.query("SELECT note FROM vals WHERE id = 1") == [("third",)]  # the last one wins
    [(details,)] = tgt.query("SELECT details FROM sync_log")
    assert (details if isinstance(details, dict) else json.loads(details))["duplicates"] == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("vals: 3 row(s) repeated a key already in the same page" in m and "key 1 (3 times)" in m
               and "key 3 (2 times)" in m for m in warnings), warnings
    assert "3 duplicate keys merged" in caplog.text
    assert_all_kept(tgt, result)


# ---- rejects of work that rolled back --------------------------------------------------------------
def test_rejects_of_a_rolled_back_full_run_are_still_kept(tgt):
    """A full run is one transaction: when a later page fails, the rows roll back, the rejects
    the run counted stay in sync_rejects."""
    def rows():
        yield row(1, big=1)
        yield row(2, big=HUGE)  # page 1: one reject, within max_rejects
        yield row(3, big=3)
        raise ConnectionError("source went away mid-read")

    spec = SyncSpec(name="vals", target_table="vals", key=["id"], mode="full", max_rejects=5, batch_size=2)
    with pytest.raises(ConnectionError):
        run_sync(spec, RowsSource(rows(), COLS), "eng_tgt", run_id="run-1")
    assert landed(tgt) == []
    assert tgt.query("SELECT status, rows_rejected FROM sync_log") == [("failed", 1)]
    assert {k: v[:3] for k, v in rejects(tgt).items()} == {2: ("big", str(HUGE), "out of range for bigint")}


def test_rejects_of_every_page_are_kept_when_a_full_run_passes_max_rejects(tgt):
    from datasync.engine import RejectThresholdExceeded

    rows = [row(1, big=HUGE), row(2, big=2), row(3, big=-HUGE), row(4, big=4)]
    spec = SyncSpec(name="vals", target_table="vals", key=["id"], mode="full", max_rejects=1, batch_size=2)
    with pytest.raises(RejectThresholdExceeded, match="2 row"):
        run_sync(spec, RowsSource(rows, COLS), "eng_tgt", run_id="run-1")
    assert landed(tgt) == []
    assert sorted(rejects(tgt)) == [1, 3]
    assert tgt.query("SELECT status, rows_rejected FROM sync_log") == [("failed", 2)]
