"""Ingestion throughput: the document pipeline vs the bare model on the same chunk texts.

Corpus (real files): the 117-page GeoTopo lecture notes PDF and the other sample PDFs from
../shared/data/pdf_pypdf_sample_files, the sample documents in data/docs, and the first
Vaswani abstracts written out as .txt files (one file per 20 abstracts).

Measured in one process on one fresh embedded server:

* cold: ``ingest_many`` on every file (sandboxed extraction + chunking + embedding with an
  empty cache + one write transaction per file) -> chunks/s;
* bare model: ``SentenceTransformer.encode`` on exactly the chunk texts stored by the
  cold run, same batch size -> chunks/s; overhead = cold time / bare time;
* warm: the same files again with ``force=True`` (everything re-extracted, re-chunked and
  re-written, but every vector comes from the cache) -> chunks/s.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

from .common import bench_client, save

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ROOT = Path(__file__).resolve().parents[1]
VASWANI_DOCS = 600


def _corpus(tmp: Path) -> list[Path]:
    files = sorted((SHARED / "pdf_pypdf_sample_files").rglob("*.pdf"))
    files += [p for p in sorted((ROOT / "data" / "docs").iterdir()) if p.suffix in (".md", ".html", ".txt")]
    raw = next((SHARED / "vaswani_npl").rglob("doc-text*")).read_text(errors="replace")
    docs = [d.strip() for d in re.findall(r"<DOC>\s*<DOCNO>\s*\d+\s*</DOCNO>(.*?)</DOC>", raw, re.S)][:VASWANI_DOCS]
    for i in range(0, len(docs), 20):
        f = tmp / f"vaswani-{i // 20:03d}.txt"
        f.write_text("\n\n".join(docs[i:i + 20]))
        files.append(f)
    return files


def main() -> None:
    from learnloop.embeddings import METRICS

    with tempfile.TemporaryDirectory() as tmpdir, bench_client() as ll:
        files = _corpus(Path(tmpdir))
        kn = ll.knowledge
        kn.embed(["warm up the model"])  # model load is not ingestion
        METRICS.reset()
        t0 = time.perf_counter()
        cold = kn.ingest_many(files)
        cold_s = time.perf_counter() - t0
        cold_embed_s = METRICS.snapshot()["embed_seconds"]
        chunks = sum(r.chunks for r in cold if r.status == "processed")
        failed = [(r.file_name, r.error) for r in cold if r.status == "failed"]
        with ll.db.connection() as conn:
            texts = [r["text"] for r in conn.execute(
                "SELECT c.text FROM learnloop.chunks c WHERE c.tenant_id = %s ORDER BY c.document_id, c.chunk_index",
                (ll.scope.tenant_id,)).fetchall()]
        assert len(texts) == chunks, (len(texts), chunks)
        model = kn.provider._load()  # the same SentenceTransformer the pipeline uses
        t0 = time.perf_counter()
        model.encode(texts, batch_size=kn.provider.batch_size, normalize_embeddings=True,
                     convert_to_numpy=True, show_progress_bar=False)
        bare_s = time.perf_counter() - t0
        METRICS.reset()
        t0 = time.perf_counter()
        warm = kn.ingest_many(files, force=True)
        warm_s = time.perf_counter() - t0
        warm_metrics = METRICS.snapshot()
    out = {
        "files": len(files), "failed_files": failed, "chunks": chunks,
        "cold_seconds": round(cold_s, 2), "cold_chunks_per_s": round(chunks / cold_s, 1),
        "cold_embed_seconds": round(cold_embed_s, 2),
        "bare_model_seconds": round(bare_s, 2), "bare_model_chunks_per_s": round(chunks / bare_s, 1),
        "overhead_ratio_cold_vs_bare": round(cold_s / bare_s, 3),
        "non_embedding_seconds_cold": round(cold_s - cold_embed_s, 2),
        "warm_seconds": round(warm_s, 2), "warm_chunks_per_s": round(chunks / warm_s, 1),
        "warm_cache_hit_rate": round(warm_metrics["cache_hit_rate"], 4),
        "warm_speedup_vs_cold": round(cold_s / warm_s, 2),
        "processed": sum(r.status == "processed" for r in warm),
    }
    for k, v in out.items():
        print(f"{k:32} {v}")
    save("ingest", out)


if __name__ == "__main__":
    main()
