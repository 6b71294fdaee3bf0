"""Importing history in bulk: generic JSONL, and OpenAssistant message trees.

OpenAssistant (oasst) trees map onto the ledger like this:

* every assistant reply is a ``chat`` generation; its prompt is the prompter message it
  answers and ``messages`` is the conversation up to and including that prompt;
* sibling assistant replies to one prompt are regenerations of each other: the first is
  the original, each later one names the previous as its parent (iteration 2, 3, ...);
* emoji votes become feedback (``+1`` thumbs up, ``-1`` thumbs down, ``red_flag`` a
  NEGATIVE row tagged RED_FLAG); a reply's ``rank`` among its ranked siblings becomes a
  1-5 rating (best 5, worst 1);
* ids are the oasst message ids, also kept as ``external_id``, so re-importing is a no-op.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from ..errors import InvalidInput
from .models import GenerationIn

MAX_LINE = 50_000_000
ALLOWED = ", ".join(GenerationIn.model_fields)


def import_jsonl(client: Any, stream: IO[str]) -> dict[str, int]:
    """One generation object per line (the fields of ``GenerationIn``, docs/quickstart.md
    "Importing history"); blank lines skipped. All lines are checked first: an error names
    its line and, for a field, the fields allowed; then everything is written in one
    transaction (or nothing). Rows whose ``external_id`` is stored already are skipped, so
    a re-import writes nothing and says so: ``{"generations": written, "already_present":
    skipped}``."""
    from .bulk import bulk_log, validate

    rows: list[dict[str, Any]] = []
    for n, line in enumerate(stream, 1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE:
            raise InvalidInput(f"line {n} is longer than {MAX_LINE} characters; nothing was imported")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"line {n} is not valid JSON ({exc.msg}); nothing was imported") from None
        if not isinstance(obj, dict):
            raise InvalidInput(f"line {n} is not a JSON object (one generation per line); nothing was imported")
        unknown = sorted(set(obj) - set(GenerationIn.model_fields))
        if unknown:
            raise InvalidInput(f"line {n}: unknown field {unknown[0]!r}; allowed fields: {ALLOWED}; "
                               "nothing was imported", field=unknown[0])
        try:
            validate(obj)
        except InvalidInput as exc:
            raise InvalidInput(f"line {n}: {exc.message}; nothing was imported", field=exc.field) from None
        rows.append(obj)
    scope = client.scope
    with client.db.transaction() as conn:
        existing = _existing_external_ids(conn, scope, [r["external_id"] for r in rows if r.get("external_id")])
        skipped = sum(1 for r in rows if r.get("external_id") in existing)
        bulk_log(conn, scope, rows, skip_existing=True)
    return {"generations": len(rows) - skipped, "already_present": skipped}


def _existing_external_ids(conn: Any, scope: Any, external_ids: list[str]) -> set[str]:
    if not external_ids:
        return set()
    return {
        r["external_id"]
        for r in conn.execute(
            "SELECT external_id FROM learnloop.generations WHERE tenant_id = %s AND project_id = %s"
            " AND external_id = ANY(%s)",
            (scope.tenant_id, scope.project_id, external_ids),
        ).fetchall()
    }


def oasst_rows(trees: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Turn oasst trees into (generation rows, feedback rows), parents before children."""
    gens: list[dict[str, Any]] = []
    fbs: list[dict[str, Any]] = []

    def walk_prompt(prompt: dict[str, Any], history: list[dict[str, str]], tree_id: str, turn: int) -> None:
        replies = [r for r in prompt.get("replies", []) if r.get("role") == "assistant" and not r.get("deleted")]
        ranked = [r for r in replies if r.get("rank") is not None]
        convo = [*history, {"role": "user", "content": prompt["text"]}]
        previous: str | None = None
        for reply in replies:
            mid = str(UUID(reply["message_id"]))
            synthetic = bool(reply.get("synthetic"))
            gens.append({
                "id": mid,
                "external_id": mid,
                "kind": "chat",
                "session_ref": tree_id,
                "parent_id": previous,
                "prompt": prompt["text"],
                "messages": convo,
                "output_text": reply["text"],
                "model": reply.get("model_name") or ("human" if not synthetic else None),
                "provider": "openassistant",
                "config": {
                    "author": "synthetic" if synthetic else "human",
                    "model_name": reply.get("model_name"),
                    "turn": turn,
                    "lang": reply.get("lang"),
                },
                "context": {
                    "turn": turn,
                    "history_messages": len(history),
                    "prompt_chars": len(prompt["text"]),
                    "siblings": len(replies),
                    "review_count": reply.get("review_count", 0),
                },
            })
            previous = mid
            emojis = reply.get("emojis") or {}
            for _ in range(int(emojis.get("+1", 0))):
                fbs.append({"generation_id": mid, "thumbs": 1, "source": "user"})
            for _ in range(int(emojis.get("-1", 0))):
                fbs.append({"generation_id": mid, "thumbs": -1, "source": "user"})
            for _ in range(int(emojis.get("red_flag", 0))):
                fbs.append({"generation_id": mid, "sentiment": "NEGATIVE", "tags": ["RED_FLAG"], "source": "user"})
            if reply.get("rank") is not None and len(ranked) > 1:
                worst = max(r["rank"] for r in ranked)
                rating = 5 - round(4 * reply["rank"] / worst) if worst else 5
                fbs.append({
                    "generation_id": mid, "rating": rating, "source": "user",
                    "comment": f"ranked {reply['rank'] + 1} of {len(ranked)} replies",
                })
            for follow in reply.get("replies", []):
                if follow.get("role") == "prompter" and not follow.get("deleted"):
                    walk_prompt(follow, [*convo, {"role": "assistant", "content": reply["text"]}], tree_id, turn + 1)

    for root in trees:
        if root.get("role") != "prompter":
            continue
        walk_prompt(root, [], str(root["message_id"]), 1)
    return gens, fbs


def read_oasst(path: Path) -> list[dict[str, Any]]:
    trees = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{path.name} line {n} is not valid JSON ({exc.msg})") from None
            # en_100_tree.jsonl wraps the root message in {"prompt": ...}
            trees.append(obj.get("prompt", obj) if isinstance(obj, dict) else {})
    return trees


def import_oasst(client: Any, path: Path) -> dict[str, int]:
    """Import oasst trees; feedback is added only for newly imported replies."""
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    gens, fbs = oasst_rows(read_oasst(path))
    from . import feedback as _feedback
    from . import generations as _gen

    scope = client.scope
    # One transaction: generations and their feedback land together or not at all.
    with client.db.transaction() as conn:
        existing = _existing_external_ids(conn, scope, [g["external_id"] for g in gens])
        ids = _gen.bulk_log(conn, scope, gens, skip_existing=True)
        new_fb = [f for f in fbs if f["generation_id"] not in existing]
        n_fb = _feedback.bulk_add(conn, scope, new_fb) if new_fb else 0
    return {
        "trees": len({g["session_ref"] for g in gens}),
        "generations": len(ids) - len(existing),
        "already_present": len(existing),
        "feedback": n_fb,
    }
