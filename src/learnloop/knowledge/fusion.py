"""Fusing the dense and full-text rankings, and grouping chunk hits by document.

Pure Python over ids, ranks and scores: the search module fetches the two rankings and the
winners' rows; what is decided here is documented in docs/retrieval.md ("Hybrid search",
"Results by document"), and tests/test_search_modes.py keeps those pages and these
constants in step.

**Fusion** is weighted reciprocal rank fusion (Cormack et al. 2009): a row's score is
``dense_weight / (RRF_K + dense_rank) + text_weight / (RRF_K + text_rank)``, a missing rank
contributing nothing, ties broken by the row id.

**Adaptive text weight** (``text_weight="auto"``): how much to trust the full-text side is
decided per query, from three signals of the query and its BM25 ranking alone, each in
[0, 1], none fitted to any collection's queries or judgments:

* *corroboration*: the share of the text side's top ``SIGNAL_DEPTH`` rows that the dense
  side also ranks within its depth. Two independent rankers agreeing on a row is evidence
  the text match is topical; text hits the dense side never saw are surface matches as
  often as they are the exact term the user meant.
* *rarity*: the mean idf of the query terms that occur in the collection, over the idf of
  a term found in a single row. A query of common words gives BM25 little to go on.
* *decisiveness*: ``1 - s[SIGNAL_DEPTH] / s[1]``, how far the best text score stands above
  the tenth. A long query whose terms are spread evenly over many rows gives a flat text
  ranking (its order carries little information); a query whose words single out a few
  rows gives a steep one. This is also where query length acts: every extra common word
  raises every candidate's score alike and flattens the ranking.

The text weight is their mean (equal say, nothing to tune), so it is 1 (plain RRF with
equal weights) only when all three signals are certain, and 0 when no query word occurs
(the fusion is then the dense ranking itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

RRF_K = 60  # the constant of Cormack et al. (2009); robust across collections
SIGNAL_DEPTH = 10  # the text ranking's head whose shape and agreement are read
DEFAULT_DEPTH = 100  # rows taken from each ranking before fusion
DEFAULT_CHUNKS_PER_DOCUMENT = 3


@dataclass
class Trust:
    """Why the text side got its weight (returned with hybrid results as ``trust``)."""

    corroboration: float = 0.0
    rarity: float = 0.0
    decisiveness: float = 0.0
    terms: int = 0  # query terms that occur in the scope

    @property
    def weight(self) -> float:
        if self.terms == 0:
            return 0.0
        return (self.corroboration + self.rarity + self.decisiveness) / 3

    def to_dict(self) -> dict[str, Any]:
        return {"corroboration": round(self.corroboration, 4), "rarity": round(self.rarity, 4),
                "decisiveness": round(self.decisiveness, 4), "terms": self.terms,
                "text_weight": round(self.weight, 4)}


def trust(text: Sequence[tuple[Any, float]], dense_ids: Sequence[Any], idfs: Sequence[float],
          dfs: Sequence[int], n_docs: float) -> Trust:
    """The signals of the text side for one query (see the module docstring)."""
    from .fulltext import idf

    present = [i for i, d in zip(idfs, dfs, strict=True) if d > 0]
    if not text or not present:
        return Trust(terms=len(present))
    head = [row_id for row_id, _ in text[:SIGNAL_DEPTH]]
    dense = set(dense_ids)
    corroboration = sum(1 for r in head if r in dense) / len(head)
    top_idf = idf(n_docs, 1)
    rarity = min(1.0, max(0.0, sum(present) / len(present) / top_idf)) if top_idf > 0 else 0.0
    best = text[0][1]
    at_depth = text[SIGNAL_DEPTH - 1][1] if len(text) >= SIGNAL_DEPTH else 0.0
    decisiveness = min(1.0, max(0.0, 1 - at_depth / best)) if best > 0 else 0.0
    return Trust(corroboration, rarity, decisiveness, len(present))


@dataclass
class Fused:
    id: Any
    score: float
    dense_rank: int | None = None
    text_rank: int | None = None
    text_score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def fuse(dense_ids: Sequence[Any], text: Sequence[tuple[Any, float]], dense_weight: float,
         text_weight: float) -> list[Fused]:
    """Weighted RRF of the two rankings (each best first), best first, ties by id."""
    out: dict[Any, Fused] = {}
    for r, row_id in enumerate(dense_ids, 1):
        out[row_id] = Fused(row_id, dense_weight / (RRF_K + r), dense_rank=r)
    for r, (row_id, s) in enumerate(text, 1):
        f = out.get(row_id)
        if f is None:
            f = out[row_id] = Fused(row_id, 0.0)
        f.score += text_weight / (RRF_K + r)
        f.text_rank, f.text_score = r, s
    return sorted(out.values(), key=lambda f: (-f.score, f.id))


def group_by_document(hits: Sequence[dict[str, Any]], k: int, per_document: int) -> list[dict[str, Any]]:
    """Chunk hits (best first) -> the ``k`` best documents, each with its best chunks.

    A document ranks where its best chunk ranks (max pooling): documents come in the order
    in which their first chunk appears in the chunk ranking, so the rule holds for every
    mode (dense similarity, BM25 score, fused score). Each carries up to ``per_document``
    of its chunks, in the chunk ranking's order, and the best chunk's ``similarity`` and
    ``score`` as its own.
    """
    docs: dict[Any, dict[str, Any]] = {}
    for h in hits:
        doc_id = h.get("document_id")
        if doc_id is None:
            continue
        d = docs.get(doc_id)
        if d is None:
            if len(docs) >= k:
                continue
            d = docs[doc_id] = {"owner_type": "document", "document_id": doc_id, "title": h.get("title"),
                                "file_name": h.get("file_name"),
                                "rank": len(docs) + 1, "similarity": h.get("similarity"), "score": h.get("score"),
                                "chunks": []}
        if len(d["chunks"]) < per_document:
            d["chunks"].append(h)
    return list(docs.values())
