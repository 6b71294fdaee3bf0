"""Per-request context: the caller's key, its tenant, the project, a scoped client.

The tenant always comes from the API key, never from the request; the project is named by
the ``X-Learnloop-Project`` header (default ``default``). Reads do not create projects (an
unknown project is a 404); writes create it on first use, as the library does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..client import Client
from ..errors import InvalidInput, PermissionDenied
from ..events import keys as _keys
from ..store.tenancy import Scope, ensure_project
from ..store.validation import check_name

SESSION_COOKIE = "learnloop_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer llk_...`")
ProjectHeader = Annotated[str, Header(alias="X-Learnloop-Project", max_length=200,
                                      description="Project name inside your tenant.")]


@dataclass
class Ctx:
    principal: _keys.Principal
    client: Client

    @property
    def scope(self) -> Scope:
        return self.client.scope


class ScopeCache:
    """(tenant id, project name) -> Scope; project ids never change once created."""

    def __init__(self) -> None:
        self._d: dict[tuple[Any, str], Scope] = {}
        self._lock = threading.Lock()

    def get(self, root: Client, p: _keys.Principal, project: str, create: bool) -> Scope:
        k = (p.tenant_id, project)
        sc = self._d.get(k)
        if sc is None:
            with root.db.connection() as conn:
                pid = ensure_project(conn, p.tenant_id, project, create=create)
            sc = Scope(p.tenant_id, p.tenant, pid, project)
            with self._lock:
                self._d[k] = sc
        return sc


def principal(request: Request,
              creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> _keys.Principal:
    root: Client = request.app.state.client
    _keys.refuse_key_in_query(request.query_params)
    cookie = request.cookies.get(SESSION_COOKIE)
    if creds is None and cookie:
        return _session_principal(request, root, cookie)
    with root.db.connection() as conn:
        return _keys.authenticate(conn, creds.credentials if creds else None)


def bearer_credentials(header: str | None) -> HTTPAuthorizationCredentials | None:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return HTTPAuthorizationCredentials(scheme="Bearer", credentials=token.strip())


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin."""
    origin = request.headers.get("origin")
    if origin is None or (origin == "null" and request.method in SAFE_METHODS):
        return True
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def _session_principal(request: Request, root: Client, cookie: str) -> _keys.Principal:
    """The console's cookie session: the key that opened it, checked on every request
    (revoked key = ended session); writes need the session's CSRF token in a header."""
    from ..console import sessions as _sessions

    with root.db.connection() as conn:
        p, csrf = _sessions.authenticate(conn, cookie)
    if request.method not in SAFE_METHODS:
        if not same_origin(request):
            raise PermissionDenied("cross-site request refused")
        _sessions.check_csrf(csrf, request.headers.get("x-csrf-token"))
    request.state.csrf = csrf
    return p


def _ctx(request: Request, p: _keys.Principal, project: str, scope_name: str, create: bool) -> Ctx:
    p.require(scope_name)
    try:
        check_name(project, "project")
    except InvalidInput:
        raise InvalidInput("X-Learnloop-Project must be 1 to 200 characters without NUL", field="project") from None
    root: Client = request.app.state.client
    sc = request.app.state.scopes.get(root, p, project, create)
    c = Client(root.db, root.settings, p.tenant, project)
    c._scope = sc
    return Ctx(p, c)


def reader(request: Request, p: Annotated[_keys.Principal, Depends(principal)],
           project: ProjectHeader = "default") -> Ctx:
    return _ctx(request, p, project, "read", create=False)


def writer(request: Request, p: Annotated[_keys.Principal, Depends(principal)],
           project: ProjectHeader = "default") -> Ctx:
    return _ctx(request, p, project, "ingest", create=True)


def admin(request: Request, p: Annotated[_keys.Principal, Depends(principal)],
          project: ProjectHeader = "default") -> Ctx:
    return _ctx(request, p, project, "admin", create=True)


Read = Annotated[Ctx, Depends(reader)]
Write = Annotated[Ctx, Depends(writer)]
Admin = Annotated[Ctx, Depends(admin)]
