"""``/v1/events/stream``: a tenant's events over WebSocket, resumable without gaps or dupes.

Authentication never touches the URL: send ``Authorization: Bearer llk_...`` with the
handshake (non-browser clients), or, from a browser, as the first message
``{"type": "auth", "key": "llk_..."}`` within 10 seconds. The console's session cookie
also works, from the console's own origin only. Query parameters: ``after``
(last event id you saw; omit for "from now on"), ``entity_type`` and ``event_type``
(repeatable filters).

Server messages: ``{"type": "ready", "after": N}``, then ``{"type": "event", ...}`` per
event in commit-safe order (see ``learnloop.events.cursor``); reconnect with
``after=<id of the last event received>``. Errors: ``{"type": "error", "status": 401, ...}``
then close code 4401/4403/4404/4422.

The key is checked again every ``STREAM_RECHECK`` seconds while the stream is open: a key
revoked meanwhile closes the stream with 4401, a key that lost the ``read`` scope with
4403 (each after an error message saying so).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.encoders import jsonable_encoder
from starlette.concurrency import run_in_threadpool

from ...errors import LearnloopError, PermissionDenied
from ...events import cursor
from ...events import keys as _keys
from ...events import stream as _stream
from ..deps import SESSION_COOKIE

router = APIRouter()
POLL = 1.0
STREAM_RECHECK = 2.0  # seconds between re-checks of an open stream's key (revocation, scopes)


async def _key(ws: WebSocket) -> str | None:
    auth = ws.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None
    try:
        msg = await asyncio.wait_for(ws.receive_text(), timeout=10)
        data = json.loads(msg)
    except (TimeoutError, ValueError):
        return None
    return data.get("key") if isinstance(data, dict) and data.get("type") == "auth" else None


@router.websocket("/v1/events/stream")
async def stream(ws: WebSocket) -> None:
    app = ws.app
    db = app.state.client.db
    await ws.accept()
    q = ws.query_params
    try:
        _keys.refuse_key_in_query(q)
        cookie = ws.cookies.get(SESSION_COOKIE)
        if cookie and not ws.headers.get("authorization"):
            p = await run_in_threadpool(_session, db, cookie, ws.headers.get("origin"), ws.headers.get("host"))
        else:
            key = await _key(ws)
            p = await run_in_threadpool(_authenticate, db, key)
        p.require("read")
        entity_types = q.getlist("entity_type")
        event_types = q.getlist("event_type")
        after = q.get("after")
        if after is not None:
            try:
                after_id = int(after)
            except ValueError:
                from ...errors import InvalidInput

                raise InvalidInput("after must be an event id (a whole number)", field="after") from None
            pos = await run_in_threadpool(_position, db, p.tenant_id, after_id)
        else:
            pos = await run_in_threadpool(_stream.tail, db, p.tenant_id)
    except LearnloopError as exc:
        with contextlib.suppress(Exception):
            await ws.send_json({"type": "error", "status": exc.status, "detail": exc.message})
            await ws.close(code=4000 + exc.status if exc.status < 1000 else 4500)
        return
    except WebSocketDisconnect:
        return

    closed = asyncio.Event()

    async def watch() -> None:
        try:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
        except Exception:  # noqa: BLE001 - any receive failure means the client is gone
            pass
        closed.set()

    watcher = asyncio.create_task(watch())
    app.state.metrics.ws_clients.inc()
    try:
        await ws.send_json({"type": "ready", "after": pos.id})
        checked = time.monotonic()
        with app.state.hub.waiter(p.tenant_id) as wake:
            while not closed.is_set():
                if time.monotonic() - checked >= STREAM_RECHECK:
                    refusal = await _recheck(db, key)
                    if refusal is not None:
                        await ws.send_json({"type": "error", "status": refusal.status, "detail": refusal.message})
                        await ws.close(code=4000 + refusal.status)
                        return
                    checked = time.monotonic()
                wake.clear()
                try:
                    rows, pos = await run_in_threadpool(_read, db, p.tenant_id, pos, entity_types, event_types)
                except LearnloopError:
                    rows = []  # database away: keep the socket, retry after the poll interval
                for r in rows:
                    r.pop("tenant_id", None)
                    await ws.send_text(json.dumps({"type": "event", **jsonable_encoder(r)}))
                    app.state.metrics.ws_events.inc()
                if rows:
                    continue
                waiters = [asyncio.create_task(wake.wait()), asyncio.create_task(closed.wait())]
                await asyncio.wait(waiters, timeout=POLL, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        app.state.metrics.ws_clients.dec()
        watcher.cancel()
        with contextlib.suppress(Exception):
            await ws.close()


async def _recheck(db: Any, key: str | None) -> LearnloopError | None:
    """Why an open stream must close now (its key revoked, or no longer allowed to read),
    or None. A database away is not a reason: the stream waits for it as reads do."""
    try:
        p = await run_in_threadpool(_authenticate, db, key)
        p.require("read")
    except _keys.Unauthenticated:
        return _keys.Unauthenticated("the API key was revoked while the stream was open")
    except PermissionDenied:
        return PermissionDenied("the API key no longer has the 'read' scope")
    except LearnloopError:
        return None
    return None


def _authenticate(db: Any, key: str | None) -> _keys.Principal:
    with db.connection() as conn:
        return _keys.authenticate(conn, key)


def _session(db: Any, cookie: str, origin: str | None, host: str | None) -> _keys.Principal:
    """The console's session cookie; only from the console's own origin (a cross-site page
    cannot open a socket that rides the browser's cookie)."""
    from ...console import sessions as _sessions

    if origin not in (f"http://{host}", f"https://{host}"):
        raise _keys.Unauthenticated("a console session streams only to the console's own origin")
    with db.connection() as conn:
        return _sessions.authenticate(conn, cookie)[0]


def _position(db: Any, tenant_id: Any, after_id: int) -> cursor.Position:
    with db.connection() as conn:
        return cursor.position_of(conn, tenant_id, after_id)


def _read(db: Any, tenant_id: Any, pos: cursor.Position, entity_types: list[str],
          event_types: list[str]) -> tuple[list[dict[str, Any]], cursor.Position]:
    with db.connection() as conn:
        return cursor.stable_events(conn, pos, tenant_id=tenant_id, entity_types=entity_types,
                                    event_types=event_types, limit=500)
