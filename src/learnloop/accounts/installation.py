"""Installation admin keys: the one credential that creates tenants (accounts) over HTTP.

A key reads ``lli_<key id hex>_<secret>`` (``lli`` = learnloop installation), so it can
never be mistaken for, or parsed as, a tenant key (``llk_``). It is created only by the
CLI (``learnloop keys create --installation``): whoever runs that can reach the database
and is the operator of the installation; no HTTP route creates one, so a tenant key can
never mint one. Stored as tenant keys are: salt + HMAC-SHA256, compared in constant time,
revocation effective on the next request.

An installation key does one thing: manage tenants (create them, give them keys, list
them). It reads no tenant's data; for that it creates a tenant key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ..errors import InvalidInput, NotFound
from ..events.keys import Unauthenticated, _digest, key_text, new_key, parse_key, secret_matches
from ..store.database import Conn
from ..store.validation import check_name

PREFIX = "lli_"
REDACT_RE = re.compile(r"lli_[0-9a-f]{32}_[A-Za-z0-9_-]+")
_COLS = "id, name, created_at, revoked_at, last_used_at"


@dataclass(frozen=True)
class InstallationPrincipal:
    key_id: UUID
    name: str


def create(conn: Conn, name: str) -> tuple[dict[str, Any], str]:
    """Create an installation key; returns (its record, the full key, shown once)."""
    check_name(name, "key name")
    key_id, secret, salt = new_key()
    row = conn.execute(
        f"INSERT INTO learnloop.installation_keys (id, name, salt, hash) VALUES (%s, %s, %s, %s) RETURNING {_COLS}",  # noqa: S608 - constant columns
        (key_id, name, salt, _digest(salt, secret)),
    ).fetchone()
    assert row is not None
    return dict(row), key_text(PREFIX, key_id, secret)


def list_keys(conn: Conn) -> list[dict[str, Any]]:
    return conn.execute(f"SELECT {_COLS} FROM learnloop.installation_keys ORDER BY created_at, id").fetchall()  # noqa: S608


def revoke(conn: Conn, key_id: UUID | str) -> dict[str, Any]:
    try:
        kid = key_id if isinstance(key_id, UUID) else UUID(str(key_id))
    except ValueError:
        raise InvalidInput(f"key id {key_id!r} is not a valid id (expected a UUID)") from None
    row = conn.execute(
        "UPDATE learnloop.installation_keys SET revoked_at = coalesce(revoked_at, now())"  # noqa: S608
        f" WHERE id = %s RETURNING {_COLS}", (kid,)).fetchone()
    if row is None:
        raise NotFound(f"installation key {kid} does not exist")
    return dict(row)


def is_installation_key(key: str | None) -> bool:
    return bool(key) and key.strip().startswith(PREFIX)  # type: ignore[union-attr]


def authenticate(conn: Conn, key: str | None) -> InstallationPrincipal:
    kid, secret = parse_key(key, PREFIX, "installation key")
    row = conn.execute("SELECT name, salt, hash, revoked_at FROM learnloop.installation_keys WHERE id = %s",
                       (kid,)).fetchone()
    if not secret_matches(row, secret) or row["revoked_at"] is not None:
        raise Unauthenticated("the installation key is not valid (unknown, wrong or revoked)")
    conn.execute("UPDATE learnloop.installation_keys SET last_used_at = now() WHERE id = %s"
                 " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')", (kid,))
    return InstallationPrincipal(kid, row["name"])
