"""The emulator's data: deterministic shops, employees, customers, vehicles and repair orders.

Records are kept in Tekmetric's wire shape except that timestamps are datetimes (so filters
compare instants); :meth:`DataStore.wire` turns one into the JSON the API serves. Everything
is generated from a seed, relative to an anchor instant, so a seed always gives the same data.
Mutations (what tests do to the "truth") stamp ``updatedDate`` with the wall clock.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import random
import threading
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from datasync.tekmetric.values import RO_MONEY, UTC, format_timestamp

KINDS = ("employees", "customers", "vehicles", "repair-orders")
NO_SHOP_ID_IN_BODY = ("employees", "vehicles")  # Tekmetric omits shopId there [field]

RO_STATUS = {
    1: ("ESTIMATE", "Estimate"),
    2: ("WORKINPROGRESS", "Work In Progress"),
    3: ("COMPLETE", "Complete"),
    4: ("SAVEDFORLATER", "Saved for Later"),
    5: ("POSTED", "Posted"),
    6: ("ACCRECV", "Accounts Receivable"),
    7: ("DELETED", "Deleted"),
}
ROLES = {1: ("ADMIN", "Admin"), 2: ("SERVICEADVISOR", "Service Advisor"), 3: ("TECHNICIAN", "Technician"),
         4: ("OWNER", "Owner")}
PART_TYPES = {"PART": {"id": 1, "code": "PART", "name": "Part"}, "TIRE": {"id": 2, "code": "TIRE", "name": "Tire"},
              "BATTERY": {"id": 3, "code": "BATTERY", "name": "Battery"}}

SHOP_PLACES = [
    ("America/Chicago", "Austin", "TX", "787"), ("America/New_York", "Raleigh", "NC", "276"),
    ("America/Denver", "Boulder", "CO", "803"), ("America/Los_Angeles", "Fresno", "CA", "937"),
    ("America/Phoenix", "Mesa", "AZ", "852"),
]
SHOP_NAMES = ["JJ Auto", "Northside Motors", "Precision Auto Care", "Main Street Garage", "Valley Tire & Brake"]
FIRST = ["James", "Maria", "Robert", "Linda", "Michael", "Ana", "David", "Susan", "Carlos", "Karen", "Daniel", "Nancy",
         "Thanh", "Lisa", "Kevin", "Priya", "Brian", "Emily", "Jose", "Grace", "Tyrone", "Mei", "Omar", "Hannah"]
LAST = ["Smith", "Garcia", "Johnson", "Nguyen", "Brown", "Martinez", "Davis", "Lopez", "Wilson", "Patel", "Moore",
        "Taylor", "Anderson", "Thomas", "Jackson", "White", "Harris", "Clark", "Lewis", "Walker"]
STREETS = ["Oak St", "Maple Ave", "Cedar Ln", "Elm St", "Pine Rd", "Lakeview Dr", "Hillcrest Blvd", "Main St"]
VEHICLES = [("Toyota", "Camry", "LE", "2.5L I4"), ("Honda", "Civic", "EX", "1.5L I4 Turbo"),
            ("Ford", "F-150", "XLT", "3.5L V6"),
            ("Chevrolet", "Silverado 1500", "LT", "5.3L V8"), ("Nissan", "Altima", "SV", "2.5L I4"),
            ("Subaru", "Outback", "Premium", "2.5L H4"), ("Jeep", "Grand Cherokee", "Laredo", "3.6L V6"),
            ("BMW", "328i", "Base", "2.0L I4 Turbo"), ("Hyundai", "Elantra", "SEL", "2.0L I4"),
            ("Tesla", "Model 3", "Long Range", "Electric")]
COLORS = ["White", "Black", "Silver", "Gray", "Blue", "Red"]
CONCERNS = ["Noise when braking", "Check engine light on", "Due for oil change", "AC blows warm", "Pulls to the right",
            "Battery dies overnight", "Vibration at highway speed"]
# name, category, labor hours range, parts: (name, brand, part type, cost range in cents, quantity)
JOBS = [
    ("Oil & Filter Change", "Maintenance", (0.3, 0.5), [("Synthetic Oil 0W-20", "Mobil 1", "PART", (550, 750), 5.0),
                                                       ("Oil Filter", "Wix", "PART", (600, 900), 1.0)]),
    ("Front Brake Pads & Rotors", "Brakes", (1.2, 2.0), [("Ceramic Brake Pads", "Akebono", "PART", (4500, 6500), 1.0),
                                                         ("Brake Rotor", "Brembo", "PART", (5500, 8500), 2.0)]),
    ("Battery Replacement", "Electrical", (0.4, 0.6),
     [("Battery Group 35", "Interstate", "BATTERY", (11000, 15000), 1.0)]),
    ("Four Tires Mount & Balance", "Tires", (1.0, 1.0),
     [("All-Season Tire 225/65R17", "Michelin", "TIRE", (11000, 16000), 4.0)]),
    ("Diagnose Check Engine Light", "Diagnostics", (1.0, 1.5), []),
    ("AC Recharge", "HVAC", (0.8, 1.2), [("R-1234yf Refrigerant (oz)", "Honeywell", "PART", (180, 260), 16.0)]),
    ("Coolant Flush", "Maintenance", (0.8, 1.0), [("Coolant 50/50 (gal)", "Prestone", "PART", (1400, 1900), 1.5)]),
    ("Wheel Alignment", "Steering & Suspension", (1.0, 1.0), []),
    ("Spark Plugs", "Tune-Up", (1.0, 2.5), [("Iridium Spark Plug", "NGK", "PART", (800, 1400), 4.0)]),
    ("Cabin & Engine Air Filters", "Maintenance", (0.3, 0.4),
     [("Cabin Air Filter", "Fram", "PART", (1200, 1800), 1.0),
      ("Engine Air Filter", "Fram", "PART", (1300, 2000), 1.0)]),
]
SUBLETS = [("Transmission Rebuild", "Gear Masters Transmission"), ("Windshield Replacement", "Clear View Glass"),
           ("Exhaust Weld", "Muffler Pros")]


class DataStore:
    """All records of every shop, thread-safe; ids are global like Tekmetric's."""

    def __init__(self, shops: int = 3, seed: int = 1, *, anchor: dt.datetime | None = None, weeks: int = 6,
                 employees: int = 8, customers: int = 120, repair_orders: int = 150):
        self.lock = threading.RLock()
        self.seed = seed
        # Generated timestamps all lie before the anchor (by default the start of the previous UTC hour):
        # at least an hour old, so a sync's overlap window never re-reads generated data, whatever the time.
        default = dt.datetime.now(UTC) - dt.timedelta(hours=1)
        self.anchor = (anchor or default).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        self.weeks = weeks
        self._rng = random.Random(seed)
        self._ids = {kind: itertools.count(base) for kind, base in (
            ("shops", 6212), ("employees", 10_001), ("customers", 200_001), ("vehicles", 300_001),
            ("repair-orders", 4_000_001), ("jobs", 50_000_001), ("lines", 600_000_001))}
        self._ro_numbers: dict[int, itertools.count] = {}
        self._last_stamp = self.anchor
        self.shops: dict[int, dict] = {}
        self.tables: dict[str, dict[int, dict]] = {kind: {} for kind in KINDS}
        for index in range(shops):
            self._generate_shop(index, employees, customers, repair_orders)
        # Generated instants are whole seconds; only later changes carry milliseconds.
        for table in self.tables.values():
            for row in table.values():
                _whole_seconds(row)

    # -- reading -------------------------------------------------------------------------

    @property
    def shop_ids(self) -> list[int]:
        return list(self.shops)

    def shop(self, shop_id: int) -> dict:
        """One shop as /shops serves it."""
        return self.wire("shops", self.shops[shop_id])

    def shop_timezone(self, shop_id: int) -> ZoneInfo:
        return ZoneInfo(self.shops[shop_id]["timeZone"])

    def shop_of(self, kind: str, record_id: int) -> int:
        """The shop a record belongs to (also for employees and vehicles, whose bodies lack it)."""
        with self.lock:
            return self._table(kind)[record_id]["shopId"]

    def get(self, kind: str, record_id: int) -> dict:
        """One record as the API serves it (faults aside)."""
        with self.lock:
            return self.wire(kind, self._table(kind)[record_id])

    def records(self, kind: str, shop_id: int | None = None, *, deleted: bool | None = False) -> list[dict]:
        """Records as the API serves them, by id; ``deleted``: False = live only, True = deleted only, None = all."""
        with self.lock:
            rows = [r for r in self._table(kind).values()
                    if (shop_id is None or r["shopId"] == shop_id)
                    and (deleted is None or (r.get("deletedDate") is not None) == deleted)]
            return [self.wire(kind, r) for r in sorted(rows, key=lambda r: r["id"])]

    def jobs(self, shop_id: int | None = None) -> list[dict]:
        """Jobs of live repair orders, as /jobs serves them."""
        with self.lock:
            return [self.wire("jobs", j) for j in self.job_rows(shop_id)]

    def job_rows(self, shop_id: int | None = None) -> list[dict]:
        rows = [job for ro in self.tables["repair-orders"].values()
                if ro["deletedDate"] is None and (shop_id is None or ro["shopId"] == shop_id) for job in ro["jobs"]]
        return sorted(rows, key=lambda j: j["id"])

    def rows(self, kind: str) -> Iterable[dict]:
        """Internal rows (datetimes, shopId everywhere); callers hold :attr:`lock`."""
        return self.job_rows() if kind == "jobs" else self._table(kind).values()

    def wire(self, kind: str, row: dict) -> dict:
        """JSON-ready copy of an internal row."""
        out = _jsonable(copy.deepcopy(row))
        if kind in NO_SHOP_ID_IN_BODY:
            out.pop("shopId", None)
        return out

    # -- mutations (each bumps updatedDate, as Tekmetric does) ---------------------------

    def update(self, kind: str, record_id: int, **changes: Any) -> dict:
        """Change fields of a record; ``updatedDate`` moves to now.

        For repair orders ``repairOrderStatus`` may be given as a status id, and changed
        jobs, sublets, fees or discounts recompute the totals.
        """
        with self.lock:
            row = self._table(kind)[record_id]
            status = changes.pop("repairOrderStatus", None)
            row.update(changes)
            if status is not None:
                _set_status(row, status if isinstance(status, int) else status["id"])
            if kind == "repair-orders" and changes.keys() & {"jobs", "sublets", "fees", "discounts"}:
                _recompute_totals(row)
            row["updatedDate"] = self._stamp()
            return self.wire(kind, row)

    def delete(self, kind: str, record_id: int) -> dict:
        """Soft-delete: ``deletedDate`` and ``updatedDate`` become now; normal reads stop returning it."""
        with self.lock:
            row = self._table(kind)[record_id]
            row["deletedDate"] = row["updatedDate"] = self._stamp()
            return self.wire(kind, row)

    def update_job(self, ro_id: int, job_id: int, **changes: Any) -> dict:
        """Change a job; the job's and its repair order's ``updatedDate`` move to now."""
        with self.lock:
            ro = self.tables["repair-orders"][ro_id]
            job = next(j for j in ro["jobs"] if j["id"] == job_id)
            job.update(changes)
            job["updatedDate"] = ro["updatedDate"] = self._stamp()
            _recompute_totals(ro)
            return self.wire("repair-orders", ro)

    def remove_job(self, ro_id: int, job_id: int) -> dict:
        """Drop a job from a repair order (it vanishes from the payload); totals follow."""
        with self.lock:
            ro = self.tables["repair-orders"][ro_id]
            before = len(ro["jobs"])
            ro["jobs"] = [j for j in ro["jobs"] if j["id"] != job_id]
            if len(ro["jobs"]) == before:
                raise KeyError(f"repair order {ro_id} has no job {job_id}")
            _recompute_totals(ro)
            ro["updatedDate"] = self._stamp()
            return self.wire("repair-orders", ro)

    def post_repair_order(self, ro_id: int) -> dict:
        """Move a repair order to Posted: completed (if not yet), posted and paid now."""
        with self.lock:
            ro = self.tables["repair-orders"][ro_id]
            now = self._stamp()
            _set_status(ro, 5)
            ro["completedDate"] = ro["completedDate"] or now
            ro["postedDate"] = now
            for job in ro["jobs"]:
                job["completedDate"] = job["completedDate"] or (now if job["authorized"] else None)
                for line in job["labor"]:
                    line["complete"] = True
            _recompute_totals(ro)
            ro["updatedDate"] = now
            return self.wire("repair-orders", ro)

    def add(self, kind: str, shop_id: int, **overrides: Any) -> dict:
        """A new generated record created now (repair orders get jobs); ``overrides`` win."""
        with self.lock:
            now = self._stamp()
            shop = self.shops[shop_id]
            if kind == "employees":
                row = self._employee(shop, 3, now)
            elif kind == "customers":
                row = self._customer(shop, now)
            elif kind == "vehicles":
                customer = overrides.get("customerId") or self._rng.choice(self._live_ids("customers", shop_id))
                row = self._vehicle(shop, customer, now)
            elif kind == "repair-orders":
                row = self._repair_order(shop, now, status=overrides.pop("status", 1), updated=now)
            else:
                raise KeyError(kind)
            row.update(overrides)
            row["updatedDate"] = now
            if kind == "repair-orders":
                _recompute_totals(row)
            self.tables[kind][row["id"]] = row
            return self.wire(kind, row)

    def _stamp(self) -> dt.datetime:
        """Now in ms, strictly after every earlier stamp, so each change is visible to a cursor."""
        now = dt.datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        self._last_stamp = max(now, self._last_stamp + dt.timedelta(milliseconds=1))
        return self._last_stamp

    def _table(self, kind: str) -> dict[int, dict]:
        try:
            return self.tables[kind]
        except KeyError:
            raise KeyError(f"unknown record kind {kind!r}; one of {', '.join(KINDS)}") from None

    def _live_ids(self, kind: str, shop_id: int) -> list[int]:
        return [r["id"] for r in self.tables[kind].values() if r["shopId"] == shop_id and r["deletedDate"] is None]

    # -- generation ----------------------------------------------------------------------

    def _next(self, kind: str) -> int:
        return next(self._ids[kind])

    def _generate_shop(self, index: int, employees: int, customers: int, repair_orders: int) -> None:
        rng = self._rng
        tz_name, city, state, zip3 = SHOP_PLACES[index % len(SHOP_PLACES)]
        shop_id = self._next("shops")
        name = SHOP_NAMES[index % len(SHOP_NAMES)]
        if index >= len(SHOP_NAMES):
            name += f" #{index // len(SHOP_NAMES) + 1}"
        slug = "".join(c for c in name.lower() if c.isalnum())
        self.shops[shop_id] = {
            "id": shop_id, "name": name, "nickname": name.split()[0], "phone": f"512555{1000 + index:04d}",
            "email": f"service@{slug}.example", "website": f"https://{slug}.example",
            "address": _address(rng, city, state, zip3),
            "timeZone": tz_name,  # see docs/tekmetric-api-emulator.md: the real payload may lack it
            # Shop setup the generator uses; not part of the payload.
            "_laborRate": rng.choice([12900, 13900, 14500, 15900, 16900, 18500]),
            "_taxRate": rng.choice([0.0625, 0.0725, 0.0825]),
        }
        self._ro_numbers[shop_id] = itertools.count(10_001 + 1000 * index)
        shop = self.shops[shop_id]
        created = self.anchor - dt.timedelta(days=7 * self.weeks + 60)
        for role in ([4, 2, 2] + [3] * employees)[:employees]:
            row = self._employee(shop, role, created + dt.timedelta(days=rng.uniform(0, 30)))
            self.tables["employees"][row["id"]] = row
        for _ in range(customers):
            when = self._past_instant(shop, days=7 * self.weeks + 50)
            customer = self._customer(shop, when)
            self.tables["customers"][customer["id"]] = customer
            for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
                vehicle = self._vehicle(shop, customer["id"], when + dt.timedelta(minutes=rng.randint(1, 30)))
                self.tables["vehicles"][vehicle["id"]] = vehicle
        for _ in range(repair_orders):
            when = self._past_instant(shop, days=7 * self.weeks)
            age_days = (self.anchor - when).total_seconds() / 86_400
            status = self._pick_status(age_days)
            updated = min(when + dt.timedelta(hours=rng.uniform(0.5, 96)),
                          self.anchor - dt.timedelta(minutes=rng.randint(1, 50)))
            ro = self._repair_order(shop, when, status=status, updated=max(updated, when))
            self.tables["repair-orders"][ro["id"]] = ro
        # Some people and visits are deleted in Tekmetric too.
        for kind, share in (("customers", 0.03), ("vehicles", 0.03), ("repair-orders", 0.04)):
            for row in self.tables[kind].values():
                if row["shopId"] == shop_id and rng.random() < share:
                    deleted = row["updatedDate"] + dt.timedelta(hours=rng.uniform(1, 72))
                    row["deletedDate"] = row["updatedDate"] = min(deleted, self.anchor - dt.timedelta(minutes=1))

    def _past_instant(self, shop: dict, days: float) -> dt.datetime:
        """A business-hours instant (shop-local 7:30-18:00) within the last ``days`` before the anchor."""
        tz = ZoneInfo(shop["timeZone"])
        local_day = (self.anchor - dt.timedelta(days=self._rng.uniform(0.5, days))).astimezone(tz).date()
        minutes = self._rng.randint(7 * 60 + 30, 18 * 60)
        local = dt.datetime.combine(local_day, dt.time(minutes // 60, minutes % 60, self._rng.randint(0, 59)), tz)
        return min(local.astimezone(UTC), self.anchor - dt.timedelta(hours=1))

    def _pick_status(self, age_days: float) -> int:
        if age_days > 7:
            weights = {5: 80, 6: 7, 4: 7, 1: 6}
        elif age_days > 2:
            weights = {5: 45, 3: 15, 2: 20, 1: 12, 4: 4, 6: 4}
        else:
            weights = {1: 35, 2: 40, 3: 15, 5: 10}
        return self._rng.choices(list(weights), weights=list(weights.values()))[0]

    def _employee(self, shop: dict, role: int, when: dt.datetime) -> dict:
        first, last = self._rng.choice(FIRST), self._rng.choice(LAST)
        code, name = ROLES[role]
        return {
            "id": self._next("employees"), "shopId": shop["id"],
            "email": f"{first}.{last}@{shop['email'].split('@')[1]}".lower(),
            "firstName": first, "lastName": last, "employeeRole": {"id": role, "code": code, "name": name},
            "canPerformWork": role == 3, "createdDate": when, "updatedDate": when,
        }

    def _customer(self, shop: dict, when: dt.datetime) -> dict:
        rng = self._rng
        first, last = rng.choice(FIRST), rng.choice(LAST)
        address = _address(rng, shop["address"]["city"], shop["address"]["state"], shop["address"]["zip"][:3])
        return {
            "id": self._next("customers"), "shopId": shop["id"], "firstName": first, "lastName": last,
            "email": f"{first}.{last}{rng.randint(1, 999)}@mail.example".lower(),
            "phone": [{"number": f"{rng.randint(200, 989)}555{rng.randint(0, 9999):04d}", "type": "Mobile",
                       "primary": True}],
            "address": address, "customerType": {"id": 1, "code": "CUSTOMER", "name": "Customer"},
            "okForMarketing": rng.random() < 0.6, "notes": None,
            "createdDate": when, "updatedDate": when + dt.timedelta(minutes=rng.randint(0, 120)), "deletedDate": None,
        }

    def _vehicle(self, shop: dict, customer_id: int, when: dt.datetime) -> dict:
        rng = self._rng
        make, model, sub, engine = rng.choice(VEHICLES)
        return {
            "id": self._next("vehicles"), "shopId": shop["id"], "customerId": customer_id,
            "year": rng.randint(2008, 2024), "make": make, "model": model, "subModel": sub, "engine": engine,
            "color": rng.choice(COLORS), "licensePlate": f"{rng.choice('ABCDEFGHJK')}{rng.choice('LMNPRSTVWX')}"
                                                           f"{rng.choice('ABCDEFGHJK')}{rng.randint(1000, 9999)}",
            "state": shop["address"]["state"],
            "vin": "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(17)),
            "unitNumber": None, "_miles": rng.randint(15_000, 160_000),
            "createdDate": when, "updatedDate": when, "deletedDate": None,
        }

    def _repair_order(self, shop: dict, when: dt.datetime, *, status: int, updated: dt.datetime) -> dict:
        rng = self._rng
        shop_id = shop["id"]
        vehicle = self.tables["vehicles"][rng.choice(self._live_ids("vehicles", shop_id))]
        staff = [e for e in self.tables["employees"].values() if e["shopId"] == shop_id]
        techs = [e["id"] for e in staff if e["canPerformWork"]] or [None]
        writers = [e["id"] for e in staff if e["employeeRole"]["id"] == 2] or [None]
        done = status in (3, 5, 6)
        completed = when + (updated - when) * rng.uniform(0.5, 0.9) if done else None
        posted = completed + (updated - completed) * rng.uniform(0.3, 0.9) if status in (5, 6) else None
        miles = vehicle["_miles"] + rng.randint(0, 20_000)
        ro_id = self._next("repair-orders")
        ro: dict[str, Any] = {
            "id": ro_id, "repairOrderNumber": next(self._ro_numbers[shop_id]), "shopId": shop_id,
            "repairOrderStatus": None, "customerId": vehicle["customerId"], "technicianId": rng.choice(techs),
            "serviceWriterId": rng.choice(writers), "vehicleId": vehicle["id"],
            "milesIn": miles, "milesOut": miles if done else None,
            "completedDate": completed, "postedDate": posted,
            "createdDate": when, "updatedDate": updated, "deletedDate": None,
            **dict.fromkeys(RO_MONEY, 0), "jobs": [], "sublets": [], "fees": [], "discounts": [],
            "customerConcerns": [{"id": self._next("lines"), "concern": rng.choice(CONCERNS), "techComment": None}],
        }
        _set_status(ro, status)
        for _ in range(rng.choice([1, 1, 2, 2, 3, 4])):
            ro["jobs"].append(self._job(shop, ro, rng.choice(techs), status, when, updated, completed))
        if rng.random() < 0.1:
            name, vendor = rng.choice(SUBLETS)
            cost = rng.randint(8_000, 90_000)
            price = int(cost * rng.uniform(1.2, 1.5))
            authorized = status != 1 or rng.random() < 0.3
            ro["sublets"].append({
                "id": self._next("lines"), "name": name,
                "vendor": {"id": self._next("lines"), "name": vendor, "nickname": vendor.split()[0],
                           "website": None, "phone": None},
                "authorized": authorized, "authorizedDate": when + dt.timedelta(minutes=20) if authorized else None,
                "selected": True, "note": None,
                "items": [{"id": self._next("lines"), "name": name, "cost": cost, "price": price, "complete": done}],
                "price": price, "cost": cost,
            })
        if rng.random() < 0.5:
            ro["fees"].append(self._line("EPA / Environmental", rng.choice([295, 395, 495])))
        if rng.random() < 0.05:
            ro["discounts"].append(self._line("Loyalty", rng.choice([1000, 1500, 2500])))
        _recompute_totals(ro, shop["_taxRate"])
        return ro

    def _job(self, shop: dict, ro: dict, tech: int | None, status: int, created: dt.datetime,
             updated: dt.datetime, completed: dt.datetime | None) -> dict:
        rng = self._rng
        name, category, (low, high), parts = rng.choice(JOBS)
        authorized = rng.random() < (0.15 if status == 1 else 0.85)
        hours = round(rng.uniform(low, high), 1)
        job_updated = created + (updated - created) * rng.uniform(0.2, 1.0)
        job = {
            "id": self._next("jobs"), "repairOrderId": ro["id"], "vehicleId": ro["vehicleId"],
            "customerId": ro["customerId"],
            "name": name, "authorized": authorized,
            "authorizedDate": created + dt.timedelta(minutes=rng.randint(5, 240)) if authorized else None,
            "selected": True, "technicianId": tech, "note": None, "jobCategoryName": category,
            "partsTotal": 0, "laborTotal": 0, "discountTotal": 0, "feeTotal": 0, "subtotal": 0, "archived": False,
            "createdDate": created, "updatedDate": min(job_updated, updated),
            "completedDate": completed if authorized else None,
            "laborHours": hours,
            "loggedHours": round(hours * rng.uniform(0.7, 1.3), 2) if completed and authorized else 0,
            "labor": [{"id": self._next("lines"), "name": name, "rate": shop["_laborRate"], "hours": hours,
                       "complete": bool(completed and authorized), "technicianId": tech}],
            "parts": [], "fees": [], "discounts": [],
        }
        for part_name, brand, part_type, (lo, hi), quantity in parts:
            cost = rng.randint(lo, hi)
            job["parts"].append({
                "id": self._next("lines"), "quantity": quantity, "brand": brand, "name": part_name,
                "partNumber": f"{brand[:3].upper()}-{rng.randint(10000, 99999)}", "description": None,
                "cost": cost, "retail": int(cost * rng.uniform(1.35, 1.9)), "partType": dict(PART_TYPES[part_type]),
            })
        if rng.random() < 0.4:
            job["fees"].append(self._line("Shop Supplies", rng.choice([995, 1495, 1995])))
        if rng.random() < 0.08:
            job["discounts"].append(self._line("Coupon", rng.choice([1000, 2000])))
        return job

    def _line(self, name: str, total: int) -> dict:
        """A fee or discount line."""
        return {"id": self._next("lines"), "name": name, "total": total}


def _set_status(ro: dict, status: int) -> None:
    code, name = RO_STATUS[status]
    ro["repairOrderStatus"] = {"id": status, "code": code, "name": name}


def _recompute_totals(ro: dict, tax_rate: float | None = None) -> None:
    """Job and RO totals in cents from the lines; only authorized work counts toward sales."""
    if tax_rate is not None:
        ro["_taxRate"] = tax_rate
    for job in ro["jobs"]:
        job["laborTotal"] = sum(round(line["rate"] * line["hours"]) for line in job["labor"])
        job["partsTotal"] = sum(round(p["retail"] * p["quantity"]) for p in job["parts"])
        job["feeTotal"] = sum(f["total"] for f in job["fees"])
        job["discountTotal"] = sum(d["total"] for d in job["discounts"])
        job["subtotal"] = job["laborTotal"] + job["partsTotal"] + job["feeTotal"] - job["discountTotal"]
    sold = [j for j in ro["jobs"] if j["authorized"]]
    ro["laborSales"] = sum(j["laborTotal"] for j in sold)
    ro["partsSales"] = sum(j["partsTotal"] for j in sold)
    ro["subletSales"] = sum(s["price"] for s in ro["sublets"] if s["authorized"])
    ro["feeTotal"] = sum(j["feeTotal"] for j in sold) + sum(f["total"] for f in ro["fees"])
    ro["discountTotal"] = sum(j["discountTotal"] for j in sold) + sum(d["total"] for d in ro["discounts"])
    ro["taxes"] = round(ro["partsSales"] * ro.get("_taxRate", 0.0825))
    ro["totalSales"] = (ro["laborSales"] + ro["partsSales"] + ro["subletSales"] + ro["feeTotal"]
                        - ro["discountTotal"] + ro["taxes"])
    ro["amountPaid"] = ro["totalSales"] if ro["repairOrderStatus"]["id"] == 5 else 0


def _address(rng: random.Random, city: str, state: str, zip3: str) -> dict:
    street = f"{rng.randint(100, 9999)} {rng.choice(STREETS)}"
    zip_code = f"{zip3}{rng.randint(0, 99):02d}"
    return {"address1": street, "address2": None, "city": city, "state": state, "zip": zip_code,
            "fullAddress": f"{street}, {city}, {state} {zip_code}", "streetAddress": street}


def _jsonable(value: Any) -> Any:
    """Datetimes to Tekmetric text; generator-only keys (``_...``) dropped."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return format_timestamp(value)
    return value


def _whole_seconds(value: Any) -> None:
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(item, dt.datetime):
            value[key] = item.replace(microsecond=0)
        elif isinstance(item, (dict, list)):
            _whole_seconds(item)
