-- Tekmetric warehouse (seed 004): shops, employees, customers, vehicles.
--
-- Conventions for every tekmetric table:
--   * money is integer cents (BIGINT): 17950 = $179.50; rates are cents per hour;
--   * *_at and created_date / updated_date / deleted_date are TIMESTAMPTZ in UTC;
--   * posted_date, completed_date and metric_date are shop-local calendar DATEs (shops.timezone);
--   * ids are Tekmetric's own (global across shops), so every table is keyed by them;
--   * columns the API does not have (timezone fallback, labor cost rates, sync_enabled) are
--     configuration: the sync never overwrites them.

CREATE TABLE IF NOT EXISTS shops (
    shop_id                  BIGINT PRIMARY KEY,
    name                     TEXT NOT NULL,
    nickname                 TEXT,
    phone                    TEXT,
    email                    TEXT,
    website                  TEXT,
    address1                 TEXT,
    address2                 TEXT,
    city                     TEXT,
    state                    TEXT,
    zip                      TEXT,
    -- IANA zone for shop-local dates. Tekmetric's documented payload has none: when it is
    -- missing the sync keeps this value, so set it here for real shops.
    timezone                 TEXT NOT NULL DEFAULT 'UTC',
    -- Labor cost when neither the technician nor the shop average has a rate (rate_source
    -- 'default'). A placeholder of $25.00/h: set each shop's real figure.
    default_labor_cost_cents INTEGER NOT NULL DEFAULT 2500 CHECK (default_labor_cost_cents >= 0),
    sync_enabled             BOOLEAN NOT NULL DEFAULT true,
    first_seen_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS employees (
    employee_id       BIGINT PRIMARY KEY,
    shop_id           BIGINT NOT NULL REFERENCES shops (shop_id) ON DELETE CASCADE,
    first_name        TEXT,
    last_name         TEXT,
    email             TEXT,
    role_id           INTEGER,            -- employeeRole as Tekmetric sends it
    role_code         TEXT,
    -- 1 Admin, 2 Service advisor, 3 Technician, 4 Owner; any other id is 'other' (raw id kept)
    role              TEXT NOT NULL CHECK (role IN ('admin', 'service_advisor', 'technician', 'owner', 'other')),
    can_perform_work  BOOLEAN NOT NULL DEFAULT false,
    -- INACTIVE: no longer returned by Tekmetric's employee list (kept: ROs still name them)
    status            TEXT NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'INACTIVE')),
    -- Assigned labor cost rate (rate_source 'assigned'). Not in the partner API: set by the shop.
    hourly_cost_cents INTEGER CHECK (hourly_cost_cents >= 0),
    created_date      TIMESTAMPTZ,
    updated_date      TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS employees_shop ON employees (shop_id);

-- PII lives here (names, email, phones, address); dashboards read customers_analytics.
CREATE TABLE IF NOT EXISTS customers (
    customer_id      BIGINT PRIMARY KEY,
    shop_id          BIGINT NOT NULL REFERENCES shops (shop_id) ON DELETE CASCADE,
    first_name       TEXT,
    last_name        TEXT,
    email            TEXT,
    phone            TEXT,                -- the primary number
    phones           JSONB,
    address1         TEXT,
    address2         TEXT,
    city             TEXT,
    state            TEXT,
    zip              TEXT,
    customer_type    TEXT,
    ok_for_marketing BOOLEAN,
    notes            TEXT,
    created_date     TIMESTAMPTZ,
    updated_date     TIMESTAMPTZ NOT NULL,
    deleted_date     TIMESTAMPTZ          -- deleted in Tekmetric (the row stays for history)
);
CREATE INDEX IF NOT EXISTS customers_shop_updated ON customers (shop_id, updated_date);

CREATE TABLE IF NOT EXISTS vehicles (
    vehicle_id    BIGINT PRIMARY KEY,
    shop_id       BIGINT NOT NULL REFERENCES shops (shop_id) ON DELETE CASCADE,
    customer_id   BIGINT,                 -- no FK: a backfill may start after the customer was last changed
    year          INTEGER,
    make          TEXT,
    model         TEXT,
    sub_model     TEXT,
    engine        TEXT,
    color         TEXT,
    license_plate TEXT,
    plate_state   TEXT,
    vin           TEXT,
    unit_number   TEXT,
    created_date  TIMESTAMPTZ,
    updated_date  TIMESTAMPTZ NOT NULL,
    deleted_date  TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS vehicles_shop_updated ON vehicles (shop_id, updated_date);
CREATE INDEX IF NOT EXISTS vehicles_customer ON vehicles (customer_id);
