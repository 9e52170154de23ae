"""Create the database named in connection ``tidb_ops`` on its server when it is missing.

TiDB has no init-script hook like the Postgres image, so ``airflow-init`` runs this. It waits for the
server (TiDB takes a few seconds to open its port, 4000 in docker-compose.yaml), then
``CREATE DATABASE IF NOT EXISTS``. A URI without a port means 3306, as it does for the Airflow
connection itself, so this script and the DAGs always reach the same server.
The tables come later, from the ``db_migrate`` DAG (or ``python -m datasync migrate tidb``).
"""

from __future__ import annotations

import os
import re
import sys
import time
from urllib.parse import unquote, urlsplit

CONN_ENV = "AIRFLOW_CONN_TIDB_OPS"
WAIT_SECONDS = float(os.environ.get("TIDB_WAIT_SECONDS", "180"))


def target(uri: str) -> tuple[dict, str]:
    """Connection arguments (without a database) and the database name, from a mysql:// URI."""
    parts = urlsplit(uri)
    database = unquote(parts.path.lstrip("/"))
    if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", database):
        raise SystemExit(f"{CONN_ENV}: database name {database!r} is empty or not a plain identifier")
    args = {
        "host": parts.hostname or "tidb",
        "port": parts.port or 3306,  # as Airflow's MySQL hook reads the same URI: both reach one server
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "connect_timeout": 5,
    }
    return args, database


def main() -> int:
    uri = os.environ.get(CONN_ENV)
    if not uri:
        print(f"[airflow-init] {CONN_ENV} is not set: skipping the TiDB database")
        return 0
    import MySQLdb  # mysqlclient, installed with the MySQL provider

    args, database = target(uri)
    where = f"{args['host']}:{args['port']}"
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            conn = MySQLdb.connect(**args)
            break
        except MySQLdb.OperationalError as exc:
            if time.monotonic() >= deadline:
                print(f"[airflow-init] FAILED: TiDB at {where} did not answer within {WAIT_SECONDS:.0f}s: {exc}", file=sys.stderr)
                return 1
            time.sleep(2)
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")  # server defaults, as in production
        cur.execute("SELECT VERSION()")
        version = cur.fetchone()[0]
    finally:
        conn.close()
    print(f"[airflow-init] database '{database}' ready on {where} ({version})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
