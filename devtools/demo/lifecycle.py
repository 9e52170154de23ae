"""``make demo`` step for the product lifecycle sync, and the lifecycle_db demo rows."""

from __future__ import annotations

import datetime as dt
import json
import random

from datasync.lifecycle import SOURCE_CONN, TABLES, TARGET_CONN

SEGMENTS = ["Enterprise", "UMKM", "Pemerintah", "Ritel", "Telekomunikasi"]
STAGES = ["Ideation", "Development", "Growth", "Maturity"]
WORDS = ["Smart", "Cloud", "Digital", "Secure", "Data", "Edu", "Health", "Agri", "Logistik", "Pay", "Connect", "Vision"]


def load_demo_rows(conn, products: int = 211, history: int = 45, seed: int = 2) -> dict[str, int]:
    """Fill an empty lifecycle_db with demo volumes (5 segments, 4 stages, 211 products,
    45 stage history rows). ``conn`` is a psycopg connection. Idempotent (upsert by id)."""
    rng = random.Random(seed)
    base = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.timezone.utc)
    rows = {
        "tbl_segmen": [(i, name, f"Segmen {name}", base, base) for i, name in enumerate(SEGMENTS, 1)],
        "tbl_stage": [(i, name, i, base, base) for i, name in enumerate(STAGES, 1)],
        "tbl_produk": [],
        "tbl_stage_histori": [],
    }
    for pid in range(1, products + 1):
        at = base + dt.timedelta(hours=pid)
        metrics = {"revenue_idr": rng.randrange(10, 900) * 1_000_000, "nps": rng.randrange(-20, 80), "users": rng.randrange(50, 90000)}
        rows["tbl_produk"].append((
            pid, f"{rng.choice(WORDS)} {rng.choice(WORDS)} {pid:03d}", rng.randrange(1, 9), rng.randrange(1, 6),
            rng.randrange(1, 5), rng.randrange(5, 5000) * 1_000_000 + rng.randrange(0, 999), None, json.dumps(metrics), at, at,
        ))
    for hid in range(1, history + 1):
        at = base + dt.timedelta(days=hid)
        frm = rng.randrange(1, 4)
        rows["tbl_stage_histori"].append((hid, rng.randrange(1, products + 1), frm, frm + 1, at, "pmo.admin", "Review kuartal", at, at))
    columns = {
        "tbl_segmen": "id, segmen, deskripsi, created_at, updated_at",
        "tbl_stage": "id, stage, urutan, created_at, updated_at",
        "tbl_produk": "id, nama_produk, id_kategori, id_segmen, id_stage, harga, deskripsi, performance_metrics, created_at, updated_at",
        "tbl_stage_histori": "id, id_produk, id_stage_from, id_stage_to, changed_at, changed_by, catatan, created_at, updated_at",
    }
    with conn.cursor() as cur:
        for table, data in rows.items():
            marks = ", ".join(["%s"] * len(data[0]))
            cur.executemany(f"INSERT INTO {table} ({columns[table]}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING", data)
    conn.commit()
    return {t: len(r) for t, r in rows.items()}


def demo_step(demo) -> None:
    """make demo: fill lifecycle_db, run lifecycle_sync twice (initial, then a no-op incremental)."""
    from datasync.db import connected

    with connected(SOURCE_CONN) as db:
        counts = load_demo_rows(db.conn)
    demo.say("  lifecycle_db loaded: " + ", ".join(f"{n} {t}" for t, n in counts.items()))
    for label in ("initial", "incremental"):
        demo.dag_test("lifecycle_sync", log_name=f"lifecycle_sync_{label}")
        with connected(TARGET_CONN) as db:
            rows = db.fetchall(
                "SELECT DISTINCT ON (sync_name) sync_name, rows_read, rows_inserted, rows_updated, rows_unchanged, rows_rejected "
                "FROM sync_log WHERE sync_name LIKE 'lifecycle_sync.%%' ORDER BY sync_name, id DESC"
            )
        for name, read, ins, upd, same, rej in sorted(rows, key=lambda r: [t.name for t in TABLES].index(r[0].split(".sync_")[-1])):
            demo.say(f"  {label:11} {name.split('.')[-1]:20} read {read:4}  inserted {ins:4}  updated {upd:3}  unchanged {same:4}  rejected {rej}")
