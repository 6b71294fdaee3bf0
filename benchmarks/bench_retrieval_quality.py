"""Retrieval quality on the Vaswani (NPL) collection: dense, full-text and hybrid search.

11,429 physics abstracts, 93 queries, binary relevance judgments (../shared/data/vaswani_npl,
Glasgow IR test collections, freely distributed). Every ranking comes from the library's
own search calls on a fresh embedded server; nDCG@10 and recall@100 are computed here.

The hybrid settings (English stemming, OR of query words, ts_rank with length
normalisation, RRF k=60, equal weights, depth 100) were fixed before this collection was
run and are not tuned on it. Baselines from the issue (exact search, same model):
dense 0.434 / 0.607, BM25 0.346 / 0.452, naive RRF 0.436 / 0.626.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import numpy as np

from .common import RESULTS, bench_client, percentiles, save

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "vaswani_npl"
CACHE = RESULTS / "vaswani_minilm.npz"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def read_docs() -> list[tuple[str, str]]:
    text = (DATA / "corpus" / "doc-text.trec").read_text(encoding="utf-8", errors="replace")
    return [(m.group(1).strip(), " ".join(m.group(2).split()))
            for m in re.finditer(r"<DOCNO>(.*?)</DOCNO>(.*?)</DOC>", text, re.S)]


def read_queries() -> list[tuple[str, str]]:
    text = (DATA / "query-text.trec").read_text(encoding="utf-8", errors="replace")
    return [(m.group(1).strip(), " ".join(m.group(2).split()).lower())
            for m in re.finditer(r"<num>(.*?)</num>\s*<title>(.*?)</title>", text, re.S)]


def read_qrels() -> dict[str, set[str]]:
    rel: dict[str, set[str]] = {}
    for line in (DATA / "qrels").read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and int(parts[3]) > 0:
            rel.setdefault(parts[0], set()).add(parts[2])
    return rel


def ndcg10(ranked: list[str], relevant: set[str]) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return dcg / ideal if ideal else 0.0


def recall100(ranked: list[str], relevant: set[str]) -> float:
    return len(set(ranked[:100]) & relevant) / len(relevant) if relevant else 0.0


def doc_vectors(texts: list[str], provider: object) -> np.ndarray:
    if CACHE.exists():
        v = np.load(CACHE)["vectors"]
        if v.shape[0] == len(texts):
            return v
    t0 = time.perf_counter()
    v = np.vstack([provider.embed(texts[i:i + 1024]) for i in range(0, len(texts), 1024)])  # type: ignore[attr-defined]
    print(f"  embedded {len(texts)} docs in {time.perf_counter() - t0:.0f}s", flush=True)
    RESULTS.mkdir(exist_ok=True)
    np.savez(CACHE, vectors=v)
    return v


def main() -> None:
    from learnloop.embeddings import get_provider
    from learnloop.knowledge.vectors import EmbeddingRow, ensure_index, upsert_embeddings
    from learnloop.store.ids import uuid7

    docs, queries, qrels = read_docs(), read_queries(), read_qrels()
    queries = [(q, t) for q, t in queries if q in qrels]
    provider = get_provider()
    vecs = doc_vectors([t for _, t in docs], provider)
    print(f"{len(docs)} docs, {len(queries)} judged queries", flush=True)
    with bench_client() as ll:
        kn = ll.knowledge
        rows = [EmbeddingRow("entity", uuid7(), text, v, entity_type="vaswani", metadata={"docno": no})
                for (no, text), v in zip(docs, vecs, strict=True)]
        with ll.db.transaction() as conn:
            ensure_index(conn, provider.model_id, provider.dimensions)
            upsert_embeddings(conn, ll.scope, provider.model_id, rows)
        with ll.db.connection() as conn:
            conn.execute("VACUUM ANALYZE learnloop.embeddings")
        modes = {
            "dense (exact)": dict(path="exact"),
            "dense (default: HNSW ef_search 40)": {},
            "full-text only": dict(hybrid=True, dense_weight=0.0),
            "hybrid RRF (default weights)": dict(hybrid=True),
        }
        out: dict[str, dict[str, float]] = {}
        for name, opts in modes.items():
            nd, rc, lat = [], [], []
            for qid, text in queries:
                t0 = time.perf_counter()
                hits = _search(kn, text, opts)
                lat.append(time.perf_counter() - t0)
                ranked = [h["metadata"]["docno"] for h in hits]
                nd.append(ndcg10(ranked, qrels[qid]))
                rc.append(recall100(ranked, qrels[qid]))
            out[name] = {"ndcg@10": float(np.mean(nd)), "recall@100": float(np.mean(rc)),
                         **{k: v for k, v in percentiles(lat).items() if k != "n"}}
            print(f"  {name:38s} nDCG@10 {out[name]['ndcg@10']:.3f}  recall@100 {out[name]['recall@100']:.3f}"
                  f"  p50 {out[name]['p50_ms']:.1f} ms", flush=True)
    print("\nbaselines (issue, exact): dense 0.434/0.607, BM25 0.346/0.452, naive RRF 0.436/0.626")
    save("retrieval_quality", {"queries": len(queries), "docs": len(docs), "modes": out})


def _search(kn: object, text: str, opts: dict) -> list:  # type: ignore[type-arg]
    opts = dict(opts)
    dense_weight = opts.pop("dense_weight", None)
    if dense_weight is not None:
        # Full text alone: the fusion with a zero dense weight keeps the text ranking's order.
        from learnloop.knowledge import search as s

        with kn._c.db.connection() as conn:  # type: ignore[attr-defined]
            vec = kn.provider.embed([text])[0]  # type: ignore[attr-defined]
            q = s.prepare(kn._c.scope, vec, kn.provider.model_id, k=100)  # type: ignore[attr-defined]
            q.text = text
            hits = s.run_hybrid(conn, q, dense_weight=dense_weight)
            return [h for h in hits if h["text_rank"] is not None]
    return kn.search(text, k=100, **opts)  # type: ignore[attr-defined]
