-- The Postgres databases behind the package's connection ids, all on the `warehouse-db` service.
-- The postgres image runs this once, when its data volume is empty; after adding a database here,
-- recreate the volume (`docker compose down -v`) or run the statement by hand.
-- Schemas come from the db_migrate DAG (include/sql/<target>/), not from here.
--
--   connection id         database
--   supabase_ptmmm        supabase_ptmmm
--   lifecycle_db          lifecycle
--   pmo_db                pmo
--   tekmetric_warehouse   tekmetric
--   registry_db           registry
CREATE DATABASE supabase_ptmmm;
CREATE DATABASE lifecycle;
CREATE DATABASE pmo;
CREATE DATABASE tekmetric;
CREATE DATABASE registry;
