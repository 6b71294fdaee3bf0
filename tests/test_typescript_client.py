"""The TypeScript client (clients/typescript): its types are generated from the server's
current OpenAPI schema (a stale copy fails here), and its own tests (node --test) pass
against a live ``learnloop serve``: search, documents, feedback, review queue, events,
tenants over HTTP and the WebSocket resume."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from learnloop.api.schema import schema
from tests.fix_server import TS_CLIENT, node_ready, run_node_tests

REGENERATE = "make ts-generate"


def test_committed_schema_is_the_servers() -> None:
    committed = json.loads((TS_CLIENT / "openapi.json").read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(schema())), f"clients/typescript/openapi.json is stale: run {REGENERATE}"


def test_generated_types_match_the_schema(tmp_path: Any) -> None:
    node_ready(TS_CLIENT)
    out = tmp_path / "schema.ts"
    p = subprocess.run(["npx", "--no-install", "openapi-typescript", "openapi.json", "--default-non-nullable", "false",
                        "-o", str(out)], cwd=TS_CLIENT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert out.read_text() == (TS_CLIENT / "src" / "schema.ts").read_text(), \
        f"clients/typescript/src/schema.ts is stale: run {REGENERATE}"


def test_typescript_client_against_a_live_server(live_server: dict[str, Any]) -> None:
    node_ready(TS_CLIENT)
    env = {**os.environ, "LEARNLOOP_URL": live_server["url"], "LEARNLOOP_INSTALLATION_KEY": live_server["installation_key"]}
    run_node_tests(TS_CLIENT, env, at_least=8)
