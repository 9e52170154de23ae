-- Daily KPI tables, written by sp_run_daily_kpi_etl / the TiDB statement path from
-- include/sql/kpi/. One row per (WIB data_date, active warehouse); formulas, units and NULL
-- rules are in docs/etl/daily_kpi_etl.md. updated_at is when the row was (re)computed.

CREATE TABLE IF NOT EXISTS inventory_kpi_daily (
    data_date          DATE          NOT NULL,
    warehouse_id       CHAR(36)      NOT NULL,
    org_id             CHAR(36)      NOT NULL,
    opening_qty        DECIMAL(18,3) NOT NULL,
    inbound_qty        DECIMAL(18,3) NOT NULL,
    outbound_qty       DECIMAL(18,3) NOT NULL,
    adjustment_qty     DECIMAL(18,3) NOT NULL,  -- signed
    closing_qty        DECIMAL(18,3) NOT NULL,
    skus_in_stock      INT           NOT NULL,
    stock_out_skus     INT           NOT NULL,
    turnover_ratio     DECIMAL(12,4) NULL,      -- NULL: no stock on average
    tx_count           INT           NOT NULL,
    scan_confirmed_tx  INT           NOT NULL,
    scan_confirmed_pct DECIMAL(5,2)  NULL,      -- NULL: no movements that day
    updated_at         DATETIME(6)   NOT NULL,
    PRIMARY KEY (data_date, warehouse_id),
    KEY inventory_kpi_daily_org_date (org_id, data_date),
    KEY inventory_kpi_daily_updated_at (updated_at)
) DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS fleet_kpi_daily (
    data_date               DATE          NOT NULL,
    warehouse_id            CHAR(36)      NOT NULL,
    org_id                  CHAR(36)      NOT NULL,
    shipments_dispatched    INT           NOT NULL,
    shipments_delivered     INT           NOT NULL,
    shipments_failed        INT           NOT NULL,
    delivered_on_time       INT           NOT NULL,
    on_time_delivery_pct    DECIMAL(5,2)  NULL,  -- NULL: nothing delivered with a due time
    avg_delivery_hours      DECIMAL(10,2) NULL,  -- NULL: nothing delivered with a dispatch time
    fleet_size              INT           NOT NULL,
    active_vehicles         INT           NOT NULL,
    vehicle_utilization_pct DECIMAL(5,2)  NULL,  -- NULL: no vehicle in service
    shipments_handled       INT           NOT NULL,
    shipment_scans          INT           NOT NULL,
    scans_per_shipment      DECIMAL(10,2) NULL,  -- NULL: no shipment handled
    updated_at              DATETIME(6)   NOT NULL,
    PRIMARY KEY (data_date, warehouse_id),
    KEY fleet_kpi_daily_org_date (org_id, data_date),
    KEY fleet_kpi_daily_updated_at (updated_at)
) DEFAULT CHARSET = utf8mb4;

-- Operational rows of the day the KPIs could not use (or used only in part), counted per reason
-- so nothing is dropped silently. example_id names one such row to start the investigation.
CREATE TABLE IF NOT EXISTS kpi_daily_exclusions (
    data_date     DATE          NOT NULL,
    org_id        CHAR(36)      NOT NULL,
    source_table  VARCHAR(40)   NOT NULL,
    reason        VARCHAR(200)  NOT NULL,
    row_count     INT           NOT NULL,
    example_id    CHAR(36)      NOT NULL,
    updated_at    DATETIME(6)   NOT NULL,
    PRIMARY KEY (data_date, org_id, source_table, reason)
) DEFAULT CHARSET = utf8mb4;
