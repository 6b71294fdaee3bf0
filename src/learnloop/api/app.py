"""``create_app(settings=None)``: the FastAPI application over one learnloop client (pool).

At startup the app opens the database once (``learnloop.connect``), starts the event
listener (one LISTEN connection for all WebSocket clients) and, unless disabled, a
background archiver that runs a pass every ``archive_interval`` seconds. Sync routes run
in the threadpool on the pool's connections; a request waits at most ``api_db_timeout``
seconds for a connection, then gets a 503 (the database is down or saturated).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from ..config import Settings, get_settings
from ..errors import LearnloopError
from ..events.stream import Hub
from . import problems
from .deps import ScopeCache
from .metrics import Metrics
from .middleware import BodyLimit, Guard, JsonGuard, Timing, install_log_redaction

log = logging.getLogger("learnloop.api")

DESCRIPTION = """The learnloop HTTP API: the learning loop for AI applications, on PostgreSQL.

Authenticate every request with `Authorization: Bearer llk_...` (create keys with
`learnloop keys create`). The tenant is the key's (an installation key, `lli_...`, from
`learnloop keys create --installation`, only creates tenants and their first keys); choose a project with the
`X-Learnloop-Project` header (default `default`). Errors are problem details
(`application/problem+json`). Writes accept an `Idempotency-Key` header.
"""


def create_app(settings: Settings | None = None, *, client: Any = None, archive: bool | None = None) -> FastAPI:
    """Build the app. ``client``: reuse an open learnloop client (tests, embedding in an
    app) instead of connecting at startup; ``archive``: run the periodic archiver
    (default: when ``archive_interval`` > 0)."""
    s = settings or get_settings()
    metrics = Metrics()
    run_archiver = s.archive_interval > 0 if archive is None else archive

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import learnloop

        own = client is None
        ll = learnloop.connect(s.database_url, tenant=s.tenant, project=s.project, home=s.home) if own else client
        # Fail fast when the database is away, instead of queueing requests for 30 s.
        ll.db.pool.timeout = s.api_db_timeout
        # After a database restart the pool's reconnect backoff doubles without bound (up
        # to 5 minutes); give up on a failing chain quickly instead, so that the next
        # waiting request starts a fresh attempt and the API recovers within seconds.
        ll.db.pool.reconnect_timeout = max(5.0, 2 * s.api_db_timeout)
        app.state.client = ll
        if s.api_preload_model:
            await asyncio.to_thread(_preload_model, ll)
        hub = Hub(ll.db)
        hub.start(asyncio.get_running_loop())
        app.state.hub = hub
        stop = threading.Event()
        worker = None
        if run_archiver:
            worker = threading.Thread(target=_archive_loop, args=(ll, app.state.archive_root, s.archive_interval, stop),
                                      name="learnloop-archiver", daemon=True)
            worker.start()
        roller = None
        if s.rollup_interval > 0 and own:
            roller = threading.Thread(target=_rollup_loop, args=(ll, s.rollup_interval, stop),
                                      name="learnloop-rollup", daemon=True)
            roller.start()
        try:
            yield
        finally:
            stop.set()
            hub.stop()
            if worker is not None:
                worker.join(timeout=30)
            if roller is not None:
                roller.join(timeout=30)
            if own:
                ll.close()

    app = FastAPI(title="learnloop", version="1", description=DESCRIPTION, lifespan=lifespan,
                  openapi_tags=[{"name": n} for n in ("ledger", "analytics", "events", "keys", "accounts", "health",
                                                      "console")])
    app.state.settings = s
    app.state.metrics = metrics
    app.state.scopes = ScopeCache()
    app.state.archive_root = s.archive_root or str(s.home / "archive")
    problems.install(app)

    from ..console.serve import mount
    from .routes import (
        accounts,
        analytics,
        console,
        events,
        health,
        keys,
        ledger,
        overview,
        review,
        stream,
    )

    for r in (ledger.router, review.router, analytics.router, overview.router, events.router, keys.router,
              accounts.router, health.router, stream.router, console.router):
        app.include_router(r)
    _optional_routers(app)
    problems.document(app)
    mount(app)  # last: the console answers only paths no API route claimed
    # Outermost last: BodyLimit counts every byte, Timing sees every answer (the guard's
    # too), JsonGuard refuses bodies before the routes, Guard answers what escapes them.
    app.add_middleware(Guard)
    app.add_middleware(JsonGuard)
    app.add_middleware(Timing, metrics=metrics)
    app.add_middleware(BodyLimit, max_bytes=s.api_max_body_bytes)
    install_log_redaction()
    return app


def _optional_routers(app: FastAPI) -> None:
    """Routers of capabilities that may not be installed (knowledge, training)."""
    import importlib

    for mod in ("learnloop.api.routes.knowledge", "learnloop.api.routes.projects", "learnloop.api.routes.retrieved",
                "learnloop.api.routes.training",
                "learnloop.api.routes.otlp"):
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name == mod:
                continue
            raise
        app.include_router(m.router)


def _preload_model(ll: Any) -> None:
    """Load the local embedding model now, before the first request: the first search
    after `serve` took 20 s (torch imports and the model load), past many clients'
    timeouts. Only the local provider (a remote one costs a paid call) and only when the
    knowledge extra is installed. Once per process: the model is shared."""
    if ll.settings.embedding_provider != "local" or importlib.util.find_spec("sentence_transformers") is None:
        return
    try:
        from ..embeddings import get_provider

        t0 = time.perf_counter()
        get_provider(settings=ll.settings).embed(["warm up"])
        log.info("embedding model loaded in %.1f s", time.perf_counter() - t0)
    except LearnloopError as exc:
        log.warning("the embedding model could not be loaded at start (%s); search will fail until it can",
                    exc.message)


def _rollup_loop(ll: Any, interval: float, stop: threading.Event) -> None:
    """Rebuild the analytics rollup's changed days of every tenant (analytics/rollup.py)."""
    from ..analytics import rollup

    while not stop.wait(interval):
        try:
            with ll.db.connection() as conn:
                for tenant in rollup.tenants_to_refresh(conn):
                    res = rollup.refresh_tenant(conn, tenant)
                    if res.days:
                        log.info("analytics rollup: rebuilt %d days in %.1f s", res.days, res.seconds)
                    if stop.is_set():
                        break
        except LearnloopError as exc:  # database away: try next time
            log.warning("rollup pass skipped: %s", exc.message)
        except Exception:  # noqa: BLE001 - the server must outlive a failing pass
            log.exception("rollup pass failed")


def _archive_loop(ll: Any, root: str, interval: float, stop: threading.Event) -> None:
    from ..events.archive import Archiver

    while not stop.wait(interval):
        try:
            res = Archiver(ll.db, root).run()
            if res.events:
                log.info("archived %d events in %d files", res.events, res.files)
        except LearnloopError as exc:  # another archiver, database away: try next time
            log.warning("archive pass skipped: %s", exc.message)
        except Exception:  # noqa: BLE001 - the server must outlive a failing pass
            log.exception("archive pass failed")
