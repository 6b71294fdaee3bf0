"""``client.knowledge``: documents, app entities, generation vectors, re-embedding (and search).

A thin facade: each method borrows a pooled connection and calls the module that owns the
SQL (``documents``, ``entities``, ``generations``, ``reembed``, ``vectors``). The
embedding provider comes from settings (``LEARNLOOP_EMBEDDING_PROVIDER``/``MODEL``) and is
shared by the process; ``with_provider(p)`` returns a facade bound to another one.

Search methods are contributed by ``learnloop.knowledge.search.SearchMixin`` when that
module exists; it can rely on ``self._c`` (the Client), ``self.provider`` and
``self.embed(texts)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from uuid import UUID

import numpy as np

from ..embeddings.base import EmbeddingProvider, get_provider
from ..embeddings.cache import embed_with_cache
from . import documents as _docs
from . import entities as _ent
from . import generations as _gens
from . import languages as _lang
from . import reembed as _re
from . import vectors as _vec

try:
    from .search import SearchMixin as _Base
except ImportError as _exc:  # search not built (or not importable) yet: plain base
    if getattr(_exc, "name", None) not in (f"{__package__}.search", None):
        raise
    _Base = object  # type: ignore[assignment,misc]


class Knowledge(_Base):  # type: ignore[misc,valid-type]
    def __init__(self, client: Any, provider: EmbeddingProvider | None = None) -> None:
        self._c = client
        self._bound = provider

    @property
    def provider(self) -> EmbeddingProvider:
        """The project's embedding model (``set_model``), else the server's."""
        if self._bound is None:
            ps = _lang.settings(self._c.db, self._c.scope)
            if ps["embedding_model"]:
                self._bound = get_provider(ps["embedding_provider"], model=ps["embedding_model"],
                                           settings=self._c.settings)
            else:
                self._bound = get_provider(settings=self._c.settings)
        return self._bound

    # -- project language and model (knowledge.languages) ---------------------------------
    def language(self) -> str:
        """The project's full-text language (a PostgreSQL text search configuration)."""
        return _lang.language(self._c.db, self._c.scope)

    def set_language(self, language: str) -> int:
        """Stem this project's texts as ``language`` (e.g. "spanish"; one of
        ``pg_ts_config``): new rows, rows already stored (returns how many were re-stemmed),
        and full-text/hybrid queries."""
        with self._c.db.connection() as conn:
            return _lang.set_language(self._c.db, conn, self._c.scope, language)

    def set_model(self, provider: EmbeddingProvider | str, *, model: str | None = None) -> EmbeddingProvider:
        """Embed this project's writes and queries with ``provider`` ("local" with a
        sentence-transformers name or path, "openai" with an OpenAI-compatible model, or
        an instance). Refused when vectors of other dimensions are stored under its name."""
        if isinstance(provider, str):
            provider = get_provider(provider, model=model, settings=self._c.settings)
        with self._c.db.connection() as conn:
            _lang.set_model(self._c.db, conn, self._c.scope, provider)
        self._bound = provider
        return provider

    def with_provider(self, provider: EmbeddingProvider | str, *, model: str | None = None) -> Knowledge:
        """This facade with another provider: an instance, or a name ("local", "openai")."""
        if isinstance(provider, str):
            provider = get_provider(provider, model=model, settings=self._c.settings)
        return type(self)(self._c, provider)

    # -- embeddings -----------------------------------------------------------------------
    def embed(self, texts: list[str]) -> np.ndarray:
        """Vectors for texts through the cache (the same text is never embedded twice)."""
        with self._c.db.connection() as conn:
            return embed_with_cache(conn, self._c.scope.tenant_id, self.provider, list(texts))

    def ensure_index(self, *, m: int = 16, ef_construction: int = 64) -> str:
        """Create the provider model's HNSW index now (otherwise done on first write)."""
        with self._c.db.connection() as conn:
            return _vec.ensure_index(conn, self.provider.model_id, self.provider.dimensions, m, ef_construction)

    def indexes(self) -> list[dict[str, Any]]:
        with self._c.db.connection() as conn:
            return _vec.list_indexes(conn)

    # -- documents ------------------------------------------------------------------------
    def ingest(self, path: str | os.PathLike[str], **options: Any) -> _docs.IngestResult:
        """Ingest one file (title=, description=, metadata=, source=, force=)."""
        return _docs.ingest_file(self._c.db, self._c.scope, self.provider, self._c.settings, path, **options)

    def ingest_bytes(self, data: bytes, *, file_name: str, **options: Any) -> _docs.IngestResult:
        return _docs.ingest_bytes(self._c.db, self._c.scope, self.provider, self._c.settings, data,
                                  file_name=file_name, **options)

    def ingest_many(self, paths: Iterable[str | os.PathLike[str]],
                    on_result: Callable[[_docs.IngestResult], None] | None = None,
                    **options: Any) -> list[_docs.IngestResult]:
        """Files and folders (recursively); one result per file, failures included."""
        return _docs.ingest_many(self._c.db, self._c.scope, self.provider, self._c.settings, paths,
                                 on_result=on_result, **options)

    def documents(self, *, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        with self._c.db.connection() as conn:
            return _docs.list_documents(conn, self._c.scope, status=status, limit=limit)

    def document(self, document_id: UUID | str, *, chunks: bool = False) -> dict[str, Any]:
        with self._c.db.connection() as conn:
            return _docs.get_document(conn, self._c.scope, document_id, with_chunks=chunks)

    def retrieved(self, generation_id: UUID | str) -> Any:
        """A generation's retrieved entries with their chunk text and document (title, file)."""
        from .retrieved import retrieved_context

        with self._c.db.connection() as conn:
            return retrieved_context(conn, self._c.scope, generation_id)

    def set_document_active(self, document_id: UUID | str, active: bool) -> None:
        with self._c.db.connection() as conn:
            _docs.set_active(conn, self._c.scope, document_id, active)

    def delete_document(self, document_id: UUID | str) -> None:
        with self._c.db.connection() as conn:
            _docs.delete_document(conn, self._c.scope, document_id)

    # -- app entities ---------------------------------------------------------------------
    def upsert_entity(self, entity_type: str, entity_id: str, text: str, user_ref: str | None = None,
                      metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Index an app record; upsert by (entity_type, entity_id). Returns {id, created, ...}."""
        return self.upsert_entities([{"entity_type": entity_type, "entity_id": entity_id, "text": text,
                                      "user_ref": user_ref, "metadata": dict(metadata or {})}])[0]

    def patch_entity(self, entity_type: str, entity_id: str, *, text: str | None = None,
                     metadata: Mapping[str, Any] | None = None, replace_metadata: bool = False,
                     user_ref: Any = _ent.UNSET) -> dict[str, Any]:
        """Change part of an entity: ``metadata`` merged (None removes a key), ``text`` if
        given, ``user_ref=`` if given. Returns the entity as stored."""
        self.ensure_index()  # outside the write's transaction (a new model's index)
        with self._c.db.connection() as conn:
            return _ent.patch_entity(conn, self._c.scope, self.provider, entity_type, entity_id, text=text,
                                     metadata=metadata, replace_metadata=replace_metadata, user_ref=user_ref)

    def upsert_entities(self, items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Bulk upsert in one transaction (all or nothing)."""
        with self._c.db.connection() as conn:
            return _ent.upsert_entities(conn, self._c.scope, self.provider, list(items))

    def delete_entity(self, entity_type: str, entity_id: str) -> None:
        with self._c.db.connection() as conn:
            _ent.delete_entities(conn, self._c.scope, [(entity_type, entity_id)])

    def delete_entities(self, keys: Iterable[tuple[str, str]], *, missing_ok: bool = False) -> int:
        with self._c.db.connection() as conn:
            return _ent.delete_entities(conn, self._c.scope, keys, missing_ok=missing_ok)

    def entity(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        with self._c.db.connection() as conn:
            return _ent.get_entity(conn, self._c.scope, entity_type, entity_id)

    # -- generations ----------------------------------------------------------------------
    def embed_generations(self, *, what: str = "both", batch_size: int = 256, limit: int | None = None,
                          on_batch: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Embed not-yet-embedded generations of the project (prompt, output or both)."""
        with self._c.db.connection() as conn:
            return _gens.embed_generations(conn, self._c.scope, self.provider, what=what,
                                           batch_size=batch_size, limit=limit, on_batch=on_batch)

    def pending_generations(self, *, what: str = "both") -> int:
        with self._c.db.connection() as conn:
            return _gens.pending(conn, self._c.scope, self.provider.model_id, what)

    # -- models ---------------------------------------------------------------------------
    def reembed(self, *, from_model: str | None = None, all_projects: bool = False, batch_size: int = 256,
                on_batch: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Give every vector owner a vector of this facade's model (see ``knowledge.reembed``)."""
        with self._c.db.connection() as conn:
            return _re.reembed(conn, self._c.scope, self.provider, from_model=from_model,
                               all_projects=all_projects, batch_size=batch_size, on_batch=on_batch)

    def drop_model(self, model: str) -> int:
        with self._c.db.connection() as conn:
            return _re.drop_model(conn, self._c.scope, model)

    def model_counts(self, *, all_projects: bool = False) -> list[dict[str, Any]]:
        with self._c.db.connection() as conn:
            return _re.model_counts(conn, self._c.scope, all_projects=all_projects)
