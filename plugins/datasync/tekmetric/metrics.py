"""RO figures, snapshots, daily shop and technician metrics, and variance against Tekmetric's totals.

One SQL definition (:func:`figures_sql`) computes an RO's sales, costs, gross profit and
variance from its line items; snapshots and the daily metrics are built on it, so a formula
lives in one place. The formulas, with a worked example, are in docs/tekmetric-warehouse.md.

Only authorized work counts: labor, parts and fees of authorized jobs, authorized sublets,
RO-level fees, and discounts of authorized jobs and of the RO.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from datasync.db import Database

log = logging.getLogger(__name__)

POSTED = ("POSTED", "ACCRECV")  # posted, paid or not
COMPLETED = ("COMPLETE", *POSTED)


def figures_sql(where: str) -> str:
    """``WITH fig AS (...)``: one row per repair order matching ``where`` (on ``r``).

    Parameters the text uses: ``%(tolerance)s`` (cents allowed per category on top of one
    cent per rounded line) and whatever ``where`` names.
    """
    return f"""
WITH base AS (
    SELECT r.ro_id, r.shop_id, r.status_code, r.vehicle_id, r.technician_id, r.posted_date, r.completed_date,
           r.deleted_date,
           r.labor_sales AS tm_labor_sales, r.parts_sales AS tm_parts_sales, r.sublet_sales AS tm_sublet_sales,
           r.fee_total AS tm_fee_total, r.discount_total AS tm_discount_total, r.taxes AS tm_taxes,
           r.total_sales AS tm_total_sales,
           l.sales AS labor_sales, l.cost AS labor_cost, l.hours AS billed_hours, l.rounded AS labor_rounded,
           p.sales AS parts_sales, p.cost AS parts_cost, p.rounded AS parts_rounded,
           s.sales AS sublet_sales, s.cost AS sublet_cost,
           f.total AS fee_total, d.total AS discount_total, j.logged AS logged_hours
    FROM repair_orders r
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(round(x.rate * x.hours)), 0)::bigint AS sales,
               coalesce(sum(round(x.cost_rate * x.hours)), 0)::bigint AS cost,
               coalesce(sum(x.hours), 0) AS hours,
               count(*) FILTER (WHERE x.rate * x.hours <> round(x.rate * x.hours)) AS rounded
        FROM job_labor x JOIN jobs jj ON jj.job_id = x.job_id
        WHERE x.ro_id = r.ro_id AND jj.authorized) l
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(round(x.retail * x.quantity)), 0)::bigint AS sales,
               coalesce(sum(round(x.cost * x.quantity)), 0)::bigint AS cost,
               count(*) FILTER (WHERE x.retail * x.quantity <> round(x.retail * x.quantity)) AS rounded
        FROM job_parts x JOIN jobs jj ON jj.job_id = x.job_id
        WHERE x.ro_id = r.ro_id AND jj.authorized) p
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(x.price), 0)::bigint AS sales, coalesce(sum(x.cost), 0)::bigint AS cost
        FROM job_sublets x LEFT JOIN jobs jj ON jj.job_id = x.job_id
        WHERE x.ro_id = r.ro_id AND x.authorized AND (x.job_id IS NULL OR jj.authorized)) s
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(x.total), 0)::bigint AS total
        FROM job_fees x LEFT JOIN jobs jj ON jj.job_id = x.job_id
        WHERE x.ro_id = r.ro_id AND (x.job_id IS NULL OR jj.authorized)) f
    CROSS JOIN LATERAL (
        SELECT coalesce(sum((e ->> 'total')::bigint), 0)::bigint AS total
        FROM (SELECT jj.discount_lines FROM jobs jj WHERE jj.ro_id = r.ro_id AND jj.authorized
              UNION ALL SELECT r.discount_lines) dl,
             jsonb_array_elements(dl.discount_lines) e) d
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(jj.logged_hours), 0) AS logged
        FROM jobs jj WHERE jj.ro_id = r.ro_id AND jj.authorized) j
    WHERE {where}
), net AS (
    SELECT b.*,
           b.labor_sales + b.parts_sales + b.sublet_sales + b.fee_total - b.discount_total AS net_sales,
           b.labor_sales - b.labor_cost AS labor_gp,
           b.parts_sales - b.parts_cost AS parts_gp,
           b.sublet_sales - b.sublet_cost AS sublet_gp
    FROM base b
), fig AS (
    SELECT n.*,
           n.net_sales - n.labor_cost - n.parts_cost - n.sublet_cost AS gross_profit,
           round(100.0 * (n.net_sales - n.labor_cost - n.parts_cost - n.sublet_cost) / nullif(n.net_sales, 0), 2)
               AS gp_pct,
           v.variance
    FROM net n
    CROSS JOIN LATERAL (
        SELECT coalesce(jsonb_object_agg(c.category, jsonb_build_object(
                   'ours', c.ours, 'tekmetric', c.theirs, 'diff', c.ours - c.theirs, 'tolerance', c.tol))
                   FILTER (WHERE abs(c.ours - c.theirs) > c.tol), '{{}}'::jsonb) AS variance
        FROM (VALUES
            ('labor', n.labor_sales, n.tm_labor_sales, %(tolerance)s + n.labor_rounded),
            ('parts', n.parts_sales, n.tm_parts_sales, %(tolerance)s + n.parts_rounded),
            ('sublet', n.sublet_sales, n.tm_sublet_sales, %(tolerance)s),
            ('fees', n.fee_total, n.tm_fee_total, %(tolerance)s),
            ('discounts', n.discount_total, n.tm_discount_total, %(tolerance)s),
            ('total', n.net_sales + n.tm_taxes, n.tm_total_sales, %(tolerance)s + n.labor_rounded + n.parts_rounded)
        ) AS c (category, ours, theirs, tol)) v
)"""


SNAPSHOT_COLUMNS = (
    "tm_labor_sales, tm_parts_sales, tm_sublet_sales, tm_fee_total, tm_discount_total, tm_taxes, tm_total_sales, "
    "labor_sales, parts_sales, sublet_sales, fee_total, discount_total, net_sales, labor_cost, parts_cost, "
    "sublet_cost, labor_gp, parts_gp, sublet_gp, gross_profit, gp_pct, billed_hours, logged_hours, variance"
)


def auto_snapshots(db: Database, ro_ids: list[int], *, run_id: str | None, tolerance: int = 0) -> list[tuple[int, str]]:
    """A 'completed' and a 'posted' snapshot for ROs that have reached those states, once per
    RO and trigger ever (the unique constraint makes a second posting a no-op). Caller's transaction."""
    if not ro_ids:
        return []
    sql = figures_sql("r.ro_id = ANY(%(ro_ids)s) AND r.deleted_date IS NULL") + f"""
INSERT INTO ro_snapshots (ro_id, shop_id, trigger, snapshot_key, run_id, status_code, metric_date, posted_date,
                          completed_date, {SNAPSHOT_COLUMNS}, variance_ok)
SELECT f.ro_id, f.shop_id, t.trigger, '', %(run_id)s, f.status_code,
       CASE t.trigger WHEN 'posted' THEN f.posted_date ELSE f.completed_date END, f.posted_date, f.completed_date,
       {_prefixed('f')}, f.variance = '{{}}'::jsonb
FROM fig f
JOIN (VALUES ('completed'), ('posted')) AS t (trigger)
  ON (t.trigger = 'completed' AND f.status_code IN {COMPLETED}) OR (t.trigger = 'posted' AND f.status_code IN {POSTED})
ON CONFLICT ON CONSTRAINT ro_snapshots_once DO NOTHING
RETURNING ro_id, trigger"""
    return [tuple(r) for r in db.fetchall(sql, {"ro_ids": ro_ids, "run_id": run_id, "tolerance": tolerance})]


def manual_snapshots(db: Database, ro_ids: list[int], *, run_id: str, tolerance: int = 0) -> list[int]:
    """A 'manual' snapshot of each RO now (keyed by ``run_id``: a retried task captures once).
    ``metric_date`` is today in the shop's timezone. Commits."""
    if not ro_ids:
        return []
    sql = figures_sql("r.ro_id = ANY(%(ro_ids)s)") + f"""
INSERT INTO ro_snapshots (ro_id, shop_id, trigger, snapshot_key, run_id, status_code, metric_date, posted_date,
                          completed_date, {SNAPSHOT_COLUMNS}, variance_ok)
SELECT f.ro_id, f.shop_id, 'manual', %(run_id)s, %(run_id)s, f.status_code, (now() AT TIME ZONE s.timezone)::date,
       f.posted_date, f.completed_date, {_prefixed('f')}, f.variance = '{{}}'::jsonb
FROM fig f JOIN shops s ON s.shop_id = f.shop_id
ON CONFLICT ON CONSTRAINT ro_snapshots_once DO NOTHING
RETURNING ro_id"""
    done = [r[0] for r in db.fetchall(sql, {"ro_ids": ro_ids, "run_id": run_id, "tolerance": tolerance})]
    db.commit()
    return done


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in SNAPSHOT_COLUMNS.split(","))


def variances(db: Database, ro_ids: list[int], tolerance: int = 0) -> dict[int, dict]:
    """RO id -> variance for ROs whose line items disagree with Tekmetric's totals."""
    if not ro_ids:
        return {}
    sql = figures_sql("r.ro_id = ANY(%(ro_ids)s)") + " SELECT ro_id, variance FROM fig WHERE variance <> '{}'::jsonb"
    return {r[0]: r[1] for r in db.fetchall(sql, {"ro_ids": ro_ids, "tolerance": tolerance})}


def mark_stale(db: Database, shop_id: int, days: Iterable[dt.date]) -> None:
    """Flag shop days for recomputation (in the transaction that changed their ROs)."""
    days = sorted(set(days))
    if days:
        db.execute(
            "INSERT INTO daily_shop_metrics (shop_id, metric_date) SELECT %s, unnest(%s::date[]) "
            "ON CONFLICT (shop_id, metric_date) DO UPDATE SET stale = true", (shop_id, days))


SHOP_DAY_SQL = """
, day AS (SELECT unnest(%(days)s::date[]) AS metric_date)
INSERT INTO daily_shop_metrics AS m (
    shop_id, metric_date, ro_count, car_count, labor_sales, parts_sales, sublet_sales, fee_sales, discount_total,
    net_sales, taxes, labor_cost, parts_cost, sublet_cost, labor_gp, parts_gp, sublet_gp, gross_profit, gp_pct,
    avg_ro, billed_hours, logged_hours, variance_ro_count, stale, computed_at)
SELECT %(shop)s, day.metric_date, count(f.ro_id), count(DISTINCT f.vehicle_id),
       coalesce(sum(f.labor_sales), 0), coalesce(sum(f.parts_sales), 0), coalesce(sum(f.sublet_sales), 0),
       coalesce(sum(f.fee_total), 0), coalesce(sum(f.discount_total), 0), coalesce(sum(f.net_sales), 0),
       coalesce(sum(f.tm_taxes), 0), coalesce(sum(f.labor_cost), 0), coalesce(sum(f.parts_cost), 0),
       coalesce(sum(f.sublet_cost), 0), coalesce(sum(f.labor_gp), 0), coalesce(sum(f.parts_gp), 0),
       coalesce(sum(f.sublet_gp), 0), coalesce(sum(f.gross_profit), 0),
       round(100.0 * sum(f.gross_profit) / nullif(sum(f.net_sales), 0), 2),
       round(sum(f.net_sales)::numeric / nullif(count(f.ro_id), 0))::bigint,
       coalesce(sum(f.billed_hours), 0), coalesce(sum(f.logged_hours), 0),
       count(f.ro_id) FILTER (WHERE f.variance <> '{}'::jsonb), false, now()
FROM day LEFT JOIN fig f ON f.posted_date = day.metric_date
GROUP BY day.metric_date
ON CONFLICT (shop_id, metric_date) DO UPDATE SET
    ro_count = EXCLUDED.ro_count, car_count = EXCLUDED.car_count, labor_sales = EXCLUDED.labor_sales,
    parts_sales = EXCLUDED.parts_sales, sublet_sales = EXCLUDED.sublet_sales, fee_sales = EXCLUDED.fee_sales,
    discount_total = EXCLUDED.discount_total, net_sales = EXCLUDED.net_sales, taxes = EXCLUDED.taxes,
    labor_cost = EXCLUDED.labor_cost, parts_cost = EXCLUDED.parts_cost, sublet_cost = EXCLUDED.sublet_cost,
    labor_gp = EXCLUDED.labor_gp, parts_gp = EXCLUDED.parts_gp, sublet_gp = EXCLUDED.sublet_gp,
    gross_profit = EXCLUDED.gross_profit, gp_pct = EXCLUDED.gp_pct, avg_ro = EXCLUDED.avg_ro,
    billed_hours = EXCLUDED.billed_hours, logged_hours = EXCLUDED.logged_hours,
    variance_ro_count = EXCLUDED.variance_ro_count, stale = false, computed_at = now()
"""

# Labor lines are the technician's billed work (line technician, else the job's, else the RO's);
# logged hours are the job's (job technician, else the RO's).
TECH_DAY_SQL = """
WITH ro AS (
    SELECT ro_id, posted_date, technician_id FROM repair_orders
    WHERE shop_id = %(shop)s AND posted_date = ANY(%(days)s::date[]) AND deleted_date IS NULL
      AND status_code IN ('POSTED', 'ACCRECV')
), lab AS (
    SELECT ro.posted_date AS d, coalesce(x.technician_id, j.technician_id, ro.technician_id, 0) AS tech,
           ro.ro_id, j.job_id, x.hours, round(x.rate * x.hours) AS sales, round(x.cost_rate * x.hours) AS cost,
           x.cost_rate, x.rate_source
    FROM ro JOIN job_labor x ON x.ro_id = ro.ro_id JOIN jobs j ON j.job_id = x.job_id AND j.authorized
), logged AS (
    SELECT ro.posted_date AS d, coalesce(j.technician_id, ro.technician_id, 0) AS tech, ro.ro_id, j.job_id,
           coalesce(j.logged_hours, 0) AS hours
    FROM ro JOIN jobs j ON j.ro_id = ro.ro_id AND j.authorized
), billed AS (
    SELECT d, tech, sum(hours) AS hours, sum(sales)::bigint AS sales, sum(cost)::bigint AS cost,
           mode() WITHIN GROUP (ORDER BY cost_rate) AS cost_rate,
           mode() WITHIN GROUP (ORDER BY rate_source) AS rate_source
    FROM lab GROUP BY d, tech
), clocked AS (
    SELECT d, tech, sum(hours) AS hours FROM logged GROUP BY d, tech
), work AS (
    SELECT d, tech, count(DISTINCT ro_id) AS ros, count(DISTINCT job_id) AS jobs
    FROM (SELECT d, tech, ro_id, job_id FROM lab UNION SELECT d, tech, ro_id, job_id FROM logged) w
    GROUP BY d, tech
)
INSERT INTO tech_daily_metrics (shop_id, metric_date, technician_id, ro_count, job_count, billed_hours, logged_hours,
                                efficiency_pct, labor_sales, labor_cost, labor_gp, cost_rate, rate_source, computed_at)
SELECT %(shop)s, w.d, w.tech, w.ros, w.jobs, coalesce(b.hours, 0), coalesce(c.hours, 0),
       round(100.0 * coalesce(b.hours, 0) / nullif(c.hours, 0), 2),
       coalesce(b.sales, 0), coalesce(b.cost, 0), coalesce(b.sales, 0) - coalesce(b.cost, 0),
       b.cost_rate, b.rate_source, now()
FROM work w LEFT JOIN billed b USING (d, tech) LEFT JOIN clocked c USING (d, tech)
"""


def recompute_days(db: Database, shop_id: int, days: Iterable[dt.date], tolerance: int = 0) -> int:
    """Recompute the shop's and its technicians' metrics for ``days`` (caller's transaction)."""
    days = sorted(set(days))
    if not days:
        return 0
    where = ("r.shop_id = %(shop)s AND r.posted_date = ANY(%(days)s::date[]) AND r.deleted_date IS NULL "
             f"AND r.status_code IN {POSTED}")
    params = {"shop": shop_id, "days": days, "tolerance": tolerance}
    db.execute(figures_sql(where) + SHOP_DAY_SQL, params)
    db.execute("DELETE FROM tech_daily_metrics WHERE shop_id = %s AND metric_date = ANY(%s::date[])", (shop_id, days))
    db.execute(TECH_DAY_SQL, params)
    return len(days)


def recompute_stale(db: Database, shop_id: int, tolerance: int = 0) -> list[dt.date]:
    """Recompute every day of the shop flagged stale, in one transaction; returns the days. Commits."""
    days = [r[0] for r in db.fetchall(
        "SELECT metric_date FROM daily_shop_metrics WHERE shop_id = %s AND stale ORDER BY metric_date FOR UPDATE",
        (shop_id,))]
    recompute_days(db, shop_id, days, tolerance)
    db.commit()
    return days
