"""``embed_with_cache``: look texts up by (model, content hash); embed only the misses.

The cache is ``learnloop.embedding_cache``, keyed by (tenant, model, 'sha256:<hex>'). A
text is embedded at most once per tenant and model, however many documents, entities or
queries contain it; duplicates inside one batch are embedded once too. Cache rows are a
memo of a pure function (same model + same text = same vector), not user data, so writing
them emits no outbox event. New rows go in by binary COPY in their own (sub)transaction;
a concurrent writer of the same text is harmless (ON CONFLICT DO NOTHING).
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from ..errors import InvalidInput
from ..store.validation import check_text
from .base import EmbeddingProvider, as_array, content_hash, normalize
from .metrics import METRICS


def embed_with_cache(
    conn: psycopg.Connection[Any],
    tenant_id: UUID,
    provider: EmbeddingProvider,
    texts: list[str],
    *,
    write: bool = True,
    lookups: dict[str, int] | None = None,
) -> np.ndarray:
    """Vectors for ``texts`` in input order, float32 (n, provider.dimensions).

    ``lookups``: a dict to which this call adds its ``hits`` and ``misses`` (search counts
    its own, per tenant and project, beside the process-wide ``METRICS``)."""
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidInput(f"text #{i} to embed is a {type(t).__name__}, not a string", field="text")
        check_text(t, "text")
    dims = provider.dimensions
    out = np.zeros((len(texts), dims), dtype=np.float32)
    if not texts:
        return out
    hashes = [content_hash(t) for t in texts]
    unique = list(dict.fromkeys(hashes))
    found: dict[str, np.ndarray] = {}
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(
            "SELECT content_hash, embedding FROM learnloop.embedding_cache"
            " WHERE tenant_id = %s AND model = %s AND content_hash = ANY(%s)",
            (tenant_id, provider.model_id, unique),
        )
        for h, vec in cur:
            arr = as_array(vec)
            if arr.shape == (dims,):
                found[h] = arr
    first_text = {h: t for h, t in zip(reversed(hashes), reversed(texts), strict=True)}
    missing = [h for h in unique if h not in found]
    seconds = 0.0
    if missing:
        t0 = time.perf_counter()
        fresh = normalize(provider.embed([first_text[h] for h in missing]), dims)
        seconds = time.perf_counter() - t0
        if fresh.shape[0] != len(missing):
            raise InvalidInput(
                f"the embedding provider returned {fresh.shape[0]} vectors for {len(missing)} texts",
                field="embedding",
            )
        new = dict(zip(missing, fresh, strict=True))
        found.update(new)
        if write:
            _store(conn, tenant_id, provider.model_id, new)
    # A miss is a text the provider had to embed; every other text asked for (cached, or a
    # repeat inside this batch) is a hit, since it cost no model call.
    METRICS.record(hits=len(hashes) - len(missing), misses=len(missing), seconds=seconds,
                   calls=1 if missing else 0)
    if lookups is not None:
        lookups["hits"] = lookups.get("hits", 0) + len(hashes) - len(missing)
        lookups["misses"] = lookups.get("misses", 0) + len(missing)
    for i, h in enumerate(hashes):
        out[i] = found[h]
    return out


# Up to this many new vectors go in with one INSERT ... VALUES (a query's cache miss is
# one); larger batches (ingestion) keep the binary COPY through a temporary table.
SMALL_WRITE = 32


def _store(conn: psycopg.Connection, tenant_id: UUID, model: str, vectors: dict[str, np.ndarray]) -> None:
    if len(vectors) <= SMALL_WRITE:
        _store_small(conn, tenant_id, model, vectors)
        return
    tmp = sql.Identifier(f"_ll_cache_{uuid4().hex[:12]}")
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE TEMP TABLE {} (content_hash text, embedding vector) ON COMMIT DROP").format(tmp))
        with cur.copy(sql.SQL("COPY {} (content_hash, embedding) FROM STDIN (FORMAT BINARY)").format(tmp)) as copy:
            copy.set_types(["text", "vector"])
            for h, v in vectors.items():
                copy.write_row((h, v))
        cur.execute(
            sql.SQL(
                "INSERT INTO learnloop.embedding_cache (tenant_id, model, content_hash, embedding)"
                " SELECT %s, %s, content_hash, embedding FROM {} ON CONFLICT DO NOTHING"
            ).format(tmp),
            (tenant_id, model),
        )


def _store_small(conn: psycopg.Connection, tenant_id: UUID, model: str, vectors: dict[str, np.ndarray]) -> None:
    """One statement, one round trip, and no wait for the WAL flush when we own the commit.

    The temporary table, COPY and explicit transaction of the bulk path cost ~3 ms for a
    single query's vector, most of it the synchronous commit. A cache row is a memo of a
    pure function: losing the last few on a crash only means embedding those texts again,
    so when the statement is its own (implicit) transaction it turns ``synchronous_commit``
    off for that transaction alone (``set_config(..., true)`` in the statement; the setting
    is read at commit). Inside a caller's transaction the caller's durability rules: the
    row goes in under a savepoint with the settings untouched.
    """
    values = sql.SQL(", ").join(sql.SQL("(%s::text, %s::vector)") for _ in vectors)
    params: list[object] = [x for h, v in vectors.items() for x in (h, v)]
    own = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE and conn.autocommit
    memo = sql.SQL(", (SELECT set_config('synchronous_commit', 'off', true)) s") if own else sql.SQL("")
    query = sql.SQL(
        "INSERT INTO learnloop.embedding_cache (tenant_id, model, content_hash, embedding)"
        " SELECT %s, %s, v.h, v.e FROM (VALUES {values}) v(h, e){memo} ON CONFLICT DO NOTHING"
    ).format(values=values, memo=memo)
    if own:
        conn.execute(query, [tenant_id, model, *params])
        return
    with conn.transaction():
        conn.execute(query, [tenant_id, model, *params])
