"""Logging generations: one at a time (one round trip) or in bulk (binary COPY).

Single log: a single statement inserts the generation, its analytics row
(``learnloop.verdicts``, ledger m005) and its outbox event, deriving
``root_id``/``iteration`` from the parent inside the same statement; if the parent is
unknown (or in another tenant) nothing is inserted and ``NotFound`` is raised.

Bulk log: see :mod:`learnloop.ledger.bulk` (re-exported here as ``bulk_log``).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from ..errors import Conflict, InvalidInput, NotFound
from ..events.outbox import notify_written
from ..store.database import Conn
from ..store.ids import uuid7
from ..store.tenancy import Scope, ensure_project
from ..store.unique import violated_unique
from . import daymarks, verdicts
from .bulk import bulk_log
from .models import Generation, GenerationIn, parse

__all__ = ["as_uuid", "bulk_log", "find", "get", "log"]

_SELECT = (
    "SELECT g.*, p.name AS project FROM learnloop.generations g"
    " JOIN learnloop.projects p ON p.tenant_id = g.tenant_id AND p.id = g.project_id"
)

# Two statements rather than one with an optional parent: a root needs no lookup at all; a
# child joins its parent by primary key, and no parent row means nothing is inserted
# (NotFound). Both are prepared: planning the child's statement afresh cost ~0.4 ms a call.
# (Its cached plan once degraded as the table grew: see ledger migration m003.)
_LOG_TEMPLATE = """
WITH ins AS (
    INSERT INTO learnloop.generations (
        tenant_id, id, project_id, external_id, kind, user_ref, session_ref, parent_id,
        root_id, iteration, context, config, prompt, negative_prompt, messages, output_text,
        output_url, output_meta, model, provider, tokens_in, tokens_out, latency_ms, cost,
        retrieved, links, created_at)
    SELECT %(tenant_id)s, %(id)s, %(project_id)s, %(external_id)s, %(kind)s, %(user_ref)s,
        %(session_ref)s, {parent_id}, {root_id}, {iteration},
        %(context)s, %(config)s, %(prompt)s, %(negative_prompt)s, %(messages)s, %(output_text)s,
        %(output_url)s, %(output_meta)s, %(model)s, %(provider)s, %(tokens_in)s, %(tokens_out)s,
        %(latency_ms)s, %(cost)s, %(retrieved)s, %(links)s, coalesce(%(created_at)s, now())
    {source}
    RETURNING tenant_id, project_id, id, kind, model, parent_id, root_id, iteration, user_ref, links, created_at
),
facts AS (
    INSERT INTO learnloop.verdicts (
        tenant_id, generation_id, project_id, parent_id, root_id, iteration, generated_at,
        feedback_count, sentiments, positives, negatives, rating_sum, rating_count, tags, sources,
        kind, model, provider, tokens_in, tokens_out, latency_ms, cost, config, context, output_meta)
    SELECT %(tenant_id)s, id, project_id, parent_id, root_id, iteration, created_at, 0, 0, 0, 0, 0, 0,
        '{{}}', '{{}}', kind, model, %(provider)s, %(tokens_in)s, %(tokens_out)s, %(latency_ms)s, %(cost)s,
        %(config)s, %(context)s, %(output_meta)s
    FROM ins
),
{mark}{pmark}ev AS (
    INSERT INTO learnloop.events (tenant_id, project_id, entity_type, entity_id, event_type, payload, actor)
    SELECT %(tenant_id)s, project_id, 'generation', id::text, 'generation.logged',
        jsonb_build_object('kind', kind, 'model', model, 'parent_id', parent_id,
                           'root_id', root_id, 'iteration', iteration, 'user_ref', user_ref,
                           'links', links),
        %(actor)s
    FROM ins
)
SELECT root_id, iteration, created_at FROM ins
"""
_ROOT = {"parent_id": "NULL::uuid", "root_id": "%(id)s", "iteration": "1", "source": ""}
_CHILD = {"parent_id": "p.id", "root_id": "p.root_id", "iteration": "p.iteration + 1",
          "source": "FROM learnloop.generations p WHERE p.tenant_id = %(tenant_id)s AND p.id = %(parent_id)s"}
_MARK = daymarks.mark_cte("ins", "created_at") + ",\n"  # no braces: safe in str.format
# A child also changes its parent's day in the rollup (the parent is now regenerated:
# ledger m010). One more lookup of the parent by primary key.
_PARENT_MARK = ("pmark AS (INSERT INTO learnloop.analytics_dirty (tenant_id, project_id, day)"
                " SELECT p.tenant_id, p.project_id, (p.created_at AT TIME ZONE 'UTC')::date"
                " FROM learnloop.generations p, ins WHERE p.tenant_id = %(tenant_id)s AND p.id = ins.parent_id),\n")
# (root, child) statements, with and without the analytics rollup's day marks (ledger m007).
_LOG_SQL = {
    True: (_LOG_TEMPLATE.format(mark=_MARK, pmark="", **_ROOT),
           _LOG_TEMPLATE.format(mark=_MARK, pmark=_PARENT_MARK, **_CHILD)),
    False: (_LOG_TEMPLATE.format(mark="", pmark="", **_ROOT), _LOG_TEMPLATE.format(mark="", pmark="", **_CHILD)),
}


def _params(scope: Scope, project_id: UUID, g: GenerationIn, gid: UUID) -> dict[str, Any]:
    return {
        "tenant_id": scope.tenant_id,
        "id": gid,
        "project_id": project_id,
        "external_id": g.external_id,
        "kind": g.kind,
        "user_ref": g.user_ref,
        "session_ref": g.session_ref,
        "parent_id": g.parent_id,
        "context": Jsonb(g.context),
        "config": Jsonb(g.config),
        "prompt": g.prompt,
        "negative_prompt": g.negative_prompt,
        "messages": Jsonb(g.messages) if g.messages is not None else None,
        "output_text": g.output_text,
        "output_url": g.output_url,
        "output_meta": Jsonb(g.output_meta),
        "model": g.model,
        "provider": g.provider,
        "tokens_in": g.tokens_in,
        "tokens_out": g.tokens_out,
        "latency_ms": g.latency_ms,
        "cost": g.cost,
        "retrieved": Jsonb(g.retrieved),
        "links": Jsonb(g.links),
        "created_at": g.created_at,
        "actor": g.user_ref,
    }


def log(conn: Conn, scope: Scope, data: GenerationIn | dict[str, Any], *, project: str | None = None) -> Generation:
    g = parse(GenerationIn, data)
    project_id = scope.project_id if project in (None, scope.project) else ensure_project(conn, scope.tenant_id, project)  # type: ignore[arg-type]
    gid = g.id or uuid7()
    try:
        params = _params(scope, project_id, g, gid)
        root_sql, child_sql = _LOG_SQL[daymarks.kept(conn)]
        row = conn.execute(root_sql if g.parent_id is None else child_sql, params).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise _duplicate(exc, g) from None
    if row is None:
        raise NotFound(f"parent generation {g.parent_id} does not exist in this tenant")
    notify_written(conn, (scope.tenant_id,))
    # Only what the server derived comes back: the rest is the validated input itself, and
    # shipping 27 columns back and decoding them cost more than the insert (~0.5 ms a call).
    fields = {**g.__dict__, "id": gid, "project": project or scope.project, "project_id": project_id, **row}
    return Generation.model_construct(**fields)


def _duplicate(exc: psycopg.errors.UniqueViolation, g: GenerationIn) -> Conflict:
    if violated_unique(exc) == "generations_external_idx":
        return Conflict(f"a generation with external_id {g.external_id!r} already exists in this project")
    return Conflict(f"a generation with id {g.id} already exists")


def get(conn: Conn, scope: Scope, generation_id: UUID | str) -> Generation:
    gid = as_uuid(generation_id, "generation id")
    row = conn.execute(_SELECT + " WHERE g.tenant_id = %s AND g.id = %s", (scope.tenant_id, gid)).fetchone()
    if row is None:
        raise NotFound(f"generation {gid} does not exist in this tenant")
    return Generation.model_validate(row)


def find(
    conn: Conn,
    scope: Scope,
    *,
    links: dict[str, Any] | None = None,
    kind: str | None = None,
    user_ref: str | None = None,
    session_ref: str | None = None,
    model: str | None = None,
    all_projects: bool = False,
    where: Any = None,
    filters: Any = None,
    after: UUID | str | None = None,
    text: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Generation]:
    """Generations matching every given condition, newest first ("every conversation about
    loan 456", "investor images of plants over 500 kW").

    ``where`` takes config/context/output_meta conditions in the search's filter language
    (``{"audience": "INVESTOR", "demand_kw": {"gt": 500}}``) or its CLI form
    (``["audience=INVESTOR", "demand_kw>500"]``); ``filters`` any field of
    :class:`learnloop.analytics.spec.Filters` (verdict, tags, since, ...). Keyset paging:
    pass the last id of a page as ``after`` to get the next one (stable under inserts,
    and as fast on page 1,000 as on page 1); ``offset`` still works for short lists.
    ``text``: a case-insensitive substring of the prompt or the output.
    """
    from ..analytics.breakdown import Frag, Plan
    from ..analytics.spec import filters as make_filters

    f = make_filters(filters, where=where, all_projects=all_projects or None, links=links,
                     kind=kind, user_ref=user_ref, session_ref=session_ref, model=model)
    limit, offset = _page(limit, offset)
    verdicts.settle(conn, scope.tenant_id)  # a verdict filter reads the summary
    plan = Plan(conn, scope, f, [], ledger=True)  # whole generations, text search
    conds = [plan.where]
    if text:
        if not isinstance(text, str) or "\x00" in text:
            raise InvalidInput("text must be a string without NUL characters", field="text")
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conds.append(Frag("(g.prompt ILIKE %s OR g.output_text ILIKE %s)", [pattern, pattern]))
    if after is not None:
        aid = as_uuid(after, "after")
        if conn.execute("SELECT 1 FROM learnloop.generations WHERE tenant_id = %s AND id = %s",
                        (scope.tenant_id, aid)).fetchone() is None:
            raise NotFound(f"generation {aid} (after) does not exist in this tenant")
        conds.append(Frag("(g.created_at, g.id) < (SELECT a.created_at, a.id FROM learnloop.generations a"
                          " WHERE a.tenant_id = %s AND a.id = %s)", [scope.tenant_id, aid]))
    q = Frag.join(" ", [
        Frag("SELECT g.*, p.name AS project FROM"), plan.from_(),
        Frag("JOIN learnloop.projects p ON p.tenant_id = %s AND p.id = g.project_id", [scope.tenant_id]),
        Frag("WHERE"), Frag.join(" AND ", conds),
        Frag("ORDER BY g.created_at DESC, g.id DESC LIMIT %s OFFSET %s", [limit, offset])])
    return [Generation.model_validate(r) for r in plan.execute(q).fetchall()]


def _page(limit: int, offset: int) -> tuple[int, int]:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
        raise InvalidInput("limit must be a whole number from 1 to 10000", field="limit")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidInput("offset must be a whole number >= 0", field="offset")
    return limit, offset


def as_uuid(value: Any, what: str) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise InvalidInput(f"{what} {value!r} is not a valid id (expected a UUID)") from None


# -- bulk ----------------------------------------------------------------------------------
