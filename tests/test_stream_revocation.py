"""Revocation and scope changes reach open WebSocket streams (issue 14, finding 2): the key
was checked only at the handshake, and events kept flowing for 50 s after revocation."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import learnloop
from learnloop.api import create_app
from learnloop.api.routes.stream import STREAM_RECHECK
from learnloop.config import get_settings
from tests.hostile import serve


@pytest.fixture(scope="module")
def live(client: learnloop.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    s = get_settings(home=tmp_path_factory.mktemp("revocation"))
    with serve(create_app(s, client=client, archive=False)) as hostport:
        yield {"hostport": hostport, "ll": client.scoped(tenant="revocation")}


def _writer(ll: learnloop.Client, stop: threading.Event) -> None:
    while not stop.is_set():
        ll.log(kind="chat", prompt="still flowing")
        time.sleep(0.1)


def _closed_after(live: dict[str, Any], change: Any) -> tuple[float, int, dict[str, Any], int]:
    """Open a stream with a fresh read key, keep events flowing, apply ``change(key id)``;
    return (seconds from the change to the close, close code, the error message, events
    received after the change)."""
    ll = live["ll"]
    rec, key = ll.events.create_key(f"ws-{time.monotonic_ns()}", ["read"])
    stop = threading.Event()
    w = threading.Thread(target=_writer, args=(ll, stop), daemon=True)
    with connect(f"ws://{live['hostport']}/v1/events/stream",
                 additional_headers={"Authorization": f"Bearer {key}"}, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        w.start()
        try:
            assert json.loads(ws.recv(timeout=10))["type"] == "event"
            change(rec["id"])
            t0 = time.monotonic()
            after, last = 0, {}
            try:
                while time.monotonic() - t0 < 30:
                    last = json.loads(ws.recv(timeout=30))
                    after += last["type"] == "event"
            except ConnectionClosed:
                pass
            took = time.monotonic() - t0
            assert ws.close_code is not None, "the stream stayed open"
            return took, ws.close_code, last, after
        finally:
            stop.set()
            w.join(10)


def test_revoking_a_key_closes_its_open_stream_within_seconds(live: dict[str, Any]) -> None:
    took, code, last, _ = _closed_after(live, live["ll"].events.revoke_key)
    assert code == 4401
    assert last["type"] == "error" and last["status"] == 401 and "revoked" in last["detail"]
    assert took < STREAM_RECHECK + 3, took


def test_a_key_losing_the_read_scope_closes_its_stream(live: dict[str, Any]) -> None:
    took, code, last, _ = _closed_after(live, lambda kid: live["ll"].events.set_key_scopes(kid, ["ingest"]))
    assert code == 4403
    assert last["type"] == "error" and last["status"] == 403 and "read" in last["detail"]
    assert took < STREAM_RECHECK + 3, took


def test_a_key_in_the_stream_url_is_refused(live: dict[str, Any]) -> None:
    _, key = live["ll"].events.create_key("ws-url", ["read"])
    with connect(f"ws://{live['hostport']}/v1/events/stream?token={key}",
                 additional_headers={"Authorization": f"Bearer {key}"}, open_timeout=10) as ws:
        msg = json.loads(ws.recv(timeout=10))
        assert msg["type"] == "error" and msg["status"] == 401
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 4401
