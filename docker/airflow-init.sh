#!/usr/bin/env bash
# One-shot set-up for the compose deployment; the `airflow-init` service runs it as root.
#
#   1. the folders Airflow writes to (logs, config), owned by AIRFLOW_UID like the other services run
#   2. the metadata database schema (airflow db migrate)
#   3. the login of the simple auth manager, from AIRFLOW_ADMIN_USER / AIRFLOW_ADMIN_PASSWORD
#   4. the pools the DAGs use
#   5. the TiDB database behind connection tidb_ops (TiDB has no init-script hook)
#
# Every step is idempotent: `docker compose up airflow-init` may be run again at any time
# (it also resets the pools' slots to the values below).
set -euo pipefail

AIRFLOW_UID=${AIRFLOW_UID:-50000}
say() { printf '[airflow-init] %s\n' "$*"; }
die() { printf '[airflow-init] FAILED: %s\n' "$*" >&2; exit 1; }

if [ "${AIRFLOW_UID}" = 50000 ]; then
  say "AIRFLOW_UID is 50000 (the image's default). On Linux set AIRFLOW_UID=\$(id -u) in .env so files in ./logs belong to you."
fi

# --- 1. folders ---------------------------------------------------------------------------------
mkdir -p /opt/airflow/logs /opt/airflow/config
chown -R "${AIRFLOW_UID}:0" /opt/airflow/logs /opt/airflow/config

# --- 2. metadata database -----------------------------------------------------------------------
# /entrypoint waits until the database answers, then runs the command.
say "migrating the metadata database"
/entrypoint airflow db migrate

# --- 3. login -----------------------------------------------------------------------------------
# The simple auth manager reads passwords from this JSON file; writing it here makes the password
# the one in .env instead of a random one printed in the api-server log.
[ -n "${AIRFLOW_ADMIN_PASSWORD:-}" ] || die "AIRFLOW_ADMIN_PASSWORD is empty: set it in .env"
python - <<'PY'
import json, os
path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
user = os.environ.get("AIRFLOW_ADMIN_USER") or "admin"
try:
    with open(path) as f:
        passwords = json.loads(f.read().strip() or "{}")
except FileNotFoundError:
    passwords = {}
passwords[user] = os.environ["AIRFLOW_ADMIN_PASSWORD"]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    f.write(json.dumps(passwords) + "\n")
print(f"[airflow-init] login '{user}' set (password from .env)")
PY
chown "${AIRFLOW_UID}:0" "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE}"
chmod 600 "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE}"

# --- 4. pools -----------------------------------------------------------------------------------
say "creating pools"
airflow pools set tekmetric_api 4 "Tekmetric partner API: concurrent callers sharing one client's rate limit"
airflow pools set registry_sources 16 "source_registry_runner: sources read at the same time"
airflow pools set db_sync 8 "Database-to-database syncs (lifecycle, KPI mirror, warehouse writes)"

# --- 5. TiDB database ---------------------------------------------------------------------------
python /opt/airflow/docker/ensure_tidb_database.py

# Files written as root above (logs of the CLI calls) must stay writable by the services.
chown -R "${AIRFLOW_UID}:0" /opt/airflow/logs /opt/airflow/config
say "done"
