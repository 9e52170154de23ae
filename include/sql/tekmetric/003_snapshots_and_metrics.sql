-- Point-in-time RO metrics and the daily aggregates. Formulas: docs/tekmetric-warehouse.md.
-- "net_sales" is ours, pre-tax: labor + parts + sublet + fees - discounts, from line items of
-- authorized work; the tm_* columns are Tekmetric's own RO totals (total_sales includes tax).

CREATE TABLE IF NOT EXISTS ro_snapshots (
    snapshot_id       BIGSERIAL PRIMARY KEY,
    ro_id             BIGINT NOT NULL REFERENCES repair_orders (ro_id) ON DELETE CASCADE,
    shop_id           BIGINT NOT NULL,
    trigger           TEXT NOT NULL CHECK (trigger IN ('posted', 'completed', 'manual')),
    -- '' for posted/completed (one each per RO, ever); the DAG run id for manual ones, so a
    -- retried task does not capture twice
    snapshot_key      TEXT NOT NULL DEFAULT '',
    CONSTRAINT ro_snapshots_once UNIQUE (ro_id, trigger, snapshot_key),
    CONSTRAINT ro_snapshots_key CHECK ((trigger = 'manual') = (snapshot_key <> '')),
    captured_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    run_id            TEXT,
    status_code       TEXT NOT NULL,
    metric_date       DATE,               -- posted_date / completed_date for those triggers
    posted_date       DATE,
    completed_date    DATE,
    tm_labor_sales    BIGINT NOT NULL,
    tm_parts_sales    BIGINT NOT NULL,
    tm_sublet_sales   BIGINT NOT NULL,
    tm_fee_total      BIGINT NOT NULL,
    tm_discount_total BIGINT NOT NULL,
    tm_taxes          BIGINT NOT NULL,
    tm_total_sales    BIGINT NOT NULL,
    labor_sales       BIGINT NOT NULL,
    parts_sales       BIGINT NOT NULL,
    sublet_sales      BIGINT NOT NULL,
    fee_total         BIGINT NOT NULL,
    discount_total    BIGINT NOT NULL,
    net_sales         BIGINT NOT NULL,
    labor_cost        BIGINT NOT NULL,
    parts_cost        BIGINT NOT NULL,
    sublet_cost       BIGINT NOT NULL,
    labor_gp          BIGINT NOT NULL,
    parts_gp          BIGINT NOT NULL,
    sublet_gp         BIGINT NOT NULL,
    gross_profit      BIGINT NOT NULL,
    gp_pct            NUMERIC(7, 2),      -- NULL when net_sales is 0
    billed_hours      NUMERIC(10, 2) NOT NULL,
    logged_hours      NUMERIC(10, 2) NOT NULL,
    -- categories whose line-item sum differs from Tekmetric's total by more than the tolerance:
    -- {"labor": {"ours": 1, "tekmetric": 2, "diff": -1, "tolerance": 0}, ...}; {} when all agree
    variance          JSONB NOT NULL DEFAULT '{}',
    variance_ok       BOOLEAN NOT NULL
);
CREATE INDEX IF NOT EXISTS ro_snapshots_shop_date ON ro_snapshots (shop_id, metric_date);

-- One row per shop and shop-local day: ROs posted that day (status POSTED or ACCRECV, not deleted).
CREATE TABLE IF NOT EXISTS daily_shop_metrics (
    shop_id           BIGINT NOT NULL REFERENCES shops (shop_id) ON DELETE CASCADE,
    metric_date       DATE NOT NULL,
    ro_count          INTEGER NOT NULL DEFAULT 0,
    car_count         INTEGER NOT NULL DEFAULT 0,   -- distinct vehicles
    labor_sales       BIGINT NOT NULL DEFAULT 0,
    parts_sales       BIGINT NOT NULL DEFAULT 0,
    sublet_sales      BIGINT NOT NULL DEFAULT 0,
    fee_sales         BIGINT NOT NULL DEFAULT 0,
    discount_total    BIGINT NOT NULL DEFAULT 0,
    net_sales         BIGINT NOT NULL DEFAULT 0,
    taxes             BIGINT NOT NULL DEFAULT 0,
    labor_cost        BIGINT NOT NULL DEFAULT 0,
    parts_cost        BIGINT NOT NULL DEFAULT 0,
    sublet_cost       BIGINT NOT NULL DEFAULT 0,
    labor_gp          BIGINT NOT NULL DEFAULT 0,
    parts_gp          BIGINT NOT NULL DEFAULT 0,
    sublet_gp         BIGINT NOT NULL DEFAULT 0,
    gross_profit      BIGINT NOT NULL DEFAULT 0,
    gp_pct            NUMERIC(7, 2),
    avg_ro            BIGINT,             -- net_sales / ro_count, cents; NULL without ROs
    billed_hours      NUMERIC(12, 2) NOT NULL DEFAULT 0,
    logged_hours      NUMERIC(12, 2) NOT NULL DEFAULT 0,
    variance_ro_count INTEGER NOT NULL DEFAULT 0,   -- ROs whose totals disagree with their lines
    -- true while a synced RO changed this day and the figures are not recomputed yet (set in
    -- the RO's transaction, cleared by the metrics task: a crash in between loses nothing)
    stale             BOOLEAN NOT NULL DEFAULT true,
    computed_at       TIMESTAMPTZ,
    PRIMARY KEY (shop_id, metric_date)
);
CREATE INDEX IF NOT EXISTS daily_shop_metrics_stale ON daily_shop_metrics (shop_id) WHERE stale;

-- Per technician and day, same ROs. technician_id 0 = work with no technician on line, job or RO.
CREATE TABLE IF NOT EXISTS tech_daily_metrics (
    shop_id        BIGINT NOT NULL,
    metric_date    DATE NOT NULL,
    technician_id  BIGINT NOT NULL,
    ro_count       INTEGER NOT NULL DEFAULT 0,
    job_count      INTEGER NOT NULL DEFAULT 0,
    billed_hours   NUMERIC(12, 2) NOT NULL DEFAULT 0,
    logged_hours   NUMERIC(12, 2) NOT NULL DEFAULT 0,
    efficiency_pct NUMERIC(7, 2),         -- billed / logged; NULL without logged hours
    labor_sales    BIGINT NOT NULL DEFAULT 0,
    labor_cost     BIGINT NOT NULL DEFAULT 0,
    labor_gp       BIGINT NOT NULL DEFAULT 0,
    cost_rate      INTEGER,               -- cents/hour used for labor_cost (most lines)
    rate_source    TEXT CHECK (rate_source IN ('assigned', 'shop_avg', 'default')),
    computed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (shop_id, metric_date, technician_id),
    FOREIGN KEY (shop_id, metric_date) REFERENCES daily_shop_metrics (shop_id, metric_date) ON DELETE CASCADE
);
