"""PTMMM demo data: organisations, warehouses, SKUs, vehicles and weeks of operational activity.

Deterministic for a given ``end`` day, length and seed, so demo dashboards and tests see the same
numbers every time. Timestamps are UTC (naive), activity happens in WIB working hours, and stock
never goes below zero. A few rows are deliberately dirty (a movement without a warehouse, a
negative inbound quantity, a delivery without a dispatch time) so ``kpi_daily_exclusions`` has
something to show. One warehouse opens during the period and one closes.

Load into the databases behind Airflow connections::

    python include/demo/ptmmm/ops_data.py [--end 2025-03-31] [--days 28] [--ops tidb_ops] [--supabase supabase_ptmmm]

or from Python (load this file with importlib; it is not part of the plugin package)::

    data = generate(end=date(2025, 3, 31), days=28)
    load(db, data.ops)            # TiDB / MySQL: organizations, warehouses, ..., scan_event
    load(pg, data.supabase)       # Supabase: auth.users, organization, warehouse, user_org_role
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import uuid
from typing import NamedTuple

WIB = dt.timedelta(hours=7)

ORGS = [
    # name, slug, [(code, name, city, trucks, daily orders, opens_day, closes_day)]; days count from the start
    ("PT Maju Makmur Mandiri", "ptmmm", [
        ("JKT-01", "Gudang Cakung", "Jakarta", 5, (15, 30), None, None),
        ("SBY-01", "Gudang Rungkut", "Surabaya", 4, (10, 20), None, None),
        ("BDG-01", "Gudang Gedebage", "Bandung", 3, (5, 12), "mid", None),
    ]),
    ("CV Nusantara Logistik", "nusantara", [
        ("MDN-01", "Gudang Belawan", "Medan", 4, (8, 16), None, None),
        ("MKS-01", "Gudang Makassar", "Makassar", 3, (4, 10), None, "late"),
    ]),
    ("PT Sumber Rejeki", "sumber-rejeki", [
        ("SMG-01", "Gudang Semarang", "Semarang", 2, (0, 5), None, None),
    ]),
]
SKUS_PER_ORG = 12


class DemoData(NamedTuple):  # not a dataclass: this file is loaded by path, outside sys.modules
    ops: dict[str, list[dict]]  # TiDB table -> rows, in insert order
    supabase: dict[str, list[dict]]  # Supabase table -> rows, in insert order


class _Gen:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def at(self, day: dt.date, wib_from: float, wib_to: float) -> dt.datetime:
        """A UTC instant on WIB ``day`` between two WIB hours of the day."""
        seconds = self.rng.randint(int(wib_from * 3600), int(wib_to * 3600) - 1)
        return dt.datetime.combine(day, dt.time()) - WIB + dt.timedelta(seconds=seconds)


def generate(end: dt.date | None = None, days: int = 28, seed: int = 2025) -> DemoData:
    """Organisations and ``days`` WIB days of activity ending with ``end`` (default: yesterday WIB)."""
    end = end or (dt.datetime.now(dt.timezone.utc) + WIB).date() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=days - 1)
    cutoff = dt.datetime.combine(end + dt.timedelta(days=1), dt.time()) - WIB  # nothing after the last day
    g = _Gen(seed)
    ops: dict[str, list[dict]] = {
        t: [] for t in ("organizations", "warehouses", "skus", "vehicles", "orders", "shipments", "inventory_tx", "scan_event")
    }
    supa: dict[str, list[dict]] = {t: [] for t in ("auth.users", "organization", "warehouse", "user_org_role")}
    setup_time = dt.datetime.combine(start - dt.timedelta(days=30), dt.time(1))

    def day_of(key: str | None) -> int | None:
        return {"mid": days // 2, "late": days - days // 4, None: None}[key]

    for org_name, slug, warehouses in ORGS:
        org_id = g.uuid()
        ops["organizations"].append({"id": org_id, "name": org_name, "created_at": setup_time})
        supa["organization"].append({"id": org_id, "name": org_name, "slug": slug})
        skus = [g.uuid() for _ in range(SKUS_PER_ORG)]
        for n, sku_id in enumerate(skus, 1):
            ops["skus"].append({"id": sku_id, "org_id": org_id, "code": f"SKU-{n:03d}", "name": f"Barang {n} ({slug})",
                                "created_at": setup_time})
        for code, name, city, trucks, orders_range, opens, closes in warehouses:
            wh_id = g.uuid()
            first_day = start + dt.timedelta(days=day_of(opens) or 0)
            opened_at = g.at(first_day, 5, 6) if opens else setup_time
            closed_at = g.at(start + dt.timedelta(days=day_of(closes)), 12, 13) if closes else None
            ops["warehouses"].append({"id": wh_id, "org_id": org_id, "code": code, "name": name, "city": city,
                                      "opened_at": opened_at, "closed_at": closed_at, "created_at": setup_time})
            supa["warehouse"].append({"id": wh_id, "org_id": org_id, "code": code, "name": name, "city": city,
                                      "is_active": closed_at is None})
            fleet = []
            for n in range(trucks):
                vid = g.uuid()
                # the last truck of each warehouse is retired half-way through the period
                retired = g.at(start + dt.timedelta(days=days // 2), 8, 9) if n == trucks - 1 and trucks > 2 else None
                ops["vehicles"].append({"id": vid, "org_id": org_id, "warehouse_id": wh_id,
                                        "plate_no": f"{code[:1]} {g.rng.randint(1000, 9999)} {code[:2]}{n}",
                                        "in_service_at": setup_time, "retired_at": retired, "created_at": setup_time})
                fleet.append((vid, retired))
            _activity(g, ops, org_id, wh_id, code, skus, fleet, first_day, end, closed_at, orders_range, cutoff)

    _dirty_rows(g, ops, end)
    _demo_users(g, supa)
    return DemoData(ops, supa)


def _activity(g, ops, org_id, wh_id, code, skus, fleet, first_day, end, closed_at, orders_range, cutoff):
    stock = {sku: 0 for sku in skus}
    order_no = 0

    def tx(sku, tx_type, qty, at, ref_type=None, ref_id=None):
        tx_id = g.uuid()
        ops["inventory_tx"].append({"id": tx_id, "org_id": org_id, "warehouse_id": wh_id, "sku_id": sku, "tx_type": tx_type,
                                    "quantity": qty, "ref_type": ref_type, "ref_id": ref_id, "occurred_at": at})
        if g.rng.random() < 0.92:  # most movements are scanned within a few minutes
            scan_type = {"inbound": "receive", "outbound": "pick"}.get(tx_type, "count")
            scan(tx_id, "inventory_tx", scan_type, at + dt.timedelta(seconds=g.rng.randint(5, 600)))

    def scan(ref_id, ref_type, scan_type, at):
        if at < cutoff:
            ops["scan_event"].append({"id": g.uuid(), "org_id": org_id, "warehouse_id": wh_id, "scan_type": scan_type,
                                      "ref_type": ref_type, "ref_id": ref_id, "device_id": f"HH-{code}-{g.rng.randint(1, 4)}",
                                      "scanned_at": at})

    day = first_day
    while day <= end:
        if closed_at and dt.datetime.combine(day, dt.time()) - WIB >= closed_at:
            break
        # morning receiving: first stock, then top up what runs low
        for sku in skus:
            if stock[sku] < 40 and (day == first_day or g.rng.random() < 0.6):
                qty = g.rng.randint(150, 400)
                tx(sku, "inbound", qty, g.at(day, 6, 8), "purchase")
                stock[sku] += qty
        if g.rng.random() < 0.2:
            sku = g.rng.choice(skus)
            delta = g.rng.randint(-min(5, stock[sku]), 5) or 1
            tx(sku, "adjustment", delta, g.at(day, 8, 9), "stock_count")
            stock[sku] += delta
        for _ in range(g.rng.randint(*orders_range)):
            sku = g.rng.choice(skus)
            if stock[sku] <= 0:
                continue
            order_no += 1
            order_id = g.uuid()
            ordered_at = g.at(day, 8, 18)
            if closed_at and ordered_at >= closed_at:
                continue
            ops["orders"].append({"id": order_id, "org_id": org_id, "warehouse_id": wh_id, "order_no": f"{code}-{order_no:05d}",
                                  "customer_name": f"Toko {g.rng.randint(1, 80)}", "status": "shipped", "ordered_at": ordered_at})
            qty = min(stock[sku], g.rng.randint(1, 30))
            picked_at = ordered_at + dt.timedelta(minutes=g.rng.randint(10, 90))
            tx(sku, "outbound", qty, picked_at, "order", order_id)
            stock[sku] -= qty
            _shipment(g, ops, org_id, wh_id, order_id, f"SH-{code}-{order_no:05d}", fleet, picked_at, cutoff, scan)
        day += dt.timedelta(days=1)


def _shipment(g, ops, org_id, wh_id, order_id, number, fleet, picked_at, cutoff, scan):
    dispatched = picked_at + dt.timedelta(minutes=g.rng.randint(30, 240))
    in_service = [vid for vid, retired in fleet if retired is None or retired > dispatched]
    row = {"id": g.uuid(), "org_id": org_id, "warehouse_id": wh_id, "order_id": order_id, "vehicle_id": g.rng.choice(in_service),
           "shipment_no": number, "status": "planned", "due_at": dispatched + dt.timedelta(hours=8),
           "dispatched_at": None, "delivered_at": None, "failed_at": None, "failure_reason": None}
    if dispatched < cutoff:
        row.update(status="dispatched", dispatched_at=dispatched)
        scan(row["id"], "shipment", "load", dispatched - dt.timedelta(minutes=5))
        done = dispatched + dt.timedelta(minutes=g.rng.randint(45, 660))
        if done < cutoff:
            if g.rng.random() < 0.05:
                row.update(status="failed", failed_at=done, failure_reason="penerima tidak di tempat")
                scan(row["id"], "shipment", "fail", done)
            else:
                row.update(status="delivered", delivered_at=done)
                scan(row["id"], "shipment", "deliver", done)
    ops["shipments"].append(row)


def _dirty_rows(g, ops, end):
    """What real imports bring: a movement without a warehouse, a negative inbound, a delivery without dispatch."""
    org = ops["organizations"][0]["id"]
    wh = next(w for w in ops["warehouses"] if w["org_id"] == org)
    sku = next(s["id"] for s in ops["skus"] if s["org_id"] == org)
    at = dt.datetime.combine(end, dt.time(3))
    base = {"org_id": org, "sku_id": sku, "ref_type": "sheet_import", "ref_id": None}
    ops["inventory_tx"] += [
        {**base, "id": g.uuid(), "warehouse_id": None, "tx_type": "inbound", "quantity": 12, "occurred_at": at},
        {**base, "id": g.uuid(), "warehouse_id": wh["id"], "tx_type": "inbound", "quantity": -3, "occurred_at": at},
    ]
    ops["shipments"].append({"id": g.uuid(), "org_id": org, "warehouse_id": wh["id"], "order_id": None, "vehicle_id": None,
                             "shipment_no": "SH-IMPORT-1", "status": "delivered", "due_at": None, "dispatched_at": None,
                             "delivered_at": at, "failed_at": None, "failure_reason": None})


def _demo_users(g, supa):
    """Three sign-ins: an org owner, a warehouse-scoped manager, an owner of another org."""
    orgs, whs = supa["organization"], supa["warehouse"]
    users = [
        ("owner@ptmmm.example", orgs[0]["id"], None, "owner"),
        ("jakarta.manager@ptmmm.example", orgs[0]["id"], whs[0]["id"], "manager"),
        ("owner@nusantara.example", orgs[1]["id"], None, "owner"),
    ]
    for email, org_id, wh_id, role in users:
        uid = g.uuid()
        supa["auth.users"].append({"id": uid, "email": email})
        supa["user_org_role"].append({"user_id": uid, "org_id": org_id, "warehouse_id": wh_id, "role": role})


def load(db, tables: dict[str, list[dict]]) -> dict[str, int]:
    """Insert the rows (tables in the given order) in one transaction; ``db`` is a datasync Database."""
    counts = {}
    try:
        for table, rows in tables.items():
            if not rows:
                continue
            columns = list(rows[0])
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
            cur = db.cursor()
            cur.executemany(sql, [tuple(r.get(c) for c in columns) for r in rows])
            cur.close()
            counts[table] = len(rows)
        db.commit()
    except Exception:
        db.rollback()
        raise
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--end", type=dt.date.fromisoformat, help="last WIB day with activity (default: yesterday)")
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--ops", default="tidb_ops", help="Airflow connection of the ops database ('' to skip)")
    parser.add_argument("--supabase", default="supabase_ptmmm", help="Airflow connection of Supabase ('' to skip)")
    args = parser.parse_args(argv)
    from datasync.db import connected

    data = generate(args.end, args.days)
    for conn_id, tables in ((args.ops, data.ops), (args.supabase, data.supabase)):
        if conn_id:
            with connected(conn_id) as db:
                if already_loaded(db, tables):
                    print(f"{conn_id}: demo data is already there; nothing loaded")
                    continue
                print(f"{conn_id}: " + ", ".join(f"{n} {t}" for t, n in load(db, tables).items()))
    return 0


def already_loaded(db, tables: dict[str, list[dict]]) -> bool:
    """The demo organisations have the same ids for every ``end``: a second load would only clash."""
    org_table = next(t for t in tables if t.startswith("organization"))
    found = db.fetchone(f"SELECT COUNT(*) FROM {org_table} WHERE id = %s", (tables[org_table][0]["id"],))[0]
    db.commit()
    return found > 0


if __name__ == "__main__":
    sys.exit(main())
