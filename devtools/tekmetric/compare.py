"""Does the warehouse hold what Tekmetric (the emulator's store) holds? Table by table.

Read straight from the API's wire shape, independently of the sync's own mapping, so a
mapping mistake shows up as a difference. Used by the tests, the demo and the benchmark.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

Query = Callable[..., list[tuple]]  # (sql, params) -> rows


def _ts(value: Any) -> dt.datetime | None:
    if value in (None, ""):
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _num(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).normalize()


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def expected_rows(store, shop_ids: Iterable[int]) -> dict[str, set[tuple]]:
    """What each warehouse table should hold for ``shop_ids`` (deleted records included)."""
    out: dict[str, set[tuple]] = {t: set() for t in (
        "employees", "customers", "vehicles", "repair_orders", "jobs", "job_labor", "job_parts", "job_sublets",
        "job_fees")}
    for shop in shop_ids:
        for e in store.records("employees", shop):
            out["employees"].add((e["id"], shop, e["firstName"], e["lastName"], (e.get("employeeRole") or {}).get("id")))
        for c in store.records("customers", shop, deleted=None):
            out["customers"].add((c["id"], shop, c["firstName"], c["lastName"], c["email"], _ts(c["updatedDate"]),
                                  _ts(c.get("deletedDate"))))
        for v in store.records("vehicles", shop, deleted=None):
            out["vehicles"].add((v["id"], shop, v["customerId"], v["vin"], _ts(v["updatedDate"]),
                                 _ts(v.get("deletedDate"))))
        for ro in store.records("repair-orders", shop, deleted=None):
            out["repair_orders"].add((
                ro["id"], shop, ro["repairOrderStatus"]["code"], _int(ro["laborSales"]), _int(ro["partsSales"]),
                _int(ro["subletSales"]), _int(ro["feeTotal"]), _int(ro["discountTotal"]), _int(ro["totalSales"]),
                _ts(ro["updatedDate"]), _ts(ro.get("postedDate")), _ts(ro.get("deletedDate"))))
            for job in ro["jobs"]:
                out["jobs"].add((job["id"], ro["id"], bool(job["authorized"]), _int(job["laborTotal"]),
                                 _int(job["partsTotal"])))
                for line in job["labor"]:
                    out["job_labor"].add((line["id"], job["id"], _int(line["rate"]), _num(line["hours"])))
                for part in job["parts"]:
                    out["job_parts"].add((part["id"], job["id"], _num(part["quantity"]), _int(part["cost"]),
                                          _int(part["retail"]), part["name"]))
                for fee in job["fees"]:
                    out["job_fees"].add((fee["id"], ro["id"], job["id"], _int(fee["total"])))
            for sublet in ro["sublets"]:
                out["job_sublets"].add((sublet["id"], ro["id"], _int(sublet["price"]), _int(sublet["cost"])))
            for fee in ro["fees"]:
                out["job_fees"].add((fee["id"], ro["id"], None, _int(fee["total"])))
    return out


WAREHOUSE_SQL = {
    "employees": "SELECT employee_id, shop_id, first_name, last_name, role_id FROM employees",
    "customers": "SELECT customer_id, shop_id, first_name, last_name, email, updated_date, deleted_date FROM customers",
    "vehicles": "SELECT vehicle_id, shop_id, customer_id, vin, updated_date, deleted_date FROM vehicles",
    "repair_orders": "SELECT ro_id, shop_id, status_code, labor_sales, parts_sales, sublet_sales, fee_total, "
                     "discount_total, total_sales, updated_date, posted_at, deleted_date FROM repair_orders",
    "jobs": "SELECT job_id, ro_id, authorized, labor_total, parts_total FROM jobs",
    "job_labor": "SELECT labor_id, job_id, rate, hours FROM job_labor",
    "job_parts": "SELECT part_id, job_id, quantity, cost, retail, name FROM job_parts",
    "job_sublets": "SELECT sublet_id, ro_id, price, cost FROM job_sublets",
    "job_fees": "SELECT fee_id, ro_id, job_id, total FROM job_fees",
}
SHOP_FILTER = {"jobs": "ro_id", "job_labor": "ro_id", "job_parts": "ro_id", "job_sublets": "ro_id",
               "job_fees": "ro_id"}


def warehouse_rows(query: Query, shop_ids: Iterable[int]) -> dict[str, set[tuple]]:
    shops = list(shop_ids)
    out = {}
    for table, sql in WAREHOUSE_SQL.items():
        where = (" WHERE ro_id IN (SELECT ro_id FROM repair_orders WHERE shop_id = ANY(%s))" if table in SHOP_FILTER
                 else " WHERE shop_id = ANY(%s)")
        out[table] = {tuple(_num(v) if isinstance(v, Decimal) else v for v in row) for row in query(sql + where, (shops,))}
    return out


def differences(store, query: Query, shop_ids: Iterable[int] | None = None, show: int = 3) -> dict[str, str]:
    """Table -> what differs between the emulator and the warehouse ({} when they match)."""
    shops = list(shop_ids) if shop_ids is not None else list(store.shop_ids)
    want, have = expected_rows(store, shops), warehouse_rows(query, shops)
    out = {}
    for table in want:
        missing, extra = want[table] - have[table], have[table] - want[table]
        if missing or extra:
            out[table] = (f"{len(want[table])} expected, {len(have[table])} in the warehouse; missing or different "
                          f"{sorted(missing, key=str)[:show]}; unexpected {sorted(extra, key=str)[:show]}")
    return out


def table_counts(query: Query, shop_ids: Iterable[int]) -> dict[str, int]:
    return {table: len(rows) for table, rows in warehouse_rows(query, shop_ids).items()}
