"""The OpenAssistant import, checked against an independent walk of the same file."""

from __future__ import annotations

import json

from learnloop.ledger.importers import import_oasst
from tests.conftest import DATA

FILE = DATA / "oasst" / "en_100_message.jsonl"


def walk_expected():
    replies, thumbs_up, thumbs_down, flags, ranked = [], 0, 0, 0, 0
    chains = []

    def visit(msg):
        nonlocal thumbs_up, thumbs_down, flags, ranked
        kids = [r for r in msg.get("replies", []) if r["role"] == "assistant" and not r["deleted"]]
        if msg["role"] == "prompter" and kids:
            chains.append([k["message_id"] for k in kids])
            n_ranked = sum(1 for k in kids if k["rank"] is not None)
            for k in kids:
                replies.append(k)
                e = k["emojis"] or {}
                thumbs_up += e.get("+1", 0)
                thumbs_down += e.get("-1", 0)
                flags += e.get("red_flag", 0)
                ranked += k["rank"] is not None and n_ranked > 1
        for r in msg.get("replies", []):
            visit(r)

    for line in FILE.open():
        visit(json.loads(line))
    return replies, thumbs_up + thumbs_down + flags + ranked, chains


def test_import_matches_the_file_and_is_idempotent(fresh_client):
    ll = fresh_client
    replies, n_feedback, chains = walk_expected()
    first = import_oasst(ll, FILE)
    assert first == {"trees": 100, "generations": len(replies), "already_present": 0, "feedback": n_feedback}
    again = import_oasst(ll, FILE)
    assert again["generations"] == 0 and again["feedback"] == 0 and again["already_present"] == len(replies)
    # Sibling replies are regenerations: a chain 1, 2, 3... under the first reply.
    longest = max(chains, key=len)
    path = ll.path(longest[-1])
    assert [str(g.id) for g in path] == longest
    assert [g.iteration for g in path] == list(range(1, len(longest) + 1))
    # Votes became feedback: a reply's thumbs match its emojis.
    sample = next(r for r in replies if (r["emojis"] or {}).get("+1", 0) >= 2)
    fb = ll.feedback_for(sample["message_id"])
    assert sum(1 for f in fb if f.thumbs == 1) == sample["emojis"]["+1"]
