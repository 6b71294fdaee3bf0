"""ASGI middleware: request size limit, the JSON the API accepts, a last-resort error
guard, latency metrics, and log redaction of API keys.

The size limit counts bytes as they arrive (a missing or lying Content-Length, or a
chunked body, does not help an attacker); over the limit the request gets a 413 problem
and the route never runs.

:class:`JsonGuard` decides once, at the edge, what JSON learnloop accepts (RFC 8259 text
that is valid Unicode, finite numbers, at most ``MAX_JSON_DEPTH`` levels of nesting, see
``learnloop.store.validation``) and refuses the rest with a 422 problem naming the reason,
before any route, hash or encoder sees it.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import orjson

from ..events.keys import REDACT_RE, redact
from ..store.validation import MAX_JSON_DEPTH, json_depth_exceeds
from .metrics import Metrics

Scope = dict[str, Any]


class _TooLarge(Exception):
    pass


log = logging.getLogger("learnloop.api")


def _problem_bytes(status: int, title: str, detail: str, code: str | None = None) -> bytes:
    return json.dumps({"type": f"https://learnloop.dev/problems/{code or status}", "title": title,
                       "status": status, "detail": detail}).encode()


async def _send_problem(send: Any, status: int, title: str, detail: str, code: str | None = None,
                        close: bool = False) -> None:
    body = _problem_bytes(status, title, detail, code)
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
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
        overflow = False
        started = False

        async def limited() -> Any:
            nonlocal seen, overflow
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    overflow = True
                    raise _TooLarge
            return msg

        # Whoever read the body may catch _TooLarge and answer on its own (FastAPI's body
        # parsing answers 400 to any read error): once over the limit, the answer is the
        # 413, and the app's own is dropped.
        async def guarded_send(msg: Any) -> None:
            nonlocal started
            if overflow:
                if msg["type"] == "http.response.start" and not started:
                    started = True
                    await self._reject(send)
                return
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited, guarded_send)
        except Exception:
            if not overflow:
                raise
            if not started:
                await self._reject(send)

    async def _reject(self, send: Any) -> None:
        # Connection: close, since the rest of the body was never read.
        await _send_problem(send, 413, "Request too large", f"the request body is larger than {self.max_bytes} bytes",
                            close=True)


def _is_json(scope: Scope) -> bool:
    """Would FastAPI parse this body as JSON? (It does when there is no content type, or an
    ``application/json`` or ``application/*+json`` one.)"""
    for k, v in scope.get("headers", []):
        if k == b"content-type":
            mime = v.split(b";", 1)[0].strip().lower()
            return mime == b"application/json" or (mime.startswith(b"application/") and mime.endswith(b"+json"))
    return True


def _json_refusal(exc: Exception) -> tuple[str, str]:
    """(problem code, sentence) for a body orjson refused; orjson's message names the place."""
    msg = str(exc)
    low = msg.lower()
    if "surrogate" in low or "utf-8" in low:
        return "invalid_unicode", (f"the JSON body is not valid Unicode ({msg}); strings must not hold lone "
                                   "surrogates (\\ud800-\\udfff without their pair) or invalid UTF-8")
    if "recursion" in low or "depth" in low:
        return "json_too_deep", f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep"
    if "infinity" in low:
        return "number_out_of_range", (f"the JSON body holds a number beyond the range of a double ({msg}); "
                                       "NaN and infinite numbers are not JSON")
    return "invalid_json", f"the body is not valid JSON: {msg}"


class JsonGuard:
    """Refuse, with a 422 problem, JSON bodies learnloop will not take (see module doc).

    orjson is strict where the stdlib is lenient (NaN, Infinity, lone surrogate escapes,
    invalid UTF-8) and parses in C at several hundred MB/s, so the check costs little
    beside the parse FastAPI does after it. The body is replayed to the app unchanged.
    """

    # Routes that speak another protocol's JSON and answer its errors in its own encoding
    # (OTLP/HTTP: 400 with a google.rpc.Status, gzip bodies), so they decode for themselves.
    OWN_PROTOCOL = frozenset({"/v1/traces"})

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if (scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS") or not _is_json(scope)
                or scope.get("path") in self.OWN_PROTOCOL):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        tail: list[Any] = []
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                tail.append(msg)  # a disconnect: hand it on after the body
                break
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body", False):
                break
        body = b"".join(chunks)
        if body.strip():
            refusal: tuple[str, str] | None = None
            try:
                value = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                refusal = _json_refusal(exc)
            else:
                if json_depth_exceeds(value, body):
                    refusal = ("json_too_deep", f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep")
            if refusal is not None:
                await _send_problem(send, 422, "Invalid input", refusal[1], refusal[0])
                return
        replay = [{"type": "http.request", "body": body, "more_body": False}, *tail]

        async def replayed() -> Any:
            return replay.pop(0) if replay else await receive()

        await self.app(scope, replayed, send)


class Guard:
    """The last resort: an exception no handler mapped becomes a 500 problem here, and the
    keep-alive connection stays usable. (Starlette's own outermost handler re-raises after
    answering, and uvicorn then closes the connection, sometimes before the answer left.)"""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(msg: Any) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                raise  # half a response is out: only closing the connection tells the client
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            await _send_problem(send, 500, "Internal error", "internal error; it has been logged", "internal")


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
