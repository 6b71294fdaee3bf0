"""examples/phone_agent (seed 002, TypeScript): its node tests against a live
``learnloop serve``: accounts provisioned over HTTP with the installation key, answers
from each account's own knowledge base, per-account metrics, the search.slow alert.
The latencies it measures are printed (``-s``), not asserted."""

from __future__ import annotations

import json
import os
from typing import Any

from tests.fix_server import ROOT, TS_CLIENT, node_ready, run_node_tests

EXAMPLE = ROOT / "examples" / "phone_agent"


def test_phone_agent_flows(live_server: dict[str, Any], tmp_path: Any) -> None:
    node_ready(TS_CLIENT)  # the example compiles against the client's built types
    node_ready(EXAMPLE)
    report = tmp_path / "latency.json"
    env = {**os.environ, "LEARNLOOP_URL": live_server["url"],
           "LEARNLOOP_INSTALLATION_KEY": live_server["installation_key"], "PHONE_AGENT_REPORT": str(report)}
    run_node_tests(EXAMPLE, env, at_least=4)
    figures = json.loads(report.read_text())
    print("phone_agent latency (ms):", json.dumps(figures))
    assert figures["turn"]["n"] == 3
