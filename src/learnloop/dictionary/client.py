"""``client.dictionary``: the semantic dictionary, the field catalog and improvements.

    ll.dictionary.add({"word": "cédula", "table_name": "clientes", "field_name": "cedula",
                       "synonyms": ["documento", "DNI"]})
    ll.dictionary.lookup("número de documento del cliente")   # -> clientes.cedula, score
    ll.dictionary.introspect("postgresql://.../rapicredit", schema="public")
    ll.dictionary.describe("prestamos", "estado", definition="...", because_of=feedback_id)

The embedding provider is ``learnloop.embeddings.get_provider()`` (settings-driven),
created on first need; pass ``embedder=`` to use another (or ``None`` to skip vectors,
in which case lookup stops after the exact and synonym stages).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from . import catalog as _cat
from . import improvements as _imp
from . import terms as _terms

_DEFAULT = object()


class Dictionary:
    def __init__(self, client: Any, embedder: Any = _DEFAULT) -> None:
        self._c = client
        self._embedder = embedder

    @property
    def embedder(self) -> Any:
        if self._embedder is _DEFAULT:
            from ..embeddings import get_provider

            self._embedder = get_provider(settings=self._c.settings)
        return self._embedder

    def with_embedder(self, embedder: Any) -> Dictionary:
        return Dictionary(self._c, embedder)

    # -- terms ---------------------------------------------------------------------------
    def add(self, term: dict[str, Any] | None = None, /, *, because_of: UUID | str | None = None,
            note: str | None = None, by: str | None = None, **fields: Any) -> dict[str, Any]:
        data = term if term is not None else fields
        with self._c.db.connection() as conn:
            return _terms.add(conn, self._c.scope, self.embedder, data, because_of=because_of, note=note, by=by)

    def update(self, word: str | UUID, /, *, because_of: UUID | str | None = None, note: str | None = None,
               by: str | None = None, **changes: Any) -> dict[str, Any]:
        with self._c.db.connection() as conn:
            return _terms.update(conn, self._c.scope, self.embedder, word, changes, because_of=because_of,
                                 note=note, by=by)

    def deactivate(self, word: str | UUID, **kw: Any) -> dict[str, Any]:
        return self.update(word, active=False, **kw)

    def get(self, word: str | UUID) -> dict[str, Any]:
        with self._c.db.connection() as conn:
            return _terms.get(conn, self._c.scope, word)

    def terms(self, *, category: str | None = None, include_inactive: bool = False) -> list[dict[str, Any]]:
        with self._c.db.connection() as conn:
            return _terms.list_terms(conn, self._c.scope, category=category, include_inactive=include_inactive)

    def lookup(self, phrase: str, *, k: int = 5, min_score: float = 0.3) -> list[dict[str, Any]]:
        """Exact word, then synonym, then semantic similarity; each hit names table.field with a score."""
        with self._c.db.connection() as conn:
            first = _terms.lookup(conn, self._c.scope, None, phrase, k=k, min_score=min_score)
            if first:
                return first
            if self.embedder is None:
                return []
            return _terms.lookup(conn, self._c.scope, self.embedder, phrase, k=k, min_score=min_score)

    # -- catalog -------------------------------------------------------------------------
    def introspect(self, url: str, schema: str = "public", *, by: str | None = None) -> dict[str, Any]:
        with self._c.db.connection() as conn:
            return _cat.introspect(conn, self._c.scope, url, schema, by=by)

    def describe(self, table: str, field: str, /, *, schema: str = "public", create: bool = False,
                 because_of: UUID | str | None = None, note: str | None = None, by: str | None = None,
                 **changes: Any) -> dict[str, Any]:
        with self._c.db.connection() as conn:
            return _cat.describe(conn, self._c.scope, table, field, schema=schema, create=create,
                                 because_of=because_of, note=note, by=by, **changes)

    def field(self, table: str, field: str, *, schema: str = "public") -> dict[str, Any]:
        with self._c.db.connection() as conn:
            return _cat.get_field(conn, self._c.scope, table, field, schema)

    def fields(self, *, table: str | None = None, schema: str | None = None,
               include_missing: bool = False) -> list[dict[str, Any]]:
        with self._c.db.connection() as conn:
            return _cat.list_fields(conn, self._c.scope, table=table, schema=schema, include_missing=include_missing)

    # -- improvements --------------------------------------------------------------------
    def improvements(self, *, feedback_id: UUID | str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Changes made because of ratings; for one feedback id, or the latest of the project."""
        with self._c.db.connection() as conn:
            if feedback_id is not None:
                return _imp.for_feedback(conn, self._c.scope, feedback_id)
            return _imp.list_all(conn, self._c.scope, limit)

    def history(self, word: str | UUID) -> list[dict[str, Any]]:
        """Improvements that touched a term."""
        with self._c.db.connection() as conn:
            t = _terms.get(conn, self._c.scope, word)
            return _imp.for_target(conn, self._c.scope, "term", t["id"])
