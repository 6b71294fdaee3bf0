"""Semantic dictionary: add/update, duplicates, exact -> synonym -> semantic lookup, improvements."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from learnloop.embeddings import get_provider
from learnloop.errors import Conflict, InvalidInput, NotFound

TERMS = [
    {"word": "cédula", "definition": "Número del documento de identidad del cliente.", "category": "identificacion",
     "table_name": "clientes", "field_name": "cedula", "synonyms": ["documento", "DNI", "número de identificación"],
     "examples": ["¿cuál es la cédula de Ana?"]},
    {"word": "nombre", "definition": "Nombres y apellidos del cliente.", "category": "identificacion",
     "table_name": "clientes", "field_name": "nombres", "synonyms": ["nombres", "cómo se llama"]},
    {"word": "saldo", "definition": "Monto que el cliente todavía debe del préstamo.", "category": "prestamos",
     "table_name": "prestamos", "field_name": "saldo_pendiente", "synonyms": ["lo que debe", "deuda pendiente"]},
    {"word": "cuota", "definition": "Pago periódico programado de un préstamo, con fecha de vencimiento.",
     "category": "pagos", "table_name": "cuotas", "field_name": "monto", "synonyms": ["mensualidad"]},
    {"word": "mora", "definition": "Retraso en el pago de una cuota vencida y no pagada.", "category": "pagos",
     "table_name": "cuotas", "field_name": "dias_mora", "synonyms": ["atraso"]},
]


@pytest.fixture(scope="module")
def embedder():
    return get_provider("local")


@pytest.fixture(scope="module")
def dic(client, embedder):
    d = client.dictionary.with_embedder(embedder)
    for t in TERMS:
        d.add(t)
    return d


def test_exact_lookup_ignores_case_and_accents(dic):
    for phrase in ("cédula", "CEDULA", "Cedula "):
        (hit,) = dic.lookup(phrase)[:1]
        assert (hit["table"], hit["field"], hit["score"], hit["match"]) == ("clientes", "cedula", 1.0, "exact")


def test_word_inside_a_sentence_is_found_exactly(dic):
    hits = dic.lookup("¿Cuál es el saldo del préstamo 456?")
    assert hits[0]["field"] == "saldo_pendiente" and hits[0]["match"] == "exact"


def test_synonym_lookup(dic):
    hits = dic.lookup("su número de identificación")
    assert hits[0]["field"] == "cedula" and hits[0]["match"] == "synonym" and hits[0]["score"] == 0.95
    assert dic.lookup("mensualidad")[0]["field"] == "monto"


def test_semantic_lookup_ranks_the_right_field_first(dic):
    hits = dic.lookup("retraso en el pago")
    assert hits[0]["match"] == "semantic"
    assert hits[0]["field"] == "dias_mora"
    assert hits == sorted(hits, key=lambda h: -h["score"])
    assert 0 < hits[-1]["score"] <= hits[0]["score"] <= 1


def test_semantic_scores_are_cosine_similarities(dic, embedder):
    import numpy as np

    from learnloop.dictionary.terms import embed_text

    hits = dic.lookup("retraso en el pago", k=5, min_score=-1)
    q = embedder.embed(["retraso en el pago"])[0]
    by_word = {t["word"]: t for t in TERMS}
    for h in hits:
        t = by_word[h["word"]]
        v = embedder.embed([embed_text({**t, "synonyms": t.get("synonyms", []), "examples": t.get("examples", [])})])[0]
        assert h["score"] == pytest.approx(float(np.dot(q, v)), abs=1e-3)


def test_duplicate_word_is_a_conflict_and_writes_nothing(dic, client):
    n = len(dic.terms())
    with pytest.raises(Conflict, match="already has the word"):
        dic.add({"word": "CÉDULA", "table_name": "x", "field_name": "y"})
    assert len(dic.terms()) == n
    with client.db.connection() as conn:
        vectors = conn.execute("SELECT count(*) AS n FROM learnloop.embeddings WHERE owner_type = 'term'").fetchone()
    assert vectors["n"] == len(TERMS)


def test_bad_input(dic):
    with pytest.raises(InvalidInput):
        dic.add({"word": ""})
    with pytest.raises(InvalidInput):
        dic.add({"word": "x", "synonyms": "not a list"})
    with pytest.raises(InvalidInput, match="NUL"):
        dic.add({"word": "a\x00b"})
    with pytest.raises(InvalidInput, match="unknown field"):
        dic.update("saldo", colour="red")
    with pytest.raises(NotFound):
        dic.update("nunca", definition="x")
    with pytest.raises(InvalidInput, match="empty"):
        dic.lookup("   ")


def test_inactive_terms_are_not_found(dic):
    dic.add({"word": "garante", "table_name": "garantes", "field_name": "id", "synonyms": ["fiador"]})
    assert dic.lookup("fiador")[0]["word"] == "garante"
    dic.deactivate("garante")
    assert all(h["word"] != "garante" for h in dic.lookup("fiador", min_score=-1))


def test_improvement_links_negative_rating_to_the_change(client, dic):
    g = client.log(kind="chat", prompt="¿Cuál es el teléfono del cliente?", output_text="No entiendo 'teléfono'.")
    fb = client.feedback(g.id, thumbs=-1, comment="no sabe qué es teléfono")
    assert any(r.id == fb.id for r in client.review_queue())
    term = dic.add({"word": "teléfono", "table_name": "clientes", "field_name": "telefono",
                    "synonyms": ["celular", "móvil"]}, because_of=fb.id, note="added missing word", by="admin")
    dic.update("saldo", synonyms=["lo que debe", "deuda pendiente", "cuánto debe"], because_of=fb.id, by="admin")
    imps = dic.improvements(feedback_id=fb.id)
    assert [(i["target_type"], i["action"]) for i in imps] == [("term", "created"), ("term", "updated")]
    assert imps[0]["target_id"] == term["id"]
    assert imps[1]["before"]["synonyms"] == ["lo que debe", "deuda pendiente"]
    assert "cuánto debe" in imps[1]["after"]["synonyms"]
    done = client.feedback_for(g.id)[0]
    assert done.processed and done.improved and done.processed_by == "admin"
    assert all(r.id != fb.id for r in client.review_queue())
    assert [h["action"] for h in dic.history("saldo")] == ["updated"]
    assert dic.lookup("cuánto debe")[0]["field"] == "saldo_pendiente"
    with pytest.raises(NotFound):
        dic.add({"word": "plazo"}, because_of="01900000-0000-7000-8000-000000000000")
    with pytest.raises(NotFound):
        dic.get("plazo")  # nothing half-written


def test_cli_dict_add_and_lookup(client, dic, cli_env):
    env = {**cli_env, "HF_HUB_OFFLINE": "1"}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "learnloop.cli.main", *args], env=env,
                              capture_output=True, text=True, timeout=300)

    r = run("dict", "add", "interés", "--table", "prestamos", "--field", "tasa_interes",
            "--synonym", "tasa", "--definition", "Porcentaje mensual cobrado sobre el saldo.")
    assert r.returncode == 0, r.stderr
    r = run("dict", "lookup", "la tasa", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["field"] == "tasa_interes"
    r = run("dict", "add", "Interes", "--table", "x", "--field", "y")
    assert r.returncode == 1 and "already has the word" in r.stderr
