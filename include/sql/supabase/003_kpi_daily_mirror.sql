-- Mirror of the TiDB daily KPI tables for dashboards (same columns; see
-- docs/etl/daily_kpi_etl.md). Written by the sync job (table owner) or service_role; an org
-- member reads its org's rows, a warehouse-scoped user its warehouses' rows, anon nothing.
-- updated_at is when TiDB computed the row; synced_at when it arrived here.

CREATE TABLE IF NOT EXISTS public.inventory_kpi_daily (
    data_date          date          NOT NULL,
    warehouse_id       uuid          NOT NULL,
    org_id             uuid          NOT NULL,
    opening_qty        numeric(18,3) NOT NULL,
    inbound_qty        numeric(18,3) NOT NULL CHECK (inbound_qty >= 0),
    outbound_qty       numeric(18,3) NOT NULL CHECK (outbound_qty >= 0),
    adjustment_qty     numeric(18,3) NOT NULL,
    closing_qty        numeric(18,3) NOT NULL,
    skus_in_stock      integer       NOT NULL CHECK (skus_in_stock >= 0),
    stock_out_skus     integer       NOT NULL CHECK (stock_out_skus >= 0),
    turnover_ratio     numeric(12,4) CHECK (turnover_ratio >= 0),
    tx_count           integer       NOT NULL CHECK (tx_count >= 0),
    scan_confirmed_tx  integer       NOT NULL CHECK (scan_confirmed_tx BETWEEN 0 AND tx_count),
    scan_confirmed_pct numeric(5,2)  CHECK (scan_confirmed_pct BETWEEN 0 AND 100),
    updated_at         timestamptz   NOT NULL,
    synced_at          timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (data_date, warehouse_id)
);
CREATE INDEX IF NOT EXISTS inventory_kpi_daily_org_wh_date ON public.inventory_kpi_daily (org_id, warehouse_id, data_date);

CREATE TABLE IF NOT EXISTS public.fleet_kpi_daily (
    data_date               date          NOT NULL,
    warehouse_id            uuid          NOT NULL,
    org_id                  uuid          NOT NULL,
    shipments_dispatched    integer       NOT NULL CHECK (shipments_dispatched >= 0),
    shipments_delivered     integer       NOT NULL CHECK (shipments_delivered >= 0),
    shipments_failed        integer       NOT NULL CHECK (shipments_failed >= 0),
    delivered_on_time       integer       NOT NULL CHECK (delivered_on_time BETWEEN 0 AND shipments_delivered),
    on_time_delivery_pct    numeric(5,2)  CHECK (on_time_delivery_pct BETWEEN 0 AND 100),
    avg_delivery_hours      numeric(10,2) CHECK (avg_delivery_hours >= 0),
    fleet_size              integer       NOT NULL CHECK (fleet_size >= 0),
    active_vehicles         integer       NOT NULL CHECK (active_vehicles >= 0),
    vehicle_utilization_pct numeric(5,2)  CHECK (vehicle_utilization_pct BETWEEN 0 AND 100),
    shipments_handled       integer       NOT NULL CHECK (shipments_handled >= 0),
    shipment_scans          integer       NOT NULL CHECK (shipment_scans >= 0),
    scans_per_shipment      numeric(10,2) CHECK (scans_per_shipment >= 0),
    updated_at              timestamptz   NOT NULL,
    synced_at               timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (data_date, warehouse_id)
);
CREATE INDEX IF NOT EXISTS fleet_kpi_daily_org_wh_date ON public.fleet_kpi_daily (org_id, warehouse_id, data_date);

ALTER TABLE public.inventory_kpi_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.fleet_kpi_daily ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.inventory_kpi_daily, public.fleet_kpi_daily FROM anon, authenticated;
GRANT SELECT ON public.inventory_kpi_daily, public.fleet_kpi_daily TO authenticated;
GRANT ALL ON public.inventory_kpi_daily, public.fleet_kpi_daily TO service_role;

CREATE POLICY inventory_kpi_daily_read ON public.inventory_kpi_daily FOR SELECT TO authenticated
    USING (org_id IN (SELECT private.member_org_ids())
           OR (org_id, warehouse_id) IN (SELECT org_id, warehouse_id FROM private.member_warehouses()));

CREATE POLICY fleet_kpi_daily_read ON public.fleet_kpi_daily FOR SELECT TO authenticated
    USING (org_id IN (SELECT private.member_org_ids())
           OR (org_id, warehouse_id) IN (SELECT org_id, warehouse_id FROM private.member_warehouses()));
