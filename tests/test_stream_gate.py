"""Writers NOTIFY only while a live reader is registered, and readers still see everything."""

from __future__ import annotations

import threading
import uuid

import psycopg

from learnloop.events import stream


def _notified(url: str, action) -> list[str]:
    with psycopg.connect(url, autocommit=True) as listen:
        listen.execute("LISTEN learnloop_events")
        action()
        return [n.payload for n in listen.notifies(timeout=1.0, stop_after=1)]


def test_no_listener_no_notify_then_a_registered_listener_is_woken(fresh_client):
    ll = fresh_client
    tenant = ll.scope.tenant_id
    assert _notified(ll.db.url, lambda: ll.log(kind="chat")) == []
    me = uuid.uuid4()
    stream.register(ll.db, me, [tenant])
    assert _notified(ll.db.url, lambda: ll.log(kind="chat")) == [str(tenant)]
    stream.unregister(ll.db, me)
    assert _notified(ll.db.url, lambda: ll.log(kind="chat")) == []


def test_one_reader_leaving_keeps_the_gate_open_for_another_until_its_heartbeat_expires(fresh_client):
    ll = fresh_client
    tenant = ll.scope.tenant_id
    a, b = uuid.uuid4(), uuid.uuid4()
    stream.register(ll.db, a, [tenant])
    stream.register(ll.db, b, [tenant])
    stream.unregister(ll.db, a)
    assert _notified(ll.db.url, lambda: ll.log(kind="chat")) == [str(tenant)]
    # b stops heartbeating (a crashed reader never unregisters): 60 s later writers stop notifying
    with ll.db.connection() as conn:
        conn.execute("UPDATE learnloop.stream_listeners SET seen_at = now() - interval '61 seconds'")
        conn.execute("SELECT learnloop.sync_stream_listeners()")
    stale = []
    assert _notified(ll.db.url, lambda: stale.append(ll.log(kind="chat"))) == []
    stream.register(ll.db, b, [tenant])  # its next heartbeat reopens it
    assert _notified(ll.db.url, lambda: ll.feedback(stale[0].id, thumbs=1)) == [str(tenant)]
    stream.unregister(ll.db, b)


def test_a_library_subscriber_registers_itself_and_leaves_no_trace(fresh_client):
    ll = fresh_client
    tenant = ll.scope.tenant_id
    seen: list[str] = []
    started = threading.Event()

    def reader() -> None:
        it = stream.subscribe(ll.db, tenant, timeout=5.0, poll=30.0)  # poll long: only NOTIFY wakes it
        started.set()
        for ev in it:
            seen.append(ev["event_type"])
            if len(seen) == 2:
                it.close()
                return

    t = threading.Thread(target=reader)
    t.start()
    started.wait(5)
    with ll.db.connection() as conn:  # wait until the subscriber has registered
        for _ in range(100):
            if conn.execute("SELECT count(*) AS n FROM learnloop.stream_listeners").fetchone()["n"]:
                break
            threading.Event().wait(0.05)
    g = ll.log(kind="chat")
    ll.feedback(g.id, thumbs=1)
    t.join(timeout=10)
    assert seen == ["generation.logged", "feedback.added"]
    with ll.db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM learnloop.stream_listeners").fetchone()["n"] == 0
