"""``learnloop search`` and ``learnloop stats search`` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "learnloop.cli.main", *args], env=env, text=True,
                          capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def indexed(client: Any) -> None:
    kb = client.knowledge
    kb.upsert_entity("goal", "g1", "Build a REST API in Python", user_ref="ana", metadata={"status": "completed"})
    kb.upsert_entity("goal", "g2", "Build a web API with Django", user_ref="ana", metadata={"status": "abandoned"})
    kb.upsert_entity("goal", "g3", "Bake sourdough bread", user_ref="ana", metadata={"status": "completed"})
    kb.upsert_entity("code", "c1", "def add(a, b): return a + b", metadata={"language": "python", "validation_score": 0.9})
    g = client.log(kind="chat", prompt="How do I reset my password?", output_text="Use 'Forgot password'.")
    client.feedback(g.id, rating=5)
    kb.embed_generations()


def test_search_with_type_where_and_k(indexed: None, cli_env: dict[str, str]) -> None:
    r = run(cli_env, "search", "python web api", "--type", "goal", "--where", "status=completed", "--k", "5", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [h["entity_id"] for h in out["results"]] == ["g1", "g3"]
    assert out["results"][0]["similarity"] > out["results"][1]["similarity"]
    table = run(cli_env, "search", "python web api", "--type", "goal", "--where", "status=completed")
    assert table.returncode == 0 and "Build a REST API in Python" in table.stdout and "Django" not in table.stdout


def test_numeric_where_hybrid_and_few_shot(indexed: None, cli_env: dict[str, str]) -> None:
    r = run(cli_env, "search", "add numbers", "--type", "code", "--where", "validation_score>0.8",
            "--where", "language=python", "--hybrid", "--json")
    assert r.returncode == 0, r.stderr
    assert [h["entity_id"] for h in json.loads(r.stdout)["results"]] == ["c1"]
    r = run(cli_env, "search", "forgot my password", "--successes", "--min-rating", "4", "--few-shot")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Example 1\nUser: How do I reset my password?")


def test_bad_filter_is_one_line_error(indexed: None, cli_env: dict[str, str]) -> None:
    r = run(cli_env, "search", "x", "--filter", '{"status": {"like": "c%"}}')
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "Error: unknown filter operator 'like'; use one of eq, ne, in, lt, lte, gt, gte, exists, and, or"]
    r = run(cli_env, "search", "x", "--where", "nonsense")
    assert r.returncode == 1 and "cannot read the condition 'nonsense'" in r.stderr
    assert "Traceback" not in r.stderr


def test_stats_search_counts_searches_of_other_processes(indexed: None, cli_env: dict[str, str]) -> None:
    before = json.loads(run(cli_env, "stats", "search", "--json").stdout)["searches"]
    assert run(cli_env, "search", "bread", "--k", "1").returncode == 0
    after = run(cli_env, "stats", "search", "--json")
    assert after.returncode == 0, after.stderr
    data = json.loads(after.stdout)
    assert data["searches"] == before + 1
    assert data["search_ms_p50_at_most"] is not None and data["query_embeddings"] >= 1
    text = run(cli_env, "stats", "search")
    assert "searches (last 30 days)" in text.stdout and "hit rate" in text.stdout


def test_modes_by_document_and_bad_options_from_the_command_line(indexed: None, client: Any,
                                                                  cli_env: dict[str, str], tmp_path: Any) -> None:
    (tmp_path / "fees.md").write_text("# Fees\n\nA late payment costs a fee of 5%.\n\nFees are waived once a year.")
    assert client.knowledge.ingest(tmp_path / "fees.md").status == "processed"
    r = run(cli_env, "search", "late payment fee", "--mode", "fulltext", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["mode"] == "fulltext" and out["results"] and all(h["score"] > 0 for h in out["results"])
    r = run(cli_env, "search", "late payment fee", "--by-document", "--k", "1", "--mode", "hybrid",
            "--text-weight", "0.5", "--path", "exact", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["path"] == "hybrid/exact" and out["trust"]["text_weight"] == 0.5
    assert len(out["results"]) == 1 and out["results"][0]["file_name"] == "fees.md" and out["results"][0]["chunks"]
    bad = run(cli_env, "search", "x", "--mode", "fulltext", "--path", "hnsw")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "Error: path chooses how the dense side is searched; full-text search has none"]
    bad = run(cli_env, "search", "x", "--mode", "hybrid", "--text-weight", "lots")
    assert bad.returncode != 0 and "--text-weight" in bad.stderr and "Traceback" not in bad.stderr
