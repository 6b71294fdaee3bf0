"""Retrieval quality of every search mode, by chunk and by document, with paired intervals.

Two collections, both shipped in data/ (nothing is read from outside the project):

* **Vaswani (NPL)**: 11,429 physics abstracts, 93 judged queries (data/vaswani_npl). The
  abstracts are short (~55 tokens), so they are chunked at ``VASWANI_CHUNK`` tokens to
  make "by chunk" and "by document" differ (about two chunks per abstract).
* **OpenAssistant answers**: the 687 assistant replies of the 100 conversation trees in
  data/oasst, each a document chunked at the default size; the queries are the 100 opening
  questions, a reply is relevant to the question it answers directly. Natural-language
  questions against natural-language answers: the case where words alone mislead.

Each document goes through the library's own write path (chunks, vectors, one
transaction per document); vectors of the chunk texts are cached in
benchmarks/results/. Every ranking comes from ``kn.search`` on a fresh embedded server:

* by chunk: ``k=100`` chunk hits, mapped to their documents in order (a document counted
  at its first chunk), so fewer than 100 documents may come back;
* by document: ``group_by="document"``, ``k=100`` documents.

Modes: dense, fulltext, hybrid with equal fixed weights (plain RRF), hybrid with the
per-query text weight ("auto"), and the default mode. nDCG@10 and recall@100 per query;
each mode's mean difference from dense with a paired bootstrap 95% interval (10,000
resamples of the queries, fixed seed). Nothing here feeds back into the library: the
hybrid's rule (knowledge.fusion) was fixed before these runs.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import RESULTS, MachineLoad, bench_client, save

DATA = Path(__file__).resolve().parents[1] / "data"
VASWANI = DATA / "vaswani_npl"
OASST = DATA / "oasst" / "en_100_message.jsonl"
VASWANI_CHUNK = (32, 8)  # tokens, overlap
K = 100
BOOTSTRAP = 10_000


def vaswani() -> tuple[list[tuple[str, str]], list[tuple[str, str]], dict[str, set[str]]]:
    text = (VASWANI / "corpus" / "doc-text.trec").read_text(encoding="utf-8", errors="replace")
    docs = [(m.group(1).strip(), " ".join(m.group(2).split()))
            for m in re.finditer(r"<DOCNO>(.*?)</DOCNO>(.*?)</DOC>", text, re.S)]
    qtext = (VASWANI / "query-text.trec").read_text(encoding="utf-8", errors="replace")
    queries = [(m.group(1).strip(), " ".join(m.group(2).split()).lower())
               for m in re.finditer(r"<num>(.*?)</num>\s*<title>(.*?)</title>", qtext, re.S)]
    rel: dict[str, set[str]] = {}
    for line in (VASWANI / "qrels").read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and int(parts[3]) > 0:
            rel.setdefault(parts[0], set()).add(parts[2])
    return docs, [(q, t) for q, t in queries if q in rel], rel


def oasst() -> tuple[list[tuple[str, str]], list[tuple[str, str]], dict[str, set[str]]]:
    docs: list[tuple[str, str]] = []
    queries: list[tuple[str, str]] = []
    rel: dict[str, set[str]] = {}

    def walk(m: dict[str, Any], root: str | None) -> None:
        for r in m.get("replies") or []:
            if r["role"] == "assistant" and r["text"].strip():
                docs.append((r["message_id"], r["text"]))
                if root is not None:
                    rel.setdefault(root, set()).add(r["message_id"])
            walk(r, None)

    for line in OASST.read_text().splitlines():
        tree = json.loads(line)
        queries.append((tree["message_id"], tree["text"]))
        walk(tree, tree["message_id"])
    return docs, [(q, t) for q, t in queries if q in rel], rel


def ndcg10(ranked: list[str], relevant: set[str]) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return dcg / ideal if ideal else 0.0


def recall100(ranked: list[str], relevant: set[str]) -> float:
    return len(set(ranked[:100]) & relevant) / len(relevant) if relevant else 0.0


def paired_interval(a: np.ndarray, b: np.ndarray, seed: int = 7) -> tuple[float, float, float]:
    """Mean of a - b and its paired bootstrap 95% interval (resampling queries)."""
    d = a - b
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(BOOTSTRAP, len(d)))
    means = d[idx].mean(axis=1)
    return float(d.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _load(ll: Any, name: str, docs: list[tuple[str, str]], chunking: tuple[int, int] | None) -> dict[Any, str]:
    """Write the collection as documents through the library; -> {document id: docno}."""
    from learnloop.knowledge import documents as D
    from learnloop.knowledge.chunking import chunk_text
    from learnloop.knowledge.vectors import ensure_index

    kn = ll.knowledge
    provider = kn.provider
    tokens, overlap = chunking or (ll.settings.chunk_tokens, ll.settings.chunk_overlap)
    chunks = [chunk_text(t, max_tokens=tokens, overlap=overlap) for _, t in docs]
    texts = [c.text for cs in chunks for c in cs]
    cache = RESULTS / f"quality_{name}_{tokens}_{overlap}.npz"
    vecs = None
    if cache.exists():
        v = np.load(cache)["vectors"]
        vecs = v if v.shape[0] == len(texts) else None
    if vecs is None:
        t0 = time.perf_counter()
        vecs = np.vstack([provider.embed(texts[i:i + 1024]) for i in range(0, len(texts), 1024)])
        print(f"  {name}: embedded {len(texts)} chunks in {time.perf_counter() - t0:.0f} s", flush=True)
        RESULTS.mkdir(exist_ok=True)
        np.savez(cache, vectors=vecs)
    ids: dict[Any, str] = {}
    at = 0
    with ll.db.connection() as conn:
        ensure_index(conn, provider.model_id, provider.dimensions)
        for (no, text), cs in zip(docs, chunks, strict=True):
            doc = D._Doc(source=f"{name}/{no}", file_name=f"{no}.txt", file_type="txt", size=len(text),
                         digest=f"bench:{no}", title=no, description=None, metadata={"docno": no})
            ids[D._write_processed(conn, ll.scope, doc, text, cs, vecs[at:at + len(cs)], provider)] = no
            at += len(cs)
        conn.execute("VACUUM ANALYZE learnloop.embeddings")
    print(f"  {name}: {len(docs)} documents, {len(texts)} chunks ({tokens} tokens, overlap {overlap})", flush=True)
    return ids


MODES: dict[str, dict[str, Any]] = {
    "dense": {"mode": "dense"},
    "fulltext": {"mode": "fulltext"},
    "hybrid, equal weights (plain RRF)": {"mode": "hybrid", "text_weight": 1.0},
    "hybrid, auto text weight": {"mode": "hybrid", "text_weight": "auto"},
    "default mode": {},
}


def _evaluate(ll: Any, name: str, ids: dict[Any, str], queries: list[tuple[str, str]],
              rel: dict[str, set[str]]) -> dict[str, Any]:
    from learnloop.knowledge.search import DEFAULT_MODE

    kn = ll.knowledge
    out: dict[str, Any] = {"queries": len(queries), "default_mode": DEFAULT_MODE, "by": {}}
    per: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    weights: list[float] = []
    for by in ("chunk", "document"):
        for mode, opts in MODES.items():
            nd, rc, ndocs = [], [], []
            t0 = time.perf_counter()
            for qid, text in queries:
                if by == "chunk":
                    hits = kn.search(text, K, owner_types="chunk", **opts)
                    ranked = list(dict.fromkeys(ids[h["document_id"]] for h in hits))
                else:
                    hits = kn.search(text, K, group_by="document", chunks_per_document=1, **opts)
                    ranked = [ids[d["document_id"]] for d in hits]
                if by == "chunk" and mode == "hybrid, auto text weight" and hits.trust:
                    weights.append(hits.trust["text_weight"])
                nd.append(ndcg10(ranked, rel[qid]))
                rc.append(recall100(ranked, rel[qid]))
                ndocs.append(len(ranked))
            per[(by, mode)] = {"ndcg": np.array(nd), "recall": np.array(rc)}
            secs = time.perf_counter() - t0
            row = {"ndcg@10": round(float(np.mean(nd)), 4), "recall@100": round(float(np.mean(rc)), 4),
                   "documents_returned_mean": round(float(np.mean(ndocs)), 1),
                   "documents_returned_min": int(np.min(ndocs)), "ms_per_query": round(secs / len(queries) * 1000, 1)}
            if mode != "dense":
                base = per[(by, "dense")]
                for metric, key in (("ndcg", "ndcg@10"), ("recall", "recall@100")):
                    m, lo, hi = paired_interval(per[(by, mode)][metric], base[metric])
                    row[f"{key} vs dense"] = [round(m, 4), round(lo, 4), round(hi, 4)]
            out["by"].setdefault(by, {})[mode] = row
            vs = row.get("ndcg@10 vs dense")
            print(f"  {name} by {by:8s} {mode:34s} nDCG@10 {row['ndcg@10']:.3f}  recall@100 {row['recall@100']:.3f}"
                  f"  docs {row['documents_returned_mean']:5.1f} (min {row['documents_returned_min']})"
                  + (f"  vs dense {vs[0]:+.3f} [{vs[1]:+.3f}, {vs[2]:+.3f}]" if vs else "")
                  + f"  {row['ms_per_query']:.0f} ms/q", flush=True)
    if weights:
        w = np.array(weights)
        out["auto_text_weight"] = {"mean": round(float(w.mean()), 3), "p10": round(float(np.percentile(w, 10)), 3),
                                   "p50": round(float(np.percentile(w, 50)), 3),
                                   "p90": round(float(np.percentile(w, 90)), 3)}
        print(f"  {name}: auto text weight {out['auto_text_weight']}", flush=True)
    return out


def main() -> None:
    load = MachineLoad()
    results: dict[str, Any] = {}
    for name, reader, chunking in (("vaswani", vaswani, VASWANI_CHUNK), ("oasst", oasst, None)):
        docs, queries, rel = reader()
        print(f"{name}: {len(docs)} documents, {len(queries)} judged queries", flush=True)
        with bench_client() as ll:
            ids = _load(ll, name, docs, chunking)
            results[name] = {"documents": len(docs), **_evaluate(ll, name, ids, queries, rel)}
            from learnloop.knowledge import metrics

            metrics.flush(ll.db, quiet=True)  # this server's search counts, before it goes
    results["machine"] = load.summary()
    print(results["machine"])
    save("retrieval_quality", results)


if __name__ == "__main__":
    main()
