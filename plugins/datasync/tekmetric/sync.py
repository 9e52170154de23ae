"""Tekmetric -> warehouse, per shop and entity: windows, transactions, cursors, the run log.

Per shop, in order: employees (re-read fully: small, no deleted filter), customers, vehicles,
repair orders (jobs, labor, parts, sublets and fees embedded), then the metrics of the days
that changed. Shops come from the token's scope, narrowed by the ``shop_ids`` param and the
``shops.sync_enabled`` flag.

Windows: ``updatedDateStart = cursor - overlap``, ``updatedDateEnd = run start``, split into
slices of ``window`` (a backfill starts at ``backfill_start``). Tekmetric pages by offset and
cannot sort by updatedDate, so the hook de-duplicates by id, checks ``totalElements`` and
re-reads a window that shifted; deleted records come from a second read by ``deletedDate``.

Each slice is ONE transaction: its rows (an RO with all its children, replaced as a set), its
snapshots, the stale flags of the metric days it touched, its rejects, its raw pages and the
cursor ``tekmetric_sync.<shop>.<entity>`` = the slice's end. A slice whose read stayed
inconsistent after re-reading commits its rows but not the cursor, and the run stops there:
the cursor never passes data that was not written. Every entity run is a ``sync_log`` row.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from datasync.db import Database, connect, named_lock
from datasync.engine import state
from datasync.engine.state import Counts, Position, Reject
from datasync.engine.frame import RunFrame
from datasync.tekmetric import metrics
from datasync.tekmetric.hook import DEFAULT_CONN_ID, TekmetricHook, WindowRead
from datasync.tekmetric.warehouse import (
    SIMPLE_MAPPERS,
    RepairOrderSetWriter,
    RowError,
    ShopContext,
    as_tuples,
    load_shop,
    make_writer,
    repair_order_rows,
)

log = logging.getLogger(__name__)

API_CONN = DEFAULT_CONN_ID  # tekmetric_api
WAREHOUSE_CONN = "tekmetric_warehouse"
POOL = "tekmetric_api"
SYNC_PREFIX = "tekmetric_sync"
UTC = dt.timezone.utc
# Share of the rate limit the shop tasks use together: a lone limiter keeps 2 % for network jitter
# at the edges of the server's window; limiters of shops reading at once also need room for their
# independent phases lining up.
HEADROOM = {1: 0.98}
PARALLEL_HEADROOM = 0.95
_DONE = object()


@dataclass(frozen=True)
class Entity:
    name: str  # table, task and cursor name
    path: str
    deleted_filter: bool = True
    full_read: bool = False


ENTITIES = {e.name: e for e in (
    Entity("employees", "/employees", deleted_filter=False, full_read=True),
    Entity("customers", "/customers"),
    Entity("vehicles", "/vehicles"),
    Entity("repair_orders", "/repair-orders"),
)}


@dataclass
class SyncOptions:
    """The DAG params that shape a run (see dags/tekmetric_sync.py)."""

    full_backfill: bool = False
    backfill_start: dt.datetime | None = None  # None: backfill_days before the run
    backfill_days: int = 365
    overlap: dt.timedelta = dt.timedelta(minutes=15)
    window: dt.timedelta = dt.timedelta(days=30)
    max_rejects: int = 10
    store_raw: bool = False
    tolerance_cents: int = 0

    @classmethod
    def from_params(cls, params: dict) -> SyncOptions:
        start = params.get("backfill_start")
        if isinstance(start, str) and start:
            start = dt.datetime.combine(dt.date.fromisoformat(start[:10]), dt.time(), UTC)
        elif isinstance(start, dt.date) and not isinstance(start, dt.datetime):
            start = dt.datetime.combine(start, dt.time(), UTC)
        return cls(
            full_backfill=bool(params.get("full_backfill", False)), backfill_start=start or None,
            overlap=dt.timedelta(minutes=int(params.get("overlap_minutes", 15))),
            window=dt.timedelta(days=int(params.get("window_days", 30))),
            max_rejects=int(params.get("max_rejects", 10)), store_raw=bool(params.get("store_raw_payloads", False)),
            tolerance_cents=int(params.get("variance_tolerance_cents", 0)),
        )

    def start_for(self, cursor: Any, run_start: dt.datetime) -> dt.datetime:
        if self.full_backfill or cursor is None:
            return self.backfill_start or run_start - dt.timedelta(days=self.backfill_days)
        return _aware(cursor) - self.overlap


class ReadCancelled(Exception):
    """A read-ahead stopped because the slice being written failed or stopped the run."""


class RecordingHook(TekmetricHook):
    """The hook, keeping each page it reads while ``pages`` is a list (for tm_raw_payloads), and
    stopping between pages once ``cancel`` is set. Serves one entity run at a time."""

    pages: list[tuple[str, dict, int, dict]] | None = None
    cancel: threading.Event | None = None

    def iter_pages(self, path, params=None):
        for page, content, envelope in super().iter_pages(path, params):
            if self.cancel is not None and self.cancel.is_set():
                raise ReadCancelled(f"read of {path} cancelled")
            if self.pages is not None:
                self.pages.append((path, {**(params or {}), "page": page}, page, envelope))
            yield page, content, envelope


def make_hook(api_share: float = 1.0, conn_id: str = API_CONN, **overrides: Any) -> RecordingHook:
    """A hook allowed ``api_share`` of the connection's rate limit (concurrent shop tasks split it)."""
    if "rate_limit_per_minute" not in overrides:
        overrides["rate_limit_per_minute"] = TekmetricHook(conn_id).settings.rate_limit_per_minute * api_share
    return RecordingHook(conn_id, **overrides)


def sync_name(shop_id: int, entity: str) -> str:
    return f"{SYNC_PREFIX}.{shop_id}.{entity}"


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def windows(start: dt.datetime, end: dt.datetime, size: dt.timedelta) -> list[tuple[dt.datetime, dt.datetime]]:
    out = []
    while start < end:
        out.append((start, min(start + size, end)))
        start = out[-1][1]
    return out


# ---- shops ------------------------------------------------------------------------------------

def list_shops(hook: TekmetricHook, db: Database, shop_ids: list[int] | None = None,
               api_concurrency: int = 4) -> list[dict]:
    """Upsert the shops the token can read; return those to sync (scope ∩ shop_ids ∩ sync_enabled).

    A shop's timezone comes from the payload when Tekmetric sends one, else the shops table
    keeps what was configured there.
    """
    scope = hook.scope_shop_ids()
    readable = {s["id"]: s for s in hook.get_shops() if s.get("id") in scope}
    wanted = [int(s) for s in shop_ids or []]
    outside = sorted(set(wanted) - set(readable))
    if outside:
        raise ValueError(f"shop_ids {outside} are not readable with this token (its scope: {scope}); "
                         "ask the shop to grant the app access or remove them from shop_ids")
    for shop in readable.values():
        address = shop.get("address") or {}
        db.execute(
            "INSERT INTO shops AS s (shop_id, name, nickname, phone, email, website, address1, address2, city, state, "
            "zip, timezone) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, 'UTC')) "
            "ON CONFLICT (shop_id) DO UPDATE SET name = EXCLUDED.name, nickname = EXCLUDED.nickname, "
            "phone = EXCLUDED.phone, email = EXCLUDED.email, website = EXCLUDED.website, address1 = EXCLUDED.address1, "
            "address2 = EXCLUDED.address2, city = EXCLUDED.city, state = EXCLUDED.state, zip = EXCLUDED.zip, "
            "timezone = coalesce(%s, s.timezone)",
            (shop["id"], shop.get("name") or f"Shop {shop['id']}", shop.get("nickname"), shop.get("phone"),
             shop.get("email"), shop.get("website"), address.get("address1"), address.get("address2"),
             address.get("city"), address.get("state"), address.get("zip"), shop.get("timeZone"),
             shop.get("timeZone")))
    db.commit()
    chosen = [s for s in readable if not wanted or s in wanted]
    rows = db.fetchall("SELECT shop_id, name, timezone, sync_enabled FROM shops WHERE shop_id = ANY(%s) "
                       "ORDER BY shop_id", (chosen,))
    db.commit()
    for shop_id, name, tz, enabled in rows:
        if not enabled:
            log.info("Shop %s (%s) is in scope but shops.sync_enabled is false: skipped", name, shop_id)
        elif tz == "UTC" and not readable[shop_id].get("timeZone"):
            log.warning("Shop %s (%s) has no timezone: its dates are UTC days until shops.timezone is set",
                        name, shop_id)
    unreadable = db.fetchall("SELECT shop_id, name FROM shops WHERE sync_enabled AND NOT (shop_id = ANY(%s))",
                             (list(readable),))
    db.commit()
    for shop_id, name in unreadable:
        log.warning("Shop %s (%s) is in the shops table but not readable with this token (scope %s): skipped",
                    name, shop_id, scope)
    active = [r for r in rows if r[3]]
    parallel = max(1, min(len(active), api_concurrency))
    share = HEADROOM.get(parallel, PARALLEL_HEADROOM) / parallel
    shops = [{"shop_id": r[0], "name": r[1], "timezone": r[2], "label": f"{r[1]} ({r[0]})", "api_share": share}
             for r in active]
    log.info("Shops to sync: %s", ", ".join(s["label"] for s in shops) or "none")
    return shops


# ---- one entity of one shop ---------------------------------------------------------------------

@dataclass
class EntityRun:
    entity: Entity
    shop_id: int
    hook: RecordingHook
    db: Database
    run_id: str | None
    run_start: dt.datetime
    options: SyncOptions
    frame: RunFrame | None = None  # set while the run is inside its frame
    counts: Counts = field(default_factory=Counts)
    rejects: list[Reject] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    held: bool = False  # a slice was inconsistent: later slices are written, the cursor stays before it
    _stats_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return sync_name(self.shop_id, self.entity.name)

    def execute(self) -> Position:
        shop = load_shop(self.db, self.shop_id)
        pos = state.read_cursor(self.db, self.name)
        if self.entity.full_read:
            slices: list[tuple[dt.datetime | None, dt.datetime | None]] = [(None, None)]
        else:
            slices = windows(self.options.start_for(pos.value, self.run_start), self.run_start, self.options.window)
            if not slices:
                log.info("%s: the cursor (%s) is at or after this run's start; nothing to read", self.name, pos.value)
        d = self.details
        d.update(windows=0, requests=0, pages=0, rereads=0, deleted=0, inconsistent=[], children={}, variances={},
                 snapshots=0, touched_days=[], raw_pages=0)
        writer = RepairOrderSetWriter(self.db) if self.entity.name == "repair_orders" else make_writer(
            self.db, self.entity.name)
        # The next slice is read while this one is written, so the API budget is not idle during
        # database writes (at most one read slice waits: memory stays at a few slices).
        ahead: queue.Queue = queue.Queue(maxsize=1)
        cancel = threading.Event()
        self.hook.cancel = cancel  # a read still running when this ends stops at its next page
        reader = threading.Thread(target=self._read_ahead, args=(slices, ahead, cancel), daemon=True,
                                  name=f"{self.name}:read-ahead")
        reader.start()
        try:
            while (item := ahead.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                start, end, records, consistent, pages = item
                if not consistent and not self.held:
                    self.held = True
                    self.frame.mark_partial(
                        f"{_text(start)}..{_text(end)} kept shifting while read; its rows and later slices' are written "
                        f"but the cursor stays at {_text(pos.value)}, so the next run reads it again")
                if not consistent:
                    d["inconsistent"].append([_text(start), _text(end)])
                self._slice(shop, writer, start, end, records, consistent, pages, pos)
        finally:
            cancel.set()
            reader.join()
            self.hook.cancel = None
            writer.close()
        d["cursor"] = _text(pos.value)
        return pos

    def _read_ahead(self, slices, ahead: queue.Queue, cancel: threading.Event) -> None:
        """Reader thread: each slice's records in order, then _DONE; an exception is handed over."""

        def hand_over(item) -> bool:
            while not cancel.is_set():
                try:
                    ahead.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for start, end in slices:
                if cancel.is_set() or not hand_over((start, end, *self._read(start, end))):
                    return
            hand_over(_DONE)
        except BaseException as exc:  # the writer raises it
            hand_over(exc)

    def _read(self, start: dt.datetime | None, end: dt.datetime | None) -> tuple[list[dict], bool, list]:
        self.hook.pages = [] if self.options.store_raw else None
        reads: list[WindowRead] = [self.hook.read_window(self.entity.path, self.shop_id, start, end)]
        if self.entity.deleted_filter:
            reads.append(self.hook.read_window(self.entity.path, self.shop_id, start, end, deleted=True))
        pages, self.hook.pages = self.hook.pages or [], None
        merged: dict[Any, dict] = {}
        for read in reads:  # a record both changed and deleted in the window: the deleted copy is newer
            for record in read.records:
                merged[record["id"]] = record
        with self._stats_lock:
            d = self.details
            d["deleted"] += len(reads[1].records) if len(reads) > 1 else 0
            for read in reads:
                d["requests"] += read.stats.requests
                d["pages"] += read.stats.pages
                d["rereads"] += read.stats.rereads
            d["windows"] += 1
        return list(merged.values()), all(r.stats.consistent for r in reads), pages

    def _slice(self, shop: ShopContext, writer, start, end, records: list[dict], consistent: bool, pages: list,
               pos: Position) -> None:
        found: dict = {}  # what the slice wrote beyond counts (RO children, snapshots, ...), kept if it commits
        if self.entity.name == "repair_orders":
            counts, rejects = self._write_repair_orders(shop, writer, records, found)
        else:
            counts, rejects = self._write_simple(writer, records)
        self.frame.take(counts, rejects)  # past max_rejects the slice's rows and cursor roll back
        self._note(found)
        if self.entity.full_read and consistent:
            seen = [r["id"] for r in records]
            self.db.execute(  # no longer listed by Tekmetric: kept (ROs name them) but inactive
                "UPDATE employees SET status = 'INACTIVE' WHERE shop_id = %s AND status = 'ACTIVE' "
                "AND NOT (employee_id = ANY(%s))", (self.shop_id, seen))
        self._store_pages(pages)
        if not self.held:
            moved = end or self.run_start
            if pos.value is None or moved > _aware(pos.value):
                pos.value = moved
            pos.rows_synced += counts.inserted + counts.updated
            state.write_cursor(self.db, self.name, pos)
            self.db.execute("UPDATE sync_cursors SET shop_id = %s, entity = %s WHERE sync_name = %s",
                            (self.shop_id, self.entity.name, self.name))
        self.frame.commit()  # rows, cursor and the run log's counts together
        log.info("%s: %s..%s: %s", self.name, _text(start) or "all", _text(end) or "now", counts.sentence())

    def _write_simple(self, writer, records: list[dict]) -> tuple[Counts, list[Reject]]:
        mapper = SIMPLE_MAPPERS[self.entity.name]
        rows, rejects = [], []
        for record in records:
            try:
                rows.append(mapper(record, self.shop_id))
            except RowError as exc:
                rejects.append(exc.reject(record))
        counts, refused = writer.write(as_tuples(self.entity.name, rows)) if rows else (Counts(), [])
        counts.read = len(records)
        counts.rejected = len(rejects) + len(refused)
        return counts, rejects + refused

    def _write_repair_orders(self, shop: ShopContext, writer: RepairOrderSetWriter, records: list[dict],
                             found: dict) -> tuple[Counts, list[Reject]]:
        mapped, rejects = [], []
        now = dt.datetime.now(UTC)
        for record in records:
            try:
                mapped.append(repair_order_rows(record, shop, now))
            except RowError as exc:
                reject = exc.reject(record)
                if reject.table != "repair_orders":  # a line's problem holds back its whole RO
                    reject = Reject("repair_orders", record.get("id"), f"{exc.table}.{exc.column}", exc.value,
                                    f"repair order {record.get('id')}: {exc.reason}", reject.row)
                rejects.append(reject)
        result = writer.write(mapped, force=self.options.full_backfill)
        rejects += result.rejects
        result.counts.read = len(records)
        result.counts.rejected = len(rejects)
        tolerance = self.options.tolerance_cents
        snaps = metrics.auto_snapshots(self.db, result.written, run_id=self.run_id, tolerance=tolerance)
        metrics.mark_stale(self.db, self.shop_id, result.touched_days)
        found.update(children=result.children, snapshots=len(snaps), touched_days=result.touched_days,
                     variances=metrics.variances(self.db, result.written, tolerance))
        return result.counts, rejects

    def _note(self, found: dict) -> None:
        d = self.details
        for table, n in found.get("children", {}).items():
            d["children"][table] = d["children"].get(table, 0) + n
        d["snapshots"] += found.get("snapshots", 0)
        d["variances"].update({str(ro_id): v for ro_id, v in found.get("variances", {}).items()})
        d["touched_days"] = sorted(set(d["touched_days"]) | {day.isoformat() for day in found.get("touched_days", ())})

    def _store_pages(self, pages: list[tuple[str, dict, int, dict]]) -> None:
        if not pages:
            return
        cur = self.db.cursor()
        cur.executemany(
            "INSERT INTO tm_raw_payloads (shop_id, entity, endpoint, query, page, payload, run_id) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(self.shop_id, self.entity.name, path, json.dumps(query, default=str), page, json.dumps(envelope),
              self.run_id) for path, query, page, envelope in pages])
        cur.close()
        self.details["raw_pages"] += len(pages)

    def summary(self) -> dict:
        d = self.details
        variances = d.get("variances", {})
        out = {"shop_id": self.shop_id, "entity": self.entity.name, "status": "partial" if self.held else "success",
               **self.counts.as_dict(),
               "windows": d.get("windows", 0), "requests": d.get("requests", 0), "cursor": d.get("cursor"),
               "rejects": [r.describe() for r in self.rejects[:20]]}
        if self.entity.name == "repair_orders":
            out.update(children=d.get("children", {}), snapshots=d.get("snapshots", 0),
                       variance_ros=len(variances), touched_days=len(d.get("touched_days", [])))
        return out

    def log_details(self) -> dict:
        d = dict(self.details)
        d["variances"] = dict(list(d.get("variances", {}).items())[:50])  # the first 50 are plenty to diagnose
        d["variance_ros"] = len(self.details.get("variances", {}))
        d["rejects"] = [r.describe() for r in self.rejects[:20]]
        return d


def _text(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value


def sync_entity(entity: str, shop_id: int, *, hook: RecordingHook, run_id: str | None = None,
                run_start: dt.datetime | None = None, options: SyncOptions | None = None,
                conn_id: str = WAREHOUSE_CONN, lock_wait_seconds: float = 60) -> dict:
    """Sync one entity of one shop (see the module docstring); returns a summary for XCom."""
    spec = ENTITIES[entity]
    options = options or SyncOptions()
    run_start = _aware(run_start or dt.datetime.now(UTC))
    started = time.monotonic()
    db = connect(conn_id)
    run = EntityRun(spec, int(shop_id), hook, db, run_id, run_start, options)
    try:
        mode = "full" if options.full_backfill or spec.full_read else "incremental"
        with RunFrame(db, run.name, run_id, mode, max_rejects=options.max_rejects, lock_wait_seconds=lock_wait_seconds,
                      labels={"shop_id": shop_id, "entity": entity}) as frame:
            run.frame, run.counts, run.rejects = frame, frame.counts[run.name], frame.rejects
            try:
                run.execute()
            finally:
                frame.details[run.name].update(run.log_details())
    finally:
        db.close()
    summary = run.summary()
    summary["seconds"] = round(time.monotonic() - started, 3)
    extra = ""
    if entity == "repair_orders":
        extra = (f"; {summary['snapshots']} snapshots, {summary['variance_ros']} ROs with variance, "
                 f"{summary['touched_days']} metric days to recompute")
    log.info("Tekmetric %s of shop %s -> %s: %s in %d window(s), %d requests%s; cursor %s", entity, shop_id,
             conn_id, run.counts.sentence(), summary["windows"], summary["requests"], extra, summary["cursor"])
    return summary


def compute_metrics(shop_id: int, *, conn_id: str = WAREHOUSE_CONN, tolerance: int = 0,
                    lock_wait_seconds: float = 300) -> dict:
    """Recompute the shop's stale days. Waits for a running RO sync of the shop (same lock)."""
    db = connect(conn_id)
    try:
        with named_lock(db, f"datasync:sync:{sync_name(shop_id, 'repair_orders')}", lock_wait_seconds):
            days = metrics.recompute_stale(db, int(shop_id), tolerance)
    finally:
        db.close()
    log.info("Metrics of shop %s: recomputed %d day(s)%s", shop_id, len(days),
             f" ({days[0]} .. {days[-1]})" if days else "")
    return {"shop_id": shop_id, "days": [d.isoformat() for d in days]}


def sync_shop(shop_id: int, *, hook: RecordingHook, run_id: str | None = None, run_start: dt.datetime | None = None,
              options: SyncOptions | None = None, conn_id: str = WAREHOUSE_CONN) -> dict:
    """Every entity of one shop in order, then its metrics (what one mapped task group does)."""
    run_start = run_start or dt.datetime.now(UTC)
    out = {name: sync_entity(name, shop_id, hook=hook, run_id=run_id, run_start=run_start, options=options,
                             conn_id=conn_id) for name in ENTITIES}
    out["metrics"] = compute_metrics(shop_id, conn_id=conn_id, tolerance=(options or SyncOptions()).tolerance_cents)
    return out


def purge_raw_payloads(db: Database, retention_days: int) -> int:
    deleted = db.execute("DELETE FROM tm_raw_payloads WHERE fetched_at < now() - make_interval(days => %s)",
                         (int(retention_days),)).rowcount
    db.commit()
    log.info("Purged %d raw Tekmetric page(s) older than %d days", deleted, retention_days)
    return deleted


# ---- Airflow task bodies (the DAG file stays declarative) -------------------------------------------

def _run_start(context) -> dt.datetime:
    dag_run = context.get("dag_run")
    start = getattr(dag_run, "start_date", None) if dag_run is not None else None
    return _aware(start) if start else dt.datetime.now(UTC)


def task_prepare(context) -> int:
    db = connect(WAREHOUSE_CONN)
    try:
        return purge_raw_payloads(db, int(context["params"].get("raw_retention_days", 14)))
    finally:
        db.close()


def task_list_shops(context) -> list[dict]:
    params = context["params"]
    hook = make_hook()
    db = connect(WAREHOUSE_CONN)
    try:
        return list_shops(hook, db, params.get("shop_ids") or None, int(params.get("api_concurrency", 4)))
    finally:
        db.close()
        hook.close()


def _label(shop: dict) -> None:
    """``map_index_template`` ("{{ shop_label }}") shows the shop's name; it reads the live context."""
    from airflow.sdk import get_current_context

    get_current_context()["shop_label"] = shop["label"]


def task_sync_entity(entity: str, shop: dict, context) -> dict:
    _label(shop)
    hook = make_hook(shop.get("api_share", 1.0))
    try:
        return sync_entity(entity, shop["shop_id"], hook=hook, run_id=context["run_id"], run_start=_run_start(context),
                           options=SyncOptions.from_params(context["params"]))
    finally:
        hook.close()


def task_metrics(shop: dict, context) -> dict:
    _label(shop)
    return compute_metrics(shop["shop_id"], tolerance=int(context["params"].get("variance_tolerance_cents", 0)))


def task_manual_snapshots(context) -> list[int]:
    ids = [int(i) for i in context["params"].get("snapshot_ro_ids") or []]
    db = connect(WAREHOUSE_CONN)
    try:
        known = [r[0] for r in db.fetchall("SELECT ro_id FROM repair_orders WHERE ro_id = ANY(%s)", (ids,))]
        missing = sorted(set(ids) - set(known))
        if missing:
            log.warning("No repair order %s in the warehouse (not synced yet?): no snapshot", missing)
        done = metrics.manual_snapshots(db, known, run_id=context["run_id"],
                                        tolerance=int(context["params"].get("variance_tolerance_cents", 0)))
    finally:
        db.close()
    log.info("Manual snapshots written for %d repair order(s): %s", len(done), done)
    return done
