-- The common bookkeeping (sync_cursors, sync_log, sync_rejects from common/postgres/001) with
-- the shop and entity each Tekmetric row is about, and the raw page store.
-- Tekmetric sync names are 'tekmetric_sync.<shop_id>.<entity>'.

ALTER TABLE sync_cursors ADD COLUMN IF NOT EXISTS shop_id BIGINT;
ALTER TABLE sync_cursors ADD COLUMN IF NOT EXISTS entity TEXT;
ALTER TABLE sync_log ADD COLUMN IF NOT EXISTS shop_id BIGINT;
ALTER TABLE sync_log ADD COLUMN IF NOT EXISTS entity TEXT;
CREATE INDEX IF NOT EXISTS sync_log_shop_entity ON sync_log (shop_id, entity, started_at DESC) WHERE shop_id IS NOT NULL;

-- Pages exactly as Tekmetric served them, when the DAG's store_raw_payloads is on; written in
-- the transaction of the rows they produced, purged after raw_retention_days.
CREATE TABLE IF NOT EXISTS tm_raw_payloads (
    payload_id BIGSERIAL PRIMARY KEY,
    shop_id    BIGINT NOT NULL,
    entity     TEXT NOT NULL,
    endpoint   TEXT NOT NULL,             -- path, e.g. /api/v1/repair-orders
    query      JSONB NOT NULL,            -- filters and page (never credentials)
    page       INTEGER NOT NULL,
    payload    JSONB NOT NULL,            -- the page envelope, content included
    run_id     TEXT,
    fetched_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS tm_raw_payloads_fetched ON tm_raw_payloads (fetched_at);
CREATE INDEX IF NOT EXISTS tm_raw_payloads_shop_entity ON tm_raw_payloads (shop_id, entity, fetched_at);
