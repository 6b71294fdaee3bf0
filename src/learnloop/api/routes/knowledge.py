"""Knowledge routes: search (vector, filtered, hybrid), learn from success, documents,
app entities, embedding the ledger's generations.

Each route is one call into the module that owns the SQL, in the caller's scope (tenant
from the key, project from the header). Invariants:

* Writes go through ``run_write`` (one transaction with the Idempotency-Key record), except
  the document upload: the model must not run inside a transaction, and an upload is
  idempotent by content already (same source and bytes -> ``unchanged``, same id).
* An upload is read up to ``LEARNLOOP_API_MAX_UPLOAD_BYTES`` (413 beyond); whatever the
  bytes are, parsing happens in the extraction sandbox, and a file it refuses becomes a
  document with ``status="failed"`` and the reason, never a 5xx.
* Search observes the app's Prometheus histogram ``learnloop_search_duration_seconds`` and
  refreshes the embedding-cache hit-rate gauge from the process counters.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import PurePath
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ...errors import InvalidInput, LearnloopError, NotFound
from ...knowledge import documents as _docs
from ...knowledge import entities as _ent
from ...knowledge import generations as _gens
from ..deps import Ctx, Read, Write
from ..idempotency import request_hash, run_write
from ._shared import IdemKey, Limit, Page, page

router = APIRouter(prefix="/v1", tags=["knowledge"])

OwnerType = Literal["chunk", "entity", "generation", "term"]
SmallOffset = Annotated[int, Query(ge=0, le=100_000, description="Rows to skip.")]


class SearchBody(BaseModel):
    """A text ``query`` (embedded with the server's model) or a ``vector`` of its dimensions."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"query": "goals about learning Python", "k": 5, "owner_types": ["entity"], "entity_types": ["goal"],
         "where": {"status": "completed", "validation_score": {"gt": 0.8}}},
        {"query": "late payment fees", "k": 3, "owner_types": ["chunk"], "mode": "hybrid"},
        {"query": "loan approval time", "k": 5, "group_by": "document", "chunks_per_document": 2},
    ]})
    query: str | None = Field(None, max_length=20_000, description="Text to search for.")
    vector: list[float] | None = Field(None, max_length=8192, description="A query vector instead of text.")
    text: str | None = Field(None, max_length=20_000, description="Full-text side of a hybrid search by vector.")
    k: int = Field(10, ge=1, le=1000)
    owner_types: list[OwnerType] | None = Field(None, min_length=1, description="chunk, entity, generation, term.")
    entity_types: list[str] | None = Field(None, min_length=1, max_length=100)
    user: str | None = Field(None, max_length=500, description="Only rows of this user_ref.")
    document_ids: list[UUID] | None = Field(None, min_length=1, max_length=1000)
    where: dict[str, Any] | None = Field(None, description="Metadata filter (see docs/retrieval.md).")
    mode: Literal["dense", "fulltext", "hybrid"] | None = Field(
        None, description="dense (vectors), fulltext (BM25), hybrid (both fused); default: the server's.")
    hybrid: bool = Field(False, description='Same as mode "hybrid".')
    dense_weight: float = Field(1.0, ge=0, le=100, description="Hybrid: weight of the vector ranking.")
    text_weight: float | Literal["auto"] = Field(
        "auto", description='Hybrid: weight of the full-text ranking (0-100), or "auto": decided per query.')
    depth: int = Field(100, ge=1, le=1000, description="Hybrid: rows taken from each ranking before fusion.")
    path: Literal["auto", "exact", "hnsw"] = Field("auto", description="How the vector side is searched.")
    group_by: Literal["document"] | None = Field(
        None, description="document: the k best documents, each with its best chunks (items are documents).")
    chunks_per_document: int = Field(3, ge=1, le=100, description="With group_by: chunks per document.")
    all_projects: bool = Field(False, description="Every project of your tenant, not just the header's.")


class _Hit(BaseModel):
    """What every search hit carries (``knowledge.search``'s dict, key for key)."""

    owner_id: UUID
    similarity: float | None = Field(None, description="Cosine similarity (dense and hybrid modes).")
    embedding_id: UUID | None = None
    content: str | None = Field(None, description="The embedded text.")
    metadata: dict[str, Any] | None = Field(None, description="The filterable metadata (your own keys).")
    score: float | None = Field(None, description="fulltext: BM25; hybrid: the fused score.")
    dense_rank: int | None = Field(None, description="hybrid: rank in the vector ranking.")
    text_rank: int | None = Field(None, description="fulltext/hybrid: rank in the full-text ranking.")
    text_score: float | None = Field(None, description="hybrid: BM25 of the text side.")


class ChunkHit(_Hit):
    owner_type: Literal["chunk"]
    document_id: UUID | None = None
    title: str | None = None
    file_name: str | None = None
    chunk_index: int | None = None


class EntityHit(_Hit):
    owner_type: Literal["entity"]
    entity_type: str | None = None
    entity_id: str | None = None
    user_ref: str | None = None


class GenerationHit(_Hit):
    owner_type: Literal["generation"]
    user_ref: str | None = None
    kind: str | None = None
    prompt: str | None = None
    output_text: str | None = None
    generation_created_at: datetime | None = None
    positives: int | None = Field(None, description="similar-successes: positive feedback rows.")
    negatives: int | None = None
    avg_rating: float | None = None
    tags: list[str] | None = None


class TermHit(_Hit):
    owner_type: Literal["term"]


class DocumentHit(BaseModel):
    """With ``group_by: "document"``: one document, ranked by its best chunk."""

    owner_type: Literal["document"]
    document_id: UUID
    title: str | None
    file_name: str | None
    rank: int
    similarity: float | None
    score: float | None
    chunks: list[ChunkHit]


SearchHit = Annotated[ChunkHit | EntityHit | GenerationHit | TermHit | DocumentHit, Field(discriminator="owner_type")]


class Trust(BaseModel):
    corroboration: float
    rarity: float
    decisiveness: float
    terms: int
    text_weight: float
    dense_weight: float


class SearchResults(BaseModel):
    items: list[SearchHit] = Field(description="Hits best first (documents with group_by).")
    path: str = Field(description="How the rows were found: exact, hnsw, hnsw+exact, fulltext, hybrid/...")
    mode: str = Field("", description="dense, fulltext or hybrid.")
    matching: int | None = Field(None, description="Rows passing the filter, counted up to the exact threshold.")
    trust: Trust | None = Field(None, description="Hybrid: the text side's signals and the weights used.")
    ms: float


class SuccessBody(BaseModel):
    """Past generations similar to the query whose feedback says they worked."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"query": "explain recursion to a beginner", "k": 3, "min_rating": 4, "exclude_tags": ["WRONG"],
         "style": "messages"}]})
    query: str | None = Field(None, max_length=20_000)
    vector: list[float] | None = Field(None, max_length=8192)
    k: int = Field(3, ge=1, le=100)
    positive: bool = Field(True, description="More positive than negative feedback.")
    min_rating: float | None = Field(None, ge=1, le=5)
    exclude_tags: list[str] = Field(default_factory=list, max_length=100)
    kind: str | None = Field(None, max_length=50)
    user: str | None = Field(None, max_length=500)
    where: dict[str, Any] | None = None
    all_projects: bool = False
    style: Literal["text", "messages"] | None = Field(None, description="Also return the hits as few-shot examples.")
    mode: Literal["dense", "fulltext", "hybrid"] | None = Field(None, description="As in /v1/search.")


class FewShotMessage(BaseModel):
    role: str
    content: str


class SuccessResults(SearchResults):
    items: list[GenerationHit]  # type: ignore[assignment]
    few_shot: str | list[FewShotMessage] | None = None


class Active(BaseModel):
    model_config = ConfigDict(extra="forbid")
    active: bool = Field(description="false keeps the document but takes it out of search.")


class EntityBody(BaseModel):
    """The app record's text (embedded), owner and filterable metadata; replaces what was stored."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"text": "Learn Python in 3 months", "user_ref": "user-7",
         "metadata": {"status": "completed", "validation_score": 0.92, "language": "python"}}]})
    text: str = Field(min_length=1, max_length=_ent.MAX_TEXT)
    user_ref: str | None = Field(None, max_length=500)
    metadata: dict[str, Any] = Field(default_factory=dict)


class EntityPatch(BaseModel):
    """Part of an app record: metadata keys merged (null removes a key), text if given,
    user_ref if given. What is left out keeps its stored value."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"metadata": {"status": "completed", "completed_at": "2026-03-07"}}]})
    text: str | None = Field(None, min_length=1, max_length=_ent.MAX_TEXT)
    user_ref: str | None = Field(None, max_length=500, description="Sent as null: the entity has no user.")
    metadata: dict[str, Any] | None = None
    replace_metadata: bool = Field(False, description="Replace the metadata instead of merging into it.")


class EmbedGenerations(BaseModel):
    model_config = ConfigDict(extra="forbid")
    what: Literal["prompt", "output", "both"] = "both"
    limit: int = Field(10_000, ge=1, le=100_000, description="At most this many generations in this call.")
    batch_size: int = Field(256, ge=1, le=10_000)


def _query(body: SearchBody | SuccessBody) -> Any:
    if (body.query is None) == (body.vector is None):
        raise InvalidInput("give exactly one of query (text) or vector", field="query")
    return body.query if body.query is not None else body.vector


def _observe(request: Request, res: Any) -> None:
    """Feed the app's Prometheus metrics from a finished search."""
    from ...embeddings.metrics import METRICS as EMB

    m = request.app.state.metrics
    m.search.observe(res.ms / 1000)
    m.cache_hit_rate.set(EMB.snapshot()["cache_hit_rate"])


def _results(res: Any, **extra: Any) -> dict[str, Any]:
    return {"items": list(res), "path": res.path, "mode": res.mode, "matching": res.matching, "trust": res.trust,
            "ms": round(res.ms, 3), **extra}


def _check_documents(ctx: Ctx, ids: list[UUID] | None, all_projects: bool) -> None:
    # A filter naming a document the caller cannot see is a mistake worth a 404, not an
    # empty result that looks like "nothing relevant".
    if not ids:
        return
    with ctx.client.db.connection() as conn:
        found = {r["id"] for r in conn.execute(
            "SELECT id FROM learnloop.documents WHERE tenant_id = %s AND (%s OR project_id = %s) AND id = ANY(%s)",
            (ctx.scope.tenant_id, all_projects, ctx.scope.project_id, ids)).fetchall()}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"no document {missing[0]} in this {'tenant' if all_projects else 'project'}")


# exclude_unset: a hit carries the keys of its owner type and mode, as the library gives it.
@router.post("/search", response_model=SearchResults, response_model_exclude_unset=True, summary="Similarity search (text or vector, filters, hybrid)")
def search(request: Request, body: SearchBody, ctx: Read) -> Any:
    _check_documents(ctx, body.document_ids, body.all_projects)
    res = ctx.client.knowledge.search(
        _query(body), body.k, text=body.text, owner_types=body.owner_types, entity_types=body.entity_types,
        user=body.user, document_ids=body.document_ids, where=body.where, all_projects=body.all_projects,
        mode=body.mode, hybrid=body.hybrid, dense_weight=body.dense_weight, text_weight=body.text_weight,
        depth=body.depth, path=body.path, group_by=body.group_by, chunks_per_document=body.chunks_per_document)
    _observe(request, res)
    return _results(res)


@router.post("/search/similar-successes", response_model=SuccessResults, response_model_exclude_unset=True,
             summary="Learn from success: similar past generations that worked")
def similar_successes(request: Request, body: SuccessBody, ctx: Read) -> Any:
    from ...knowledge.search import format_examples

    res = ctx.client.knowledge.similar_successes(
        _query(body), body.k, positive=body.positive, min_rating=body.min_rating, exclude_tags=body.exclude_tags,
        kind=body.kind, user=body.user, where=body.where, all_projects=body.all_projects, mode=body.mode)
    _observe(request, res)
    shots = format_examples(res, style=body.style) if body.style else None
    return _results(res, few_shot=shots)


# -- documents -----------------------------------------------------------------------------
class Ingested(BaseModel):
    """What one upload did: ``processed``, ``failed`` (with ``error``) or ``unchanged``."""

    source: str
    file_name: str
    status: Literal["processed", "failed", "unchanged"]
    document_id: UUID | None
    file_type: str | None
    chunks: int
    error: str | None
    seconds: float


class Document(BaseModel):
    id: UUID
    source: str
    title: str | None
    description: str | None
    file_name: str
    file_type: str
    size_bytes: int
    content_hash: str
    status: Literal["pending", "processed", "failed"]
    error: str | None
    active: bool
    chunk_count: int
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class Chunk(BaseModel):
    id: UUID
    chunk_index: int
    text: str
    token_count: int | None
    char_start: int | None
    char_end: int | None


class DocumentDetail(Document):
    extracted_text: str | None
    chunks: list[Chunk] | None = Field(None, description="With ?chunks=true.")


class DocumentDeleted(BaseModel):
    id: UUID
    deleted: bool


class DocumentActive(BaseModel):
    id: UUID
    active: bool


class UploadTooLarge(LearnloopError):
    status = 413
    code = "upload_too_large"


def _read_upload(request: Request, file: UploadFile) -> bytes:
    limit = request.app.state.settings.api_max_upload_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLarge(f"the uploaded file is larger than {limit} bytes (LEARNLOOP_API_MAX_UPLOAD_BYTES)")
    return data


def _metadata_form(text: str | None) -> dict[str, Any] | None:
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidInput("metadata must be a JSON object", field="metadata") from None
    if not isinstance(value, dict):
        raise InvalidInput("metadata must be a JSON object", field="metadata")
    return value


@router.post("/documents", status_code=201, response_model=Ingested,
             summary="Upload a document (pdf, docx, txt, md, html): extracted, chunked, embedded",
             responses={200: {"description": "Unchanged: the same bytes were already ingested from this source."},
                        413: {"description": "The file is larger than the upload limit."}})
def upload_document(
    request: Request,
    ctx: Write,
    file: Annotated[UploadFile, File(description="The document.")],
    source: Annotated[str | None, Form(max_length=2000, description="Upsert key; default the file name.")] = None,
    title: Annotated[str | None, Form(max_length=2000)] = None,
    description: Annotated[str | None, Form(max_length=20_000)] = None,
    metadata: Annotated[str | None, Form(max_length=100_000, description="A JSON object.")] = None,
    force: Annotated[bool, Form(description="Re-ingest even if the bytes did not change.")] = False,
) -> JSONResponse:
    # Only the last path component: a client's "C:\\docs\\x.pdf" or "../../x" names the file, nothing more.
    name = PurePath((file.filename or "").replace("\\", "/")).name
    if not name:
        raise InvalidInput("the uploaded file needs a file name (its extension picks the parser)", field="file")
    data = _read_upload(request, file)
    res = ctx.client.knowledge.ingest_bytes(data, file_name=name, source=source or name, title=title,
                                            description=description, metadata=_metadata_form(metadata), force=force)
    return JSONResponse(jsonable_encoder(Ingested.model_validate(res.to_dict())),
                        status_code=200 if res.status == "unchanged" else 201)


@router.get("/documents", response_model=Page[Document], summary="Documents of the project (oldest first)")
def list_documents(
    ctx: Read,
    status: Annotated[Literal["pending", "processed", "failed"] | None, Query()] = None,
    limit: Limit = 50,
    offset: SmallOffset = 0,
) -> Any:
    with ctx.client.db.connection() as conn:
        rows = _docs.list_documents(conn, ctx.scope, status=status, limit=offset + limit)
    return page(rows[offset:], limit, offset)


@router.get("/documents/{document_id}", response_model=DocumentDetail, response_model_exclude_unset=True,
            summary="One document with its extracted text (and chunks on request)")
def get_document(document_id: UUID, ctx: Read, chunks: bool = False) -> Any:
    return ctx.client.knowledge.document(document_id, chunks=chunks)


@router.delete("/documents/{document_id}", response_model=DocumentDeleted,
               summary="Delete a document, its chunks and vectors")
def delete_document(request: Request, document_id: UUID, ctx: Write, idem: IdemKey = None) -> JSONResponse:
    def write(conn: Any) -> dict[str, Any]:
        _docs.delete_document(conn, ctx.scope, document_id)
        return {"id": document_id, "deleted": True}

    return run_write(ctx, idem, request_hash("DELETE", request.url.path, ctx.scope.project, {}), write, status=200,
                     model=DocumentDeleted)


@router.post("/documents/{document_id}/activate", response_model=DocumentActive,
             summary="Take a document out of search (active=false) or put it back")
def activate_document(request: Request, document_id: UUID, body: Active, ctx: Write,
                      idem: IdemKey = None) -> JSONResponse:
    def write(conn: Any) -> dict[str, Any]:
        _docs.set_active(conn, ctx.scope, document_id, body.active)
        return {"id": document_id, "active": body.active}

    return run_write(ctx, idem, request_hash("POST", request.url.path, ctx.scope.project, body), write, status=200,
                     model=DocumentActive)


# -- app entities --------------------------------------------------------------------------
# GET and DELETE are declared before PUT so that the OpenAPI walk of tests/test_api.py reads
# and deletes another tenant's key before it upserts that key into its own tenant.
class EntityDeleted(BaseModel):
    entity_type: str
    entity_id: str
    deleted: bool


class EntityType(BaseModel):
    entity_type: str
    count: int


class Entity(BaseModel):
    id: UUID
    entity_type: str
    entity_id: str
    user_ref: str | None
    text: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class EntityUpserted(Entity):
    created: bool = Field(description="true: a new entity; false: an existing one replaced.")


class Embedded(BaseModel):
    embedded: int = Field(description="Generations embedded in this call.")
    batches: int
    metadata_refreshed: int
    model: str
    seconds: float


@router.get("/entities", response_model=list[EntityType], summary="Entity types of the project, with counts")
def list_entity_types(ctx: Read) -> Any:
    with ctx.client.db.connection() as conn:
        return _ent.entity_types(conn, ctx.scope)


@router.get("/entities/{entity_type}", response_model=Page[Entity], summary="Entities of one type (by entity id)")
def list_entities(entity_type: str, ctx: Read, limit: Limit = 50, offset: SmallOffset = 0) -> Any:
    with ctx.client.db.connection() as conn:
        rows = _ent.list_entities(conn, ctx.scope, entity_type, limit=limit, offset=offset)
    if not rows and offset == 0:
        raise NotFound(f"no entities of type {entity_type!r} in this project")
    return page(rows, limit, offset)


@router.get("/entities/{entity_type}/{entity_id}", response_model=Entity, summary="One app entity")
def get_entity(entity_type: str, entity_id: str, ctx: Read) -> Any:
    return ctx.client.knowledge.entity(entity_type, entity_id)


@router.delete("/entities/{entity_type}/{entity_id}", response_model=EntityDeleted,
               summary="Delete an app entity and its vectors")
def delete_entity(request: Request, entity_type: str, entity_id: str, ctx: Write, idem: IdemKey = None) -> JSONResponse:
    def write(conn: Any) -> dict[str, Any]:
        _ent.delete_entities(conn, ctx.scope, [(entity_type, entity_id)])
        return {"entity_type": entity_type, "entity_id": entity_id, "deleted": True}

    return run_write(ctx, idem, request_hash("DELETE", request.url.path, ctx.scope.project, {}), write, status=200,
                     model=EntityDeleted)


@router.put("/entities/{entity_type}/{entity_id}", response_model=EntityUpserted,
            summary="Index an app record for search (insert or replace)")
def upsert_entity(request: Request, entity_type: str, entity_id: str, body: EntityBody, ctx: Write,
                  idem: IdemKey = None) -> JSONResponse:
    provider = ctx.client.knowledge.provider
    # Create the model's index in its own transaction first: a rolled-back request must not
    # leave the process believing an index exists.
    ctx.client.knowledge.ensure_index()
    item = {"entity_type": entity_type, "entity_id": entity_id, **body.model_dump()}

    def write(conn: Any) -> dict[str, Any]:
        (out,) = _ent.upsert_entities(conn, ctx.scope, provider, [item])
        return {**_ent.get_entity(conn, ctx.scope, entity_type, entity_id), "created": out["created"]}

    return run_write(ctx, idem, request_hash("PUT", request.url.path, ctx.scope.project, body), write, status=200,
                     model=EntityUpserted)


@router.patch("/entities/{entity_type}/{entity_id}", response_model=Entity,
              summary="Change part of an app record (metadata merge, text, user) without re-sending the rest")
def patch_entity(request: Request, entity_type: str, entity_id: str, body: EntityPatch, ctx: Write,
                 idem: IdemKey = None) -> JSONResponse:
    provider = ctx.client.knowledge.provider
    ctx.client.knowledge.ensure_index()  # outside the write's transaction (see upsert_entity)
    user = body.user_ref if "user_ref" in body.model_fields_set else _ent.UNSET

    def write(conn: Any) -> dict[str, Any]:
        return _ent.patch_entity(conn, ctx.scope, provider, entity_type, entity_id, text=body.text,
                                 metadata=body.metadata, user_ref=user, replace_metadata=body.replace_metadata)

    return run_write(ctx, idem, request_hash("PATCH", request.url.path, ctx.scope.project,
                                           body.model_dump(exclude_unset=True)), write, status=200, model=Entity)


# -- generations ---------------------------------------------------------------------------
@router.post("/generations/embed", status_code=201, response_model=Embedded,
             summary="Embed the project's not-yet-embedded generations (for learn-from-success)")
def embed_generations(request: Request, body: EmbedGenerations, ctx: Write, idem: IdemKey = None) -> JSONResponse:
    provider = ctx.client.knowledge.provider
    ctx.client.knowledge.ensure_index()  # outside the write's transaction (see upsert_entity)
    return run_write(ctx, idem, request_hash("POST", request.url.path, ctx.scope.project, body),
                     lambda conn: _gens.embed_generations(conn, ctx.scope, provider, what=body.what,
                                                          batch_size=body.batch_size, limit=body.limit),
                     model=Embedded)
