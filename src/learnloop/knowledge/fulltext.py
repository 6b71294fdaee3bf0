"""Full-text ranking for hybrid search: BM25 over PostgreSQL tsvectors.

PostgreSQL's ``ts_rank`` has no inverse document frequency: a query word found in every
document weighs as much as a rare one. Hybrid search ranks with Okapi BM25 instead, with
the textbook parameters (k1 = 1.2, b = 0.75; Robertson & Zaragoza 2009), over the English
tsvector of each row (``embeddings.content_tsv``: Snowball stemming, stop words removed):

    score(d) = sum over query terms t in d of  idf(t) * tf(t,d) * (k1 + 1)
                                               / (tf(t,d) + k1 * (1 - b + b * len(d) / avglen))
    idf(t)   = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

Corpus statistics (N, df, avglen) are taken over the scope's tenant, project and model, not
over the filtered rows: they describe the language of the collection. N and avglen are
cached per scope for ``STATS_TTL`` seconds (they move slowly); df is counted per query
through the GIN index. Candidates are the rows matching any query term (an OR query).

The text search configuration is a parameter (``language``, a PostgreSQL regconfig name,
default ``LANGUAGE``): the query is parsed with the same configuration as the stored
``content_tsv`` column, or its lexemes would not match the stored ones.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ..store.database import database_key

K1 = 1.2
B = 0.75
STATS_TTL = 600.0
LANGUAGE = "english"  # the configuration of embeddings.content_tsv (migration set ``retrieval``)

_stats: dict[tuple[Any, ...], tuple[float, float, float]] = {}
_lock = threading.Lock()


def _base(q: Any) -> tuple[sql.Composable, list[Any]]:
    """The scope part of a prepared query: tenant, model (and project)."""
    return sql.SQL(" AND ").join(q.conds[:q.base_conds]), q.params[:q.base_params]


def corpus_stats(conn: psycopg.Connection[Any], q: Any) -> tuple[float, float]:
    """(N documents, average document length in terms) of the scope, cached."""
    where, params = _base(q)
    key = (*database_key(conn), *params)
    with _lock:
        hit = _stats.get(key)
    if hit is not None and time.monotonic() - hit[0] < STATS_TTL:
        return hit[1], hit[2]
    row = conn.execute(
        sql.SQL(
            "SELECT count(*)::float8 AS n, coalesce(avg(d.dl), 0)::float8 AS avgdl"
            " FROM learnloop.embeddings e, LATERAL (SELECT sum(coalesce(array_length(u.positions, 1), 1)) AS dl"
            "   FROM unnest(e.content_tsv) u) d WHERE {}").format(where),
        params,
    ).fetchone()
    n, avgdl = float(row["n"]), float(row["avgdl"])  # type: ignore[index]
    with _lock:
        _stats[key] = (time.monotonic(), n, avgdl)
    return n, avgdl


@dataclass
class Terms:
    """The query's distinct lexemes with their document frequency and BM25 idf."""

    lexemes: list[str]
    df: list[int]
    idf: list[float]
    n_docs: float
    avgdl: float


def idf(n_docs: float, df: float) -> float:
    return math.log(1 + (n_docs - df + 0.5) / (df + 0.5))


def query_terms(conn: psycopg.Connection[Any], q: Any, text: str, *, language: str = LANGUAGE) -> Terms:
    """The query's distinct lexemes, their df and BM25 idf in the scope (and N, avglen)."""
    n_docs, avgdl = corpus_stats(conn, q)
    where, params = _base(q)
    rows = conn.execute(
        sql.SQL(
            "SELECT t.lexeme, (SELECT count(*) FROM learnloop.embeddings e WHERE {}"
            "   AND e.content_tsv @@ plainto_tsquery('simple', t.lexeme)) AS df"
            " FROM (SELECT DISTINCT lexeme FROM unnest(to_tsvector(%s::regconfig, %s))) t ORDER BY 1").format(where),
        [*params, language, text],
    ).fetchall()
    dfs = [int(r["df"]) for r in rows]
    return Terms([r["lexeme"] for r in rows], dfs, [idf(n_docs, d) for d in dfs], n_docs, avgdl)


def rank(conn: psycopg.Connection[Any], q: Any, text: str, n: int, *,
         language: str = LANGUAGE) -> tuple[list[tuple[Any, float]], Terms]:
    """The ``n`` best rows of the scope by BM25 for ``text``: [(embedding id, score)], best
    first (ties by id), and the query's terms. Filters of ``q`` apply to the candidates."""
    terms = query_terms(conn, q, text, language=language)
    if not any(terms.df):
        return [], terms  # no query word occurs in the scope (or only stop words)
    query = sql.SQL(
        "WITH tq AS MATERIALIZED (SELECT replace(plainto_tsquery(%s::regconfig, %s)::text, ' & ', ' | ')::tsquery"
        " AS q) {}").format(ranked_sql(sql.SQL(" AND ").join(q.conds)))
    rows = conn.execute(query, [language, text, terms.avgdl, terms.lexemes, terms.idf, *q.params, n]).fetchall()
    return [(r["id"], float(r["trank"])) for r in rows], terms


def ranked_sql(where: sql.Composable) -> sql.Composable:
    """SELECT id, trank ... LIMIT n over rows matching ``where`` and the OR query ``tq.q``.

    Parameters, in order: avgdl, lexemes (text[]), idfs (float8[]), the where params, n.
    """
    return sql.SQL(
        "SELECT e.id, sum(w.idf * x.tf * {k1p1} / (x.tf + {k1} * (1 - {b} + {b} * x.dl / greatest(%s, 1))))"
        "   AS trank"
        " FROM learnloop.embeddings e, tq,"
        "  LATERAL (SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1)::float8 AS tf,"
        "           sum(coalesce(array_length(u.positions, 1), 1)) OVER ()::float8 AS dl"
        "           FROM unnest(e.content_tsv) u) x,"
        "  unnest(%s::text[], %s::float8[]) AS w(lexeme, idf)"
        " WHERE {w} AND e.content_tsv @@ tq.q AND w.lexeme = x.lexeme"
        " GROUP BY e.id ORDER BY trank DESC, e.id LIMIT %s"
    ).format(k1p1=sql.Literal(K1 + 1), k1=sql.Literal(K1), b=sql.Literal(B), w=where)
