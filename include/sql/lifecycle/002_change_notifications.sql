-- Real-time sync (opt-in; docs/realtime.md): statement-level triggers that
-- announce changes with pg_notify('datasync_changes', '<schema>.<table>'). This migration only
-- creates the functions; the triggers exist after a platform engineer runs, on lifecycle_db:
--     SELECT datasync_realtime(true);    -- and datasync_realtime(false) removes them again
-- The first two functions are the same as datasync.realtime.FUNCTIONS_SQL (any watched database).

CREATE OR REPLACE FUNCTION datasync_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION datasync_watch(tbl regclass, enabled boolean DEFAULT true,
                                          channel text DEFAULT 'datasync_changes') RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    trigger_name text := 'datasync_notify_' || (SELECT relname FROM pg_class WHERE oid = tbl);
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', trigger_name, tbl);
    IF enabled THEN
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION datasync_notify_change(%L)', trigger_name, tbl, channel);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION datasync_realtime(enabled boolean) RETURNS void LANGUAGE sql AS $$
    SELECT datasync_watch(t, enabled)
    FROM unnest(ARRAY['tbl_segmen', 'tbl_stage', 'tbl_produk', 'tbl_stage_histori']::regclass[]) AS t;
$$;
