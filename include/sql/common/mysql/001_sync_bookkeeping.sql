-- Bookkeeping every target database gets: where each sync stands, what each run did, and
-- the rows it refused. The cursor lives here, beside the data it covers (see DESIGN.md).
-- MySQL 8 / TiDB / MariaDB dialect.

CREATE TABLE IF NOT EXISTS sync_cursors (
    sync_name     VARCHAR(200) NOT NULL PRIMARY KEY,
    cursor_value  TEXT,
    cursor_key    TEXT,
    rows_synced   BIGINT NOT NULL DEFAULT 0,
    updated_at    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS sync_log (
    id            BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    sync_name     VARCHAR(200) NOT NULL,
    run_id        VARCHAR(250),
    mode          VARCHAR(20) NOT NULL,
    status        VARCHAR(20) NOT NULL,
    started_at    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    finished_at   TIMESTAMP(6) NULL,
    duration_ms   BIGINT,
    rows_read     BIGINT NOT NULL DEFAULT 0,
    rows_inserted BIGINT NOT NULL DEFAULT 0,
    rows_updated  BIGINT NOT NULL DEFAULT 0,
    rows_unchanged BIGINT NOT NULL DEFAULT 0,
    rows_deleted  BIGINT NOT NULL DEFAULT 0,
    rows_rejected BIGINT NOT NULL DEFAULT 0,
    error         TEXT,
    details       TEXT,
    KEY sync_log_name_started (sync_name, started_at)
) DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS sync_rejects (
    id            BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    sync_name     VARCHAR(200) NOT NULL,
    run_id        VARCHAR(250),
    table_name    VARCHAR(200) NOT NULL,
    row_key       TEXT,
    column_name   VARCHAR(200),
    value         TEXT,
    reason        TEXT NOT NULL,
    row_data      TEXT,
    rejected_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    KEY sync_rejects_name_at (sync_name, rejected_at)
) DEFAULT CHARSET = utf8mb4;
