"""A RabbitMQ event processor of the platform (seed 003's "RabbitMQ consumers").

learnloop's relay publishes every outbox event to a topic exchange with the event type as
routing key; this consumer binds its own durable queue to the platform's domain events
(``goal.*``, ``task.*``, ``code.*``) and keeps a gamification score per user. It
acknowledges a message only after applying it; the relay delivers at least once, so
``apply`` skips a message id it has seen (the event's ``tenant:id``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pika

from learnloop.events.relay import Relay

EXCHANGE = "learning_platform.events"
QUEUE = "learning_platform.points"
BINDINGS = ("goal.*", "task.*", "code.*")
POINTS = {"task.completed": 10, "goal.completed": 50}


def relay_once(ll: Any, url: str, exchange: str = EXCHANGE) -> int:
    """Publish the outbox events not yet confirmed by the broker (one pass; ``learnloop relay``
    runs the same loop forever)."""
    r = Relay(ll.db, url=url, exchange=exchange, name="learning_platform")
    try:
        return r.run_once()
    finally:
        r.close()


class PointsConsumer:
    def __init__(self, url: str, *, exchange: str = EXCHANGE, queue: str = QUEUE) -> None:
        self.url, self.exchange, self.queue = url, exchange, queue
        self.points: dict[str, float] = defaultdict(float)
        self.seen: set[str] = set()
        self.handled: list[str] = []
        conn = pika.BlockingConnection(pika.URLParameters(url))
        ch = conn.channel()
        ch.exchange_declare(exchange, exchange_type="topic", durable=True)
        ch.queue_declare(queue, durable=True)
        for key in BINDINGS:
            ch.queue_bind(queue, exchange, routing_key=key)
        conn.close()

    def apply(self, routing_key: str, event: dict[str, Any], message_id: str | None) -> None:
        if message_id is not None and message_id in self.seen:
            return  # redelivered after a relay restart: already counted
        if message_id is not None:
            self.seen.add(message_id)
        user = event.get("actor")
        if user:
            if routing_key == "code.validated":
                self.points[user] += round(20 * float(event["payload"]["validation_score"]), 1)
            else:
                self.points[user] += POINTS.get(routing_key, 0)
        self.handled.append(routing_key)

    def drain(self) -> int:
        """Process every message waiting in the queue; returns how many."""
        conn = pika.BlockingConnection(pika.URLParameters(self.url))
        ch = conn.channel()
        n = 0
        try:
            while True:
                method, props, body = ch.basic_get(self.queue)
                if method is None:
                    return n
                self.apply(method.routing_key, json.loads(body), props.message_id)
                ch.basic_ack(method.delivery_tag)
                n += 1
        finally:
            conn.close()

    def delete(self) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(self.url))
        conn.channel().queue_delete(self.queue)
        conn.close()
