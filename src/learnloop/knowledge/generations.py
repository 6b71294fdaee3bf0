"""Embedding ledger generations for "what worked before" retrieval, in bulk, off the log path.

``log`` never embeds (it would add the model's latency to every call). Instead
``embed_generations`` finds the generations of the project that have no vector for the
model yet and embeds them in batches: run it from a cron/worker, ``learnloop
embed-generations``, or after a bulk import. Each batch is one transaction with one
``generation.embedded`` event per generation.

The vector row of a generation (owner_type 'generation') carries ``entity_type`` = the
generation's kind, its ``user_ref``, and metadata for learn-from-success filters:
``verdict`` (POSITIVE/NEGATIVE/NEUTRAL or null, from ``generation_verdicts``),
``avg_rating``, ``positives``, ``negatives``, ``feedback_count``, ``tags`` (distinct
feedback tags), ``kind``, ``model`` and ``embedded`` (what text was embedded). Feedback
keeps arriving after a generation is embedded, so every run first refreshes that metadata
(``refresh_metadata``) for generations whose feedback changed.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ..embeddings.base import EmbeddingProvider
from ..embeddings.cache import embed_with_cache
from ..errors import InvalidInput
from ..events.outbox import emit, emit_many
from ..ledger import verdicts
from ..store.tenancy import Scope
from .vectors import EmbeddingRow, ensure_index, upsert_embeddings

WHAT = ("prompt", "output", "both")

# The text of a generation for each choice; NULL when there is nothing to embed.
_TEXT = {
    "prompt": "nullif(btrim(g.prompt), '')",
    "output": "nullif(btrim(g.output_text), '')",
    "both": "nullif(btrim(concat_ws(E'\\n\\n', nullif(btrim(g.prompt), ''), nullif(btrim(g.output_text), ''))), '')",
}

_FEEDBACK = """
    v.verdict, v.avg_rating, coalesce(v.positives, 0) AS positives, coalesce(v.negatives, 0) AS negatives,
    coalesce(v.feedback_count, 0) AS feedback_count,
    coalesce((SELECT array_agg(DISTINCT t ORDER BY t) FROM learnloop.feedback f, unnest(f.tags) AS t
              WHERE f.tenant_id = %(tenant_id)s AND f.generation_id = g.id), '{}') AS tags
"""


def _pending_sql(what: str) -> str:
    return f"""
SELECT g.id, g.kind, g.user_ref, g.model, {_TEXT[what]} AS text, {_FEEDBACK}
FROM learnloop.generations g
LEFT JOIN learnloop.generation_verdicts v ON v.tenant_id = g.tenant_id AND v.generation_id = g.id
WHERE g.tenant_id = %(tenant_id)s AND g.project_id = %(project_id)s
  AND {_TEXT[what]} IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM learnloop.embeddings e
                  WHERE e.tenant_id = %(tenant_id)s AND e.owner_type = 'generation'
                    AND e.owner_id = g.id AND e.model = %(model)s)
ORDER BY g.id
LIMIT %(limit)s
"""  # noqa: S608 - fragments are constants chosen from _TEXT


def _metadata(r: dict[str, Any], what: str) -> dict[str, Any]:
    return {
        "kind": r["kind"], "model": r["model"], "verdict": r["verdict"],
        "avg_rating": float(r["avg_rating"]) if r["avg_rating"] is not None else None,
        "positives": int(r["positives"]), "negatives": int(r["negatives"]),
        "feedback_count": int(r["feedback_count"]), "tags": list(r["tags"]), "embedded": what,
    }


def pending(conn: psycopg.Connection, scope: Scope, model: str, what: str = "both") -> int:
    _check_what(what)
    sql_text = f"SELECT count(*) AS n FROM ({_pending_sql(what)}) p"  # noqa: S608
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(sql_text, {"tenant_id": scope.tenant_id, "project_id": scope.project_id,
                                     "model": model, "limit": None}).fetchone()
    return int(row["n"]) if row else 0


def embed_generations(conn: psycopg.Connection[Any], scope: Scope, provider: EmbeddingProvider, *,
                      what: str = "both", batch_size: int = 256, limit: int | None = None,
                      on_batch: Any = None) -> dict[str, Any]:
    """Embed every not-yet-embedded generation of the project (up to ``limit``)."""
    _check_what(what)
    if not 1 <= batch_size <= 10_000:
        raise InvalidInput("batch_size must be between 1 and 10000", field="batch_size")
    if limit is not None and limit < 0:
        raise InvalidInput("limit must be zero or more", field="limit")
    t0 = time.perf_counter()
    ensure_index(conn, provider.model_id, provider.dimensions)
    refreshed = refresh_metadata(conn, scope, provider.model_id)
    done = batches = 0
    q = _pending_sql(what)
    while limit is None or done < limit:
        n = batch_size if limit is None else min(batch_size, limit - done)
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(q, {"tenant_id": scope.tenant_id, "project_id": scope.project_id,
                                   "model": provider.model_id, "limit": n}).fetchall()
        if not rows:
            break
        vectors = embed_with_cache(conn, scope.tenant_id, provider, [r["text"] for r in rows])
        with conn.transaction():
            upsert_embeddings(conn, scope, provider.model_id, [
                EmbeddingRow("generation", r["id"], r["text"], v, entity_type=r["kind"], user_ref=r["user_ref"],
                             metadata=_metadata(r, what))
                for r, v in zip(rows, vectors, strict=True)
            ], dimensions=provider.dimensions)
            emit_many(conn, [
                (scope.tenant_id, scope.project_id, "generation", r["id"], "generation.embedded",
                 {"model": provider.model_id, "embedded": what}, None)
                for r in rows
            ])
        done += len(rows)
        batches += 1
        if on_batch:
            on_batch(done)
    return {"embedded": done, "batches": batches, "metadata_refreshed": refreshed,
            "model": provider.model_id, "seconds": round(time.perf_counter() - t0, 3)}


_REFRESH = f"""
WITH current AS (
    SELECT e.id AS embedding_id, jsonb_build_object(
        'verdict', verdict, 'avg_rating', avg_rating, 'positives', positives, 'negatives', negatives,
        'feedback_count', feedback_count, 'tags', to_jsonb(tags)) AS patch
    FROM (SELECT e.id, {_FEEDBACK}
    FROM learnloop.embeddings e
    JOIN learnloop.generations g ON g.tenant_id = e.tenant_id AND g.id = e.owner_id
    LEFT JOIN learnloop.generation_verdicts v ON v.tenant_id = g.tenant_id AND v.generation_id = g.id
    WHERE e.tenant_id = %(tenant_id)s AND e.project_id = %(project_id)s
      AND e.owner_type = 'generation' AND e.model = %(model)s) e
)
UPDATE learnloop.embeddings e SET metadata = e.metadata || c.patch
FROM current c
WHERE e.tenant_id = %(tenant_id)s AND e.id = c.embedding_id
  AND (e.metadata -> 'verdict', e.metadata -> 'avg_rating', e.metadata -> 'feedback_count', e.metadata -> 'tags')
      IS DISTINCT FROM
      (c.patch -> 'verdict', c.patch -> 'avg_rating', c.patch -> 'feedback_count', c.patch -> 'tags')
"""  # noqa: S608 - _FEEDBACK is a constant


def refresh_metadata(conn: psycopg.Connection, scope: Scope, model: str) -> int:
    """Bring verdict/rating/tags on generation vectors up to date with the feedback."""
    verdicts.settle(conn, scope.tenant_id)
    with conn.transaction():
        cur = conn.execute(_REFRESH, {"tenant_id": scope.tenant_id, "project_id": scope.project_id, "model": model})
        n = cur.rowcount
        if n:
            emit(conn, scope.tenant_id, "generation", "*", "generation.embeddings_refreshed",
                 {"model": model, "count": n}, project_id=scope.project_id)
    return n


def _check_what(what: str) -> None:
    if what not in WHAT:
        raise InvalidInput(f"what must be one of {', '.join(WHAT)}, got {what!r}", field="what")
