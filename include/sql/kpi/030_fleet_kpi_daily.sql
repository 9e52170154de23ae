-- Fleet KPIs per active warehouse. A shipment is "handled" on the day when it was dispatched,
-- delivered or failed in it; each of those timestamps counts its own event on its own day.
-- Shipments join their warehouse on warehouse_id AND org_id, like inventory movements.
-- ref_type and ids are read as LOWER(TRIM(...)), as in 010.
DELETE FROM fleet_kpi_daily WHERE data_date = :data_date;

INSERT INTO fleet_kpi_daily (
    data_date, warehouse_id, org_id,
    shipments_dispatched, shipments_delivered, shipments_failed,
    delivered_on_time, on_time_delivery_pct, avg_delivery_hours,
    fleet_size, active_vehicles, vehicle_utilization_pct,
    shipments_handled, shipment_scans, scans_per_shipment, updated_at
)
SELECT :data_date, w.id, w.org_id,
       COALESCE(e.dispatched, 0),
       COALESCE(e.delivered, 0),
       COALESCE(e.failed, 0),
       COALESCE(e.on_time, 0),
       CASE WHEN e.delivered_with_due > 0 THEN ROUND(100 * e.on_time / e.delivered_with_due, 2) END,
       ROUND(e.avg_delivery_seconds / 3600, 2),
       COALESCE(f.fleet_size, 0),
       COALESCE(e.active_vehicles, 0),
       -- only the warehouse's own in-service vehicles count, so a borrowed truck cannot push it past 100
       CASE WHEN f.fleet_size > 0 THEN ROUND(100 * COALESCE(e.fleet_vehicles_used, 0) / f.fleet_size, 2) END,
       COALESCE(e.handled, 0),
       COALESCE(e.scans, 0),
       CASE WHEN e.handled > 0 THEN ROUND(COALESCE(e.scans, 0) / e.handled, 2) END,
       UTC_TIMESTAMP(6)
FROM warehouses w
LEFT JOIN (
    SELECT s.warehouse_id, s.org_id,
           SUM(CASE WHEN s.dispatched_at >= :day_start AND s.dispatched_at < :day_end THEN 1 ELSE 0 END) AS dispatched,
           SUM(CASE WHEN s.delivered_at >= :day_start AND s.delivered_at < :day_end THEN 1 ELSE 0 END) AS delivered,
           SUM(CASE WHEN s.failed_at >= :day_start AND s.failed_at < :day_end THEN 1 ELSE 0 END) AS failed,
           SUM(CASE WHEN s.delivered_at >= :day_start AND s.delivered_at < :day_end AND s.due_at IS NOT NULL
                    THEN 1 ELSE 0 END) AS delivered_with_due,
           SUM(CASE WHEN s.delivered_at >= :day_start AND s.delivered_at < :day_end AND s.delivered_at <= s.due_at
                    THEN 1 ELSE 0 END) AS on_time,
           AVG(CASE WHEN s.delivered_at >= :day_start AND s.delivered_at < :day_end AND s.delivered_at >= s.dispatched_at
                    THEN TIMESTAMPDIFF(SECOND, s.dispatched_at, s.delivered_at) END) AS avg_delivery_seconds,
           COUNT(*) AS handled,
           COUNT(DISTINCT s.vehicle_id) AS active_vehicles,
           COUNT(DISTINCT v.id) AS fleet_vehicles_used,
           -- scans made during the day of the shipments handled that day
           SUM(COALESCE(sc.scans, 0)) AS scans
    FROM (
        SELECT LOWER(TRIM(id)) AS id, LOWER(TRIM(warehouse_id)) AS warehouse_id, LOWER(TRIM(org_id)) AS org_id,
               NULLIF(LOWER(TRIM(vehicle_id)), '') AS vehicle_id, due_at, dispatched_at, delivered_at, failed_at
        FROM shipments
        WHERE (dispatched_at >= :day_start AND dispatched_at < :day_end)
           OR (delivered_at >= :day_start AND delivered_at < :day_end)
           OR (failed_at >= :day_start AND failed_at < :day_end)
    ) s
    LEFT JOIN vehicles v
           ON v.id = s.vehicle_id AND v.warehouse_id = s.warehouse_id
          AND v.in_service_at < :day_end AND (v.retired_at IS NULL OR v.retired_at > :day_start)
    LEFT JOIN (
        SELECT LOWER(TRIM(ref_id)) AS shipment_id, COUNT(*) AS scans
        FROM scan_event
        WHERE LOWER(TRIM(ref_type)) = 'shipment' AND scanned_at >= :day_start AND scanned_at < :day_end
        GROUP BY shipment_id
    ) sc ON sc.shipment_id = s.id
    GROUP BY s.warehouse_id, s.org_id
) e ON e.warehouse_id = w.id AND e.org_id = w.org_id
LEFT JOIN (
    -- in service for at least part of the day: [in_service_at, retired_at) overlaps [day_start, day_end)
    SELECT v.warehouse_id, COUNT(*) AS fleet_size
    FROM vehicles v
    WHERE v.in_service_at < :day_end AND (v.retired_at IS NULL OR v.retired_at > :day_start)
    GROUP BY v.warehouse_id
) f ON f.warehouse_id = w.id
WHERE w.opened_at < :day_end AND (w.closed_at IS NULL OR w.closed_at > :day_start);
