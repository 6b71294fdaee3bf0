"""Dataset curation: filters, dedupe, PII, split, immutable versions, preference pairs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from learnloop.errors import InvalidInput, NotFound


@pytest.fixture(scope="module")
def ledger(client):
    """A small loans-assistant ledger; returns ids by name."""
    ids = {}

    def chat(name, prompt, answer, *, parent=None, model="gpt-4o-mini", links=None, created=None, messages=None):
        g = client.log(kind="chat", prompt=prompt, output_text=answer, model=model, parent_id=parent,
                       links=links or {}, created_at=created, messages=messages)
        ids[name] = g.id
        return g.id

    t0 = datetime(2025, 1, 10, tzinfo=UTC)
    chat("saldo", "¿Cuál es el saldo del préstamo 456?", "El saldo es 1.500.000 COP.", links={"loan": "456", "client": "123"}, created=t0)
    chat("mora", "¿Tiene cuotas en mora?", "No, todas las cuotas están al día.", links={"loan": "456"}, created=t0 + timedelta(days=1))
    chat("bad", "¿Cuándo vence la cuota 3?", "No sé.", created=t0 + timedelta(days=2))
    chat("fixed", "¿Cuándo vence la cuota 3?", "La cuota 3 vence el 2025-02-15.", parent=ids["bad"], created=t0 + timedelta(days=2, hours=1))
    chat("dup1", "Hola", "Hola, ¿en qué le ayudo?", created=t0 + timedelta(days=3))
    chat("dup2", "Hola", "Hola, ¿en qué le ayudo?", created=t0 + timedelta(days=3, hours=1))
    chat("pii", "Mi correo es ana.perez@rapicredit.co y mi cédula V-12345678",
         "Gracias, le escribiremos a ana.perez@rapicredit.co o al +58 412 555 1234.", created=t0 + timedelta(days=4))
    chat("odd", "línea\u2028separada\u2029y NEL\u0085 y emoji 🚀 y עברית",
         "respuesta con \u2028 y comillas \" y barra \\ y tab\t", created=t0 + timedelta(days=5))
    chat("other_model", "¿Y el interés?", "El interés es 2% mensual.", model="gpt-4o", created=t0 + timedelta(days=6))
    chat("no_output", "pregunta sin respuesta", None, created=t0 + timedelta(days=7))
    chat("convo", "y la segunda?", "La segunda cuota vence en marzo.", created=t0 + timedelta(days=8),
         messages=[{"role": "system", "content": "Eres el asistente de RAPICREDIT."},
                   {"role": "user", "content": "¿cuándo vence la primera cuota?"},
                   {"role": "assistant", "content": "En febrero."},
                   {"role": "user", "content": "y la segunda?"}])
    for name in ("saldo", "mora", "fixed", "dup1", "dup2", "pii", "odd", "other_model", "convo"):
        client.feedback(ids[name], thumbs=1)
    client.feedback(ids["saldo"], rating=5)
    client.feedback(ids["mora"], rating=4, tags=["CORRECT"])
    f = client.feedback(ids["bad"], thumbs=-1, tags=["WRONG_DATE"])
    client.mark_reviewed(f.id, notes="fixed", improved=True)
    client.feedback(ids["other_model"], tags=["OFF_TOPIC"], sentiment="NEUTRAL")
    # ranked siblings: three regenerations rated 5, 3, 1
    a = chat("rank_a", "Explique la tasa de interés", "Es el costo del dinero: 2% mensual sobre el saldo.", created=t0 + timedelta(days=9))
    b = chat("rank_b", "Explique la tasa de interés", "Es un porcentaje.", parent=a, created=t0 + timedelta(days=9, hours=1))
    c = chat("rank_c", "Explique la tasa de interés", "No aplica.", parent=b, created=t0 + timedelta(days=9, hours=2))
    client.feedback(a, rating=5)
    client.feedback(b, rating=3)
    client.feedback(c, rating=1)
    return ids


def member_ids(client, ds):
    return [it["generation_id"] for it in client.training.items(ds.id)]


def test_positive_filter_selects_exactly_the_positive_chats_and_dedupes(client, ledger):
    ds = client.training.create_dataset("good", {"verdict": "POSITIVE"})
    got = set(member_ids(client, ds))
    # dup2 has the same conversation as dup1: dropped; bad is NEGATIVE; no_output unrated.
    expected = {ledger[n] for n in ("saldo", "mora", "fixed", "dup1", "pii", "odd", "convo", "rank_a", "other_model")}
    assert got == expected, {n for n, i in ledger.items() if i in got ^ expected}
    assert ds.counts["duplicates"] == 1
    assert ds.counts["examples"] == len(expected)
    assert ds.version == 1 and ds.kind == "sft"
    assert ds.content_hash.startswith("sha256:")


def test_same_filter_same_data_same_version_and_hash(client, ledger):
    a = client.training.create_dataset("stable", {"verdict": ["POSITIVE"], "model": "gpt-4o-mini"})
    b = client.training.create_dataset("stable", {"model": "gpt-4o-mini", "verdict": "positive"})
    assert b.id == a.id and b.content_hash == a.content_hash and b.reused
    # New matching data -> a new version with a new hash; v1 is untouched.
    g = client.log(kind="chat", prompt="¿Plazo?", output_text="12 meses.", model="gpt-4o-mini")
    client.feedback(g.id, thumbs=1)
    c = client.training.create_dataset("stable", {"verdict": "POSITIVE", "model": "gpt-4o-mini"})
    assert c.version == 2 and c.content_hash != a.content_hash
    assert g.id in member_ids(client, c) and g.id not in member_ids(client, a)
    assert client.training.dataset("stable@1").id == a.id
    assert client.training.dataset("stable").id == c.id


def test_versions_are_immutable_in_the_database(client, ledger):
    ds = client.training.create_dataset("frozen", {"verdict": "POSITIVE"})
    with psycopg.connect(client.db.url) as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE learnloop.datasets SET name = 'x' WHERE id = %s", (ds.id,))
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE learnloop.dataset_items SET split = 'validation' WHERE dataset_id = %s", (ds.id,))


@pytest.mark.parametrize("flt,names", [
    ({"model": "gpt-4o"}, {"other_model"}),
    ({"links": {"loan": "456"}}, {"saldo", "mora"}),
    ({"links": {"loan": "456"}, "tags": ["CORRECT"]}, {"mora"}),
    ({"verdict": "NEGATIVE"}, {"bad", "rank_c"}),
    ({"reviewed_only": True}, {"bad"}),
    ({"min_rating": 4.5}, {"saldo", "rank_a"}),
    ({"max_rating": 3}, {"rank_b", "rank_c"}),
    ({"since": "2025-01-12T00:00:00Z", "until": "2025-01-13T00:00:00Z"}, {"bad", "fixed"}),
    ({"without_tags": ["OFF_TOPIC", "WRONG_DATE", "CORRECT"], "links": {"loan": "456"}}, {"saldo"}),
])
def test_filters(client, ledger, flt, names):
    ds = client.training.create_dataset("f-" + json.dumps(flt, sort_keys=True)[:150].replace("@", "_"), flt)
    assert set(member_ids(client, ds)) == {ledger[n] for n in names}


def test_examples_are_chat_messages_with_history_and_system(client, ledger):
    ds = client.training.create_dataset("sys", {"verdict": "POSITIVE", "links": {"loan": "456"}},
                                        options={"system": "Eres el asistente de RAPICREDIT."})
    ex = {it["generation_id"]: it["example"] for it in client.training.items(ds.id)}
    assert ex[ledger["saldo"]]["messages"] == [
        {"role": "system", "content": "Eres el asistente de RAPICREDIT."},
        {"role": "user", "content": "¿Cuál es el saldo del préstamo 456?"},
        {"role": "assistant", "content": "El saldo es 1.500.000 COP."},
    ]
    conv = client.training.create_dataset("convo", {"verdict": "POSITIVE", "since": "2025-01-18T00:00:00Z",
                                                   "until": "2025-01-19T00:00:00Z"})
    msgs = client.training.items(conv.id)[0]["example"]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    assert msgs[-1]["content"] == "La segunda cuota vence en marzo."


def test_pii_scrubbing_replaces_and_counts(client, ledger):
    ds = client.training.create_dataset("scrubbed", {"verdict": "POSITIVE"}, options={"scrub_pii": True})
    ex = {it["generation_id"]: it["example"] for it in client.training.items(ds.id)}
    text = json.dumps(ex[ledger["pii"]], ensure_ascii=False)
    assert "ana.perez" not in text and "12345678" not in text and "555" not in text
    assert ex[ledger["pii"]]["messages"][0]["content"] == "Mi correo es [EMAIL] y mi cédula [ID]"
    assert ds.counts["pii"] == {"email": 2, "id": 1, "phone": 1}
    # The amount and the date elsewhere are not mistaken for phones.
    assert "1.500.000" in json.dumps(ex[ledger["saldo"]], ensure_ascii=False)
    assert "2025-02-15" in json.dumps(ex[ledger["fixed"]], ensure_ascii=False)


def test_split_is_seeded_and_complete(client, ledger):
    a = client.training.create_dataset("split-a", {}, options={"validation": 0.5, "seed": 7})
    b = client.training.create_dataset("split-b", {}, options={"validation": 0.5, "seed": 7})
    c = client.training.create_dataset("split-c", {}, options={"validation": 0.5, "seed": 8})
    sa = [(i["generation_id"], i["split"]) for i in client.training.items(a.id)]
    sb = [(i["generation_id"], i["split"]) for i in client.training.items(b.id)]
    sc = [(i["generation_id"], i["split"]) for i in client.training.items(c.id)]
    assert sa == sb
    assert sa != sc  # with ~15 examples, two seeds giving the same split is a 2^-15 event
    assert a.counts["train"] + a.counts["validation"] == a.counts["examples"]
    assert a.counts["validation"] == sum(1 for _, s in sa if s == "validation")
    assert len(client.training.items(a.id, split="validation")) == a.counts["validation"]


def test_preference_pairs_from_corrections_and_rankings(client, ledger):
    ds = client.training.create_dataset("prefs", {}, kind="preference")
    pairs = {(it["generation_id"], it["rejected_id"]): it["example"] for it in client.training.items(ds.id)}
    L = ledger
    assert (L["fixed"], L["bad"]) in pairs
    assert pairs[(L["fixed"], L["bad"])]["reason"] == "correction"
    assert pairs[(L["fixed"], L["bad"])]["chosen"] == "La cuota 3 vence el 2025-02-15."
    for hi, lo in (("rank_a", "rank_b"), ("rank_a", "rank_c"), ("rank_b", "rank_c")):
        assert (L[hi], L[lo]) in pairs and pairs[(L[hi], L[lo])]["reason"] == "ranking"
    assert pairs[(L["rank_a"], L["rank_c"])]["prompt"] == [{"role": "user", "content": "Explique la tasa de interés"}]
    assert ds.counts["pairs_correction"] == 1 and ds.counts["pairs_ranking"] == 3
    assert len(pairs) == 4


def test_bad_input_is_specific_and_writes_nothing(client, ledger):
    before = len(client.training.datasets())
    with pytest.raises(InvalidInput, match="matched no generations"):
        client.training.create_dataset("empty", {"model": "no-such-model"})
    with pytest.raises(InvalidInput, match="unknown verdict"):
        client.training.create_dataset("x", {"verdict": "GREAT"})
    with pytest.raises(InvalidInput, match="unknown field"):
        client.training.create_dataset("x", {"colour": "red"})
    with pytest.raises(InvalidInput, match="both required and excluded"):
        client.training.create_dataset("x", {"tags": ["A"], "without_tags": ["A"]})
    with pytest.raises(InvalidInput, match="preference"):
        client.training.create_dataset("x", {"verdict": "POSITIVE"}, kind="preference")
    with pytest.raises(InvalidInput, match="no preference pairs"):
        client.training.create_dataset("x", {"model": "gpt-4o"}, kind="preference")
    with pytest.raises(NotFound):
        client.training.create_dataset("x", {"project": "nope"})
    with pytest.raises(NotFound):
        client.training.dataset("never-made")
    assert len(client.training.datasets()) == before


def test_dataset_creation_emits_an_event(client, ledger):
    ds = client.training.create_dataset("evented", {"verdict": "NEGATIVE"})
    with client.db.connection() as conn:
        ev = conn.execute("SELECT event_type, payload FROM learnloop.events WHERE entity_type = 'dataset'"
                          " AND entity_id = %s", (str(ds.id),)).fetchall()
    assert [e["event_type"] for e in ev] == ["dataset.created"]
    assert ev[0]["payload"]["content_hash"] == ds.content_hash
