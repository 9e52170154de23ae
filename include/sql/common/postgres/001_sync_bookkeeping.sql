-- Bookkeeping every target database gets: where each sync stands, what each run did, and
-- the rows it refused. The cursor lives here, beside the data it covers (see DESIGN.md).

CREATE TABLE IF NOT EXISTS sync_cursors (
    sync_name     VARCHAR(200) PRIMARY KEY,
    cursor_value  TEXT,              -- last committed value of the cursor column (ISO text)
    cursor_key    TEXT,              -- JSON array: key of the last committed row, for keyset paging
    rows_synced   BIGINT NOT NULL DEFAULT 0,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS sync_log (
    id            BIGSERIAL PRIMARY KEY,
    sync_name     VARCHAR(200) NOT NULL,
    run_id        VARCHAR(250),
    mode          VARCHAR(20) NOT NULL,        -- incremental | full | upsert
    status        VARCHAR(20) NOT NULL CHECK (status IN ('running', 'success', 'failed')),
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ,
    duration_ms   BIGINT,
    rows_read     BIGINT NOT NULL DEFAULT 0,
    rows_inserted BIGINT NOT NULL DEFAULT 0,
    rows_updated  BIGINT NOT NULL DEFAULT 0,
    rows_unchanged BIGINT NOT NULL DEFAULT 0,
    rows_deleted  BIGINT NOT NULL DEFAULT 0,
    rows_rejected BIGINT NOT NULL DEFAULT 0,
    error         TEXT,
    details       JSONB
);
CREATE INDEX IF NOT EXISTS sync_log_name_started ON sync_log (sync_name, started_at DESC);

CREATE TABLE IF NOT EXISTS sync_rejects (
    id            BIGSERIAL PRIMARY KEY,
    sync_name     VARCHAR(200) NOT NULL,
    run_id        VARCHAR(250),
    table_name    VARCHAR(200) NOT NULL,
    row_key       TEXT,
    column_name   VARCHAR(200),
    value         TEXT,
    reason        TEXT NOT NULL,
    row_data      JSONB,
    rejected_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS sync_rejects_name_at ON sync_rejects (sync_name, rejected_at DESC);
