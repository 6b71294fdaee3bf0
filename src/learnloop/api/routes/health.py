"""Liveness, readiness and Prometheus metrics (no key needed; nothing tenant-specific)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from ...errors import DatabaseUnavailable

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]


@router.get("/healthz", response_model=Health, summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=Ready, summary="The database answers (503 otherwise)")
def readyz(request: Request) -> dict[str, str]:
    db = request.app.state.client.db
    try:
        with db.connection(timeout=2.0) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        raise DatabaseUnavailable("the database is not reachable") from exc
    return {"status": "ready"}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    data = request.app.state.metrics.render(request.app.state.client.db)
    return Response(data, media_type="text/plain; version=0.0.4; charset=utf-8")
