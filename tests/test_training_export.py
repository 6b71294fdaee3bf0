"""JSONL export: every line parses under any line splitter, formats follow their rules."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from learnloop.errors import InvalidInput
from learnloop.training.export import dumps_line, estimate_tokens, validate_chat

ODD = "sep\u2028par\u2029nel\u0085 nul\x00 bell\x07 emoji 🚀 rtl עברית zwj 👩‍💻 bom \ufeff"


@given(st.recursive(st.text() | st.integers() | st.booleans() | st.none(),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(), c, max_size=3), max_leaves=8))
def test_dumps_line_is_one_parseable_line_for_any_value(obj):
    line = dumps_line(obj)
    assert line.splitlines() == [line] or line == ""  # no splitter breaks it
    assert "\n" not in line and "\r" not in line
    assert json.loads(line) == obj
    line.encode("utf-8")  # lone surrogates are escaped, so this never raises


def test_dumps_line_escapes_what_line_splitters_break_on():
    line = dumps_line({"t": ODD})
    for ch in ("\u2028", "\u2029", "\u0085", "\x00"):
        assert ch not in line
    assert "🚀" in line and "עברית" in line  # readable unicode stays readable
    assert json.loads(line)["t"] == ODD


def test_validate_chat_rules():
    ok = [{"role": "user", "content": "hola"}, {"role": "assistant", "content": "hola"}]
    assert validate_chat(ok) == []
    assert "unknown role" in validate_chat([{"role": "bot", "content": "x"}, *ok])[0]
    assert "empty content" in validate_chat([{"role": "user", "content": " "}, ok[1]])[0]
    assert validate_chat([ok[0]]) == ["no assistant message to learn from"]
    assert validate_chat([*ok, {"role": "user", "content": "y"}]) == ["the last message is not the assistant's"]
    assert validate_chat(ok, max_tokens=5) == ["longer than 5 tokens"]
    assert estimate_tokens("hola mundo, ¿qué tal?") == 8  # hola mun·do , ¿ qué tal ?


@pytest.fixture(scope="module")
def datasets(client):
    a = client.log(kind="chat", prompt="Pregunta " + ODD.replace("\x00", ""), output_text="Respuesta " + ODD.replace("\x00", ""))
    client.feedback(a.id, thumbs=-1)
    b = client.log(kind="chat", prompt=a.prompt, output_text="Mejor respuesta \u2028 ok", parent_id=a.id)
    client.feedback(b.id, thumbs=1)
    c = client.log(kind="chat", prompt="¿Saldo?", output_text="1.000 COP",
                   messages=[{"role": "system", "content": "Sé breve."}, {"role": "user", "content": "¿Saldo?"}])
    client.feedback(c.id, thumbs=1)
    sft = client.training.create_dataset("exp", {})
    pref = client.training.create_dataset("exp-pref", {}, kind="preference")
    return sft, pref, (a, b, c)


def read_lines(path):
    raw = path.read_bytes().decode("utf-8")
    assert raw.endswith("\n")
    lines = raw.splitlines()  # splits on U+2028 etc. too: the strictest reader
    return [json.loads(line) for line in lines]


def test_chat_export_with_odd_unicode(client, datasets, tmp_path):
    sft, _, (a, b, c) = datasets
    out = tmp_path / "chat.jsonl"
    rep = client.training.export(sft.id, out, fmt="chat")
    recs = read_lines(out)
    assert len(recs) == rep["examples"] == 3
    assert recs[0]["messages"][1]["content"] == "Respuesta " + ODD.replace("\x00", "")
    assert recs[2]["messages"] == [{"role": "system", "content": "Sé breve."}, {"role": "user", "content": "¿Saldo?"},
                                   {"role": "assistant", "content": "1.000 COP"}]
    assert all(validate_chat(r["messages"]) == [] for r in recs)
    assert rep["total_tokens"] == sum(rep["per_example_tokens"]) > 0
    assert rep["tokens"] == "estimate" and rep["rejected"] == 0


def test_completion_and_preference_formats(client, datasets, tmp_path):
    sft, pref, (a, b, c) = datasets
    client.training.export(sft.id, tmp_path / "c.jsonl", fmt="completion")
    recs = read_lines(tmp_path / "c.jsonl")
    assert recs[1] == {"prompt": a.prompt, "completion": "Mejor respuesta \u2028 ok"}
    assert recs[2] == {"prompt": "system: Sé breve.\n\nuser: ¿Saldo?\n\nassistant:", "completion": "1.000 COP"}
    client.training.export(pref.id, tmp_path / "p.jsonl", fmt="preference")
    (p,) = read_lines(tmp_path / "p.jsonl")
    assert p == {"prompt": [{"role": "user", "content": a.prompt}],
                 "chosen": [{"role": "assistant", "content": b.output_text}],
                 "rejected": [{"role": "assistant", "content": a.output_text}]}
    client.training.export(pref.id, tmp_path / "o.jsonl", fmt="openai-preference")
    (o,) = read_lines(tmp_path / "o.jsonl")
    assert o["input"]["messages"] == p["prompt"] and o["preferred_output"] == p["chosen"]


def test_export_refusals_write_nothing(client, datasets, tmp_path):
    sft, pref, _ = datasets
    with pytest.raises(InvalidInput, match="needs a preference dataset"):
        client.training.export(sft.id, tmp_path / "x.jsonl", fmt="preference")
    with pytest.raises(InvalidInput, match="needs an sft dataset"):
        client.training.export(pref.id, tmp_path / "x.jsonl", fmt="chat")
    with pytest.raises(InvalidInput, match="no exportable examples"):
        client.training.export(sft.id, tmp_path / "x.jsonl", split="validation")
    with pytest.raises(InvalidInput, match="unknown format"):
        client.training.export(sft.id, tmp_path / "x.jsonl", fmt="csv")
    assert list(tmp_path.iterdir()) == []  # not even a temp file is left behind


def test_over_long_examples_are_reported_and_left_out(client, datasets, tmp_path):
    sft, _, _ = datasets
    rep = client.training.export(sft.id, tmp_path / "short.jsonl", max_tokens=30)
    assert rep["rejected"] >= 1 and rep["examples"] + rep["rejected"] == 3
    assert all(p["problems"] == ["longer than 30 tokens"] for p in rep["problems"])
    assert len(read_lines(tmp_path / "short.jsonl")) == rep["examples"]


def test_cli_dataset_create_and_export(client, datasets, cli_env, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "learnloop.cli.main", *args], env=cli_env,
                              capture_output=True, text=True, timeout=120)

    r = run("dataset", "create", "cli-ds", "--verdict", "POSITIVE", "--scrub-pii", "--json")
    assert r.returncode == 0, r.stderr
    ds = json.loads(r.stdout)
    assert ds["counts"]["examples"] == 2
    r = run("export", "cli-ds", str(tmp_path / "o.jsonl"), "--json")
    assert r.returncode == 0, r.stderr and json.loads(r.stdout)["examples"] == 2
    assert len(read_lines(tmp_path / "o.jsonl")) == 2
    r = run("dataset", "create", "nothing", "--model", "nope")
    assert r.returncode == 1 and r.stderr.strip() == "Error: the filter matched no generations; no dataset was created"
