"""Full refresh that compares before it moves (datasync.engine.compare): unchanged ranges cost two
hash sums, changed rows are found one by one, deletes are proven, and rows that only look different
(normalisation) are read again but never rewritten."""

import datetime as dt
import json
import sys

import pytest

from datasync.engine import SqlSource, SyncSpec, run_sync
from engine_fixtures import bookkept, create_items
from harness import sigkill_when_stalled

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
ROWS = 2000


def spec(**kw):
    base = dict(name="items", target_table="items", key=["id"], cursor_column="updated_at", mode="full",
                batch_size=500, compare_rows=100)
    base.update(kw)
    return SyncSpec(**base)


def sync(s=None, table="items"):
    return run_sync(s or spec(), SqlSource("eng_src", table=table), "eng_tgt")


def fill(db, ids):
    conn = db.connect()
    cur = conn.cursor()
    stamp = T0 if db.kind == "postgres" else T0.replace(tzinfo=None)
    rows = [(i, f"n{i}", i % 7, f"{i}.25", json.dumps({"i": i, "tags": ["a", "b"]}), stamp + dt.timedelta(seconds=i))
            for i in ids]
    cur.executemany("INSERT INTO items (id, name, qty, price, meta, updated_at) VALUES (%s, %s, %s, %s, %s, %s)", rows)
    conn.commit()
    conn.close()


def same(src, tgt):
    cols = "id, name, qty, price, meta, updated_at"
    a, b = src.query(f"SELECT {cols} FROM items ORDER BY id"), tgt.query(f"SELECT {cols} FROM items ORDER BY id")
    norm = [lambda rows: [(r[0], r[1], r[2], r[3], json.loads(r[4]) if isinstance(r[4], str) else r[4],
                           r[5].replace(tzinfo=None)) for r in rows]][0]
    return norm(a) == norm(b)


def versions(tgt):
    """Row versions of a Postgres target: a rewrite changes xmin even when the values do not."""
    return tgt.query("SELECT id, xmin::text FROM items ORDER BY id")


@pytest.fixture(params=["postgres", "mysql"])
def loaded(request, database_factory):
    src = bookkept(database_factory(request.param, "src"), "eng_src")
    tgt = bookkept(database_factory(request.param, "tgt"), "eng_tgt")
    create_items(src)
    create_items(tgt)
    fill(src, range(1, ROWS + 1))
    first = sync()
    assert first.counts.inserted == ROWS
    return src, tgt


def test_unchanged_reads_no_rows_and_writes_nothing(loaded):
    src, tgt = loaded
    before = versions(tgt) if tgt.kind == "postgres" else None
    result = sync()
    c = result.counts
    assert (c.read, c.unchanged, c.inserted, c.updated, c.deleted) == (ROWS, ROWS, 0, 0, 0)
    assert (result.details["ranges_compared"], result.details["ranges_differing"]) == (ROWS // 100 + 1, 0)
    if before is not None:
        assert versions(tgt) == before


def test_changes_anywhere_land_and_are_counted(loaded):
    src, tgt = loaded
    conn = src.connect()
    cur = conn.cursor()
    cur.execute("UPDATE items SET qty = qty + 100 WHERE id % 97 = 0")  # spread over the ranges: 20 rows
    cur.execute("UPDATE items SET meta = NULL WHERE id IN (1, 2000)")  # the first and the last range
    cur.execute("UPDATE items SET name = '' WHERE id = 500")  # '' is not NULL
    cur.execute("DELETE FROM items WHERE id IN (3, 1000, 1999)")
    conn.commit()
    conn.close()
    fill(src, [0, 2500, 2501])  # before the first and after the last boundary
    tgt.query("INSERT INTO items (id, name, updated_at) VALUES (9999, 'only in the target', '2026-01-01')")
    tgt.query("DELETE FROM items WHERE id = 42")  # lost in the target: comes back
    result = sync()
    c = result.counts
    assert (c.inserted, c.updated, c.deleted) == (4, 20 + 2 + 1, 4)  # 0, 2500, 2501 and 42; 3, 1000, 1999 and 9999
    assert c.read == ROWS - 3 + 3 and c.unchanged == c.read - c.inserted - c.updated
    assert same(src, tgt)
    again = sync().counts
    assert (again.inserted, again.updated, again.deleted, again.unchanged) == (0, 0, 0, again.read)


def test_postgres_equality_is_the_target_types_own(pg_source, pg_target):
    """numeric 1.50 = 1.5, float -0 = 0, json key order and spacing: equal for the target's types,
    so equal for the hash (each type's own hash function): nothing is read, nothing rewritten."""
    pg_source.query("CREATE TABLE m (id INT PRIMARY KEY, amount NUMERIC, ratio FLOAT8, doc JSON)")
    pg_target.query("CREATE TABLE m (id INT PRIMARY KEY, amount NUMERIC, ratio FLOAT8, doc JSONB)")
    pg_source.query("INSERT INTO m SELECT g, 1.50, -0.0, '{\"b\": 1,   \"a\": [1, 2]}' FROM generate_series(1, 300) g")
    pg_target.query("INSERT INTO m SELECT g, 1.5, 0.0, '{\"a\": [1, 2], \"b\": 1}' FROM generate_series(1, 300) g")
    before = pg_target.query("SELECT id, xmin::text FROM m ORDER BY id")
    c = run_sync(SyncSpec(name="m", target_table="m", key=["id"], mode="full", compare_rows=100),
                 SqlSource("eng_src", table="m"), "eng_tgt").counts
    assert (c.read, c.unchanged, c.inserted, c.updated, c.deleted) == (300, 300, 0, 0, 0)
    assert pg_target.query("SELECT id, xmin::text FROM m ORDER BY id") == before
    pg_source.query("UPDATE m SET amount = 1.51 WHERE id = 150")  # a real change still shows
    assert run_sync(SyncSpec(name="m", target_table="m", key=["id"], mode="full", compare_rows=100),
                    SqlSource("eng_src", table="m"), "eng_tgt").counts.updated == 1


def test_a_row_that_only_looks_different_is_read_but_never_rewritten(my_source, my_target):
    """MySQL-family servers hash the values' text: a DOUBLE 1.5 and a DECIMAL 1.50 differ there,
    so the row is read every run, and the target's ON DUPLICATE KEY UPDATE finds it unchanged:
    no loop, no rewrite, counted as unchanged."""
    my_source.query("CREATE TABLE m (id INT PRIMARY KEY, amount DOUBLE)")
    my_target.query("CREATE TABLE m (id INT PRIMARY KEY, amount DECIMAL(10,2))")
    my_source.query("INSERT INTO m SELECT seq, 1.5 FROM seq_1_to_300")
    my_target.query("INSERT INTO m SELECT seq, 1.5 FROM seq_1_to_300")
    for _ in range(3):
        c = run_sync(SyncSpec(name="m", target_table="m", key=["id"], mode="full", compare_rows=100),
                     SqlSource("eng_src", table="m"), "eng_tgt").counts
        assert (c.read, c.unchanged, c.inserted, c.updated, c.deleted) == (300, 300, 0, 0, 0)


def test_a_value_that_does_not_cast_is_a_named_reject(pg_source, pg_target):
    pg_source.query("CREATE TABLE m (id INT PRIMARY KEY, qty TEXT)")
    pg_target.query("CREATE TABLE m (id INT PRIMARY KEY, qty INTEGER)")
    pg_source.query("INSERT INTO m SELECT g, g::text FROM generate_series(1, 250) g")
    pg_target.query("INSERT INTO m SELECT g, g FROM generate_series(1, 250) g")
    pg_source.query("UPDATE m SET qty = 'many' WHERE id = 120")
    result = run_sync(SyncSpec(name="m", target_table="m", key=["id"], mode="full", compare_rows=100, max_rejects=1),
                      SqlSource("eng_src", table="m"), "eng_tgt")
    c = result.counts
    assert (c.read, c.rejected, c.updated, c.deleted) == (250, 1, 0, 0)
    [(key, column, reason)] = pg_target.query("SELECT row_key, column_name, reason FROM sync_rejects")
    assert (key, column, reason) == ("120", "qty", "not a valid number")
    assert pg_target.query("SELECT qty FROM m WHERE id = 120") == [(120,)]  # kept, not deleted


def test_composite_key(pg_source, pg_target):
    for db in (pg_source, pg_target):
        db.query("CREATE TABLE c (shop INT, ro TEXT, total NUMERIC(10,2), PRIMARY KEY (shop, ro))")
    pg_source.query("INSERT INTO c SELECT g % 5, 'ro-' || g, g FROM generate_series(1, 700) g")
    pg_target.query("INSERT INTO c SELECT g % 5, 'ro-' || g, g FROM generate_series(1, 700) g")
    pg_source.query("UPDATE c SET total = 0 WHERE ro IN ('ro-7', 'ro-700')")
    pg_source.query("DELETE FROM c WHERE ro = 'ro-350'")
    c = run_sync(SyncSpec(name="c", target_table="c", key=["shop", "ro"], mode="full", compare_rows=64),
                 SqlSource("eng_src", table="c"), "eng_tgt").counts
    assert (c.read, c.updated, c.deleted, c.unchanged) == (699, 2, 1, 697)
    assert pg_target.query("SELECT * FROM c ORDER BY 1, 2") == pg_source.query("SELECT * FROM c ORDER BY 1, 2")


def test_a_key_type_without_a_binary_loader(pg_source, pg_target):
    """Postgres hashes come as binary arrays; an enum key (psycopg has no binary loader for it) is
    read as text rows instead, with the same outcome. (An enum's own hash is of its label's OID, which
    differs between databases: its rows are listed every run, and never rewritten.)"""
    labels = ", ".join(f"'k{i:03d}'" for i in range(300))
    for db in (pg_source, pg_target):
        db.query(f"CREATE TYPE label AS ENUM ({labels})")
        db.query("CREATE TABLE e (k label PRIMARY KEY, v INT)")
        db.query("INSERT INTO e SELECT ('k' || lpad(g::text, 3, '0'))::label, g FROM generate_series(0, 249) g")
    pg_source.query("UPDATE e SET v = -1 WHERE k IN ('k007', 'k200')")
    pg_source.query("DELETE FROM e WHERE k = 'k100'")
    pg_source.query("INSERT INTO e VALUES ('k299', 299)")
    c = run_sync(SyncSpec(name="e", target_table="e", key=["k"], mode="full", compare_rows=64),
                 SqlSource("eng_src", table="e"), "eng_tgt").counts
    assert (c.read, c.inserted, c.updated, c.deleted, c.unchanged) == (250, 1, 2, 1, 247)
    again = run_sync(SyncSpec(name="e", target_table="e", key=["k"], mode="full", compare_rows=64),
                     SqlSource("eng_src", table="e"), "eng_tgt").counts
    assert (again.read, again.unchanged, again.inserted, again.updated, again.deleted) == (250, 250, 0, 0, 0)
    assert pg_target.query("SELECT k::text, v FROM e ORDER BY k") == pg_source.query("SELECT k::text, v FROM e ORDER BY k")


def test_an_empty_source_empties_the_target(loaded):
    src, tgt = loaded
    src.query("DELETE FROM items")
    c = sync().counts
    assert (c.read, c.deleted) == (0, ROWS)
    assert tgt.query("SELECT count(*) FROM items") == [(0,)]


WORKER = r"""
from datasync.engine import SqlSource, SyncSpec, run_sync
run_sync(SyncSpec(name="items", target_table="items", key=["id"], cursor_column="updated_at", mode="full",
                  batch_size=500, compare_rows=100), SqlSource("eng_src", table="items"), "eng_tgt")
"""


def test_sigkill_mid_compare_leaves_the_target_as_it_was_and_a_rerun_converges(pg_source, pg_target):
    src, tgt = pg_source, pg_target
    for db in (src, tgt):
        create_items(db)
    fill(src, range(1, ROWS + 1))
    sync()
    src.query("UPDATE items SET qty = -1 WHERE id % 10 = 0")
    src.query("DELETE FROM items WHERE id BETWEEN 1 AND 50")
    before = tgt.query("SELECT id, qty FROM items ORDER BY id")
    # The target's update of one row sleeps: the worker is inside the uncommitted refresh.
    tgt.query("CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$ "
              "BEGIN IF NEW.id = 1500 THEN PERFORM pg_sleep(60); END IF; RETURN NEW; END $$")
    tgt.query("CREATE TRIGGER stall BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION stall()")
    sigkill_when_stalled(tgt, [sys.executable, "-c", WORKER])
    assert tgt.query("SELECT id, qty FROM items ORDER BY id") == before  # nothing of the killed run landed
    tgt.query("DROP TRIGGER stall ON items")
    c = sync().counts
    assert (c.updated, c.deleted) == (195, 50)
    assert same(src, tgt)
