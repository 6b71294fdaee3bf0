"""Writing vectors: the per-model HNSW index, bulk upserts, re-embedding with a new model.

The contract search relies on (keep it stable):

* every vector lives in ``learnloop.embeddings`` with its ``model``; the column is an
  untyped ``vector``;
* each model has exactly one partial expression index, recorded in
  ``learnloop.vector_indexes`` (model, dimensions, index_name, m, ef_construction)::

      CREATE INDEX <index_name> ON learnloop.embeddings
          USING hnsw ((embedding::vector(DIM)) vector_cosine_ops)
          WITH (m = 16, ef_construction = 64) WHERE model = '<model>'

* so a query that wants the index must repeat both the cast and the predicate:
  ``ORDER BY (embedding::vector(DIM)) <=> %s::vector(DIM)`` with ``WHERE model = %s``
  (and ``tenant_id = %s``: every query is tenant-scoped);
* vectors are stored L2-normalised, so cosine distance = 1 - dot product.

``upsert_embeddings`` checks every vector against the model's recorded dimensions and
raises ``InvalidInput`` before anything of the call is written (it runs in a savepoint of
the caller's transaction, so the caller's other writes roll back with it). It emits no
event itself: the operation that owns the vectors (document.ingested, entity.upserted,
generation.embedded, embeddings.reembedded) does, in the same transaction.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from ..errors import InvalidInput
from ..store.database import database_key
from ..store.ids import uuid7
from ..store.tenancy import Scope
from ..store.validation import check_json, check_text

log = logging.getLogger(__name__)

OWNER_TYPES = ("chunk", "entity", "generation", "term")
HNSW_MAX_DIMENSIONS = 2000  # pgvector's limit for HNSW on the vector type
_known: set[tuple[tuple[str, str, int], str, int]] = set()  # (database, model, dimensions)
_known_lock = threading.Lock()


@dataclass
class EmbeddingRow:
    owner_type: str
    owner_id: UUID
    content: str
    vector: Any
    entity_type: str | None = None
    user_ref: str | None = None
    document_id: UUID | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    project_id: UUID | None = None


def index_name(model: str) -> str:
    """A valid, stable identifier for a model's index (models may hold '/', '.', spaces)."""
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:30]
    return f"embeddings_hnsw_{slug}_{hashlib.sha256(model.encode()).hexdigest()[:8]}"


def _check_model(model: str, dimensions: int) -> None:
    if not isinstance(model, str) or not model or len(model) > 200:
        raise InvalidInput("embedding model id must be 1 to 200 characters", field="model")
    check_text(model, "model")
    if not isinstance(dimensions, int) or not 1 <= dimensions <= 16000:
        raise InvalidInput(f"dimensions must be between 1 and 16000, got {dimensions!r}", field="dimensions")


def recorded_dimensions(conn: psycopg.Connection, model: str) -> int | None:
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT dimensions FROM learnloop.vector_indexes WHERE model = %s", (model,)).fetchone()
    return None if row is None else int(row[0])


def ensure_index(conn: psycopg.Connection[Any], model: str, dimensions: int, m: int = 16,
                 ef_construction: int = 64) -> str:
    """Create (once) the model's partial HNSW index; return its name.

    A model is bound to its dimensions the first time it is seen: a second call with
    other dimensions raises InvalidInput (two models must have two names).
    """
    _check_model(model, dimensions)
    if not (2 <= m <= 100 and 4 <= ef_construction <= 1000 and ef_construction >= 2 * m):
        raise InvalidInput("HNSW needs 2 <= m <= 100 and 2*m <= ef_construction <= 1000", field="m")
    key = (database_key(conn), model, dimensions)
    if key in _known:
        return index_name(model)
    name = index_name(model)
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        # Two processes meeting a new model at once: the second waits, then finds the row.
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('learnloop.vector_indexes'), hashtext(%s))", (model,))
        row = cur.execute(
            "SELECT dimensions, index_name FROM learnloop.vector_indexes WHERE model = %s", (model,)
        ).fetchone()
        if row is not None:
            if row[0] != dimensions:
                raise InvalidInput(
                    f"model {model!r} is stored with {row[0]} dimensions, not {dimensions}; "
                    "give a different model a different name",
                    field="dimensions",
                )
            name = row[1]
        else:
            if dimensions <= HNSW_MAX_DIMENSIONS:
                cur.execute(
                    sql.SQL(
                        "CREATE INDEX IF NOT EXISTS {name} ON learnloop.embeddings USING hnsw"
                        " ((embedding::vector({dims})) vector_cosine_ops)"
                        " WITH (m = {m}, ef_construction = {efc}) WHERE model = {model}"
                    ).format(
                        name=sql.Identifier(name), dims=sql.Literal(dimensions), m=sql.Literal(m),
                        efc=sql.Literal(ef_construction), model=sql.Literal(model),
                    )
                )
            else:
                # pgvector cannot HNSW-index > 2000 dims of type vector; search stays exact.
                log.warning("model %s has %d dimensions: no HNSW index, searches are exact", model, dimensions)
                name = ""
            cur.execute(
                "INSERT INTO learnloop.vector_indexes (model, dimensions, index_name, m, ef_construction)"
                " VALUES (%s, %s, %s, %s, %s)",
                (model, dimensions, name, m, ef_construction),
            )
    with _known_lock:
        _known.add(key)
    return name


def list_indexes(conn: psycopg.Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(
            "SELECT model, dimensions, index_name, m, ef_construction, created_at"
            " FROM learnloop.vector_indexes ORDER BY created_at"
        ).fetchall()
    keys = ("model", "dimensions", "index_name", "m", "ef_construction", "created_at")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def _checked(rows: Iterable[EmbeddingRow], dimensions: int) -> list[tuple[EmbeddingRow, np.ndarray]]:
    out = []
    for i, r in enumerate(rows):
        if r.owner_type not in OWNER_TYPES:
            raise InvalidInput(f"owner_type must be one of {', '.join(OWNER_TYPES)}, got {r.owner_type!r}",
                               field="owner_type")
        vec = np.asarray(r.vector, dtype=np.float32)
        if vec.ndim != 1 or vec.shape[0] != dimensions:
            got = vec.shape[0] if vec.ndim == 1 else f"shape {vec.shape}"
            raise InvalidInput(
                f"vector #{i} has {got} dimensions; this model stores {dimensions}", field="embedding"
            )
        if not np.isfinite(vec).all():
            raise InvalidInput(f"vector #{i} contains NaN or infinity", field="embedding")
        check_text(r.content, "content")
        check_json(r.metadata, "metadata")
        out.append((r, vec))
    return out


def upsert_embeddings(conn: psycopg.Connection[Any], scope: Scope, model: str, rows: Sequence[EmbeddingRow],
                      *, dimensions: int | None = None) -> int:
    """Insert or replace the vectors of (owner_type, owner_id) for ``model``; binary COPY."""
    dims = dimensions or recorded_dimensions(conn, model)
    if dims is None:
        raise InvalidInput(f"no index for embedding model {model!r}; call ensure_index first", field="model")
    checked = _checked(rows, dims)
    if not checked:
        return 0
    tmp = sql.Identifier(f"_ll_emb_{uuid4().hex[:12]}")
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE TEMP TABLE {} (LIKE learnloop.embeddings INCLUDING DEFAULTS) ON COMMIT DROP").format(tmp)
        )
        cols = ("tenant_id", "id", "project_id", "owner_type", "owner_id", "model", "content_hash",
                "content", "embedding", "entity_type", "user_ref", "document_id", "metadata")
        from ..embeddings.base import content_hash

        with cur.copy(
            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                tmp, sql.SQL(", ").join(map(sql.Identifier, cols))
            )
        ) as copy:
            copy.set_types(["uuid", "uuid", "uuid", "text", "uuid", "text", "text", "text", "vector",
                            "text", "text", "uuid", "jsonb"])
            for r, vec in checked:
                copy.write_row((
                    scope.tenant_id, uuid7(), r.project_id or scope.project_id, r.owner_type, r.owner_id,
                    model, content_hash(r.content), r.content, vec, r.entity_type, r.user_ref,
                    r.document_id, Jsonb(r.metadata),
                ))
        collist = sql.SQL(", ").join(map(sql.Identifier, cols))
        # The tenant as a parameter, not the temp table's column, and EXCLUDED.created_at
        # (the column's default) rather than now(): Citus routes the rows by a constant
        # tenant and refuses functions that are not IMMUTABLE in DO UPDATE SET. ts_config:
        # the row's project's language (knowledge.languages), English by default.
        rest = sql.SQL(", ").join(sql.Identifier("t", c) for c in cols[1:])
        cur.execute(
            sql.SQL(
                "INSERT INTO learnloop.embeddings ({cols}, ts_config)"
                " SELECT %s, {rest}, coalesce(ps.language, 'english'::regconfig) FROM {tmp} t"
                " LEFT JOIN learnloop.project_settings ps ON ps.tenant_id = %s AND ps.project_id = t.project_id"
                " ON CONFLICT (tenant_id, owner_type, owner_id, model) DO UPDATE SET"
                " project_id = EXCLUDED.project_id, content_hash = EXCLUDED.content_hash,"
                " content = EXCLUDED.content, embedding = EXCLUDED.embedding,"
                " entity_type = EXCLUDED.entity_type, user_ref = EXCLUDED.user_ref,"
                " document_id = EXCLUDED.document_id, metadata = EXCLUDED.metadata,"
                " ts_config = EXCLUDED.ts_config, created_at = EXCLUDED.created_at"
            ).format(cols=collist, rest=rest, tmp=tmp),
            (scope.tenant_id, scope.tenant_id),
        )
    return len(checked)


def delete_owner_embeddings(conn: psycopg.Connection, scope: Scope, owner_type: str,
                            owner_ids: Sequence[UUID]) -> int:
    """Every model's vectors of these owners (tenant-scoped)."""
    cur = conn.execute(
        "DELETE FROM learnloop.embeddings WHERE tenant_id = %s AND owner_type = %s AND owner_id = ANY(%s)",
        (scope.tenant_id, owner_type, list(owner_ids)),
    )
    return cur.rowcount
