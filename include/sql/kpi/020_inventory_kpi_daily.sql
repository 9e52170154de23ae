-- Inventory KPIs per active warehouse. A usable movement has a known warehouse of the same org
-- (the joins on warehouse_id AND org_id), a known tx_type, and a non-negative quantity unless it
-- is an adjustment. Stock levels are rebuilt from the full movement history, so a late-arriving
-- movement corrects every later day on its rerun and no day depends on another day's KPI row.
-- tx_type, ref_type and ids are read as LOWER(TRIM(...)), as in 010.
DELETE FROM inventory_kpi_daily WHERE data_date = :data_date;

INSERT INTO inventory_kpi_daily (
    data_date, warehouse_id, org_id,
    opening_qty, inbound_qty, outbound_qty, adjustment_qty, closing_qty,
    skus_in_stock, stock_out_skus, turnover_ratio,
    tx_count, scan_confirmed_tx, scan_confirmed_pct, updated_at
)
SELECT :data_date, w.id, w.org_id,
       COALESCE(b.opening_qty, 0),
       COALESCE(m.inbound_qty, 0),
       COALESCE(m.outbound_qty, 0),
       COALESCE(m.adjustment_qty, 0),
       COALESCE(b.closing_qty, 0),
       COALESCE(b.skus_in_stock, 0),
       COALESCE(b.stock_out_skus, 0),
       -- outbound over average stock; undefined (NULL) when there was no stock on average
       CASE WHEN b.opening_qty + b.closing_qty > 0
            THEN ROUND(COALESCE(m.outbound_qty, 0) / ((b.opening_qty + b.closing_qty) / 2), 4) END,
       COALESCE(m.tx_count, 0),
       COALESCE(m.scan_confirmed_tx, 0),
       CASE WHEN m.tx_count > 0 THEN ROUND(100 * m.scan_confirmed_tx / m.tx_count, 2) END,
       UTC_TIMESTAMP(6)
FROM warehouses w
LEFT JOIN (
    SELECT sb.warehouse_id, sb.org_id,
           SUM(sb.opening_qty) AS opening_qty,
           SUM(sb.closing_qty) AS closing_qty,
           SUM(CASE WHEN sb.closing_qty > 0 THEN 1 ELSE 0 END) AS skus_in_stock,
           -- out of stock at the day's end, and live that day (had stock at its start or moved)
           SUM(CASE WHEN sb.closing_qty <= 0 AND (sb.opening_qty > 0 OR sb.day_tx > 0) THEN 1 ELSE 0 END) AS stock_out_skus
    FROM (
        SELECT t.warehouse_id, t.org_id, t.sku_id,
               SUM(CASE WHEN t.occurred_at < :day_start
                        THEN CASE t.tx_type WHEN 'outbound' THEN -t.quantity ELSE t.quantity END
                        ELSE 0 END) AS opening_qty,
               SUM(CASE t.tx_type WHEN 'outbound' THEN -t.quantity ELSE t.quantity END) AS closing_qty,
               SUM(CASE WHEN t.occurred_at >= :day_start THEN 1 ELSE 0 END) AS day_tx
        FROM (
            SELECT LOWER(TRIM(warehouse_id)) AS warehouse_id, LOWER(TRIM(org_id)) AS org_id,
                   LOWER(TRIM(sku_id)) AS sku_id, LOWER(TRIM(tx_type)) AS tx_type, quantity, occurred_at
            FROM inventory_tx
            WHERE occurred_at < :day_end
        ) t
        WHERE t.tx_type IN ('inbound', 'outbound', 'adjustment')
          AND (t.quantity >= 0 OR t.tx_type = 'adjustment')
        GROUP BY t.warehouse_id, t.org_id, t.sku_id
    ) sb
    GROUP BY sb.warehouse_id, sb.org_id
) b ON b.warehouse_id = w.id AND b.org_id = w.org_id
LEFT JOIN (
    SELECT t.warehouse_id, t.org_id,
           SUM(CASE WHEN t.tx_type = 'inbound' THEN t.quantity ELSE 0 END) AS inbound_qty,
           SUM(CASE WHEN t.tx_type = 'outbound' THEN t.quantity ELSE 0 END) AS outbound_qty,
           SUM(CASE WHEN t.tx_type = 'adjustment' THEN t.quantity ELSE 0 END) AS adjustment_qty,
           COUNT(*) AS tx_count,
           SUM(CASE WHEN c.tx_id IS NOT NULL THEN 1 ELSE 0 END) AS scan_confirmed_tx
    FROM (
        SELECT LOWER(TRIM(id)) AS id, LOWER(TRIM(warehouse_id)) AS warehouse_id, LOWER(TRIM(org_id)) AS org_id,
               LOWER(TRIM(tx_type)) AS tx_type, quantity
        FROM inventory_tx
        WHERE occurred_at >= :day_start AND occurred_at < :day_end
    ) t
    LEFT JOIN (
        -- confirmed: scanned before the day's end (a scan recorded later does not change this day)
        SELECT DISTINCT LOWER(TRIM(ref_id)) AS tx_id
        FROM scan_event
        WHERE LOWER(TRIM(ref_type)) = 'inventory_tx' AND scanned_at < :day_end
    ) c ON c.tx_id = t.id
    WHERE t.tx_type IN ('inbound', 'outbound', 'adjustment')
      AND (t.quantity >= 0 OR t.tx_type = 'adjustment')
    GROUP BY t.warehouse_id, t.org_id
) m ON m.warehouse_id = w.id AND m.org_id = w.org_id
WHERE w.opened_at < :day_end AND (w.closed_at IS NULL OR w.closed_at > :day_start);
