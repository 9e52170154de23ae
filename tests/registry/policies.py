"""Registry policies for tests, built the way the platform team writes the Variable (a JSON object)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

POLICY_ENV = "AIRFLOW_VAR_DATASYNC_REGISTRY_POLICY"


def policy(**doc: Any):
    from datasync.registry.policy import RegistryPolicy

    return RegistryPolicy.from_json(json.dumps(doc))


@contextlib.contextmanager
def policy_variable(doc: Any) -> Iterator[None]:
    """Set the Airflow Variable ``datasync_registry_policy`` (by env, as a deployment may) for a
    while: ``doc`` is dumped as JSON unless it is already text; None removes it."""
    saved = os.environ.get(POLICY_ENV)
    if doc is None:
        os.environ.pop(POLICY_ENV, None)
    else:
        os.environ[POLICY_ENV] = doc if isinstance(doc, str) else json.dumps(doc)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(POLICY_ENV, None)
        else:
            os.environ[POLICY_ENV] = saved


def allow_files(*roots: Any, **doc: Any):
    return policy(file_roots=[str(r) for r in roots], **doc)


def command_spec(argv: list[str], *, parameters: tuple[str, ...] = (), env: tuple[str, ...] = (),
                 working_directory: Any = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"argv": argv, "parameters": list(parameters), "env": list(env)}
    if working_directory is not None:
        spec["working_directory"] = str(working_directory)
    return spec


def allow_command(argv: list[str], *, name: str = "sync", parameters: tuple[str, ...] = (), env: tuple[str, ...] = (),
                  working_directory: Any = None, **doc: Any):
    return policy(artisan_commands={name: command_spec(argv, parameters=parameters, env=env,
                                                       working_directory=working_directory)}, **doc)


# ---- logins a registry source may use ------------------------------------------------------------------
def reader_login(db, conn_id: str, *, grants: str = "") -> Callable[[], None]:
    """Bind Airflow connection ``conn_id`` to ``db`` through a new login that can only read it
    (what the platform team gives registry sources); returns the function that drops the login.
    ``grants`` adds statements (``{user}`` is the login), e.g. a server-wide privilege."""
    import MySQLdb
    import psycopg

    from harness import MY_HOST, MY_PASSWORD, MY_PORT, MY_USER, PG_ADMIN

    user = f"r_{db.name}"[:60]
    if db.kind == "postgres":
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE ROLE "{user}" LOGIN')
        with psycopg.connect(db.uri, autocommit=True) as conn:
            conn.execute(f'GRANT CONNECT ON DATABASE "{db.name}" TO "{user}"')
            for (schema,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                                          "AND nspname <> 'information_schema'").fetchall():
                conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{user}"')
                conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{user}"')
                conn.execute(f'GRANT SELECT, USAGE ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{user}"')
            for statement in filter(None, grants.format(user=user).split(";")):
                conn.execute(statement)
        base = PG_ADMIN.split("://", 1)[1].split("@", 1)[1].rsplit("/", 1)[0]
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = f"postgresql://{user}@{base}/{db.name}"

        def drop() -> None:
            with psycopg.connect(db.uri, autocommit=True) as conn:
                conn.execute(f'DROP OWNED BY "{user}"')
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'REVOKE ALL ON DATABASE "{db.name}" FROM "{user}"')
                admin.execute(f'DROP ROLE IF EXISTS "{user}"')
        return drop

    admin = MySQLdb.connect(host=MY_HOST, port=MY_PORT, user=MY_USER, password=MY_PASSWORD)
    try:
        cur = admin.cursor()
        cur.execute(f"CREATE USER '{user}'@'%'")
        cur.execute(f"GRANT SELECT ON `{db.name}`.* TO '{user}'@'%'")
        for statement in filter(None, grants.format(user=user).split(";")):
            cur.execute(statement)
    finally:
        admin.close()
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = f"mysql://{user}@{MY_HOST}:{MY_PORT}/{db.name}"

    def drop() -> None:
        conn = MySQLdb.connect(host=MY_HOST, port=MY_PORT, user=MY_USER, password=MY_PASSWORD)
        try:
            conn.cursor().execute(f"DROP USER IF EXISTS '{user}'@'%'")
        finally:
            conn.close()
    return drop
