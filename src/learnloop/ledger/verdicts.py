"""Per-generation verdict summaries, brought current by the next read (ledger m009).

A feedback write appends its generation to ``learnloop.verdicts_pending`` instead of
rewriting the generation's analytics row in ``learnloop.verdicts``. That row carries the
generation's config, context and output metadata, so rewriting it on every vote (a new
tuple and two index entries) made single ``feedback`` calls x1.32 and ``bulk_feedback`` x1.38
the cost of the same writes without a summary (bench_logging, stop 24); with the append
they cost x1.08 and x1.05 (the target is x1.10).

Every reader of the summary (analytics, lineage, retrieval metadata, training data) calls
``settle`` first. It recomputes the pending generations' summaries from their feedback rows
in one statement (so from one snapshot) and marks their days changed for the rollup, so a
read sees every feedback committed before it, as before. A correction's verdict also
changes what the rollup says of its parent (fixed) and its tree (first positive iteration),
so the days of its parent and root are marked too (ledger m010). A summary is recomputed, never
moved by a delta, so settling twice is harmless. Settles of one tenant take turns (a
transaction-scoped advisory lock taken before the statement's snapshot): a later settle
never writes an older summary over a newer one.

On a Citus cluster (no rollup, ledger m007) the feedback statement still moves the summary
itself; ``settle`` does nothing there.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import tuple_row

from ..store.tenancy import lock_key
from . import daymarks

LOCK_CLASS = 7009  # advisory lock (class, tenant hash): one settle per tenant at a time

# Nothing to do in a read-only transaction (a hot standby, ``SET TRANSACTION READ ONLY``,
# ``default_transaction_read_only``): the read sees the summaries as the last settle on a
# writable connection left them, instead of failing on the settle's DELETE.
_ANY_PENDING = ("SELECT NOT current_setting('transaction_read_only')::bool"
                " AND EXISTS (SELECT 1 FROM learnloop.verdicts_pending WHERE tenant_id = %s)")

# The summary of m004, recomputed for the generations whose marks this statement deletes.
# Per generation (LATERAL), through the feedback index: the planner cannot know how few
# rows the DELETE returns, and with a join it scanned the tenant's whole feedback table
# for one new vote (35 ms at 100k generations instead of well under one).
_SETTLE = """
WITH done AS (
    DELETE FROM learnloop.verdicts_pending WHERE tenant_id = %(tenant_id)s RETURNING generation_id
), gens AS (
    SELECT DISTINCT generation_id FROM done
), s AS (
    SELECT gens.generation_id, a.*, coalesce(t.tags, '{}') AS tags
    FROM gens
    CROSS JOIN LATERAL (
        SELECT count(*) AS feedback_count, count(f.sentiment) AS sentiments,
               count(*) FILTER (WHERE f.sentiment = 'POSITIVE') AS positives,
               count(*) FILTER (WHERE f.sentiment = 'NEGATIVE') AS negatives,
               coalesce(sum(f.rating), 0) AS rating_sum, count(f.rating) AS rating_count,
               array_agg(DISTINCT f.source ORDER BY f.source) AS sources, max(f.created_at) AS last_feedback_at
        FROM learnloop.feedback f
        WHERE f.tenant_id = %(tenant_id)s AND f.generation_id = gens.generation_id) a
    CROSS JOIN LATERAL (
        SELECT array_agg(DISTINCT x ORDER BY x) AS tags
        FROM learnloop.feedback f, unnest(f.tags) AS x
        WHERE f.tenant_id = %(tenant_id)s AND f.generation_id = gens.generation_id) t
    WHERE a.feedback_count > 0
), u AS (
    UPDATE learnloop.verdicts AS v SET
        feedback_count = s.feedback_count, sentiments = s.sentiments, positives = s.positives,
        negatives = s.negatives, rating_sum = s.rating_sum, rating_count = s.rating_count,
        tags = s.tags, sources = s.sources, last_feedback_at = s.last_feedback_at
    FROM s
    WHERE v.tenant_id = %(tenant_id)s AND v.generation_id = s.generation_id
    RETURNING v.project_id, v.generated_at, v.parent_id, v.root_id
), {MARK}, lineage AS (
    INSERT INTO learnloop.analytics_dirty (tenant_id, project_id, day)
    SELECT DISTINCT %(tenant_id)s, p.project_id, (p.generated_at AT TIME ZONE 'UTC')::date
    FROM learnloop.verdicts p
    WHERE p.tenant_id = %(tenant_id)s AND p.generation_id IN (
        SELECT parent_id FROM u WHERE parent_id IS NOT NULL UNION SELECT root_id FROM u WHERE parent_id IS NOT NULL)
)
SELECT count(*) FROM u
""".replace("{MARK}", daymarks.mark_cte("u", "generated_at"))

PEND_CTE = ("pend AS (INSERT INTO learnloop.verdicts_pending (tenant_id, generation_id)"
            " SELECT %(tenant_id)s, generation_id FROM ins)")


def deferred(conn: psycopg.Connection[Any]) -> bool:
    """Whether feedback writes leave the summary to ``settle`` (everywhere but Citus)."""
    return daymarks.kept(conn)


def settle(conn: psycopg.Connection[Any], tenant_id: UUID) -> int:
    """Bring the tenant's verdict summaries up to its committed feedback; returns how many
    generations were recomputed. Costs one indexed lookup when nothing is pending. In a
    read-only transaction it does nothing (the summaries stay as last settled)."""
    if not deferred(conn):
        return 0
    with conn.cursor(row_factory=tuple_row) as cur:
        (pending,) = cur.execute(_ANY_PENDING, (tenant_id,)).fetchone() or (False,)
        if not pending:
            return 0
        with conn.transaction():
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, lock_key(tenant_id)))
            (n,) = cur.execute(_SETTLE, {"tenant_id": tenant_id}).fetchone() or (0,)
    return int(n)
