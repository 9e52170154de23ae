"""The KPI formulas of docs/etl/daily_kpi_etl.md (sections 1, 3 and 4) written once more, in Python.

An independent oracle for the SQL in include/sql/kpi/: it reads the same ops rows the tests load
(``{table: [row dict, ...]}``) and works out each active warehouse's KPI row and the exclusions of
one WIB day straight from the documented rules, without looking at the SQL. Ratios are computed
exactly and rounded half away from zero, as documented.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

MOVEMENT_TYPES = ("inbound", "outbound", "adjustment")


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Section 1: WIB day D is [D-1 17:00, D 17:00) in UTC."""
    end = dt.datetime.combine(day, dt.time(17))
    return end - dt.timedelta(days=1), end


def key(value) -> str | None:
    """Section 3: tx_type, ref_type and ids count lower-cased and trimmed; an empty one as missing."""
    if value is None:
        return None
    return str(value).strip().lower() or None


def _round(value: Fraction, places: int) -> Decimal:
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _qty(value) -> Decimal:
    return Decimal(value).quantize(Decimal("0.001"))


def _pct(part: int, whole: int) -> Decimal | None:
    return _round(Fraction(100 * part, whole), 2) if whole else None


class Day:
    def __init__(self, rows: dict[str, list[dict]], day: dt.date):
        self.rows = rows
        self.day = day
        self.start, self.end = day_bounds(day)
        self.warehouses = {w["id"]: w for w in rows.get("warehouses", [])}

    def in_day(self, at) -> bool:
        return at is not None and self.start <= at < self.end

    def open_in_day(self, opened, closed) -> bool:
        """Open for at least part of the day: [opened, closed) overlaps [start, end)."""
        return opened < self.end and (closed is None or closed > self.start)

    def active(self) -> dict[str, dict]:
        return {wid: w for wid, w in self.warehouses.items() if self.open_in_day(w["opened_at"], w.get("closed_at"))}

    def _warehouse_problem(self, row: dict) -> str | None:
        wid = key(row.get("warehouse_id"))
        if wid is None:
            return "warehouse_id is missing"
        w = self.warehouses.get(wid)
        if w is None:
            return "warehouse_id is not a known warehouse"
        if w["org_id"] != key(row["org_id"]):
            return "org_id differs from the org of its warehouse"
        if not self.open_in_day(w["opened_at"], w.get("closed_at")):
            return "warehouse is not open on this day"
        return None

    # --- inventory ------------------------------------------------------------------------

    @staticmethod
    def usable(tx: dict) -> bool:
        kind = key(tx["tx_type"])
        return kind in MOVEMENT_TYPES and (Decimal(tx["quantity"]) >= 0 or kind == "adjustment")

    @staticmethod
    def signed(tx: dict) -> Decimal:
        q = Decimal(tx["quantity"])
        return -q if key(tx["tx_type"]) == "outbound" else q

    def inventory(self) -> dict[str, dict]:
        scans = {key(s["ref_id"]) for s in self.rows.get("scan_event", [])
                 if key(s["ref_type"]) == "inventory_tx" and s["scanned_at"] < self.end}
        out = {}
        for wid, w in self.active().items():
            moves = [t for t in self.rows.get("inventory_tx", [])
                     if key(t.get("warehouse_id")) == wid and key(t["org_id"]) == w["org_id"] and self.usable(t)
                     and t["occurred_at"] < self.end]
            today = [t for t in moves if t["occurred_at"] >= self.start]
            opening, closing, moved = defaultdict(Decimal), defaultdict(Decimal), Counter()
            for t in moves:
                sku = key(t["sku_id"])
                closing[sku] += self.signed(t)
                if t["occurred_at"] < self.start:
                    opening[sku] += self.signed(t)
                else:
                    moved[sku] += 1
            total = {kind: sum((Decimal(t["quantity"]) for t in today if key(t["tx_type"]) == kind), Decimal(0))
                     for kind in MOVEMENT_TYPES}
            open_qty, close_qty = sum(opening.values(), Decimal(0)), sum(closing.values(), Decimal(0))
            confirmed = sum(1 for t in today if key(t["id"]) in scans)
            average = Fraction(open_qty + close_qty) / 2
            out[wid] = {
                "org_id": w["org_id"],
                "opening_qty": _qty(open_qty),
                "inbound_qty": _qty(total["inbound"]),
                "outbound_qty": _qty(total["outbound"]),
                "adjustment_qty": _qty(total["adjustment"]),
                "closing_qty": _qty(close_qty),
                "skus_in_stock": sum(1 for q in closing.values() if q > 0),
                "stock_out_skus": sum(1 for s, q in closing.items() if q <= 0 and (opening[s] > 0 or moved[s])),
                "turnover_ratio": _round(Fraction(total["outbound"]) / average, 4) if average > 0 else None,
                "tx_count": len(today),
                "scan_confirmed_tx": confirmed,
                "scan_confirmed_pct": _pct(confirmed, len(today)),
            }
        return out

    # --- fleet ----------------------------------------------------------------------------

    def handled(self, s: dict) -> bool:
        return any(self.in_day(s.get(c)) for c in ("dispatched_at", "delivered_at", "failed_at"))

    def in_fleet(self, v: dict) -> bool:
        return self.open_in_day(v["in_service_at"], v.get("retired_at"))

    def fleet(self) -> dict[str, dict]:
        vehicles = {v["id"]: v for v in self.rows.get("vehicles", [])}
        scans = Counter(key(s["ref_id"]) for s in self.rows.get("scan_event", [])
                        if key(s["ref_type"]) == "shipment" and self.in_day(s["scanned_at"]))
        out = {}
        for wid, w in self.active().items():
            ships = [s for s in self.rows.get("shipments", [])
                     if key(s.get("warehouse_id")) == wid and key(s["org_id"]) == w["org_id"] and self.handled(s)]
            delivered = [s for s in ships if self.in_day(s.get("delivered_at"))]
            with_due = [s for s in delivered if s.get("due_at") is not None]
            on_time = [s for s in with_due if s["delivered_at"] <= s["due_at"]]
            durations = [int((s["delivered_at"] - s["dispatched_at"]).total_seconds()) for s in delivered
                         if s.get("dispatched_at") is not None and s["delivered_at"] >= s["dispatched_at"]]
            used = {key(s.get("vehicle_id")) for s in ships} - {None}
            own = {v for v in used if v in vehicles and vehicles[v]["warehouse_id"] == wid and self.in_fleet(vehicles[v])}
            fleet_size = sum(1 for v in vehicles.values() if v["warehouse_id"] == wid and self.in_fleet(v))
            scan_count = sum(scans[key(s["id"])] for s in ships)
            out[wid] = {
                "org_id": w["org_id"],
                "shipments_dispatched": sum(1 for s in ships if self.in_day(s.get("dispatched_at"))),
                "shipments_delivered": len(delivered),
                "shipments_failed": sum(1 for s in ships if self.in_day(s.get("failed_at"))),
                "delivered_on_time": len(on_time),
                "on_time_delivery_pct": _pct(len(on_time), len(with_due)),
                "avg_delivery_hours": _round(Fraction(sum(durations), len(durations) * 3600), 2) if durations else None,
                "fleet_size": fleet_size,
                "active_vehicles": len(used),
                "vehicle_utilization_pct": _pct(len(own), fleet_size),
                "shipments_handled": len(ships),
                "shipment_scans": scan_count,
                "scans_per_shipment": _round(Fraction(scan_count, len(ships)), 2) if ships else None,
            }
        return out

    # --- exclusions -----------------------------------------------------------------------

    def exclusions(self) -> list[tuple]:
        """``(org_id, source_table, reason, row_count, example_id)``, sorted; example_id is the smallest id."""
        found: dict[tuple, list[str]] = defaultdict(list)
        for t in self.rows.get("inventory_tx", []):
            if not self.in_day(t["occurred_at"]):
                continue
            reason = self._warehouse_problem(t)
            if reason is None and key(t["tx_type"]) not in MOVEMENT_TYPES:
                reason = "unknown tx_type"
            elif reason is None and not self.usable(t):
                reason = "negative quantity on an inbound or outbound movement"
            if reason:
                found[(key(t["org_id"]), "inventory_tx", reason)].append(t["id"])
        for s in self.rows.get("shipments", []):
            if not self.handled(s):
                continue
            reason = self._warehouse_problem(s)
            if reason is None and self.in_day(s.get("delivered_at")):
                if s.get("dispatched_at") is None:
                    reason = "delivered without dispatched_at: left out of avg_delivery_hours"
                elif s["delivered_at"] < s["dispatched_at"]:
                    reason = "delivered_at before dispatched_at: left out of avg_delivery_hours"
            if reason:
                found[(key(s["org_id"]), "shipments", reason)].append(s["id"])
        # example_id: the smallest id in code-point order, which is how utf8mb4_bin sorts
        return sorted((*k, len(ids), min(ids)) for k, ids in found.items())
