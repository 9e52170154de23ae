-- Operational rows of the day that the KPIs leave out (or use only in part), counted per org
-- and reason. The filters in 020 and 030 are the complement of these rules: change them together.
-- A row with several problems is counted once, under the first reason that applies.
DELETE FROM kpi_daily_exclusions WHERE data_date = :data_date;

INSERT INTO kpi_daily_exclusions (data_date, org_id, source_table, reason, row_count, example_id, updated_at)
SELECT :data_date, x.org_id, x.source_table, x.reason, COUNT(*), MIN(x.id), UTC_TIMESTAMP(6)
FROM (
    SELECT t.org_id, 'inventory_tx' AS source_table, t.id,
           CASE
               WHEN t.warehouse_id IS NULL THEN 'warehouse_id is missing'
               WHEN w.id IS NULL THEN 'warehouse_id is not a known warehouse'
               WHEN w.org_id <> t.org_id THEN 'org_id differs from the org of its warehouse'
               WHEN w.opened_at >= :day_end OR w.closed_at <= :day_start THEN 'warehouse is not open on this day'
               WHEN t.tx_type NOT IN ('inbound', 'outbound', 'adjustment') THEN 'unknown tx_type'
               WHEN t.quantity < 0 AND t.tx_type <> 'adjustment' THEN 'negative quantity on an inbound or outbound movement'
           END AS reason
    FROM inventory_tx t
    LEFT JOIN warehouses w ON w.id = t.warehouse_id
    WHERE t.occurred_at >= :day_start AND t.occurred_at < :day_end

    UNION ALL

    SELECT s.org_id, 'shipments', s.id,
           CASE
               WHEN s.warehouse_id IS NULL THEN 'warehouse_id is missing'
               WHEN w.id IS NULL THEN 'warehouse_id is not a known warehouse'
               WHEN w.org_id <> s.org_id THEN 'org_id differs from the org of its warehouse'
               WHEN w.opened_at >= :day_end OR w.closed_at <= :day_start THEN 'warehouse is not open on this day'
               -- still counted as delivered; only the duration is unusable
               WHEN s.delivered_at >= :day_start AND s.delivered_at < :day_end AND s.dispatched_at IS NULL
                   THEN 'delivered without dispatched_at: left out of avg_delivery_hours'
               WHEN s.delivered_at >= :day_start AND s.delivered_at < :day_end AND s.delivered_at < s.dispatched_at
                   THEN 'delivered_at before dispatched_at: left out of avg_delivery_hours'
           END
    FROM shipments s
    LEFT JOIN warehouses w ON w.id = s.warehouse_id
    WHERE (s.dispatched_at >= :day_start AND s.dispatched_at < :day_end)
       OR (s.delivered_at >= :day_start AND s.delivered_at < :day_end)
       OR (s.failed_at >= :day_start AND s.failed_at < :day_end)
) x
WHERE x.reason IS NOT NULL
GROUP BY x.org_id, x.source_table, x.reason;
