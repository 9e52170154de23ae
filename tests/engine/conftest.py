from engine_fixtures import my_source, my_target, pg_source, pg_target  # noqa: F401
