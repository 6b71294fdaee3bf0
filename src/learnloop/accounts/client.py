"""``client.accounts``: installation keys, tenants, this tenant's settings and search stats.

    key_rec, key = ll.accounts.create_installation_key("ops")   # lli_... (shown once)
    tenant, key_rec, key = ll.accounts.create_tenant("acme-dental")
    ll.accounts.set_settings(slow_search_ms=100)                  # this client's tenant
    ll.accounts.search_stats(days=7)

Installation keys and tenant creation act on the whole installation: a library caller
has the database, so it is the operator already. Settings and stats are the client's
tenant's.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from ..knowledge import metrics as _metrics
from . import installation as _inst
from . import tenants as _tenants


class Accounts:
    def __init__(self, client: Any) -> None:
        self._c = client

    # -- installation --------------------------------------------------------------------
    def create_installation_key(self, name: str) -> tuple[dict[str, Any], str]:
        with self._c.db.connection() as conn:
            return _inst.create(conn, name)

    def installation_keys(self) -> list[dict[str, Any]]:
        with self._c.db.connection() as conn:
            return _inst.list_keys(conn)

    def revoke_installation_key(self, key_id: UUID | str) -> dict[str, Any]:
        with self._c.db.connection() as conn:
            return _inst.revoke(conn, key_id)

    def create_tenant(self, name: str, *, key_name: str = "admin",
                      scopes: Any = ("admin",)) -> tuple[dict[str, Any], dict[str, Any], str]:
        with self._c.db.connection() as conn:
            return _tenants.create_tenant(conn, name, key_name=key_name, scopes=scopes)

    def tenants(self) -> list[dict[str, Any]]:
        with self._c.db.connection() as conn:
            return _tenants.list_tenants(conn)

    # -- this tenant ---------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        with self._c.db.connection() as conn:
            return _tenants.get_settings(conn, self._c.scope.tenant_id)

    def set_settings(self, *, slow_search_ms: float | None) -> dict[str, Any]:
        with self._c.db.connection() as conn:
            return _tenants.set_settings(conn, self._c.scope.tenant_id, slow_search_ms=slow_search_ms)

    def search_stats(self, *, days: int = 30, all_projects: bool = False) -> dict[str, Any]:
        """Search metrics of every process (this one's pending counts flushed first)."""
        _metrics.flush(self._c.db, quiet=True)
        sc = self._c.scope
        with self._c.db.connection() as conn:
            return _metrics.stored(conn, sc.tenant_id, None if all_projects else sc.project_id, days)
