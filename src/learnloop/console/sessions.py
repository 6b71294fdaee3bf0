"""Console sessions: a browser holds an HttpOnly cookie, never the API key itself.

A token reads ``lls_<id hex>_<secret>`` (session) or ``lll_<id hex>_<secret>`` (one-time
login link); only SHA-256 of the 32-byte random secret is stored (a slow hash buys nothing
for a long random secret). A session carries its CSRF token, which the app sends back in a
header on every write (cookies are sent by the browser on its own; headers are not).

Invariants: a login link works once and for a few minutes; a session works until it
expires, is ended, or its API key is revoked (checked on every request, nothing cached).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta
from typing import Any
from uuid import UUID

from ..events import keys as _keys
from ..events.keys import Principal, Unauthenticated
from ..store.database import Conn
from ..store.ids import uuid7

SESSION_TTL = timedelta(hours=12)
LOGIN_TTL = timedelta(minutes=15)
_TOKEN_RE = re.compile(r"(lls|lll)_([0-9a-f]{32})_([A-Za-z0-9_-]{20,100})")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _new(conn: Conn, tenant_id: UUID, key_id: UUID, kind: str, ttl: timedelta) -> tuple[str, str | None]:
    sid = uuid7()
    secret = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32) if kind == "session" else None
    conn.execute(
        "INSERT INTO learnloop.console_sessions (tenant_id, id, key_id, kind, hash, csrf, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, now() + %s)",
        (tenant_id, sid, key_id, kind, _digest(secret), csrf, ttl),
    )
    prefix = "lls" if kind == "session" else "lll"
    return f"{prefix}_{sid.hex}_{secret}", csrf


def _parse(token: str | None, prefix: str) -> tuple[UUID, str] | None:
    m = _TOKEN_RE.fullmatch((token or "").strip())
    if m is None or m.group(1) != prefix:
        return None
    return UUID(hex=m.group(2)), m.group(3)


def create_login_link(conn: Conn, principal: Principal, ttl: timedelta = LOGIN_TTL) -> str:
    """A one-time sign-in token for ``principal``'s key (what ``learnloop serve`` prints)."""
    with conn.transaction():
        token, _ = _new(conn, principal.tenant_id, principal.key_id, "login", ttl)
    return token


def start(conn: Conn, principal: Principal, ttl: timedelta = SESSION_TTL) -> tuple[str, str]:
    """Open a session for an authenticated key: (cookie token, CSRF token)."""
    with conn.transaction():
        token, csrf = _new(conn, principal.tenant_id, principal.key_id, "session", ttl)
    assert csrf is not None
    return token, csrf


def sign_in_with_key(conn: Conn, key: str | None) -> tuple[Principal, str, str]:
    p = _keys.authenticate(conn, key)
    token, csrf = start(conn, p)
    return p, token, csrf


_PRINCIPAL_SQL = """
SELECT s.tenant_id, s.key_id, s.hash, s.csrf, k.name, k.scopes, t.name AS tenant
FROM learnloop.console_sessions s
JOIN learnloop.api_keys k ON k.tenant_id = s.tenant_id AND k.id = s.key_id AND k.revoked_at IS NULL
JOIN learnloop.tenants t ON t.id = s.tenant_id
WHERE s.id = %s AND s.kind = %s AND s.expires_at > now()
"""


def _check(row: dict[str, Any] | None, secret: str) -> bool:
    expected = bytes(row["hash"]) if row else b"\0" * 32
    return hmac.compare_digest(_digest(secret), expected) and row is not None


def redeem_login_link(conn: Conn, token: str | None) -> tuple[Principal, str, str]:
    """Exchange a one-time login token for a session; the token is spent even if the
    exchange is raced (the UPDATE marks it used once)."""
    parsed = _parse(token, "lll")
    if parsed is None:
        raise Unauthenticated("the sign-in link is malformed; ask for a new one (`learnloop serve` prints it)")
    sid, secret = parsed
    with conn.transaction():
        row = conn.execute(_PRINCIPAL_SQL + " AND s.used_at IS NULL FOR UPDATE OF s", (sid, "login")).fetchone()
        if not _check(row, secret):
            raise Unauthenticated("the sign-in link is not valid (used, expired or unknown); "
                                  "restart `learnloop serve` or sign in with an API key")
        assert row is not None
        conn.execute("UPDATE learnloop.console_sessions SET used_at = now() WHERE tenant_id = %s AND id = %s",
                     (row["tenant_id"], sid))
        p = Principal(row["key_id"], row["tenant_id"], row["tenant"], row["name"], frozenset(row["scopes"]))
        token_s, csrf = _new(conn, p.tenant_id, p.key_id, "session", SESSION_TTL)
    assert csrf is not None
    return p, token_s, csrf


def authenticate(conn: Conn, token: str | None) -> tuple[Principal, str]:
    """The principal and CSRF token of a live session, or Unauthenticated."""
    parsed = _parse(token, "lls")
    if parsed is None:
        raise Unauthenticated("your console session is not valid; sign in again")
    sid, secret = parsed
    row = conn.execute(_PRINCIPAL_SQL, (sid, "session")).fetchone()
    if not _check(row, secret):
        raise Unauthenticated("your console session has ended (expired, signed out or its key was revoked); "
                              "sign in again")
    assert row is not None
    return Principal(row["key_id"], row["tenant_id"], row["tenant"], row["name"], frozenset(row["scopes"])), row["csrf"]


def end(conn: Conn, token: str | None) -> None:
    """Sign out: the session row goes (expired rows are swept here too)."""
    parsed = _parse(token, "lls")
    with conn.transaction():
        if parsed is not None:
            conn.execute("DELETE FROM learnloop.console_sessions WHERE id = %s", (parsed[0],))
        conn.execute("DELETE FROM learnloop.console_sessions WHERE expires_at < now() - interval '1 day'")


def check_csrf(expected: str | None, presented: str | None) -> None:
    from ..errors import PermissionDenied

    if not expected or not presented or not hmac.compare_digest(expected, presented):
        raise PermissionDenied("missing or wrong X-CSRF-Token header: console writes must come from the console")



CONSOLE_KEY_NAME = "console sign-in"


def login_link_for_tenant(conn: Conn, tenant_id: UUID, tenant: str) -> str:
    """A one-time sign-in token for the tenant's admin console key (created on first use,
    reused afterwards: its secret is never needed, the link names the key by id)."""
    row = conn.execute(
        "SELECT id, name, scopes FROM learnloop.api_keys WHERE tenant_id = %s AND name = %s"
        " AND revoked_at IS NULL AND 'admin' = ANY(scopes) ORDER BY created_at DESC LIMIT 1",
        (tenant_id, CONSOLE_KEY_NAME),
    ).fetchone()
    if row is None:
        rec, _ = _keys.create(conn, tenant_id, CONSOLE_KEY_NAME, ["admin"])
        row = rec
    p = Principal(row["id"], tenant_id, tenant, row["name"], frozenset(row["scopes"]))
    return create_login_link(conn, p)
