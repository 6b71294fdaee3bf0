"""Demo section for training: datasets from the OpenAssistant conversations, exports, provenance.

Runs after the ledger section imported the trees into project "demo". Files go under
``$LEARNLOOP_HOME/exports``. No fine-tuning job is started: the demo has no provider, and
a job record that no provider created would be a fake.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import NotFound

TERMS = [
    {"word": "cédula", "table_name": "clientes", "field_name": "cedula", "category": "identificacion",
     "synonyms": ["documento", "DNI"], "definition": "Número del documento de identidad del cliente."},
    {"word": "saldo", "table_name": "prestamos", "field_name": "saldo_pendiente", "category": "prestamos",
     "synonyms": ["lo que debe"], "definition": "Monto que el cliente todavía debe del préstamo."},
    {"word": "mora", "table_name": "cuotas", "field_name": "dias_mora", "category": "pagos",
     "synonyms": ["atraso"], "definition": "Retraso en el pago de una cuota vencida y no pagada."},
]


def run(ll: Any, console: Any) -> None:
    from rich.table import Table

    out = Path(ll.settings.home) / "exports"
    out.mkdir(parents=True, exist_ok=True)
    tr = ll.training

    good = tr.create_dataset("oasst-good", {"verdict": "POSITIVE", "kind": "chat"},
                             options={"scrub_pii": True, "validation": 0.1, "seed": 42})
    again = tr.create_dataset("oasst-good", {"kind": "chat", "verdict": ["POSITIVE"]},
                              options={"scrub_pii": True, "validation": 0.1, "seed": 42})
    c = good.counts
    console.print(
        f"dataset {good.name}@{good.version}: {c['matched']} positively judged chats -> {c['examples']} examples "
        f"({c['duplicates']} duplicates dropped, {c['train']} train / {c['validation']} validation), "
        f"PII replaced: {c['pii'] or 'none'}"
    )
    console.print(f"  content hash {good.content_hash[:23]}...; asking again returns "
                  f"{again.name}@{again.version} ({'same version, same hash' if again.id == good.id else 'a NEW version'})")

    chat = tr.export(good.id, out / "oasst-good.chat.jsonl", fmt="chat")
    console.print(f"  chat JSONL: {chat['examples']} lines -> {chat['path']}; ~{chat['total_tokens']:,} tokens "
                  f"(estimate), max {chat['max_tokens_per_example']:,} per example, {chat['rejected']} rejected")
    _check_lines(Path(chat["path"]))

    pairs = tr.create_dataset("oasst-pairs", {"kind": "chat"}, kind="preference")
    pc = pairs.counts
    console.print(f"dataset {pairs.name}@{pairs.version}: {pc['examples']} preference pairs "
                  f"({pc['pairs_correction']} negative attempt -> positive regeneration, "
                  f"{pc['pairs_ranking']} higher- vs lower-rated siblings)")
    pref = tr.export(pairs.id, out / "oasst-pairs.dpo.jsonl", fmt="preference")
    console.print(f"  preference JSONL (prompt/chosen/rejected): {pref['examples']} lines -> {pref['path']}")
    _check_lines(Path(pref["path"]))
    first = tr.items(pairs.id)[0]["example"]
    t = Table(title="one pair", show_lines=True)
    for col in ("prompt", "chosen", "rejected", "why"):
        t.add_column(col, overflow="fold")
    t.add_row(first["prompt"][-1]["content"][:120], first["chosen"][:160], first["rejected"][:160], first["reason"])
    console.print(t)

    # Provenance: a generation that is in both datasets.
    both = {i["generation_id"] for i in tr.items(good.id)} & {i["generation_id"] for i in tr.items(pairs.id)}
    gid = sorted(both)[0] if both else tr.items(good.id)[0]["generation_id"]
    trace = tr.trace(gid)
    console.print(f"provenance of generation {gid}:")
    for d in trace["datasets"]:
        console.print(f"  in {d['name']}@{d['version']} as {d['role']} ({d['split']} split)")
    jobs = tr.jobs()
    if jobs:
        for j in jobs[:3]:
            console.print(f"  job {j.id} {j.status} {j.base_model} -> {j.result_model or '-'}")
    else:
        console.print("  no fine-tuning job yet: set LEARNLOOP_FINETUNE_BASE_URL/_API_KEY and run "
                      f"`learnloop --project demo finetune start {good.name} --base-model gpt-4o-mini-2024-07-18`;"
                      " then `learnloop finetune trained-on MODEL` lists these generations")

    _dictionary(ll, console)


def _check_lines(path: Path) -> None:
    # The promise of the export: every line parses, even split by str.splitlines().
    for line in path.read_text(encoding="utf-8").splitlines():
        json.loads(line)


def _dictionary(ll: Any, console: Any) -> None:
    d = ll.dictionary
    for term in TERMS:
        try:
            d.get(term["word"])
        except NotFound:
            d.add(term)
    for phrase in ("¿cuál es la cédula del cliente?", "lo que debe", "retraso en el pago"):
        hits = d.lookup(phrase, k=1)
        h = hits[0] if hits else None
        console.print(f"dictionary: {phrase!r} -> " + (f"{h['table']}.{h['field']} ({h['match']}, score {h['score']:.2f})"
                                                     if h else "no match"))
