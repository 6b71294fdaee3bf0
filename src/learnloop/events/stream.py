"""Live events: LISTEN/NOTIFY wakes readers, the outbox cursor decides what they get.

A statement-level trigger sends ``NOTIFY learnloop_events, '<tenant id>'`` when events are
inserted, while at least one reader is registered in ``learnloop.stream_listeners`` (readers
register and heartbeat every ``HEARTBEAT`` seconds, which also sets the sequence
``learnloop.stream_listeners_until`` the trigger reads; writers pay ~10 us, not a NOTIFY,
when nobody listens). A notification is only a wake-up: readers then read stable events after their
position (:mod:`.cursor`), so a lost or early notification cannot cause a gap or a
duplicate. Readers also re-check every ``poll`` seconds, because an event becomes stable
when *another* transaction ends, which sends no notification.

* :func:`subscribe` — a blocking iterator for library users (one LISTEN connection each).
* :class:`Hub` — one LISTEN connection per server process, fanning wake-ups out to any
  number of asyncio subscribers (the WebSocket endpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ..store.database import Conn, Database
from . import cursor

log = logging.getLogger(__name__)

CHANNEL = "learnloop_events"
HEARTBEAT = 15.0  # seconds; the trigger treats a listener older than 60 s as gone


# Registrations are serialised so the gate each one recomputes counts every other's row
# (setval is not transactional: without the lock, a reader leaving could overwrite the
# value a reader arriving had just set, leaving it unnotified until its next heartbeat).
_GATE_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('learnloop.stream_listeners', 0))"


def register(db: Database, listener: UUID, tenant_ids: Sequence[UUID]) -> None:
    """Record (or refresh) this reader's tenants, forget its other ones, open the gate."""
    with db.transaction() as conn:
        conn.execute(_GATE_LOCK)
        conn.execute("DELETE FROM learnloop.stream_listeners WHERE listener = %s AND NOT tenant_id = ANY(%s)",
                     (listener, list(tenant_ids)))
        for t in tenant_ids:
            conn.execute(
                "INSERT INTO learnloop.stream_listeners (tenant_id, listener) VALUES (%s, %s)"
                " ON CONFLICT (tenant_id, listener) DO UPDATE SET seen_at = EXCLUDED.seen_at",
                (t, listener),
            )
        conn.execute("SELECT learnloop.sync_stream_listeners()")


def unregister(db: Database, listener: UUID) -> None:
    with contextlib.suppress(Exception), db.transaction() as conn:
        conn.execute(_GATE_LOCK)
        conn.execute("DELETE FROM learnloop.stream_listeners WHERE listener = %s", (listener,))
        conn.execute("SELECT learnloop.sync_stream_listeners()")


def subscribe(
    db: Database,
    tenant_id: UUID,
    *,
    after: cursor.Position | None = None,
    entity_types: Sequence[str] = (),
    event_types: Sequence[str] = (),
    poll: float = 1.0,
    timeout: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the tenant's events after ``after`` (default: from now on), forever or until
    ``timeout`` seconds pass without a new event. Each event carries its ``position``."""
    me = uuid4()
    with psycopg.connect(db.url, autocommit=True, row_factory=dict_row) as listen:
        listen.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        # The tail before registering: whatever is written meanwhile comes after it, and the
        # first read below does not wait for a notification.
        with db.connection() as conn:
            pos = after if after is not None else _tail(conn, tenant_id)
        register(db, me, [tenant_id])
        beat = time.monotonic()
        idle_since = time.monotonic()
        try:
            yield from _follow(db, listen, tenant_id, pos, idle_since, beat, me,
                               entity_types, event_types, poll, timeout)
        finally:
            unregister(db, me)


def _follow(db: Database, listen: Conn, tenant_id: UUID, pos: cursor.Position,
            idle_since: float, beat: float, me: UUID, entity_types: Sequence[str],
            event_types: Sequence[str], poll: float, timeout: float | None) -> Iterator[dict[str, Any]]:
    while True:
        if time.monotonic() - beat > HEARTBEAT:
            register(db, me, [tenant_id])
            beat = time.monotonic()
        with db.connection() as conn:
            rows, pos = cursor.stable_events(conn, pos, tenant_id=tenant_id,
                                             entity_types=entity_types, event_types=event_types)
        for r in rows:
            r["position"] = cursor.Position(r["txid"], r["id"])
            yield r
        if rows:
            idle_since = time.monotonic()
            continue
        if timeout is not None and time.monotonic() - idle_since >= timeout:
            return
        wait = poll if timeout is None else min(poll, max(0.01, timeout - (time.monotonic() - idle_since)))
        for _ in listen.notifies(timeout=wait, stop_after=1):
            pass


def _tail(conn: Conn, tenant_id: UUID) -> cursor.Position:
    """The position after the tenant's newest stable event ("from now on")."""
    # The horizon as a value, computed on the coordinator (see cursor.stable_events).
    row = conn.execute(
        "SELECT txid::text::bigint AS txid, id FROM learnloop.events WHERE tenant_id = %s"
        " AND txid < %s::text::xid8 ORDER BY txid DESC, id DESC LIMIT 1",
        (tenant_id, str(cursor.horizon(conn))),
    ).fetchone()
    return cursor.Position(row["txid"], row["id"]) if row else cursor.Position.start()


def tail(db: Database, tenant_id: UUID) -> cursor.Position:
    with db.connection() as conn:
        return _tail(conn, tenant_id)


class Hub:
    """One listener thread per process; wakes the asyncio waiters of the notified tenant."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._waiters: dict[UUID, set[asyncio.Event]] = defaultdict(set)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._id = uuid4()
        self._registered: tuple[UUID, ...] = ()
        self._synced_at = 0.0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="learnloop-events-hub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        unregister(self.db, self._id)

    def _sync_registration(self) -> None:
        """Keep stream_listeners equal to the tenants that have waiters, with a heartbeat."""
        with self._lock:
            tenants = tuple(sorted((t for t, es in self._waiters.items() if es), key=str))
        if tenants != self._registered or time.monotonic() - self._synced_at > HEARTBEAT:
            try:
                register(self.db, self._id, tenants)
            except Exception as exc:  # noqa: BLE001 - a missed heartbeat only delays readers
                log.warning("could not register the event listener (%s)", exc)
                return
            self._registered, self._synced_at = tenants, time.monotonic()

    @contextlib.contextmanager
    def waiter(self, tenant_id: UUID) -> Iterator[asyncio.Event]:
        ev = asyncio.Event()
        with self._lock:
            self._waiters[tenant_id].add(ev)
        try:
            yield ev
        finally:
            with self._lock:
                self._waiters[tenant_id].discard(ev)

    def _wake(self, tenant_id: UUID | None) -> None:
        with self._lock:
            targets = [e for t, es in self._waiters.items() if tenant_id in (None, t) for e in es]
        if targets and self._loop is not None:

            def wake() -> None:
                for e in targets:
                    e.set()

            self._loop.call_soon_threadsafe(wake)

    def _run(self) -> None:
        # Reconnects after a database restart; wakes everyone then, since notifications
        # sent while we were away are lost (readers catch up from their cursor).
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.db.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
                    self._wake(None)
                    while not self._stop.is_set():
                        self._sync_registration()
                        for n in conn.notifies(timeout=0.5):
                            try:
                                self._wake(UUID(n.payload))
                            except ValueError:
                                continue
            except psycopg.Error as exc:
                log.warning("event listener lost its connection (%s); retrying", exc)
                self._stop.wait(1.0)
