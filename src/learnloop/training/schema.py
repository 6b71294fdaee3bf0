"""Training, dictionary and prediction tables (one migration set, ``training``).

Invariants kept by the tables themselves:

* a dataset version and its membership rows never change once written (triggers refuse
  UPDATE), so "which generations trained job X" has one answer forever;
* ``(tenant, project, name, version)`` is unique, and versions of one name count up;
* a fine-tuning job points at the exact dataset version it was trained on;
* a dictionary word is unique per project after normalisation (case and accents folded);
* a catalog field is unique per (project, schema, table, field); re-introspection updates
  the machine facts and keeps the human-written definition and notes;
* every improvement row names the feedback that asked for it and the term/field it changed.
"""

from ..store.migrations import Migration, MigrationSet

M001_DATASETS_JOBS = """
CREATE TABLE learnloop.datasets (
    tenant_id     uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    id            uuid NOT NULL,
    project_id    uuid NOT NULL,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    version       integer NOT NULL CHECK (version >= 1),
    kind          text NOT NULL CHECK (kind IN ('sft', 'preference')),
    filter        jsonb NOT NULL CHECK (jsonb_typeof(filter) = 'object'),
    options       jsonb NOT NULL CHECK (jsonb_typeof(options) = 'object'),
    content_hash  text NOT NULL,
    counts        jsonb NOT NULL CHECK (jsonb_typeof(counts) = 'object'),
    created_by    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES learnloop.projects (tenant_id, id),
    UNIQUE (tenant_id, project_id, name, version)
);
COMMENT ON TABLE learnloop.datasets IS 'Immutable, named, versioned training sets curated from the ledger.';
COMMENT ON COLUMN learnloop.datasets.kind IS 'sft: one example per generation; preference: chosen/rejected pairs.';
COMMENT ON COLUMN learnloop.datasets.filter IS 'The curation filter, normalised (what was asked for).';
COMMENT ON COLUMN learnloop.datasets.options IS 'dedupe, scrub_pii, validation fraction, seed, system prompt.';
COMMENT ON COLUMN learnloop.datasets.content_hash IS 'sha256 over kind, filter, options and the ordered items: same data = same hash.';
COMMENT ON COLUMN learnloop.datasets.counts IS 'matched, duplicates, examples, train, validation, pii replacements by kind.';
CREATE INDEX datasets_hash_idx ON learnloop.datasets (tenant_id, project_id, content_hash);

CREATE TABLE learnloop.dataset_items (
    tenant_id      uuid NOT NULL,
    dataset_id     uuid NOT NULL,
    position       integer NOT NULL CHECK (position >= 0),
    generation_id  uuid NOT NULL,
    rejected_id    uuid,
    split          text NOT NULL CHECK (split IN ('train', 'validation')),
    example_hash   text NOT NULL,
    example        jsonb NOT NULL CHECK (jsonb_typeof(example) = 'object'),
    PRIMARY KEY (tenant_id, dataset_id, position),
    FOREIGN KEY (tenant_id, dataset_id) REFERENCES learnloop.datasets (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, generation_id) REFERENCES learnloop.generations (tenant_id, id),
    FOREIGN KEY (tenant_id, rejected_id) REFERENCES learnloop.generations (tenant_id, id)
);
COMMENT ON TABLE learnloop.dataset_items IS 'Membership (provenance): the exact generations in a dataset version, with the example as exported.';
COMMENT ON COLUMN learnloop.dataset_items.generation_id IS 'The example''s generation; for a preference pair, the chosen one.';
COMMENT ON COLUMN learnloop.dataset_items.rejected_id IS 'Preference pairs only: the rejected generation.';
COMMENT ON COLUMN learnloop.dataset_items.example IS 'The example as it will be exported (after PII scrubbing), frozen with the version.';
CREATE INDEX dataset_items_generation_idx ON learnloop.dataset_items (tenant_id, generation_id);
CREATE INDEX dataset_items_rejected_idx ON learnloop.dataset_items (tenant_id, rejected_id) WHERE rejected_id IS NOT NULL;

CREATE FUNCTION learnloop.forbid_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable; create a new version instead', TG_TABLE_NAME
        USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER datasets_immutable BEFORE UPDATE ON learnloop.datasets
    FOR EACH ROW EXECUTE FUNCTION learnloop.forbid_update();
CREATE TRIGGER dataset_items_immutable BEFORE UPDATE ON learnloop.dataset_items
    FOR EACH ROW EXECUTE FUNCTION learnloop.forbid_update();

CREATE TABLE learnloop.finetune_jobs (
    tenant_id          uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    id                 uuid NOT NULL,
    project_id         uuid NOT NULL,
    dataset_id         uuid NOT NULL,
    provider           text NOT NULL,
    base_url           text,
    provider_job_id    text,
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    provider_status    text,
    base_model         text NOT NULL,
    result_model       text,
    training_file_id   text,
    validation_file_id text,
    example_count      integer NOT NULL CHECK (example_count >= 0),
    progress           double precision NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    trained_tokens     bigint,
    error              text,
    sync_error         text,
    hyperparameters    jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(hyperparameters) = 'object'),
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    synced_at          timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES learnloop.projects (tenant_id, id),
    FOREIGN KEY (tenant_id, dataset_id) REFERENCES learnloop.datasets (tenant_id, id)
);
COMMENT ON TABLE learnloop.finetune_jobs IS 'Fine-tuning jobs: which dataset version trained which model, and how it went.';
COMMENT ON COLUMN learnloop.finetune_jobs.provider_status IS 'The provider''s own status word (validating_files, queued, ...).';
COMMENT ON COLUMN learnloop.finetune_jobs.progress IS '0-100, from the provider''s step events; 100 when succeeded.';
COMMENT ON COLUMN learnloop.finetune_jobs.error IS 'Why the job failed, in the provider''s words.';
COMMENT ON COLUMN learnloop.finetune_jobs.sync_error IS 'Last failed status poll (the job itself may still be running).';
CREATE UNIQUE INDEX finetune_jobs_provider_idx
    ON learnloop.finetune_jobs (tenant_id, provider, provider_job_id) WHERE provider_job_id IS NOT NULL;
CREATE INDEX finetune_jobs_result_idx ON learnloop.finetune_jobs (tenant_id, result_model) WHERE result_model IS NOT NULL;
CREATE INDEX finetune_jobs_dataset_idx ON learnloop.finetune_jobs (tenant_id, dataset_id);

CREATE TABLE learnloop.finetune_events (
    tenant_id         uuid NOT NULL,
    job_id            uuid NOT NULL,
    provider_event_id text NOT NULL,
    level             text,
    message           text NOT NULL,
    data              jsonb,
    created_at        timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, job_id, provider_event_id),
    FOREIGN KEY (tenant_id, job_id) REFERENCES learnloop.finetune_jobs (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE learnloop.finetune_events IS 'The provider''s job events (progress messages, metrics), copied at each sync.';
"""

M002_DICTIONARY_CATALOG = """
CREATE TABLE learnloop.dictionary_terms (
    tenant_id      uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    id             uuid NOT NULL,
    project_id     uuid NOT NULL,
    word           text NOT NULL CHECK (length(word) BETWEEN 1 AND 200),
    word_norm      text NOT NULL,
    definition     text,
    category       text,
    table_name     text,
    field_name     text,
    synonyms       text[] NOT NULL DEFAULT '{}',
    synonyms_norm  text[] NOT NULL DEFAULT '{}',
    examples       text[] NOT NULL DEFAULT '{}',
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES learnloop.projects (tenant_id, id),
    UNIQUE (tenant_id, project_id, word_norm)
);
COMMENT ON TABLE learnloop.dictionary_terms IS 'Semantic dictionary: everyday words mapped to database tables and fields.';
COMMENT ON COLUMN learnloop.dictionary_terms.word_norm IS 'Lower-cased, accent-free word: the uniqueness and exact-lookup key.';
COMMENT ON COLUMN learnloop.dictionary_terms.synonyms_norm IS 'Normalised synonyms for the synonym lookup (GIN).';
CREATE INDEX dictionary_synonyms_idx ON learnloop.dictionary_terms USING gin (synonyms_norm);

CREATE TABLE learnloop.catalog_fields (
    tenant_id        uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    id               uuid NOT NULL,
    project_id       uuid NOT NULL,
    schema_name      text NOT NULL,
    table_name       text NOT NULL,
    field_name       text NOT NULL,
    definition       text,
    data_type        text,
    required         boolean,
    indexed          boolean,
    fk_table         text,
    fk_field         text,
    allowed_values   jsonb CHECK (allowed_values IS NULL OR jsonb_typeof(allowed_values) = 'array'),
    example_values   jsonb CHECK (example_values IS NULL OR jsonb_typeof(example_values) = 'array'),
    notes            text,
    db_comment       text,
    present          boolean NOT NULL DEFAULT true,
    introspected_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES learnloop.projects (tenant_id, id),
    UNIQUE (tenant_id, project_id, schema_name, table_name, field_name)
);
COMMENT ON TABLE learnloop.catalog_fields IS 'Field catalog: what each column of the app database means, for the assistant.';
COMMENT ON COLUMN learnloop.catalog_fields.definition IS 'Human-written meaning; never overwritten by introspection.';
COMMENT ON COLUMN learnloop.catalog_fields.db_comment IS 'COMMENT ON COLUMN from the database, refreshed by introspection.';
COMMENT ON COLUMN learnloop.catalog_fields.allowed_values IS 'Enum labels or CHECK (... IN (...)) values found by introspection, or set by hand.';
COMMENT ON COLUMN learnloop.catalog_fields.present IS 'false when the last introspection no longer found the column.';

CREATE TABLE learnloop.improvements (
    tenant_id    uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    project_id   uuid NOT NULL,
    feedback_id  uuid NOT NULL,
    target_type  text NOT NULL CHECK (target_type IN ('term', 'catalog_field')),
    target_id    uuid NOT NULL,
    action       text NOT NULL CHECK (action IN ('created', 'updated')),
    before       jsonb,
    after        jsonb NOT NULL,
    note         text,
    created_by   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, feedback_id) REFERENCES learnloop.feedback (tenant_id, id)
);
COMMENT ON TABLE learnloop.improvements IS 'A dictionary/catalog change made because of a (negative) rating: seed 001 flow steps 4-6.';
CREATE INDEX improvements_feedback_idx ON learnloop.improvements (tenant_id, feedback_id);
CREATE INDEX improvements_target_idx ON learnloop.improvements (tenant_id, target_type, target_id);
"""

M003_PREDICTIONS = """
CREATE TABLE learnloop.predictions (
    tenant_id      uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    id             uuid NOT NULL,
    project_id     uuid NOT NULL,
    external_id    text,
    model_name     text NOT NULL CHECK (length(model_name) BETWEEN 1 AND 200),
    model_version  text NOT NULL CHECK (length(model_version) BETWEEN 1 AND 200),
    subject        jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(subject) = 'object'),
    score          double precision NOT NULL CHECK (score >= 0 AND score <= 1),
    label          text,
    factors        jsonb NOT NULL DEFAULT '{}'::jsonb,
    outcome        boolean,
    outcome_at     timestamptz,
    outcome_note   text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES learnloop.projects (tenant_id, id)
);
COMMENT ON TABLE learnloop.predictions IS 'Model outputs (risk, default...) with the subject they scored and, later, the real outcome.';
COMMENT ON COLUMN learnloop.predictions.subject IS 'Business entities scored, e.g. {"loan": "456", "client": "123", "installment": "7"}.';
COMMENT ON COLUMN learnloop.predictions.score IS 'Predicted probability of the positive outcome (e.g. default), 0-1.';
COMMENT ON COLUMN learnloop.predictions.label IS 'The model''s own label, e.g. HIGH_RISK.';
COMMENT ON COLUMN learnloop.predictions.outcome IS 'What really happened: true = the positive outcome occurred. NULL = not known yet.';
CREATE UNIQUE INDEX predictions_external_idx
    ON learnloop.predictions (tenant_id, project_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX predictions_model_idx ON learnloop.predictions (tenant_id, project_id, model_name, model_version);
CREATE INDEX predictions_subject_idx ON learnloop.predictions USING gin (subject jsonb_path_ops);
"""

MIGRATIONS = MigrationSet(
    "training",
    [
        Migration("m001_datasets_finetune_jobs", M001_DATASETS_JOBS),
        Migration("m002_dictionary_catalog_improvements", M002_DICTIONARY_CATALOG),
        Migration("m003_predictions", M003_PREDICTIONS),
    ],
)
