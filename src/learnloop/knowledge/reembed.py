"""Re-embed a corpus with another model: one call, resumable, old vectors kept.

Every owner (chunk, entity, generation, term) that has a vector under some model but none
under the target model gets one, from the text stored with the existing vector
(``embeddings.content``), with the same filter columns and metadata. The old model's
vectors and index stay until ``drop_model`` is called, so searches keep working on the old
model while the new one fills (two models coexist). Batches commit one by one with an
``embeddings.reembedded`` event each; an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ..embeddings.base import EmbeddingProvider
from ..embeddings.cache import embed_with_cache
from ..errors import InvalidInput, NotFound
from ..events.outbox import emit
from ..store.tenancy import Scope
from .vectors import EmbeddingRow, ensure_index, index_name, upsert_embeddings

_PENDING = """
SELECT DISTINCT ON (e.owner_type, e.owner_id)
       e.owner_type, e.owner_id, e.project_id, e.content, e.entity_type, e.user_ref, e.document_id, e.metadata
FROM learnloop.embeddings e
WHERE e.tenant_id = %(tenant_id)s
  AND (%(project_id)s::uuid IS NULL OR e.project_id = %(project_id)s)
  AND (%(from_model)s::text IS NULL OR e.model = %(from_model)s)
  AND e.model <> %(model)s
  AND NOT EXISTS (SELECT 1 FROM learnloop.embeddings t
                  WHERE t.tenant_id = %(tenant_id)s AND t.owner_type = e.owner_type
                    AND t.owner_id = e.owner_id AND t.model = %(model)s)
ORDER BY e.owner_type, e.owner_id, e.created_at DESC
LIMIT %(limit)s
"""


def reembed(conn: psycopg.Connection, scope: Scope, provider: EmbeddingProvider, *,
            from_model: str | None = None, all_projects: bool = False, batch_size: int = 256,
            on_batch: Any = None) -> dict[str, Any]:
    if not 1 <= batch_size <= 10_000:
        raise InvalidInput("batch_size must be between 1 and 10000", field="batch_size")
    if from_model == provider.model_id:
        raise InvalidInput("the source and target models are the same", field="model")
    t0 = time.perf_counter()
    ensure_index(conn, provider.model_id, provider.dimensions)
    params = {"tenant_id": scope.tenant_id, "project_id": None if all_projects else scope.project_id,
              "from_model": from_model, "model": provider.model_id, "limit": batch_size}
    done = 0
    while True:
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(_PENDING, params).fetchall()
        if not rows:
            break
        vectors = embed_with_cache(conn, scope.tenant_id, provider, [r["content"] for r in rows])
        with conn.transaction():
            upsert_embeddings(conn, scope, provider.model_id, [
                EmbeddingRow(r["owner_type"], r["owner_id"], r["content"], v, entity_type=r["entity_type"],
                             user_ref=r["user_ref"], document_id=r["document_id"], metadata=r["metadata"],
                             project_id=r["project_id"])
                for r, v in zip(rows, vectors, strict=True)
            ], dimensions=provider.dimensions)
            emit(conn, scope.tenant_id, "embeddings", provider.model_id, "embeddings.reembedded",
                 {"model": provider.model_id, "from_model": from_model, "count": len(rows)},
                 project_id=None if all_projects else scope.project_id)
        done += len(rows)
        if on_batch:
            on_batch(done)
    return {"model": provider.model_id, "reembedded": done, "index": index_name(provider.model_id),
            "seconds": round(time.perf_counter() - t0, 3)}


def drop_model(conn: psycopg.Connection, scope: Scope, model: str) -> int:
    """Delete this tenant's vectors of ``model`` (all projects); the index stays for other tenants."""
    with conn.transaction():
        cur = conn.execute("DELETE FROM learnloop.embeddings WHERE tenant_id = %s AND model = %s",
                           (scope.tenant_id, model))
        n = cur.rowcount
        if n == 0:
            raise NotFound(f"this tenant has no vectors of model {model!r}")
        emit(conn, scope.tenant_id, "embeddings", model, "embeddings.dropped", {"model": model, "count": n})
    return n


def model_counts(conn: psycopg.Connection, scope: Scope, *, all_projects: bool = False) -> list[dict[str, Any]]:
    """Vectors per model and owner type in this project (or tenant), as `learnloop reembed` reports."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT model, owner_type, count(*) AS vectors FROM learnloop.embeddings"
            " WHERE tenant_id = %s AND (%s::uuid IS NULL OR project_id = %s) GROUP BY 1, 2 ORDER BY 1, 2",
            (scope.tenant_id, None if all_projects else scope.project_id, None if all_projects else scope.project_id),
        ).fetchall()
