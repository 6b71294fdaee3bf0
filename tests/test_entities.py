"""App entities (seed 003) and ledger generations as vectors, on the real model and DB."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import learnloop
from learnloop.errors import InvalidInput, NotFound


@pytest.fixture(scope="module")
def kn(client):
    return client.knowledge


def _rows(client, sql, *params):
    with client.db.connection() as conn:
        return conn.execute(sql, params).fetchall()


def _vector_row(client, owner_id):
    rows = _rows(client, "SELECT * FROM learnloop.embeddings WHERE owner_id = %s", owner_id)
    assert len(rows) == 1
    return rows[0]


def test_upsert_copies_filter_columns_onto_the_vector(client, kn):
    a = kn.upsert_entity("goal", "g-1", "Finish the Python testing course", user_ref="ana",
                         metadata={"status": "active", "language": "python"})
    assert a["created"] is True
    v = _vector_row(client, a["id"])
    assert (v["owner_type"], v["entity_type"], v["user_ref"]) == ("entity", "goal", "ana")
    assert v["metadata"] == {"status": "active", "language": "python"}
    assert v["content"] == "Finish the Python testing course"
    b = kn.upsert_entity("goal", "g-1", "Finish the Python testing course", user_ref="ana",
                         metadata={"status": "completed", "language": "python"})
    assert b["id"] == a["id"] and b["created"] is False
    assert _vector_row(client, a["id"])["metadata"]["status"] == "completed"
    assert kn.entity("goal", "g-1")["metadata"]["status"] == "completed"
    events = _rows(client, "SELECT event_type, payload FROM learnloop.events WHERE entity_id = %s ORDER BY id", str(a["id"]))
    assert [(e["event_type"], e["payload"]["created"]) for e in events] == [("entity.upserted", True), ("entity.upserted", False)]


def test_bulk_upsert_is_all_or_nothing(client, kn):
    items = [{"entity_type": "task", "entity_id": f"t{i}", "text": f"task {i}", "user_ref": "bo",
              "metadata": {"n": i}} for i in range(20)]
    out = kn.upsert_entities(items)
    assert [o["entity_id"] for o in out] == [f"t{i}" for i in range(20)]
    assert len(_rows(client, "SELECT 1 FROM learnloop.embeddings WHERE entity_type = 'task' AND tenant_id = %s",
                     client.scope.tenant_id)) == 20
    bad = [{"entity_type": "task", "entity_id": "new-1", "text": "fine"},
           {"entity_type": "task", "entity_id": "new-2", "text": "broken\x00text"}]
    with pytest.raises(InvalidInput, match=r"NUL"):
        kn.upsert_entities(bad)
    assert _rows(client, "SELECT 1 FROM learnloop.entities WHERE entity_id LIKE 'new-%%'") == []
    with pytest.raises(InvalidInput, match="appears twice"):
        kn.upsert_entities([{"entity_type": "x", "entity_id": "1", "text": "a"}] * 2)


@pytest.mark.parametrize(("item", "message"), [
    ({"entity_type": "", "entity_id": "1", "text": "t"}, "entity_type"),
    ({"entity_type": "goal", "entity_id": "1", "text": "   "}, "goal/1 has no text to embed .its text is only whitespace"),
    ({"entity_type": "goal", "entity_id": "2", "text": ""}, "goal/2 has no text to embed .its text is empty"),
    ({"entity_type": "goal", "entity_id": "1", "text": "t", "metadata": [1, 2]}, "JSON object"),
    ({"entity_type": "goal", "entity_id": "1", "text": "t", "metadata": {"x": float("nan")}}, "not valid JSON"),
    ({"entity_type": "goal", "entity_id": "1", "text": "t", "colour": "red"}, "unknown entity field"),
])
def test_bad_entities_are_refused(kn, item, message):
    with pytest.raises(InvalidInput, match=message):
        kn.upsert_entities([item])


def test_delete_removes_entity_vectors_and_emits(client, kn):
    e = kn.upsert_entity("code", "c-9", "def add(a, b): return a + b", metadata={"validation_score": 0.9})
    kn.delete_entity("code", "c-9")
    assert _rows(client, "SELECT 1 FROM learnloop.embeddings WHERE owner_id = %s", e["id"]) == []
    with pytest.raises(NotFound):
        kn.entity("code", "c-9")
    assert _rows(client, "SELECT 1 FROM learnloop.events WHERE event_type = 'entity.deleted' AND entity_id = %s",
                 str(e["id"]))
    with pytest.raises(NotFound, match="no entity code/c-9"):
        kn.delete_entity("code", "c-9")


def test_entities_are_scoped_by_tenant_and_project(client, kn):
    kn.upsert_entity("goal", "shared-id", "tenant one goal")
    other = client.scoped(tenant="entities-other").knowledge
    other.upsert_entity("goal", "shared-id", "tenant two goal")
    assert kn.entity("goal", "shared-id")["text"] == "tenant one goal"
    assert other.entity("goal", "shared-id")["text"] == "tenant two goal"
    other.delete_entity("goal", "shared-id")
    assert kn.entity("goal", "shared-id")["text"] == "tenant one goal"


def test_generations_are_embedded_in_bulk_with_feedback_metadata(client):
    ll = client.scoped(project="gens")
    kn = ll.knowledge
    good = ll.log(kind="chat", prompt="How do I reset my password?", output_text="Use the reset link on the login page.",
                  user_ref="u1")
    bad = ll.log(kind="chat", prompt="What is the interest rate?", output_text="I don't know.")
    silent = ll.log(kind="code", prompt="Write a sum function", output_text="def s(a, b): return a + b")
    ll.log(kind="image", prompt="   ")  # nothing to embed
    # log() never embeds: the write path stays fast.
    assert _rows(client, "SELECT 1 FROM learnloop.embeddings WHERE owner_type = 'generation' AND project_id = %s",
                 ll.scope.project_id) == []
    ll.feedback(good.id, rating=5, tags=["HELPFUL"])
    ll.feedback(good.id, rating=4)
    ll.feedback(bad.id, rating=1, tags=["WRONG", "VAGUE"])
    assert kn.pending_generations() == 3
    out = kn.embed_generations(batch_size=2)
    assert out["embedded"] == 3 and out["batches"] == 2
    assert kn.pending_generations() == 0 and kn.embed_generations()["embedded"] == 0
    g = _vector_row(client, good.id)
    assert g["content"] == "How do I reset my password?\n\nUse the reset link on the login page."
    assert (g["entity_type"], g["user_ref"]) == ("chat", "u1")
    assert g["metadata"]["verdict"] == "POSITIVE" and g["metadata"]["avg_rating"] == 4.5
    assert g["metadata"]["tags"] == ["HELPFUL"] and g["metadata"]["feedback_count"] == 2
    b = _vector_row(client, bad.id)["metadata"]
    assert b["verdict"] == "NEGATIVE" and b["avg_rating"] == 1 and b["tags"] == ["VAGUE", "WRONG"]
    s = _vector_row(client, silent.id)["metadata"]
    assert s["verdict"] is None and s["feedback_count"] == 0 and s["tags"] == []
    # Feedback after embedding: the next run refreshes the metadata, it does not re-embed.
    ll.feedback(silent.id, rating=5, tags=["CLEAN"])
    again = kn.embed_generations()
    assert again["embedded"] == 0 and again["metadata_refreshed"] == 1
    s = _vector_row(client, silent.id)["metadata"]
    assert s["verdict"] == "POSITIVE" and s["avg_rating"] == 5 and s["tags"] == ["CLEAN"]
    assert kn.embed_generations()["metadata_refreshed"] == 0
    events = _rows(client, "SELECT count(*) AS n FROM learnloop.events WHERE event_type = 'generation.embedded'"
                   " AND project_id = %s", ll.scope.project_id)
    assert events[0]["n"] == 3


def test_embed_only_outputs_and_bad_options(client):
    ll = client.scoped(project="gens-output")
    g = ll.log(kind="chat", prompt="Q?", output_text="Only the answer is embedded.")
    assert ll.knowledge.embed_generations(what="output")["embedded"] == 1
    assert _vector_row(client, g.id)["content"] == "Only the answer is embedded."
    with pytest.raises(InvalidInput, match="what must be one of"):
        ll.knowledge.embed_generations(what="everything")


def test_cli_entities_and_embed_generations(cli_env):
    cmd = [sys.executable, "-m", "learnloop.cli.main", "--project", "cli-entities"]
    up = subprocess.run([*cmd, "entity", "upsert", "goal", "g1", "Learn SQL joins", "--user", "ana",
                         "--metadata", '{"status": "completed"}', "--json"], env=cli_env, capture_output=True,
                        text=True, timeout=300)
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["created"] is True
    badmeta = subprocess.run([*cmd, "entity", "upsert", "goal", "g2", "x", "--metadata", "{oops"], env=cli_env,
                             capture_output=True, text=True, timeout=120)
    assert badmeta.returncode == 1 and "--metadata is not valid JSON" in badmeta.stderr
    assert "Traceback" not in badmeta.stderr
    gone = subprocess.run([*cmd, "entity", "delete", "goal", "nope"], env=cli_env, capture_output=True, text=True,
                          timeout=120)
    assert gone.returncode == 1 and "no entity goal/nope" in gone.stderr
    emb = subprocess.run([*cmd, "embed-generations", "--json"], env=cli_env, capture_output=True, text=True, timeout=300)
    assert emb.returncode == 0, emb.stderr
    assert json.loads(emb.stdout)["embedded"] == 0


def test_cli_reembed_needs_from_model_to_drop(cli_env):
    out = subprocess.run([sys.executable, "-m", "learnloop.cli.main", "reembed", "--model", "x", "--drop-old"],
                         env=cli_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "--drop-old needs --from-model" in out.stderr


def test_entity_ids_may_be_ints_and_users_are_copied(kn):
    out = kn.upsert_entity("course", 42, "Intro to statistics", user_ref="teacher-1")
    assert kn.entity("course", "42")["id"] == out["id"]
    with pytest.raises(learnloop.InvalidInput, match="user_ref"):
        kn.upsert_entity("course", "43", "x", user_ref=["a"])


def test_empty_entities_in_a_batch_are_all_named_and_nothing_is_written(client, kn):
    items = [{"entity_type": "note", "entity_id": "ok-1", "text": "a real note"},
             {"entity_type": "note", "entity_id": "empty-1", "text": ""},
             {"entity_type": "note", "entity_id": "ok-2", "text": "another real note"},
             {"entity_type": "note", "entity_id": "blank-1", "text": " \n\t"}]
    with pytest.raises(InvalidInput) as err:
        kn.upsert_entities(items)
    msg = str(err.value)
    assert msg.startswith("2 of 4 entities cannot be indexed, nothing was written")
    assert "note/empty-1 has no text to embed (its text is empty)" in msg
    assert "note/blank-1 has no text to embed (its text is only whitespace)" in msg
    assert [(i["index"], i["field"]) for i in err.value.details["items"]] == [(1, "text"), (3, "text")]
    assert _rows(client, "SELECT 1 FROM learnloop.entities WHERE entity_type = 'note'") == []
    # the valid ones alone go in
    assert [o["entity_id"] for o in kn.upsert_entities([items[0], items[2]])] == ["ok-1", "ok-2"]
