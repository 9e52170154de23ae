"""Tekmetric payloads -> warehouse rows, and a repair order written with its children as one set.

Mapping is pure (payload in, row dicts out) so it is testable without a database; a value
the warehouse must not take (a fractional cent, an unreadable timestamp) raises
:class:`RowError` naming the record, the field and the value.

:class:`RepairOrderSetWriter` replaces each changed RO's jobs, labor, parts, sublets and fees
inside the caller's transaction: the children of an RO are deleted and the payload's inserted,
so a job removed in Tekmetric disappears here. An RO whose normalized payload (and labor cost
rates) hash the same as the stored one is left alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from datasync.db import Database
from datasync.engine.state import Counts, Reject
from datasync.engine.table import TableInfo
from datasync.engine.writers import Writer, writer_for
from datasync.tekmetric.values import cents, parse_timestamp, repair_order_money

log = logging.getLogger(__name__)

# Bump when the mapping changes what a payload becomes: stored ROs then hash differently and
# are rewritten when next read.
MAPPING_VERSION = "1"

ROLES = {1: "admin", 2: "service_advisor", 3: "technician", 4: "owner"}

COLUMNS: dict[str, list[str]] = {
    "employees": ["employee_id", "shop_id", "first_name", "last_name", "email", "role_id", "role_code", "role",
                  "can_perform_work", "status", "created_date", "updated_date"],
    "customers": ["customer_id", "shop_id", "first_name", "last_name", "email", "phone", "phones", "address1",
                  "address2", "city", "state", "zip", "customer_type", "ok_for_marketing", "notes", "created_date",
                  "updated_date", "deleted_date"],
    "vehicles": ["vehicle_id", "shop_id", "customer_id", "year", "make", "model", "sub_model", "engine", "color",
                 "license_plate", "plate_state", "vin", "unit_number", "created_date", "updated_date", "deleted_date"],
    "repair_orders": ["ro_id", "shop_id", "ro_number", "status_id", "status_code", "status_name", "customer_id",
                      "vehicle_id", "technician_id", "service_writer_id", "miles_in", "miles_out", "created_date",
                      "updated_date", "completed_at", "posted_at", "completed_date", "posted_date", "deleted_date",
                      "labor_sales", "parts_sales", "sublet_sales", "discount_total", "fee_total", "taxes",
                      "amount_paid", "total_sales", "discount_lines", "customer_concerns", "payload_hash",
                      "synced_at"],
    "jobs": ["job_id", "ro_id", "shop_id", "vehicle_id", "customer_id", "name", "category", "authorized",
             "authorized_date", "selected", "technician_id", "note", "labor_total", "parts_total", "fee_total",
             "discount_total", "subtotal", "archived", "labor_hours", "logged_hours", "discount_lines",
             "created_date", "updated_date", "completed_at"],
    "job_labor": ["labor_id", "job_id", "ro_id", "shop_id", "name", "rate", "hours", "complete", "technician_id",
                  "cost_rate", "rate_source"],
    "job_parts": ["part_id", "job_id", "ro_id", "shop_id", "quantity", "brand", "name", "part_number", "description",
                  "cost", "retail", "part_type_id", "part_type_code"],
    "job_sublets": ["sublet_id", "ro_id", "job_id", "shop_id", "name", "vendor_id", "vendor_name", "authorized",
                    "authorized_date", "selected", "note", "price", "cost", "items"],
    "job_fees": ["fee_id", "ro_id", "job_id", "shop_id", "name", "fee_type", "total"],
}
KEYS = {table: [columns[0]] for table, columns in COLUMNS.items()}
RO_CHILDREN = ("jobs", "job_labor", "job_parts", "job_sublets", "job_fees")  # insert order (FKs)


class RowError(ValueError):
    """A record the warehouse cannot take as it is; names what is wrong."""

    def __init__(self, table: str, key: Any, column: str | None, value: Any, reason: str):
        self.table, self.key, self.column, self.value, self.reason = table, key, column, value, reason
        super().__init__(reason)

    def reject(self, record: dict | None = None) -> Reject:
        return Reject(self.table, self.key, self.column, self.value, self.reason, _brief(record or {}))


def _brief(record: dict) -> dict:
    """What a reject keeps of a payload: ids and dates, not the whole (PII-laden) record."""
    keep = ("id", "repairOrderNumber", "shopId", "updatedDate", "deletedDate", "repairOrderStatus")
    return {k: record[k] for k in keep if k in record}


# ---- the shop a sync writes for ----------------------------------------------------------------

@dataclass(frozen=True)
class ShopContext:
    """What mapping needs to know about a shop: its timezone and its labor cost rates."""

    shop_id: int
    name: str
    timezone: str
    default_cost_rate: int  # cents/hour
    tech_rates: dict[int, int] = field(default_factory=dict)  # employee -> assigned cents/hour
    # employees whose rate makes the shop average (active technicians); None: all of tech_rates
    average_of: frozenset[int] | None = None

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)

    @property
    def shop_avg_rate(self) -> int | None:
        """The average assigned rate of the shop's active technicians, rounded to a cent (half up)."""
        rates = [r for e, r in self.tech_rates.items() if self.average_of is None or e in self.average_of]
        if not rates:
            return None
        return int((Decimal(sum(rates)) / len(rates)).quantize(Decimal(1), ROUND_HALF_UP))

    def cost_rate(self, technician_id: int | None) -> tuple[int, str]:
        """(cents/hour, rate_source) for labor done by ``technician_id``.

        assigned: the technician's own rate; shop_avg: a technician without one gets the average
        of those who have one; default: the shop's default when no technician is named or no
        technician of the shop has a rate.
        """
        if technician_id and technician_id in self.tech_rates:
            return self.tech_rates[technician_id], "assigned"
        avg = self.shop_avg_rate
        if technician_id and avg is not None:
            return avg, "shop_avg"
        return self.default_cost_rate, "default"

    def local_date(self, moment: dt.datetime | None) -> dt.date | None:
        return None if moment is None else moment.astimezone(self.zone).date()


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"shops.timezone {name!r} is not an IANA time zone (e.g. America/Chicago)") from None


def load_shop(db: Database, shop_id: int) -> ShopContext:
    row = db.fetchone("SELECT name, timezone, default_labor_cost_cents FROM shops WHERE shop_id = %s", (shop_id,))
    if row is None:
        db.commit()
        raise LookupError(f"shop {shop_id} is not in the shops table; list_shops adds the shops the token can read")
    # An assigned rate applies to whoever is named on the work (also someone who left since);
    # the shop average is over the active technicians.
    rates = db.fetchall(
        "SELECT employee_id, hourly_cost_cents, status = 'ACTIVE' AND can_perform_work FROM employees "
        "WHERE shop_id = %s AND hourly_cost_cents IS NOT NULL", (shop_id,))
    db.commit()
    _zone(row[1])
    return ShopContext(shop_id, row[0], row[1], int(row[2]), {int(e): int(r) for e, r, _ in rates},
                       frozenset(int(e) for e, _, active in rates if active))


# ---- value helpers -------------------------------------------------------------------------------

def _when(record: dict, name: str, table: str, key: Any) -> dt.datetime | None:
    try:
        return parse_timestamp(record.get(name), name)
    except ValueError as exc:
        raise RowError(table, key, name, record.get(name), str(exc)) from None


def _code(value: Any, part: str = "code") -> Any:
    return value.get(part) if isinstance(value, dict) else None


def _number(value: Any, name: str, table: str, key: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        number = None
    if number is None or not number.is_finite() or isinstance(value, bool):
        raise RowError(table, key, name, value, f"{table} {key}: {name} = {value!r} is not a number")
    return number


def _money(value: Any, name: str, table: str, key: Any, where: str) -> int:
    try:
        amount = cents(value, name, where)
    except ValueError as exc:
        raise RowError(table, key, name, value, str(exc)) from None
    return 0 if amount is None else amount


def _line(line: dict) -> dict:
    return {"id": line.get("id"), "name": line.get("name"), "total": line.get("total")}


# ---- employees, customers, vehicles ----------------------------------------------------------------

def employee_row(record: dict, shop_id: int) -> dict:
    """``shop_id`` comes from the request: Tekmetric's employee body has none."""
    key = record.get("id")
    role = record.get("employeeRole") or {}
    role_id = role.get("id") if isinstance(role, dict) else None
    return {
        "employee_id": key, "shop_id": shop_id, "first_name": record.get("firstName"),
        "last_name": record.get("lastName"), "email": record.get("email"), "role_id": role_id,
        "role_code": _code(role), "role": ROLES.get(role_id, "other"),
        "can_perform_work": bool(record.get("canPerformWork")), "status": "ACTIVE",
        "created_date": _when(record, "createdDate", "employees", key),
        "updated_date": _when(record, "updatedDate", "employees", key),
    }


def customer_row(record: dict, shop_id: int) -> dict:
    key = record.get("id")
    phones = record.get("phone") or []
    primary = next((p for p in phones if isinstance(p, dict) and p.get("primary")), phones[0] if phones else None)
    address = record.get("address") or {}
    return {
        "customer_id": key, "shop_id": record.get("shopId") or shop_id, "first_name": record.get("firstName"),
        "last_name": record.get("lastName"), "email": record.get("email"),
        "phone": primary.get("number") if isinstance(primary, dict) else None, "phones": phones or None,
        "address1": address.get("address1"), "address2": address.get("address2"), "city": address.get("city"),
        "state": address.get("state"), "zip": address.get("zip"),
        "customer_type": _code(record.get("customerType")), "ok_for_marketing": record.get("okForMarketing"),
        "notes": record.get("notes"),
        "created_date": _when(record, "createdDate", "customers", key),
        "updated_date": _when(record, "updatedDate", "customers", key),
        "deleted_date": _when(record, "deletedDate", "customers", key),
    }


def vehicle_row(record: dict, shop_id: int) -> dict:
    """``shop_id`` comes from the request: Tekmetric's vehicle body has none."""
    key = record.get("id")
    return {
        "vehicle_id": key, "shop_id": shop_id, "customer_id": record.get("customerId"),
        "year": record.get("year"), "make": record.get("make"), "model": record.get("model"),
        "sub_model": record.get("subModel"), "engine": record.get("engine"), "color": record.get("color"),
        "license_plate": record.get("licensePlate"), "plate_state": record.get("state"), "vin": record.get("vin"),
        "unit_number": record.get("unitNumber"),
        "created_date": _when(record, "createdDate", "vehicles", key),
        "updated_date": _when(record, "updatedDate", "vehicles", key),
        "deleted_date": _when(record, "deletedDate", "vehicles", key),
    }


SIMPLE_MAPPERS = {"employees": employee_row, "customers": customer_row, "vehicles": vehicle_row}


# ---- repair orders ----------------------------------------------------------------------------------

FEE_TYPES = (  # first match on the lower-cased fee name wins
    ("shop_supplies", ("shop suppl", "supplies")),
    ("environmental", ("environment", "epa")),
    ("disposal", ("disposal", "recycl", "tire fee")),
    ("hazmat", ("hazmat", "hazardous")),
)


def fee_type(name: str | None) -> str:
    text = (name or "").lower()
    for kind, words in FEE_TYPES:
        if any(w in text for w in words):
            return kind
    return "other"


@dataclass
class RepairOrderRows:
    """One repair order as rows of every table it writes."""

    ro_id: int
    ro: dict
    jobs: list[dict] = field(default_factory=list)
    job_labor: list[dict] = field(default_factory=list)
    job_parts: list[dict] = field(default_factory=list)
    job_sublets: list[dict] = field(default_factory=list)
    job_fees: list[dict] = field(default_factory=list)

    @property
    def payload_hash(self) -> str:
        return self.ro["payload_hash"]

    def rows(self, table: str) -> list[dict]:
        return [self.ro] if table == "repair_orders" else getattr(self, table)


def normalized_money(payload: dict) -> dict:
    """A copy with every money field an ``int``; the first bad amount raises :class:`RowError`."""
    ro = json.loads(json.dumps(payload))
    key = ro.get("id")
    for container, name, path in repair_order_money(ro):
        container[name] = _money(container[name], path, "repair_orders", key, f"repair order {key}")
    return ro


def repair_order_rows(payload: dict, shop: ShopContext, synced_at: dt.datetime | None = None) -> RepairOrderRows:
    """Map one RO payload (jobs, lines, sublets, fees embedded) for ``shop``."""
    ro = normalized_money(payload)
    key = ro.get("id")
    if not isinstance(key, int):
        raise RowError("repair_orders", key, "id", key, f"repair order id {key!r} is not an integer")
    t = "repair_orders"
    status = ro.get("repairOrderStatus") or {}
    completed_at, posted_at = _when(ro, "completedDate", t, key), _when(ro, "postedDate", t, key)
    ro_tech = ro.get("technicianId")
    out = RepairOrderRows(key, {
        "ro_id": key, "shop_id": ro.get("shopId") or shop.shop_id, "ro_number": ro.get("repairOrderNumber"),
        "status_id": status.get("id"), "status_code": status.get("code"), "status_name": status.get("name"),
        "customer_id": ro.get("customerId"), "vehicle_id": ro.get("vehicleId"), "technician_id": ro_tech,
        "service_writer_id": ro.get("serviceWriterId"),
        "miles_in": _number(ro.get("milesIn"), "milesIn", t, key),
        "miles_out": _number(ro.get("milesOut"), "milesOut", t, key),
        "created_date": _when(ro, "createdDate", t, key), "updated_date": _when(ro, "updatedDate", t, key),
        "completed_at": completed_at, "posted_at": posted_at,
        "completed_date": shop.local_date(completed_at), "posted_date": shop.local_date(posted_at),
        "deleted_date": _when(ro, "deletedDate", t, key),
        "labor_sales": ro.get("laborSales") or 0, "parts_sales": ro.get("partsSales") or 0,
        "sublet_sales": ro.get("subletSales") or 0, "discount_total": ro.get("discountTotal") or 0,
        "fee_total": ro.get("feeTotal") or 0, "taxes": ro.get("taxes") or 0, "amount_paid": ro.get("amountPaid") or 0,
        "total_sales": ro.get("totalSales") or 0,
        "discount_lines": [_line(d) for d in ro.get("discounts") or []],
        "customer_concerns": ro.get("customerConcerns") or [],
        "payload_hash": "", "synced_at": synced_at or dt.datetime.now(dt.timezone.utc),
    })
    if out.ro["updated_date"] is None:
        raise RowError(t, key, "updatedDate", None, f"repair order {key} has no updatedDate")
    shop_id = out.ro["shop_id"]
    for job in ro.get("jobs") or []:
        job_id = job.get("id")
        job_tech = job.get("technicianId")
        out.jobs.append({
            "job_id": job_id, "ro_id": key, "shop_id": shop_id, "vehicle_id": job.get("vehicleId"),
            "customer_id": job.get("customerId"), "name": job.get("name"), "category": job.get("jobCategoryName"),
            "authorized": bool(job.get("authorized")), "authorized_date": _when(job, "authorizedDate", "jobs", job_id),
            "selected": job.get("selected"), "technician_id": job_tech, "note": job.get("note"),
            "labor_total": job.get("laborTotal") or 0, "parts_total": job.get("partsTotal") or 0,
            "fee_total": job.get("feeTotal") or 0, "discount_total": job.get("discountTotal") or 0,
            "subtotal": job.get("subtotal") or 0, "archived": bool(job.get("archived")),
            "labor_hours": _number(job.get("laborHours"), "laborHours", "jobs", job_id),
            "logged_hours": _number(job.get("loggedHours"), "loggedHours", "jobs", job_id),
            "discount_lines": [_line(d) for d in job.get("discounts") or []],
            "created_date": _when(job, "createdDate", "jobs", job_id),
            "updated_date": _when(job, "updatedDate", "jobs", job_id),
            "completed_at": _when(job, "completedDate", "jobs", job_id),
        })
        for line in job.get("labor") or []:
            line_tech = line.get("technicianId")
            rate, source = shop.cost_rate(line_tech or job_tech or ro_tech)
            out.job_labor.append({
                "labor_id": line.get("id"), "job_id": job_id, "ro_id": key, "shop_id": shop_id,
                "name": line.get("name"), "rate": line.get("rate") or 0,
                "hours": _number(line.get("hours"), "labor.hours", "job_labor", line.get("id")) or 0,
                "complete": line.get("complete"), "technician_id": line_tech,
                "cost_rate": rate, "rate_source": source,
            })
        for part in job.get("parts") or []:
            kind = part.get("partType") or {}
            out.job_parts.append({
                "part_id": part.get("id"), "job_id": job_id, "ro_id": key, "shop_id": shop_id,
                "quantity": _number(part.get("quantity"), "parts.quantity", "job_parts", part.get("id")) or 0,
                "brand": part.get("brand"), "name": part.get("name"), "part_number": part.get("partNumber"),
                "description": part.get("description"), "cost": part.get("cost") or 0,
                "retail": part.get("retail") or 0, "part_type_id": kind.get("id"), "part_type_code": kind.get("code"),
            })
        for fee in job.get("fees") or []:
            out.job_fees.append(_fee_row(fee, key, job_id, shop_id))
    for sublet in ro.get("sublets") or []:
        vendor = sublet.get("vendor") or {}
        sublet_id = sublet.get("id")
        out.job_sublets.append({
            "sublet_id": sublet_id, "ro_id": key, "job_id": sublet.get("jobId"), "shop_id": shop_id,
            "name": sublet.get("name"), "vendor_id": vendor.get("id"), "vendor_name": vendor.get("name"),
            "authorized": bool(sublet.get("authorized")),
            "authorized_date": _when(sublet, "authorizedDate", "job_sublets", sublet_id),
            "selected": sublet.get("selected"), "note": sublet.get("note"),
            "price": sublet.get("price") or 0, "cost": sublet.get("cost") or 0, "items": sublet.get("items") or [],
        })
    for fee in ro.get("fees") or []:
        out.job_fees.append(_fee_row(fee, key, None, shop_id))
    # The cost rates are part of what was written: a changed rate re-prices the RO when next read.
    rates = [(r["labor_id"], r["cost_rate"], r["rate_source"]) for r in out.job_labor]
    digest = json.dumps([MAPPING_VERSION, ro, rates, shop.timezone], sort_keys=True, default=str)
    out.ro["payload_hash"] = hashlib.sha256(digest.encode()).hexdigest()
    return out


def _fee_row(fee: dict, ro_id: int, job_id: int | None, shop_id: int) -> dict:
    return {"fee_id": fee.get("id"), "ro_id": ro_id, "job_id": job_id, "shop_id": shop_id, "name": fee.get("name"),
            "fee_type": fee_type(fee.get("name")), "total": fee.get("total") or 0}


# ---- writing -----------------------------------------------------------------------------------------

def as_tuples(table: str, rows: Iterable[dict]) -> list[tuple]:
    columns = COLUMNS[table]
    return [tuple(row[c] for c in columns) for row in rows]


def make_writer(db: Database, table: str) -> Writer:
    """An engine writer (COPY -> staging -> ON CONFLICT ... IS DISTINCT FROM) for one table.

    Writers commit when created (their staging table): make them before a transaction starts.
    """
    return writer_for(db, TableInfo.load(db, table), COLUMNS[table], KEYS[table])


@dataclass
class SetResult:
    counts: Counts = field(default_factory=Counts)  # of repair_orders rows
    children: dict[str, int] = field(default_factory=dict)  # rows inserted per child table
    replaced: dict[str, int] = field(default_factory=dict)  # rows deleted per child table
    rejects: list[Reject] = field(default_factory=list)
    written: list[int] = field(default_factory=list)  # RO ids written (new or changed)
    touched_days: set[dt.date] = field(default_factory=set)  # posted days before and after


class RepairOrderSetWriter:
    """Writes ROs and their children in the caller's transaction; see the module docstring."""

    def __init__(self, db: Database):
        self.db = db
        self.writers = {table: make_writer(db, table) for table in ("repair_orders", *RO_CHILDREN)}

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()

    def write(self, ros: list[RepairOrderRows], *, force: bool = False) -> SetResult:
        result = SetResult()
        if not ros:
            return result
        result.counts.read = len(ros)
        stored = {r[0]: (r[1], r[2]) for r in self.db.fetchall(
            "SELECT ro_id, payload_hash, posted_date FROM repair_orders WHERE ro_id = ANY(%s)", ([r.ro_id for r in ros],))}
        changed = [r for r in ros if force or stored.get(r.ro_id, (None,))[0] != r.payload_hash]
        result.counts.unchanged = len(ros) - len(changed)
        self.db.execute("SAVEPOINT tm_ro_set")
        while changed:
            counts, children, replaced, rejects = self._write(changed)
            if not rejects:
                break
            # The database refused a row of some ROs: take those ROs out whole and write the rest again.
            self.db.execute("ROLLBACK TO SAVEPOINT tm_ro_set")
            first: dict[Any, Reject] = {}  # one per RO: its own row's refusal comes before its children's
            for reject in rejects:
                first.setdefault(_ro_of(reject), _as_ro_reject(reject))
            result.rejects += first.values()
            changed = [r for r in changed if r.ro_id not in first]
        else:
            counts, children, replaced = Counts(), {}, {}
        self.db.execute("RELEASE SAVEPOINT tm_ro_set")
        result.counts.inserted, result.counts.updated = counts.inserted, counts.updated
        result.counts.unchanged += counts.unchanged
        result.counts.rejected = len(result.rejects)
        result.children, result.replaced = children, replaced
        result.written = [r.ro_id for r in changed]
        for r in changed:
            old = stored.get(r.ro_id, (None, None))[1]
            result.touched_days.update(d for d in (old, r.ro["posted_date"]) if d is not None)
        return result

    def _write(self, ros: list[RepairOrderRows]) -> tuple[Counts, dict[str, int], dict[str, int], list[Reject]]:
        ids = [r.ro_id for r in ros]
        counts, rejects = self.writers["repair_orders"].write(as_tuples("repair_orders", (r.ro for r in ros)))
        # Children go as a set: everything the ROs had is deleted, what the payloads have is inserted.
        replaced = {}
        for table in ("jobs", "job_sublets", "job_fees", "job_labor", "job_parts"):  # jobs cascade to lines
            replaced[table] = self.db.execute(f"DELETE FROM {table} WHERE ro_id = ANY(%s)", (ids,)).rowcount
        children = {}
        for table in RO_CHILDREN:
            rows = [row for r in ros for row in r.rows(table)]
            child_counts, child_rejects = self.writers[table].write(as_tuples(table, rows)) if rows else (Counts(), [])
            children[table] = child_counts.inserted + child_counts.updated
            rejects += child_rejects
        return counts, children, replaced, rejects


def _ro_of(reject: Reject) -> Any:
    return reject.row.get("ro_id", reject.key) if reject.table != "repair_orders" else reject.key


def _as_ro_reject(reject: Reject) -> Reject:
    """A child row's refusal, named by its repair order (the whole RO is held back)."""
    if reject.table == "repair_orders":
        return reject
    ro_id = _ro_of(reject)
    column = f"{reject.table}.{reject.column}" if reject.column else reject.table
    reason = f"{reject.table} {reject.key} of repair order {ro_id}: {reject.reason}"
    return Reject("repair_orders", ro_id, column, reject.value, reason, reject.row)
