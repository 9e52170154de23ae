from ptmmm_fixtures import demo_data, load_rows, ops_db, supabase_db  # noqa: F401  (fixtures are found by name)
