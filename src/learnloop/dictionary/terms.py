"""Semantic dictionary: everyday words -> database table and field (seed 001 #5).

Lookup goes from cheapest to fuzziest and stops at the first stage that answers:

1. exact: the phrase, or any 1-3 word run inside it, equals a term's word (score 1.0);
2. synonym: the same runs against the terms' synonyms (score 0.95);
3. semantic: cosine similarity between the phrase and each term's text (word, synonyms,
   definition, examples), score = 1 - cosine distance, best first, above ``min_score``.

Matching is case- and accent-insensitive (``normalise``: NFKD, marks dropped, casefold),
so "Cédula", "cedula" and "CEDULA" are one word; that normalised word is unique per
project. Term vectors live in the one ``learnloop.embeddings`` table (owner_type
``term``), written in the same transaction as the term; the semantic query is an exact
scan over the project's term vectors (a dictionary has hundreds of rows, not millions).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from uuid import UUID

import psycopg
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import Conflict, InvalidInput, NotFound
from ..events.outbox import emit
from ..ledger.models import parse
from ..store.database import Conn
from ..store.ids import uuid7
from ..store.tenancy import Scope
from ..store.validation import check_text
from . import improvements as _imp

EXACT_SCORE = 1.0
SYNONYM_SCORE = 0.95
FIELDS = ("definition", "category", "table_name", "field_name", "synonyms", "examples", "active")


def normalise(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"\s+", " ", plain.casefold()).strip()


def ngrams(phrase: str, n: int = 3) -> list[str]:
    words = re.findall(r"[\w-]+", phrase)
    out = [phrase] if phrase else []
    for size in range(1, n + 1):
        for i in range(len(words) - size + 1):
            g = " ".join(words[i:i + size])
            if g not in out:
                out.append(g)
    return out


class TermIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    word: str = Field(min_length=1, max_length=200)
    definition: str | None = Field(None, max_length=10_000)
    category: str | None = Field(None, max_length=200)
    table_name: str | None = Field(None, max_length=200)
    field_name: str | None = Field(None, max_length=200)
    synonyms: list[str] = Field(default_factory=list, max_length=200)
    examples: list[str] = Field(default_factory=list, max_length=200)
    active: bool = True

    @field_validator("word", "definition", "category", "table_name", "field_name")
    @classmethod
    def _text(cls, v: str | None, info: Any) -> str | None:
        if v is not None:
            check_text(v, info.field_name)
            v = v.strip()
            if info.field_name == "word" and not v:
                raise InvalidInput("word is empty", field="word")
        return v

    @field_validator("synonyms", "examples", mode="before")
    @classmethod
    def _list(cls, v: Any, info: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str) or not isinstance(v, list | tuple):
            raise InvalidInput(f"{info.field_name} must be a list of strings", field=info.field_name)
        out = []
        for s in v:
            if not isinstance(s, str) or not s.strip():
                raise InvalidInput(f"each of {info.field_name} must be a non-empty string", field=info.field_name)
            check_text(s, info.field_name)
            if s.strip() not in out:
                out.append(s.strip())
        return out


def embed_text(t: dict[str, Any]) -> str:
    parts = [t["word"], *t["synonyms"]]
    if t.get("definition"):
        parts.append(t["definition"])
    parts.extend(t["examples"])
    return "; ".join(parts)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "word", *FIELDS, "created_at", "updated_at") if k in row}


def _store_vector(conn: Conn, scope: Scope, embedder: Any, row: dict[str, Any]) -> None:
    if embedder is None:
        return
    from ..embeddings import embed_with_cache
    from ..knowledge.vectors import EmbeddingRow, upsert_embeddings

    text = embed_text(row)
    vec = embed_with_cache(conn, scope.tenant_id, embedder, [text])[0]
    upsert_embeddings(conn, scope, embedder.model_id,
                      [EmbeddingRow("term", row["id"], text, vec, entity_type=row["category"],
                                    metadata={"table": row["table_name"], "field": row["field_name"]})],
                      dimensions=embedder.dimensions)


def prepare(conn: Conn, embedder: Any) -> None:
    """The model's vector index must exist before a transaction writes its first vector."""
    if embedder is not None:
        from ..knowledge.vectors import ensure_index

        ensure_index(conn, embedder.model_id, embedder.dimensions)


def _get_row(conn: Conn, scope: Scope, word: str | UUID) -> dict[str, Any]:
    if isinstance(word, UUID):
        row = conn.execute("SELECT * FROM learnloop.dictionary_terms WHERE tenant_id = %s AND project_id = %s"
                           " AND id = %s", (scope.tenant_id, scope.project_id, word)).fetchone()
    else:
        if not isinstance(word, str):
            raise InvalidInput("a term is named by its word", field="word")
        row = conn.execute("SELECT * FROM learnloop.dictionary_terms WHERE tenant_id = %s AND project_id = %s"
                           " AND word_norm = %s", (scope.tenant_id, scope.project_id, normalise(word))).fetchone()
    if row is None:
        raise NotFound(f"no dictionary term {word!s} in project {scope.project!r}")
    return row


def get(conn: Conn, scope: Scope, word: str | UUID) -> dict[str, Any]:
    return _public(_get_row(conn, scope, word))


def add(conn: Conn, scope: Scope, embedder: Any, data: dict[str, Any] | TermIn, *,
        because_of: UUID | str | None = None, note: str | None = None, by: str | None = None) -> dict[str, Any]:
    t = parse(TermIn, data)
    prepare(conn, embedder)
    with conn.transaction():
        fid = _imp.check_feedback(conn, scope, because_of) if because_of is not None else None
        tid = uuid7()
        try:
            with conn.transaction():
                row = conn.execute(
                    "INSERT INTO learnloop.dictionary_terms (tenant_id, id, project_id, word, word_norm, definition,"
                    " category, table_name, field_name, synonyms, synonyms_norm, examples, active)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                    (scope.tenant_id, tid, scope.project_id, t.word, normalise(t.word), t.definition, t.category,
                     t.table_name, t.field_name, t.synonyms, [normalise(s) for s in t.synonyms], t.examples,
                     t.active),
                ).fetchone()
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"the dictionary already has the word {t.word!r} (matching ignores case and accents);"
                           " update it instead") from None
        assert row is not None  # INSERT ... RETURNING returns the row it inserted
        _store_vector(conn, scope, embedder, row)
        emit(conn, scope.tenant_id, "dictionary_term", tid, "dictionary_term.created",
             {"word": t.word, "table": t.table_name, "field": t.field_name}, project_id=scope.project_id, actor=by)
        if fid is not None:
            _imp.record(conn, scope, fid, "term", tid, "created", None, _jsonable(_public(row)), note=note, by=by)
    return _public(row)


def update(conn: Conn, scope: Scope, embedder: Any, word: str | UUID, changes: dict[str, Any], *,
           because_of: UUID | str | None = None, note: str | None = None, by: str | None = None) -> dict[str, Any]:
    if not isinstance(changes, dict) or not changes:
        raise InvalidInput("nothing to change", field="changes")
    unknown = set(changes) - set(FIELDS) - {"word"}
    if unknown:
        raise InvalidInput(f"unknown field {sorted(unknown)[0]!r}; a term has word, {', '.join(FIELDS)}", field="changes")
    prepare(conn, embedder)
    with conn.transaction():
        fid = _imp.check_feedback(conn, scope, because_of) if because_of is not None else None
        before = _get_row(conn, scope, word)
        merged = parse(TermIn, {**{k: before[k] for k in ("word", *FIELDS)}, **changes})
        try:
            with conn.transaction():
                row = conn.execute(
                    "UPDATE learnloop.dictionary_terms SET word = %s, word_norm = %s, definition = %s, category = %s,"
                    " table_name = %s, field_name = %s, synonyms = %s, synonyms_norm = %s, examples = %s,"
                    " active = %s, updated_at = now() WHERE tenant_id = %s AND id = %s RETURNING *",
                    (merged.word, normalise(merged.word), merged.definition, merged.category, merged.table_name,
                     merged.field_name, merged.synonyms, [normalise(s) for s in merged.synonyms], merged.examples,
                     merged.active, scope.tenant_id, before["id"]),
                ).fetchone()
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"the dictionary already has the word {merged.word!r}") from None
        assert row is not None  # the row read above, in this transaction; nothing deletes terms
        if embed_text(row) != embed_text(before):
            _store_vector(conn, scope, embedder, row)
        emit(conn, scope.tenant_id, "dictionary_term", row["id"], "dictionary_term.updated",
             {"word": row["word"], "changed": sorted(changes)}, project_id=scope.project_id, actor=by)
        if fid is not None:
            _imp.record(conn, scope, fid, "term", row["id"], "updated", _jsonable(_public(before)),
                        _jsonable(_public(row)), note=note, by=by)
    return _public(row)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, UUID) else v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in d.items()}


def list_terms(conn: Conn, scope: Scope, *, category: str | None = None,
               include_inactive: bool = False) -> list[dict[str, Any]]:
    sql = "SELECT * FROM learnloop.dictionary_terms WHERE tenant_id = %s AND project_id = %s"
    params: list[Any] = [scope.tenant_id, scope.project_id]
    if category:
        sql += " AND category = %s"
        params.append(category)
    if not include_inactive:
        sql += " AND active"
    return [_public(r) for r in conn.execute(sql + " ORDER BY word_norm", params).fetchall()]


def lookup(conn: Conn, scope: Scope, embedder: Any, phrase: str, *, k: int = 5,
           min_score: float = 0.3) -> list[dict[str, Any]]:
    if not isinstance(phrase, str) or not phrase.strip():
        raise InvalidInput("nothing to look up: the phrase is empty", field="phrase")
    check_text(phrase, "phrase")
    if not isinstance(k, int) or not 1 <= k <= 100:
        raise InvalidInput("k must be from 1 to 100", field="k")
    grams = ngrams(normalise(phrase))
    rows = conn.execute(
        "SELECT t.*, t.word_norm = ANY(%(g)s) AS exact, cf.definition AS field_definition, cf.data_type"
        " FROM learnloop.dictionary_terms t"
        " LEFT JOIN learnloop.catalog_fields cf ON cf.tenant_id = t.tenant_id AND cf.project_id = t.project_id"
        "  AND cf.table_name = t.table_name AND cf.field_name = t.field_name AND cf.present"
        " WHERE t.tenant_id = %(t)s AND t.project_id = %(p)s AND t.active"
        "  AND (t.word_norm = ANY(%(g)s) OR t.synonyms_norm && %(g)s::text[])"
        " ORDER BY (t.word_norm = ANY(%(g)s)) DESC, length(t.word_norm) DESC LIMIT %(k)s",
        {"t": scope.tenant_id, "p": scope.project_id, "g": grams, "k": k},
    ).fetchall()
    if rows:
        return [_hit(r, EXACT_SCORE if r["exact"] else SYNONYM_SCORE, "exact" if r["exact"] else "synonym")
                for r in rows]
    if embedder is None:
        return []
    from ..embeddings import embed_with_cache

    vec = embed_with_cache(conn, scope.tenant_id, embedder, [phrase.strip()], write=False)[0]
    rows = conn.execute(
        "SELECT t.*, 1 - (e.embedding <=> %(v)s) AS score, cf.definition AS field_definition, cf.data_type"
        " FROM learnloop.embeddings e"
        " JOIN learnloop.dictionary_terms t ON t.tenant_id = e.tenant_id AND t.id = e.owner_id"
        " LEFT JOIN learnloop.catalog_fields cf ON cf.tenant_id = t.tenant_id AND cf.project_id = t.project_id"
        "  AND cf.table_name = t.table_name AND cf.field_name = t.field_name AND cf.present"
        " WHERE e.tenant_id = %(t)s AND e.project_id = %(p)s AND e.owner_type = 'term' AND e.model = %(m)s"
        "  AND t.active"
        " ORDER BY e.embedding <=> %(v)s LIMIT %(k)s",
        {"t": scope.tenant_id, "p": scope.project_id, "m": embedder.model_id, "v": vec, "k": k},
    ).fetchall()
    return [_hit(r, float(r["score"]), "semantic") for r in rows if r["score"] >= min_score]


def _hit(r: dict[str, Any], score: float, match: str) -> dict[str, Any]:
    return {"word": r["word"], "table": r["table_name"], "field": r["field_name"], "score": round(score, 4),
            "match": match, "definition": r["definition"], "category": r["category"],
            "field_definition": r["field_definition"], "data_type": r["data_type"], "term_id": r["id"]}
