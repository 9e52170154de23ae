-- Which Airflow task instance wrote each sync_log row (the Data sync page links to it), and
-- the index the page's "last success" of every sync is read by. Re-runnable (IF NOT EXISTS:
-- MariaDB and TiDB have it), as MySQL-family DDL commits itself.

ALTER TABLE sync_log ADD COLUMN IF NOT EXISTS dag_id VARCHAR(250) NULL;
ALTER TABLE sync_log ADD COLUMN IF NOT EXISTS task_id VARCHAR(250) NULL;
ALTER TABLE sync_log ADD COLUMN IF NOT EXISTS map_index INT NULL;
ALTER TABLE sync_log ADD COLUMN IF NOT EXISTS try_number INT NULL;

CREATE INDEX IF NOT EXISTS sync_log_name_status_started ON sync_log (sync_name, status, started_at);
