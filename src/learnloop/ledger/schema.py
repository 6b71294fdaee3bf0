"""Ledger tables: generations with lineage, feedback with its review state.

Invariants kept by the tables themselves:

* a parent is in the same tenant (the foreign key includes ``tenant_id``);
* ``root_id`` and ``iteration`` are derived from the parent at insert and never change,
  and ``parent_id`` cannot be updated, so lineage can never form a cycle;
* ``generation_verdicts`` is the one definition of "this generation was rated good/bad"
  used by every analytics query. Since m004 it reads ``learnloop.verdicts``, a summary
  kept current by every feedback write in the same statement (single) or transaction
  (bulk), so no query aggregates all feedback to learn a verdict.
* Since m005 ``learnloop.verdicts`` holds a row for *every* generation, written by the
  statement (single) or transaction (bulk) that logs it: the generation's analytic
  columns (kind, model, tokens, cost, latency, config, context, output_meta) beside its
  verdict summary. Analytics scan this one narrow table instead of joining the wide ledger
  to the summary (4x faster at 1M generations, see docs/analytics.md). A generation that
  has no feedback has zero counters and a NULL verdict; ``generation_verdicts`` still
  lists only generations with feedback.
"""

import psycopg
from psycopg.rows import tuple_row

from ..store.migrations import (
    Migration,
    MigrationSet,
    one_statement_at_a_time,
    young_table_statistics,
)

M001_GENERATIONS = """
CREATE TABLE learnloop.generations (
    tenant_id       uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    id              uuid NOT NULL,
    project_id      uuid NOT NULL,
    external_id     text,
    kind            text NOT NULL CHECK (length(kind) BETWEEN 1 AND 50),
    user_ref        text,
    session_ref     text,
    parent_id       uuid,
    root_id         uuid NOT NULL,
    iteration       integer NOT NULL DEFAULT 1 CHECK (iteration >= 1),
    context         jsonb NOT NULL DEFAULT '{}'::jsonb,
    config          jsonb NOT NULL DEFAULT '{}'::jsonb,
    prompt          text,
    negative_prompt text,
    messages        jsonb,
    output_text     text,
    output_url      text,
    output_meta     jsonb NOT NULL DEFAULT '{}'::jsonb,
    model           text,
    provider        text,
    tokens_in       integer CHECK (tokens_in >= 0),
    tokens_out      integer CHECK (tokens_out >= 0),
    latency_ms      double precision CHECK (latency_ms >= 0),
    cost            numeric(18, 8) CHECK (cost >= 0),
    retrieved       jsonb NOT NULL DEFAULT '[]'::jsonb,
    links           jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES learnloop.projects (tenant_id, id),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES learnloop.generations (tenant_id, id),
    CHECK (jsonb_typeof(context) = 'object'),
    CHECK (jsonb_typeof(config) = 'object'),
    CHECK (jsonb_typeof(output_meta) = 'object'),
    CHECK (jsonb_typeof(links) = 'object'),
    CHECK (jsonb_typeof(retrieved) = 'array'),
    CHECK (messages IS NULL OR jsonb_typeof(messages) = 'array'),
    CHECK ((parent_id IS NULL) = (iteration = 1))
);
COMMENT ON TABLE learnloop.generations IS 'Every AI attempt with its full context (the ledger).';
COMMENT ON COLUMN learnloop.generations.external_id IS 'The app''s own id for this attempt; unique per project.';
COMMENT ON COLUMN learnloop.generations.kind IS 'image, chat, completion, call, code, ...';
COMMENT ON COLUMN learnloop.generations.user_ref IS 'Who asked (the app''s user id).';
COMMENT ON COLUMN learnloop.generations.session_ref IS 'Conversation or thread the attempt belongs to.';
COMMENT ON COLUMN learnloop.generations.parent_id IS 'The attempt this one regenerates/corrects.';
COMMENT ON COLUMN learnloop.generations.root_id IS 'Original attempt of the lineage (itself for an original).';
COMMENT ON COLUMN learnloop.generations.iteration IS '1 = original, 2 = first correction, ...';
COMMENT ON COLUMN learnloop.generations.context IS 'Input context snapshot, e.g. telemetry {"demand_kw": 385, "efficiency": 0.06}.';
COMMENT ON COLUMN learnloop.generations.config IS 'Engine config, e.g. {"audience": "INVESTOR", "style_preset": "CYBERPUNK_DARK"}.';
COMMENT ON COLUMN learnloop.generations.messages IS 'Chat messages sent to the model, [{"role": ..., "content": ...}].';
COMMENT ON COLUMN learnloop.generations.output_meta IS 'Output metadata, e.g. {"seed": 12345}.';
COMMENT ON COLUMN learnloop.generations.cost IS 'Cost of the call in the app''s currency.';
COMMENT ON COLUMN learnloop.generations.retrieved IS 'Documents/chunks/examples used as context: [{"type": "chunk", "id": ...}].';
COMMENT ON COLUMN learnloop.generations.links IS 'Business entities, e.g. {"client": "123", "loan": "456"}.';

CREATE UNIQUE INDEX generations_external_idx
    ON learnloop.generations (tenant_id, project_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX generations_project_created_idx ON learnloop.generations (tenant_id, project_id, created_at);
CREATE INDEX generations_root_idx ON learnloop.generations (tenant_id, root_id);
CREATE INDEX generations_parent_idx ON learnloop.generations (tenant_id, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX generations_session_idx ON learnloop.generations (tenant_id, session_ref) WHERE session_ref IS NOT NULL;
CREATE INDEX generations_links_idx ON learnloop.generations USING gin (links jsonb_path_ops);
CREATE INDEX generations_config_idx ON learnloop.generations USING gin (config jsonb_path_ops);
CREATE INDEX generations_context_idx ON learnloop.generations USING gin (context jsonb_path_ops);

-- Lineage is fixed at insert: moving a node could create a cycle or orphan its subtree.
CREATE FUNCTION learnloop.forbid_lineage_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.parent_id IS DISTINCT FROM OLD.parent_id
       OR NEW.root_id IS DISTINCT FROM OLD.root_id
       OR NEW.iteration IS DISTINCT FROM OLD.iteration
       OR NEW.id IS DISTINCT FROM OLD.id
       OR NEW.tenant_id IS DISTINCT FROM OLD.tenant_id THEN
        RAISE EXCEPTION 'lineage of a generation cannot be changed' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER generations_lineage_fixed BEFORE UPDATE ON learnloop.generations
    FOR EACH ROW EXECUTE FUNCTION learnloop.forbid_lineage_change();
"""

M002_FEEDBACK = """
CREATE TABLE learnloop.feedback (
    tenant_id        uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    id               uuid NOT NULL,
    generation_id    uuid NOT NULL,
    project_id       uuid NOT NULL,
    sentiment        text CHECK (sentiment IN ('POSITIVE', 'NEGATIVE', 'NEUTRAL')),
    rating           smallint CHECK (rating BETWEEN 1 AND 5),
    thumbs           smallint CHECK (thumbs IN (-1, 1)),
    tags             text[] NOT NULL DEFAULT '{}',
    comment          text,
    instruction      text,
    corrected_output text,
    source           text NOT NULL DEFAULT 'user' CHECK (source IN ('user', 'admin', 'automatic')),
    author_ref       text,
    processed        boolean NOT NULL DEFAULT false,
    processed_at     timestamptz,
    processed_by     text,
    review_notes     text,
    improved         boolean,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, generation_id) REFERENCES learnloop.generations (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE learnloop.feedback IS 'Votes, ratings, tags, comments and corrections on a generation; several per generation.';
COMMENT ON COLUMN learnloop.feedback.sentiment IS 'POSITIVE/NEGATIVE/NEUTRAL; derived from rating or thumbs when not given.';
COMMENT ON COLUMN learnloop.feedback.rating IS '1-5 stars.';
COMMENT ON COLUMN learnloop.feedback.thumbs IS '+1 up, -1 down.';
COMMENT ON COLUMN learnloop.feedback.tags IS 'Structured labels, e.g. {TOO_DARK, TEXT_GLITCH}.';
COMMENT ON COLUMN learnloop.feedback.instruction IS 'What the user asked to change (correction instruction).';
COMMENT ON COLUMN learnloop.feedback.corrected_output IS 'The output as the user says it should have been.';
COMMENT ON COLUMN learnloop.feedback.source IS 'user, admin or automatic (an evaluator).';
COMMENT ON COLUMN learnloop.feedback.processed IS 'Review queue: an admin has handled this feedback.';
COMMENT ON COLUMN learnloop.feedback.improved IS 'Review queue: the system was improved because of it.';

CREATE INDEX feedback_generation_idx ON learnloop.feedback (tenant_id, generation_id);
CREATE INDEX feedback_review_idx ON learnloop.feedback (tenant_id, processed, created_at);
CREATE INDEX feedback_created_idx ON learnloop.feedback (tenant_id, created_at);
CREATE INDEX feedback_tags_idx ON learnloop.feedback USING gin (tags);

CREATE VIEW learnloop.generation_verdicts AS
SELECT tenant_id,
       generation_id,
       count(*) AS feedback_count,
       count(*) FILTER (WHERE sentiment = 'POSITIVE') AS positives,
       count(*) FILTER (WHERE sentiment = 'NEGATIVE') AS negatives,
       avg(rating)::double precision AS avg_rating,
       CASE
           WHEN count(*) FILTER (WHERE sentiment = 'POSITIVE') > count(*) FILTER (WHERE sentiment = 'NEGATIVE')
               THEN 'POSITIVE'
           WHEN count(*) FILTER (WHERE sentiment = 'NEGATIVE') > count(*) FILTER (WHERE sentiment = 'POSITIVE')
               THEN 'NEGATIVE'
           WHEN count(*) FILTER (WHERE sentiment IS NOT NULL) > 0 THEN 'NEUTRAL'
       END AS verdict,
       max(created_at) AS last_feedback_at
FROM learnloop.feedback
GROUP BY tenant_id, generation_id;
COMMENT ON VIEW learnloop.generation_verdicts IS
    'One verdict per rated generation: POSITIVE if positive feedback outnumbers negative, NEGATIVE if the reverse, else NEUTRAL.';
"""

# A plan cached before the first ANALYZE (a backend's foreign-key check of a child's parent
# or a feedback row's generation, the child-log statement) scanned the tenant's whole
# (tenant_id, root_id) index on every call until autovacuum analysed the table: 2.7 ms per
# child log at 20k rows. See ``young_table_statistics``.
M003_YOUNG_TABLE_STATISTICS = young_table_statistics(["generations", "feedback"])

# Per-generation feedback summary, one row per generation with feedback. Counters only
# ever grow by deltas (``+ excluded.x``), never by recounting: two transactions rating the
# same generation at once serialise on the row lock and both land, which a recount under
# READ COMMITTED would lose. The verdict rule is the view's, now a generated column.
# ``tags`` is the set of tags any feedback gave the generation (for tag breakdowns without
# reading the feedback table). The generation's project, lineage and time are copied in at
# the first feedback (they never change: see forbid_lineage_change), so "did corrections
# fix it?" reads this table and one index-only scan of children, never the wide ledger
# rows. The view keeps its name and columns for every reader.
M004_VERDICTS = """
CREATE TABLE learnloop.verdicts (
    tenant_id        uuid NOT NULL,
    generation_id    uuid NOT NULL,
    project_id       uuid NOT NULL,
    parent_id        uuid,
    root_id          uuid NOT NULL,
    iteration        integer NOT NULL,
    generated_at     timestamptz NOT NULL,
    feedback_count   integer NOT NULL,
    sentiments       integer NOT NULL,
    positives        integer NOT NULL,
    negatives        integer NOT NULL,
    rating_sum       integer NOT NULL,
    rating_count     integer NOT NULL,
    tags             text[] NOT NULL,
    sources          text[] NOT NULL,
    last_feedback_at timestamptz NOT NULL,
    verdict          text GENERATED ALWAYS AS (
        CASE WHEN positives > negatives THEN 'POSITIVE'
             WHEN negatives > positives THEN 'NEGATIVE'
             WHEN sentiments > 0 THEN 'NEUTRAL' END) STORED,
    PRIMARY KEY (tenant_id, generation_id)
);
COMMENT ON TABLE learnloop.verdicts IS
    'Feedback summary per generation, kept current by every feedback write; read through generation_verdicts.';
COMMENT ON COLUMN learnloop.verdicts.generated_at IS 'The generation''s created_at (copied: periods filter on it).';
COMMENT ON COLUMN learnloop.verdicts.sentiments IS 'Feedback rows that carry a sentiment.';
COMMENT ON COLUMN learnloop.verdicts.tags IS 'Distinct tags over all feedback rows of the generation.';
COMMENT ON COLUMN learnloop.verdicts.sources IS 'Distinct feedback sources (user, admin, automatic).';

-- No foreign key to generations: its check cost a query per summary row (57 us a row
-- under load, a third of a bulk import's summary step), and every summary row is written
-- from a generation just read in the same statement. A deleted generation (directly, or
-- by its tenant's cascade) takes its summary row with it here, once per statement.
CREATE FUNCTION learnloop.drop_verdicts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM learnloop.verdicts v USING gone g WHERE v.tenant_id = g.tenant_id AND v.generation_id = g.id;
    RETURN NULL;
END $$;
CREATE TRIGGER generations_drop_verdicts AFTER DELETE ON learnloop.generations
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION learnloop.drop_verdicts();

-- Only the primary key: corrections() reads the tenant's summary rows in one pass (hash
-- joins), and each further index would be a write on every feedback call.

-- Children of a generation with the columns a period/project filter reads, for index-only
-- scans (replaces the plain parent index).
CREATE INDEX generations_children_idx ON learnloop.generations (tenant_id, parent_id)
    INCLUDE (project_id, created_at) WHERE parent_id IS NOT NULL;
DROP INDEX learnloop.generations_parent_idx;

INSERT INTO learnloop.verdicts (tenant_id, generation_id, project_id, parent_id, root_id, iteration,
                                generated_at, feedback_count, sentiments, positives,
                                negatives, rating_sum, rating_count, tags, sources, last_feedback_at)
SELECT f.tenant_id, f.generation_id, g.project_id, g.parent_id, g.root_id, g.iteration, g.created_at,
       count(*),
       count(f.sentiment),
       count(*) FILTER (WHERE f.sentiment = 'POSITIVE'),
       count(*) FILTER (WHERE f.sentiment = 'NEGATIVE'),
       coalesce(sum(f.rating), 0), count(f.rating),
       coalesce((SELECT array_agg(DISTINCT t ORDER BY t) FROM learnloop.feedback x, unnest(x.tags) t
                 WHERE x.tenant_id = f.tenant_id AND x.generation_id = f.generation_id), '{}'),
       array_agg(DISTINCT f.source ORDER BY f.source),
       max(f.created_at)
FROM learnloop.feedback f
JOIN learnloop.generations g ON g.tenant_id = f.tenant_id AND g.id = f.generation_id
GROUP BY f.tenant_id, f.generation_id, g.project_id, g.parent_id, g.root_id, g.iteration, g.created_at;

CREATE OR REPLACE VIEW learnloop.generation_verdicts AS
SELECT tenant_id, generation_id, feedback_count::bigint AS feedback_count,
       positives::bigint AS positives, negatives::bigint AS negatives,
       (rating_sum::double precision / nullif(rating_count, 0)) AS avg_rating,
       verdict, last_feedback_at
FROM learnloop.verdicts;
"""

M004_VERDICTS += young_table_statistics(["verdicts"])

# Every generation gets its analytics row. The columns copied are those analytics filter,
# group and measure by; none of them changes after logging (the OTLP intake fills only
# user_ref/session_ref/retrieved later, which stay in the ledger: a filter on them joins
# it). Measured at 1M generations (30% rated): failure rate by a config key 1.34 s as a
# parallel scan of the ledger hash-joined to the summary, 0.36 s as a scan of this table.
M005_ANALYTICS_ROWS = """
ALTER TABLE learnloop.verdicts
    ADD COLUMN kind text,
    ADD COLUMN model text,
    ADD COLUMN provider text,
    ADD COLUMN tokens_in integer,
    ADD COLUMN tokens_out integer,
    ADD COLUMN latency_ms double precision,
    ADD COLUMN cost numeric(18, 8),
    ADD COLUMN config jsonb,
    ADD COLUMN context jsonb,
    ADD COLUMN output_meta jsonb,
    ALTER COLUMN last_feedback_at DROP NOT NULL;
COMMENT ON TABLE learnloop.verdicts IS
    'One analytics row per generation: its analytic columns (copied at log time) and its feedback summary (kept current by every feedback write). verdict is NULL until a feedback row carries a sentiment.';
COMMENT ON COLUMN learnloop.verdicts.config IS 'The generation''s config (copied at log time; analytics group and filter by it).';

UPDATE learnloop.verdicts v
SET kind = g.kind, model = g.model, provider = g.provider, tokens_in = g.tokens_in, tokens_out = g.tokens_out,
    latency_ms = g.latency_ms, cost = g.cost, config = g.config, context = g.context, output_meta = g.output_meta
FROM learnloop.generations g
WHERE g.tenant_id = v.tenant_id AND g.id = v.generation_id;

INSERT INTO learnloop.verdicts (tenant_id, generation_id, project_id, parent_id, root_id, iteration, generated_at,
                                feedback_count, sentiments, positives, negatives, rating_sum, rating_count,
                                tags, sources, kind, model, provider, tokens_in, tokens_out, latency_ms, cost,
                                config, context, output_meta)
SELECT g.tenant_id, g.id, g.project_id, g.parent_id, g.root_id, g.iteration, g.created_at, 0, 0, 0, 0, 0, 0,
       '{}', '{}', g.kind, g.model, g.provider, g.tokens_in, g.tokens_out, g.latency_ms, g.cost,
       g.config, g.context, g.output_meta
FROM learnloop.generations g
WHERE NOT EXISTS (SELECT 1 FROM learnloop.verdicts v WHERE v.tenant_id = g.tenant_id AND v.generation_id = g.id);

ALTER TABLE learnloop.verdicts
    ALTER COLUMN kind SET NOT NULL,
    ALTER COLUMN config SET NOT NULL,
    ALTER COLUMN context SET NOT NULL,
    ALTER COLUMN output_meta SET NOT NULL;

-- The judged generations alone, for the calls that read only them (tags, corrections): an
-- index-only scan of the rated third instead of a scan of every generation's row.
CREATE INDEX verdicts_judged_idx ON learnloop.verdicts (tenant_id, project_id, generated_at)
    INCLUDE (generation_id, verdict, parent_id, root_id, iteration, tags) WHERE feedback_count > 0;

-- The feedback summary's readers keep their meaning: only generations with feedback.
CREATE OR REPLACE VIEW learnloop.generation_verdicts AS
SELECT tenant_id, generation_id, feedback_count::bigint AS feedback_count,
       positives::bigint AS positives, negatives::bigint AS negatives,
       (rating_sum::double precision / nullif(rating_count, 0)) AS avg_rating,
       verdict, last_feedback_at
FROM learnloop.verdicts
WHERE feedback_count > 0;
"""

# Group estimates the planner can trust. Without them a breakdown by a JSON key takes the
# document column's distinct count (every config differs: ~1M), and a breakdown by day the
# timestamp's: it then sorts every row and aggregates in one process instead of letting
# each parallel worker hash its part (a 2-D breakdown at 1M rows: 1.2 s -> 0.65 s; by day
# 0.62 s -> 0.35 s). n_distinct = 200 (PostgreSQL's own default for an unknown
# expression) stands for "a key of these documents has a few hundred values at most"; no
# query compares whole documents for equality, the only use of a column's own count. The
# time buckets get expression statistics, written exactly as breakdown.py's UTC buckets.
M006_GROUPING_STATISTICS = """
CREATE STATISTICS learnloop.verdicts_hour_stats ON (date_bin('1 hour'::interval, generated_at, '2000-01-01 00:00:00+00'::timestamptz)) FROM learnloop.verdicts;
CREATE STATISTICS learnloop.verdicts_day_stats ON (date_bin('1 day'::interval, generated_at, '2000-01-01 00:00:00+00'::timestamptz)) FROM learnloop.verdicts;
CREATE STATISTICS learnloop.verdicts_week_stats ON (date_bin('7 days'::interval, generated_at, '2000-01-03 00:00:00+00'::timestamptz)) FROM learnloop.verdicts;
CREATE STATISTICS learnloop.verdicts_month_stats ON (date_trunc('month'::text, generated_at, 'UTC'::text)) FROM learnloop.verdicts;
CREATE STATISTICS learnloop.generations_hour_stats ON (date_bin('1 hour'::interval, created_at, '2000-01-01 00:00:00+00'::timestamptz)) FROM learnloop.generations;
CREATE STATISTICS learnloop.generations_day_stats ON (date_bin('1 day'::interval, created_at, '2000-01-01 00:00:00+00'::timestamptz)) FROM learnloop.generations;
CREATE STATISTICS learnloop.generations_week_stats ON (date_bin('7 days'::interval, created_at, '2000-01-03 00:00:00+00'::timestamptz)) FROM learnloop.generations;
CREATE STATISTICS learnloop.generations_month_stats ON (date_trunc('month'::text, created_at, 'UTC'::text)) FROM learnloop.generations;
CREATE STATISTICS learnloop.feedback_day_stats ON (date_bin('1 day'::interval, created_at, '2000-01-01 00:00:00+00'::timestamptz)) FROM learnloop.feedback;
"""
# Citus refuses ALTER COLUMN ... SET (attribute options) on a distributed table, and a
# router query is planned on the worker's shard anyway: the column option is for a single
# server (statistics objects are propagated to the shards by Citus itself).
M006_DOCUMENT_NDISTINCT = """
ALTER TABLE learnloop.verdicts ALTER COLUMN config SET (n_distinct = 200), ALTER COLUMN context SET (n_distinct = 200), ALTER COLUMN output_meta SET (n_distinct = 200);
ALTER TABLE learnloop.generations ALTER COLUMN config SET (n_distinct = 200), ALTER COLUMN context SET (n_distinct = 200), ALTER COLUMN output_meta SET (n_distinct = 200);
"""


def _m006_grouping_statistics(conn: psycopg.Connection) -> None:
    # A database with data gets the estimates now; an empty one when autovacuum first
    # analyses it (an ANALYZE of nothing would only drop the seeded tenant statistics).
    with conn.cursor(row_factory=tuple_row) as cur:  # the migration runner's rows may be dicts
        on_citus, populated = cur.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus'),"
            " (SELECT reltuples > 0 FROM pg_class WHERE oid = 'learnloop.verdicts'::regclass)").fetchone() or (
                False, False)
    text = M006_GROUPING_STATISTICS + ("" if on_citus else M006_DOCUMENT_NDISTINCT)
    if populated:
        text += "ANALYZE learnloop.verdicts;\nANALYZE learnloop.generations;\n"
    one_statement_at_a_time(text)(conn)


# Daily rollups of the analytics rows (learnloop.analytics.rollup). A breakdown that needs
# only counts by a key, a tag, a column or a UTC day reads one row per (day, kind, model,
# provider, key, value) instead of every generation's row; days not built yet, or changed
# since, are read from the ledger as before, so an answer is exact whatever the rollup's
# state. Writers never touch the rollup: each statement that writes an analytics row
# appends the days it changed to ``analytics_dirty`` (ledger/daymarks.py; no unique key, so
# no writer waits on another), and ``refresh`` rebuilds those days in a repeatable-read transaction, deleting only the
# marks its snapshot saw: a write committed meanwhile leaves its mark, and its day stays
# read from the ledger until the next refresh.
M007_ANALYTICS_ROLLUP = """
CREATE TABLE learnloop.analytics_days (
    tenant_id    uuid NOT NULL,
    project_id   uuid NOT NULL,
    day          date NOT NULL,
    kind         text NOT NULL,
    model        text,
    provider     text,
    dim          text NOT NULL,
    key          text NOT NULL,
    value        text,
    num          double precision,
    attempts     bigint NOT NULL,
    rated        bigint NOT NULL,
    negative     bigint NOT NULL,
    positive     bigint NOT NULL,
    rating_sum   bigint NOT NULL,
    rating_count bigint NOT NULL,
    tokens_in    bigint,
    tokens_out   bigint,
    cost         numeric,
    costs        bigint NOT NULL,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (tenant_id, project_id, day, id)
);
COMMENT ON TABLE learnloop.analytics_days IS
    'Daily rollup of verdicts per (UTC day, kind, model, provider) and per JSON key value or tag (dim/key/value); dim = empty for the day''s totals. Built by learnloop.analytics.rollup.refresh.';
CREATE INDEX analytics_days_lookup_idx ON learnloop.analytics_days (tenant_id, project_id, dim, key, day);

CREATE TABLE learnloop.analytics_built (
    tenant_id  uuid NOT NULL,
    project_id uuid NOT NULL,
    day        date NOT NULL,
    built_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, project_id, day)
);
COMMENT ON TABLE learnloop.analytics_built IS 'Days whose rollup rows were built (current unless analytics_dirty marks them).';

-- The identity makes each mark its own row: a writer appends, never waits on another's key.
CREATE TABLE learnloop.analytics_dirty (
    tenant_id  uuid NOT NULL,
    project_id uuid NOT NULL,
    day        date NOT NULL,
    id         bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (tenant_id, project_id, day, id)
);
COMMENT ON TABLE learnloop.analytics_dirty IS 'Days changed since their rollup was built: one row per writing statement and day.';

CREATE TABLE learnloop.analytics_wide_keys (
    tenant_id  uuid NOT NULL,
    dim        text NOT NULL,
    key        text NOT NULL,
    PRIMARY KEY (tenant_id, dim, key)
);
COMMENT ON TABLE learnloop.analytics_wide_keys IS
    'Keys with too many values a day to roll up (ids, seeds, measurements): breakdowns by them read the ledger.';

-- A deleted generation's summary row goes (m004's trigger) and its day is marked changed.
CREATE OR REPLACE FUNCTION learnloop.drop_verdicts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM learnloop.verdicts v USING gone g WHERE v.tenant_id = g.tenant_id AND v.generation_id = g.id;
    INSERT INTO learnloop.analytics_dirty (tenant_id, project_id, day)
    SELECT DISTINCT g.tenant_id, g.project_id, (g.created_at AT TIME ZONE 'UTC')::date FROM gone g;
    RETURN NULL;
END $$;

-- Every day already in the ledger is unbuilt (read from the ledger) until a refresh.
INSERT INTO learnloop.analytics_dirty (tenant_id, project_id, day)
SELECT DISTINCT tenant_id, project_id, (generated_at AT TIME ZONE 'UTC')::date FROM learnloop.verdicts;
"""


def _m007_analytics_rollup(conn: psycopg.Connection) -> None:
    # On a Citus cluster the rollup is not kept: a statement trigger with a transition table
    # cannot run on a shard (see store/distribute.py), and the workers scan in parallel.
    with conn.cursor(row_factory=tuple_row) as cur:
        (on_citus,) = cur.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')").fetchone() or (False,)
    if not on_citus:
        conn.execute(M007_ANALYTICS_ROLLUP)  # type: ignore[call-overload]  # constant DDL text owned by us


# Keys too varied to roll up value by value keep their numbers on a grid of two significant
# digits (analytics/rollup.py): ``grid`` says the rollup holds them so. The rollup is
# rebuilt from the ledger at the next refresh, every day then holding the grid rows.
M008_ROLLUP_GRID = """
ALTER TABLE learnloop.analytics_wide_keys ADD COLUMN grid boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN learnloop.analytics_wide_keys.grid IS
    'The rollup holds this key''s numbers on a grid of two significant digits (value NULL, num = the cell''s floor).';
DELETE FROM learnloop.analytics_days;
DELETE FROM learnloop.analytics_built;
DELETE FROM learnloop.analytics_wide_keys;
INSERT INTO learnloop.analytics_dirty (tenant_id, project_id, day)
SELECT DISTINCT tenant_id, project_id, (generated_at AT TIME ZONE 'UTC')::date FROM learnloop.verdicts;
"""


def _where_rollup_kept(conn: psycopg.Connection, ddl: str) -> None:
    """Run ``ddl`` unless on Citus, where m007 created no rollup (and so no day marks)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        (kept,) = cur.execute("SELECT to_regclass('learnloop.analytics_dirty') IS NOT NULL").fetchone() or (False,)
    if kept:
        conn.execute(ddl)  # type: ignore[call-overload]  # constant DDL text owned by us


def _m008_rollup_grid(conn: psycopg.Connection) -> None:
    _where_rollup_kept(conn, M008_ROLLUP_GRID)


# Feedback writes append the generation here; the next reader of the summary recomputes it
# (ledger/verdicts.py). The identity makes each mark its own row, so an append never waits
# on another writer, and there is no foreign key (a tenant FK check alone cost ~75 us a
# write). A queue: vacuumed after every thousand settled marks, not a fifth of the table,
# or the dead index entries of a settled bulk import slow every later lookup (0.8 ms after
# 35,000). A deleted tenant's marks are never settled and never read. Not on Citus, where the
# feedback statement keeps the summary itself (no rollup there, m007).
M009_VERDICTS_PENDING = """
CREATE TABLE learnloop.verdicts_pending (
    tenant_id     uuid NOT NULL,
    id            bigint GENERATED ALWAYS AS IDENTITY,
    generation_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
COMMENT ON TABLE learnloop.verdicts_pending IS
    'Generations with feedback not yet in their verdicts summary: appended by feedback writes, consumed by learnloop.ledger.verdicts.settle before any summary read.';
"""


def _m009_verdicts_pending(conn: psycopg.Connection) -> None:
    _where_rollup_kept(conn, M009_VERDICTS_PENDING)


# The rollup answers "which tags" and "did corrections fix it" over all time (analytics/
# lineage_rollup.py). Per group it now also counts the generations with any feedback
# (``reviewed``), the feedback rows (``feedback_rows``; on a tag's row, those carrying the
# tag), and of the NEGATIVE generations those regenerated (a child exists) and fixed (a
# child judged POSITIVE); ``dim = 'tree'`` rows count the lineage trees with a judged node
# rooted in the group, by the first iteration judged POSITIVE (``num``; -1 for none). A
# tree's answer lives on its root's day and a regeneration's on its parent's, so a write
# marks those days too: ``log`` and ``bulk_log`` of a child its parent's, a settle its
# parents' and roots', and the delete trigger (below) the deleted rows' parents and roots.
# The judged rows by tree (``verdicts_tree_idx``) give a tree's nodes and a generation's
# judged children with one probe. Every built day is rebuilt at the next refresh.
M010_ROLLUP_LINEAGE = """
ALTER TABLE learnloop.analytics_days
    ADD COLUMN reviewed bigint NOT NULL DEFAULT 0,
    ADD COLUMN feedback_rows bigint NOT NULL DEFAULT 0,
    ADD COLUMN regenerated bigint NOT NULL DEFAULT 0,
    ADD COLUMN fixed bigint NOT NULL DEFAULT 0;
CREATE INDEX verdicts_tree_idx ON learnloop.verdicts (tenant_id, root_id)
    INCLUDE (parent_id, iteration, verdict) WHERE feedback_count > 0;
CREATE OR REPLACE FUNCTION learnloop.drop_verdicts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM learnloop.verdicts v USING gone g WHERE v.tenant_id = g.tenant_id AND v.generation_id = g.id;
    INSERT INTO learnloop.analytics_dirty (tenant_id, project_id, day)
    SELECT DISTINCT g.tenant_id, g.project_id, (g.created_at AT TIME ZONE 'UTC')::date FROM gone g;
    INSERT INTO learnloop.analytics_dirty (tenant_id, project_id, day)
    SELECT DISTINCT p.tenant_id, p.project_id, (p.created_at AT TIME ZONE 'UTC')::date
    FROM gone g JOIN learnloop.generations p ON p.tenant_id = g.tenant_id AND p.id IN (g.parent_id, g.root_id)
    WHERE g.parent_id IS NOT NULL;
    RETURN NULL;
END $$;
DELETE FROM learnloop.analytics_days;
DELETE FROM learnloop.analytics_built;
INSERT INTO learnloop.analytics_dirty (tenant_id, project_id, day)
SELECT DISTINCT tenant_id, project_id, (generated_at AT TIME ZONE 'UTC')::date FROM learnloop.verdicts;
"""


def _m010_rollup_lineage(conn: psycopg.Connection) -> None:
    _where_rollup_kept(conn, M010_ROLLUP_LINEAGE)


# The rollup's readers group its rows by (dim, key, value, num, kind). Without statistics
# on those columns together the planner multiplies their distinct counts: at 10M
# generations (900 days, 2M rollup rows) it expected 200,728 groups where there are 733,
# so it sorted 1.45M rows, spilling to disk, instead of hashing them (what drives failure:
# the all-time read 1.31 s; with these statistics 0.55 s, 988 groups expected).
M011_ROLLUP_GROUP_STATISTICS = """
CREATE STATISTICS IF NOT EXISTS learnloop.analytics_days_groups (ndistinct) ON dim, key, value, num, kind FROM learnloop.analytics_days;
ANALYZE learnloop.analytics_days;
"""


def _m011_rollup_group_statistics(conn: psycopg.Connection) -> None:
    _where_rollup_kept(conn, M011_ROLLUP_GROUP_STATISTICS)


MIGRATIONS = MigrationSet(
    "ledger",
    [
        Migration("m001_generations", M001_GENERATIONS),
        Migration("m002_feedback", M002_FEEDBACK),
        Migration("m003_young_table_statistics", M003_YOUNG_TABLE_STATISTICS),
        Migration("m004_verdicts", M004_VERDICTS),
        Migration("m005_analytics_rows", one_statement_at_a_time(M005_ANALYTICS_ROWS)),
        Migration("m006_grouping_statistics", _m006_grouping_statistics),
        Migration("m007_analytics_rollup", _m007_analytics_rollup),
        Migration("m008_rollup_grid", _m008_rollup_grid),
        Migration("m009_verdicts_pending", _m009_verdicts_pending),
        Migration("m010_rollup_lineage", _m010_rollup_lineage),
        Migration("m011_rollup_group_statistics", _m011_rollup_group_statistics),
    ],
)
