"""A language and an embedding model per project.

**Language.** Each embedding row carries ``ts_config`` (a PostgreSQL text search
configuration: ``english``, ``spanish``, ``german``, ... whatever ``pg_ts_config`` lists),
and ``content_tsv`` is generated from it, so stemming and stop words follow the project's
language. ``upsert_embeddings`` stamps new rows with their project's language (one join,
no per-row lookup in Python); full-text and hybrid search parse the query with the same
configuration, or its lexemes would not match the stored ones. Changing a project's
language re-stems its rows in the same transaction. Default: ``english``.

**Embedding model.** A project may name its own provider and model (a local
sentence-transformers name or path, or an OpenAI-compatible model); ``knowledge``
embeds its writes and queries with it. Vectors of two models never meet in one search
(every search names one model; each model has its own partial HNSW index), and a model
whose dimensions differ from the vectors stored under its name is refused when it is set.

Settings are read per process through a 10-second cache (search and ingestion read them
on every call); a change made through the same process applies at once.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from ..errors import InvalidInput
from ..store.migrations import Migration, MigrationSet
from ..store.tenancy import Scope
from ..store.validation import check_text

DEFAULT_LANGUAGE = "english"
# Languages whose texts go through learnloop.ts_prepare before stemming (see the migration).
PREPARED = frozenset({"spanish"})
TTL = 10.0

M001_LANGUAGES = r"""
CREATE TABLE learnloop.project_settings (
    tenant_id           uuid NOT NULL,
    project_id          uuid NOT NULL,
    language            regconfig,
    embedding_provider  text CHECK (embedding_provider IN ('local', 'openai')),
    embedding_model     text CHECK (length(embedding_model) BETWEEN 1 AND 500),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, project_id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES learnloop.projects (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE learnloop.project_settings IS
    'Per project: the full-text language (a text search configuration) and the embedding provider/model.';

-- content_tsv follows the row's language instead of always English. A generated column's
-- expression cannot be changed before PostgreSQL 17, so it is dropped and added again
-- (a table rewrite: run this migration before the table is large).
ALTER TABLE learnloop.embeddings ADD COLUMN ts_config regconfig NOT NULL DEFAULT 'english';
COMMENT ON COLUMN learnloop.embeddings.ts_config IS
    'Text search configuration of content_tsv: the project''s language when the row was written.';
-- Snowball's Spanish stemmer reads a plural noun's "-amos" as a verb ending: "préstamos"
-- stems to 'prest' but "préstamo" to 'prestam', so a search for one misses the other. A
-- Spanish text first loses the plural "s" after an unaccented vowel (préstamos -> préstamo,
-- tarjetas -> tarjeta; interés, país keep theirs); documents and queries alike, so both
-- sides always meet on the same stem.
CREATE FUNCTION learnloop.ts_prepare(cfg regconfig, t text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN cfg::text = 'spanish'
                THEN regexp_replace(t, '([[:alpha:]]{2,}[aeiouAEIOU])s(?![[:alpha:]])', '\1', 'g')
                ELSE t END
$$;
COMMENT ON FUNCTION learnloop.ts_prepare(regconfig, text) IS
    'Text as it is handed to to_tsvector/plainto_tsquery for a language (Spanish plurals folded before stemming).';
DROP INDEX IF EXISTS learnloop.embeddings_tsv_idx;
ALTER TABLE learnloop.embeddings DROP COLUMN content_tsv;
ALTER TABLE learnloop.embeddings ADD COLUMN content_tsv tsvector
    GENERATED ALWAYS AS (to_tsvector(ts_config, learnloop.ts_prepare(ts_config, content))) STORED;
COMMENT ON COLUMN learnloop.embeddings.content_tsv IS
    'tsvector of content in the row''s language (ts_config): stemmed, stop words removed.';
CREATE INDEX embeddings_tsv_idx ON learnloop.embeddings USING gin (content_tsv);
"""


MIGRATIONS = MigrationSet("languages", [Migration("m001_project_language_and_model", M001_LANGUAGES)])

_cache: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}
_lock = threading.Lock()


def _key(db: Any, scope: Scope) -> tuple[Any, ...]:
    return (db.url, scope.tenant_id, scope.project_id)


def settings(db: Any, scope: Scope, conn: psycopg.Connection[Any] | None = None) -> dict[str, Any]:
    """{language, embedding_provider, embedding_model} of the scope's project (cached per
    process). ``conn``: a connection the caller holds (read on it when the cache is cold,
    instead of checking out a second one)."""
    key = _key(db, scope)
    hit = _cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < TTL:
        return hit[1]
    if conn is None:
        with db.connection() as c:
            return settings(db, scope, c)
    row = conn.execute(
        "SELECT language::text AS language, embedding_provider, embedding_model FROM learnloop.project_settings"
        " WHERE tenant_id = %s AND project_id = %s", (scope.tenant_id, scope.project_id)).fetchone()
    out: dict[str, Any] = {"language": DEFAULT_LANGUAGE, "embedding_provider": None, "embedding_model": None}
    if row is not None:
        r = row if isinstance(row, dict) else dict(zip(("language", "embedding_provider", "embedding_model"), row,
                                                       strict=True))
        out = {**r, "language": r["language"] or DEFAULT_LANGUAGE}
    with _lock:
        _cache[key] = (time.monotonic(), out)
    return out


def language(db: Any, scope: Scope, conn: psycopg.Connection[Any] | None = None) -> str:
    return str(settings(db, scope, conn)["language"])


def prepare_query(conn: psycopg.Connection[Any], lang: str, text: str | None) -> str | None:
    """The query text as the stored rows of ``lang`` were prepared (a round trip only for
    the languages in ``PREPARED``)."""
    if text is None or lang not in PREPARED:
        return text
    row = conn.execute("SELECT learnloop.ts_prepare(%s::regconfig, %s) AS t", (lang, text)).fetchone()
    assert row is not None
    return str(row["t"] if isinstance(row, dict) else row[0])


def available(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute("SELECT cfgname::text AS n FROM pg_catalog.pg_ts_config ORDER BY 1").fetchall()
    return [r["n"] if isinstance(r, dict) else r[0] for r in rows]


def check_language(conn: psycopg.Connection[Any], name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("language must be the name of a PostgreSQL text search configuration, e.g. 'spanish'",
                           field="language")
    check_text(name, "language")
    names = available(conn)
    if name not in names:
        raise InvalidInput(f"PostgreSQL has no text search language {name[:100]!r}; this server has: "
                           f"{', '.join(names)}", field="language")
    return name


def set_language(db: Any, conn: psycopg.Connection[Any], scope: Scope, name: str) -> int:
    """Set the project's language and re-stem its rows; returns how many rows changed."""
    lang = check_language(conn, name)
    with conn.transaction():
        conn.execute(
            "INSERT INTO learnloop.project_settings (tenant_id, project_id, language) VALUES (%s, %s, %s::regconfig)"
            " ON CONFLICT (tenant_id, project_id) DO UPDATE SET language = EXCLUDED.language, updated_at = EXCLUDED.updated_at",
            (scope.tenant_id, scope.project_id, lang))
        n = conn.execute(
            "UPDATE learnloop.embeddings SET ts_config = %s::regconfig"
            " WHERE tenant_id = %s AND project_id = %s AND ts_config <> %s::regconfig",
            (lang, scope.tenant_id, scope.project_id, lang)).rowcount
    forget(db, scope)
    return n


def set_model(db: Any, conn: psycopg.Connection[Any], scope: Scope, provider: Any) -> None:
    """Make ``provider`` (an EmbeddingProvider) the project's model. Its dimensions must
    match any vectors already stored under its model id (InvalidInput otherwise)."""
    from .vectors import recorded_dimensions

    kind = "openai" if type(provider).__name__.lower().startswith("openai") else "local"
    dims = recorded_dimensions(conn, provider.model_id)
    if dims is not None and dims != provider.dimensions:
        raise InvalidInput(
            f"model {provider.model_id!r} gives {provider.dimensions}-dimension vectors but {dims}-dimension "
            "vectors are stored under that name; give the new model a different name", field="model")
    with conn.transaction():
        conn.execute(
            "INSERT INTO learnloop.project_settings (tenant_id, project_id, embedding_provider, embedding_model)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (tenant_id, project_id) DO UPDATE SET"
            " embedding_provider = EXCLUDED.embedding_provider, embedding_model = EXCLUDED.embedding_model,"
            " updated_at = EXCLUDED.updated_at", (scope.tenant_id, scope.project_id, kind, provider.model_id))
    forget(db, scope)


def forget(db: Any, scope: Scope) -> None:
    with _lock:
        _cache.pop(_key(db, scope), None)
