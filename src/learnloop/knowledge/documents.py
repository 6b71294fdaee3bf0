"""Document ingestion: file -> sandboxed text extraction -> chunks -> vectors, all or nothing.

Pipeline for one file (``ingest_file`` / ``ingest_bytes``):

1. size and content hash (sha256, streamed); an unchanged (source, hash) is a no-op;
2. type from the extension (pdf, docx, txt, md, html); anything else fails;
3. text extracted in a child process with CPU, memory and wall-clock limits (``extract``);
4. token-aware chunks with overlap (``chunking``);
5. vectors via the cache (``embed_with_cache``), computed *before* the write transaction
   so no transaction stays open while the model runs;
6. one transaction: the document row (upserted by (tenant, project, source)), its old
   chunks and vectors deleted, new chunks by COPY, new vectors by COPY, and the outbox
   event ``document.ingested``. Anything failing inside rolls all of it back.

``ingest_many`` runs steps 1-4 for the next files in threads while the model embeds
(step 5) the chunks of several files in one call; step 6 stays one transaction per
document. The stored documents for a whole folder are looked up in one query, so
re-ingesting unchanged files costs their hashing and that query.

A file that cannot be read (empty, unsupported, encrypted, corrupt, too big, bomb-like)
still gets a document row, with ``status='failed'``, the reason in ``error``, no chunks,
and a ``document.failed`` event, so an admin sees what was refused and why. A failure
of ours (database, embedding provider) raises instead and writes nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ..config import Settings
from ..embeddings.base import HASH_PREFIX, EmbeddingProvider
from ..embeddings.cache import embed_with_cache
from ..errors import InvalidInput, NotFound
from ..events.outbox import emit
from ..store.database import Database
from ..store.ids import uuid7
from ..store.tenancy import Scope
from ..store.validation import check_object, check_text
from . import extract as _extract
from .chunking import Chunk, chunk_text
from .vectors import EmbeddingRow, ensure_index, upsert_embeddings

EXTENSIONS = {
    ".pdf": "pdf", ".docx": "docx", ".txt": "txt", ".text": "txt", ".md": "md",
    ".markdown": "md", ".html": "html", ".htm": "html",
}


@dataclass
class IngestResult:
    source: str
    file_name: str
    status: str  # processed | failed | unchanged
    document_id: UUID | None = None
    file_type: str | None = None
    chunks: int = 0
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_kind(file_name: str) -> str | None:
    return EXTENSIONS.get(Path(file_name).suffix.lower())


def limits(settings: Settings) -> _extract.Limits:
    return _extract.Limits(timeout=settings.extract_timeout, cpu_seconds=settings.extract_cpu_seconds,
                           memory_mb=settings.extract_memory_mb, max_chars=settings.max_extracted_chars)


def expand(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files named, plus every non-hidden file under folders named, in a stable order."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file()
                              and not any(part.startswith(".") for part in f.relative_to(p).parts)))
        elif p.exists():
            out.append(p)
        else:
            raise NotFound(f"no such file or folder: {p}")
    return out


def _read_file(p: Path, settings: Settings) -> tuple[bytes | None, int, str]:
    """(the bytes if within the size limit, the size, the content hash)."""
    if not p.is_file():
        raise NotFound(f"no such file: {p}")
    size = p.stat().st_size
    h = hashlib.sha256()
    with p.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    # Only read the bytes into memory when they are within the limit.
    data = p.read_bytes() if 0 < size <= settings.max_file_bytes else None
    return data, size, HASH_PREFIX + h.hexdigest()


def ingest_file(db: Database, scope: Scope, provider: EmbeddingProvider, settings: Settings,
                path: str | os.PathLike[str], **options: Any) -> IngestResult:
    p = Path(path)
    data, size, digest = _read_file(p, settings)
    options.setdefault("source", str(p.resolve()))
    return _ingest(db, scope, provider, settings, data, size, digest, file_name=p.name, **options)


def ingest_bytes(db: Database, scope: Scope, provider: EmbeddingProvider, settings: Settings,
                 data: bytes, *, file_name: str, **options: Any) -> IngestResult:
    if not isinstance(data, bytes | bytearray):
        raise InvalidInput("document content must be bytes", field="data")
    digest = HASH_PREFIX + hashlib.sha256(data).hexdigest()
    options.setdefault("source", file_name)
    keep = bytes(data) if len(data) <= settings.max_file_bytes else None
    return _ingest(db, scope, provider, settings, keep, len(data), digest, file_name=file_name, **options)


# Files being read, extracted and chunked ahead of the one being embedded, and the chunks
# embedded in one model call. Parsing runs in a sandboxed child per file (~0.1 s to start
# one), so two threads keep the model busy while the next files are parsed; one encode
# over several files' chunks lets the model sort and pad them together, as it would the
# same texts handed over at once.
PARSE_WORKERS = 2
PARSE_AHEAD = 16
EMBED_BATCH_CHUNKS = 512


def ingest_many(db: Database, scope: Scope, provider: EmbeddingProvider, settings: Settings,
                paths: Iterable[str | os.PathLike[str]],
                on_result: Callable[[IngestResult], None] | None = None, **options: Any) -> list[IngestResult]:
    """Ingest files and folders: parsing in parallel with embedding, chunks of several files
    embedded together, still one transaction per document. Results in file order;
    ``on_result`` is called as each file is finished (a failed or unchanged file may be
    reported before files ahead of it that wait in an embedding batch)."""
    files = expand(paths)
    if "source" in options and len(files) > 1:
        raise InvalidInput("source= names one document; leave it out when ingesting several files", field="source")
    sources = [options.get("source") or str(f.resolve()) for f in files]
    priors = _priors(db, scope, sources)
    results: list[IngestResult | None] = [None] * len(files)
    batch: list[tuple[int, _Prepared]] = []

    def done(i: int, r: IngestResult) -> None:
        results[i] = r
        if on_result:
            on_result(r)

    def flush() -> None:
        for i, r in zip([i for i, _ in batch], _finish(db, scope, provider, [p for _, p in batch]), strict=True):
            done(i, r)
        batch.clear()

    def prepare(i: int) -> _Prepared:
        data, size, digest = _read_file(files[i], settings)
        return _prepare(settings, data, size, digest, prior=priors.get(sources[i]),
                        **{**options, "file_name": files[i].name, "source": sources[i]})

    with ThreadPoolExecutor(PARSE_WORKERS, thread_name_prefix="learnloop-parse") as pool:
        pending: deque[tuple[int, Future[_Prepared]]] = deque()
        nxt = 0
        while nxt < len(files) or pending:
            while nxt < len(files) and len(pending) < PARSE_AHEAD:
                pending.append((nxt, pool.submit(prepare, nxt)))
                nxt += 1
            i, fut = pending.popleft()
            try:
                p = fut.result()
            except BaseException:
                if batch:  # what was prepared before the bad file is still written
                    flush()
                raise
            if p.result is not None:  # unchanged or refused: nothing to embed
                if p.reason is not None:
                    done(i, _finish(db, scope, provider, [p])[0])
                else:
                    done(i, p.result)
                continue
            batch.append((i, p))
            if sum(len(b.chunks) for _, b in batch) >= EMBED_BATCH_CHUNKS:
                flush()
        if batch:
            flush()
    return [r for r in results if r is not None]


def _priors(db: Database, scope: Scope, sources: list[str]) -> dict[str, dict[str, Any]]:
    """What is stored for these sources (one query for a whole folder)."""
    if not sources:
        return {}
    with db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT source, id, content_hash, status, error, chunk_count FROM learnloop.documents"
            " WHERE tenant_id = %s AND project_id = %s AND source = ANY(%s)",
            (scope.tenant_id, scope.project_id, sources),
        ).fetchall()
    return {r["source"]: r for r in rows}


@dataclass
class _Prepared:
    """A file read, checked, extracted and chunked, not yet embedded or written."""

    doc: _Doc
    t0: float
    reason: str | None = None
    text: str = ""
    chunks: list[Chunk] = field(default_factory=list)
    result: IngestResult | None = None  # set when nothing is left to embed (unchanged, refused)


def _check_names(file_name: Any, source: Any, title: Any = None, description: Any = None) -> None:
    for value, what in ((file_name, "file name"), (source, "source"), (title, "title"), (description, "description")):
        if value is not None:
            if not isinstance(value, str):
                raise InvalidInput(f"{what} must be a string", field=what)
            check_text(value, what)
    if not file_name or not source:
        raise InvalidInput("a document needs a file name and a source", field="source")


def _ingest(db: Database, scope: Scope, provider: EmbeddingProvider, settings: Settings,
            data: bytes | None, size: int, digest: str, *, file_name: str, source: str, **options: Any) -> IngestResult:
    _check_names(file_name, source)  # before the source goes into a query
    prior = _priors(db, scope, [source]).get(source)
    p = _prepare(settings, data, size, digest, file_name=file_name, source=source, prior=prior, **options)
    if p.result is not None and p.reason is None:
        return p.result
    return _finish(db, scope, provider, [p])[0]


def _prepare(settings: Settings, data: bytes | None, size: int, digest: str, *, file_name: str, source: str,
             prior: dict[str, Any] | None, title: str | None = None, description: str | None = None,
             metadata: dict[str, Any] | None = None, force: bool = False) -> _Prepared:
    """Everything before the model: checks, the unchanged test, extraction, chunking."""
    t0 = time.perf_counter()
    _check_names(file_name, source, title, description)
    meta = check_object(metadata, "metadata")
    kind = file_kind(file_name)
    doc = _Doc(source=source, file_name=file_name, file_type=kind or (Path(file_name).suffix.lower().lstrip(".") or "unknown"),
               size=size, digest=digest, title=title, description=description, metadata=meta)
    if prior and prior["content_hash"] == digest and not force:
        return _Prepared(doc, t0, result=IngestResult(source, file_name, "unchanged", prior["id"], doc.file_type,
                                                      prior["chunk_count"], prior["error"], time.perf_counter() - t0))

    reason = _refusal(doc, kind, data, settings)
    chunks: list[Chunk] = []
    text = ""
    if reason is None:
        assert data is not None and kind is not None
        try:
            got = _extract.run(data, kind, limits(settings))
            text = _tidy(got.text)
            doc.title = doc.title or got.title
            if not text.strip():
                reason = _no_text_reason(kind, doc.size)
            else:
                chunks = chunk_text(text, max_tokens=settings.chunk_tokens, overlap=settings.chunk_overlap,
                                    markdown=kind == "md")
        except _extract.Refused as exc:
            reason = str(exc)
    doc.title = doc.title or Path(file_name).stem
    p = _Prepared(doc, t0, reason, text, chunks)
    if reason is not None:
        p.result = IngestResult(source, file_name, "failed", None, doc.file_type, 0, reason)
    return p


def _finish(db: Database, scope: Scope, provider: EmbeddingProvider, batch: list[_Prepared]) -> list[IngestResult]:
    """Write prepared files: refused ones as failed documents; the others' chunks embedded in
    one call (vectors before any transaction: none stays open while the model runs), then
    one transaction per document."""
    out: list[IngestResult] = []
    with db.connection() as conn:
        todo = [p for p in batch if p.reason is None]
        vectors: Any = []
        if todo:
            ensure_index(conn, provider.model_id, provider.dimensions)
            vectors = embed_with_cache(conn, scope.tenant_id, provider, [c.text for p in todo for c in p.chunks])
        at = 0
        for p in batch:
            d = p.doc
            if p.reason is not None:
                doc_id = _write_failed(conn, scope, d, p.reason)
                out.append(IngestResult(d.source, d.file_name, "failed", doc_id, d.file_type, 0, p.reason,
                                        time.perf_counter() - p.t0))
                continue
            n = len(p.chunks)
            doc_id = _write_processed(conn, scope, d, p.text, p.chunks, vectors[at:at + n], provider)
            at += n
            out.append(IngestResult(d.source, d.file_name, "processed", doc_id, d.file_type, n, None,
                                    time.perf_counter() - p.t0))
    return out


@dataclass
class _Doc:
    source: str
    file_name: str
    file_type: str
    size: int
    digest: str
    title: str | None
    description: str | None
    metadata: dict[str, Any]


def _refusal(doc: _Doc, kind: str | None, data: bytes | None, settings: Settings) -> str | None:
    if kind is None:
        return (f"unsupported file type {Path(doc.file_name).suffix or '(no extension)'!r}; "
                f"supported: {', '.join(sorted(set(EXTENSIONS)))}")
    if doc.size == 0:
        return "the file is empty (0 bytes): nothing to index"
    if doc.size > settings.max_file_bytes or data is None:
        return f"the file is {doc.size:,} bytes; the limit is {settings.max_file_bytes:,} (LEARNLOOP_MAX_FILE_BYTES)"
    return None


def _no_text_reason(kind: str, size: int) -> str:
    """Why a file that was read has no text: each kind has its own likely cause."""
    if kind == "pdf":
        return "no text found in the PDF (a scanned PDF needs OCR, which learnloop does not do)"
    if kind in ("txt", "md"):
        return f"the file holds no text: its {size:,} bytes are only whitespace"
    return f"the {kind} document holds no text: only markup or empty paragraphs"


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


_UPSERT_DOC = """
INSERT INTO learnloop.documents AS d (tenant_id, id, project_id, source, title, description, file_name,
    file_type, size_bytes, content_hash, extracted_text, status, error, metadata, chunk_count)
VALUES (%(tenant_id)s, %(id)s, %(project_id)s, %(source)s, %(title)s, %(description)s, %(file_name)s,
    %(file_type)s, %(size)s, %(digest)s, %(text)s, %(status)s, %(error)s, %(metadata)s, %(chunks)s)
ON CONFLICT (tenant_id, project_id, source) DO UPDATE SET
    title = EXCLUDED.title, description = coalesce(EXCLUDED.description, d.description),
    file_name = EXCLUDED.file_name, file_type = EXCLUDED.file_type, size_bytes = EXCLUDED.size_bytes,
    content_hash = EXCLUDED.content_hash, extracted_text = EXCLUDED.extracted_text,
    status = EXCLUDED.status, error = EXCLUDED.error, metadata = d.metadata || EXCLUDED.metadata,
    chunk_count = EXCLUDED.chunk_count, updated_at = EXCLUDED.updated_at
RETURNING id, (xmax = 0) AS inserted, metadata
"""


def _upsert_doc(conn: Any, scope: Scope, doc: _Doc, *, text: str | None, status: str, error: str | None,
                chunks: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_UPSERT_DOC, {
            "tenant_id": scope.tenant_id, "id": uuid7(), "project_id": scope.project_id,
            "source": doc.source, "title": doc.title, "description": doc.description,
            "file_name": doc.file_name, "file_type": doc.file_type, "size": doc.size, "digest": doc.digest,
            "text": text, "status": status, "error": error, "metadata": Jsonb(doc.metadata), "chunks": chunks,
        }).fetchone()
        # The old version's chunks and vectors describe content that is gone.
        cur.execute("DELETE FROM learnloop.embeddings WHERE tenant_id = %s AND document_id = %s",
                    (scope.tenant_id, row["id"]))
        cur.execute("DELETE FROM learnloop.chunks WHERE tenant_id = %s AND document_id = %s",
                    (scope.tenant_id, row["id"]))
    return row  # type: ignore[no-any-return]


def _write_failed(conn: Any, scope: Scope, doc: _Doc, reason: str) -> UUID:
    with conn.transaction():
        row = _upsert_doc(conn, scope, doc, text=None, status="failed", error=reason, chunks=0)
        emit(conn, scope.tenant_id, "document", row["id"], "document.failed",
             {"source": doc.source, "file_name": doc.file_name, "file_type": doc.file_type, "reason": reason},
             project_id=scope.project_id)
    return row["id"]  # type: ignore[no-any-return]


def _write_processed(conn: Any, scope: Scope, doc: _Doc, text: str, chunks: list[Chunk], vectors: Any,
                     provider: EmbeddingProvider) -> UUID:
    with conn.transaction():
        row = _upsert_doc(conn, scope, doc, text=text, status="processed", error=None, chunks=len(chunks))
        doc_id = row["id"]
        ids = [uuid7() for _ in chunks]
        with conn.cursor() as cur, cur.copy(
            "COPY learnloop.chunks (tenant_id, id, document_id, chunk_index, text, token_count, char_start, char_end)"
            " FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["uuid", "uuid", "uuid", "int4", "text", "int4", "int4", "int4"])
            for cid, c in zip(ids, chunks, strict=True):
                copy.write_row((scope.tenant_id, cid, doc_id, c.index, c.text, c.token_count, c.char_start, c.char_end))
        # Filterable copy of the document's attributes on every chunk vector.
        base = {**row["metadata"], "title": doc.title, "file_name": doc.file_name, "file_type": doc.file_type,
                "active": True}
        upsert_embeddings(conn, scope, provider.model_id, [
            EmbeddingRow("chunk", cid, c.text, vec, document_id=doc_id, metadata={**base, "chunk_index": c.index})
            for cid, c, vec in zip(ids, chunks, vectors, strict=True)
        ], dimensions=provider.dimensions)
        emit(conn, scope.tenant_id, "document", doc_id, "document.ingested",
             {"source": doc.source, "file_name": doc.file_name, "file_type": doc.file_type,
              "content_hash": doc.digest, "chunks": len(chunks), "model": provider.model_id,
              "replaced": not row["inserted"]},
             project_id=scope.project_id)
    return doc_id  # type: ignore[no-any-return]


# -- reading and managing documents -------------------------------------------------------

_LIST_COLUMNS = ("id, source, title, description, file_name, file_type, size_bytes, content_hash, status,"
                 " error, active, chunk_count, metadata, created_at, updated_at")


def list_documents(conn: Any, scope: Scope, *, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    if status is not None and status not in ("pending", "processed", "failed"):
        raise InvalidInput("status must be pending, processed or failed", field="status")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_LIST_COLUMNS} FROM learnloop.documents"  # noqa: S608 - constant column list
            " WHERE tenant_id = %s AND project_id = %s AND (%s::text IS NULL OR status = %s)"
            " ORDER BY created_at, id LIMIT %s",
            (scope.tenant_id, scope.project_id, status, status, limit),
        ).fetchall()


def get_document(conn: Any, scope: Scope, document_id: UUID | str, *, with_chunks: bool = False) -> dict[str, Any]:
    doc_id = _as_uuid(document_id)
    with conn.cursor(row_factory=dict_row) as cur:
        doc = cur.execute(
            f"SELECT {_LIST_COLUMNS}, extracted_text FROM learnloop.documents"  # noqa: S608
            " WHERE tenant_id = %s AND project_id = %s AND id = %s",
            (scope.tenant_id, scope.project_id, doc_id),
        ).fetchone()
        if doc is None:
            raise NotFound(f"no document {doc_id} in this project")
        if with_chunks:
            doc["chunks"] = cur.execute(
                "SELECT id, chunk_index, text, token_count, char_start, char_end FROM learnloop.chunks"
                " WHERE tenant_id = %s AND document_id = %s ORDER BY chunk_index",
                (scope.tenant_id, doc_id),
            ).fetchall()
    return doc  # type: ignore[no-any-return]


def set_active(conn: Any, scope: Scope, document_id: UUID | str, active: bool) -> None:
    """Keep a document but take it out of (or back into) search.

    The flag is mirrored into its vectors' metadata (``active``) so search filters inside
    the index scan without a join.
    """
    doc_id = _as_uuid(document_id)
    with conn.transaction():
        cur = conn.execute(
            "UPDATE learnloop.documents SET active = %s, updated_at = now()"
            " WHERE tenant_id = %s AND project_id = %s AND id = %s",
            (bool(active), scope.tenant_id, scope.project_id, doc_id),
        )
        if cur.rowcount == 0:
            raise NotFound(f"no document {doc_id} in this project")
        conn.execute(
            "UPDATE learnloop.embeddings SET metadata = metadata || jsonb_build_object('active', %s::boolean)"
            " WHERE tenant_id = %s AND document_id = %s",
            (bool(active), scope.tenant_id, doc_id),
        )
        emit(conn, scope.tenant_id, "document", doc_id, "document.activated" if active else "document.deactivated",
             {}, project_id=scope.project_id)


def delete_document(conn: Any, scope: Scope, document_id: UUID | str) -> None:
    doc_id = _as_uuid(document_id)
    with conn.transaction():
        conn.execute("DELETE FROM learnloop.embeddings WHERE tenant_id = %s AND document_id = %s",
                     (scope.tenant_id, doc_id))
        cur = conn.execute(
            "DELETE FROM learnloop.documents WHERE tenant_id = %s AND project_id = %s AND id = %s",
            (scope.tenant_id, scope.project_id, doc_id),
        )
        if cur.rowcount == 0:
            raise NotFound(f"no document {doc_id} in this project")
        emit(conn, scope.tenant_id, "document", doc_id, "document.deleted", {}, project_id=scope.project_id)


def _as_uuid(value: UUID | str) -> UUID:
    try:
        return value if isinstance(value, UUID) else UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{value!r} is not a document id (a UUID)", field="document_id") from None
