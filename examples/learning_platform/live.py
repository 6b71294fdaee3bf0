"""The live view: the tenant's events over learnloop's WebSocket, as a dashboard sees them.

``serve`` runs the HTTP API in a thread of this process (same database, the app's own
client); ``watch`` connects with a read key (sent as the first message, never in the
URL), prints each event and, when its connection drops, resumes after the last event id
it printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
import websockets

import learnloop
from learnloop.api import create_app
from learnloop.config import get_settings


@contextlib.contextmanager
def serve(ll: learnloop.Client) -> Iterator[str]:
    """The API on a free local port for the duration of the block; yields its ws:// base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(get_settings(home=ll.settings.home), client=ll, archive=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(10)


async def _watch(base: str, key: str, on_event: Callable[[dict[str, Any]], None], stop: threading.Event,
                 event_types: tuple[str, ...], after: int | None) -> None:
    last = after
    while not stop.is_set():
        query = "&".join([*(f"event_type={t}" for t in event_types), *([f"after={last}"] if last is not None else [])])
        try:
            async with websockets.connect(f"{base}/v1/events/stream?{query}") as ws:
                await ws.send(json.dumps({"type": "auth", "key": key}))
                while not stop.is_set():
                    try:
                        msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=0.2))
                    except TimeoutError:
                        continue
                    if msg["type"] == "event":
                        on_event(msg)
                        last = msg["id"]
                    elif msg["type"] == "error":
                        raise RuntimeError(msg["detail"])
                    elif msg["type"] == "ready" and last is None:
                        last = msg["after"]
        except (OSError, websockets.ConnectionClosed):
            await asyncio.sleep(0.3)  # dropped: reconnect after the last event seen


@contextlib.contextmanager
def watch(base: str, key: str, on_event: Callable[[dict[str, Any]], None], *,
          event_types: tuple[str, ...] = ("goal.created", "goal.completed", "task.completed", "code.validated"),
          after: int | None = None) -> Iterator[threading.Event]:
    """Watch in a background thread until the block ends."""
    stop = threading.Event()
    t = threading.Thread(target=lambda: asyncio.run(_watch(base, key, on_event, stop, event_types, after)), daemon=True)
    t.start()
    try:
        yield stop
    finally:
        stop.set()
        t.join(10)
