-- Rows of one run that repeated a key already in the same batch: the newest (else the last) of
-- each was kept, the others merged into it. Counted here so "6 processed, 5 inserted" adds up.
ALTER TABLE data_source_sync_history
    ADD COLUMN IF NOT EXISTS records_duplicate INTEGER NOT NULL DEFAULT 0 CHECK (records_duplicate >= 0);
