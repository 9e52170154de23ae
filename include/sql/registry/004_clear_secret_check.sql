-- Clear-text credentials in connection configs, refused by key name AND by the shape of the value,
-- at any depth (001 looked at top-level key names only, so a nested "headers.Authorization",
-- "Cookie: session=...", "https://user:pw@host" or ["--api-token", "..."] was stored).
--
-- The same rules run in Python before a source is opened
-- (datasync.registry.connectors.placeholders: SECRET_KEY_PATTERN, SECRET_VALUE_PATTERNS,
-- PLACEHOLDER_PATTERN); tests/registry compares the lists below with those, and runs one set of
-- examples through both. docs/registry.md ("Secrets") explains each rule.

CREATE OR REPLACE FUNCTION data_source_placeholder_pattern() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT '\{\{[^{}]*\}\}' $$;

-- a key whose name ends in one of these words must hold a placeholder, not a value
CREATE OR REPLACE FUNCTION data_source_secret_key_pattern() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '(pass(word|wd)?|secret|token|api[_-]?key|credentials?|private[_-]?key|authorization|cookie)\Z'
$$;

-- values that look like a credential under any key (matched case-insensitively, placeholders removed first)
CREATE OR REPLACE FUNCTION data_source_secret_value_patterns() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY[
        -- URL user info with a password
        '[a-z][a-z0-9+.-]*://[^/?#@ ]*:[^/?#@ ]+@',
        -- an Authorization value
        '^(bearer|basic|digest|token)[ ]+[^ ]+\Z',
        -- a credential header
        '(^|[^a-z0-9_-])[a-z0-9_-]*(pass(word|wd)?|secret|token|api[_-]?key|credentials?|private[_-]?key|authorization|cookie)"?[ ]*:[ ]*"?[^ ":]',
        -- a credential argument
        '(^|[ ])--?[a-z0-9_-]*(pass(word|wd)?|secret|token|api[_-]?key|credentials?|private[_-]?key|authorization|cookie)([ ]+|=)[^ -]',
        -- a credential in a query string
        '[?&][a-z0-9_.-]*(pass(word|wd)?|secret|token|api[_-]?key|credentials?|private[_-]?key|authorization|cookie)=[^&# ]',
        -- a private key
        '-----begin [a-z ]*private key-----'
    ]
$$;

CREATE OR REPLACE FUNCTION data_source_secret_shaped(value text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT EXISTS (
        SELECT 1 FROM unnest(data_source_secret_value_patterns()) AS p
        WHERE regexp_replace(value, data_source_placeholder_pattern(), '', 'g') ~* p
    )
$$;

-- Where the first clear-text credential of ``doc`` is (e.g. 'headers.Authorization',
-- 'parameters[1]'; an array whose strings read as one credential, e.g. ["--api-token", "abc"],
-- is named as a whole), or NULL. Also for admins: SELECT id, data_source_clear_secret(connection_config) ...
CREATE OR REPLACE FUNCTION data_source_clear_secret(doc jsonb, path text DEFAULT '') RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    k text;
    item jsonb;
    n bigint;
    found text;
    joined text;
BEGIN
    CASE jsonb_typeof(doc)
    WHEN 'object' THEN
        FOR k, item IN SELECT e.key, e.value FROM jsonb_each(doc) AS e LOOP
            IF k ~* data_source_secret_key_pattern()
               AND jsonb_typeof(item) IN ('string', 'number')
               AND item #>> '{}' <> ''
               AND item #>> '{}' !~ data_source_placeholder_pattern() THEN
                RETURN concat_ws('.', nullif(path, ''), k);
            END IF;
            found := data_source_clear_secret(item, concat_ws('.', nullif(path, ''), k));
            IF found IS NOT NULL THEN
                RETURN found;
            END IF;
        END LOOP;
    WHEN 'array' THEN
        SELECT string_agg(e #>> '{}', ' ' ORDER BY i) INTO joined
        FROM jsonb_array_elements(doc) WITH ORDINALITY AS t(e, i)
        WHERE jsonb_typeof(e) = 'string';
        IF joined IS NOT NULL AND data_source_secret_shaped(joined) THEN
            RETURN path;
        END IF;
        FOR item, n IN SELECT e, i FROM jsonb_array_elements(doc) WITH ORDINALITY AS t(e, i) LOOP
            found := data_source_clear_secret(item, path || '[' || (n - 1) || ']');
            IF found IS NOT NULL THEN
                RETURN found;
            END IF;
        END LOOP;
    WHEN 'string' THEN
        IF data_source_secret_shaped(doc #>> '{}') THEN
            RETURN path;
        END IF;
    ELSE
        NULL;
    END CASE;
    RETURN NULL;
END;
$$;

ALTER TABLE data_source_connections DROP CONSTRAINT IF EXISTS data_source_connections_no_secrets;
ALTER TABLE data_source_connections ADD CONSTRAINT data_source_connections_no_secrets
    CHECK (data_source_clear_secret(connection_config) IS NULL) NOT VALID;
ALTER TABLE data_source_templates ADD CONSTRAINT data_source_templates_no_secrets
    CHECK (data_source_clear_secret(template_config) IS NULL) NOT VALID;

-- New and changed rows are checked from now on. Rows stored before are validated here; where some
-- fail, the migration still succeeds (the runner refuses those sources by name at run time) and
-- says which rows an admin must rewrite as placeholders.
DO $$
DECLARE
    t record;
    bad text;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('data_source_connections', 'connection_config', 'data_source_connections_no_secrets'),
        ('data_source_templates', 'template_config', 'data_source_templates_no_secrets')) AS v(tbl, col, con)
    LOOP
        EXECUTE format('SELECT string_agg(format(''id %%s (%%s)'', id, data_source_clear_secret(%I)), '', '' ORDER BY id) '
                       'FROM %I WHERE data_source_clear_secret(%I) IS NOT NULL', t.col, t.tbl, t.col) INTO bad;
        IF bad IS NULL THEN
            EXECUTE format('ALTER TABLE %I VALIDATE CONSTRAINT %I', t.tbl, t.con);
        ELSE
            RAISE WARNING '% rows hold clear-text credentials: %; replace them with {{ conn.<id>.password }} / {{ var.<name> }} placeholders',
                t.tbl, bad;
        END IF;
    END LOOP;
END;
$$;
