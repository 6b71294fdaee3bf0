"""Live stream: LISTEN/NOTIFY wake-ups, commit-safe order, WebSocket resume without gaps
or duplicates (including a transaction that commits late), auth outside the URL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

import learnloop
from learnloop.api import create_app
from learnloop.config import get_settings


@pytest.fixture(scope="module")
def api(client: learnloop.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    s = get_settings(home=tmp_path_factory.mktemp("stream"))
    ll = client.scoped(tenant="stream-a")
    _, key = ll.events.create_key("ws", ["read"])
    with TestClient(create_app(s, client=client, archive=False)) as tc:
        yield {"tc": tc, "ll": ll, "key": key}


def test_library_subscribe_gets_new_events_in_order(client: learnloop.Client) -> None:
    ll = client.scoped(tenant="stream-lib")
    ll.log(kind="chat", prompt="before")
    before = ll.events.list()[-1]["id"]  # not "from now on": the reader may start late on a busy box
    got: list[dict[str, Any]] = []

    def reader() -> None:
        for ev in ll.events.subscribe(after=before, timeout=3, poll=0.2):
            got.append(ev)
            if len(got) == 3:
                return

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.5)
    g = ll.log(kind="chat", prompt="one")
    ll.feedback(g.id, thumbs="up")
    ll.log(kind="chat", prompt="two")
    t.join(10)
    assert [e["event_type"] for e in got] == ["generation.logged", "feedback.added", "generation.logged"]
    assert got[0]["entity_id"] == str(g.id)


def test_late_commit_is_delivered_not_skipped(client: learnloop.Client) -> None:
    ll = client.scoped(tenant="stream-late")
    ll.log(kind="chat", prompt="first")
    start = ll.events.list()[-1]["id"]
    late = psycopg.connect(ll.db.url)
    late.execute("INSERT INTO learnloop.events (tenant_id, entity_type, entity_id, event_type)"
                 " VALUES (%s, 'test', 'late', 'test.late')", (ll.scope.tenant_id,))
    ll.log(kind="chat", prompt="after")  # larger id, commits first
    seen = [e["event_type"] for e in ll.events.list(after=start)]
    assert seen == [], "nothing is delivered past an open transaction"
    late.commit()
    late.close()
    seen = [e["entity_id"] for e in ll.events.list(after=start)]
    assert seen[0] == "late" and len(seen) == 2


def _drain(ws: Any, n: int) -> list[dict[str, Any]]:
    out = []
    while len(out) < n:
        m = ws.receive_json()
        if m["type"] == "event":
            out.append(m)
    return out


def test_websocket_stream_and_resume_without_gaps(api: dict[str, Any]) -> None:
    tc, ll, key = api["tc"], api["ll"], api["key"]
    ll.log(kind="chat", prompt="zero")
    with tc.websocket_connect("/v1/events/stream?after=0", headers={"Authorization": f"Bearer {key}"}) as ws:
        assert ws.receive_json()["type"] == "ready"
        first = _drain(ws, 2)  # the key's api_key.created, then "zero"
        for i in range(3):
            ll.log(kind="chat", prompt=f"live {i}")
        second = _drain(ws, 3)
    last = second[-1]["id"]
    # Disconnected: more events happen, one of them from a transaction that commits late.
    late = psycopg.connect(ll.db.url)
    late.execute("INSERT INTO learnloop.events (tenant_id, entity_type, entity_id, event_type)"
                 " VALUES (%s, 'test', 'late', 'test.late')", (ll.scope.tenant_id,))
    for i in range(2):
        ll.log(kind="chat", prompt=f"offline {i}")
    with tc.websocket_connect(f"/v1/events/stream?after={last}") as ws:
        ws.send_json({"type": "auth", "key": key})  # browser style: key in the first message
        assert ws.receive_json() == {"type": "ready", "after": last}
        late.commit()
        late.close()
        third = _drain(ws, 3)
    ids = [e["id"] for e in first + second + third]
    assert len(ids) == len(set(ids)), "no duplicates"
    expected = [e["id"] for e in ll.events.list(after=0)]
    assert sorted(ids) == sorted(expected), "no gaps"
    assert "late" in [e["entity_id"] for e in third]


def test_websocket_filters(api: dict[str, Any]) -> None:
    tc, ll, key = api["tc"], api["ll"], api["key"]
    with tc.websocket_connect("/v1/events/stream?event_type=feedback.added",
                              headers={"Authorization": f"Bearer {key}"}) as ws:
        assert ws.receive_json()["type"] == "ready"
        g = ll.log(kind="chat", prompt="f")
        ll.feedback(g.id, thumbs="down")
        ev = _drain(ws, 1)[0]
    assert ev["event_type"] == "feedback.added" and ev["payload"]["generation_id"] == str(g.id)


@pytest.mark.parametrize("headers,first", [
    ({}, {"type": "auth", "key": "llk_bogus"}),
    ({"Authorization": "Bearer llk_00000000000000000000000000000000_AAAAAAAAAAAAAAAAAAAAAAAA"}, None),
    ({}, {"type": "hello"}),
])
def test_websocket_rejects_bad_keys(api: dict[str, Any], headers: dict[str, str], first: Any) -> None:
    with api["tc"].websocket_connect("/v1/events/stream", headers=headers) as ws:
        if first is not None:
            ws.send_json(first)
        msg = ws.receive_json()
    assert msg["type"] == "error" and msg["status"] == 401
