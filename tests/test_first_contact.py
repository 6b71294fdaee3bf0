"""First contact (issue 14, finding 8): what a new user copies from README.md,
docs/quickstart.md and docs/api.md runs as written; `make demo` says where its data is;
`learnloop log` prints only the id; import errors name the line and the allowed fields and
a re-import says it wrote nothing; tables keep ids whole; the tree's `<` is explained;
the server loads the embedding model before its first request.

Code blocks run as written, in a fresh LEARNLOOP_HOME, from the checkout, with
``.venv/bin`` on PATH. Two deviations, both stated: a `make` line other than `make demo`
is checked with `make -n` (running `make test` inside the tests would recurse), and
docs/api.md's `localhost:8000` is a free port of a server this test starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import learnloop
from tests.conftest import ROOT
from tests.hostile import free_port

BIN = Path(sys.executable).parent


def blocks(page: Path) -> list[tuple[str, str]]:
    """(language, code) of every fenced block with a language."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w+)\n(.*?)```", page.read_text(), re.S)]


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "LEARNLOOP_HOME": str(home), "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("LEARNLOOP_DATABASE_URL", None)
    env.pop("LEARNLOOP_TENANT", None)
    env.pop("LEARNLOOP_PROJECT", None)
    return env


def _bash(code: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _make_lines(code: str) -> list[str]:
    return [ln.split("#")[0].strip() for ln in code.splitlines() if ln.strip().startswith("make ")]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    h = tmp_path_factory.mktemp("first-contact")
    yield h
    subprocess.run([str(BIN / "learnloop"), "db", "stop"], env=_env(h), capture_output=True, timeout=120)


@pytest.mark.parametrize("page", ["README.md", "docs/quickstart.md"])
def test_every_code_block_runs_as_written(page: str, home: Path) -> None:
    found = blocks(ROOT / page)
    assert found, page
    for lang, code in found:
        if lang in ("bash", "sh") and _make_lines(code):
            for line in _make_lines(code):
                if line == "make demo":
                    continue  # run for real by test_make_demo_says_where_its_data_is
                r = subprocess.run([*line.split(), "-n"], cwd=ROOT, capture_output=True, text=True, timeout=60)
                assert r.returncode == 0, (page, line, r.stderr)
        elif lang in ("bash", "sh"):
            r = _bash(code, _env(home))
            assert r.returncode == 0, (page, code[:200], r.stdout[-2000:], r.stderr[-2000:])
            assert "Traceback" not in r.stderr
        elif lang == "python":
            r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(home), capture_output=True,
                               text=True, timeout=600)
            assert r.returncode == 0, (page, r.stderr[-3000:])
        elif lang == "json":
            for line in code.splitlines():
                if line.strip():
                    json.loads(line)
        else:
            pytest.fail(f"{page}: a {lang!r} block this test does not know how to run")


def test_readme_shell_block_prints_what_it_promises(home: Path) -> None:
    env = _env(home)
    _bash("learnloop db start", env)
    try:
        gid = _bash('learnloop log --kind chat --prompt "x"', env).stdout
        assert re.fullmatch(r"[0-9a-f-]{36}\n", gid), gid  # only the id: ID=$(learnloop log ...) works
        shown = json.loads(_bash(f"learnloop show {gid.strip()} --json", env).stdout)
        assert shown["id"] == gid.strip()
        full = json.loads(_bash('learnloop log --kind chat --prompt "y" --json', env).stdout)
        assert full["iteration"] == 1 and full["root_id"] == full["id"]
        tree = _bash(f"COLUMNS=100 learnloop show {gid.strip()} --tree", env).stdout
        assert "'<' marks the generation you asked for" in tree and gid.strip() in tree
        assert "'<' marks" in _bash("learnloop show --help", env).stdout
    finally:
        _bash("learnloop db stop", env)


def test_import_errors_name_the_line_and_the_allowed_fields(home: Path, tmp_path: Path) -> None:
    env = _env(home)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "chat", "prompt": "ok"}\n\n{"kind": "chat", "prompt_text": "typo"}\n')
    r = _bash(f"learnloop import {bad}", env)
    assert r.returncode == 1
    assert "line 3: unknown field 'prompt_text'; allowed fields: kind, id," in r.stderr, r.stderr
    assert "nothing was imported" in r.stderr and "Traceback" not in r.stderr
    bad.write_text('{"kind": "chat"}\n{"kind": "chat", "tokens_in": -5}\n')
    r = _bash(f"learnloop import {bad}", env)
    assert r.returncode == 1 and "line 2:" in r.stderr and "tokens_in" in r.stderr, r.stderr
    bad.write_text('{"kind": "chat"}\n[1, 2]\n')
    assert "line 2 is not a JSON object" in _bash(f"learnloop import {bad}", env).stderr


def test_reimport_reports_what_it_wrote(home: Path) -> None:
    env = {**_env(home), "LEARNLOOP_PROJECT": "reimport"}
    first = _bash("learnloop import docs/examples/history.jsonl", env)
    assert first.stdout.strip() == "3 generations written, 0 already present (skipped)", first
    again = _bash("learnloop import docs/examples/history.jsonl", env)
    assert again.stdout.strip() == "nothing written: 0 generations written, 3 already present (skipped)", again
    assert json.loads(_bash("learnloop import docs/examples/history.jsonl --json", env).stdout) == {
        "generations": 0, "already_present": 3}


def test_tables_keep_ids_whole_in_a_narrow_terminal(client: learnloop.Client, cli_env: dict[str, str]) -> None:
    ll = client.scoped(project="narrow")
    ids = [str(ll.log(kind="chat", prompt="a long prompt " * 20, links={"loan": "456"}).id) for _ in range(3)]
    for cols in ("100", "80"):
        out = subprocess.run([str(BIN / "learnloop"), "--project", "narrow", "find", "--link", "loan=456"],
                             env={**cli_env, "COLUMNS": cols}, capture_output=True, text=True, timeout=120).stdout
        for i in ids:
            assert i in out, (cols, out)  # on one line, copyable


def test_make_demo_says_where_its_data_is(tmp_path: Path) -> None:
    demo_home = tmp_path / "demo-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEARNLOOP_")}
    r = subprocess.run(["make", "demo", f"DEMO_HOME={demo_home}"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    tail = r.stdout[-1500:]
    assert f"export LEARNLOOP_HOME={demo_home}" in tail, tail
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip().startswith((".venv/bin/learnloop", "export"))]
    review = next(ln for ln in lines if "review list" in ln)
    out = _bash(f"{lines[0]}\n{review}", env)  # the printed commands, as printed
    assert out.returncode == 0 and re.search(r"(?<!\d)[1-9]\d* to review", out.stdout), out
    _bash(f"{lines[0]}\n.venv/bin/learnloop db stop", env)


def test_the_server_loads_the_embedding_model_at_start(db_url: str, tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import learnloop
        from fastapi.testclient import TestClient
        from learnloop.api import create_app
        from learnloop.config import get_settings
        from learnloop.embeddings import local
        ll = learnloop.connect({db_url!r})
        assert not local._models, "loaded before start"
        with TestClient(create_app(get_settings(home={str(tmp_path)!r}), client=ll, archive=False)):
            print("LOADED" if local._models else "NOT LOADED")
        ll.close()
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.stdout.strip() == "LOADED", r.stderr[-2000:]


# -- docs/api.md's curl examples, against a live server ------------------------------------

@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`learnloop serve` on a fresh home, as docs/api.md starts it (port aside)."""
    h = tmp_path_factory.mktemp("api-docs")
    port = free_port()
    env = {**_env(h), "LEARNLOOP_ARCHIVE_INTERVAL": "0"}
    yield {"home": h, "port": port, "env": env}
    subprocess.run([str(BIN / "learnloop"), "db", "stop"], env=env, capture_output=True, timeout=120)


def test_api_doc_curl_examples_run_against_a_live_server(api_server: dict[str, Any]) -> None:
    port, env = api_server["port"], api_server["env"]
    script = "\n".join(code for lang, code in blocks(ROOT / "docs/api.md") if lang in ("sh", "bash"))
    assert script.count("curl") >= 5
    out_file = api_server["home"] / "train.jsonl"
    script = (script.replace("localhost:8000", f"localhost:{port}").replace("--port 8000", f"--port {port}")
              .replace("-o train.jsonl", f"-o {out_file}"))
    # -f here, not in the docs: a 4xx/5xx answer must fail the script, not pass unnoticed.
    script = script.replace("curl -s ", "curl -sSf ")
    # Output to files, not pipes: the docs' `learnloop serve &` keeps its copies open.
    log_out, log_err = api_server["home"] / "script.out", api_server["home"] / "script.err"
    with log_out.open("w") as fo, log_err.open("w") as fe:
        p = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, stdout=fo, stderr=fe,
                             text=True, start_new_session=True)
        try:
            p.wait(timeout=900)
        finally:
            # The docs' `learnloop serve &` lives on in the script's process group: end it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    out, err = log_out.read_text(), log_err.read_text()
    assert p.returncode == 0, (out[-2000:], err[-3000:])
    lines = [json.loads(ln) for ln in out_file.read_text().splitlines()]
    assert lines and lines[0]["messages"][-1]["content"] == "35% of net monthly income."
