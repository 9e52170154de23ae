"""The worked example of docs/tekmetric-warehouse.md, reproduced exactly: four repair orders built
in the emulator, synced over HTTP, and the day's shop and technician metrics, the snapshots and
the variance checked against the hand-computed figures of the docs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from datasync.tekmetric import sync
from devtools.tekmetric.emulator import TekmetricEmulator

UTC = dt.timezone.utc
DAY = dt.date(2026, 3, 10)  # a Tuesday in Austin (America/Chicago, CDT = UTC-5 since March 8)
OWNER, ADVISOR_1, ADVISOR_2, TECH_A, TECH_B, TECH_C = range(10_001, 10_007)  # the emulator's first shop
_ids = iter(range(900_000_001, 901_000_000))


def line(name: str, total: int) -> dict:
    return {"id": next(_ids), "name": name, "total": total}


def job(name: str, *, authorized: bool, tech: int | None, rate: int, hours: float, logged: float,
        parts: list[tuple[str, float, int, int]] = (), fees: list[dict] = (), discounts: list[dict] = ()) -> dict:
    """``parts``: (name, quantity, cost, retail) per unit, in cents."""
    return {
        "id": next(_ids), "name": name, "jobCategoryName": "Example", "authorized": authorized,
        "authorizedDate": "2026-03-10T14:00:00Z" if authorized else None, "selected": True, "technicianId": tech,
        "note": None, "archived": False, "laborHours": hours, "loggedHours": logged,
        "createdDate": dt.datetime(2026, 3, 10, 13, tzinfo=UTC), "updatedDate": dt.datetime(2026, 3, 10, 13, tzinfo=UTC),
        "completedDate": None,
        "labor": [{"id": next(_ids), "name": name, "rate": rate, "hours": hours, "complete": True,
                   "technicianId": tech}],
        "parts": [{"id": next(_ids), "quantity": qty, "brand": "Example", "name": part, "partNumber": None,
                   "description": None, "cost": cost, "retail": retail,
                   "partType": {"id": 1, "code": "PART", "name": "Part"}} for part, qty, cost, retail in parts],
        "fees": list(fees), "discounts": list(discounts),
    }


def add_ro(store, shop: int, *, status: int, posted: str, vehicle: int, tech: int | None, jobs: list[dict],
           sublets: list[dict] = (), fees: list[dict] = (), discounts: list[dict] = ()) -> dict:
    when = dt.datetime.fromisoformat(posted.replace("Z", "+00:00"))
    customer = store.get("vehicles", vehicle)["customerId"]
    return store.add("repair-orders", shop, status=status, postedDate=when, completedDate=when - dt.timedelta(hours=1),
                     technicianId=tech, vehicleId=vehicle, customerId=customer, jobs=jobs, sublets=list(sublets),
                     fees=list(fees), discounts=list(discounts), _taxRate=0.0825)


def build_example(store, shop: int) -> dict[str, dict]:
    v1, v2 = [v["id"] for v in store.records("vehicles", shop)[:2]]
    ros = {}
    ros["A"] = add_ro(store, shop, status=5, posted="2026-03-10T20:30:00Z", vehicle=v1, tech=TECH_A, jobs=[
        job("Front Brake Pads & Rotors", authorized=True, tech=TECH_A, rate=15000, hours=1.5, logged=2.0,
            parts=[("Ceramic Brake Pads", 1, 5000, 9000), ("Brake Rotor", 2, 6000, 10500)],
            fees=[line("Shop Supplies", 1500)]),
        job("Wheel Alignment", authorized=False, tech=TECH_A, rate=15000, hours=1.0, logged=0),  # declined
    ], fees=[line("EPA / Environmental", 395)], discounts=[line("Loyalty", 1000)])
    # Posted at 22:30 in Austin: still March 10 there, March 11 in UTC.
    ros["B"] = add_ro(store, shop, status=5, posted="2026-03-11T03:30:00Z", vehicle=v2, tech=None, jobs=[
        job("Coolant Flush", authorized=True, tech=TECH_C, rate=15000, hours=0.8, logged=1.0,
            parts=[("Coolant 50/50 (gal)", 1.5, 1500, 2499)]),
        job("Battery Replacement", authorized=True, tech=None, rate=15000, hours=0.5, logged=0.4,
            parts=[("Battery Group 35", 1, 12000, 18900)]),
    ], sublets=[{"id": next(_ids), "name": "Windshield Replacement", "vendor": {"id": next(_ids), "name": "Clear View"},
                 "authorized": True, "authorizedDate": "2026-03-10T15:00:00Z", "selected": True, "note": None,
                 "items": [], "price": 42000, "cost": 30000}])
    ros["C"] = add_ro(store, shop, status=6, posted="2026-03-10T14:05:00Z", vehicle=v1, tech=TECH_B, jobs=[
        job("Oil & Filter Change", authorized=True, tech=TECH_B, rate=15000, hours=0.5, logged=0.5,
            parts=[("Synthetic Oil 0W-20", 5, 600, 1000), ("Oil Filter", 1, 700, 1400)],
            discounts=[line("Coupon", 2000)]),
    ])
    # Posted at 23:00 on March 9 in Austin (04:00 UTC on March 10): March 9's, not March 10's.
    ros["D"] = add_ro(store, shop, status=5, posted="2026-03-10T04:00:00Z", vehicle=v2, tech=TECH_A, jobs=[
        job("Diagnose Check Engine Light", authorized=True, tech=TECH_A, rate=15000, hours=1.0, logged=1.0),
    ])
    # ...and Tekmetric's own labor total for D disagrees with its lines by $5.00.
    store.update("repair-orders", ros["D"]["id"], laborSales=15500)
    return ros


@pytest.fixture
def warehouse(database_factory):
    from datasync.migrate import migrate

    db = database_factory("postgres", "tekmetric")
    db.bind("tekmetric_warehouse")
    migrate(["tekmetric"])
    return db


@pytest.fixture
def example(warehouse, monkeypatch):
    with TekmetricEmulator(shops=1, seed=3, employees=6, customers=4, repair_orders=0) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_TEKMETRIC_API", emu.airflow_connection(backoff_base=0.001,
                                                                                rate_limit_per_minute=60_000))
        shop = emu.store.shop_ids[0]
        ros = build_example(emu.store, shop)
        # Configuration the API does not have: the shop's default labor cost and two assigned rates.
        # The sync keeps them (it never writes these columns).
        warehouse.query("INSERT INTO shops (shop_id, name, timezone, default_labor_cost_cents) "
                        "VALUES (%s, 'JJ Auto', 'America/Chicago', 2500)", (shop,))
        warehouse.query("INSERT INTO employees (employee_id, shop_id, role, can_perform_work, hourly_cost_cents) "
                        "VALUES (%s, %s, 'technician', true, 3000), (%s, %s, 'technician', true, 2400)",
                        (TECH_A, shop, TECH_B, shop))
        hook = sync.make_hook()
        from datasync.db import connected

        with connected("tekmetric_warehouse") as db:
            sync.list_shops(hook, db)
        out = sync.sync_shop(shop, hook=hook, run_id="example",
                             options=sync.SyncOptions(backfill_start=dt.datetime(2026, 1, 1, tzinfo=UTC)))
        hook.close()
        yield shop, ros, out


SHOP_COLUMNS = ("ro_count, car_count, labor_sales, parts_sales, sublet_sales, fee_sales, discount_total, net_sales, "
                "taxes, labor_cost, parts_cost, sublet_cost, labor_gp, parts_gp, sublet_gp, gross_profit, gp_pct, "
                "avg_ro, billed_hours, logged_hours, variance_ro_count")


def test_worked_example_day(example, warehouse):
    shop, ros, _ = example
    row = warehouse.query(f"SELECT {SHOP_COLUMNS} FROM daily_shop_metrics WHERE shop_id = %s AND metric_date = %s",
                          (shop, DAY))
    # The figures of docs/tekmetric-warehouse.md, "Worked example".
    assert dict(zip(SHOP_COLUMNS.split(", "), row[0])) == {
        "ro_count": 3, "car_count": 2,
        "labor_sales": 49500, "parts_sales": 59049, "sublet_sales": 42000, "fee_sales": 1895, "discount_total": 3000,
        "net_sales": 149444, "taxes": 4871,
        "labor_cost": 9110, "parts_cost": 34950, "sublet_cost": 30000,
        "labor_gp": 40390, "parts_gp": 24099, "sublet_gp": 12000, "gross_profit": 75384,
        "gp_pct": Decimal("50.44"), "avg_ro": 49815,
        "billed_hours": Decimal("3.30"), "logged_hours": Decimal("3.90"), "variance_ro_count": 0,
    }
    techs = warehouse.query(
        "SELECT technician_id, ro_count, job_count, billed_hours, logged_hours, efficiency_pct, labor_sales, "
        "labor_cost, labor_gp, cost_rate, rate_source FROM tech_daily_metrics WHERE shop_id = %s AND metric_date = %s "
        "ORDER BY technician_id", (shop, DAY))
    assert techs == [
        (0, 1, 1, Decimal("0.50"), Decimal("0.40"), Decimal("125.00"), 7500, 1250, 6250, 2500, "default"),
        (TECH_A, 1, 1, Decimal("1.50"), Decimal("2.00"), Decimal("75.00"), 22500, 4500, 18000, 3000, "assigned"),
        (TECH_B, 1, 1, Decimal("0.50"), Decimal("0.50"), Decimal("100.00"), 7500, 1200, 6300, 2400, "assigned"),
        (TECH_C, 1, 1, Decimal("0.80"), Decimal("1.00"), Decimal("80.00"), 12000, 2160, 9840, 2700, "shop_avg"),
    ]


def test_worked_example_snapshots_and_variance(example, warehouse):
    shop, ros, out = example
    snaps = warehouse.query(
        "SELECT ro_id, trigger, metric_date, net_sales, labor_cost, parts_cost, sublet_cost, gross_profit, gp_pct, "
        "variance_ok FROM ro_snapshots ORDER BY ro_id, trigger")
    by_ro = {(r[0], r[1]): r[2:] for r in snaps}
    assert by_ro[(ros["A"]["id"], "posted")] == (DAY, 53395, 4500, 17000, 0, 31895, Decimal("59.73"), True)
    assert by_ro[(ros["B"]["id"], "posted")] == (DAY, 84149, 3410, 14250, 30000, 36489, Decimal("43.36"), True)
    assert by_ro[(ros["C"]["id"], "completed")] == (dt.date(2026, 3, 10), 11900, 1200, 3700, 0, 7000, Decimal("58.82"),
                                                    True)
    assert len(snaps) == 8  # completed + posted for each of the four

    # B: Tekmetric rounds 1.5 x $24.99 to $37.48, we to $37.49 -- within the one-cent allowance per
    # rounded line, so no variance. D: Tekmetric says $155.00 of labor, its lines say $150.00.
    variance = warehouse.query("SELECT variance FROM ro_snapshots WHERE ro_id = %s AND trigger = 'posted'",
                               (ros["D"]["id"],))[0][0]
    assert variance == {"labor": {"ours": 15000, "tekmetric": 15500, "diff": -500, "tolerance": 0}}
    assert out["repair_orders"]["variance_ros"] == 1
    details = warehouse.query("SELECT details FROM sync_log WHERE entity = 'repair_orders'")[0][0]
    assert details["variances"] == {str(ros["D"]["id"]): variance}
    assert warehouse.query("SELECT ro_count, variance_ro_count, net_sales FROM daily_shop_metrics "
                           "WHERE shop_id = %s AND metric_date = %s", (shop, DAY - dt.timedelta(days=1))) == \
        [(1, 1, 15000)]


def test_rate_change_reprices_on_full_backfill(example, warehouse, monkeypatch):
    shop, ros, _ = example
    warehouse.query("UPDATE employees SET hourly_cost_cents = 3600 WHERE employee_id = %s", (TECH_C,))
    # Now every technician has a rate: C's is assigned; the unassigned line stays on the default.
    hook = sync.make_hook()
    sync.sync_shop(shop, hook=hook, options=sync.SyncOptions(full_backfill=True,
                                                             backfill_start=dt.datetime(2026, 1, 1, tzinfo=UTC)))
    hook.close()
    assert warehouse.query("SELECT labor_cost, rate_source FROM tech_daily_metrics WHERE technician_id = %s "
                           "AND metric_date = %s", (TECH_C, DAY)) == [(2880, "assigned")]
    # The posted snapshot is history: it keeps the cost of when the RO was posted.
    assert warehouse.query("SELECT labor_cost FROM ro_snapshots WHERE ro_id = %s AND trigger = 'posted'",
                           (ros["B"]["id"],)) == [(3410,)]
