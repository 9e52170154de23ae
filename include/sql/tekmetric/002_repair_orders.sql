-- Repair orders and their line items. An RO and everything under it is written as one set:
-- the sync deletes the RO's children and inserts the ones in the current payload, in the
-- transaction that writes the RO (a job removed in Tekmetric disappears here too).
-- Deleting an RO cascades to jobs, line items and snapshots; deleting a job to its lines.
-- Sales count only authorized jobs (and authorized sublets), as Tekmetric's RO totals do.

CREATE TABLE IF NOT EXISTS repair_orders (
    ro_id             BIGINT PRIMARY KEY,
    shop_id           BIGINT NOT NULL REFERENCES shops (shop_id) ON DELETE CASCADE,
    ro_number         BIGINT,
    status_id         SMALLINT NOT NULL,
    status_code       TEXT NOT NULL,
    status_name       TEXT,
    -- Tekmetric's statuses: 1 Estimate .. 7 Deleted; an unknown one is rejected, not guessed
    CONSTRAINT repair_orders_status CHECK ((status_id, status_code) IN (
        (1, 'ESTIMATE'), (2, 'WORKINPROGRESS'), (3, 'COMPLETE'), (4, 'SAVEDFORLATER'),
        (5, 'POSTED'), (6, 'ACCRECV'), (7, 'DELETED'))),
    customer_id       BIGINT,             -- no FKs to customers/vehicles/employees: see vehicles
    vehicle_id        BIGINT,
    technician_id     BIGINT,
    service_writer_id BIGINT,
    miles_in          NUMERIC(12, 1),
    miles_out         NUMERIC(12, 1),
    created_date      TIMESTAMPTZ,
    updated_date      TIMESTAMPTZ NOT NULL,
    completed_at      TIMESTAMPTZ,
    posted_at         TIMESTAMPTZ,
    completed_date    DATE,               -- shop-local day of completed_at
    posted_date       DATE,               -- shop-local day of posted_at
    deleted_date      TIMESTAMPTZ,
    -- Tekmetric's own totals (cents), checked against our line-item sums (variance)
    labor_sales       BIGINT NOT NULL DEFAULT 0,
    parts_sales       BIGINT NOT NULL DEFAULT 0,
    sublet_sales      BIGINT NOT NULL DEFAULT 0,
    discount_total    BIGINT NOT NULL DEFAULT 0,
    fee_total         BIGINT NOT NULL DEFAULT 0,
    taxes             BIGINT NOT NULL DEFAULT 0,
    amount_paid       BIGINT NOT NULL DEFAULT 0,
    total_sales       BIGINT NOT NULL DEFAULT 0,
    discount_lines    JSONB NOT NULL DEFAULT '[]',  -- RO-level discounts [{id, name, total}]
    customer_concerns JSONB NOT NULL DEFAULT '[]',
    payload_hash      TEXT NOT NULL,      -- of the normalized payload: an unchanged RO is not rewritten
    synced_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS repair_orders_shop_posted ON repair_orders (shop_id, posted_date);
CREATE INDEX IF NOT EXISTS repair_orders_shop_updated ON repair_orders (shop_id, updated_date);
CREATE INDEX IF NOT EXISTS repair_orders_customer ON repair_orders (customer_id);
CREATE INDEX IF NOT EXISTS repair_orders_vehicle ON repair_orders (vehicle_id);

CREATE TABLE IF NOT EXISTS jobs (
    job_id          BIGINT PRIMARY KEY,
    ro_id           BIGINT NOT NULL REFERENCES repair_orders (ro_id) ON DELETE CASCADE,
    shop_id         BIGINT NOT NULL,
    vehicle_id      BIGINT,
    customer_id     BIGINT,
    name            TEXT,
    category        TEXT,                 -- jobCategoryName
    authorized      BOOLEAN NOT NULL DEFAULT false,
    authorized_date TIMESTAMPTZ,
    selected        BOOLEAN,
    technician_id   BIGINT,
    note            TEXT,
    labor_total     BIGINT NOT NULL DEFAULT 0,
    parts_total     BIGINT NOT NULL DEFAULT 0,
    fee_total       BIGINT NOT NULL DEFAULT 0,
    discount_total  BIGINT NOT NULL DEFAULT 0,
    subtotal        BIGINT NOT NULL DEFAULT 0,
    archived        BOOLEAN NOT NULL DEFAULT false,
    labor_hours     NUMERIC(10, 2),       -- billed
    logged_hours    NUMERIC(10, 2),       -- clocked by the technician
    discount_lines  JSONB NOT NULL DEFAULT '[]',
    created_date    TIMESTAMPTZ,
    updated_date    TIMESTAMPTZ,
    completed_at    TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS jobs_ro ON jobs (ro_id);

CREATE TABLE IF NOT EXISTS job_labor (
    labor_id      BIGINT PRIMARY KEY,
    job_id        BIGINT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    ro_id         BIGINT NOT NULL REFERENCES repair_orders (ro_id) ON DELETE CASCADE,
    shop_id       BIGINT NOT NULL,
    name          TEXT,
    rate          BIGINT NOT NULL DEFAULT 0 CHECK (rate >= 0),  -- billed rate, cents/hour
    hours         NUMERIC(10, 2) NOT NULL DEFAULT 0,            -- billed hours
    complete      BOOLEAN,
    technician_id BIGINT,                 -- as sent; the line's technician is this, else the job's, else the RO's
    -- The labor cost rate (cents/hour) in effect when the RO was written, and where it came from
    cost_rate     INTEGER NOT NULL CHECK (cost_rate >= 0),
    rate_source   TEXT NOT NULL CHECK (rate_source IN ('assigned', 'shop_avg', 'default'))
);
CREATE INDEX IF NOT EXISTS job_labor_ro ON job_labor (ro_id);
CREATE INDEX IF NOT EXISTS job_labor_job ON job_labor (job_id);

CREATE TABLE IF NOT EXISTS job_parts (
    part_id        BIGINT PRIMARY KEY,
    job_id         BIGINT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    ro_id          BIGINT NOT NULL REFERENCES repair_orders (ro_id) ON DELETE CASCADE,
    shop_id        BIGINT NOT NULL,
    quantity       NUMERIC(12, 3) NOT NULL DEFAULT 0,
    brand          TEXT,
    name           TEXT,                  -- Tekmetric sometimes sends null
    part_number    TEXT,
    description    TEXT,
    cost           BIGINT NOT NULL DEFAULT 0,  -- per unit
    retail         BIGINT NOT NULL DEFAULT 0,  -- per unit
    part_type_id   INTEGER,
    part_type_code TEXT
);
CREATE INDEX IF NOT EXISTS job_parts_ro ON job_parts (ro_id);
CREATE INDEX IF NOT EXISTS job_parts_job ON job_parts (job_id);

-- Sublets hang on the repair order in Tekmetric; job_id is for the day they come per job.
CREATE TABLE IF NOT EXISTS job_sublets (
    sublet_id       BIGINT PRIMARY KEY,
    ro_id           BIGINT NOT NULL REFERENCES repair_orders (ro_id) ON DELETE CASCADE,
    job_id          BIGINT REFERENCES jobs (job_id) ON DELETE CASCADE,
    shop_id         BIGINT NOT NULL,
    name            TEXT,
    vendor_id       BIGINT,
    vendor_name     TEXT,
    authorized      BOOLEAN NOT NULL DEFAULT false,
    authorized_date TIMESTAMPTZ,
    selected        BOOLEAN,
    note            TEXT,
    price           BIGINT NOT NULL DEFAULT 0,
    cost            BIGINT NOT NULL DEFAULT 0,
    items           JSONB NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS job_sublets_ro ON job_sublets (ro_id);

-- Fees on a job (job_id set) or on the repair order itself (job_id NULL).
CREATE TABLE IF NOT EXISTS job_fees (
    fee_id   BIGINT PRIMARY KEY,
    ro_id    BIGINT NOT NULL REFERENCES repair_orders (ro_id) ON DELETE CASCADE,
    job_id   BIGINT REFERENCES jobs (job_id) ON DELETE CASCADE,
    shop_id  BIGINT NOT NULL,
    name     TEXT,
    fee_type TEXT NOT NULL CHECK (fee_type IN ('shop_supplies', 'environmental', 'disposal', 'hazmat', 'other')),
    total    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS job_fees_ro ON job_fees (ro_id);
CREATE INDEX IF NOT EXISTS job_fees_job ON job_fees (job_id);
