"""A generation's retrieved context joined to the documents it came from.

``generations.retrieved`` holds what the app (or a traced retriever) said it put in the
prompt: ``[{"type": "chunk", "id": ..., "score": ...}]``, a search hit as returned
(``owner_type``/``owner_id``, ``document_id``), or an OTel retriever document. Showing it
to a person needs the chunk's text and the document's title and file name; this reads
them in two tenant-scoped lookups, whatever the entries' shape. Entries that name no
stored chunk or document (an external source, a deleted file) come back without one.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from ..ledger.generations import get as get_generation
from ..store.database import Conn
from ..store.tenancy import Scope

EXCERPT_CHARS = 600


class RetrievedDocument(BaseModel):
    id: UUID
    project: str = Field(description="Project the document belongs to (its Knowledge page).")
    title: str | None
    file_name: str
    status: str
    active: bool


class RetrievedItem(BaseModel):
    position: int = Field(description="Place in the generation's retrieved list (0 first).")
    type: str | None = Field(description="chunk, document, entity... as the entry says.")
    ref: str | None = Field(description="The id the entry names.")
    score: float | None = Field(description="score or similarity the entry carries.")
    chunk_id: UUID | None = None
    chunk_index: int | None = None
    text: str | None = Field(description=f"The chunk's text (first {EXCERPT_CHARS} characters), "
                                         "else the entry's own content.")
    document: RetrievedDocument | None = Field(description="The stored document, when the entry leads to one.")
    entry: Any = Field(description="The entry as logged.")


class RetrievedContext(BaseModel):
    generation_id: UUID
    items: list[RetrievedItem]


def _uuid(v: Any) -> UUID | None:
    try:
        return UUID(str(v))
    except (ValueError, TypeError, AttributeError):
        return None


def _refs(e: Any) -> tuple[str | None, str | None, UUID | None, UUID | None]:
    """(type, id as written, chunk id, document id) of one entry."""
    if not isinstance(e, dict):
        return None, None, None, None
    kind = e.get("type") or e.get("owner_type")
    ref = e.get("id") if e.get("id") is not None else e.get("owner_id")
    chunk = _uuid(ref) if kind == "chunk" else _uuid(e.get("chunk_id"))
    doc = _uuid(e.get("document_id")) or (_uuid(ref) if kind == "document" else None)
    return (str(kind) if kind is not None else None), (str(ref) if ref is not None else None), chunk, doc


def _score(e: Any) -> float | None:
    if isinstance(e, dict):
        for k in ("score", "similarity"):
            v = e.get(k)
            if isinstance(v, int | float) and not isinstance(v, bool):
                return float(v)
    return None


def _own_text(e: Any) -> str | None:
    if isinstance(e, dict):
        for k in ("content", "text"):
            if isinstance(e.get(k), str):
                return str(e[k])[:EXCERPT_CHARS]
    return None


def retrieved_context(conn: Conn, scope: Scope, generation_id: UUID | str) -> RetrievedContext:
    g = get_generation(conn, scope, generation_id)
    refs = [_refs(e) for e in g.retrieved]
    chunk_ids = list({c for _, _, c, _ in refs if c is not None})
    chunks = {r["id"]: r for r in conn.execute(
        "SELECT c.id, c.document_id, c.chunk_index, left(c.text, %s) AS text FROM learnloop.chunks c"
        " WHERE c.tenant_id = %s AND c.id = ANY(%s)", (EXCERPT_CHARS, scope.tenant_id, chunk_ids)).fetchall()
    } if chunk_ids else {}
    doc_ids = list({d for _, _, _, d in refs if d is not None} | {c["document_id"] for c in chunks.values()})
    docs = {r["id"]: RetrievedDocument.model_validate(r) for r in conn.execute(
        "SELECT d.id, p.name AS project, d.title, d.file_name, d.status, d.active FROM learnloop.documents d"
        " JOIN learnloop.projects p ON p.tenant_id = d.tenant_id AND p.id = d.project_id"
        " WHERE d.tenant_id = %s AND p.tenant_id = %s AND d.id = ANY(%s)",
        (scope.tenant_id, scope.tenant_id, doc_ids)).fetchall()
    } if doc_ids else {}
    items = []
    for i, (e, (kind, ref, cid, did)) in enumerate(zip(g.retrieved, refs, strict=True)):
        chunk = chunks.get(cid) if cid is not None else None
        doc = docs.get(chunk["document_id"] if chunk else did) if (chunk or did) else None
        items.append(RetrievedItem(
            position=i, type=kind, ref=ref, score=_score(e), chunk_id=chunk["id"] if chunk else None,
            chunk_index=chunk["chunk_index"] if chunk else None,
            text=chunk["text"] if chunk else _own_text(e), document=doc, entry=e))
    return RetrievedContext(generation_id=g.id, items=items)
