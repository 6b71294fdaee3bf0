"""Console sign-in: exchange an API key or a one-time login link for a session cookie.

The cookie is HttpOnly (page script cannot read it), SameSite=Strict (no other site can
make the browser send it) and Secure when served over HTTPS. The response body carries the
session's CSRF token; the console sends it back as ``X-CSRF-Token`` on every write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ...console import sessions as _sessions
from ...errors import PermissionDenied
from ...events.keys import Principal, Unauthenticated
from ...store.tenancy import create_project, list_projects
from ..deps import SESSION_COOKIE, bearer_credentials, principal, same_origin

router = APIRouter(prefix="/v1", tags=["console"])


class KeySignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=300, description="An API key, llk_...")


class LinkSignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=300, description="The one-time token from the sign-in link.")


class SessionInfo(BaseModel):
    signed_in: bool = True
    tenant: str = ""
    key_name: str = ""
    scopes: list[str] = Field(default_factory=list)
    can_write: bool = Field(default=False, description="The key may write (ingest or admin scope).")
    is_admin: bool = False
    csrf: str | None = Field(default=None, description="Send as X-CSRF-Token on writes (cookie sessions only).")


class NewProject(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "support-bot"}]})
    name: str = Field(min_length=1, max_length=200, description="Unique within the tenant.")


class Project(BaseModel):
    id: UUID
    name: str
    created_at: datetime


def _info(p: Principal, csrf: str | None) -> SessionInfo:
    return SessionInfo(tenant=p.tenant, key_name=p.name, scopes=sorted(p.scopes),
                       can_write=p.allows("ingest"), is_admin=p.allows("admin"), csrf=csrf)


def _set_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=int(_sessions.SESSION_TTL.total_seconds()), path="/",
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")


def _refuse_cross_site(request: Request) -> None:
    # Login CSRF: another site must not sign the browser in with the attacker's key.
    if not same_origin(request):
        raise PermissionDenied("sign-in must come from the console's own origin")


def _open(request: Request, response: Response, sign_in: Any, credential: str) -> SessionInfo:
    _refuse_cross_site(request)
    with request.app.state.client.db.connection() as conn:
        p, token, csrf = sign_in(conn, credential)
    _set_cookie(request, response, token)
    return _info(p, csrf)


@router.post("/console/session", response_model=SessionInfo, summary="Sign in with an API key (sets the session cookie)")
def sign_in(request: Request, response: Response, body: KeySignIn) -> Any:
    return _open(request, response, _sessions.sign_in_with_key, body.key)


@router.post("/console/login", response_model=SessionInfo, summary="Redeem a one-time sign-in link")
def redeem(request: Request, response: Response, body: LinkSignIn) -> Any:
    return _open(request, response, _sessions.redeem_login_link, body.token)


@router.get("/console/session", response_model=SessionInfo,
            summary="Who is signed in (and the CSRF token); signed_in false without a live session")
def whoami(request: Request) -> Any:
    # Not signed in is the console's normal first state, not an error: 200 with signed_in false.
    creds = request.headers.get("authorization")
    try:
        p = principal(request, bearer_credentials(creds))
    except Unauthenticated:
        return SessionInfo(signed_in=False)
    return _info(p, getattr(request.state, "csrf", None))


@router.delete("/console/session", status_code=204, summary="Sign out (ends the session)")
def sign_out(request: Request, response: Response) -> Response:
    _refuse_cross_site(request)
    with request.app.state.client.db.connection() as conn:
        _sessions.end(conn, request.cookies.get(SESSION_COOKIE))
    out = Response(status_code=204)
    out.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return out


@router.get("/projects", response_model=list[Project], summary="Projects of the caller's tenant")
def projects(request: Request, p: Annotated[Principal, Depends(principal)]) -> Any:
    p.require("read")
    with request.app.state.client.db.connection() as conn:
        return list_projects(conn, p.tenant_id)


@router.post("/projects", status_code=201, response_model=Project,
             summary="Create a project in the caller's tenant (409 when the name is taken)")
def new_project(request: Request, body: NewProject, p: Annotated[Principal, Depends(principal)]) -> Any:
    p.require("admin")
    with request.app.state.client.db.connection() as conn:
        return create_project(conn, p.tenant_id, body.name)
