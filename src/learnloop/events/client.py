"""``client.events``: the outbox, the Parquet archive, DuckDB analytics, live subscription.

    ll.events.emit("goal.completed", entity=("goal", "g-17"), user="u-3", payload={"score": 0.9})
    ll.events.list(after=0, event_types=["feedback.added"])
    ll.events.archive()                       # one pass into LEARNLOOP_ARCHIVE_ROOT
    ll.events.by_type_and_day(days=30)        # archive + live, DuckDB
    ll.events.activity(days=7)                # per user, seed 003's productivity report
    ll.events.sql("SELECT event_type, count(*) FROM events GROUP BY 1")
    for ev in ll.events.subscribe(after=0, timeout=5): ...

Reads are scoped to the client's tenant. Archiving, compaction and retention are
installation-wide (one archiver serves every tenant).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from . import app_events as _app
from . import archive as _archive
from . import cursor as _cursor
from . import keys as _keys
from . import query as _query
from . import stream as _stream


class Events:
    def __init__(self, client: Any) -> None:
        self._c = client

    @property
    def archive_root(self) -> str:
        root = getattr(self._c.settings, "archive_root", None)
        return str(root) if root else str(Path(self._c.settings.home) / "archive")

    # -- outbox -------------------------------------------------------------------------
    def emit(self, event_type: str, *, entity: Any = None, payload: dict[str, Any] | None = None,
             user: str | None = None) -> dict[str, Any]:
        """Write an app-defined event (see :mod:`learnloop.events.app_events` for the rules).

        ``entity``: ``(entity_type, entity_id)``; ``user``: who did it (the archive's
        ``actor`` column). Returns the stored event with its id."""
        sc = self._c.scope
        with self._c.db.transaction() as conn:
            return _app.emit(conn, sc.tenant_id, sc.project_id, event_type, entity=entity, payload=payload, user=user)

    def list(self, *, after: int = 0, entity_types: Sequence[str] = (), event_types: Sequence[str] = (),
             limit: int = 100) -> list[dict[str, Any]]:
        """This tenant's stable events after event id ``after``, in commit-safe order."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be a whole number from 1 to 10000", field="limit")
        sc = self._c.scope
        with self._c.db.connection() as conn:
            pos = _cursor.position_of(conn, sc.tenant_id, after)
            out: list[dict[str, Any]] = []
            while len(out) < limit:
                rows, nxt = _cursor.stable_events(conn, pos, tenant_id=sc.tenant_id, entity_types=entity_types,
                                                  event_types=event_types, limit=limit)
                out.extend(rows)
                if nxt == pos:
                    break
                pos = nxt
        return out[:limit]

    def subscribe(self, *, after: int | None = None, entity_types: Sequence[str] = (),
                  event_types: Sequence[str] = (), timeout: float | None = None,
                  poll: float = 1.0) -> Iterator[dict[str, Any]]:
        """Live events (LISTEN/NOTIFY). ``after=None``: from now on; ``after=N``: resume after id N."""
        sc = self._c.scope
        pos = None
        if after is not None:
            with self._c.db.connection() as conn:
                pos = _cursor.position_of(conn, sc.tenant_id, after)
        return _stream.subscribe(self._c.db, sc.tenant_id, after=pos, entity_types=entity_types,
                                 event_types=event_types, timeout=timeout, poll=poll)

    # -- archive ------------------------------------------------------------------------
    def archive(self, *, root: str | None = None, compact: bool = False) -> dict[str, Any]:
        return _archive.Archiver(self._c.db, root or self.archive_root).run(compact=compact).as_dict()

    def prune(self, *, older_than_days: float, root: str | None = None) -> int:
        return _archive.Archiver(self._c.db, root or self.archive_root).prune(older_than_days=older_than_days)

    def archive_status(self) -> dict[str, Any]:
        return _archive.status(self._c.db)

    # -- analytics ----------------------------------------------------------------------
    def duckdb(self, *, root: str | None = None, live: bool = True) -> Any:
        """A DuckDB connection with an ``events`` view (this tenant: archive + live)."""
        sc = self._c.scope
        return _query.open_duckdb(self._c.db, root or self.archive_root, sc.tenant_id, sc.tenant, live=live)

    def sql(self, query: str, *, root: str | None = None, max_rows: int = _query.MAX_ROWS,
            caller: Any = None) -> dict[str, Any]:
        """Run one read-only DuckDB query over ``events``, within the settings' limits
        (``sql_timeout``, ``sql_memory_limit``, ``sql_threads``; ``sql_concurrency`` at
        once per ``caller``, default this tenant)."""
        s, sc = self._c.settings, self._c.scope
        with _query.GATE.slot((sc.tenant_id, caller), s.sql_concurrency):
            con = _query.open_duckdb(self._c.db, root or self.archive_root, sc.tenant_id, sc.tenant,
                                     memory_limit=s.sql_memory_limit, threads=s.sql_threads)
            try:
                return _query.run_sql(con, query, max_rows=max_rows, timeout=s.sql_timeout)
            finally:
                con.close()

    # Below the method ``list``, a bare ``list[...]`` in a signature names that method: builtins.list.
    def by_type_and_day(self, *, days: int | None = None, root: str | None = None) -> builtins.list[dict[str, Any]]:
        con = self.duckdb(root=root)
        try:
            return _query.by_type_and_day(con, days)
        finally:
            con.close()

    def activity(self, *, days: int = 7, root: str | None = None) -> builtins.list[dict[str, Any]]:
        con = self.duckdb(root=root)
        try:
            return _query.activity(con, days)
        finally:
            con.close()

    # -- API keys (this tenant) ---------------------------------------------------------
    def create_key(self, name: str, scopes: Any = ("read", "ingest")) -> tuple[dict[str, Any], str]:
        with self._c.db.connection() as conn:
            return _keys.create(conn, self._c.scope.tenant_id, name, list(scopes) if not isinstance(scopes, str) else scopes)

    def list_keys(self) -> builtins.list[dict[str, Any]]:
        with self._c.db.connection() as conn:
            return _keys.list_keys(conn, self._c.scope.tenant_id)

    def revoke_key(self, key_id: Any) -> dict[str, Any]:
        with self._c.db.connection() as conn:
            return _keys.revoke(conn, self._c.scope.tenant_id, key_id)

    def set_key_scopes(self, key_id: Any, scopes: Any) -> dict[str, Any]:
        with self._c.db.connection() as conn:
            return _keys.set_scopes(conn, self._c.scope.tenant_id, key_id, scopes)
