"""The CLI as a user runs it: real subprocesses, real database, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import DATA


def run(env, *args, ok=True):
    p = subprocess.run([sys.executable, "-m", "learnloop.cli.main", *args], env=env, capture_output=True, text=True, timeout=120)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def test_log_feedback_show_tree_and_stats(cli_env):
    out = run(cli_env, "log", "--kind", "image", "--prompt", "turbine", "--config", '{"style_preset": "CYBERPUNK_DARK"}',
              "--context", '{"efficiency": 0.05}', "--link", "loan=456", "--json").stdout
    g = json.loads(out)
    child = json.loads(run(cli_env, "log", "--kind", "image", "--parent", g["id"], "--config", '{"style_preset": "CYBERPUNK_DARK"}',
                           "--context", '{"efficiency": 0.05}', "--json").stdout)
    assert child["iteration"] == 2 and child["root_id"] == g["id"]
    run(cli_env, "feedback", g["id"], "--sentiment", "negative", "--tag", "TOO_DARK", "--instruction", "more light")
    run(cli_env, "feedback", child["id"], "--rating", "5")
    tree = json.loads(run(cli_env, "show", child["id"], "--tree", "--json").stdout)
    assert tree["id"] == g["id"] and tree["verdict"] == "NEGATIVE"
    assert tree["children"][0]["verdict"] == "POSITIVE"
    assert "#2" in run(cli_env, "show", child["id"], "--tree").stdout
    shown = json.loads(run(cli_env, "show", g["id"], "--json").stdout)
    assert shown["feedback"][0]["tags"] == ["TOO_DARK"]
    fr = json.loads(run(cli_env, "stats", "failure-rate", "--by", "style_preset", "--json").stdout)
    assert [{k: v for k, v in r.items() if not k.startswith("failure_") or k == "failure_rate"} for r in fr] == [
        {"value": "CYBERPUNK_DARK", "attempts": 2, "rated": 2, "negative": 1, "positive": 1, "failure_rate": 0.5}]
    assert fr[0]["failure_low"] < 0.5 < fr[0]["failure_high"]
    gold = json.loads(run(cli_env, "stats", "golden", "--where", "efficiency<0.08", "--json").stdout)
    assert [r["id"] for r in gold] == [child["id"]]
    tags = json.loads(run(cli_env, "stats", "tags", "--json").stdout)
    assert tags[0]["tag"] == "TOO_DARK"
    corr = json.loads(run(cli_env, "stats", "corrections", "--json").stdout)
    assert (corr["negative"], corr["regenerated"], corr["fixed"]) == (1, 1, 1)
    found = json.loads(run(cli_env, "find", "--link", "loan=456", "--json").stdout)
    assert [r["id"] for r in found] == [g["id"]]
    queue = json.loads(run(cli_env, "review", "list", "--json").stdout)
    assert len(queue) == 1
    run(cli_env, "review", "done", queue[0]["id"], "--notes", "fixed prompt", "--improved")
    assert json.loads(run(cli_env, "review", "list", "--json").stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["log", "--config", "{not json"], "--config is not valid JSON"),
        (["log", "--context", "[1,2]"], "context must be a JSON object"),
        (["feedback", "00000000-0000-0000-0000-000000000000", "--rating", "9"], "rating must be from 1 to 5"),
        (["feedback", "00000000-0000-0000-0000-000000000000", "--sentiment", "meh"], "unknown sentiment"),
        (["feedback", "00000000-0000-0000-0000-000000000000", "--rating", "5"], "does not exist"),
        (["show", "nope"], "not a valid id"),
        (["log", "--parent", "00000000-0000-0000-0000-000000000001"], "parent generation"),
    ],
)
def test_errors_are_one_line_without_traceback(cli_env, args, message):
    p = run(cli_env, *args, ok=False)
    assert p.returncode == 1
    assert message in p.stderr
    assert "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_import_jsonl_and_oasst(cli_env, tmp_path):
    f = tmp_path / "gens.jsonl"
    f.write_text('{"kind": "chat", "external_id": "a", "prompt": "hi"}\n\n{"kind": "chat", "external_id": "b"}\n')
    assert json.loads(run(cli_env, "import", str(f), "--json").stdout) == {"generations": 2, "already_present": 0}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "chat", "external_id": "c"}\n{broken\n')
    p = run(cli_env, "import", str(bad), ok=False)
    assert "line 2 is not valid JSON" in p.stderr and "Traceback" not in p.stderr
    out = json.loads(run(cli_env, "--project", "oasst", "import", str(DATA / "oasst" / "en_100_message.jsonl"), "--format", "oasst", "--json").stdout)
    assert out["trees"] == 100 and out["generations"] == 687


def test_migrate_list_shows_every_applied_migration(cli_env):
    rows = json.loads(run(cli_env, "migrate", "--list", "--json").stdout)
    names = {(r["set"], r["name"]) for r in rows}
    assert ("core", "m003_event_outbox") in names and ("ledger", "m002_feedback") in names
    assert all(r["applied_at"] for r in rows)
    assert "nothing to apply" in run(cli_env, "migrate").stdout
