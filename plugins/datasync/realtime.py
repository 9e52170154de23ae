"""Real-time sync: Postgres change notifications start the DAGs that read the changed tables.

The source database announces changes itself: statement-level triggers call
``pg_notify('datasync_changes', '<schema>.<table>')`` (one notification per statement, however many
rows; Postgres folds identical notifications of one transaction into one). Installing them is
opt-in: ``SELECT datasync_realtime(true)`` on ``lifecycle_db`` (migration ``lifecycle/002``), or
``python -m datasync realtime enable CONN_ID TABLE ...`` on a registry ``database`` source.

:class:`PostgresChangeTrigger` runs in Airflow's triggerer behind an ``AssetWatcher``: it LISTENs,
folds a burst into one event (after ``quiet_seconds`` without a change, or at the latest
``max_delay_seconds`` after the first one under constant change) and each event becomes an asset
event that starts the DAG scheduled on the asset. The DAGs still read from their cursors, so an
event only says "look now": a lost one costs latency (the DAG's timed schedule catches up), never
rows. After every (re)connection the trigger fires once, because changes committed while nobody
listened were never announced.

One connection per watched database and channel: every trigger on the same ``(conn_id, channel)``
shares one LISTEN through the triggerer's shared streams (``shared_stream_key``) and filters the
notifications for its own tables. The serialized trigger holds the connection id, never a DSN.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from datasync.db import POSTGRES

log = logging.getLogger(__name__)

CHANNEL = "datasync_changes"
CONNECTED = "*"  # the stream's marker for "(re)connected: anything may have changed meanwhile"
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0  # seconds between reconnection attempts (doubling, jittered)
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TABLE = re.compile(r"^([a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$")

# The functions every watched Postgres database gets (the same text as migration lifecycle/002).
FUNCTIONS_SQL = """\
CREATE OR REPLACE FUNCTION datasync_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION datasync_watch(tbl regclass, enabled boolean DEFAULT true,
                                          channel text DEFAULT 'datasync_changes') RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    trigger_name text := 'datasync_notify_' || (SELECT relname FROM pg_class WHERE oid = tbl);
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', trigger_name, tbl);
    IF enabled THEN
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION datasync_notify_change(%L)', trigger_name, tbl, channel);
    END IF;
END;
$$;
"""


def watch(db, tables: Iterable[str], *, enabled: bool = True, channel: str = CHANNEL) -> list[str]:
    """Install (or with ``enabled=False`` remove) the change triggers on ``tables`` of a Postgres
    :class:`datasync.db.Database`; commits. Returns the tables, as ``schema.table``."""
    if db.dialect.family != POSTGRES:
        raise ValueError(f"connection '{db.conn_id}': change notifications need Postgres; "
                         f"{db.dialect.name} sources stay on the polling schedule")
    if not _NAME.match(channel):
        raise ValueError(f"channel {channel!r}: lower-case letters, digits and _ only")
    done = []
    with db.conn.cursor() as cur:
        cur.execute(FUNCTIONS_SQL)
        for table in tables:
            cur.execute("SELECT %s::regclass::text, datasync_watch(%s::regclass, %s, %s)", (table, table, enabled, channel))
            done.append(cur.fetchone()[0])
    db.commit()
    return done


def _check(conn_id: str, channel: str, tables: Iterable[str]) -> None:
    if not conn_id or not isinstance(conn_id, str):
        raise ValueError("conn_id: an Airflow connection id is required")
    if not _NAME.match(channel):
        raise ValueError(f"channel {channel!r}: lower-case letters, digits and _ only (at most 63)")
    for table in tables:
        if not _TABLE.match(table):
            raise ValueError(f"table {table!r}: give 'table' or 'schema.table' in lower case")


async def _conninfo(conn_id: str) -> str:
    """libpq connection string for an Airflow connection, with TCP keepalives: a LISTEN connection
    sits idle for hours and must notice a server that went away."""
    from psycopg.conninfo import make_conninfo

    from airflow.sdk import BaseHook

    conn = await BaseHook.aget_connection(conn_id)
    extra = {k: v for k, v in (conn.extra_dejson or {}).items() if k in ("sslmode", "sslrootcert", "sslcert", "sslkey")}
    return make_conninfo(host=conn.host or "", port=conn.port or 5432, dbname=conn.schema or "", user=conn.login or "",
                         password=conn.password or "", application_name="datasync-realtime", connect_timeout=10,
                         keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3, **extra)


def _why(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


async def listen(conn_id: str, channel: str = CHANNEL) -> AsyncIterator[str]:
    """Yield each notification's payload on ``channel`` forever; :data:`CONNECTED` after every
    (re)connection. A lost connection is retried with jittered exponential backoff."""
    import psycopg
    from psycopg import sql

    failures = 0
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(await _conninfo(conn_id), autocommit=True)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            failures += 1
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
            log.warning("realtime: cannot reach '%s' (%s); retrying in %.1fs", conn_id, _why(exc), delay)
            await asyncio.sleep(delay)
            continue
        try:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            log.info("realtime: listening on '%s' channel %s", conn_id, channel)
            failures = 0
            yield CONNECTED
            async for note in conn.notifies():
                yield note.payload
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            log.warning("realtime: lost '%s' (%s); reconnecting", conn_id, _why(exc))
            await asyncio.sleep(BACKOFF_FIRST * random.uniform(0.5, 1.0))
        finally:
            await conn.close()


def _wants(tables: Iterable[str]) -> Callable[[str], bool]:
    """Does a payload (``schema.table`` or :data:`CONNECTED`) concern ``tables``? A bare name
    matches that table in any schema; no tables: everything."""
    qualified = {t for t in tables if "." in t}
    bare = {t for t in tables if "." not in t}

    def wants(payload: str) -> bool:
        if payload == CONNECTED or not (qualified or bare):
            return True
        return payload in qualified or payload.rsplit(".", 1)[-1] in bare

    return wants


async def coalesce(payloads: AsyncIterator[str], wants: Callable[[str], bool], *, quiet: float,
                   max_delay: float) -> AsyncIterator[dict[str, Any]]:
    """One summary per burst of wanted payloads: after ``quiet`` seconds without one, or
    ``max_delay`` seconds after the burst's first. Unwanted payloads neither start nor extend a burst."""
    queue: asyncio.Queue = asyncio.Queue()
    ended = object()

    async def pump() -> None:
        try:
            async for payload in payloads:
                if wants(payload):
                    queue.put_nowait(payload)
        except Exception as exc:
            queue.put_nowait((ended, exc))
            return
        queue.put_nowait((ended, RuntimeError("the notification stream ended")))

    def check(item: Any) -> str:
        if isinstance(item, tuple) and item[0] is ended:
            raise item[1]
        return item

    loop = asyncio.get_running_loop()
    pumping = asyncio.create_task(pump())
    try:
        while True:
            burst = [check(await queue.get())]
            deadline = loop.time() + max_delay
            while (wait := min(quiet, deadline - loop.time())) > 0:
                try:
                    burst.append(check(await asyncio.wait_for(queue.get(), wait)))
                except TimeoutError:
                    break
            yield {"tables": sorted(set(burst) - {CONNECTED}), "notifications": len(burst),
                   "reconnected": CONNECTED in burst}
    finally:
        pumping.cancel()
        await asyncio.gather(pumping, return_exceptions=True)


class PostgresChangeTrigger(BaseEventTrigger):
    """Fires when ``tables`` (``table`` or ``schema.table``; none: any) of the Postgres database
    behind ``conn_id`` change, as announced on ``channel``. See the module docstring."""

    def __init__(self, *, conn_id: str, tables: list[str] | None = None, channel: str = CHANNEL,
                 quiet_seconds: float = 1.0, max_delay_seconds: float = 5.0):
        super().__init__()
        self.tables = sorted(tables or [])
        _check(conn_id, channel, self.tables)
        if not 0 < quiet_seconds <= max_delay_seconds:
            raise ValueError("need 0 < quiet_seconds <= max_delay_seconds")
        self.conn_id, self.channel = conn_id, channel
        self.quiet_seconds, self.max_delay_seconds = float(quiet_seconds), float(max_delay_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("datasync.realtime.PostgresChangeTrigger",
                {"conn_id": self.conn_id, "tables": self.tables, "channel": self.channel,
                 "quiet_seconds": self.quiet_seconds, "max_delay_seconds": self.max_delay_seconds})

    # One LISTEN per (database, channel), however many watchers.
    def shared_stream_key(self) -> Hashable | None:
        return ("datasync.realtime", self.conn_id, self.channel)

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        async for payload in listen(kwargs["conn_id"], kwargs.get("channel", CHANNEL)):
            yield payload

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for burst in coalesce(shared_stream, _wants(self.tables), quiet=self.quiet_seconds,
                                    max_delay=self.max_delay_seconds):
            yield TriggerEvent({"conn_id": self.conn_id, "channel": self.channel, **burst})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for event in self.filter_shared_stream(self.open_shared_stream(self.serialize()[1])):
            yield event


def changes_asset(conn_id: str, tables: Iterable[str] = (), *, name: str | None = None, **trigger_kwargs: Any):
    """An asset that receives an event whenever ``tables`` of ``conn_id`` change (any table when
    none are given), watched by a :class:`PostgresChangeTrigger`."""
    from airflow.sdk import Asset, AssetWatcher

    name = name or f"{conn_id}_changes"
    trigger = PostgresChangeTrigger(conn_id=conn_id, tables=list(tables), **trigger_kwargs)
    # No URI: a scheme makes Airflow load every provider to normalise it (seconds per DAG parse).
    return Asset(name=name, group="realtime",
                 watchers=[AssetWatcher(name=f"{name}_watcher", trigger=trigger)])


def on_change_or_cron(cron: str, assets: list) -> Any:
    """``cron`` (UTC) or an event of *any* of ``assets``, whichever comes first; the cron alone
    without assets. (A plain list would mean all of them, Airflow's default.)"""
    from airflow.sdk import AssetAny, AssetOrTimeSchedule, CronTriggerTimetable

    if not assets:
        return cron
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=AssetAny(*assets))
