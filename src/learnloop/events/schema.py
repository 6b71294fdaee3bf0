"""Service tables (API keys, archive state, live stream trigger) — filled in by the service issue."""

from ..store.migrations import MigrationSet

MIGRATIONS = MigrationSet("service", [])
