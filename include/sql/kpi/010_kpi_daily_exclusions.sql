-- Operational rows of the day that the KPIs leave out (or use only in part), counted per org
-- and reason. The filters in 020 and 030 are the complement of these rules: change them together.
-- A row with several problems is counted once, under the first reason that applies.
--
-- Case and surrounding spaces (the tables compare byte for byte, see include/sql/tidb/003):
-- tx_type, ref_type and every id an ops row uses to point at another row are read as
-- LOWER(TRIM(value)), an empty id as missing, in all three files alike. 'Inbound ' is inbound and
-- an upper-case UUID is the same UUID. The master tables' ids (warehouses, vehicles) arrive
-- lower-case from Supabase and ptmmm_master_data and are compared as stored.
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
    FROM (
        SELECT id, LOWER(TRIM(org_id)) AS org_id, NULLIF(LOWER(TRIM(warehouse_id)), '') AS warehouse_id,
               LOWER(TRIM(tx_type)) AS tx_type, quantity
        FROM inventory_tx
        WHERE occurred_at >= :day_start AND occurred_at < :day_end
    ) t
    LEFT JOIN warehouses w ON w.id = t.warehouse_id

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
    FROM (
        SELECT id, LOWER(TRIM(org_id)) AS org_id, NULLIF(LOWER(TRIM(warehouse_id)), '') AS warehouse_id,
               dispatched_at, delivered_at
        FROM shipments
        WHERE (dispatched_at >= :day_start AND dispatched_at < :day_end)
           OR (delivered_at >= :day_start AND delivered_at < :day_end)
           OR (failed_at >= :day_start AND failed_at < :day_end)
    ) s
    LEFT JOIN warehouses w ON w.id = s.warehouse_id
) x
WHERE x.reason IS NOT NULL
GROUP BY x.org_id, x.source_table, x.reason;
