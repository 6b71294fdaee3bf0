"""Exporting a dataset version as JSONL: chat, prompt/completion, preference pairs.

Formats (one JSON object per line):

* ``chat``: OpenAI chat fine-tuning, ``{"messages": [{"role", "content"}, ...]}``;
* ``completion``: ``{"prompt": "...", "completion": "..."}`` (the conversation before the
  answer flattened as ``role: content`` lines, then the answer);
* ``preference``: DPO-style (TRL's conversational format),
  ``{"prompt": [messages], "chosen": [assistant msg], "rejected": [assistant msg]}``;
* ``openai-preference``: OpenAI preference fine-tuning, ``{"input": {"messages": [...]},
  "preferred_output": [...], "non_preferred_output": [...]}``.

Line safety: ``json.dumps`` keeps U+2028/U+2029/U+0085 and lone surrogates raw with
``ensure_ascii=False``; line-splitting readers (Python's ``str.splitlines``, JavaScript)
break on the first three and UTF-8 cannot encode the last, so ``dumps_line`` escapes them.
NUL and other control characters are escaped by ``json.dumps`` itself. Every line parses.

A file is written whole or not at all (temp file in the same directory, then rename), and
a dataset with no rows for the asked split writes nothing and says so.

Token counts are an *estimate* (no tokenizer download at run time): each word counts
ceil(len/4) tokens, each punctuation mark one, plus OpenAI's per-message overhead of 3
and 3 for the reply primer. The report says ``"tokens": "estimate"``.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..store.database import Conn
from ..store.tenancy import Scope
from . import datasets as _ds

FORMATS = ("chat", "completion", "preference", "openai-preference")
_UNSAFE = re.compile("[\u0085\u2028\u2029\ud800-\udfff]")
_WORDS = re.compile(r"\w+|[^\w\s]", re.UNICODE)
DEFAULT_MAX_TOKENS = 65_536


def dumps_line(obj: Any) -> str:
    """One JSONL line (no trailing newline) that survives any line splitter."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def estimate_tokens(text: str) -> int:
    return sum(max(1, math.ceil(len(w) / 4)) if w[0].isalnum() or w[0] == "_" else 1 for w in _WORDS.findall(text))


def message_tokens(messages: list[dict[str, str]]) -> int:
    return sum(3 + estimate_tokens(m["content"]) + 1 for m in messages) + 3


def validate_chat(messages: Any, max_tokens: int = DEFAULT_MAX_TOKENS) -> list[str]:
    """Problems with one chat example by OpenAI's rules; empty list = valid."""
    problems: list[str] = []
    if not isinstance(messages, list) or not messages:
        return ["messages must be a non-empty list"]
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            problems.append(f"message {i} is not an object")
            continue
        if m.get("role") not in ("system", "user", "assistant"):
            problems.append(f"message {i} has unknown role {m.get('role')!r}")
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            problems.append(f"message {i} has empty content")
        extra = set(m) - {"role", "content", "name", "weight"}
        if extra:
            problems.append(f"message {i} has unrecognised keys {sorted(extra)}")
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if "assistant" not in roles:
        problems.append("no assistant message to learn from")
    elif roles[-1] != "assistant":
        problems.append("the last message is not the assistant's")
    if not problems and message_tokens(messages) > max_tokens:
        problems.append(f"longer than {max_tokens} tokens")
    return problems


def _completion(messages: list[dict[str, str]]) -> dict[str, str]:
    before, answer = messages[:-1], messages[-1]["content"]
    if len(before) == 1 and before[0]["role"] == "user":
        prompt = before[0]["content"]
    else:
        prompt = "\n\n".join(f"{m['role']}: {m['content']}" for m in before) + "\n\nassistant:"
    return {"prompt": prompt, "completion": answer}


def record(fmt: str, kind: str, example: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The output object for one stored example, plus the messages whose tokens count."""
    if fmt in ("chat", "completion"):
        if kind != "sft":
            raise InvalidInput(f"format {fmt!r} needs an sft dataset; this one holds preference pairs", field="format")
        msgs = example["messages"]
        return ({"messages": msgs} if fmt == "chat" else _completion(msgs)), msgs
    if kind != "preference":
        raise InvalidInput(f"format {fmt!r} needs a preference dataset (kind='preference')", field="format")
    chosen = [{"role": "assistant", "content": example["chosen"]}]
    rejected = [{"role": "assistant", "content": example["rejected"]}]
    if fmt == "preference":
        out: dict[str, Any] = {"prompt": example["prompt"], "chosen": chosen, "rejected": rejected}
    else:
        out = {"input": {"messages": example["prompt"]}, "preferred_output": chosen, "non_preferred_output": rejected}
    return out, [*example["prompt"], *chosen]


def export(conn: Conn, scope: Scope, dataset_ref: Any, path: str | os.PathLike[str], *,
           fmt: str = "chat", split: str | None = None, max_tokens: int = DEFAULT_MAX_TOKENS) -> dict[str, Any]:
    """Write one dataset version to ``path``; return the report (counts, tokens, problems)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}", field="format")
    ds = _ds.get(conn, scope, dataset_ref)
    target = Path(path)
    if target.is_dir():
        raise InvalidInput(f"{target} is a directory; give a file name", field="path")
    if not target.parent.exists():
        raise InvalidInput(f"directory {target.parent} does not exist", field="path")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    n = 0
    tokens: list[int] = []
    problems: list[dict[str, Any]] = []
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh, conn.transaction():
            for item in _ds.items(conn, scope, ds.id, split):
                obj, msgs = record(fmt, ds.kind, item["example"])
                issues = validate_chat(msgs, max_tokens) if fmt in ("chat", "openai-preference") else []
                if issues:
                    problems.append({"position": item["position"], "generation_id": str(item["generation_id"]),
                                     "problems": issues})
                    continue
                tokens.append(message_tokens(msgs))
                fh.write(dumps_line(obj))
                fh.write("\n")
                n += 1
        if n == 0:
            what = f"the {split} split of " if split else ""
            raise InvalidInput(
                f"{what}dataset {ds.name}@{ds.version} has no exportable examples; no file was written",
                field="split" if split else "dataset", problems=problems[:20],
            )
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {
        "dataset": f"{ds.name}@{ds.version}",
        "dataset_id": str(ds.id),
        "content_hash": ds.content_hash,
        "format": fmt,
        "split": split or "all",
        "path": str(target),
        "examples": n,
        "rejected": len(problems),
        "problems": problems[:20],
        "tokens": "estimate",
        "total_tokens": sum(tokens),
        "max_tokens_per_example": max(tokens),
        "mean_tokens_per_example": round(sum(tokens) / n, 1),
        "per_example_tokens": tokens if n <= 10_000 else None,
    }
