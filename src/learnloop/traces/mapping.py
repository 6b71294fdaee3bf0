"""From a span's attributes to learnloop's words: span kind, generation, documents, evaluations.

Two conventions are read, attribute by attribute as docs/otel.md lists them:

* OpenTelemetry GenAI (``gen_ai.*``), current and older forms: ``gen_ai.input.messages`` /
  ``gen_ai.output.messages`` (JSON parts), the older ``gen_ai.*.message`` / ``gen_ai.choice``
  and ``gen_ai.content.prompt`` / ``gen_ai.content.completion`` span events, and the
  OpenLLMetry ``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*`` attributes;
* OpenInference (``openinference.span.kind``, ``llm.*`` with flattened
  ``llm.input_messages.N.message.*``, ``retrieval.documents.N.document.*``).

Everything here is pure: a span in, dictionaries out. Nothing a span says can make the
mapping fail; a value of the wrong type is left out, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

from .otlp import SpanRecord

GENERATION_KINDS = frozenset({"llm", "embedding"})

_GENAI_OPS = {
    "chat": "llm", "text_completion": "llm", "generate_content": "llm", "embeddings": "embedding",
    "execute_tool": "tool", "invoke_agent": "agent", "create_agent": "agent", "retrieval": "retriever",
    "retrieve": "retriever", "invoke_workflow": "chain",
}
_OI_KINDS = {
    "LLM": "llm", "EMBEDDING": "embedding", "CHAIN": "chain", "TOOL": "tool", "RETRIEVER": "retriever",
    "RERANKER": "reranker", "AGENT": "agent", "GUARDRAIL": "guardrail", "EVALUATOR": "evaluator",
    "PROMPT": "chain",
}
# learnloop's generation kind for each GenAI operation
_LEDGER_KIND = {"chat": "chat", "generate_content": "chat", "text_completion": "completion",
                "embeddings": "embedding"}

PARENT_GENERATION = "learnloop.parent_generation"
LINK_PREFIX = "learnloop.link."
EVALUATION_EVENT = "gen_ai.evaluation.result"

_POSITIVE = frozenset({"pass", "passed", "correct", "relevant", "good", "yes", "true", "positive", "factual",
                       "helpful", "safe", "grounded", "accurate", "success"})
_NEGATIVE = frozenset({"fail", "failed", "incorrect", "irrelevant", "bad", "no", "false", "negative",
                       "hallucinated", "hallucination", "unhelpful", "unsafe", "toxic", "ungrounded",
                       "inaccurate", "failure"})


def span_kind(attrs: dict[str, Any]) -> str:
    oi = attrs.get("openinference.span.kind")
    if isinstance(oi, str) and oi.upper() in _OI_KINDS:
        return _OI_KINDS[oi.upper()]
    op = attrs.get("gen_ai.operation.name")
    if isinstance(op, str) and op in _GENAI_OPS:
        return _GENAI_OPS[op]
    return "span"


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int) and 0 <= v <= 2_000_000_000:
        return v
    if isinstance(v, float) and v.is_integer() and 0 <= v <= 2_000_000_000:
        return int(v)
    return None


def _first(attrs: dict[str, Any], *keys: str, conv: Any = _str) -> Any:
    for k in keys:
        v = conv(attrs.get(k))
        if v is not None:
            return v
    return None


def _json(v: Any) -> Any:
    """A JSON-string attribute decoded (instrumentations send structures as strings)."""
    if isinstance(v, str):
        try:
            return orjson.loads(v)
        except orjson.JSONDecodeError:
            return None
    return v


def _json_or_text(v: Any) -> Any:
    """A structure if the string holds JSON array/object, else the string itself."""
    if isinstance(v, str) and v[:1] in ("[", "{"):
        got = _json(v)
        return v if got is None else got
    return v


def _indexed(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``prefix.0.a.b = x`` ... as [{"a.b": x}, ...] in index order (OpenInference flattening)."""
    items: dict[int, dict[str, Any]] = {}
    n = len(prefix)
    for k, v in attrs.items():
        if not k.startswith(prefix):
            continue
        idx, _, rest = k[n:].partition(".")
        if idx.isdigit() and rest:
            items.setdefault(int(idx), {})[rest] = v
    return [items[i] for i in sorted(items)]


# -- messages -----------------------------------------------------------------------------

def _parts_text(parts: Any) -> tuple[str | None, list[Any]]:
    """(text of the text parts, the other parts) of a GenAI message's ``parts``."""
    if isinstance(parts, str):
        return parts, []
    if not isinstance(parts, list):
        return None, []
    texts, other = [], []
    for p in parts:
        if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("content"), str):
            texts.append(p["content"])
        elif p is not None:
            other.append(p)
    return ("".join(texts) if texts else None), other


def _genai_message(m: Any) -> dict[str, Any] | None:
    if not isinstance(m, dict):
        return None
    out: dict[str, Any] = {"role": m.get("role") if isinstance(m.get("role"), str) else "user"}
    if "parts" in m:
        text, other = _parts_text(m.get("parts"))
        out["content"] = text
        calls = [p for p in other if isinstance(p, dict) and p.get("type") == "tool_call"]
        if calls:
            out["tool_calls"] = calls
        rest = [p for p in other if p not in calls]
        if rest:
            out["parts"] = rest
    else:  # the older shape: {"role", "content"} (content may itself be parts)
        c = m.get("content")
        if isinstance(c, list):
            text, other = _parts_text(c)
            out["content"] = text
            if other:
                out["parts"] = other
        else:
            out["content"] = c if isinstance(c, str) else None
        if isinstance(m.get("tool_calls"), list):
            out["tool_calls"] = m["tool_calls"]
    if isinstance(m.get("finish_reason"), str):
        out["finish_reason"] = m["finish_reason"]
    return out


def _genai_messages(v: Any) -> list[dict[str, Any]] | None:
    v = _json(v)
    if isinstance(v, dict):
        v = [v]
    if not isinstance(v, list):
        return None
    msgs = [m for m in (_genai_message(x) for x in v) if m is not None]
    return msgs or None


_EVENT_ROLES = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}


def _event_messages(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    """Input and output messages from the older GenAI span events."""
    ins: list[dict[str, Any]] = []
    outs: list[dict[str, Any]] = []
    for ev in events:
        name, a = ev["name"], ev["attributes"]
        if name in _EVENT_ROLES:
            body = _json_or_text(a.get("content"))
            msg = _genai_message({"role": a.get("role") or _EVENT_ROLES[name], "content": body,
                                  "tool_calls": _json(a.get("tool_calls"))})
            if msg:
                ins.append(msg)
        elif name == "gen_ai.choice":
            m = _json_or_text(a.get("message"))
            msg = _genai_message(m if isinstance(m, dict) else {"role": "assistant", "content": m})
            if msg:
                msg.setdefault("role", "assistant")
                if isinstance(a.get("finish_reason"), str):
                    msg["finish_reason"] = a["finish_reason"]
                outs.append(msg)
        elif name == "gen_ai.content.prompt":
            p = _json_or_text(a.get("gen_ai.prompt"))
            got = _genai_messages(p) if isinstance(p, list | dict) else (
                [{"role": "user", "content": p}] if isinstance(p, str) else None)
            ins.extend(got or [])
        elif name == "gen_ai.content.completion":
            c = _json_or_text(a.get("gen_ai.completion"))
            got = _genai_messages(c) if isinstance(c, list | dict) else (
                [{"role": "assistant", "content": c}] if isinstance(c, str) else None)
            outs.extend(got or [])
    return ins or None, outs or None


def _flat_messages(attrs: dict[str, Any], prefix: str, field: str) -> list[dict[str, Any]] | None:
    """Flattened messages: OpenInference ``llm.input_messages.N.message.role`` (field
    ``message.``) and OpenLLMetry ``gen_ai.prompt.N.role`` (field ``""``)."""
    out = []
    for item in _indexed(attrs, prefix):
        role = item.get(field + "role")
        content = item.get(field + "content")
        if not isinstance(content, str):
            texts = [v for k, v in sorted(item.items())
                     if k.startswith(field + "contents.") and k.endswith("message_content.text") and isinstance(v, str)]
            content = "".join(texts) if texts else None
        msg: dict[str, Any] = {"role": role if isinstance(role, str) else "user", "content": content}
        calls = _indexed(item, field + "tool_calls.")
        if calls:
            msg["tool_calls"] = [{"type": "tool_call", "id": c.get("tool_call.id"),
                                  "name": c.get("tool_call.function.name"),
                                  "arguments": c.get("tool_call.function.arguments")} for c in calls]
        out.append(msg)
    return out or None


def _text_of(msgs: list[dict[str, Any]] | None) -> str | None:
    if not msgs:
        return None
    for m in msgs:
        if isinstance(m.get("content"), str):
            return str(m["content"])
    return None


# -- the generation -----------------------------------------------------------------------

def _config(attrs: dict[str, Any]) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    params = _json(attrs.get("llm.invocation_parameters"))
    if isinstance(params, dict):
        cfg.update(params)
    for k, v in attrs.items():
        if k.startswith("gen_ai.request.") and v is not None:
            cfg[k[len("gen_ai.request."):]] = v
        elif k.startswith("gen_ai.openai.request."):
            cfg["openai." + k[len("gen_ai.openai.request."):]] = v
    if isinstance(attrs.get("gen_ai.output.type"), str):
        cfg["output_type"] = attrs["gen_ai.output.type"]
    tpl = attrs.get("llm.prompt_template.template")
    if isinstance(tpl, str):
        cfg["prompt_template"] = tpl
        vars_ = _json(attrs.get("llm.prompt_template.variables"))
        if isinstance(vars_, dict):
            cfg["prompt_variables"] = vars_
    return cfg


def _context(span: SpanRecord) -> dict[str, Any]:
    ctx = dict(span.resource)
    meta = _json(span.attributes.get("metadata"))
    if isinstance(meta, dict):
        ctx["metadata"] = meta
    if span.scope:
        ctx["otel.scope.name"] = span.scope
    return ctx


def _error(span: SpanRecord) -> dict[str, Any] | None:
    etype = _str(span.attributes.get("error.type"))
    msg = span.status_message
    for ev in span.events:
        if ev["name"] == "exception":
            etype = etype or _str(ev["attributes"].get("exception.type"))
            msg = msg or _str(ev["attributes"].get("exception.message"))
    if span.status != "error" and etype is None:
        return None
    return {"type": etype or "error", "message": msg}


def _links(attrs: dict[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in attrs.items():
        if k.startswith(LINK_PREFIX) and len(k) > len(LINK_PREFIX):
            if isinstance(v, str) and v and len(v) <= 500 and not isinstance(v, bool):
                out[k[len(LINK_PREFIX):]] = v
            elif isinstance(v, int) and not isinstance(v, bool):
                out[k[len(LINK_PREFIX):]] = str(v)
    return out


def parent_generation(attrs: dict[str, Any]) -> UUID | None:
    v = attrs.get(PARENT_GENERATION)
    if isinstance(v, str):
        try:
            return UUID(v)
        except ValueError:
            return None
    return None


def generation(span: SpanRecord, kind: str) -> dict[str, Any]:
    """The GenerationIn fields a model-call span maps to (see docs/otel.md)."""
    a = span.attributes
    op = _str(a.get("gen_ai.operation.name"))
    ins = (_genai_messages(a.get("gen_ai.input.messages"))
           or _flat_messages(a, "llm.input_messages.", "message.")
           or _flat_messages(a, "gen_ai.prompt.", ""))
    outs = (_genai_messages(a.get("gen_ai.output.messages"))
            or _flat_messages(a, "llm.output_messages.", "message.")
            or _flat_messages(a, "gen_ai.completion.", ""))
    if ins is None or outs is None:
        ev_in, ev_out = _event_messages(span.events)
        ins, outs = ins or ev_in, outs or ev_out
    system = _genai_messages(a.get("gen_ai.system_instructions"))
    if system and ins is not None and not any(m.get("role") == "system" for m in ins):
        ins = [{"role": "system", "content": _text_of(system) or ""}, *ins]
    prompt = None
    if ins is None:
        prompt = _str(a.get("input.value")) or _str(a.get("gen_ai.prompt"))
        if kind == "embedding":
            texts = [d.get("embedding.text") for d in _indexed(a, "embedding.embeddings.")]
            prompt = prompt or "\n".join(t for t in texts if isinstance(t, str)) or None
    output_text = _text_of([m for m in outs if m.get("role") in (None, "assistant", "model")] if outs else None) \
        or _text_of(outs) or (None if outs else _str(a.get("output.value")))

    meta: dict[str, Any] = {"otel": {"trace_id": span.trace_id, "span_id": span.span_id}}
    usage = {k: v for k, v in (
        ("cached_input_tokens", _first(a, "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.input_tokens.cached",
                                       "gen_ai.usage.cache_read_input_tokens",
                                       "llm.token_count.prompt_details.cache_read", conv=_int)),
        ("cache_creation_input_tokens", _first(a, "gen_ai.usage.cache_creation.input_tokens",
                                               "llm.token_count.prompt_details.cache_write", conv=_int)),
        ("reasoning_tokens", _first(a, "gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.output_tokens.reasoning",
                                    "llm.token_count.completion_details.reasoning", conv=_int)),
        ("total_tokens", _first(a, "gen_ai.usage.total_tokens", "llm.token_count.total", conv=_int)),
    ) if v is not None}
    if usage:
        meta["usage"] = usage
    rid = _first(a, "gen_ai.response.id")
    if rid:
        meta["response_id"] = rid
    fr = a.get("gen_ai.response.finish_reasons")
    if isinstance(fr, list):
        meta["finish_reasons"] = [x for x in fr if isinstance(x, str)]
    if op:
        meta["operation"] = op
    if outs and len(outs) > 1:
        meta["choices"] = outs
    err = _error(span)
    meta["status"] = "error" if err else "ok"
    if err:
        meta["error"] = err

    cfg = _config(a)
    req_model = _first(a, "gen_ai.request.model")
    model = _first(a, "gen_ai.response.model", "llm.model_name", "embedding.model_name") or req_model
    cost = a.get("llm.cost.total", a.get("gen_ai.usage.cost"))
    g: dict[str, Any] = {
        "kind": _LEDGER_KIND.get(op or "", "embedding" if kind == "embedding" else "chat" if ins else "completion"),
        "session_ref": _first(a, "gen_ai.conversation.id", "session.id"),
        "user_ref": _first(a, "user.id", "enduser.id"),
        "context": _context(span),
        "config": cfg,
        "prompt": prompt,
        "messages": ins,
        "output_text": output_text,
        "output_meta": meta,
        "model": model,
        "provider": _first(a, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"),
        "tokens_in": _first(a, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
                            conv=_int),
        "tokens_out": _first(a, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                             "llm.token_count.completion", conv=_int),
        "latency_ms": (span.end_ns - span.start_ns) / 1e6,
        "links": _links(a),
        "created_at": datetime.fromtimestamp(span.start_ns / 1e9, UTC),
    }
    if isinstance(cost, int | float) and not isinstance(cost, bool) and 0 <= cost < 1e9:
        g["cost"] = Decimal(str(round(float(cost), 8)))
    for k in ("session_ref", "user_ref", "model", "provider"):
        if g[k] is not None and len(g[k]) > (200 if k in ("model", "provider") else 500):
            g[k] = None  # the ledger's limits: better no value than a refused span
    return g


# -- retrieval documents ------------------------------------------------------------------

def documents(span: SpanRecord) -> list[dict[str, Any]] | None:
    """Documents a retriever span returned, [{"id", "content", "score", "metadata"}]."""
    a = span.attributes
    docs = []
    for d in _indexed(a, "retrieval.documents."):
        doc = {"id": d.get("document.id"), "content": d.get("document.content"), "score": d.get("document.score")}
        meta = _json(d.get("document.metadata"))
        if isinstance(meta, dict):
            doc["metadata"] = meta
        docs.append({k: v for k, v in doc.items() if v is not None})
    if not docs:
        raw = _json(a.get("gen_ai.retrieval.documents"))
        if isinstance(raw, list):
            docs = [d for d in raw if isinstance(d, dict)]
    if not docs:
        return None
    return [{"type": "document", "span_id": span.span_id, **d} for d in docs]


# -- evaluations --------------------------------------------------------------------------

def evaluations(span: SpanRecord, kind: str) -> list[dict[str, Any]]:
    """gen_ai.evaluation.result events on this span, each with the span it judges."""
    out = []
    for i, ev in enumerate(span.events):
        if ev["name"] != EVALUATION_EVENT:
            continue
        a = ev["attributes"]
        score = a.get("gen_ai.evaluation.score.value")
        out.append({
            "ordinal": i,
            "name": _str(a.get("gen_ai.evaluation.name")),
            "score": float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
            "label": _str(a.get("gen_ai.evaluation.score.label")),
            "explanation": _str(a.get("gen_ai.evaluation.explanation")),
            "response_id": _str(a.get("gen_ai.response.id")),
            # An evaluation on a model-call span judges that call; on any other span (an
            # evaluator step) it judges the span's parent.
            "target_span_id": span.span_id if kind in GENERATION_KINDS else span.parent_span_id,
            "time_ns": ev["time_unix_nano"] or span.end_ns,
        })
    return out


def sentiment(label: str | None, score: float | None) -> str:
    """POSITIVE/NEGATIVE from a recognised label, else from a score in [0, 1] (>= 0.5 is
    good), else NEUTRAL. Evaluators whose high score is bad should send a label."""
    if label:
        w = re.sub(r"[^a-z]", "", label.lower())
        if w in _POSITIVE:
            return "POSITIVE"
        if w in _NEGATIVE:
            return "NEGATIVE"
    if score is not None and 0.0 <= score <= 1.0:
        return "POSITIVE" if score >= 0.5 else "NEGATIVE"
    return "NEUTRAL"


def feedback_fields(e: dict[str, Any]) -> dict[str, Any]:
    tags = [t[:100] for t in (e["name"], f"{e['name']}:{e['label']}" if e["name"] and e["label"] else e["label"])
            if t]
    comment = e["explanation"]
    if e["score"] is not None:
        comment = f"score {e['score']:g}" + (f": {comment}" if comment else "")
    return {"sentiment": sentiment(e["label"], e["score"]), "tags": tags, "comment": comment,
            "source": "automatic", "author_ref": (e["name"] or "otel-evaluation")[:500]}


def touched(spans: Iterable[SpanRecord]) -> list[str]:
    return list({s.trace_id for s in spans})
