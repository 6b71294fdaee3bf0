"""Seed 000's questions, answered in SQL.

* ``failure_rate(by=...)``: "which style preset fails most?" grouped by any config/context
  key, with counts. A generation counts once, with its verdict (see the
  ``generation_verdicts`` view); ``failure_rate = negative / rated``.
* ``golden(where=...)``: positively judged generations with numeric conditions on the
  context JSON (``efficiency < 0.08``), newest first.
* ``tag_frequencies``: tags over a period.
* ``corrections``: of negatively judged attempts that were regenerated, how many got a
  positively judged child; and how many iterations trees need to reach a positive verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from psycopg import sql

from ..errors import InvalidInput
from ..store.database import Conn
from ..store.tenancy import Scope
from ..store.validation import check_key

JsonSource = Literal["config", "context", "output_meta", "links"]
_SOURCES = {"config", "context", "output_meta", "links"}
_OPS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "=": "=", "==": "=", "!=": "<>"}


def _path(by: str | Sequence[str]) -> list[str]:
    keys = [by] if isinstance(by, str) else list(by) if isinstance(by, list | tuple) else [by]
    if not keys:
        raise InvalidInput("name at least one key", field="by")
    return [check_key(k, "key") for k in keys]


def _source(source: str) -> sql.Identifier:
    if source not in _SOURCES:
        raise InvalidInput(f"source must be one of {sorted(_SOURCES)}, got {source!r}", field="source")
    return sql.Identifier(source)


def _scope_sql(scope: Scope, alias: str, all_projects: bool, since: datetime | None,
               until: datetime | None, params: dict[str, Any]) -> sql.Composed:
    a = sql.Identifier(alias)
    parts = [sql.SQL("{}.tenant_id = %(tenant_id)s").format(a)]
    params["tenant_id"] = scope.tenant_id
    if not all_projects:
        parts.append(sql.SQL("{}.project_id = %(project_id)s").format(a))
        params["project_id"] = scope.project_id
    for name, val, op in (("since", since, ">="), ("until", until, "<")):
        if val is not None:
            if not isinstance(val, datetime):
                raise InvalidInput(f"{name} must be a datetime", field=name)
            parts.append(sql.SQL("{}.created_at " + op + " %(" + name + ")s").format(a))
            params[name] = val
    return sql.SQL(" AND ").join(parts)


def failure_rate(
    conn: Conn,
    scope: Scope,
    by: str | Sequence[str],
    *,
    source: str = "config",
    since: datetime | None = None,
    until: datetime | None = None,
    all_projects: bool = False,
    min_rated: int = 0,
) -> list[dict[str, Any]]:
    """One row per value of ``source -> by``: attempts, rated, negative, positive, failure_rate."""
    params: dict[str, Any] = {"path": _path(by), "min_rated": int(min_rated)}
    where = _scope_sql(scope, "g", all_projects, since, until, params)
    q = sql.SQL("""
        SELECT g.{src} #>> %(path)s AS value,
               count(*) AS attempts,
               count(v.verdict) AS rated,
               count(*) FILTER (WHERE v.verdict = 'NEGATIVE') AS negative,
               count(*) FILTER (WHERE v.verdict = 'POSITIVE') AS positive,
               (count(*) FILTER (WHERE v.verdict = 'NEGATIVE'))::float8
                   / nullif(count(v.verdict), 0) AS failure_rate
        FROM learnloop.generations g
        LEFT JOIN learnloop.generation_verdicts v
               ON v.tenant_id = g.tenant_id AND v.generation_id = g.id
        WHERE {where}
        GROUP BY 1
        HAVING count(v.verdict) >= %(min_rated)s
        ORDER BY failure_rate DESC NULLS LAST, attempts DESC, value NULLS LAST
    """).format(src=_source(source), where=where)
    return conn.execute(q, params).fetchall()


def parse_condition(text: str) -> tuple[str, str, float]:
    """``"efficiency<0.08"`` -> ("efficiency", "<", 0.08). For the CLI and query strings."""
    if not isinstance(text, str):
        raise InvalidInput("a condition must be a string like 'efficiency<0.08'")
    for op in ("<=", ">=", "!=", "==", "<", ">", "="):
        if op in text:
            key, _, num = text.partition(op)
            try:
                return key.strip(), op, float(num)
            except ValueError:
                break
    raise InvalidInput(f"cannot read condition {text!r}: use KEY<NUMBER (or <=, >, >=, =, !=)")


def golden(
    conn: Conn,
    scope: Scope,
    where: Sequence[tuple[str | Sequence[str], str, float]] = (),
    *,
    source: str = "context",
    min_rating: float | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    all_projects: bool = False,
    limit: int = 10,
) -> list[dict[str, Any]]:
    """Positively judged generations meeting every numeric condition on ``source`` JSON.

    A condition applies to JSON numbers only: a generation whose key is missing or not a
    number does not match. Newest generations first.
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
        raise InvalidInput("limit must be a whole number from 1 to 10000", field="limit")
    params: dict[str, Any] = {"limit": limit}
    scope_sql = _scope_sql(scope, "g", all_projects, since, until, params)
    conds = [scope_sql, sql.SQL("v.verdict = 'POSITIVE'")]
    src = _source(source)
    for i, cond in enumerate(where):
        if not isinstance(cond, list | tuple) or len(cond) != 3:
            raise InvalidInput("each condition is (key, operator, number)", field="where")
        key, op, num = cond
        if op not in _OPS:
            raise InvalidInput(f"unknown operator {op!r}: use one of {sorted(_OPS)}", field="where")
        if isinstance(num, bool) or not isinstance(num, int | float):
            raise InvalidInput(f"the value compared with {key!r} must be a number", field="where")
        params[f"p{i}"] = _path(key)
        params[f"n{i}"] = float(num)
        conds.append(sql.SQL(
            "jsonb_typeof(g.{src} #> %(p" + str(i) + ")s) = 'number'"
            " AND (g.{src} #>> %(p" + str(i) + ")s)::float8 " + _OPS[op] + " %(n" + str(i) + ")s"
        ).format(src=src))
    if min_rating is not None:
        conds.append(sql.SQL("v.avg_rating >= %(min_rating)s"))
        params["min_rating"] = float(min_rating)
    q = sql.SQL("""
        SELECT g.id, g.kind, g.prompt, g.output_text, g.output_url, g.model, g.config, g.context,
               g.iteration, g.created_at, v.positives, v.negatives, v.avg_rating
        FROM learnloop.generations g
        JOIN learnloop.generation_verdicts v ON v.tenant_id = g.tenant_id AND v.generation_id = g.id
        WHERE {conds}
        ORDER BY g.created_at DESC, g.id DESC
        LIMIT %(limit)s
    """).format(conds=sql.SQL(" AND ").join(conds))
    return conn.execute(q, params).fetchall()


def tag_frequencies(
    conn: Conn,
    scope: Scope,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    sentiment: str | None = None,
    all_projects: bool = False,
) -> list[dict[str, Any]]:
    """Each tag with the feedback rows and distinct generations carrying it, in the period
    (by feedback time), and its share of the generations with any feedback in the period."""
    params: dict[str, Any] = {}
    where = _scope_sql(scope, "f", all_projects, since, until, params)
    extra = sql.SQL("")
    if sentiment is not None:
        if sentiment not in ("POSITIVE", "NEGATIVE", "NEUTRAL"):
            raise InvalidInput(f"unknown sentiment {sentiment!r}", field="sentiment")
        extra = sql.SQL(" AND f.sentiment = %(sentiment)s")
        params["sentiment"] = sentiment
    q = sql.SQL("""
        WITH f AS (SELECT f.* FROM learnloop.feedback f WHERE {where}{extra}),
             total AS (SELECT count(DISTINCT generation_id) AS n FROM f)
        SELECT t.tag, count(*) AS count, count(DISTINCT f.generation_id) AS generations,
               count(DISTINCT f.generation_id)::float8 / nullif((SELECT n FROM total), 0) AS share
        FROM f, unnest(f.tags) AS t(tag)
        GROUP BY t.tag
        ORDER BY count DESC, t.tag
    """).format(where=where, extra=extra)
    return conn.execute(q, params).fetchall()


def corrections(
    conn: Conn,
    scope: Scope,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    all_projects: bool = False,
) -> dict[str, Any]:
    """Did corrections fix it?

    * ``negative``: generations judged NEGATIVE; ``regenerated``: those with at least one
      child; ``fixed``: those with at least one child judged POSITIVE; ``fix_rate`` =
      fixed / regenerated.
    * ``iterations``: over lineage trees with at least one judged node, how many reached a
      POSITIVE verdict first at iteration 1, 2, 3...; ``never`` counts the others.
    """
    params: dict[str, Any] = {}
    where = _scope_sql(scope, "g", all_projects, since, until, params)
    q = sql.SQL("""
        WITH g AS (
            SELECT g.tenant_id, g.id, g.parent_id, g.root_id, g.iteration, v.verdict
            FROM learnloop.generations g
            LEFT JOIN learnloop.generation_verdicts v
                   ON v.tenant_id = g.tenant_id AND v.generation_id = g.id
            WHERE {where}
        ),
        neg AS (
            SELECT n.id,
                   EXISTS (SELECT 1 FROM g c WHERE c.parent_id = n.id) AS regenerated,
                   EXISTS (SELECT 1 FROM g c WHERE c.parent_id = n.id AND c.verdict = 'POSITIVE') AS fixed
            FROM g n WHERE n.verdict = 'NEGATIVE'
        )
        SELECT count(*) AS negative,
               count(*) FILTER (WHERE regenerated) AS regenerated,
               count(*) FILTER (WHERE fixed) AS fixed
        FROM neg
    """).format(where=where)
    head = conn.execute(q, params).fetchone() or {}
    q2 = sql.SQL("""
        WITH g AS (
            SELECT g.root_id, g.iteration, v.verdict
            FROM learnloop.generations g
            LEFT JOIN learnloop.generation_verdicts v
                   ON v.tenant_id = g.tenant_id AND v.generation_id = g.id
            WHERE {where}
        ),
        trees AS (
            SELECT root_id, min(iteration) FILTER (WHERE verdict = 'POSITIVE') AS first_positive
            FROM g GROUP BY root_id HAVING count(verdict) > 0
        )
        SELECT first_positive, count(*) AS trees FROM trees GROUP BY 1 ORDER BY 1 NULLS LAST
    """).format(where=where)
    dist = conn.execute(q2, params).fetchall()
    regenerated = head.get("regenerated", 0)
    return {
        "negative": head.get("negative", 0),
        "regenerated": regenerated,
        "fixed": head.get("fixed", 0),
        "fix_rate": (head.get("fixed", 0) / regenerated) if regenerated else None,
        "iterations": {r["first_positive"]: r["trees"] for r in dist if r["first_positive"] is not None},
        "never": sum(r["trees"] for r in dist if r["first_positive"] is None),
    }
