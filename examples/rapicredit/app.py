"""RAPICREDIT's assistant on learnloop (seeds 001 and 004).

A client's question is answered from the Spanish policy documents (the project's language
is ``spanish``, so "préstamos" finds "préstamo" in the full-text half of hybrid search);
every answer is a generation linked to the client and the loan, with the passages it used,
its model, tokens and latency; ratings and thumbs are feedback; a thumbs-down waits in the
admin review queue, and what the admin learns becomes a dictionary term tied to that
feedback. The best-rated conversations become a fine-tuning dataset (exported as JSONL;
sent to a provider when one is given, with provenance of which conversations trained
which model). The default-risk model's predictions get their outcomes and a report.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import learnloop

from .data import CONVERSATIONS, FIELDS, POLICIES, PREDICTIONS, TERMS

MODEL = "rapicredit-asistente-v1"


def load_policies(ll: learnloop.Client) -> list[str]:
    ll.knowledge.set_language("spanish")
    out = []
    for name, text in POLICIES.items():
        res = ll.knowledge.ingest_bytes(text.encode(), file_name=name, metadata={"tipo": "politica"})
        out.append(res.status)
    return out


def _stems(text: str) -> set[str]:
    return {w[:5] for w in re.findall(r"\w{4,}", text.lower())}


def best_sentence(question: str, passage: str) -> str:
    """The LLM's stand-in: the passage's sentence sharing the most word stems with the question."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", passage) if s.strip() and not s.startswith("#")]
    q = _stems(question)
    return max(sentences, key=lambda s: len(q & _stems(s)), default="No tengo esa información.")


def answer(ll: learnloop.Client, client_id: str, loan: str, question: str) -> learnloop.Generation:
    """Retrieve the policy passages, answer from the best one, log the attempt."""
    t0 = time.perf_counter()
    hits = ll.knowledge.search(question, 2, mode="hybrid", owner_types="chunk")
    text = best_sentence(question, "\n".join(h["content"] for h in hits))
    return ll.log(kind="chat", prompt=question, output_text=text, model=MODEL, user_ref=client_id,
                  links={"client": client_id, "loan": loan},
                  retrieved=[{"document": h["file_name"], "chunk": h["chunk_index"], "score": h["score"]} for h in hits],
                  tokens_in=len(question.split()) + sum(len(h["content"].split()) for h in hits), tokens_out=len(text.split()),
                  latency_ms=round((time.perf_counter() - t0) * 1000, 1))


def run(ll: learnloop.Client, *, out: Callable[[str], None] = print, export_dir: str,
        finetune_provider: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = {"ingested": load_policies(ll)}
    out(f"== políticas ingeridas (idioma {ll.knowledge.language()}): {', '.join(POLICIES)} ==")

    out("\n== asistente ==")
    gens = []
    for client_id, loan, question, rating, thumbs in CONVERSATIONS:
        g = answer(ll, client_id, loan, question)
        ll.feedback(g.id, rating=rating, thumbs=thumbs, author_ref=client_id,
                    comment="no respondió cuándo me reportan" if thumbs == "down" else None)
        gens.append(g)
        out(f"  [{client_id}/{loan}] {question}\n     -> {g.output_text}  ({g.retrieved[0]['document'] if g.retrieved else '-'})")
    result["answers"] = [(g.prompt, g.output_text, [r["document"] for r in g.retrieved]) for g in gens]
    result["loan_789"] = [g.prompt for g in ll.find(links={"loan": "L-789"})]

    out("\n== cola de revisión (admin) ==")
    queue = ll.review_queue()
    for item in queue:
        out(f"  {item.comment!r} sobre: {item.prompt}")
    fb = queue[0]
    ll.mark_reviewed(fb.id, notes="El reporte ocurre tras 60 días de mora, con aviso de 20 días.", improved=True,
                     by="admin-ana")
    for t in TERMS:
        ll.dictionary.add(t, because_of=fb.id if t["word"] == "mora" else None, by="admin-ana")
    result["queue"] = [item.id for item in queue]
    result["queue_after"] = [item.id for item in ll.review_queue()]

    out("\n== diccionario semántico y catálogo de campos ==")
    lookups = {}
    for phrase in ("retraso en el pago", "cuánto debe el cliente", "documento de identidad"):
        hits = ll.dictionary.lookup(phrase, k=1)
        lookups[phrase] = f"{hits[0]['table']}.{hits[0]['field']}" if hits else None
        out(f"  {phrase!r} -> {lookups[phrase]}")
    for table, field, definition in FIELDS:
        ll.dictionary.describe(table, field, schema="rapicredit", create=True, definition=definition)
    result["lookups"] = lookups
    result["fields"] = [f"{f['table_name']}.{f['field_name']}" for f in ll.dictionary.fields(schema="rapicredit")]

    out("\n== datos de entrenamiento ==")
    ds = ll.training.create_dataset("conversaciones-buenas", {"kind": "chat", "min_rating": 4})
    exported = ll.training.export(ds.id, Path(export_dir) / "conversaciones.chat.jsonl", fmt="chat")
    out(f"  dataset {ds.name}@{ds.version}: {ds.counts['examples']} ejemplos -> {exported['path']}")
    result["dataset_examples"] = ds.counts["examples"]
    if finetune_provider is not None:
        job = ll.training.start_job(ds.id, base_model="gpt-4o-mini-2024-07-18", provider=finetune_provider)
        for _ in range(20):
            job = ll.training.sync(job.id, provider=finetune_provider)
            if job.status in ("succeeded", "failed", "cancelled"):
                break
        trained = ll.training.trained_on(job.result_model) if job.result_model else []
        out(f"  fine-tuning {job.provider_job_id}: {job.status} -> {job.result_model}; "
            f"{len(trained)} conversaciones lo entrenaron")
        result["job"] = {"status": job.status, "model": job.result_model, "trained_on": len(trained)}
    else:
        out("  (sin proveedor de fine-tuning configurado: el JSONL queda listo para subirlo)")

    out("\n== modelo de riesgo de impago ==")
    for loan, score, factors, defaulted in PREDICTIONS:
        p = ll.predictions.log(model_name="riesgo-impago", model_version="2024.1", score=score,
                               subject={"loan": loan}, factors=factors)
        ll.predictions.outcome(p["id"], defaulted)
    report = ll.predictions.report("riesgo-impago", "2024.1")
    out(f"  {report['predictions']} predicciones, ROC AUC {report['roc_auc']:.2f}, "
        f"precisión {report['precision']:.2f}, recall {report['recall']:.2f}")
    result["risk"] = report
    return result
