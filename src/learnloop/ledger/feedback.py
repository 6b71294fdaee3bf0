"""Feedback on generations and the admin review queue (seed 001 #7).

Feedback is append-only: several rows per generation are normal (a vote, then a rating, then
a correction). Review state (processed, notes, improved) is the only thing that changes.

Every write also appends its generation to ``learnloop.verdicts_pending`` (ledger m009), in
the same statement (``add``) or transaction (``bulk_add``); the next reader of the verdict
summary recomputes it (ledger/verdicts.py), so no read is behind the feedback it
summarises. On Citus the write moves the generation's row in ``learnloop.verdicts`` (ledger
m004; since m005 the row exists from the moment the generation is logged) by the new rows'
deltas itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
import psycopg
from psycopg import sql

from ..errors import Conflict, InvalidInput, NotFound
from ..events.outbox import emit_many, notify_written
from ..store.database import Conn
from ..store.ids import uuid7
from ..store.memory import gc_paused
from ..store.tenancy import Scope
from . import verdicts
from .generations import _page, as_uuid
from .models import Feedback, FeedbackIn, ReviewItem, parse

# The generation is read for its existence and project only; its summary row exists since
# it was logged (ledger m005: log, bulk_log and the migration's backfill each write it), so
# the summary moves by a plain UPDATE. The upsert this replaces read the generation's whole
# analytics row to build an insert that always conflicted.
_ADD_SQL = """
WITH gen AS (
    SELECT g.id, g.project_id FROM learnloop.generations g
    WHERE g.tenant_id = %(tenant_id)s AND g.id = %(generation_id)s
),
ins AS (
    INSERT INTO learnloop.feedback (
        tenant_id, id, generation_id, project_id, sentiment, rating, thumbs, tags, comment,
        instruction, corrected_output, source, author_ref, created_at)
    SELECT %(tenant_id)s, %(id)s, g.id, g.project_id, %(sentiment)s, %(rating)s, %(thumbs)s,
        %(tags)s, %(comment)s, %(instruction)s, %(corrected_output)s, %(source)s,
        %(author_ref)s, coalesce(%(created_at)s, now())
    FROM gen g
    RETURNING *
),
verdict AS (
    UPDATE learnloop.verdicts AS v SET
{VERDICT_DELTA}
    FROM (SELECT i.generation_id, 1 AS feedback_count, (i.sentiment IS NOT NULL)::int AS sentiments,
                 (i.sentiment IS NOT DISTINCT FROM 'POSITIVE')::int AS positives,
                 (i.sentiment IS NOT DISTINCT FROM 'NEGATIVE')::int AS negatives,
                 coalesce(i.rating, 0) AS rating_sum, (i.rating IS NOT NULL)::int AS rating_count,
                 %(tag_set)s::text[] AS tags, ARRAY[i.source] AS sources, i.created_at AS last_feedback_at
          FROM ins i) d
    WHERE v.tenant_id = %(tenant_id)s AND v.generation_id = d.generation_id
    RETURNING v.project_id, v.generated_at
),
ev AS (
    INSERT INTO learnloop.events (tenant_id, project_id, entity_type, entity_id, event_type, payload, actor)
    SELECT %(tenant_id)s, project_id, 'feedback', id::text, 'feedback.added',
        jsonb_build_object('generation_id', generation_id, 'sentiment', sentiment,
                           'rating', rating, 'thumbs', thumbs, 'tags', to_jsonb(tags),
                           'source', source),
        author_ref
    FROM ins
)
SELECT * FROM ins
"""
# How a summary row absorbs new rows' deltas ``d`` (shared by add and bulk_add). Sets are
# rebuilt only when the new tags or source are not already in them.
_VERDICT_DELTA = """
        feedback_count = v.feedback_count + d.feedback_count,
        sentiments = v.sentiments + d.sentiments,
        positives = v.positives + d.positives,
        negatives = v.negatives + d.negatives,
        rating_sum = v.rating_sum + d.rating_sum,
        rating_count = v.rating_count + d.rating_count,
        tags = CASE WHEN d.tags <@ v.tags THEN v.tags
                    ELSE ARRAY(SELECT DISTINCT t FROM unnest(v.tags || d.tags) t ORDER BY t) END,
        sources = CASE WHEN d.sources <@ v.sources THEN v.sources
                       ELSE ARRAY(SELECT DISTINCT s FROM unnest(v.sources || d.sources) s ORDER BY s) END,
        last_feedback_at = greatest(v.last_feedback_at, d.last_feedback_at)
"""
_ADD_SQL = _ADD_SQL.replace("{VERDICT_DELTA}", _VERDICT_DELTA)
# Deferred (every server but Citus): the generation is appended to the pending summaries
# (ledger/verdicts.py), which mark the rollup's day when they are settled. On Citus: the
# summary moves here, and there is no rollup to mark (ledger m007).
_ADD = {True: _ADD_SQL[:_ADD_SQL.index("verdict AS (")] + verdicts.PEND_CTE + ",\n" + _ADD_SQL[_ADD_SQL.index("ev AS ("):],
        False: _ADD_SQL}

# Bulk on Citus: the deltas are summed per generation here and sent as one JSON document (orjson,
# in C), so the statement joins nothing. Fifteen parallel arrays cost more to dump in
# psycopg (0.3-0.5 s per 2,000 generations, element by element) than the server spent on
# the upsert. Every generation has its row since it was logged (ledger m005): an UPDATE.
_BULK_VERDICT_SQL = """
WITH u AS (
UPDATE learnloop.verdicts AS v SET
""" + _VERDICT_DELTA + """
FROM jsonb_to_recordset(%(deltas)s::jsonb) AS d(generation_id uuid, feedback_count int, sentiments int,
    positives int, negatives int, rating_sum int, rating_count int, tags text[], sources text[],
    last_feedback_at timestamptz)
WHERE v.tenant_id = %(tenant_id)s AND v.generation_id = d.generation_id
RETURNING v.project_id, v.generated_at
)
SELECT count(*) AS n FROM u
"""


def _params(scope: Scope, f: FeedbackIn, fid: UUID) -> dict[str, Any]:
    return {
        "tenant_id": scope.tenant_id, "id": fid, "generation_id": f.generation_id,
        "sentiment": f.sentiment, "rating": f.rating, "thumbs": f.thumbs, "tags": f.tags,
        "comment": f.comment, "instruction": f.instruction,
        "corrected_output": f.corrected_output, "source": f.source,
        "author_ref": f.author_ref, "created_at": f.created_at,
        "tag_set": sorted(set(f.tags)),
    }


def add(conn: Conn, scope: Scope, data: FeedbackIn | dict[str, Any]) -> Feedback:
    f = parse(FeedbackIn, data)
    try:
        row = conn.execute(_ADD[verdicts.deferred(conn)], _params(scope, f, f.id or uuid7())).fetchone()
    except psycopg.errors.UniqueViolation:
        raise Conflict(f"feedback {f.id} already exists") from None
    if row is None:
        raise NotFound(f"generation {f.generation_id} does not exist in this tenant")
    notify_written(conn, (scope.tenant_id,))
    return Feedback.model_validate(row)


def for_generation(conn: Conn, scope: Scope, generation_id: UUID | str) -> list[Feedback]:
    gid = as_uuid(generation_id, "generation id")
    rows = conn.execute(
        "SELECT * FROM learnloop.feedback WHERE tenant_id = %s AND generation_id = %s ORDER BY created_at, id",
        (scope.tenant_id, gid),
    ).fetchall()
    return [Feedback.model_validate(r) for r in rows]


COPY_COLUMNS = (
    "tenant_id", "id", "generation_id", "project_id", "sentiment", "rating", "thumbs", "tags",
    "comment", "instruction", "corrected_output", "source", "author_ref", "created_at",
)
COPY_TYPES = [
    "uuid", "uuid", "uuid", "uuid", "text", "int2", "int2", "text[]", "text", "text", "text",
    "text", "text", "timestamptz",
]


def bulk_add(conn: Conn, scope: Scope, rows: Iterable[FeedbackIn | dict[str, Any]]) -> int:
    """Many feedback rows in one transaction (binary COPY); every generation must exist."""
    with gc_paused():
        return _bulk_add(conn, scope, [parse(FeedbackIn, r) for r in rows])


def _bulk_add(conn: Conn, scope: Scope, items: list[FeedbackIn]) -> int:
    if not items:
        return 0
    with conn.transaction():
        wanted = list({f.generation_id for f in items})
        gens = {
            r["id"]: r
            for r in conn.execute(
                "SELECT id, project_id FROM learnloop.generations"
                " WHERE tenant_id = %s AND id = ANY(%s)",
                (scope.tenant_id, wanted),
            ).fetchall()
        }
        found = {gid: r["project_id"] for gid, r in gens.items()}
        missing = [g for g in wanted if g not in found]
        if missing:
            raise NotFound(f"generation {missing[0]} does not exist in this tenant ({len(missing)} unknown)")
        now_row = conn.execute("SELECT now() AS now").fetchone()
        assert now_row is not None  # a SELECT without FROM returns exactly one row
        now = now_row["now"]
        events = []
        with conn.cursor() as cur, cur.copy(
            "COPY learnloop.feedback (" + ", ".join(COPY_COLUMNS) + ") FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(COPY_TYPES)
            for f in items:
                fid = f.id or uuid7()
                pid = found[f.generation_id]
                copy.write_row((
                    scope.tenant_id, fid, f.generation_id, pid, f.sentiment, f.rating, f.thumbs,
                    f.tags, f.comment, f.instruction, f.corrected_output, f.source, f.author_ref,
                    f.created_at or now,
                ))
                events.append((
                    scope.tenant_id, pid, "feedback", fid, "feedback.added",
                    {"generation_id": str(f.generation_id), "sentiment": f.sentiment, "rating": f.rating,
                     "thumbs": f.thumbs, "tags": f.tags, "source": f.source, "bulk": True},
                    f.author_ref,
                ))
        emit_many(conn, events)
        _bulk_verdicts(conn, scope, items, now)
    if len(items) >= 10_000 and not conn.info.transaction_status:
        conn.execute("ANALYZE learnloop.feedback")
    return len(items)


def _bulk_verdicts(conn: Conn, scope: Scope, items: list[FeedbackIn], now: datetime) -> None:
    if verdicts.deferred(conn):  # settled by the next reader (ledger/verdicts.py)
        with conn.cursor() as cur, cur.copy(
                "COPY learnloop.verdicts_pending (tenant_id, generation_id) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["uuid", "uuid"])
            for gid in dict.fromkeys(f.generation_id for f in items):
                copy.write_row((scope.tenant_id, gid))
        return
    acc: dict[UUID, list[Any]] = {}
    for f in items:
        a = acc.get(f.generation_id)
        if a is None:
            a = acc[f.generation_id] = [0, 0, 0, 0, 0, 0, set(), set(), None]
        a[0] += 1
        if f.sentiment is not None:
            a[1] += 1
            a[2] += f.sentiment == "POSITIVE"
            a[3] += f.sentiment == "NEGATIVE"
        if f.rating is not None:
            a[4] += f.rating
            a[5] += 1
        a[6].update(f.tags)
        a[7].add(f.source)
        when = f.created_at or now
        if a[8] is None or when > a[8]:
            a[8] = when
    deltas = [{"generation_id": gid, "feedback_count": a[0], "sentiments": a[1], "positives": a[2], "negatives": a[3],
               "rating_sum": a[4], "rating_count": a[5], "tags": sorted(a[6]), "sources": sorted(a[7]),
               "last_feedback_at": a[8]} for gid, a in acc.items()]
    row = conn.execute(_BULK_VERDICT_SQL,
                       {"deltas": orjson.dumps(deltas).decode(), "tenant_id": scope.tenant_id}).fetchone()
    updated = int(row["n"]) if row else 0
    if updated != len(deltas):  # every logged generation has its row (ledger m005)
        raise RuntimeError(f"{len(deltas) - updated} generations have no analytics row; run learnloop migrate")


# -- review queue --------------------------------------------------------------------------

def pending_review(
    conn: Conn,
    scope: Scope,
    *,
    sentiment: str | None = "NEGATIVE",
    include_processed: bool = False,
    tag: str | None = None,
    source: str | None = None,
    older_than_days: float | None = None,
    all_projects: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> list[ReviewItem]:
    """Feedback waiting for an admin (default: negative and unprocessed), oldest first,
    with the generation's prompt, output and business links so the reviewer has the whole
    story. ``tag``/``source`` narrow it; ``older_than_days`` keeps only what has waited that long."""
    limit, offset = _page(limit, offset)
    where = [sql.SQL("f.tenant_id = %s")]
    params: list[Any] = [scope.tenant_id]
    if not all_projects:
        where.append(sql.SQL("f.project_id = %s"))
        params.append(scope.project_id)
    if sentiment is not None:
        sentiment = parse(FeedbackIn, {"generation_id": UUID(int=0), "sentiment": sentiment}).sentiment
        where.append(sql.SQL("f.sentiment = %s"))
        params.append(sentiment)
    if not include_processed:
        where.append(sql.SQL("NOT f.processed"))
    if tag is not None:
        where.append(sql.SQL("f.tags @> ARRAY[%s]::text[]"))
        params.append(tag)
    if source is not None:
        source = parse(FeedbackIn, {"generation_id": UUID(int=0), "source": source}).source
        where.append(sql.SQL("f.source = %s"))
        params.append(source)
    if older_than_days is not None:
        if not isinstance(older_than_days, int | float) or older_than_days < 0:
            raise InvalidInput("older_than_days must be a number >= 0", field="older_than_days")
        where.append(sql.SQL("f.created_at < now() - make_interval(secs => %s)"))
        params.append(float(older_than_days) * 86400)
    query = sql.SQL(
        "SELECT f.*, g.kind, g.prompt, g.output_text, g.output_url, g.model, g.config, g.links, g.root_id,"
        " g.iteration"
        " FROM learnloop.feedback f JOIN learnloop.generations g"
        "   ON g.tenant_id = f.tenant_id AND g.id = f.generation_id"
        " WHERE {} ORDER BY f.created_at, f.id LIMIT %s OFFSET %s"
    ).format(sql.SQL(" AND ").join(where))
    return [ReviewItem.model_validate(r) for r in conn.execute(query, [*params, limit, offset]).fetchall()]


def _check_review(notes: Any, improved: Any, by: Any) -> None:
    if improved is not None and not isinstance(improved, bool):
        raise InvalidInput("improved must be true or false", field="improved")
    for name, val in (("notes", notes), ("by", by)):
        if val is not None:
            if not isinstance(val, str):
                raise InvalidInput(f"{name} must be a string", field=name)
            if "\x00" in val:
                raise InvalidInput(f"{name} contains a NUL character (U+0000), which cannot be stored", field=name)


def mark_processed(
    conn: Conn,
    scope: Scope,
    feedback_id: UUID | str,
    *,
    notes: str | None = None,
    improved: bool | None = None,
    by: str | None = None,
) -> Feedback:
    fid = as_uuid(feedback_id, "feedback id")
    _check_review(notes, improved, by)
    with conn.transaction():
        rows = _mark_reviewed(conn, scope, [fid], notes, improved, by)
        if not rows:
            raise NotFound(f"feedback {fid} does not exist in this tenant")
        _emit_reviewed(conn, scope, rows, improved, by)
    return Feedback.model_validate(rows[0])


def _mark_reviewed(conn: Conn, scope: Scope, ids: list[UUID], notes: str | None, improved: bool | None,
                   by: str | None) -> list[dict[str, Any]]:
    return conn.execute(
        "UPDATE learnloop.feedback SET processed = true, processed_at = now(), processed_by = %s,"
        " review_notes = %s, improved = %s WHERE tenant_id = %s AND id = ANY(%s) RETURNING *",
        (by, notes, improved, scope.tenant_id, ids),
    ).fetchall()


def _emit_reviewed(conn: Conn, scope: Scope, rows: list[dict[str, Any]], improved: bool | None,
                   by: str | None) -> None:
    emit_many(conn, [(scope.tenant_id, r["project_id"], "feedback", r["id"], "feedback.reviewed",
                      {"generation_id": str(r["generation_id"]), "improved": improved}, by) for r in rows])


MAX_REVIEW_BATCH = 1000


def mark_processed_many(
    conn: Conn,
    scope: Scope,
    feedback_ids: Iterable[UUID | str],
    *,
    notes: str | None = None,
    improved: bool | None = None,
    by: str | None = None,
) -> list[Feedback]:
    """Mark several feedback rows reviewed with the same notes/improved, all or nothing.

    An admin selects items in the queue and closes them together: either every one is
    marked (one ``feedback.reviewed`` event each) or, when some id is not this tenant's,
    none is and ``NotFound`` names the missing ones. Rows come back in the order asked.
    """
    ids = list(dict.fromkeys(as_uuid(f, "feedback id") for f in feedback_ids))
    if not ids:
        raise InvalidInput("name at least one feedback id", field="ids")
    if len(ids) > MAX_REVIEW_BATCH:
        raise InvalidInput(f"at most {MAX_REVIEW_BATCH} feedback ids per call", field="ids")
    _check_review(notes, improved, by)
    with conn.transaction():
        rows = _mark_reviewed(conn, scope, ids, notes, improved, by)
        if len(rows) != len(ids):
            found = {r["id"] for r in rows}
            missing = [str(i) for i in ids if i not in found]
            # Raising inside the transaction rolls the updates back: nothing half-reviewed.
            raise NotFound(f"{len(missing)} of {len(ids)} feedback ids do not exist in this tenant "
                           f"(first: {missing[0]}); nothing was marked")
        _emit_reviewed(conn, scope, rows, improved, by)
    order = {fid: i for i, fid in enumerate(ids)}
    return [Feedback.model_validate(r) for r in sorted(rows, key=lambda r: order[r["id"]])]
