"""App entities (seed 003): any app record, indexed for semantic search.

An entity is (entity_type, entity_id) within a project, e.g. ("goal", "g-17"), with the
text to embed, the user it belongs to and filterable metadata (status, validation_score,
language...). Upsert replaces text, user and metadata and re-embeds (the cache makes an
unchanged text free); its vector row carries entity_type, user_ref and metadata so
search filters inside the index scan. Every write is one transaction with its
``entity.upserted`` / ``entity.deleted`` events; ``entity.upserted`` carries the entity's
metadata in its payload and its user as the event's actor (the archive's user column), so
a consumer sees a goal's new status without reading the entity back.

``patch_entity`` changes part of an entity (metadata keys, text, user) without the caller
re-sending the rest: metadata is merged key by key (a key set to None is removed), the
row is locked while it is read and written, and an unchanged text is not embedded again
(the embedding cache answers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ..embeddings.base import EmbeddingProvider
from ..embeddings.cache import embed_with_cache
from ..errors import InvalidInput, NotFound
from ..events.outbox import emit_many
from ..store.ids import uuid7
from ..store.tenancy import Scope
from ..store.validation import check_object, check_text
from .vectors import EmbeddingRow, ensure_index, upsert_embeddings

MAX_TEXT = 1_000_000


@dataclass(frozen=True)
class EntityIn:
    entity_type: str
    entity_id: str
    text: str
    user_ref: str | None
    metadata: dict[str, Any]


def parse_entity(data: Mapping[str, Any] | EntityIn, i: int | None = None) -> EntityIn:
    if isinstance(data, EntityIn):
        return data
    where = "" if i is None else f" (entity #{i})"
    if not isinstance(data, Mapping):
        raise InvalidInput(f"an entity must be a mapping{where}", field="entity")
    unknown = set(data) - {"entity_type", "entity_id", "text", "user_ref", "metadata"}
    if unknown:
        raise InvalidInput(f"unknown entity field(s) {', '.join(sorted(unknown))}{where}", field=sorted(unknown)[0])
    etype, eid, text = data.get("entity_type"), data.get("entity_id"), data.get("text")
    if not isinstance(etype, str) or not 1 <= len(etype) <= 100:
        raise InvalidInput(f"entity_type must be a string of 1 to 100 characters{where}", field="entity_type")
    if isinstance(eid, int) and not isinstance(eid, bool):
        eid = str(eid)
    if not isinstance(eid, str) or not 1 <= len(eid) <= 500:
        raise InvalidInput(f"entity_id must be a string of 1 to 500 characters{where}", field="entity_id")
    if not isinstance(text, str):
        raise InvalidInput(f"entity text must be a string, got {type(text).__name__}{where}", field="text")
    if not text.strip():
        # Its own reason: an empty record is a common slip of the calling app (a field not
        # filled in), and "nothing to embed" says what to fix.
        what = "empty" if not text else "only whitespace"
        raise InvalidInput(f"entity {etype}/{eid} has no text to embed (its text is {what}){where}", field="text")
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"entity text is longer than {MAX_TEXT:,} characters{where}", field="text")
    user = data.get("user_ref")
    if user is not None and not isinstance(user, str):
        user = str(user) if isinstance(user, int) and not isinstance(user, bool) else None
        if user is None:
            raise InvalidInput(f"user_ref must be a string{where}", field="user_ref")
    for value, field in ((etype, "entity_type"), (eid, "entity_id"), (text, "text"), (user, "user_ref")):
        if value is not None:
            check_text(value, field)
    return EntityIn(etype, eid, text, user, check_object(data.get("metadata"), "metadata"))


def _parse_all(items: list[Any]) -> list[EntityIn]:
    parsed: list[EntityIn] = []
    bad: list[tuple[int, InvalidInput]] = []
    for i, x in enumerate(items):
        try:
            parsed.append(parse_entity(x, i))
        except InvalidInput as exc:
            bad.append((i, exc))
    if len(bad) == 1:
        raise bad[0][1]
    if bad:
        shown = "; ".join(e.message for _, e in bad[:20]) + ("; ..." if len(bad) > 20 else "")
        raise InvalidInput(f"{len(bad)} of {len(items)} entities cannot be indexed, nothing was written: {shown}",
                           field=bad[0][1].field,
                           items=[{"index": i, "field": e.field, "reason": e.message} for i, e in bad])
    return parsed


_UPSERT = """
INSERT INTO learnloop.entities AS e (tenant_id, id, project_id, entity_type, entity_id, user_ref, text, metadata)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (tenant_id, project_id, entity_type, entity_id) DO UPDATE SET
    user_ref = EXCLUDED.user_ref, text = EXCLUDED.text, metadata = EXCLUDED.metadata, updated_at = EXCLUDED.updated_at
RETURNING id, (xmax = 0) AS inserted
"""


def upsert_entities(conn: psycopg.Connection, scope: Scope, provider: EmbeddingProvider,
                    items: Iterable[Mapping[str, Any] | EntityIn]) -> list[dict[str, Any]]:
    """Upsert many entities in one transaction; returns [{id, entity_type, entity_id, created}].

    All or nothing: if any item is invalid (empty text, bad field...), nothing is written and
    the error names every offending item (``details["items"]``: [{index, field, reason}]).
    """
    parsed = _parse_all(list(items))
    keys = [(e.entity_type, e.entity_id) for e in parsed]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise InvalidInput(f"entity {dup[0]}/{dup[1]} appears twice in one call", field="entity_id")
    if not parsed:
        return []
    ensure_index(conn, provider.model_id, provider.dimensions)
    vectors = embed_with_cache(conn, scope.tenant_id, provider, [e.text for e in parsed])
    out: list[dict[str, Any]] = []
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        for e in parsed:
            row = cur.execute(_UPSERT, (scope.tenant_id, uuid7(), scope.project_id, e.entity_type, e.entity_id,
                                        e.user_ref, e.text, Jsonb(e.metadata))).fetchone()
            assert row is not None
            out.append({"id": row["id"], "entity_type": e.entity_type, "entity_id": e.entity_id,
                        "created": row["inserted"]})
        upsert_embeddings(conn, scope, provider.model_id, [
            EmbeddingRow("entity", o["id"], e.text, v, entity_type=e.entity_type, user_ref=e.user_ref,
                         metadata=e.metadata)
            for o, e, v in zip(out, parsed, vectors, strict=True)
        ], dimensions=provider.dimensions)
        emit_many(conn, [
            (scope.tenant_id, scope.project_id, "entity", o["id"], "entity.upserted",
             {"entity_type": e.entity_type, "entity_id": e.entity_id, "user_ref": e.user_ref,
              "created": o["created"], "model": provider.model_id, "metadata": e.metadata}, e.user_ref)
            for o, e in zip(out, parsed, strict=True)
        ])
    return out


def delete_entities(conn: psycopg.Connection, scope: Scope, keys: Iterable[tuple[str, str]],
                    *, missing_ok: bool = False) -> int:
    """Delete entities and every model's vectors of them; unknown keys raise NotFound."""
    pairs = [(str(t), str(i)) for t, i in keys]
    if not pairs:
        return 0
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "DELETE FROM learnloop.entities e USING unnest(%s::text[], %s::text[]) AS k(t, i)"
            " WHERE e.tenant_id = %s AND e.project_id = %s AND e.entity_type = k.t AND e.entity_id = k.i"
            " RETURNING e.id, e.entity_type, e.entity_id",
            ([p[0] for p in pairs], [p[1] for p in pairs], scope.tenant_id, scope.project_id),
        ).fetchall()
        if len(rows) < len(set(pairs)) and not missing_ok:
            gone = set(pairs) - {(r["entity_type"], r["entity_id"]) for r in rows}
            t, i = sorted(gone)[0]
            raise NotFound(f"no entity {t}/{i} in this project")  # rolls back the whole call
        cur.execute(
            "DELETE FROM learnloop.embeddings WHERE tenant_id = %s AND owner_type = 'entity' AND owner_id = ANY(%s)",
            (scope.tenant_id, [r["id"] for r in rows]),
        )
        emit_many(conn, [
            (scope.tenant_id, scope.project_id, "entity", r["id"], "entity.deleted",
             {"entity_type": r["entity_type"], "entity_id": r["entity_id"]}, None)
            for r in rows
        ])
    return len(rows)


# patch_entity's default for user_ref: "keep it" (None means "no user").
UNSET: Any = object()


def patch_entity(conn: psycopg.Connection, scope: Scope, provider: EmbeddingProvider, entity_type: str,
                 entity_id: str, *, text: str | None = None, metadata: Mapping[str, Any] | None = None,
                 user_ref: Any = UNSET, replace_metadata: bool = False) -> dict[str, Any]:
    """Change part of an existing entity; returns the entity as stored afterwards.

    ``metadata`` is merged into the stored metadata (a None value removes its key) unless
    ``replace_metadata``; ``text`` None keeps the text; ``user_ref`` unset keeps the user.
    A missing entity is NotFound (a patch never creates: it would have no text).
    """
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InvalidInput("metadata must be a JSON object", field="metadata")
    with conn.transaction():
        row = get_entity(conn, scope, entity_type, entity_id, for_update=True)
        meta = {} if replace_metadata else dict(row["metadata"] or {})
        for k, v in (metadata or {}).items():
            if v is None:
                meta.pop(k, None)
            else:
                meta[k] = v
        upsert_entities(conn, scope, provider, [{
            "entity_type": entity_type, "entity_id": str(entity_id),
            "text": row["text"] if text is None else text,
            "user_ref": row["user_ref"] if user_ref is UNSET else user_ref,
            "metadata": meta,
        }])
        return get_entity(conn, scope, entity_type, str(entity_id))


_GET = ("SELECT id, entity_type, entity_id, user_ref, text, metadata, created_at, updated_at FROM learnloop.entities"
        " WHERE tenant_id = %s AND project_id = %s AND entity_type = %s AND entity_id = %s")
_GET_FOR_UPDATE = _GET + " FOR UPDATE"


def get_entity(conn: psycopg.Connection, scope: Scope, entity_type: str, entity_id: str,
               *, for_update: bool = False) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            _GET_FOR_UPDATE if for_update else _GET,
            (scope.tenant_id, scope.project_id, entity_type, str(entity_id)),
        ).fetchone()
    if row is None:
        raise NotFound(f"no entity {entity_type}/{entity_id} in this project")
    return row


def entity_types(conn: psycopg.Connection[Any], scope: Scope) -> list[dict[str, Any]]:
    """Entity types of the project with their counts (the unique index serves it)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT entity_type, count(*) AS count FROM learnloop.entities"
            " WHERE tenant_id = %s AND project_id = %s GROUP BY 1 ORDER BY 1",
            (scope.tenant_id, scope.project_id),
        ).fetchall()


def list_entities(conn: psycopg.Connection[Any], scope: Scope, entity_type: str, *, limit: int = 50,
                  offset: int = 0) -> list[dict[str, Any]]:
    """Entities of one type, by entity id."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, entity_type, entity_id, user_ref, text, metadata, created_at, updated_at"
            " FROM learnloop.entities WHERE tenant_id = %s AND project_id = %s AND entity_type = %s"
            " ORDER BY entity_id LIMIT %s OFFSET %s",
            (scope.tenant_id, scope.project_id, entity_type, limit, offset),
        ).fetchall()
