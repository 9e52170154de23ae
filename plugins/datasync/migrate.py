"""Schema migrations: numbered SQL files applied once, in order, with a ledger per database.

Layout (under ``include/sql/``)::

    common/<postgres|mysql>/NNN_name.sql   bookkeeping every target gets (applied first)
    <target>/NNN_name.sql                  the target's own schema

Each database keeps a ``datasync_migrations`` ledger (version, name, checksum, applied_at).
Applied files are skipped; an applied file whose text changed is refused by name. On
Postgres each migration runs in one transaction with its ledger row; MySQL-family servers
commit DDL implicitly, so there a failed migration is named and must be written to be
re-runnable (``IF NOT EXISTS``).

Targets may also have *repeatable* migrations produced by code (e.g. the KPI stored
procedure generated from ``include/sql/kpi/``): they are re-applied whenever their text changes.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import sqlparse

from datasync.db import MYSQL_FAMILY, POSTGRES, Database, WrongServerKind, connected, named_lock
from datasync.paths import SQL_DIR

log = logging.getLogger(__name__)

LEDGER = "datasync_migrations"
FILE_RE = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Target:
    name: str
    conn_id: str
    family: str  # POSTGRES or "mysql" (any MySQL-family server, TiDB included)
    # "module:function" producing [(name, sql)] for a Database: code-generated, repeatable migrations
    repeatables: tuple[str, ...] = ()

    @property
    def dialect_dir(self) -> str:
        return "postgres" if self.family == POSTGRES else "mysql"


# The databases, declared once: compose, .env.example, the local stack, the demo and the tests derive
# from or are checked against this list (docs/architecture.md, docs/adding-a-pipeline.md).
TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("tidb", "tidb_ops", "mysql", repeatables=("datasync.ptmmm.kpi:procedure_migrations",)),
        Target("supabase", "supabase_ptmmm", POSTGRES),
        Target("lifecycle", "lifecycle_db", POSTGRES),
        Target("pmo", "pmo_db", POSTGRES),
        Target("tekmetric", "tekmetric_warehouse", POSTGRES),
        Target("registry", "registry_db", POSTGRES),
    )
}


@dataclass(frozen=True)
class Migration:
    version: str  # e.g. "common/001", "tidb/003", "tidb/R:kpi_procedure"
    name: str
    sql: str
    path: str  # shown in errors
    repeatable: bool = False

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass
class MigrationReport:
    target: str
    database: str
    applied: list[str] = field(default_factory=list)
    skipped: int = 0

    def summary(self) -> str:
        done = ", ".join(self.applied) if self.applied else "nothing new"
        return f"{self.target} on {self.database}: applied {len(self.applied)} ({done}); {self.skipped} already applied"


def _files(folder: Path, prefix: str) -> list[Migration]:
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix != ".sql":
            continue
        m = FILE_RE.match(path.name)
        if not m:
            raise MigrationError(f"{path}: migration files are named NNN_lower_snake.sql")
        found.append(Migration(f"{prefix}/{m.group(1)}", m.group(2), path.read_text(), str(path.relative_to(SQL_DIR.parent.parent))))
    versions = [mig.version for mig in found]
    if len(versions) != len(set(versions)):
        raise MigrationError(f"{folder}: two files share a version number")
    return found


def _resolve(ref: str) -> Callable[[Database], Iterable[tuple[str, str]]]:
    module, func = ref.split(":")
    return getattr(importlib.import_module(module), func)


def plan(target: Target, db: Database | None = None) -> list[Migration]:
    """Every migration of a target in the order it is applied."""
    migrations = _files(SQL_DIR / "common" / target.dialect_dir, "common")
    migrations += _files(SQL_DIR / target.name, target.name)
    if db is not None:
        for ref in target.repeatables:
            for name, sql in _resolve(ref)(db):
                migrations.append(Migration(f"{target.name}/R:{name}", name, sql, f"{ref} ({name})", repeatable=True))
    return migrations


def statements(sql: str) -> list[str]:
    """Split a script into statements (handles quotes, $$ bodies and BEGIN..END blocks)."""
    out = []
    for stmt in sqlparse.split(sql):
        if sqlparse.format(stmt, strip_comments=True).strip().rstrip(";").strip():
            out.append(stmt.strip())
    return out


def _check_kind(target: Target, db: Database) -> None:
    if target.family == POSTGRES and db.dialect.family != POSTGRES:
        raise WrongServerKind(
            f"target '{target.name}' needs PostgreSQL, but connection '{target.conn_id}' points to {db.version}"
        )
    if target.family != POSTGRES and db.dialect.name not in MYSQL_FAMILY:
        raise WrongServerKind(
            f"target '{target.name}' needs a MySQL-family server (TiDB, MySQL, MariaDB), "
            f"but connection '{target.conn_id}' points to {db.version}"
        )


def _ensure_ledger(db: Database) -> dict[str, str]:
    ts = db.dialect.timestamp_column
    new = db.dialect.private_tables and db.fetchone("SELECT to_regclass(%s) IS NULL", (LEDGER,))[0]
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {LEDGER} (version VARCHAR(200) PRIMARY KEY, name VARCHAR(200) NOT NULL, "
        f"checksum CHAR(64) NOT NULL, applied_at {ts})"
    )
    if new:
        make_private(db, LEDGER)
    db.commit()
    return dict(db.fetchall(f"SELECT version, checksum FROM {LEDGER}"))


API_ROLES = ("anon", "authenticated")  # Supabase's PostgREST roles, granted new public tables by default


def make_private(db: Database, table: str) -> None:
    """No grants to PUBLIC or the API roles, and row-level security on without policies: only the
    owner (and roles that bypass RLS) can touch ``table``, whatever default privileges granted.
    The same rule as common/postgres/002 for the tables a migration creates."""
    db.execute(f"REVOKE ALL ON TABLE {table} FROM PUBLIC")
    roles = [r for (r,) in db.fetchall("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname", (list(API_ROLES),))]
    if roles:
        db.execute(f"REVOKE ALL ON TABLE {table} FROM {', '.join(db.quote(r) for r in roles)}")
    db.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")


def _apply(db: Database, mig: Migration, replace: bool) -> None:
    for stmt in statements(mig.sql):
        try:
            db.execute(stmt)
        except Exception as exc:
            db.rollback()
            first_line = " ".join(stmt.split())[:160]
            undone = "rolled back" if db.dialect.transactional_ddl else "NOT rolled back (MySQL DDL commits itself); fix and rerun"
            raise MigrationError(f"{mig.path} failed ({undone}) at statement: {first_line}\n  error: {exc}") from exc
    if replace:
        db.execute(f"DELETE FROM {LEDGER} WHERE version = %s", (mig.version,))
    db.execute(f"INSERT INTO {LEDGER} (version, name, checksum) VALUES (%s, %s, %s)", (mig.version, mig.name, mig.checksum))
    db.commit()


def migrate_database(target: Target, db: Database) -> MigrationReport:
    _check_kind(target, db)
    report = MigrationReport(target.name, db.describe())
    with named_lock(db, f"datasync:migrate:{target.name}", wait_seconds=300):
        applied = _ensure_ledger(db)
        for mig in plan(target, db):
            known = applied.get(mig.version)
            if known == mig.checksum:
                report.skipped += 1
                continue
            if known is not None and not mig.repeatable:
                raise MigrationError(
                    f"{mig.path} was changed after it was applied to {db.describe()} "
                    f"(checksum {known[:12]} -> {mig.checksum[:12]}). Applied migrations are history: "
                    "revert the edit and add a new numbered file instead."
                )
            log.info("Applying %s to %s", mig.path, db.describe())
            _apply(db, mig, replace=known is not None)
            report.applied.append(mig.version)
    return report


def migrate(names: Iterable[str] | None = None) -> list[MigrationReport]:
    """Migrate the named targets (all when None), each through its Airflow connection."""
    chosen = list(names) if names else list(TARGETS)
    unknown = [n for n in chosen if n not in TARGETS]
    if unknown:
        raise MigrationError(f"unknown migration target(s) {unknown}; known: {sorted(TARGETS)}")
    reports = []
    for name in chosen:
        target = TARGETS[name]
        with connected(target.conn_id) as db:
            reports.append(migrate_database(target, db))
            log.info(reports[-1].summary())
    return reports
