"""ASGI middleware: request size limit, latency metrics, and log redaction of API keys.

The size limit counts bytes as they arrive (a missing or lying Content-Length does not
help an attacker); over the limit the request gets a 413 problem and the route never runs.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ..events.keys import REDACT_RE, redact
from .metrics import Metrics

Scope = dict[str, Any]


class _TooLarge(Exception):
    pass


def _problem_bytes(status: int, title: str, detail: str) -> bytes:
    return json.dumps({"type": f"https://learnloop.dev/problems/{status}", "title": title,
                       "status": status, "detail": detail}).encode()


class BodyLimit:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    too_big = int(v) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(send)
                    return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return msg

        async def tracking_send(msg: Any) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Any) -> None:
        body = _problem_bytes(413, "Request too large", f"the request body is larger than {self.max_bytes} bytes")
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/problem+json"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class Timing:
    """Request latency by route template (not raw path: ids would explode the label set)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = {"code": 500}

        async def capture(msg: Any) -> None:
            if msg["type"] == "http.response.start":
                status["code"] = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope.get("method", "?"), path, str(status["code"])).observe(
                time.perf_counter() - t0)


class RedactKeys(logging.Filter):
    """Removes anything shaped like an API key from log records (access log included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and REDACT_RE.search(record.msg):
            record.msg = redact(record.msg)
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        return True


def install_log_redaction() -> None:
    f = RedactKeys()
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn", "learnloop", ""):
        lg = logging.getLogger(name)
        if not any(isinstance(x, RedactKeys) for x in lg.filters):
            lg.addFilter(f)
