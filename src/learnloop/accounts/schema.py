"""Tables of the installation (above tenants) and per-tenant settings.

``installation_keys`` are not tenant data: they manage tenants. ``tenant_settings`` is
tenant data (its key leads with ``tenant_id``) holding the knobs an account may set for
itself, e.g. the latency above which a search emits ``search.slow``.
"""

from ..store.migrations import Migration, MigrationSet

M001_ACCOUNTS = """
CREATE TABLE learnloop.installation_keys (
    id           uuid PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    salt         bytea NOT NULL,
    hash         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_used_at timestamptz
);
COMMENT ON TABLE learnloop.installation_keys IS
    'Installation admin keys (create tenants and their first keys). Created only from the CLI, '
    'by whoever can reach the database; the secret is stored as HMAC-SHA256(salt, secret).';

CREATE TABLE learnloop.tenant_settings (
    tenant_id       uuid PRIMARY KEY REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    slow_search_ms  double precision CHECK (slow_search_ms > 0 AND slow_search_ms <= 600000),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN learnloop.tenant_settings.slow_search_ms IS
    'A search slower than this emits a search.slow event (NULL: the server''s LEARNLOOP_SLOW_SEARCH_MS).';
"""

MIGRATIONS = MigrationSet("accounts", [Migration("m001_installation_keys_tenant_settings", M001_ACCOUNTS)])
