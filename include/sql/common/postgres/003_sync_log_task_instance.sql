-- Which Airflow task instance wrote each sync_log row (the Data sync page links to it), and
-- the index the page's "last success" of every sync is read by.

ALTER TABLE sync_log ADD COLUMN IF NOT EXISTS dag_id VARCHAR(250);
ALTER TABLE sync_log ADD COLUMN IF NOT EXISTS task_id VARCHAR(250);
ALTER TABLE sync_log ADD COLUMN IF NOT EXISTS map_index INTEGER;
ALTER TABLE sync_log ADD COLUMN IF NOT EXISTS try_number INTEGER;

CREATE INDEX IF NOT EXISTS sync_log_name_success ON sync_log (sync_name, started_at DESC) WHERE status = 'success';
