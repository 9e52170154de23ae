-- Organisations, warehouses and who may see what. Supabase is the master of these ids; the TiDB
-- ops tables (organizations, warehouses) carry the same UUIDs.
--
-- Access model: a user_org_role row with warehouse_id NULL gives its role over the whole org;
-- with warehouse_id set, only over that warehouse (a user may hold several such rows).
-- Reads go through row-level security; writes are for service_role (and the table owner, which
-- is what the sync jobs connect as). anon gets nothing.

CREATE TABLE IF NOT EXISTS public.organization (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    slug        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.warehouse (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES public.organization (id) ON DELETE CASCADE,
    code        text NOT NULL,
    name        text NOT NULL,
    city        text,
    timezone    text NOT NULL DEFAULT 'Asia/Jakarta',
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, code),
    UNIQUE (id, org_id)  -- lets user_org_role require a scoped warehouse to be in the role's org
);

CREATE TABLE IF NOT EXISTS public.user_org_role (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    org_id       uuid NOT NULL REFERENCES public.organization (id) ON DELETE CASCADE,
    warehouse_id uuid,  -- NULL: the whole org
    role         text NOT NULL CHECK (role IN ('owner', 'admin', 'manager', 'staff', 'viewer')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (warehouse_id, org_id) REFERENCES public.warehouse (id, org_id) ON DELETE CASCADE,
    UNIQUE NULLS NOT DISTINCT (user_id, org_id, warehouse_id, role)
);
CREATE INDEX IF NOT EXISTS user_org_role_user ON public.user_org_role (user_id);

-- Helpers for the policies. SECURITY DEFINER so a policy can read user_org_role without
-- recursing into its RLS; kept out of the API-exposed public schema. Policies use them as
-- `x IN (SELECT ...)`, which Postgres evaluates once per query instead of once per row.
CREATE SCHEMA IF NOT EXISTS private;
REVOKE ALL ON SCHEMA private FROM PUBLIC;
GRANT USAGE ON SCHEMA private TO authenticated;

-- orgs where the signed-in user has an org-wide role
CREATE OR REPLACE FUNCTION private.member_org_ids() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
    SELECT r.org_id FROM public.user_org_role r
    WHERE r.user_id = auth.uid() AND r.warehouse_id IS NULL
$$;

-- (org, warehouse) pairs the signed-in user has a warehouse-scoped role for
CREATE OR REPLACE FUNCTION private.member_warehouses() RETURNS TABLE (org_id uuid, warehouse_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
    SELECT r.org_id, r.warehouse_id FROM public.user_org_role r
    WHERE r.user_id = auth.uid() AND r.warehouse_id IS NOT NULL
$$;

REVOKE ALL ON FUNCTION private.member_org_ids(), private.member_warehouses() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.member_org_ids(), private.member_warehouses() TO authenticated;

ALTER TABLE public.organization ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.warehouse ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.user_org_role ENABLE ROW LEVEL SECURITY;

-- Supabase grants the API roles everything on new public tables by default; narrow that down
-- (TRUNCATE, for one, is not subject to row-level security).
REVOKE ALL ON public.organization, public.warehouse, public.user_org_role FROM anon, authenticated;
GRANT SELECT ON public.organization, public.warehouse, public.user_org_role TO authenticated;
GRANT ALL ON public.organization, public.warehouse, public.user_org_role TO service_role;

CREATE POLICY organization_read ON public.organization FOR SELECT TO authenticated
    USING (id IN (SELECT private.member_org_ids()) OR id IN (SELECT org_id FROM private.member_warehouses()));

CREATE POLICY warehouse_read ON public.warehouse FOR SELECT TO authenticated
    USING (org_id IN (SELECT private.member_org_ids())
           OR (org_id, id) IN (SELECT org_id, warehouse_id FROM private.member_warehouses()));

CREATE POLICY user_org_role_read_own ON public.user_org_role FOR SELECT TO authenticated
    USING (user_id = (SELECT auth.uid()));
