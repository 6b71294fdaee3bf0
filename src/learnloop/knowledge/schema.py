"""Knowledge tables: documents, their chunks, app entities, and the one embeddings table.

The embeddings column is an untyped ``vector``: each embedding model gets its own partial
expression HNSW index, ``((embedding::vector(DIM)) vector_cosine_ops) WHERE model = '...'``,
created by code when a model is first used (see ``knowledge.vectors``), so two models can
coexist during a migration. Filter columns (project, owner type, entity type, user,
document, metadata) are copied onto each embedding row so a filtered search is one scan
of one table, filtered inside the index scan (pgvector iterative scans).
"""

from ..store.migrations import Migration, MigrationSet

M001_KNOWLEDGE = """
CREATE TABLE learnloop.documents (
    tenant_id      uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    id             uuid NOT NULL,
    project_id     uuid NOT NULL,
    source         text NOT NULL,
    title          text,
    description    text,
    file_name      text NOT NULL,
    file_type      text NOT NULL,
    size_bytes     bigint NOT NULL CHECK (size_bytes >= 0),
    content_hash   text NOT NULL,
    extracted_text text,
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processed', 'failed')),
    error          text,
    active         boolean NOT NULL DEFAULT true,
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    chunk_count    integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES learnloop.projects (tenant_id, id),
    UNIQUE (tenant_id, project_id, source)
);
COMMENT ON TABLE learnloop.documents IS 'Uploaded files (PDF, DOCX, TXT, Markdown, HTML) for retrieval.';
COMMENT ON COLUMN learnloop.documents.source IS 'Where it came from (path or URI); re-ingesting the same source replaces it.';
COMMENT ON COLUMN learnloop.documents.content_hash IS 'Hash of the file bytes with its algorithm, e.g. sha256:...; same hash = no-op.';
COMMENT ON COLUMN learnloop.documents.status IS 'pending, processed, or failed (see error).';
COMMENT ON COLUMN learnloop.documents.error IS 'Why processing failed (encrypted, corrupt, too large, ...).';
COMMENT ON COLUMN learnloop.documents.active IS 'Inactive documents are kept but not searched.';

CREATE TABLE learnloop.chunks (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    document_id  uuid NOT NULL,
    chunk_index  integer NOT NULL CHECK (chunk_index >= 0),
    text         text NOT NULL,
    token_count  integer,
    char_start   integer,
    char_end     integer,
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, document_id) REFERENCES learnloop.documents (tenant_id, id) ON DELETE CASCADE,
    UNIQUE (tenant_id, document_id, chunk_index)
);
COMMENT ON TABLE learnloop.chunks IS 'Pieces of a document, in order, each embedded separately.';

CREATE TABLE learnloop.entities (
    tenant_id    uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    project_id   uuid NOT NULL,
    entity_type  text NOT NULL CHECK (length(entity_type) BETWEEN 1 AND 100),
    entity_id    text NOT NULL CHECK (length(entity_id) BETWEEN 1 AND 500),
    user_ref     text,
    text         text NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES learnloop.projects (tenant_id, id),
    UNIQUE (tenant_id, project_id, entity_type, entity_id)
);
COMMENT ON TABLE learnloop.entities IS 'App records indexed for semantic search (goals, tasks, code snapshots...).';
COMMENT ON COLUMN learnloop.entities.metadata IS 'Filterable attributes, e.g. {"status": "completed", "validation_score": 0.9}.';

CREATE TABLE learnloop.embeddings (
    tenant_id    uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    project_id   uuid NOT NULL,
    owner_type   text NOT NULL CHECK (owner_type IN ('chunk', 'entity', 'generation', 'term')),
    owner_id     uuid NOT NULL,
    model        text NOT NULL,
    content_hash text NOT NULL,
    content      text NOT NULL,
    embedding    vector NOT NULL,
    entity_type  text,
    user_ref     text,
    document_id  uuid,
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, owner_type, owner_id, model)
);
COMMENT ON TABLE learnloop.embeddings IS 'Every vector, whatever it embeds; one partial HNSW index per model.';
COMMENT ON COLUMN learnloop.embeddings.owner_type IS 'chunk, entity, generation or term: what owner_id points at.';
COMMENT ON COLUMN learnloop.embeddings.model IS 'Embedding model id; part of every index predicate.';
COMMENT ON COLUMN learnloop.embeddings.content IS 'The text that was embedded (for full-text and hybrid search).';
COMMENT ON COLUMN learnloop.embeddings.embedding IS 'Untyped vector; cast to vector(DIM) by the per-model index.';
COMMENT ON COLUMN learnloop.embeddings.metadata IS 'Copied from the owner for filtering inside the scan.';
CREATE INDEX embeddings_owner_idx ON learnloop.embeddings (tenant_id, owner_type, owner_id);
CREATE INDEX embeddings_scope_idx ON learnloop.embeddings (tenant_id, model, project_id, owner_type, entity_type);
CREATE INDEX embeddings_document_idx ON learnloop.embeddings (tenant_id, document_id) WHERE document_id IS NOT NULL;
CREATE INDEX embeddings_metadata_idx ON learnloop.embeddings USING gin (metadata jsonb_path_ops);

CREATE TABLE learnloop.embedding_cache (
    tenant_id    uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    model        text NOT NULL,
    content_hash text NOT NULL,
    embedding    vector NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, model, content_hash)
);
COMMENT ON TABLE learnloop.embedding_cache IS
    'Embeddings by (model, content hash with algorithm prefix): the same text is never embedded twice.';

CREATE TABLE learnloop.vector_indexes (
    model            text PRIMARY KEY,
    dimensions       integer NOT NULL CHECK (dimensions > 0),
    index_name       text NOT NULL,
    m                integer NOT NULL,
    ef_construction  integer NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE learnloop.vector_indexes IS 'One HNSW index per embedding model (global metadata, not tenant data).';
"""

MIGRATIONS = MigrationSet("knowledge", [Migration("m001_documents_entities_embeddings", M001_KNOWLEDGE)])
