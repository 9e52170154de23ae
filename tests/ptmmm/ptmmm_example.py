"""The worked example of docs/etl/daily_kpi_etl.md: a handful of ops rows and the KPI values
computed by hand for data_date 2025-03-10 (WIB), i.e. UTC [2025-03-09 17:00, 2025-03-10 17:00).

Rows are named by short aliases (W1, t3, sh2 ...) as in the document; ``uid(alias)`` is the
UUID stored for it.
"""

import datetime as dt
import uuid
from decimal import Decimal as D

DAY = dt.date(2025, 3, 10)
_NS = uuid.UUID("6f1a2f7e-2d0c-4e0b-9a53-5e0d7c1a0001")


def uid(alias: str) -> str:
    return str(uuid.uuid5(_NS, alias))


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


LONG_AGO = ts("2025-01-01 00:00:00")


def _wh(alias, org, code, opened=LONG_AGO, closed=None):
    return {"id": uid(alias), "org_id": uid(org), "code": code, "name": f"Gudang {code}", "opened_at": opened, "closed_at": closed}


def _tx(alias, sku, tx_type, qty, at, warehouse="W1"):
    return {"id": uid(alias), "org_id": uid("A"), "warehouse_id": warehouse and uid(warehouse), "sku_id": uid(sku),
            "tx_type": tx_type, "quantity": qty, "occurred_at": ts(at)}


def _ship(alias, vehicle, dispatched, delivered=None, failed=None, due=None, warehouse="W1"):
    return {"id": uid(alias), "org_id": uid("A"), "warehouse_id": warehouse and uid(warehouse), "vehicle_id": vehicle and uid(vehicle),
            "shipment_no": alias, "status": "delivered" if delivered else "failed" if failed else "dispatched",
            "due_at": due and ts(due), "dispatched_at": ts(dispatched), "delivered_at": delivered and ts(delivered),
            "failed_at": failed and ts(failed)}


def _scan(alias, ref_type, ref, at):
    return {"id": uid(alias), "org_id": uid("A"), "warehouse_id": uid("W1"), "scan_type": "check", "ref_type": ref_type,
            "ref_id": uid(ref), "scanned_at": ts(at)}


def _vehicle(alias, warehouse, retired=None):
    org = "B" if warehouse == "W4" else "A"
    return {"id": uid(alias), "org_id": uid(org), "warehouse_id": uid(warehouse), "plate_no": alias, "in_service_at": LONG_AGO,
            "retired_at": retired and ts(retired)}


ROWS = {
    "organizations": [{"id": uid("A"), "name": "Org A"}, {"id": uid("B"), "name": "Org B"}],
    "warehouses": [
        _wh("W1", "A", "JKT-01"),
        _wh("W2", "A", "SBY-01"),  # open, no activity
        _wh("W3", "A", "BDG-01", closed=ts("2025-03-01 00:00:00")),  # closed before the day: no row
        _wh("W4", "B", "MDN-01", opened=ts("2025-03-10 12:00:00")),  # opens during the day: a row of zeros
    ],
    "skus": [{"id": uid(s), "org_id": uid("A"), "code": s, "name": s} for s in ("S1", "S2", "S3")],
    "vehicles": [
        _vehicle("V1", "W1"), _vehicle("V2", "W1"), _vehicle("V3", "W1"),
        _vehicle("V4", "W1", retired="2025-02-01 00:00:00"),  # not in the fleet any more
        _vehicle("V5", "W2"),
    ],
    "inventory_tx": [
        _tx("t1", "S1", "inbound", 100, "2025-03-08 03:00:00"),
        _tx("t2", "S2", "inbound", 10, "2025-03-09 10:00:00"),  # 17:00 WIB on the 9th: the day before
        _tx("t3", "S1", "outbound", 30, "2025-03-09 17:00:00"),  # 00:00 WIB: first instant of the day
        _tx("t4", "S2", "outbound", 10, "2025-03-10 02:00:00"),
        _tx("t5", "S3", "inbound", 20, "2025-03-10 16:59:59"),  # last second of the day
        _tx("t6", "S1", "adjustment", -5, "2025-03-10 05:00:00"),
        _tx("t7", "S1", "inbound", 50, "2025-03-10 17:00:00"),  # 00:00 WIB on the 11th: the next day
        _tx("t8", "S1", "inbound", -4, "2025-03-10 06:00:00"),  # excluded: negative inbound
        _tx("t9", "S1", "inbound", 7, "2025-03-10 07:00:00", warehouse=None),  # excluded: no warehouse
    ],
    "shipments": [
        _ship("sh1", "V1", "2025-03-10 01:00:00", delivered="2025-03-10 05:30:00", due="2025-03-10 06:00:00"),
        _ship("sh2", "V2", "2025-03-09 22:00:00", delivered="2025-03-10 10:00:00", due="2025-03-10 08:00:00"),
        _ship("sh3", "V1", "2025-03-09 15:00:00", delivered="2025-03-09 17:30:00", due="2025-03-09 18:00:00"),
        _ship("sh4", "V2", "2025-03-10 09:00:00", failed="2025-03-10 12:00:00", due="2025-03-10 15:00:00"),
        _ship("sh5", "V1", "2025-03-10 16:30:00", due="2025-03-11 01:00:00"),
        _ship("sh6", None, "2025-03-10 04:00:00", warehouse=None),  # excluded: no warehouse
    ],
    "scan_event": [
        _scan("c1", "inventory_tx", "t3", "2025-03-09 17:01:00"),
        _scan("c2", "inventory_tx", "t5", "2025-03-10 16:59:59.500000"),
        _scan("c3", "inventory_tx", "t4", "2025-03-10 17:05:00"),  # after the day: does not confirm t4 for it
        _scan("c4", "shipment", "sh1", "2025-03-10 00:55:00"),
        _scan("c5", "shipment", "sh1", "2025-03-10 05:30:00"),
        _scan("c6", "shipment", "sh2", "2025-03-09 16:50:00"),  # before the day
        _scan("c7", "shipment", "sh2", "2025-03-10 10:00:00"),
        _scan("c8", "shipment", "sh3", "2025-03-09 17:30:00"),
        _scan("c9", "shipment", "sh4", "2025-03-10 09:00:00"),
        _scan("c10", "shipment", "sh5", "2025-03-10 16:25:00"),
    ],
}

_NO_STOCK = {
    "opening_qty": D("0.000"), "inbound_qty": D("0.000"), "outbound_qty": D("0.000"), "adjustment_qty": D("0.000"),
    "closing_qty": D("0.000"), "skus_in_stock": 0, "stock_out_skus": 0, "turnover_ratio": None,
    "tx_count": 0, "scan_confirmed_tx": 0, "scan_confirmed_pct": None,
}
EXPECTED_INVENTORY = {
    "W1": {
        "org": "A",
        "opening_qty": D("110.000"),  # S1 100 (t1) + S2 10 (t2)
        "inbound_qty": D("20.000"),  # t5
        "outbound_qty": D("40.000"),  # t3 + t4
        "adjustment_qty": D("-5.000"),  # t6
        "closing_qty": D("85.000"),  # S1 65, S2 0, S3 20
        "skus_in_stock": 2,  # S1, S3
        "stock_out_skus": 1,  # S2
        "turnover_ratio": D("0.4103"),  # 40 / ((110 + 85) / 2)
        "tx_count": 4,  # t3 t4 t5 t6
        "scan_confirmed_tx": 2,  # t3, t5
        "scan_confirmed_pct": D("50.00"),
    },
    "W2": {"org": "A", **_NO_STOCK},
    "W4": {"org": "B", **_NO_STOCK},
}
_NO_SHIPMENTS = {
    "shipments_dispatched": 0, "shipments_delivered": 0, "shipments_failed": 0, "delivered_on_time": 0,
    "on_time_delivery_pct": None, "avg_delivery_hours": None, "active_vehicles": 0,
    "shipments_handled": 0, "shipment_scans": 0, "scans_per_shipment": None,
}
EXPECTED_FLEET = {
    "W1": {
        "org": "A",
        "shipments_dispatched": 4,  # sh1 sh2 sh4 sh5
        "shipments_delivered": 3,  # sh1 sh2 sh3
        "shipments_failed": 1,  # sh4
        "delivered_on_time": 2,  # sh1 sh3
        "on_time_delivery_pct": D("66.67"),  # 2 / 3
        "avg_delivery_hours": D("6.33"),  # (4.5 + 12 + 2.5) / 3
        "fleet_size": 3,  # V1 V2 V3 (V4 retired)
        "active_vehicles": 2,  # V1 V2
        "vehicle_utilization_pct": D("66.67"),  # 2 / 3
        "shipments_handled": 5,  # sh1..sh5
        "shipment_scans": 6,  # c4 c5 c7 c8 c9 c10
        "scans_per_shipment": D("1.20"),  # 6 / 5
    },
    "W2": {"org": "A", **_NO_SHIPMENTS, "fleet_size": 1, "vehicle_utilization_pct": D("0.00")},
    "W4": {"org": "B", **_NO_SHIPMENTS, "fleet_size": 0, "vehicle_utilization_pct": None},
}
EXPECTED_EXCLUSIONS = [
    ("A", "inventory_tx", "negative quantity on an inbound or outbound movement", 1, "t8"),
    ("A", "inventory_tx", "warehouse_id is missing", 1, "t9"),
    ("A", "shipments", "warehouse_id is missing", 1, "sh6"),
]
