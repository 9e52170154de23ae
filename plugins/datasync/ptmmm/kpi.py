"""The PTMMM daily KPIs of one WIB day, from one SQL source and two ways to run it.

``include/sql/kpi/NNN_*.sql`` hold the statements (DELETE the day, INSERT ... SELECT) with the
placeholders ``:data_date``, ``:day_start`` and ``:day_end``. They are rendered

* into the body of the stored procedure ``sp_run_daily_kpi_etl(p_data_date)`` for servers that
  have procedures (MySQL, MariaDB): :func:`procedure_migrations` is a repeatable migration of
  the ``tidb`` target, so ``db_migrate`` reinstalls it whenever the SQL changes;
* into ``%s``-parameterised statements run in one transaction from Python on TiDB, which has no
  procedures: :func:`kpi_statements`, :func:`run_kpi_statements`.

:func:`run_kpi_etl` picks the path from the server (``Database.supports_procedures``; the
connection extra ``{"dialect": "tidb"}`` forces the statement path).

A WIB day (Asia/Jakarta, UTC+7, no daylight saving) D is ``[D-1 17:00, D 17:00)`` in UTC, the
time zone every operational timestamp is stored in.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal

from datasync.db import MYSQL_FAMILY, Database, WrongServerKind, named_lock
from datasync.migrate import statements
from datasync.paths import SQL_DIR

log = logging.getLogger(__name__)

WIB = dt.timezone(dt.timedelta(hours=7), "WIB")
KPI_DIR = SQL_DIR / "kpi"
PROCEDURE = "sp_run_daily_kpi_etl"
KPI_TABLES = ("inventory_kpi_daily", "fleet_kpi_daily")
EXCLUSIONS_TABLE = "kpi_daily_exclusions"
# What each placeholder becomes inside the procedure (v_* are declared in its body).
PROCEDURE_NAMES = {"data_date": "p_data_date", "day_start": "v_day_start", "day_end": "v_day_end"}
ETL_LOCK = "ptmmm:kpi_etl"  # one lock for all days: runs of different days would fight over the same index gaps

# String literals and comments are copied as they are; placeholders outside them are replaced.
_TOKENS = re.compile(r"'(?:[^'\\]|\\.)*'|--[^\n]*|/\*.*?\*/|:(?P<name>[A-Za-z_]\w*)|%", re.S)
_ACTIVE_WAREHOUSE = "opened_at < %s AND (closed_at IS NULL OR closed_at > %s)"


class KpiError(RuntimeError):
    """The KPI ETL cannot run or failed; the message says what to do."""


class InvalidDataDate(ValueError):
    """``data_date`` is not a usable WIB calendar day."""


@dataclass(frozen=True)
class KpiRun:
    data_date: dt.date
    path: str  # "procedure" or "statements"
    inventory_rows: int
    fleet_rows: int
    excluded_rows: int  # operational rows of the day left out of the KPIs, see kpi_daily_exclusions

    def as_dict(self) -> dict:
        return {**asdict(self), "data_date": self.data_date.isoformat()}

    def summary(self) -> str:
        how = f"CALL {PROCEDURE}" if self.path == "procedure" else "the KPI statements in one transaction"
        return (
            f"KPIs for {self.data_date} (WIB) computed with {how}: {self.inventory_rows} inventory_kpi_daily "
            f"and {self.fleet_rows} fleet_kpi_daily rows; {self.excluded_rows} operational row(s) left out "
            f"(see {EXCLUSIONS_TABLE})"
        )


# --- dates -------------------------------------------------------------------------------------


def day_bounds(data_date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The WIB day as naive UTC datetimes ``[start, end)``, as stored in the ops tables."""
    start = dt.datetime.combine(data_date, dt.time(), tzinfo=WIB).astimezone(dt.timezone.utc).replace(tzinfo=None)
    return start, start + dt.timedelta(days=1)


def wib_today(now: dt.datetime | None = None) -> dt.date:
    return (now or dt.datetime.now(dt.timezone.utc)).astimezone(WIB).date()


def previous_wib_day(now: dt.datetime | None = None) -> dt.date:
    """The default data date: the WIB day before ``now`` (the cron job computed "yesterday")."""
    return wib_today(now) - dt.timedelta(days=1)


def validate_data_date(value, today: dt.date | None = None, earliest: dt.date | None = None) -> dt.date:
    """``value`` (a date or ``YYYY-MM-DD``) as a date, or :class:`InvalidDataDate` saying why not.

    ``today`` is the WIB date now (default: the clock); ``earliest`` the first day with
    operational data (see :func:`earliest_data_date`), when known. Today itself is allowed:
    its KPIs are partial until the day ends and the next scheduled run replaces them.
    """
    if isinstance(value, dt.datetime):
        raise InvalidDataDate(f"data_date must be a calendar day (YYYY-MM-DD), not a timestamp: {value!r}")
    if isinstance(value, dt.date):
        day = value
    elif isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            day = dt.date.fromisoformat(value.strip())
        except ValueError as exc:
            raise InvalidDataDate(f"data_date {value!r} is not a real calendar day ({exc})") from None
    else:
        raise InvalidDataDate(f"data_date must be a calendar day written YYYY-MM-DD, got {value!r}")
    today = today or wib_today()
    if day > today:
        raise InvalidDataDate(f"data_date {day} is in the future: today in WIB (Asia/Jakarta) is {today}")
    if earliest is not None and day < earliest:
        raise InvalidDataDate(
            f"data_date {day} is before the first operational data ({earliest}); there is nothing to compute"
        )
    return day


def _as_date(value) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    return validate_data_date(value, today=dt.date.max)


# --- the SQL, rendered two ways ----------------------------------------------------------------


def templates() -> list[tuple[str, str]]:
    """``(file name, statement)`` for every statement in ``include/sql/kpi/``, in run order."""
    files = sorted(KPI_DIR.glob("[0-9][0-9][0-9]_*.sql"))
    if not files:
        raise KpiError(f"no KPI statements found in {KPI_DIR}")
    return [(path.name, stmt) for path in files for stmt in statements(path.read_text())]


def _render(source: str, sql: str, placeholder: Callable[[str], str], escape_percent: bool) -> str:
    # With parameters the driver %-formats the whole text, so then every literal % is doubled.
    def replace(match: re.Match) -> str:
        name = match.group("name")
        if name is None:  # a string literal, a comment or a %
            return match.group(0).replace("%", "%%") if escape_percent else match.group(0)
        if name not in PROCEDURE_NAMES:
            raise KpiError(f"include/sql/kpi/{source}: unknown placeholder :{name} (known: {', '.join(PROCEDURE_NAMES)})")
        return placeholder(name)

    return _TOKENS.sub(replace, sql)


def _rendered(day: dt.date) -> list[tuple[str, str, tuple]]:
    start, end = day_bounds(day)
    values = {"data_date": day, "day_start": start, "day_end": end}
    out = []
    for source, template in templates():
        params: list = []

        def placeholder(name: str) -> str:
            params.append(values[name])
            return "%s"

        out.append((source, _render(source, template, placeholder, escape_percent=True), tuple(params)))
    return out


def kpi_statements(data_date) -> list[tuple[str, tuple]]:
    """The day's statements as ``(sql, params)`` for a DB-API cursor (``%s`` paramstyle)."""
    return [(sql, params) for _, sql, params in _rendered(_as_date(data_date))]


def procedure_sql() -> str:
    """``DROP`` + ``CREATE PROCEDURE sp_run_daily_kpi_etl`` with the KPI statements as its body."""
    body = []
    for source, template in templates():
        stmt = _render(source, template, PROCEDURE_NAMES.__getitem__, escape_percent=False).rstrip().rstrip(";")
        body.append(f"    -- {source}\n" + "\n".join("    " + line if line else "" for line in stmt.splitlines()) + ";")
    statements_text = "\n\n".join(body)
    return f"""DROP PROCEDURE IF EXISTS {PROCEDURE};

CREATE PROCEDURE {PROCEDURE}(IN p_data_date DATE)
    MODIFIES SQL DATA
    COMMENT 'PTMMM daily KPIs of one WIB day. Generated from include/sql/kpi by datasync.ptmmm.kpi: edit those files'
BEGIN
    DECLARE v_day_start DATETIME(6);
    DECLARE v_day_end DATETIME(6);
    -- all or nothing, also when called from a client in autocommit mode
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        ROLLBACK;
        RESIGNAL;
    END;

    IF p_data_date IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{PROCEDURE}: p_data_date is required';
    END IF;
    -- WIB is UTC+7 all year: day D is [D-1 17:00, D 17:00) in UTC
    SET v_day_start = TIMESTAMP(p_data_date) - INTERVAL 7 HOUR;
    SET v_day_end = v_day_start + INTERVAL 1 DAY;

    START TRANSACTION;

{statements_text}

    COMMIT;
END;
"""


def procedure_migrations(db: Database) -> list[tuple[str, str]]:
    """Repeatable migration for the ``tidb`` target: the procedure, where the server has them."""
    return [(PROCEDURE, procedure_sql())] if db.supports_procedures else []


# --- running -----------------------------------------------------------------------------------


def _require_mysql_family(db: Database) -> None:
    if db.dialect.name not in MYSQL_FAMILY:
        raise WrongServerKind(f"the PTMMM KPIs live on TiDB (or MySQL/MariaDB); {db.describe()} is not one")


def run_kpi_statements(db: Database, data_date) -> KpiRun:
    """The TiDB path: every KPI statement of the day in one transaction, committed at the end."""
    _require_mysql_family(db)
    day = _as_date(data_date)
    db.rollback()  # start clean: nothing of an earlier transaction may commit with ours
    source = ""
    try:
        for source, sql, params in _rendered(day):
            db.execute(sql, params).close()
        db.commit()
    except Exception as exc:
        db.rollback()
        raise KpiError(f"KPI statement include/sql/kpi/{source} failed for {day}; nothing was written: {exc}") from exc
    return _run_counts(db, day, "statements")


def _check_procedure_is_current(db: Database) -> None:
    from datasync.migrate import LEDGER, TARGETS, plan

    expected = next(m for m in plan(TARGETS["tidb"], db) if m.name == PROCEDURE)
    try:
        row = db.fetchone(f"SELECT checksum FROM {LEDGER} WHERE version = %s", (expected.version,))
    except Exception:
        db.rollback()
        row = None
    if row is None or row[0] != expected.checksum:
        state = "is not installed" if row is None else "is older than include/sql/kpi"
        raise KpiError(f"{PROCEDURE} on {db.describe()} {state}; run the db_migrate DAG (target tidb) first")


def run_kpi_etl(db: Database, data_date) -> KpiRun:
    """Compute one WIB day: ``CALL sp_run_daily_kpi_etl`` where procedures exist, else the statements.

    Rerunning a day replaces its rows. Returns the day's row counts.
    """
    _require_mysql_family(db)
    day = _as_date(data_date)
    with named_lock(db, ETL_LOCK, wait_seconds=600):
        if not db.supports_procedures:
            run = run_kpi_statements(db, day)
        else:
            _check_procedure_is_current(db)
            try:
                db.execute(f"CALL {PROCEDURE}(%s)", (day,)).close()
                db.commit()
            except Exception as exc:
                db.rollback()
                raise KpiError(f"CALL {PROCEDURE}('{day}') failed on {db.describe()}; nothing was written: {exc}") from exc
            run = _run_counts(db, day, "procedure")
    log.info(run.summary())
    return run


def _run_counts(db: Database, day: dt.date, path: str) -> KpiRun:
    counts = [db.fetchone(f"SELECT COUNT(*) FROM {table} WHERE data_date = %s", (day,))[0] for table in KPI_TABLES]
    (excluded,) = db.fetchone(f"SELECT COALESCE(SUM(row_count), 0) FROM {EXCLUSIONS_TABLE} WHERE data_date = %s", (day,))
    db.commit()
    return KpiRun(day, path, counts[0], counts[1], int(excluded))


def delete_kpi_day(db: Database, data_date, tables: tuple[str, ...] = KPI_TABLES) -> dict[str, int]:
    """Rollback of one day: delete its KPI rows (TiDB or the Supabase mirror) in one transaction."""
    day = _as_date(data_date)
    deleted = {}
    try:
        for table in tables:
            deleted[table] = db.execute(f"DELETE FROM {table} WHERE data_date = %s", (day,)).rowcount
        db.commit()
    except Exception:
        db.rollback()
        raise
    return deleted


# --- checks ------------------------------------------------------------------------------------


def check_ops_data(db: Database, data_date) -> dict[str, int]:
    """How much operational data the WIB day has (to warn about an empty or partial day)."""
    _require_mysql_family(db)
    day = _as_date(data_date)
    start, end = day_bounds(day)
    in_day = "{0} >= %s AND {0} < %s"
    queries = {
        "active_warehouses": (f"SELECT COUNT(*) FROM warehouses WHERE {_ACTIVE_WAREHOUSE}", (end, start)),
        "orders": (f"SELECT COUNT(*) FROM orders WHERE {in_day.format('ordered_at')}", (start, end)),
        "inventory_tx": (f"SELECT COUNT(*) FROM inventory_tx WHERE {in_day.format('occurred_at')}", (start, end)),
        "shipments": (
            "SELECT COUNT(*) FROM shipments WHERE "
            + " OR ".join(f"({in_day.format(c)})" for c in ("dispatched_at", "delivered_at", "failed_at")),
            (start, end) * 3,
        ),
        "scan_event": (f"SELECT COUNT(*) FROM scan_event WHERE {in_day.format('scanned_at')}", (start, end)),
    }
    counts = {name: int(db.fetchone(sql, params)[0]) for name, (sql, params) in queries.items()}
    db.commit()
    return counts


def earliest_data_date(db: Database) -> dt.date | None:
    """The WIB day of the first inventory movement or shipment dispatch, None when there is none."""
    firsts = [
        db.fetchone("SELECT MIN(occurred_at) FROM inventory_tx")[0],
        db.fetchone("SELECT MIN(dispatched_at) FROM shipments")[0],
    ]
    db.commit()
    firsts = [f for f in firsts if f is not None]
    return min(firsts).replace(tzinfo=dt.timezone.utc).astimezone(WIB).date() if firsts else None


# Columns that can never be negative, and percentages; the rest are checked by their own rules.
_NON_NEGATIVE = {
    "inventory_kpi_daily": (
        "inbound_qty", "outbound_qty", "skus_in_stock", "stock_out_skus", "turnover_ratio",
        "tx_count", "scan_confirmed_tx",
    ),
    "fleet_kpi_daily": (
        "shipments_dispatched", "shipments_delivered", "shipments_failed", "delivered_on_time",
        "avg_delivery_hours", "fleet_size", "active_vehicles", "shipments_handled", "shipment_scans",
        "scans_per_shipment",
    ),
}
_PERCENT = {
    "inventory_kpi_daily": ("scan_confirmed_pct",),
    "fleet_kpi_daily": ("on_time_delivery_pct", "vehicle_utilization_pct"),
}


def quality_problems(db: Database, data_date) -> list[str]:
    """Plain-language problems with the day's KPI rows on TiDB; an empty list means none found.

    Checks: exactly one row per active warehouse (and its org), no negative counts or
    quantities, percentages within 0..100, stock not below zero, and
    closing = opening + inbound - outbound + adjustment.
    """
    _require_mysql_family(db)
    day = _as_date(data_date)
    start, end = day_bounds(day)
    warehouses = {
        wid: (org, code)
        for wid, org, code in db.fetchall(f"SELECT id, org_id, code FROM warehouses WHERE {_ACTIVE_WAREHOUSE}", (end, start))
    }
    problems = []
    for table in KPI_TABLES:
        cur = db.execute(f"SELECT * FROM {table} WHERE data_date = %s ORDER BY warehouse_id", (day,))
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
        cur.close()
        if not rows and warehouses:
            problems.append(
                f"{table} has no rows for {day}, expected one for each of {len(warehouses)} active warehouse(s): "
                "was the ETL run?"
            )
            continue
        seen = {row["warehouse_id"] for row in rows}
        for wid in sorted(set(warehouses) - seen):
            problems.append(f"{table} has no row for active warehouse {warehouses[wid][1]} ({wid}) on {day}")
        for row in rows:
            wid = row["warehouse_id"]
            where = f"{table} {day} warehouse " + (f"{warehouses[wid][1]} ({wid})" if wid in warehouses else wid)
            if wid not in warehouses:
                problems.append(f"{where}: has a row but the warehouse is not active (open) that day")
            elif row["org_id"] != warehouses[wid][0]:
                problems.append(f"{where}: org_id {row['org_id']} is not the warehouse's org {warehouses[wid][0]}")
            for col in _NON_NEGATIVE[table]:
                if row[col] is not None and row[col] < 0:
                    problems.append(f"{where}: {col} is negative ({row[col]})")
            for col in _PERCENT[table]:
                if row[col] is not None and not 0 <= row[col] <= 100:
                    problems.append(f"{where}: {col} is {row[col]}%, outside 0..100")
            if table == "inventory_kpi_daily":
                problems += _stock_problems(where, row)
    db.commit()
    return problems


def _stock_problems(where: str, row: dict) -> list[str]:
    out = []
    for col in ("opening_qty", "closing_qty"):
        if row[col] < 0:
            out.append(f"{where}: {col} is below zero ({row[col]}): movements are missing or booked twice")
    expected = row["opening_qty"] + row["inbound_qty"] - row["outbound_qty"] + row["adjustment_qty"]
    if Decimal(row["closing_qty"]) != Decimal(expected):
        out.append(f"{where}: closing_qty {row['closing_qty']} is not opening + inbound - outbound + adjustment = {expected}")
    return out


def excluded_rows(db: Database, data_date) -> list[dict]:
    """The day's rows of ``kpi_daily_exclusions`` (what the KPIs left out, and why)."""
    day = _as_date(data_date)
    return db.fetchdicts(
        f"SELECT org_id, source_table, reason, row_count, example_id FROM {EXCLUSIONS_TABLE} "
        "WHERE data_date = %s ORDER BY org_id, source_table, reason",
        (day,),
    )[1]
