"""Console tables: browser sessions and one-time sign-in links.

A session belongs to the API key that opened it (its tenant and scopes are the key's), so
revoking the key ends every session it opened: authentication joins the key on each request.
"""

from ..store.migrations import Migration, MigrationSet

M001_SESSIONS = """
CREATE TABLE learnloop.console_sessions (
    tenant_id   uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    key_id      uuid NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('login', 'session')),
    hash        bytea NOT NULL,
    csrf        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, key_id) REFERENCES learnloop.api_keys (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE learnloop.console_sessions IS
    'Console sign-in: one-time login links (kind login) and browser sessions (kind session). '
    'Only SHA-256 of the secret is stored; a session is valid while its key is not revoked.';
-- The cookie carries the id, so authentication finds the row before knowing the tenant.
CREATE UNIQUE INDEX console_sessions_id_idx ON learnloop.console_sessions (id);
CREATE INDEX console_sessions_expiry_idx ON learnloop.console_sessions (expires_at);
"""

MIGRATIONS = MigrationSet("console", [Migration("m001_sessions", M001_SESSIONS)])
