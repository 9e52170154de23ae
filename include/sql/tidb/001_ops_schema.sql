-- PTMMM operational schema (TiDB in production; MySQL 8 and MariaDB 10.11 run it too).
--
-- Conventions
--   * ids, org_id and warehouse_id are CHAR(36) lower-case UUIDs. Organisations and warehouses
--     are mastered in Supabase (public.organization / public.warehouse) and keep the same ids here.
--   * Every timestamp is UTC in a DATETIME(6): DATETIME is never shifted by a session time zone,
--     so a client with another @@time_zone cannot move an event into another WIB day.
--     (The datasync connections also set time_zone = '+00:00' for the DEFAULTs.)
--   * No foreign keys, triggers or CHECKs: TiDB does not enforce them (or lacks them). Rows the
--     KPI ETL cannot use are counted in kpi_daily_exclusions instead (see docs/etl/daily_kpi_etl.md).
--   * Day-range scans of the KPI ETL use the *_at indexes below.

CREATE TABLE IF NOT EXISTS organizations (
    id          CHAR(36)     NOT NULL PRIMARY KEY,
    name        VARCHAR(200) NOT NULL,
    created_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) DEFAULT CHARSET = utf8mb4;

-- A warehouse is "active" on a WIB day when it is open for at least part of it:
-- opened_at < day end AND (closed_at IS NULL OR closed_at > day start). The KPI tables get
-- exactly one row per active warehouse and day.
CREATE TABLE IF NOT EXISTS warehouses (
    id          CHAR(36)     NOT NULL PRIMARY KEY,
    org_id      CHAR(36)     NOT NULL,
    code        VARCHAR(40)  NOT NULL,
    name        VARCHAR(200) NOT NULL,
    city        VARCHAR(100),
    opened_at   DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    closed_at   DATETIME(6)  NULL,
    created_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    UNIQUE KEY warehouses_org_code (org_id, code)
) DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS skus (
    id          CHAR(36)     NOT NULL PRIMARY KEY,
    org_id      CHAR(36)     NOT NULL,
    code        VARCHAR(60)  NOT NULL,
    name        VARCHAR(200) NOT NULL,
    uom         VARCHAR(20)  NOT NULL DEFAULT 'pcs',
    created_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    UNIQUE KEY skus_org_code (org_id, code)
) DEFAULT CHARSET = utf8mb4;

-- A vehicle belongs to one warehouse's fleet while in service:
-- in_service_at < day end AND (retired_at IS NULL OR retired_at > day start).
CREATE TABLE IF NOT EXISTS vehicles (
    id            CHAR(36)     NOT NULL PRIMARY KEY,
    org_id        CHAR(36)     NOT NULL,
    warehouse_id  CHAR(36)     NOT NULL,
    plate_no      VARCHAR(20)  NOT NULL,
    vehicle_type  VARCHAR(40)  NOT NULL DEFAULT 'truck',
    capacity_kg   INT,
    in_service_at DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    retired_at    DATETIME(6)  NULL,
    created_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    UNIQUE KEY vehicles_org_plate (org_id, plate_no),
    KEY vehicles_warehouse (warehouse_id)
) DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS orders (
    id            CHAR(36)     NOT NULL PRIMARY KEY,
    org_id        CHAR(36)     NOT NULL,
    warehouse_id  CHAR(36)     NOT NULL,
    order_no      VARCHAR(40)  NOT NULL,
    customer_name VARCHAR(200),
    status        VARCHAR(20)  NOT NULL DEFAULT 'new',  -- new | picking | packed | shipped | delivered | cancelled
    ordered_at    DATETIME(6)  NOT NULL,
    created_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    UNIQUE KEY orders_org_no (org_id, order_no),
    KEY orders_ordered_at (ordered_at),
    KEY orders_warehouse_ordered_at (warehouse_id, ordered_at),
    KEY orders_updated_at (updated_at)
) DEFAULT CHARSET = utf8mb4;

-- warehouse_id may be NULL: rows imported from the ETL Sheet sometimes lack it. They are kept
-- (never silently dropped) and counted in kpi_daily_exclusions for the day they happen.
-- Each event timestamp counts its own event on its own WIB day (dispatched, delivered, failed).
CREATE TABLE IF NOT EXISTS shipments (
    id            CHAR(36)     NOT NULL PRIMARY KEY,
    org_id        CHAR(36)     NOT NULL,
    warehouse_id  CHAR(36)     NULL,
    order_id      CHAR(36)     NULL,
    vehicle_id    CHAR(36)     NULL,
    shipment_no   VARCHAR(40)  NOT NULL,
    status        VARCHAR(20)  NOT NULL DEFAULT 'planned',  -- planned | dispatched | delivered | failed | cancelled
    due_at        DATETIME(6)  NULL,  -- promised delivery time; on-time means delivered_at <= due_at
    dispatched_at DATETIME(6)  NULL,
    delivered_at  DATETIME(6)  NULL,
    failed_at     DATETIME(6)  NULL,
    failure_reason VARCHAR(200),
    created_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    UNIQUE KEY shipments_org_no (org_id, shipment_no),
    KEY shipments_dispatched_at (dispatched_at),
    KEY shipments_delivered_at (delivered_at),
    KEY shipments_failed_at (failed_at),
    KEY shipments_warehouse_status (warehouse_id, status),
    KEY shipments_order (order_id),
    KEY shipments_updated_at (updated_at)
) DEFAULT CHARSET = utf8mb4;

-- One stock movement. quantity is in the SKU's unit of measure:
--   inbound / outbound: quantity >= 0, the direction comes from tx_type;
--   adjustment: signed (stock count corrections go both ways).
-- warehouse_id may be NULL for the same reason as shipments; negative inbound/outbound
-- quantities and unknown tx_types are kept too, and counted in kpi_daily_exclusions.
CREATE TABLE IF NOT EXISTS inventory_tx (
    id            CHAR(36)      NOT NULL PRIMARY KEY,
    org_id        CHAR(36)      NOT NULL,
    warehouse_id  CHAR(36)      NULL,
    sku_id        CHAR(36)      NOT NULL,
    tx_type       VARCHAR(20)   NOT NULL,  -- inbound | outbound | adjustment
    quantity      DECIMAL(18,3) NOT NULL,
    ref_type      VARCHAR(20)   NULL,      -- e.g. order, purchase, stock_count
    ref_id        CHAR(36)      NULL,
    occurred_at   DATETIME(6)   NOT NULL,
    note          VARCHAR(500),
    created_at    DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at    DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    KEY inventory_tx_occurred_at (occurred_at),
    KEY inventory_tx_warehouse_sku_occurred (warehouse_id, sku_id, occurred_at),
    KEY inventory_tx_updated_at (updated_at)
) DEFAULT CHARSET = utf8mb4;

-- A barcode / RFID scan. ref_type + ref_id say what was scanned: an inventory_tx (confirms the
-- movement) or a shipment (load, hand-over, delivery ...).
CREATE TABLE IF NOT EXISTS scan_event (
    id            CHAR(36)     NOT NULL PRIMARY KEY,
    org_id        CHAR(36)     NOT NULL,
    warehouse_id  CHAR(36)     NOT NULL,
    scan_type     VARCHAR(20)  NOT NULL,  -- receive | pick | count | load | deliver | ...
    ref_type      VARCHAR(20)  NOT NULL,  -- inventory_tx | shipment | order
    ref_id        CHAR(36)     NOT NULL,
    device_id     VARCHAR(60),
    scanned_by    CHAR(36),               -- Supabase auth.users id
    scanned_at    DATETIME(6)  NOT NULL,
    created_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    KEY scan_event_ref (ref_type, ref_id, scanned_at),
    KEY scan_event_scanned_at (scanned_at),
    KEY scan_event_warehouse_scanned_at (warehouse_id, scanned_at)
) DEFAULT CHARSET = utf8mb4;
