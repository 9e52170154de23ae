-- A run can end 'partial': it committed what it read but not all it was asked to (a Tekmetric
-- listing slice that shifted while paged is read again by the next run).

ALTER TABLE sync_log DROP CONSTRAINT IF EXISTS sync_log_status_check;
ALTER TABLE sync_log ADD CONSTRAINT sync_log_status_check CHECK (status IN ('running', 'success', 'partial', 'failed'));
