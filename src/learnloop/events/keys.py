"""API keys: created once, stored as salted hashes, checked in constant time, revocable.

A key reads ``llk_<key id hex>_<secret>``. The id part finds the row (the tenant is not
known before the key is); the secret is 32 random bytes, of which only
``HMAC-SHA256(salt, secret)`` is stored. Because the secret is long and random, a slow
password hash would add latency to every request without adding safety. Nothing is
cached: a revoked key fails on the very next request, and an open event stream re-checks
its key every ``STREAM_RECHECK`` seconds (``learnloop.api.routes.stream``).

Scopes: ``ingest`` (writes), ``read`` (reads), ``admin`` (managing keys; implies both).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any, TypeGuard
from uuid import UUID

from ..errors import InvalidInput, NotFound, PermissionDenied
from ..store.database import Conn
from ..store.ids import uuid7
from ..store.validation import check_name

SCOPES = ("ingest", "read", "admin")
PREFIX = "llk_"
# Every learnloop key: <prefix><key id, 32 hex>_<secret> (tenant llk_, installation lli_).
KEY_RE = re.compile(r"(ll[ki]_)([0-9a-f]{32})_([A-Za-z0-9_-]{20,100})")
# Used to redact keys from any log line, wherever they appear, in any encoding a URL, a
# form or a JSON string gives them: "_" as itself, percent-encoded once or more (%5F,
# %255F) or JSON-escaped (\u005f), and any character of the secret percent-encoded.
_ENC = r"(?:%(?:25)*[0-9A-Fa-f]{2}|\\u00[0-9A-Fa-f]{2})"


def _lit(c: str) -> str:
    return rf"(?:{c}|%(?:25)*{ord(c):02x}|\\u00{ord(c):02x})"


# llk_ (tenant keys) and lli_ (installation keys, learnloop.accounts.installation).
REDACT_RE = re.compile(rf"(?i:{_lit('l')}{_lit('l')}(?:{_lit('k')}|{_lit('i')}){_lit('_')}(?:[0-9a-f]|{_ENC}){{32}}{_lit('_')}"
                       rf"(?:[A-Za-z0-9_-]|{_ENC})+)")
# Query-string names a key could be passed under; all are refused, never silently ignored.
QUERY_KEY_NAMES = frozenset({"api_key", "apikey", "api-key", "key", "token", "access_token", "accesstoken",
                             "access-token", "auth", "authorization", "bearer", "auth_token", "x-api-key"})


class Unauthenticated(PermissionDenied):
    """No key, a malformed key, an unknown key or a revoked key (HTTP 401)."""

    status = 401
    code = "unauthenticated"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key of one tenant with its scopes."""

    key_id: UUID
    tenant_id: UUID
    tenant: str
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def require(self, scope: str) -> None:
        if not self.allows(scope):
            raise PermissionDenied(f"this API key lacks the {scope!r} scope")


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode(), hashlib.sha256).digest()


def check_scopes(scopes: Any) -> list[str]:
    if isinstance(scopes, str):
        scopes = [s.strip() for s in scopes.split(",") if s.strip()]
    if not isinstance(scopes, list | tuple) or not scopes:
        raise InvalidInput("scopes must be a non-empty list of ingest, read, admin", field="scopes")
    out: list[str] = []
    for s in scopes:
        if s not in SCOPES:
            raise InvalidInput(f"unknown scope {s!r}: use ingest, read or admin", field="scopes")
        if s not in out:
            out.append(s)
    return out


def create(conn: Conn, tenant_id: UUID, name: str, scopes: Any) -> tuple[dict[str, Any], str]:
    """Create a key; returns (its record, the full key). The key is never retrievable again."""
    from .outbox import emit

    check_name(name, "key name")
    scope_list = check_scopes(scopes)
    key_id, secret, salt = new_key()
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO learnloop.api_keys (tenant_id, id, name, scopes, salt, hash)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " RETURNING id, name, scopes, created_at, revoked_at, last_used_at",
            (tenant_id, key_id, name, scope_list, salt, _digest(salt, secret)),
        ).fetchone()
        emit(conn, tenant_id, "api_key", key_id, "api_key.created", {"name": name, "scopes": scope_list})
    assert row is not None
    return dict(row), key_text(PREFIX, key_id, secret)


def list_keys(conn: Conn, tenant_id: UUID) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT id, name, scopes, created_at, revoked_at, last_used_at FROM learnloop.api_keys"
        " WHERE tenant_id = %s ORDER BY created_at, id",
        (tenant_id,),
    ).fetchall()


def revoke(conn: Conn, tenant_id: UUID, key_id: UUID | str) -> dict[str, Any]:
    from .outbox import emit

    kid = _key_id(key_id)
    with conn.transaction():
        # Revoking twice keeps the first time. Not ``coalesce(revoked_at, now())``: Citus
        # refuses a non-IMMUTABLE function inside COALESCE/CASE in an UPDATE.
        row = conn.execute(
            "UPDATE learnloop.api_keys SET revoked_at = now()"
            " WHERE tenant_id = %s AND id = %s AND revoked_at IS NULL"
            " RETURNING id, name, scopes, created_at, revoked_at, last_used_at",
            (tenant_id, kid),
        ).fetchone() or conn.execute(
            "SELECT id, name, scopes, created_at, revoked_at, last_used_at FROM learnloop.api_keys"
            " WHERE tenant_id = %s AND id = %s",
            (tenant_id, kid),
        ).fetchone()
        if row is None:
            raise NotFound(f"API key {kid} does not exist in this tenant")
        emit(conn, tenant_id, "api_key", kid, "api_key.revoked", {"name": row["name"]})
    return dict(row)


def set_scopes(conn: Conn, tenant_id: UUID, key_id: UUID | str, scopes: Any) -> dict[str, Any]:
    """Change a key's scopes; like revocation, the next request (and, within
    ``STREAM_RECHECK`` seconds, an open stream) sees the change."""
    from .outbox import emit

    kid = _key_id(key_id)
    scope_list = check_scopes(scopes)
    with conn.transaction():
        row = conn.execute(
            "UPDATE learnloop.api_keys SET scopes = %s WHERE tenant_id = %s AND id = %s"
            " RETURNING id, name, scopes, created_at, revoked_at, last_used_at",
            (scope_list, tenant_id, kid),
        ).fetchone()
        if row is None:
            raise NotFound(f"API key {kid} does not exist in this tenant")
        emit(conn, tenant_id, "api_key", kid, "api_key.scopes_changed", {"name": row["name"], "scopes": scope_list})
    return dict(row)


def _key_id(key_id: UUID | str) -> UUID:
    try:
        return key_id if isinstance(key_id, UUID) else UUID(str(key_id))
    except ValueError:
        raise InvalidInput(f"key id {key_id!r} is not a valid id (expected a UUID)") from None


def new_key() -> tuple[UUID, str, bytes]:
    """(key id, secret, salt) of a new key; store the salt and ``_digest(salt, secret)``."""
    return uuid7(), secrets.token_urlsafe(32), secrets.token_bytes(16)


def key_text(prefix: str, key_id: UUID, secret: str) -> str:
    """The key as its holder presents it (shown once)."""
    return f"{prefix}{key_id.hex}_{secret}"


def parse_key(key: str | None, prefix: str, what: str) -> tuple[UUID, str]:
    """(key id, secret) of a presented key with ``prefix``; Unauthenticated when it is
    missing or not of that shape. ``what`` names the key in the message ("API key")."""
    if not key:
        raise Unauthenticated(f"an {what} is required: send 'Authorization: Bearer {prefix}...'")
    m = KEY_RE.fullmatch(key.strip())
    if m is None or m.group(1) != prefix:
        raise Unauthenticated(f"the {what} is malformed")
    return UUID(hex=m.group(2)), m.group(3)


def authenticate(conn: Conn, key: str | None) -> Principal:
    """The principal for a presented key, or Unauthenticated (same message for every failure
    after parsing, so a caller cannot tell a wrong secret from a revoked key)."""
    kid, secret = parse_key(key, PREFIX, "API key")
    row = conn.execute(
        "SELECT k.tenant_id, k.name, k.scopes, k.salt, k.hash, k.revoked_at, t.name AS tenant"
        " FROM learnloop.api_keys k JOIN learnloop.tenants t ON t.id = k.tenant_id WHERE k.id = %s",
        (kid,),
    ).fetchone()
    if not secret_matches(row, secret) or row["revoked_at"] is not None:
        raise Unauthenticated("the API key is not valid (unknown, wrong or revoked)")
    return Principal(kid, row["tenant_id"], row["tenant"], row["name"], frozenset(row["scopes"]))


def secret_matches(row: dict[str, Any] | None, secret: str) -> TypeGuard[dict[str, Any]]:
    """``secret`` against a key row's salt and hash; compares even when the row is missing,
    so timing does not reveal which key ids exist."""
    salt = bytes(row["salt"]) if row else b"\0" * 16
    expected = bytes(row["hash"]) if row else b"\0" * 32
    return hmac.compare_digest(_digest(salt, secret), expected) and row is not None


def redact(text: str) -> str:
    return REDACT_RE.sub("llk_***", text)


def key_in_query(params: Any) -> str | None:
    """The offending name if a query string carries an API key (a name keys travel under,
    or any value shaped like a key, however encoded), else None. ``params``: pairs or a
    multi-dict with ``multi_items()``."""
    items = params.multi_items() if hasattr(params, "multi_items") else params
    for name, value in items:
        if name.lower() in QUERY_KEY_NAMES or REDACT_RE.search(value) or REDACT_RE.search(name):
            return str(name)
    return None


def refuse_key_in_query(params: Any) -> None:
    name = key_in_query(params)
    if name is not None:
        raise Unauthenticated(f"API keys are never accepted in URLs (they end up in logs; got ?{name[:40]}=); "
                              "send 'Authorization: Bearer llk_...'")
