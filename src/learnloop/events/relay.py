"""Relay outbox events to RabbitMQ: a topic exchange, routing key = event type.

At-least-once: events are read in cursor order (:mod:`.cursor`), published persistent
with publisher confirms, and the relay position in ``relay_state`` moves only after the
broker has confirmed every message up to it. If the broker goes away (restart, network),
the relay reconnects and republishes from the last confirmed position; consumers may see
a message twice (``message_id`` is ``<tenant id>:<event id>`` to deduplicate) but never
miss one.

Message body: the event as JSON (tenant_id, id, project_id, entity_type, entity_id,
event_type, payload, actor, created_at). Headers carry tenant and entity type.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pika
import pika.exceptions

from ..errors import InvalidInput, ProviderError
from ..store.database import Database
from . import cursor

log = logging.getLogger(__name__)

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_EXCHANGE = "learnloop.events"
_WORD = re.compile(r"[^A-Za-z0-9_-]+")

# Broker trouble that a reconnect can cure.
RETRYABLE = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    pika.exceptions.ConnectionClosedByBroker,
    pika.exceptions.UnroutableError,
    pika.exceptions.NackError,
    ConnectionError,
    OSError,
)


def routing_key(event_type: str) -> str:
    """``generation.logged`` stays as is; anything a topic key cannot hold becomes ``_``."""
    words = [(_WORD.sub("_", w) or "_") for w in event_type.split(".")]
    return ".".join(words)[:255]


def message(ev: dict[str, Any]) -> bytes:
    def default(o: Any) -> Any:
        if isinstance(o, datetime):
            return o.isoformat()
        return str(o)

    body = {k: ev[k] for k in ("tenant_id", "id", "project_id", "entity_type", "entity_id",
                                "event_type", "payload", "actor", "created_at")}
    return json.dumps(body, default=default, ensure_ascii=False).encode()


class Relay:
    def __init__(self, db: Database, *, url: str = DEFAULT_URL, exchange: str = DEFAULT_EXCHANGE,
                 name: str = "rabbitmq", batch: int = 500) -> None:
        if not exchange or len(exchange) > 255:
            raise InvalidInput("exchange must be 1 to 255 characters", field="exchange")
        self.db = db
        self.url = url
        self.exchange = exchange
        self.name = name
        self.batch = batch
        self._conn: pika.BlockingConnection | None = None
        self._ch: Any = None

    # -- broker ---------------------------------------------------------------------------
    def _channel(self) -> Any:
        if self._ch is None or not self._ch.is_open:
            self.close()
            params = pika.URLParameters(self.url)
            params.connection_attempts = 1
            params.socket_timeout = 5
            params.blocked_connection_timeout = 30
            self._conn = pika.BlockingConnection(params)
            ch = self._conn.channel()
            ch.confirm_delivery()
            ch.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            self._ch = ch
        return self._ch

    def close(self) -> None:
        conn, self._conn, self._ch = self._conn, None, None
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a dead connection may fail in many ways
                pass

    # -- position -------------------------------------------------------------------------
    def position(self) -> cursor.Position:
        with self.db.connection() as conn:
            conn.execute("INSERT INTO learnloop.relay_state (name) VALUES (%s) ON CONFLICT DO NOTHING", (self.name,))
            row = conn.execute(
                "SELECT last_txid::text::bigint AS t, last_id FROM learnloop.relay_state WHERE name = %s",
                (self.name,),
            ).fetchone()
        assert row is not None
        return cursor.Position(int(row["t"]), int(row["last_id"]))

    def _advance(self, pos: cursor.Position, n: int) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "UPDATE learnloop.relay_state SET last_txid = %s::text::xid8, last_id = %s,"
                " published = published + %s, updated_at = now() WHERE name = %s",
                (str(pos.txid), pos.id, n, self.name),
            )

    # -- relaying -------------------------------------------------------------------------
    def run_once(self) -> int:
        """Publish every stable event after the position; returns how many were confirmed.
        Raises a retryable pika/OS error if the broker fails midway (position kept)."""
        total = 0
        pos = self.position()
        while True:
            with self.db.connection() as conn:
                rows, nxt = cursor.stable_events(conn, pos, limit=self.batch)
            if nxt == pos:
                return total
            if rows:
                ch = self._channel()
                for ev in rows:
                    # With confirms on, basic_publish returns once the broker acked
                    # (persisted) the message, and raises on a nack.
                    ch.basic_publish(
                        self.exchange,
                        routing_key(ev["event_type"]),
                        message(ev),
                        pika.BasicProperties(
                            content_type="application/json",
                            delivery_mode=pika.DeliveryMode.Persistent,
                            message_id=f"{ev['tenant_id']}:{ev['id']}",
                            type=ev["event_type"],
                            headers={"tenant_id": str(ev["tenant_id"]), "entity_type": ev["entity_type"]},
                        ),
                    )
            self._advance(nxt, len(rows))
            total += len(rows)
            pos = nxt

    def run_forever(self, *, interval: float = 1.0, stop: Callable[[], bool] = lambda: False,
                    max_backoff: float = 30.0) -> None:
        """Relay until ``stop()``; survives broker restarts by reconnecting with backoff."""
        backoff = 0.5
        while not stop():
            try:
                self.run_once()
                backoff = 0.5
                time.sleep(interval)
            except RETRYABLE as exc:
                log.warning("broker unavailable (%s: %s); retrying in %.1fs", type(exc).__name__, exc, backoff)
                self.close()
                time.sleep(backoff)
                backoff = min(max_backoff, backoff * 2)
        self.close()

    def check(self) -> None:
        """Connect once, or raise ProviderError with the reason (for the CLI)."""
        try:
            self._channel()
        except RETRYABLE as exc:
            raise ProviderError(f"cannot reach RabbitMQ at {_safe(self.url)}: {type(exc).__name__} {exc}") from None


def _safe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
