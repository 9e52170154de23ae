-- Supabase stand-ins, so the schema runs on a plain PostgreSQL (tests, the local demo).
-- On a Supabase project all of this exists already and every block is a no-op: nothing of
-- Supabase's own is replaced (its auth schema belongs to supabase_auth_admin anyway).

-- API roles. Roles are cluster-wide, so another database (or a concurrent test) may have made
-- them first. service_role bypasses row-level security, as on Supabase.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES ('anon', ''), ('authenticated', ''), ('service_role', ' BYPASSRLS')) AS v (name, extra) LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r.name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT%s', r.name, r.extra);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END $$;

-- auth.users and the claim helpers. Like Supabase, auth.uid() / auth.jwt() read the JWT claims
-- that PostgREST puts in the transaction setting request.jwt.claims (and the older
-- request.jwt.claim.sub), so a test can act as a user with
--   SET ROLE authenticated; SET request.jwt.claims = '{"sub": "<uuid>", "role": "authenticated"}';
DO $$
BEGIN
    IF to_regnamespace('auth') IS NULL THEN
        CREATE SCHEMA auth;
        GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
    END IF;

    IF to_regclass('auth.users') IS NULL THEN
        CREATE TABLE auth.users (
            id                 uuid PRIMARY KEY,
            email              text UNIQUE,
            raw_app_meta_data  jsonb NOT NULL DEFAULT '{}',
            raw_user_meta_data jsonb NOT NULL DEFAULT '{}',
            created_at         timestamptz NOT NULL DEFAULT now(),
            updated_at         timestamptz NOT NULL DEFAULT now()
        );
    END IF;

    IF to_regprocedure('auth.jwt()') IS NULL THEN
        CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $f$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim', true), ''),
                nullif(current_setting('request.jwt.claims', true), '')
            )::jsonb
        $f$;
    END IF;

    IF to_regprocedure('auth.uid()') IS NULL THEN
        CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), ''),
                nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
            )::uuid
        $f$;
    END IF;

    IF to_regprocedure('auth.role()') IS NULL THEN
        CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $f$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim.role', true), ''),
                nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'
            )::text
        $f$;
    END IF;
END $$;
