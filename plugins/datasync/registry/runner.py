"""The registry runner: which sources are due, and one source's sync.

:func:`pick_sources` is the DAG's first task: ``active`` sources whose ``next_sync`` has come by the run's tick
(or was never set), high priority first; ``source_ids`` forces chosen ones. :func:`run_source`
is one mapped task instance: for each active mapping of the source it

1. writes a ``running`` row in ``data_source_sync_history`` (a killed worker stays visible);
2. compiles the mapping and creates the target table when missing (drift is an error);
3. opens the source through its primary connection (within what the registry policy, read
   once per task from the Airflow Variable ``datasync_registry_policy``, allows), then the backups in id order, until one
   yields its first batch (connection refused, missing file, 5xx after the connector's own
   retries all count as "down"); the history row records which one served;
4. maps batches and hands the rows to the sync engine: ``full`` is one transaction that also
   deletes target rows the source no longer has; ``incremental``/``realtime`` upsert rows whose
   cursor is not older than the stored cursor (minus a lookback) and move the cursor once the
   whole read has committed;
5. purges rows older than ``data_retention_days`` by the mapping's date column;
6. finishes the history row and updates the registry (``last_sync``, ``next_sync``,
   ``error_count``, ``last_error``, status ``error`` after N consecutive failed runs, which
   alerts through :class:`~datasync.registry.notify.RegistryAlertNotifier`).

A failing source raises :class:`SourceSyncFailed` after its bookkeeping, so its own task fails
and the others carry on. Everything is keyed by the source and mapping, so a cleared task
instance reruns exactly its source, idempotently.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import Any

from datasync.db import Database, LockTimeout, connect, named_lock
from datasync.engine import RowsSource, SyncSpec, run_sync
from datasync.engine import state
from datasync.engine.state import Position, Reject
from datasync.registry.connectors import SourceError, SourceNotConfigured, open_source
from datasync.registry.mapping import MappingError, Mapper, compile_mapping, ensure_target_table
from datasync.registry.policy import PolicyInvalid, RegistryPolicy
from datasync.registry.redact import redact, redact_value

log = logging.getLogger(__name__)

REGISTRY_CONN_ID = "registry_db"
# The compose init creates this pool (16 slots); a deployment without it sets the env var
# (read when the DAG file is parsed, so it must not be an Airflow Variable).
POOL = os.environ.get("DATASYNC_REGISTRY_POOL", "registry_sources")
# The mapped per-source task's settings: the runner DAGs and the benchmark's floor (bench/dags/) use them.
SYNC_TASK_ARGS = {
    "multiple_outputs": False,  # one XCom with the summary, not one per key (8x the API calls)
    "map_index_template": "{{ task.op_kwargs['source']['name'] }}",
    "pool": POOL,
    "retries": 1,  # the next cycle is minutes away: retry once, soon
    "retry_delay": dt.timedelta(seconds=30),
    "execution_timeout": dt.timedelta(minutes=30),
}
ERROR_THRESHOLD_VARIABLE = "registry_error_threshold"
DEFAULT_ERROR_THRESHOLD = 3
# Airflow refuses to expand more than [core] max_map_length (1024) instances; the rest wait a cycle.
MAX_SOURCES_PER_RUN = 1000
DEFAULT_BATCH_SIZE = 5000
# Time cursors re-read this far back: rows committed late with an older timestamp are not lost,
# and the upsert leaves the re-read ones unchanged.
TIME_LOOKBACK = dt.timedelta(minutes=10)
SOURCE_LOCK_WAIT_SECONDS = 120
ERROR_TEXT_LIMIT = 4000

# Seconds per phase, summed over every source this process ran (the benchmark reads it).
STATS: dict[str, float] = defaultdict(float)


class SourceSyncFailed(RuntimeError):
    """One source failed; its history and registry rows already say why."""


class SourceGone(LookupError):
    """The source was deleted between picking and running."""


# ---- what the registry says about a source --------------------------------------------------------
@dataclass(frozen=True)
class SourceConnection:
    id: int
    name: str
    type: str
    config: dict
    is_primary: bool
    is_backup: bool
    status: str

    @property
    def role(self) -> str:
        return "primary" if self.is_primary else "backup"


@dataclass(frozen=True)
class SourceMapping:
    id: int
    target_table: str
    config: dict
    key_columns: list[str]
    cursor_field: str | None
    retention_date_column: str | None
    max_rejects: int
    sync_strategy: str  # full | incremental | realtime
    data_retention_days: int | None
    shared_with: int  # active mappings of other sources into the same table


@dataclass(frozen=True)
class Source:
    id: int
    source_id: str
    name: str
    source_type: str
    status: str
    priority: int
    refresh_interval: int
    error_count: int
    connections: tuple[SourceConnection, ...]
    mappings: tuple[SourceMapping, ...]

    def candidates(self) -> list[SourceConnection]:
        """Connections to try, in order: the primary, then backups by id. Without a flagged
        primary the first active connection plays that part."""
        usable = [c for c in self.connections if c.status == "active"]
        primary = [c for c in usable if c.is_primary]
        backups = [c for c in usable if c.is_backup]
        if not primary:
            unflagged = [c for c in usable if not c.is_backup]
            if unflagged:
                first = unflagged[0]
                primary = [SourceConnection(first.id, first.name, first.type, first.config, True, False, first.status)]
        return primary + backups


_LOAD_SQL = """
SELECT r.id, r.source_id, r.name, r.source_type, r.status, r.priority, r.refresh_interval, r.error_count,
  COALESCE((SELECT json_agg(json_build_object(
              'id', c.id, 'name', c.connection_name, 'type', c.connection_type, 'config', c.connection_config,
              'is_primary', c.is_primary, 'is_backup', c.is_backup, 'status', c.status) ORDER BY c.id)
            FROM data_source_connections c WHERE c.source_id = r.id), '[]'),
  COALESCE((SELECT json_agg(json_build_object(
              'id', m.id, 'target_table', m.target_table, 'config', m.mapping_config, 'key_columns', m.key_columns,
              'cursor_field', m.cursor_field, 'retention_date_column', m.retention_date_column,
              'max_rejects', m.max_rejects, 'sync_strategy', m.sync_strategy,
              'data_retention_days', m.data_retention_days,
              'shared_with', (SELECT count(*) FROM data_source_mappings o
                              WHERE o.is_active AND o.source_id <> m.source_id
                                AND regexp_replace(o.target_table, '^public\\.', '') = regexp_replace(m.target_table, '^public\\.', ''))
            ) ORDER BY m.id)
            FROM data_source_mappings m WHERE m.source_id = r.id AND m.is_active), '[]')
FROM data_source_registry r WHERE r.source_id = %s
"""


def load_source(db: Database, source_id: str) -> Source | None:
    """One round trip: the source with its connections and active mappings."""
    row = db.fetchone(_LOAD_SQL, (source_id,))
    db.commit()
    if row is None:
        return None
    connections = tuple(SourceConnection(**c) for c in row[8])
    mappings = tuple(SourceMapping(**m) for m in row[9])
    return Source(*row[:8], connections=connections, mappings=mappings)


# ---- picking ----------------------------------------------------------------------------------------
# Due at the tick: next_sync at most this (named parameters tick, tolerance; no tick: now).
_TICK = "COALESCE(%(tick)s::timestamptz, now())"
_DUE_BY = f"({_TICK} + %(tolerance)s::interval)"
# next_sync after a sync at the tick. The schedule moves on in steps of refresh_interval from the
# due time the source was picked for, not from when its sync finished (that drifts later every
# cycle until the source misses a tick), to the first step that is not due at this tick. A source
# that was not due (forced) keeps its schedule; one never synced starts from the tick.
_NEXT_SYNC = f"""CASE WHEN next_sync > {_DUE_BY} THEN next_sync
  ELSE COALESCE(next_sync, {_TICK}) + make_interval(secs => refresh_interval * (1 + floor(
    extract(epoch FROM {_DUE_BY} - COALESCE(next_sync, {_TICK})) / refresh_interval))) END"""
_IS_REALTIME = ("EXISTS (SELECT 1 FROM data_source_mappings m WHERE m.source_id = r.id AND m.is_active "
                "AND m.sync_strategy = 'realtime')")


def pick_sources(db: Database, *, realtime: bool = False, source_ids: list[str] | None = None,
                 limit: int = MAX_SOURCES_PER_RUN, tick: dt.datetime | None = None,
                 tolerance: dt.timedelta = dt.timedelta(0)) -> list[dict[str, Any]]:
    """Sources to run now, in the order their task instances should be queued.

    Scheduled: ``active`` and due at ``tick`` (the run's scheduled time; now when None):
    ``next_sync`` NULL or at most ``tick + tolerance``; by priority (1 first), then the
    longest overdue. ``realtime`` picks the sources with a realtime mapping, the other runner
    the rest, so no source is run by both. Forced (``source_ids``): those sources whatever
    their due time, realtime or not, and also in status ``error`` (how on-call retries one);
    ``inactive`` and ``maintenance`` sources are still left alone.
    """
    columns = "r.source_id, r.name, r.priority, r.status"
    if source_ids:
        rows = db.fetchall(f"SELECT {columns} FROM data_source_registry r WHERE r.source_id = ANY(%s) "
                           "ORDER BY r.priority, r.id", (list(source_ids),))
        db.commit()
        unknown = sorted(set(source_ids) - {r[0] for r in rows})
        if unknown:
            raise ValueError(f"source_ids not in data_source_registry: {unknown}")
        held = [f"{r[0]} ({r[3]})" for r in rows if r[3] in ("inactive", "maintenance")]
        if held:
            log.warning("not running %s: set the status to active first", ", ".join(held))
        rows = [r for r in rows if r[3] not in ("inactive", "maintenance")]
    else:
        rows = db.fetchall(
            f"SELECT {columns} FROM data_source_registry r "
            f"WHERE r.status = 'active' AND (r.next_sync IS NULL OR r.next_sync <= {_DUE_BY}) AND {_IS_REALTIME} = %(realtime)s "
            "ORDER BY r.priority, r.next_sync NULLS FIRST, r.id LIMIT %(limit)s",
            {"tick": tick, "tolerance": tolerance, "realtime": realtime, "limit": int(limit) + 1},
        )
        skipped = db.fetchall("SELECT status, count(*) FROM data_source_registry WHERE status <> 'active' "
                              "GROUP BY status ORDER BY status")
        db.commit()
        if skipped:
            log.info("left alone: %s", ", ".join(f"{n} {s}" for s, n in skipped))
        if len(rows) > limit:
            log.warning("more than %d sources are due; the rest (lowest priority) wait for the next run", limit)
            rows = rows[:limit]
    picked = [{"source_id": r[0], "name": r[1], "priority": r[2]} for r in rows]
    log.info("%d source(s) to sync%s: %s", len(picked), " (forced)" if source_ids else "",
             ", ".join(f"{p['source_id']} (p{p['priority']})" for p in picked[:50]) + (" ..." if len(picked) > 50 else ""))
    return picked


# ---- the registry connection, reused by every task run in the same process --------------------------
_CACHED: dict[str, tuple[str, Database]] = {}


def registry_database(conn_id: str = REGISTRY_CONN_ID) -> Database:
    """A connection to ``conn_id``, kept for the next task this process runs (dag.test and
    the benchmark run many; a real worker process runs one and throws it away)."""
    from airflow.sdk import BaseHook

    connection = BaseHook.get_connection(conn_id)
    uri = connection.get_uri()  # a re-pointed connection id gets a new session
    cached = _CACHED.get(conn_id)
    if cached and cached[0] == uri:
        db = cached[1]
        try:
            db.rollback()
            db.fetchone("SELECT 1")
            db.commit()
            return db
        except Exception:  # the server closed it: open a new one
            db.close()
    elif cached:
        cached[1].close()
    db = connect(conn_id, connection=connection)
    _CACHED[conn_id] = (uri, db)
    return db


def close_cached() -> None:
    for _, db in _CACHED.values():
        db.close()
    _CACHED.clear()


# ---- one source ----------------------------------------------------------------------------------------
@dataclass
class MappingOutcome:
    mapping_id: int | None
    target_table: str | None
    status: str  # success | partial | failed | skipped
    role: str | None = None
    connection: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    note: str | None = None


@dataclass
class Opened:
    connection: SourceConnection
    batches: Iterator[list[dict]]
    failures: list[str]
    reader: Any = None  # the connector's generator: closing it releases its connection, file or process

    def close(self) -> None:
        if hasattr(self.reader, "close"):
            self.reader.close()

    def note(self) -> str | None:
        if not self.failures:
            return None
        return f"served by {self.connection.role} '{self.connection.name}'; " + "; ".join(self.failures)


def open_with_failover(source: Source, batch_size: int, policy: RegistryPolicy) -> Opened:
    """The first connection that delivers its first batch (or cleanly reports an empty source)."""
    candidates = source.candidates()
    if not candidates:
        raise SourceError(f"source {source.source_id} has no active connection")
    failures: list[str] = []
    not_configured = 0
    for conn in candidates:
        try:
            batches = open_source(source.source_type, conn.config, policy=policy, batch_size=batch_size)
            first = next(batches, None)  # lazy connectors only connect here
        except SourceNotConfigured as exc:
            not_configured += 1
            failures.append(f"{conn.role} '{conn.name}' not configured: {exc}")
            continue
        except (SourceError, OSError) as exc:
            failures.append(f"{conn.role} '{conn.name}' failed: {redact(exc)}")
            log.warning("%s: %s connection '%s' failed: %s", source.source_id, conn.role, conn.name, redact(exc))
            continue
        if failures:
            log.warning("%s: served by %s connection '%s'", source.source_id, conn.role, conn.name)
        return Opened(conn, chain([first] if first is not None else [], batches), failures, batches)
    if not_configured == len(candidates):
        raise SourceNotConfigured("; ".join(failures))
    raise SourceError("every connection failed: " + "; ".join(failures))


def sync_name(source: Source, mapping: SourceMapping) -> str:
    # Keyed by what identifies the mapping to a person (and survives re-registration): names the
    # engine's cursor, lock and sync_log rows.
    return f"registry.{source.source_id}.{mapping.target_table}"


class _Feed:
    """Connector batches -> mapped rows (tuples in mapper column order), filtering and counting."""

    def __init__(self, mapper: Mapper, batches: Iterator[list[dict]], *,
                 lower: Any = None, retention_cutoff: Any = None, timings: dict[str, float]):
        self.mapper, self.batches = mapper, batches
        self.lower, self.cutoff = lower, retention_cutoff
        self.cursor_i = mapper.columns.index(mapper.cursor_field) if mapper.cursor_field else None
        self.retention_i = mapper.columns.index(mapper.retention_date_column) if mapper.retention_date_column else None
        self.timings = timings
        self.read = self.behind_cursor = self.expired = 0
        self.rejects: list[Reject] = []  # the engine counts them against max_rejects; we store them (redacted)
        self.top: Any = None

    def rows(self) -> Iterator[tuple]:
        clock = time.perf_counter
        while True:
            t0 = clock()
            try:
                batch = next(self.batches, None)
            except Exception as exc:  # the engine logs what the feed raises: it gets the redacted text only
                raise SourceError(_describe(exc)) from None
            t1 = clock()
            self.timings["read"] += t1 - t0
            if batch is None:
                return
            self.read += len(batch)
            mapped = self.mapper.map_batch(batch)
            out = [tuple(r.values()) for r in mapped.rows]  # rows are built in column order
            if self.cursor_i is not None or self.retention_i is not None:
                out = [r for r in out if self._keep(r)]
            self.timings["map"] += clock() - t1
            self.rejects += mapped.rejects
            yield from out

    def _keep(self, row: tuple) -> bool:
        if self.retention_i is not None and self.cutoff is not None:
            value = row[self.retention_i]
            if value is not None and _before(value, self.cutoff):
                self.expired += 1
                return False
        if self.cursor_i is not None:
            value = row[self.cursor_i]
            if value is not None:
                if self.top is None or _before(self.top, value):
                    self.top = value
                if self.lower is not None and _before(value, self.lower):
                    self.behind_cursor += 1
                    return False
        return True

    @property
    def rejected(self) -> int:
        return len(self.rejects)


def _before(a: Any, b: Any) -> bool:
    try:
        if isinstance(a, dt.datetime) and isinstance(b, dt.datetime) and (a.tzinfo is None) != (b.tzinfo is None):
            a, b = (x if x.tzinfo else x.replace(tzinfo=dt.timezone.utc) for x in (a, b))
        return a < b
    except TypeError:  # a cursor stored with another type (the mapping's cast changed): keep the row
        return False


def _minus_lookback(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value - TIME_LOOKBACK
    return value


def _retention_cutoff(mapper: Mapper, days: int | None, now: dt.datetime) -> Any:
    if not days or not mapper.retention_date_column:
        return None
    cutoff = now - dt.timedelta(days=days)
    return cutoff.date() if mapper.rule(mapper.retention_date_column).cast == "date" else cutoff


def _history_start(db: Database, source: Source, mapping: SourceMapping | None, run_id: str | None) -> int:
    # A 'running' row of this mapping left by a killed worker: we hold the source lock, so it is dead.
    db.execute(
        "UPDATE data_source_sync_history SET sync_status = 'failed', sync_completed_at = greatest(now(), sync_started_at), "
        "error_message = 'abandoned: the run died without finishing (killed worker?)' "
        "WHERE source_id = %s AND mapping_id IS NOT DISTINCT FROM %s AND sync_status = 'running'",
        (source.id, mapping.id if mapping else None),
    ).close()
    (history_id,) = db.fetchone(
        "INSERT INTO data_source_sync_history (source_id, mapping_id, run_id, sync_type, sync_status, sync_started_at) "
        "VALUES (%s, %s, %s, %s, 'running', now()) RETURNING id",
        (source.id, mapping.id if mapping else None, run_id, mapping.sync_strategy if mapping else "full"),
    )
    db.commit()
    return history_id


def _history_finish(db: Database, history_id: int, outcome: MappingOutcome, connection_id: int | None,
                    duration_ms: int) -> None:
    """Part of the caller's transaction (committed with the registry update)."""
    c = outcome.counts
    message = _stored(outcome.error or outcome.note)
    db.execute(
        "UPDATE data_source_sync_history SET sync_status = %s, connection_id = %s, connection_role = %s, "
        "records_processed = %s, records_inserted = %s, records_updated = %s, records_unchanged = %s, "
        "records_deleted = %s, records_rejected = %s, records_duplicate = %s, sync_duration_ms = %s, error_message = %s, "
        "sync_completed_at = greatest(now(), sync_started_at) WHERE id = %s",
        (outcome.status, connection_id, outcome.role, c.get("processed", 0), c.get("inserted", 0), c.get("updated", 0),
         c.get("unchanged", 0), c.get("deleted", 0), c.get("rejected", 0), c.get("duplicate", 0), duration_ms,
         message, history_id),
    ).close()


def _describe(exc: BaseException) -> str:
    # Connector errors name the source; others get their type for context. Redacted whatever
    # raised it: a library's exception may quote a URL, a header or a repr of either.
    text = str(exc).strip() or type(exc).__name__
    if not isinstance(exc, (SourceError, MappingError, SourceSyncFailed)):
        text = f"{type(exc).__name__}: {text}"
    return redact(text)


def _stored(text: str | None) -> str | None:
    """Error text as history and the registry row keep it: redacted, then cut (cutting first
    could leave half a secret that no longer matches)."""
    return redact(text)[:ERROR_TEXT_LIMIT] if text else None


def _sync_mapping(db: Database, source: Source, mapping: SourceMapping, *, run_id: str | None, batch_size: int,
                  conn_id: str, timings: dict[str, float],
                  policy: RegistryPolicy | PolicyInvalid) -> tuple[MappingOutcome, int | None, int]:
    """Sync one mapping; never raises for a source problem (the outcome says what happened)."""
    started = time.perf_counter()
    outcome = MappingOutcome(mapping.id, mapping.target_table, "failed")
    opened: Opened | None = None
    feed: _Feed | None = None
    name = sync_name(source, mapping)
    try:
        if isinstance(policy, PolicyInvalid):  # nothing is touched until the platform team fixes it
            raise policy
        t = time.perf_counter()
        mapper = compile_mapping(mapping.config, target_table=mapping.target_table, key_columns=mapping.key_columns,
                                 cursor_field=mapping.cursor_field, retention_date_column=mapping.retention_date_column)
        full = mapping.sync_strategy == "full"
        if full and mapping.shared_with:
            raise MappingError(
                f"mapping {mapping.id}: a full sync deletes rows its source no longer has, but {mapping.target_table} "
                f"is also filled by {mapping.shared_with} other source(s); use incremental or a table of its own"
            )
        ensure_target_table(db, mapper)  # creates it from the mapping; an existing table must match
        pos = Position() if full else state.read_cursor(db, name)
        timings["target"] += time.perf_counter() - t

        t = time.perf_counter()
        opened = open_with_failover(source, batch_size, policy)
        timings["read"] += time.perf_counter() - t
        outcome.role, outcome.connection = opened.connection.role, opened.connection.name

        spec = SyncSpec(
            name=name, target_table=mapper.target_table, key=list(mapper.key_columns), columns=mapper.columns,
            # incremental: no engine cursor; ours moves after the whole read committed (below),
            # because file and API rows do not arrive in cursor order
            cursor_column=mapper.cursor_field if full else None,
            mode="full" if full else "upsert",
            batch_size=batch_size, max_rejects=mapping.max_rejects, delete_missing=True,
            lock_wait_seconds=SOURCE_LOCK_WAIT_SECONDS,
        )
        feed = _Feed(mapper, opened.batches, lower=None if full else _minus_lookback(pos.value),
                     retention_cutoff=_retention_cutoff(mapper, mapping.data_retention_days,
                                                        dt.datetime.now(dt.timezone.utc)),
                     timings=timings)
        inside = timings["read"] + timings["map"]
        t = time.perf_counter()
        result = run_sync(spec, RowsSource(feed.rows(), mapper.columns, name=f"{source.source_type} source "
                                           f"{source.source_id} via {opened.connection.role} '{opened.connection.name}'",
                                           rejects=feed.rejects),
                          conn_id, run_id=run_id, target=db)
        # the feed reads and maps inside run_sync: what is left is the engine's writing
        timings["write"] += time.perf_counter() - t - (timings["read"] + timings["map"] - inside)

        t = time.perf_counter()
        if not full and feed.top is not None and (pos.value is None or _before(pos.value, feed.top)):
            counts = result.counts
            state.write_cursor(db, name, Position(feed.top, None, pos.rows_synced + counts.inserted + counts.updated))
            db.commit()
        purged = _purge(db, mapper, feed.cutoff)
        timings["purge"] += time.perf_counter() - t

        c = result.counts
        outcome.counts = {"processed": feed.read, "inserted": c.inserted, "updated": c.updated,
                          "unchanged": c.unchanged, "deleted": c.deleted + purged, "rejected": c.rejected + feed.rejected,
                          "duplicate": c.duplicates}
        outcome.status = "partial" if outcome.counts["rejected"] else "success"
        notes = [n for n in (
            opened.note(),
            f"{feed.behind_cursor} record(s) behind the cursor skipped" if feed.behind_cursor else None,
            f"{feed.expired} record(s) older than {mapping.data_retention_days} days skipped" if feed.expired else None,
            f"{purged} expired row(s) purged" if purged else None,
            "rows missing from the source were not deleted (unmappable rows)" if result.details.get("kept_missing") else None,
        ) if n]
        outcome.note = "; ".join(notes) or None
        log.info("%s -> %s [%s via %s '%s']: %d record(s) from the source; rows: %s%s", source.source_id, mapper.target_table,
                 mapping.sync_strategy, opened.connection.role, opened.connection.name, feed.read, c.sentence(),
                 f"; {outcome.note}" if outcome.note else "")
    except SourceNotConfigured as exc:
        db.rollback()
        outcome.status, outcome.note = "skipped", _describe(exc)
    except Exception as exc:
        db.rollback()
        outcome.error = _describe(exc)
        if opened is not None and opened.note():
            outcome.error += f" ({opened.note()})"
        if feed is not None:
            outcome.counts = {"processed": feed.read, "rejected": feed.rejected}
        log.error("%s -> %s failed: %s", source.source_id, mapping.target_table, redact(outcome.error))
    if opened is not None:
        opened.close()  # a source that failed half-way may still hold a server-side cursor
    if feed is not None and feed.rejects:
        _keep_rejects(db, name, run_id, feed.rejects)
    return outcome, opened.connection.id if opened else None, int((time.perf_counter() - started) * 1000)


def _keep_rejects(db: Database, name: str, run_id: str | None, rejects: list[Reject]) -> None:
    rejects = [replace(r, key=redact_value(r.key), value=redact_value(r.value), reason=redact(r.reason),
                       row=redact_value(r.row)) for r in rejects]
    try:
        state.write_rejects(db, name, run_id, rejects)
        db.commit()
    except Exception:  # diagnosis only: never let it hide the sync's own outcome
        db.rollback()
        log.exception("%s: could not store %d rejected row(s)", name, len(rejects))


def _purge(db: Database, mapper: Mapper, cutoff: Any) -> int:
    if cutoff is None:
        return 0
    table = ".".join(db.quote(p) for p in mapper.target_table.split("."))
    cur = db.execute(f"DELETE FROM {table} WHERE {db.quote(mapper.retention_date_column)} < %s", (cutoff,))
    purged = cur.rowcount
    cur.close()
    db.commit()
    return purged


@dataclass
class RegistryUpdate:
    error_count: int
    status: str
    entered_error: bool


def _record_outcome(db: Database, source: Source, error: str | None, *, final_attempt: bool,
                    threshold: int, skipped: bool = False, tick: dt.datetime | None = None,
                    tolerance: dt.timedelta = dt.timedelta(0)) -> RegistryUpdate:
    """Part of the caller's transaction."""
    at = {"id": source.id, "tick": tick, "tolerance": tolerance}
    if skipped:  # not configured in this deployment: nothing synced, nothing failed; look again later
        row = db.fetchone(f"UPDATE data_source_registry SET next_sync = {_NEXT_SYNC} "
                          "WHERE id = %(id)s RETURNING error_count, status", at)
    elif error is None:
        row = db.fetchone(
            f"UPDATE data_source_registry SET last_sync = now(), next_sync = {_NEXT_SYNC}, "
            "error_count = 0, last_error = NULL, status = CASE WHEN status = 'error' THEN 'active' ELSE status END "
            "WHERE id = %(id)s RETURNING error_count, status", at)
    elif final_attempt:
        row = db.fetchone(
            f"UPDATE data_source_registry SET error_count = error_count + 1, last_error = %(error)s, "
            f"next_sync = {_NEXT_SYNC}, "
            "status = CASE WHEN status = 'active' AND error_count + 1 >= %(threshold)s THEN 'error' ELSE status END "
            "WHERE id = %(id)s RETURNING error_count, status", {**at, "error": _stored(error), "threshold": threshold})
    else:  # Airflow retries this attempt: only the last one of a run counts as a failed sync
        row = db.fetchone("UPDATE data_source_registry SET last_error = %s WHERE id = %s RETURNING error_count, status",
                          (_stored(error), source.id))
    if row is None:
        raise SourceGone(f"source {source.source_id} was deleted while it ran")
    return RegistryUpdate(row[0], row[1], row[1] == "error" and source.status != "error")


def load_policy() -> RegistryPolicy | PolicyInvalid:
    """The registry policy for this task, read once; a malformed one is returned, not raised, so
    every source of the task fails with it in its history and on its registry row."""
    try:
        return RegistryPolicy.load()
    except PolicyInvalid as exc:
        log.error("registry policy unusable, every source is refused: %s", exc)
        return exc


def run_source(source_id: str, *, run_id: str | None = None, conn_id: str = REGISTRY_CONN_ID,
               error_threshold: int | Callable[[], int] = DEFAULT_ERROR_THRESHOLD, final_attempt: bool = True,
               batch_size: int = DEFAULT_BATCH_SIZE, context: Mapping[str, Any] | None = None,
               tick: dt.datetime | None = None, tolerance: dt.timedelta = dt.timedelta(0)) -> dict[str, Any]:
    """Sync one source (every active mapping). Returns a summary (safe for XCom: counts and names,
    never configuration); raises :class:`SourceSyncFailed` when any mapping failed.

    ``tick`` is the scheduled time of the run (now when None) and ``tolerance`` how early a due
    time still counts as due at it: the next due time is set from them (see ``_NEXT_SYNC``).

    ``error_threshold`` may be a callable: it is only asked when a failure is counted (looking up
    an Airflow Variable costs a round trip to the API server that a successful sync can skip)."""
    started = time.perf_counter()
    timings: dict[str, float] = defaultdict(float)
    policy = load_policy()
    db = registry_database(conn_id)
    timings["connect"] += time.perf_counter() - started
    t = time.perf_counter()
    try:
        with named_lock(db, f"datasync:registry:{source_id}", SOURCE_LOCK_WAIT_SECONDS):
            source = load_source(db, source_id)
            if source is None:
                raise SourceGone(f"source {source_id} is no longer in data_source_registry")
            timings["registry"] += time.perf_counter() - t
            results: list[tuple[MappingOutcome, int, int | None, int]] = []
            mappings: list[SourceMapping | None] = list(source.mappings) or [None]
            for mapping in mappings:
                t = time.perf_counter()
                history_id = _history_start(db, source, mapping, run_id)
                timings["registry"] += time.perf_counter() - t
                if mapping is None:
                    outcome = MappingOutcome(None, None, "failed", error=f"source {source_id} has no active mapping")
                    results.append((outcome, history_id, None, 0))
                    continue
                outcome, connection_id, ms = _sync_mapping(db, source, mapping, run_id=run_id, batch_size=batch_size,
                                                           conn_id=conn_id, timings=timings, policy=policy)
                results.append((outcome, history_id, connection_id, ms))

            t = time.perf_counter()
            failed = [o for o, *_ in results if o.status == "failed"]
            skipped = all(o.status == "skipped" for o, *_ in results)
            error = "; ".join(f"{o.target_table or 'source'}: {o.error}" for o in failed) or None
            for outcome, history_id, connection_id, ms in results:
                if outcome.status == "skipped":
                    db.execute("DELETE FROM data_source_sync_history WHERE id = %s", (history_id,)).close()
                else:
                    _history_finish(db, history_id, outcome, connection_id, ms)
            threshold = error_threshold() if callable(error_threshold) and error and final_attempt else error_threshold
            update = _record_outcome(db, source, error, final_attempt=final_attempt,
                                     threshold=threshold if isinstance(threshold, int) else DEFAULT_ERROR_THRESHOLD,
                                     skipped=skipped, tick=tick, tolerance=tolerance)
            db.commit()  # history and registry land together
            timings["registry"] += time.perf_counter() - t
    except LockTimeout as exc:
        raise SourceSyncFailed(redact(f"{source_id}: {exc}")) from None
    finally:
        db.rollback()

    if update.entered_error:
        _alert(source, update, error, run_id, context)
    for k, v in timings.items():
        STATS[k] += v
    STATS["sources"] += 1
    STATS["total"] += time.perf_counter() - started
    summary = {
        "source_id": source.source_id, "name": source.name,
        "status": "skipped" if skipped else ("failed" if failed else ("partial" if any(o.status == "partial" for o, *_ in results) else "success")),
        "mappings": [{"target_table": o.target_table, "status": o.status, "connection_role": o.role,
                      "connection": o.connection, **o.counts} for o, *_ in results],
        "error_count": update.error_count, "registry_status": update.status,
        "duration_ms": int((time.perf_counter() - started) * 1000),
    }
    if failed:
        raise SourceSyncFailed(redact(f"source {source.source_id} ({source.name}) failed "
                                      f"[{update.error_count} consecutive, status {update.status}]: {error}"))
    if skipped:
        summary["note"] = "; ".join(o.note or "" for o, *_ in results)
    return redact_value(summary)  # XCom


def _alert(source: Source, update: RegistryUpdate, error: str | None, run_id: str | None,
           context: Mapping[str, Any] | None) -> None:
    from datasync.registry.notify import RegistryAlertNotifier

    notifier = RegistryAlertNotifier(
        subject=f"source {source.source_id} ({source.name}) is now in status error",
        message=(f"{update.error_count} consecutive failed syncs; it is skipped until its status is set back to "
                 f"'active' (or it is forced with source_ids). Last error: {error}"),
        details={"source_id": source.source_id, "name": source.name, "error_count": update.error_count,
                 "run_id": run_id, "last_error": error},
    )
    try:
        notifier(dict(context or {}))
    except Exception:  # the notifier logged it; the source's own failure is what the task reports
        pass


# ---- the Airflow side -------------------------------------------------------------------------------------
def error_threshold(param: Any) -> int:
    """The DAG param wins; else the Airflow Variable ``registry_error_threshold``; else 3."""
    if param not in (None, ""):
        return max(1, int(param))
    from airflow.sdk import Variable

    try:
        return max(1, int(Variable.get(ERROR_THRESHOLD_VARIABLE, default=DEFAULT_ERROR_THRESHOLD)))
    except (TypeError, ValueError):
        log.warning("Variable %s is not a whole number; using %d", ERROR_THRESHOLD_VARIABLE, DEFAULT_ERROR_THRESHOLD)
        return DEFAULT_ERROR_THRESHOLD


def scheduled_time(context: Mapping[str, Any]) -> dt.datetime | None:
    """The run's scheduled time (its tick): the end of its data interval (a cron tick's own time),
    else its logical date, else when it was set to run (a run triggered without a logical date)."""
    dag_run = context.get("dag_run")
    for value in (context.get("data_interval_end"), context.get("logical_date"), getattr(dag_run, "run_after", None)):
        if value is not None:
            return dt.datetime.fromtimestamp(value.timestamp(), dt.timezone.utc)
    return None


def pick_task(*, realtime: bool, context: Mapping[str, Any], tolerance: dt.timedelta) -> list[dict[str, Any]]:
    params = context.get("params") or {}
    return pick_sources(registry_database(), realtime=realtime, source_ids=list(params.get("source_ids") or []),
                        limit=int(params.get("max_sources") or MAX_SOURCES_PER_RUN),
                        tick=scheduled_time(context), tolerance=tolerance)


def sync_task(source: Mapping[str, Any], context: Mapping[str, Any], tolerance: dt.timedelta) -> dict[str, Any]:
    """One mapped task instance: its source, its bookkeeping, its own success or failure."""
    from airflow.sdk.exceptions import AirflowSkipException

    params = context.get("params") or {}
    ti = context["ti"]
    try:
        summary = run_source(
            source["source_id"], run_id=context.get("run_id"),
            error_threshold=lambda: error_threshold(params.get("error_threshold")),
            # retries of this task instance are one sync run; only its last attempt counts as a failure
            final_attempt=ti.try_number > ti.max_tries,
            batch_size=int(params.get("batch_size") or DEFAULT_BATCH_SIZE),
            context=context, tick=scheduled_time(context), tolerance=tolerance,
        )
    except SourceGone as exc:
        raise AirflowSkipException(str(exc)) from None
    if summary["status"] == "skipped":
        raise AirflowSkipException(f"{source['source_id']}: not configured here ({summary.get('note')})")
    return summary
