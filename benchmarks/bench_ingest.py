"""Ingestion throughput: the document pipeline vs the bare model on the same chunk texts.

Corpus (real text, shipped in data/): Vaswani abstracts written out as .txt files (one file
per ``PER_FILE`` abstracts) plus the sample documents of data/docs (PDF, Markdown, HTML,
text), at two sizes (``SIZES`` text files) to show how the ratio grows.

Measured in one process, each size on its own fresh embedded server:

* cold: ``ingest_many`` on every file (sandboxed extraction in parallel with embedding,
  chunking, embedding with an empty cache, one write transaction per file);
* bare model: ``SentenceTransformer.encode`` on exactly the chunk texts stored by the
  cold run, in one call, the provider's batch size; ratio = cold time / bare time (the
  target is x1.3);
* unchanged: the same files again (nothing changed: hashing and one lookup);
* warm: the same files with ``force=True`` (everything re-extracted, re-chunked and
  re-written, every vector from the cache).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import MachineLoad, bench_client, save

ROOT = Path(__file__).resolve().parents[1]
VASWANI = ROOT / "data" / "vaswani_npl" / "corpus" / "doc-text.trec"
PER_FILE = 5
SIZES = [int(x) for x in os.environ.get("BENCH_INGEST_SIZES", "50,200").split(",")]


def _corpus(tmp: Path, n_files: int) -> list[Path]:
    files = [p for p in sorted((ROOT / "data" / "docs").iterdir()) if p.suffix in (".md", ".html", ".txt", ".pdf")]
    raw = VASWANI.read_text(errors="replace")
    docs = [" ".join(d.split()) for d in re.findall(r"<DOC>\s*<DOCNO>\s*\d+\s*</DOCNO>(.*?)</DOC>", raw, re.S)]
    for i in range(n_files):
        f = tmp / f"vaswani-{i:04d}.txt"
        f.write_text("\n\n".join(docs[i * PER_FILE:(i + 1) * PER_FILE]))
        files.append(f)
    return files


def _run(n_files: int) -> dict[str, Any]:
    from learnloop.embeddings import METRICS

    with tempfile.TemporaryDirectory() as tmpdir, bench_client() as ll:
        files = _corpus(Path(tmpdir), n_files)
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
        t0 = time.perf_counter()
        same = kn.ingest_many(files)
        unchanged_s = time.perf_counter() - t0
        METRICS.reset()
        t0 = time.perf_counter()
        warm = kn.ingest_many(files, force=True)
        warm_s = time.perf_counter() - t0
        warm_metrics = METRICS.snapshot()
    return {
        "files": len(files), "failed_files": failed, "chunks": chunks,
        "cold_seconds": round(cold_s, 2), "cold_files_per_s": round(len(files) / cold_s, 1),
        "cold_chunks_per_s": round(chunks / cold_s, 1), "cold_embed_seconds": round(cold_embed_s, 2),
        "bare_model_seconds": round(bare_s, 2), "bare_model_chunks_per_s": round(chunks / bare_s, 1),
        "ratio_cold_vs_bare": round(cold_s / bare_s, 3),
        "unchanged_seconds": round(unchanged_s, 3), "unchanged_all": all(r.status == "unchanged" for r in same),
        "unchanged_ms_per_file": round(unchanged_s / len(files) * 1000, 2),
        "warm_seconds": round(warm_s, 2), "warm_chunks_per_s": round(chunks / warm_s, 1),
        "warm_cache_hit_rate": round(warm_metrics["cache_hit_rate"], 4),
        "processed": sum(r.status == "processed" for r in warm),
    }


def main() -> None:
    load = MachineLoad()
    out: dict[str, Any] = {}
    for n in SIZES:
        r = out[str(n)] = _run(n)
        print(f"{n} text files (+ data/docs): {r['chunks']} chunks, cold {r['cold_seconds']} s"
              f" ({r['cold_files_per_s']} files/s), bare model {r['bare_model_seconds']} s,"
              f" ratio x{r['ratio_cold_vs_bare']}, unchanged {r['unchanged_seconds']} s"
              f" ({r['unchanged_ms_per_file']} ms/file), warm {r['warm_seconds']} s", flush=True)
    if len(SIZES) >= 2:
        a, b = out[str(SIZES[0])], out[str(SIZES[-1])]
        out["growth"] = {"files": round(b["files"] / a["files"], 2), "chunks": round(b["chunks"] / a["chunks"], 2),
                         "cold_seconds": round(b["cold_seconds"] / a["cold_seconds"], 2),
                         "bare_seconds": round(b["bare_model_seconds"] / a["bare_model_seconds"], 2)}
        print(f"growth {SIZES[0]} -> {SIZES[-1]} files: {out['growth']}")
    out["machine"] = load.summary()
    print(out["machine"])
    save("ingest", out)


if __name__ == "__main__":
    main()
