"""``make demo`` step for the Tekmetric warehouse: the emulator, a backfill, an hourly run.

Starts the Tekmetric emulator on a free loopback port (a thread of this process; the DAG runs
in ``airflow dags test`` subprocesses reach it over HTTP), points ``tekmetric_api`` at it,
configures labor cost rates in the demo warehouse, runs ``tekmetric_sync`` as a backfill,
changes a few records in "Tekmetric", runs it again as the hourly incremental run, and prints
per-shop counts, whether the warehouse matches the emulator, and one day's metrics.
"""

from __future__ import annotations

import datetime as dt

from datasync.db import connected
from devtools.tekmetric.compare import differences, table_counts
from devtools.tekmetric.emulator import TekmetricEmulator
from datasync.tekmetric.sync import WAREHOUSE_CONN

DEMO_SHOPS = 3
DEMO_SEED = 1
TABLES = ("shops", "employees", "customers", "vehicles", "repair_orders", "jobs", "job_labor", "job_parts",
          "job_sublets", "job_fees", "ro_snapshots", "daily_shop_metrics", "tech_daily_metrics", "tm_raw_payloads")


def _reset_and_configure(store) -> None:
    """The demo warehouse starts empty each time (the emulator's data is regenerated around now),
    with each shop's default labor cost and two technicians' assigned rates, as a shop would set them."""
    with connected(WAREHOUSE_CONN) as db:
        db.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
        for table in ("sync_cursors", "sync_log", "sync_rejects"):
            db.execute(f"DELETE FROM {table} WHERE sync_name LIKE 'tekmetric_sync.%%'")
        for shop_id in store.shop_ids:
            shop = store.shop(shop_id)
            db.execute("INSERT INTO shops (shop_id, name, timezone, default_labor_cost_cents) VALUES (%s, %s, %s, 2600)",
                       (shop_id, shop["name"], shop["timeZone"]))
            techs = [e["id"] for e in store.records("employees", shop_id) if e["canPerformWork"]]
            for tech, rate in zip(techs, (3200, 2800)):  # the others get the shop average
                db.execute("INSERT INTO employees (employee_id, shop_id, role, can_perform_work, hourly_cost_cents) "
                           "VALUES (%s, %s, 'technician', true, %s)", (tech, shop_id, rate))
        db.commit()


def _change_some_records(store, demo) -> None:
    first = store.shop_ids[0]
    ros = store.records("repair-orders", first)
    wip = next(r for r in ros if r["repairOrderStatus"]["code"] == "WORKINPROGRESS")
    store.post_repair_order(wip["id"])
    two_jobs = next(r for r in ros if len(r["jobs"]) > 1 and r["id"] != wip["id"])
    store.remove_job(two_jobs["id"], two_jobs["jobs"][-1]["id"])
    customer = store.records("customers", first)[0]["id"]
    store.delete("customers", customer)
    new = store.add("repair-orders", first, status=2)
    demo.say(f"  in Tekmetric: RO {wip['id']} posted, a job removed from RO {two_jobs['id']}, customer {customer} "
             f"deleted, RO {new['id']} opened")


def _print_counts(store, demo, label: str) -> None:
    with connected(WAREHOUSE_CONN) as db:
        def query(sql, params=None):
            rows = db.fetchall(sql, params)
            db.commit()
            return rows

        demo.say(f"  {label}: rows per shop")
        names = ("customers", "vehicles", "repair_orders", "jobs", "job_labor", "job_parts", "job_fees")
        demo.say("    " + f"{'shop':26}" + "".join(f"{n:>14}" for n in names) + f"{'snapshots':>11}")
        for shop_id in store.shop_ids:
            counts = table_counts(query, [shop_id])
            (snaps,) = query("SELECT count(*) FROM ro_snapshots WHERE shop_id = %s", (shop_id,))[0]
            name = f"{store.shop(shop_id)['name']} ({shop_id})"
            demo.say("    " + f"{name:26}" + "".join(f"{counts[n]:>14}" for n in names) + f"{snaps:>11}")
        diff = differences(store, query)
        demo.say("  warehouse vs emulator: " + ("identical, table by table" if not diff else f"DIFFERENT: {diff}"))
        if diff:
            raise RuntimeError(f"the warehouse does not match the emulator after {label}: {diff}")
        logs = query("SELECT entity, sum(rows_read), sum(rows_inserted), sum(rows_updated), sum(rows_unchanged), "
                     "sum((details ->> 'requests')::int) FROM sync_log WHERE id IN (SELECT max(id) FROM sync_log "
                     "WHERE entity IS NOT NULL GROUP BY sync_name) GROUP BY entity ORDER BY entity")
        for entity, read, ins, upd, same, requests in logs:
            demo.say(f"    last run {entity:14} read {read:5}  inserted {ins:5}  updated {upd:4}  "
                     f"unchanged {same:4}  ({requests} API requests)")


def _print_day(store, demo) -> None:
    shop_id = store.shop_ids[0]
    with connected(WAREHOUSE_CONN) as db:
        row = db.fetchone(
            "SELECT metric_date, ro_count, car_count, labor_sales, parts_sales, sublet_sales, fee_sales, discount_total, "
            "net_sales, gross_profit, gp_pct, avg_ro, billed_hours, logged_hours, variance_ro_count "
            "FROM daily_shop_metrics WHERE shop_id = %s ORDER BY net_sales DESC, metric_date LIMIT 1", (shop_id,))
        techs = db.fetchall(
            "SELECT technician_id, billed_hours, logged_hours, efficiency_pct, labor_sales, labor_cost, labor_gp, "
            "cost_rate, rate_source FROM tech_daily_metrics WHERE shop_id = %s AND metric_date = %s "
            "ORDER BY technician_id", (shop_id, row[0]))
        db.commit()
    (day, ros, cars, labor, parts, sublet, fees, discounts, net, gp, gp_pct, aro, billed, logged, variance) = row

    def usd(cents: int) -> str:
        return f"${cents / 100:,.2f}"

    demo.say(f"  {store.shop(shop_id)['name']}, busiest day {day} (shop-local): {ros} ROs, {cars} cars, "
             f"net sales {usd(net)} (labor {usd(labor)}, parts {usd(parts)}, sublet {usd(sublet)}, fees {usd(fees)}, "
             f"discounts -{usd(discounts)}), gross profit {usd(gp)} = {gp_pct}%, average RO {usd(aro)}, "
             f"{billed} h billed / {logged} h logged, {variance} RO(s) with variance")
    for tech, b, lg, eff, sales, cost, tgp, rate, source in techs:
        who = "unassigned" if tech == 0 else f"tech {tech}"
        demo.say(f"    {who:12} billed {b:>5} h  logged {lg:>5} h  efficiency {eff or '-':>6}%  labor {usd(sales):>10}"
                 f"  cost {usd(cost):>9} at {usd(rate or 0)}/h ({source or '-'})  GP {usd(tgp):>10}")


def demo_step(demo) -> None:
    with TekmetricEmulator(shops=DEMO_SHOPS, seed=DEMO_SEED) as emu:
        demo.say(f"  Tekmetric emulator on {emu.base_url} with shops "
                 + ", ".join(f"{s} {emu.store.shop(s)['name']}" for s in emu.store.shop_ids))
        # Plenty of client-side rate for a loopback demo; production uses Tekmetric's 600/min.
        demo.env["AIRFLOW_CONN_TEKMETRIC_API"] = emu.airflow_connection(rate_limit_per_minute=6000)
        _reset_and_configure(emu.store)
        start = (dt.date.today() - dt.timedelta(days=120)).isoformat()
        demo.dag_test("tekmetric_sync", conf={"full_backfill": True, "backfill_start": start, "window_days": 30},
                      log_name="tekmetric_sync_backfill")
        _print_counts(emu.store, demo, f"backfill from {start}")
        _change_some_records(emu.store, demo)
        demo.dag_test("tekmetric_sync", log_name="tekmetric_sync_incremental")
        _print_counts(emu.store, demo, "incremental run")
        _print_day(emu.store, demo)
