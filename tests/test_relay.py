"""RabbitMQ relay against the real broker (127.0.0.1:5672, guest/guest): topic exchange,
routing key from the event type, confirms, and no loss across a broker restart.

Runs whenever CI=true (an unreachable broker then fails the test); elsewhere it skips,
saying why, if nothing listens on 5672.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest

import learnloop
from learnloop.events.relay import Relay, routing_key

URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def _broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def broker() -> None:
    if not _broker_up() and os.environ.get("CI") != "true":
        pytest.skip("RabbitMQ is not reachable at 127.0.0.1:5672 (these tests run when CI=true)")


@pytest.fixture()
def queue() -> Iterator[tuple[str, str]]:
    exchange, qname = f"test.events.{uuid.uuid4().hex[:8]}", f"test.q.{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    ch = conn.channel()
    ch.exchange_declare(exchange, exchange_type="topic", durable=True)
    ch.queue_declare(qname, durable=True)
    ch.queue_bind(qname, exchange, routing_key="#")
    conn.close()
    yield exchange, qname
    try:
        conn = pika.BlockingConnection(pika.URLParameters(URL))
        ch = conn.channel()
        ch.queue_delete(qname)
        ch.exchange_delete(exchange)
        conn.close()
    except pika.exceptions.AMQPError:
        pass


def _consume(qname: str) -> list[tuple[str, dict[str, Any], Any]]:
    out = []
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    ch = conn.channel()
    while True:
        method, props, body = ch.basic_get(qname, auto_ack=True)
        if method is None:
            break
        out.append((method.routing_key, json.loads(body), props))
    conn.close()
    return out


def _event_ids(ll: learnloop.Client) -> list[int]:
    with ll.db.connection() as conn:
        return [r["id"] for r in conn.execute("SELECT id FROM learnloop.events ORDER BY id").fetchall()]


def test_routing_keys() -> None:
    assert routing_key("generation.logged") == "generation.logged"
    assert routing_key("a b.c#d.*") == "a_b.c_d._"


def test_relay_publishes_with_routing_key(fresh_client: learnloop.Client, queue: tuple[str, str]) -> None:
    exchange, qname = queue
    ll = fresh_client
    g = ll.log(kind="chat", prompt="hi")
    ll.feedback(g.id, thumbs="up")
    r = Relay(ll.db, url=URL, exchange=exchange)
    assert r.run_once() == 2
    assert r.run_once() == 0  # nothing twice
    r.close()
    msgs = _consume(qname)
    assert [m[0] for m in msgs] == ["generation.logged", "feedback.added"]
    assert msgs[0][1]["entity_id"] == str(g.id) and msgs[0][2].delivery_mode == 2
    assert msgs[0][2].message_id == f"{ll.scope.tenant_id}:{msgs[0][1]['id']}"


@pytest.mark.slow
def test_relay_survives_broker_restart_without_loss(fresh_client: learnloop.Client, queue: tuple[str, str]) -> None:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        if os.environ.get("CI") == "true":
            pytest.fail("rabbitmqctl is needed to restart the broker in CI")
        pytest.skip("rabbitmqctl is not installed here (needed to restart the broker)")
    exchange, qname = queue
    ll = fresh_client
    for i in range(3):
        ll.log(kind="chat", prompt=f"before {i}")
    relay = Relay(ll.db, url=URL, exchange=exchange)
    stop = threading.Event()
    t = threading.Thread(target=relay.run_forever, kwargs={"interval": 0.2, "stop": stop.is_set, "max_backoff": 1.0})
    t.start()
    try:
        deadline = time.time() + 20
        while relay.position().id < max(_event_ids(ll)) and time.time() < deadline:
            time.sleep(0.2)
        subprocess.run([ctl, "stop_app"], check=True, capture_output=True, timeout=120)
        try:
            for i in range(5):
                ll.log(kind="chat", prompt=f"during restart {i}")
            time.sleep(1.0)  # the relay tries, fails and backs off
        finally:
            subprocess.run([ctl, "start_app"], check=True, capture_output=True, timeout=120)
        for i in range(2):
            ll.log(kind="chat", prompt=f"after {i}")
        want = set(_event_ids(ll))
        deadline = time.time() + 60
        while relay.position().id < max(want) and time.time() < deadline:
            time.sleep(0.3)
    finally:
        stop.set()
        t.join(30)
    got = {m[1]["id"] for m in _consume(qname)}
    assert got == want, f"lost {sorted(want - got)}"
