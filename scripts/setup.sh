#!/usr/bin/env bash
# Everything `make demo` and `make test` need, on a fresh Debian 12 (as root) or a ready machine:
# system packages when absent, PostgreSQL, MariaDB and Redis started when down, the venv from
# constraints.txt (only when requirements changed), and a project-local AIRFLOW_HOME.
# Each failure ends with one line saying what failed and what to do.
set -uo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] FAILED: %s\n' "$*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done; return 1; }
PY=${PYTHON:-python3}
AIRFLOW_HOME=${AIRFLOW_HOME:-$PWD/.airflow}
WITH_SERVERS=${DATASYNC_LOCAL_SERVERS:-1}   # 0 when the databases live elsewhere

# --- system packages -------------------------------------------------------------------------
command -v "$PY" >/dev/null || die "no $PY on PATH: install Python 3.11 (apt-get install python3) and rerun"
missing=()
command -v pkg-config >/dev/null || missing+=(pkg-config)
pkg-config --exists mysqlclient 2>/dev/null || pkg-config --exists libmariadb 2>/dev/null || missing+=(default-libmysqlclient-dev)
command -v gcc >/dev/null || missing+=(build-essential)
"$PY" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
# the Data sync page's browser test: Debian's chromium and the chromedriver of the same build
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ "$WITH_SERVERS" = 1 ]; then
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
  command -v redis-server >/dev/null || missing+=(redis-server)
fi
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing system packages: ${missing[*]}. Install them (sudo apt-get install -y ${missing[*]}) and rerun"
  command -v apt-get >/dev/null || die "missing system packages: ${missing[*]} and no apt-get here: install them with your package manager"
  say "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/tmp/datasync-apt.log 2>&1 \
    || die "apt-get could not install ${missing[*]} (log: /tmp/datasync-apt.log: $(tail -n 1 /tmp/datasync-apt.log))"
fi

# --- database servers ------------------------------------------------------------------------
if [ "$WITH_SERVERS" = 1 ]; then
  if ! port_open 5432; then
    ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    [ -n "$ver" ] || die "PostgreSQL is installed but has no cluster in /etc/postgresql: run pg_createcluster <version> main"
    say "starting PostgreSQL $ver"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start >/tmp/datasync-pg.log 2>&1 || true
    wait_port 5432 || die "PostgreSQL did not start on 127.0.0.1:5432 (see /tmp/datasync-pg.log and /var/log/postgresql/)"
  fi
  if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    # Fresh Debian clusters ask for a password over TCP; tests use trust on loopback like CI.
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf 2>/dev/null | sort -V | tail -n 1)
    [ -n "$hba" ] && [ -w "$hba" ] || die "cannot log in to PostgreSQL as postgres on 127.0.0.1 and cannot edit pg_hba.conf: allow trust for 127.0.0.1"
    say "allowing trust logins from loopback in $hba"
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    ver=$(basename "$(dirname "$(dirname "$hba")")")
    pg_ctlcluster --skip-systemctl-redirect "$ver" main reload >/dev/null 2>&1
    sleep 1
    psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1 || die "still cannot log in to PostgreSQL as postgres on 127.0.0.1"
  fi
  if ! port_open 3306; then
    say "starting MariaDB"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >/tmp/datasync-mariadb.log 2>&1 || true
    wait_port 3306 || die "MariaDB did not start on 127.0.0.1:3306 (see /tmp/datasync-mariadb.log and /var/log/mysql/)"
  fi
  if ! mariadb -h 127.0.0.1 -u root -e 'select 1' >/dev/null 2>&1; then
    # Fresh Debian MariaDB lets root in only through the socket; add an empty TCP password.
    say "allowing root with an empty password on 127.0.0.1 (local test server)"
    mariadb -u root -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('')" \
      || die "cannot log in to MariaDB as root on 127.0.0.1 with an empty password"
  fi
  if ! port_open 6379; then
    # The Celery broker of the cluster tests and `make up`.
    say "starting Redis"
    redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --logfile /tmp/datasync-redis.log >/dev/null 2>&1 || true
    wait_port 6379 || die "Redis did not start on 127.0.0.1:6379 (see /tmp/datasync-redis.log)"
  fi
fi

# --- Python environment ----------------------------------------------------------------------
want=$(cat requirements.txt requirements-dev.txt constraints.txt | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv || die "could not create .venv with $PY (apt-get install python3-venv)"
fi
if [ "$(cat .venv/.installed 2>/dev/null)" != "$want" ]; then
  say "installing requirements into .venv (pinned by constraints.txt; a few minutes the first time)"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt -c constraints.txt >.venv/pip.log 2>&1 \
    || die "pip could not install the requirements: $(grep -m1 -iE 'error' .venv/pip.log || tail -n 1 .venv/pip.log) (full log: .venv/pip.log)"
  # A tree pip itself calls broken (a missing or conflicting dependency) is not installed.
  .venv/bin/pip check --disable-pip-version-check >.venv/pip-check.log 2>&1 \
    || die "pip check found a broken dependency tree: $(head -n 1 .venv/pip-check.log) (full list: .venv/pip-check.log)"
  echo "$want" > .venv/.installed
fi

# --- Airflow home ----------------------------------------------------------------------------
mkdir -p "$AIRFLOW_HOME"
if [ ! -f "$AIRFLOW_HOME/airflow.db" ]; then
  say "initialising Airflow metadata DB in $AIRFLOW_HOME (SQLite)"
  .venv/bin/airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || die "airflow db migrate failed (see $AIRFLOW_HOME/db-migrate.log)"
fi
say "ready: PostgreSQL, MariaDB and Redis up, .venv current, AIRFLOW_HOME=$AIRFLOW_HOME"
