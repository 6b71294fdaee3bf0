"""A live ``learnloop serve`` (uvicorn on a free port, in a thread) for the OTLP tests and
benchmarks/bench_otlp.py: exporters talk real HTTP to it, as they would in production."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from learnloop.api import create_app
from learnloop.config import get_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(client: Any, home: Path, **settings: Any) -> Iterator[str]:
    """The API over ``client``'s database at http://127.0.0.1:PORT, stopped on exit."""
    # No embedding model warm-up: nothing here embeds, and loading it took minutes on a busy box.
    settings.setdefault("api_preload_model", False)
    s = get_settings(home=home, archive_root=str(home / "archive"), **settings)
    app = create_app(s, client=client, archive=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                          lifespan="on", timeout_keep_alive=30))
    t = threading.Thread(target=server.run, name="learnloop-test-serve", daemon=True)
    t.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not t.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout=30)
