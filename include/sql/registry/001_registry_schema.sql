-- Multi-source registry (seed 003): which sources exist, how to reach them, where their rows go,
-- what each sync did, and reusable connection templates.
--
-- Differences from the seed, on purpose:
--   * vocabularies are CHECK constraints, so a typo is refused at insert time, not at 3 a.m.;
--   * configs are JSONB objects; connection configs name Airflow connections/variables and never
--     hold secrets (top-level secret-looking keys are refused here, the connectors refuse the rest);
--   * timestamps are TIMESTAMPTZ (stored UTC, see DESIGN.md);
--   * mappings carry what a runner needs: key columns, cursor, retention column, reject threshold;
--   * history records which connection served (primary/backup) and how many rows were rejected.

-- The seed references users(id); a deployment that already has a users table keeps it.
CREATE TABLE IF NOT EXISTS users (
    id            SERIAL PRIMARY KEY,
    username      VARCHAR(100) NOT NULL UNIQUE,
    display_name  VARCHAR(200),
    email         VARCHAR(255),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION data_source_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TABLE IF NOT EXISTS data_source_registry (
    id                SERIAL PRIMARY KEY,
    -- used in sync names, lock names and task ids: keep it to safe characters
    source_id         VARCHAR(50) NOT NULL UNIQUE CHECK (source_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'),
    name              VARCHAR(200) NOT NULL,
    description       TEXT,
    source_type       VARCHAR(20) NOT NULL
                      CHECK (source_type IN ('json', 'csv', 'excel', 'gsheet', 'database', 'api', 'artisan')),
    connection_type   VARCHAR(20) NOT NULL
                      CHECK (connection_type IN ('file', 'database', 'api', 'artisan', 'gsheet')),
    status            VARCHAR(20) NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'inactive', 'error', 'maintenance')),
    priority          INTEGER NOT NULL DEFAULT 1 CHECK (priority IN (1, 2, 3)),  -- 1 high, 2 medium, 3 low
    refresh_interval  INTEGER NOT NULL DEFAULT 300 CHECK (refresh_interval > 0),  -- seconds
    last_sync         TIMESTAMPTZ,
    next_sync         TIMESTAMPTZ,
    error_count       INTEGER NOT NULL DEFAULT 0 CHECK (error_count >= 0),
    last_error        TEXT,
    created_by        INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- files are read by their format's connector; every other type is its own connection type
    CONSTRAINT data_source_registry_type_pair CHECK (
        (source_type IN ('json', 'csv', 'excel') AND connection_type = 'file')
        OR source_type = connection_type
    )
);

CREATE TABLE IF NOT EXISTS data_source_connections (
    id                     SERIAL PRIMARY KEY,
    source_id              INTEGER NOT NULL REFERENCES data_source_registry (id) ON DELETE CASCADE,
    connection_name        VARCHAR(100) NOT NULL,
    connection_type        VARCHAR(20) NOT NULL
                           CHECK (connection_type IN ('file', 'database', 'api', 'artisan', 'gsheet')),
    connection_config      JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(connection_config) = 'object'),
    -- kept from the seed, but only as references: {"conn_id": ...} and/or {"variable": ...}
    authentication_config  JSONB CHECK (
        authentication_config IS NULL
        OR (jsonb_typeof(authentication_config) = 'object'
            AND authentication_config - 'conn_id' - 'variable' = '{}'::jsonb)
    ),
    is_primary             BOOLEAN NOT NULL DEFAULT false,
    is_backup              BOOLEAN NOT NULL DEFAULT false,
    status                 VARCHAR(20) NOT NULL DEFAULT 'active'
                           CHECK (status IN ('active', 'inactive', 'error', 'maintenance')),
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (source_id, connection_name),
    CONSTRAINT data_source_connections_one_role CHECK (NOT (is_primary AND is_backup)),
    -- a connection without its essential setting can never work: refuse it when it is written
    CONSTRAINT data_source_connections_required CHECK (
        CASE connection_type
            WHEN 'file' THEN connection_config ? 'file_path'
            WHEN 'database' THEN connection_config ? 'conn_id'
            WHEN 'api' THEN connection_config ? 'base_url'
            WHEN 'artisan' THEN connection_config ? 'command'
            WHEN 'gsheet' THEN connection_config ? 'spreadsheet_id'
        END
    ),
    CONSTRAINT data_source_connections_no_secrets CHECK (
        NOT connection_config ?| ARRAY['password', 'passwd', 'secret', 'token', 'api_key', 'apikey',
                                       'access_token', 'client_secret', 'private_key']
    )
);
-- at most one primary per source; backups are tried in id order
CREATE UNIQUE INDEX IF NOT EXISTS data_source_connections_primary
    ON data_source_connections (source_id) WHERE is_primary;

CREATE TABLE IF NOT EXISTS data_source_mappings (
    id                     SERIAL PRIMARY KEY,
    source_id              INTEGER NOT NULL REFERENCES data_source_registry (id) ON DELETE CASCADE,
    -- same rule as datasync.identifiers (table or schema.table); the registry's own tables are off limits
    target_table           VARCHAR(127) NOT NULL CHECK (
        target_table ~ '^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$'
        AND lower(target_table) !~ '^(public\.)?(data_source_|sync_|datasync_|users$)'
    ),
    mapping_config         JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(mapping_config) = 'object'),
    key_columns            TEXT[] NOT NULL CHECK (
        cardinality(key_columns) > 0
        AND array_to_string(key_columns, ',', '?') ~ '^[A-Za-z_][A-Za-z0-9_]{0,62}(,[A-Za-z_][A-Za-z0-9_]{0,62})*$'
    ),
    -- target column whose value orders increments (the engine's cursor)
    cursor_field           VARCHAR(63) CHECK (cursor_field ~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$'),
    -- target column that data_retention_days is measured on; no column, no purge
    retention_date_column  VARCHAR(63) CHECK (retention_date_column ~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$'),
    max_rejects            INTEGER NOT NULL DEFAULT 0 CHECK (max_rejects >= 0),  -- more fails the run
    sync_strategy          VARCHAR(20) NOT NULL DEFAULT 'incremental'
                           CHECK (sync_strategy IN ('full', 'incremental', 'realtime')),
    sync_frequency         VARCHAR(20) NOT NULL DEFAULT 'hourly'
                           CHECK (sync_frequency IN ('realtime', 'minute', 'hourly', 'daily')),
    data_retention_days    INTEGER DEFAULT 365 CHECK (data_retention_days IS NULL OR data_retention_days > 0),
    is_active              BOOLEAN NOT NULL DEFAULT true,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (source_id, target_table),
    -- without a cursor an "incremental" sync would silently re-read everything or nothing
    CONSTRAINT data_source_mappings_cursor CHECK (sync_strategy = 'full' OR cursor_field IS NOT NULL)
);

CREATE TABLE IF NOT EXISTS data_source_sync_history (
    id                 BIGSERIAL PRIMARY KEY,
    source_id          INTEGER NOT NULL REFERENCES data_source_registry (id) ON DELETE CASCADE,
    mapping_id         INTEGER REFERENCES data_source_mappings (id) ON DELETE SET NULL,
    connection_id      INTEGER REFERENCES data_source_connections (id) ON DELETE SET NULL,
    connection_role    VARCHAR(10) CHECK (connection_role IN ('primary', 'backup')),
    run_id             VARCHAR(250),
    sync_type          VARCHAR(20) NOT NULL CHECK (sync_type IN ('full', 'incremental', 'realtime')),
    -- 'running' is written when a sync starts, so a crashed run stays visible
    sync_status        VARCHAR(20) NOT NULL CHECK (sync_status IN ('running', 'success', 'failed', 'partial')),
    records_processed  INTEGER NOT NULL DEFAULT 0 CHECK (records_processed >= 0),
    records_inserted   INTEGER NOT NULL DEFAULT 0 CHECK (records_inserted >= 0),
    records_updated    INTEGER NOT NULL DEFAULT 0 CHECK (records_updated >= 0),
    records_unchanged  INTEGER NOT NULL DEFAULT 0 CHECK (records_unchanged >= 0),
    records_deleted    INTEGER NOT NULL DEFAULT 0 CHECK (records_deleted >= 0),
    records_rejected   INTEGER NOT NULL DEFAULT 0 CHECK (records_rejected >= 0),
    sync_duration_ms   INTEGER CHECK (sync_duration_ms >= 0),
    error_message      TEXT,
    sync_started_at    TIMESTAMPTZ NOT NULL,
    sync_completed_at  TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT data_source_sync_history_finished CHECK (
        (sync_status = 'running') = (sync_completed_at IS NULL)
        AND (sync_completed_at IS NULL OR sync_completed_at >= sync_started_at)
    ),
    CONSTRAINT data_source_sync_history_error CHECK (sync_status <> 'failed' OR error_message IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS data_source_sync_history_source_started
    ON data_source_sync_history (source_id, sync_started_at DESC);

CREATE TABLE IF NOT EXISTS data_source_templates (
    id               SERIAL PRIMARY KEY,
    template_name    VARCHAR(100) NOT NULL UNIQUE,
    template_type    VARCHAR(20) NOT NULL
                     CHECK (template_type IN ('file', 'database', 'api', 'artisan', 'gsheet')),
    -- which connector the template is for (a 'file' template alone does not say json, csv or excel)
    source_type      VARCHAR(20) NOT NULL
                     CHECK (source_type IN ('json', 'csv', 'excel', 'gsheet', 'database', 'api', 'artisan')),
    template_config  JSONB NOT NULL CHECK (jsonb_typeof(template_config) = 'object'),
    is_predefined    BOOLEAN NOT NULL DEFAULT false,
    created_by       INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT data_source_templates_type_pair CHECK (
        (source_type IN ('json', 'csv', 'excel') AND template_type = 'file') OR source_type = template_type
    )
);

CREATE OR REPLACE TRIGGER data_source_registry_touch BEFORE UPDATE ON data_source_registry
    FOR EACH ROW EXECUTE FUNCTION data_source_touch_updated_at();
CREATE OR REPLACE TRIGGER data_source_connections_touch BEFORE UPDATE ON data_source_connections
    FOR EACH ROW EXECUTE FUNCTION data_source_touch_updated_at();
CREATE OR REPLACE TRIGGER data_source_mappings_touch BEFORE UPDATE ON data_source_mappings
    FOR EACH ROW EXECUTE FUNCTION data_source_touch_updated_at();
