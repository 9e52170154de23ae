"""Values keep their meaning across Postgres <-> MariaDB: numbers, JSON, time, booleans, UUIDs, text."""

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest

from datasync.engine import SqlSource, SyncSpec, run_sync
from engine_fixtures import bookkept

PG = """CREATE TABLE typed (
    id BIGINT PRIMARY KEY, big BIGINT, amount NUMERIC(20,6), doc JSONB, doc_json JSON,
    at_utc TIMESTAMPTZ, at_local TIMESTAMP, day DATE, flag BOOLEAN, ref UUID, note TEXT, label VARCHAR(50),
    updated_at TIMESTAMPTZ NOT NULL)"""
MY = """CREATE TABLE typed (
    id BIGINT PRIMARY KEY, big BIGINT, amount DECIMAL(20,6), doc JSON, doc_json JSON,
    at_utc DATETIME(6), at_local DATETIME(6), day DATE, flag TINYINT(1), ref CHAR(36), note LONGTEXT, label VARCHAR(50),
    updated_at DATETIME(6) NOT NULL)"""
COLS = "id, big, amount, doc, doc_json, at_utc, at_local, day, flag, ref, note, label, updated_at"
UTC = dt.timezone.utc
REF = uuid.UUID("6f1c5b8e-3d1a-4c55-9a8e-0b2f7c1d9e44")
LONG = "Ω≈ç√ " * 20000  # 100k characters of unicode
ROWS = [
    (1, 9007199254740993, Decimal("123456789.123456"), {"a": [1, 2, {"b": "ü"}]}, {"x": None},
     dt.datetime(2026, 1, 31, 16, 59, 59, 123456, tzinfo=UTC), dt.datetime(2026, 1, 31, 23, 59, 59),
     dt.date(2026, 2, 1), True, REF, LONG, "Jalan Sudirman – 東京 🚚", dt.datetime(2026, 2, 1, tzinfo=UTC)),
    (2, None, None, None, None, None, None, None, None, None, None, None, dt.datetime(2026, 2, 1, tzinfo=UTC)),
    (3, -1, Decimal("-0.000001"), [], {}, dt.datetime(1999, 12, 31, tzinfo=UTC), dt.datetime(2000, 1, 1),
     dt.date(2000, 2, 29), False, uuid.UUID(int=0), "", "", dt.datetime(2026, 2, 1, tzinfo=UTC)),
]


def _load(db, rows):
    conn = db.connect()
    cur = conn.cursor()
    for r in rows:
        r = list(r)
        for i in (3, 4):
            r[i] = None if r[i] is None else json.dumps(r[i])
        if db.kind == "mysql":
            r[5] = r[5] and r[5].replace(tzinfo=None)
            r[12] = r[12].replace(tzinfo=None)
            r[9] = r[9] and str(r[9])
        cur.execute(f"INSERT INTO typed ({COLS}) VALUES ({', '.join(['%s'] * 13)})", r)
    conn.close()


def _normalised(db):
    out = []
    for r in db.query(f"SELECT {COLS} FROM typed ORDER BY id"):
        r = list(r)
        for i in (3, 4):
            r[i] = json.loads(r[i]) if isinstance(r[i], str) else r[i]
        for i in (5, 12):
            r[i] = r[i] and (r[i] if r[i].tzinfo else r[i].replace(tzinfo=UTC))
        r[8] = None if r[8] is None else bool(r[8])
        r[9] = r[9] and uuid.UUID(str(r[9]))
        out.append(tuple(r))
    return out


@pytest.mark.parametrize("src_kind,tgt_kind", [("postgres", "mysql"), ("mysql", "postgres"), ("postgres", "postgres"), ("mysql", "mysql")])
def test_types_round_trip(src_kind, tgt_kind, database_factory):
    src = bookkept(database_factory(src_kind, "src"), "eng_src")
    tgt = bookkept(database_factory(tgt_kind, "tgt"), "eng_tgt")
    src.query(PG if src_kind == "postgres" else MY)
    tgt.query(PG if tgt_kind == "postgres" else MY)
    _load(src, ROWS)
    result = run_sync(SyncSpec(name="typed", target_table="typed", key=["id"], mode="full"), SqlSource("eng_src", table="typed"), "eng_tgt")
    assert result.counts.inserted == 3
    assert _normalised(tgt) == _normalised(src) == [tuple(r) for r in ROWS]
    again = run_sync(SyncSpec(name="typed", target_table="typed", key=["id"], mode="full"), SqlSource("eng_src", table="typed"), "eng_tgt")
    assert (again.counts.updated, again.counts.unchanged) == (0, 3), "an identical re-sync rewrites nothing"

