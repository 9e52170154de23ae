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
    rel record;
    r text;
BEGIN
    -- the tables, and their id sequences (nextval() for anyone would be a write too)
    FOR rel IN
        SELECT c.oid::regclass AS name, CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind
        FROM unnest(ARRAY['sync_log', 'sync_rejects', 'sync_cursors', 'datasync_migrations',
                          'sync_log_id_seq', 'sync_rejects_id_seq']) AS t (name)
        JOIN pg_class c ON c.oid = to_regclass(t.name)
    LOOP
        EXECUTE format('REVOKE ALL ON %s %s FROM PUBLIC', rel.kind, rel.name);
        FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
            CONTINUE WHEN NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r);
            EXECUTE format('REVOKE ALL ON %s %s FROM %I', rel.kind, rel.name, r);
        END LOOP;
        IF rel.kind = 'TABLE' THEN
            EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', rel.name);
        END IF;
    END LOOP;
END $$;
