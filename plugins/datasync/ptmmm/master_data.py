"""Master data from the PTMMM master Google Sheet into TiDB: warehouses, SKUs and vehicles.

One tab per table (``warehouses``, ``skus``, ``vehicles``), a header row, one row per item.
Rows are matched to TiDB by their **codes** (warehouse ``code``, SKU ``code``, vehicle
``plate_no``, each within its organisation) and upserted with the sync engine's MySQL writer
(``INSERT ... ON DUPLICATE KEY UPDATE``) in one transaction per tab.

=============  =========================================  ======================================
tab            required columns                           optional columns
=============  =========================================  ======================================
warehouses     org, code, name                            id, city, opened_at, closed_at
skus           org, code, name                            id, uom
vehicles       org, plate_no, warehouse_code              id, vehicle_type, capacity_kg,
                                                          in_service_at, retired_at
=============  =========================================  ======================================

* ``org``: the organisation's id or its exact name (``organizations`` in TiDB).
* ``id``: optional. Rows keep the id they have in TiDB; a new row takes the sheet's id (e.g. the
  one Supabase gave the warehouse) or else an id derived from org and code, so reruns agree.
* Times are WIB (``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM``, or a Sheets date) and stored in UTC.
* An empty cell clears a nullable column (the sheet is the master). For the required-in-TiDB
  ``opened_at`` / ``in_service_at`` / ``uom`` / ``vehicle_type`` it keeps the current value (a new
  row gets now / ``pcs`` / ``truck``). A column missing from the header is not touched at all.

Bad rows (unknown organisation or warehouse code, a code twice, an unreadable time, values the
table refuses) are rejected with table, key, column, value and reason into TiDB's
``sync_rejects``; up to ``max_rejects`` per tab the rest is written, past it nothing of that tab
is. Every tab's run is a ``sync_log`` row.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from datasync.db import Database, connected
from datasync.engine.frame import RejectThresholdExceeded, RunFrame
from datasync.engine.state import Counts, Reject
from datasync.engine.table import TableInfo
from datasync.engine.writers import writer_for
from datasync.ptmmm.kpi import WIB
from datasync.ptmmm.mirror import OPS_CONN
from datasync.ptmmm.sheets import SheetsError, SheetTarget, read_tab, tab_records

log = logging.getLogger(__name__)

DAG_ID = "ptmmm_master_data"
_ID_NAMESPACE = uuid.UUID("3c1f6a52-7f0e-4b8e-9d55-2f7d3a9e4c10")
_SHEETS_EPOCH = dt.datetime(1899, 12, 30)


@dataclass(frozen=True)
class Entity:
    table: str
    code: str  # the column that identifies a row within its organisation
    required: tuple[str, ...]  # sheet columns besides org
    optional: tuple[str, ...]
    times: tuple[str, ...] = ()
    # NOT NULL columns where an empty cell keeps the current value; a new row gets the default
    defaults: dict[str, Any] = field(default_factory=dict)


NOW = object()  # default marker: the import time
ENTITIES = {
    e.table: e
    for e in (
        Entity("warehouses", "code", ("code", "name"), ("city", "opened_at", "closed_at"), ("opened_at", "closed_at"),
               {"opened_at": NOW}),
        Entity("skus", "code", ("code", "name"), ("uom",), (), {"uom": "pcs"}),
        Entity("vehicles", "plate_no", ("plate_no", "warehouse_code"), ("vehicle_type", "capacity_kg", "in_service_at", "retired_at"),
               ("in_service_at", "retired_at"), {"vehicle_type": "truck", "in_service_at": NOW}),
    )
}
ORDER = ("warehouses", "skus", "vehicles")  # vehicles name their warehouse by code


def sync_name(table: str) -> str:
    return f"{DAG_ID}.{table}"


class _RowRejected(Exception):
    def __init__(self, column: str | None, value: Any, reason: str):
        self.column, self.value, self.reason = column, value, reason


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() or None


def wib_time(value: Any, column: str) -> dt.datetime | None:
    """A WIB date/time cell as naive UTC (ops tables store UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # a Sheets date serial, local (WIB) time
        local = _SHEETS_EPOCH + dt.timedelta(days=float(value))
        local = local.replace(microsecond=0)
    else:
        text = str(value).strip().replace("T", " ")
        try:
            local = dt.datetime.fromisoformat(text)
        except ValueError:
            raise _RowRejected(column, value, "not a WIB date/time (YYYY-MM-DD or YYYY-MM-DD HH:MM)") from None
    if local.tzinfo is None:
        local = local.replace(tzinfo=WIB)
    return local.astimezone(dt.timezone.utc).replace(tzinfo=None)


class _Resolver:
    """Turns sheet records into target rows, using what TiDB already has."""

    def __init__(self, db: Database, entity: Entity, header: list[str], now: dt.datetime):
        self.entity, self.now = entity, now
        self.orgs_by_id: dict[str, str] = {}
        names: dict[str, list[str]] = {}
        for org_id, name in db.fetchall("SELECT id, name FROM organizations"):
            self.orgs_by_id[org_id] = org_id
            names.setdefault(str(name).strip().casefold(), []).append(org_id)
        self.orgs_by_name = names
        keep = [c for c in entity.defaults if c in header]
        cols = ", ".join(["id", "org_id", entity.code, *keep])
        self.existing: dict[tuple[str, str], dict] = {}
        self.by_id: dict[str, dict] = {}
        for row in db.fetchall(f"SELECT {cols} FROM {entity.table}"):
            record = dict(zip(["id", "org_id", entity.code, *keep], row))
            self.existing[(record["org_id"], record[entity.code])] = record
            self.by_id[record["id"]] = record
        self.warehouses = {}
        if entity.table == "vehicles":
            self.warehouses = {(org, code): wid for wid, org, code in db.fetchall("SELECT id, org_id, code FROM warehouses")}
        db.commit()
        self.columns = ["id", "org_id", entity.code] + [
            "warehouse_id" if c == "warehouse_code" else c
            for c in (*entity.required, *entity.optional) if c != entity.code and c in header
        ]
        self.seen: dict[tuple[str, str], int] = {}

    def org(self, value: Any) -> str:
        text = _text(value)
        if text is None:
            raise _RowRejected("org", value, "org is required (the organisation's id or exact name)")
        if text in self.orgs_by_id:
            return text
        matches = self.orgs_by_name.get(text.casefold(), [])
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise _RowRejected("org", value, f"the name matches {len(matches)} organisations; use the organisation's id")
        raise _RowRejected("org", value, "unknown organisation (not an id or name in organizations)")

    def row(self, row_no: int, record: dict[str, Any]) -> tuple:
        e = self.entity
        org_id = self.org(record.get("org"))
        code = _text(record.get(e.code))
        if code is None:
            raise _RowRejected(e.code, None, f"{e.code} is required")
        if (org_id, code) in self.seen:
            raise _RowRejected(e.code, code, f"{e.code} appears again in the sheet; row {self.seen[(org_id, code)]} is used")
        self.seen[(org_id, code)] = row_no
        current = self.existing.get((org_id, code))
        row_id = _text(record.get("id"))
        if row_id is not None:
            try:
                row_id = str(uuid.UUID(row_id))
            except ValueError:
                raise _RowRejected("id", row_id, "not a UUID") from None
            if current and current["id"] != row_id:
                raise _RowRejected("id", row_id, f"{e.table} {code} of this organisation already has id {current['id']}")
            current = current or self.by_id.get(row_id)
        row_id = row_id or (current["id"] if current else str(uuid.uuid5(_ID_NAMESPACE, f"{e.table}:{org_id}:{code}")))
        values: dict[str, Any] = {"id": row_id, "org_id": org_id, e.code: code}
        for column in self.columns[3:]:
            if column == "warehouse_id":
                wh_code = _text(record.get("warehouse_code"))
                if wh_code is None or (org_id, wh_code) not in self.warehouses:
                    raise _RowRejected("warehouse_code", wh_code, "no warehouse with this code in the vehicle's organisation")
                values[column] = self.warehouses[(org_id, wh_code)]
                continue
            value = record.get(column)
            if column in e.times:
                value = wib_time(value, column)
            elif value is not None and not isinstance(value, (int, float)):
                value = _text(value)
            if value is None and column in e.defaults:
                if current and current.get(column) is not None:
                    value = current[column]
                else:
                    value = self.now if e.defaults[column] is NOW else e.defaults[column]
            values[column] = value
        return tuple(values[c] for c in self.columns)


@dataclass
class ImportResult:
    table: str
    counts: Counts
    rejects: list[Reject]

    def summary(self, target: SheetTarget) -> str:
        return f"{target.describe()} tab '{self.table}' -> tidb_ops.{self.table}: {self.counts.sentence()}"


def import_tab(table: str, target: SheetTarget, *, run_id: str | None = None, max_rejects: int = 0,
               conn_id: str = OPS_CONN, now: dt.datetime | None = None) -> ImportResult:
    entity = ENTITIES[table]
    where = f"{target.describe()} tab '{table}'"
    records = list(tab_records(read_tab(target, table), where))
    header = list(dict.fromkeys(h for _, r in records for h in r))
    missing = [c for c in ("org", *entity.required) if c not in header]
    if records and missing:
        raise SheetsError(f"{where}: the header row lacks {missing}; nothing was written")
    ignored = [h for h in header if h not in ("org", "id", *entity.required, *entity.optional)]
    if ignored:
        log.info("%s: columns %s are not imported", where, ignored)
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    name = sync_name(table)
    with connected(conn_id, local_infile=True) as db, RunFrame(db, name, run_id, "upsert", max_rejects=max_rejects) as frame:
        counts, rejects, writer = Counts(read=len(records)), [], None
        try:
            resolver = _Resolver(db, entity, header, now)
            info = TableInfo.load(db, table)
            rows = []
            for row_no, record in records:
                key = _text(record.get(entity.code))
                try:
                    row = resolver.row(row_no, record)
                except _RowRejected as bad:
                    rejects.append(Reject(table, key, bad.column, bad.value, bad.reason, {**record, "sheet_row": row_no}))
                    continue
                problems = info.problems(resolver.columns, row)  # the engine's checks: types, lengths, NOT NULL
                if problems:
                    column, value, reason = problems[0]
                    rejects.append(Reject(table, key, column, value, reason, {**record, "sheet_row": row_no}))
                    continue
                rows.append(row)
            writer = writer_for(db, info, resolver.columns, ["id"])
            if rows:
                written, refused = writer.write(rows)  # the server judges the rest (unique codes, ...)
                counts.add(Counts(inserted=written.inserted, updated=written.updated, unchanged=written.unchanged))
                rejects += refused
            frame.take(counts, rejects)  # one transaction per tab: past max_rejects nothing of it lands
            frame.details[name] = {"tab": table, "rejects": [r.describe() for r in rejects[:20]]}
            frame.commit()
        finally:
            if writer is not None:
                writer.close()
        result = ImportResult(table, frame.counts[name], rejects)
    for r in rejects:
        log.warning("rejected: %s", r.describe())
    log.info(result.summary(target))
    return result


def import_task(table: str, params, run_id: str | None) -> dict:
    """The DAG task: skip when no master sheet is configured; a bad layout or too many rejects
    fails at once (a retry would read the same sheet)."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from datasync.ptmmm.sheets import MASTER_SPREADSHEET_VARIABLE, SheetsNotConfigured, sheet_target

    try:
        target = sheet_target(params.get("spreadsheet_id"), MASTER_SPREADSHEET_VARIABLE)
    except SheetsNotConfigured as exc:
        raise AirflowSkipException(f"master data import skipped: {exc}") from None
    try:
        result = import_tab(table, target, run_id=run_id, max_rejects=int(params["max_rejects"]))
    except RejectThresholdExceeded as exc:
        raise AirflowFailException(str(exc)) from None
    except SheetsError as exc:
        if "header row" in str(exc) or "has no tab" in str(exc):
            raise AirflowFailException(str(exc)) from None
        raise
    return {"table": table, **result.counts.as_dict()}
