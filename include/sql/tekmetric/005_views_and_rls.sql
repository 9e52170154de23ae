-- The PII-free customer view, row-level security on every warehouse table, service_role access,
-- and shop isolation ready to switch on for a dashboard role.

-- service_role exists on Supabase (and bypasses RLS there); create it only where missing.
-- Roles are cluster-wide, so another database or a concurrent migration may make it first.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        BEGIN
            CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END $$;

-- Customers without names, email, phones or street address; with visit figures. Runs with the
-- caller's rights (security_invoker), so row-level security on the tables below applies.
CREATE OR REPLACE VIEW customers_analytics WITH (security_invoker = true) AS
SELECT c.customer_id,
       c.shop_id,
       c.customer_type,
       c.ok_for_marketing,
       c.city,
       c.state,
       left(c.zip, 3)                  AS zip3,
       c.created_date,
       c.updated_date,
       c.deleted_date,
       coalesce(v.vehicle_count, 0)    AS vehicle_count,
       coalesce(r.posted_ro_count, 0)  AS posted_ro_count,
       r.first_posted_date,
       r.last_posted_date,
       coalesce(r.lifetime_sales, 0)   AS lifetime_sales      -- Tekmetric total_sales, cents
FROM customers c
LEFT JOIN LATERAL (
    SELECT count(*) AS vehicle_count FROM vehicles x
    WHERE x.customer_id = c.customer_id AND x.deleted_date IS NULL
) v ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS posted_ro_count, min(ro.posted_date) AS first_posted_date,
           max(ro.posted_date) AS last_posted_date, sum(ro.total_sales) AS lifetime_sales
    FROM repair_orders ro
    WHERE ro.customer_id = c.customer_id AND ro.deleted_date IS NULL AND ro.status_code IN ('POSTED', 'ACCRECV')
) r ON true;

-- Every table gets RLS and a service_role policy (the sync connects as the tables' owner,
-- which RLS does not restrict).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['shops', 'employees', 'customers', 'vehicles', 'repair_orders', 'jobs', 'job_parts',
                             'job_labor', 'job_sublets', 'job_fees', 'ro_snapshots', 'daily_shop_metrics',
                             'tech_daily_metrics', 'sync_cursors', 'sync_log', 'tm_raw_payloads', 'sync_rejects'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('GRANT ALL ON %I TO service_role', t);
        IF NOT EXISTS (SELECT FROM pg_policies WHERE schemaname = current_schema() AND tablename = t
                                                   AND policyname = 'service_role_all') THEN
            EXECUTE format('CREATE POLICY service_role_all ON %I FOR ALL TO service_role USING (true) WITH CHECK (true)', t);
        END IF;
    END LOOP;
END $$;
GRANT SELECT ON customers_analytics TO service_role;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO service_role;

-- Shop isolation, ready but off: nothing is granted to dashboard users until an admin runs
--     SELECT tm_enable_shop_isolation('authenticated');   -- or any role
-- Then that role reads only rows of the shops listed in its JWT claims
-- (request.jwt.claims -> app_metadata.shop_ids, or a top-level shop_ids), never customers' PII
-- (only the non-PII columns of customers are granted; customers_analytics is the way in), and
-- nothing of the sync bookkeeping or raw payloads.
CREATE OR REPLACE FUNCTION tm_claimed_shop_ids() RETURNS bigint[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(value::bigint), '{}')
    FROM jsonb_array_elements_text(coalesce(
        nullif(current_setting('request.jwt.claims', true), '')::jsonb -> 'app_metadata' -> 'shop_ids',
        nullif(current_setting('request.jwt.claims', true), '')::jsonb -> 'shop_ids',
        '[]'::jsonb))
$$;

CREATE OR REPLACE FUNCTION tm_enable_shop_isolation(role_name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t text;
    policy text := 'shop_isolation_' || role_name;
BEGIN
    FOREACH t IN ARRAY ARRAY['shops', 'employees', 'customers', 'vehicles', 'repair_orders', 'jobs', 'job_parts',
                             'job_labor', 'job_sublets', 'job_fees', 'ro_snapshots', 'daily_shop_metrics',
                             'tech_daily_metrics'] LOOP
        IF t = 'customers' THEN
            EXECUTE format('GRANT SELECT (customer_id, shop_id, customer_type, ok_for_marketing, city, state, zip, '
                           'created_date, updated_date, deleted_date) ON customers TO %I', role_name);
        ELSE
            EXECUTE format('GRANT SELECT ON %I TO %I', t, role_name);
        END IF;
        IF NOT EXISTS (SELECT FROM pg_policies WHERE schemaname = current_schema() AND tablename = t
                                                   AND policyname = policy) THEN
            EXECUTE format('CREATE POLICY %I ON %I FOR SELECT TO %I USING (shop_id = ANY (tm_claimed_shop_ids()))',
                           policy, t, role_name);
        END IF;
    END LOOP;
    EXECUTE format('GRANT SELECT ON customers_analytics TO %I', role_name);
END $$;
REVOKE ALL ON FUNCTION tm_enable_shop_isolation(text) FROM PUBLIC;
