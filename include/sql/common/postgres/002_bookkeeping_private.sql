-- Bookkeeping is the platform's own: sync_log and sync_rejects hold other organisations' rows
-- and errors, sync_cursors steers every sync. On Supabase every new table in public is granted
-- to the API roles anon and authenticated (ALTER DEFAULT PRIVILEGES), which would let anyone
-- with the project's anon key read and write them. So: no grants to PUBLIC or those roles, and
-- row-level security on without a single policy, so a later GRANT still shows them nothing.
-- The owner that syncs (and roles with BYPASSRLS, such as service_role) keeps full access.
-- datasync_migrations is made private by the migration runner when it creates it; this covers
-- ledgers created before that.
DO $$
DECLARE
    t text;
    r text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sync_log', 'sync_rejects', 'sync_cursors', 'datasync_migrations'] LOOP
        CONTINUE WHEN to_regclass(t) IS NULL;
        EXECUTE format('REVOKE ALL ON TABLE %I FROM PUBLIC', t);
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
            CONTINUE WHEN NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r);
            EXECUTE format('REVOKE ALL ON TABLE %I FROM %I', t, r);
        END LOOP;
    END LOOP;
    -- the id sequences: nextval() for anyone would be a write too
    FOREACH t IN ARRAY ARRAY['sync_log_id_seq', 'sync_rejects_id_seq'] LOOP
        CONTINUE WHEN to_regclass(t) IS NULL;
        EXECUTE format('REVOKE ALL ON SEQUENCE %I FROM PUBLIC', t);
        FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
            CONTINUE WHEN NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r);
            EXECUTE format('REVOKE ALL ON SEQUENCE %I FROM %I', t, r);
        END LOOP;
    END LOOP;
END $$;
