"""``wrap(client)``: the official ``openai`` client, with every call logged to learnloop.

    import openai, learnloop
    from learnloop.integrations.openai import wrap

    client = wrap(openai.OpenAI(), learnloop.connect())
    r = client.chat.completions.create(model="gpt-4o-mini", messages=[...],
                                       learnloop={"session_ref": "conv-1", "user_ref": "u-7"})
    r.learnloop_generation_id          # attach feedback to it (after client.learnloop.flush())

``chat.completions.create`` and ``responses.create`` are wrapped, sync (``OpenAI``) and
async (``AsyncOpenAI``), streaming included (the stream is passed through chunk by chunk
and logged when it ends); everything else is the client's own. Each call is logged with
its messages, request parameters (config), response model, tokens (cached and reasoning
in output_meta.usage), latency, cost (from ``prices``) and, for a failed call, its error
with ``output_meta.status = "error"`` before the error is re-raised unchanged.

Logging happens off the call's path (``Recorder``): the call pays for building one dict.
A logging failure is counted (``client.learnloop.failed``) and warned about, never raised.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID

from ..store.ids import uuid7
from .recorder import Recorder

_SKIP_PARAMS = frozenset({"messages", "input", "model", "stream", "extra_headers", "extra_query", "extra_body",
                          "timeout", "instructions"})
Prices = dict[str, tuple[float, float]]  # model -> (USD per 1M input tokens, per 1M output tokens)


def wrap(client: Any, ll: Any = None, *, prices: Prices | None = None, provider: str = "openai",
         recorder: Recorder | None = None) -> Any:
    """``client`` (``openai.OpenAI`` or ``openai.AsyncOpenAI``) with its calls logged to ``ll``
    (a learnloop client; default ``learnloop.connect()`` on first use)."""
    rec = recorder or Recorder(ll)
    return _Client(client, _Logger(rec, prices or {}, provider))


class _Logger:
    def __init__(self, rec: Recorder, prices: Prices, provider: str) -> None:
        self.rec = rec
        self.prices = prices
        self.provider = provider

    # attributes of ``client.learnloop``
    @property
    def failed(self) -> int:
        return self.rec.failed

    @property
    def written(self) -> int:
        return self.rec.written

    def flush(self, timeout: float | None = 30.0) -> bool:
        return self.rec.flush(timeout)

    def record(self, call: _Call, result: Any = None, error: BaseException | None = None,
               streamed: dict[str, Any] | None = None) -> None:
        try:
            self.rec.record(call.row(self, result, error, streamed))
        except Exception as exc:  # noqa: BLE001 - never the app's problem
            self.rec.fail(1, f"{type(exc).__name__}: {exc}")

    def cost(self, model: str | None, tin: int | None, tout: int | None) -> Decimal | None:
        if not model or tin is None or tout is None:
            return None
        price = self.prices.get(model)
        if price is None:  # a dated snapshot (gpt-4o-mini-2024-07-18) priced as its family
            for name, p in self.prices.items():
                if model.startswith(name):
                    price = p
                    break
        if price is None:
            return None
        return Decimal(str(round((tin * price[0] + tout * price[1]) / 1e6, 8)))


def _jsonable(v: Any, depth: int = 0) -> Any:
    """Request values as plain JSON (NOT_GIVEN sentinels, models and other objects left out)."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if depth > 20:
        return None
    if isinstance(v, list | tuple):
        return [_jsonable(x, depth + 1) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x, depth + 1) for k, x in v.items()}
    dump = getattr(v, "model_dump", None)
    if callable(dump):
        return _jsonable(dump(), depth + 1)
    return _MISSING


_MISSING = object()


def _messages(kw: dict[str, Any], api: str) -> list[dict[str, Any]] | None:
    if api == "chat":
        msgs = _jsonable(kw.get("messages"))
        return [m for m in msgs if isinstance(m, dict)] if isinstance(msgs, list) else None
    out: list[dict[str, Any]] = []
    if isinstance(kw.get("instructions"), str):
        out.append({"role": "system", "content": kw["instructions"]})
    inp = _jsonable(kw.get("input"))
    if isinstance(inp, str):
        out.append({"role": "user", "content": inp})
    elif isinstance(inp, list):
        out.extend(m for m in inp if isinstance(m, dict))
    return out or None


def _get(obj: Any, *path: str) -> Any:
    for p in path:
        if obj is None:
            return None
        obj = obj.get(p) if isinstance(obj, dict) else getattr(obj, p, None)
    return obj


class _Call:
    """One wrapped call: what was asked, when, and the id its generation will have."""

    __slots__ = ("api", "kw", "extra", "t0", "gid", "first_token")

    def __init__(self, api: str, kw: dict[str, Any], extra: dict[str, Any]) -> None:
        self.api, self.kw, self.extra = api, kw, extra
        self.t0 = time.perf_counter()
        self.gid: UUID = uuid7()
        self.first_token: float | None = None

    def row(self, lg: _Logger, result: Any, error: BaseException | None,
            streamed: dict[str, Any] | None) -> dict[str, Any]:
        latency = (time.perf_counter() - self.t0) * 1000
        kw = self.kw
        config = {k: v for k, v in ((k, _jsonable(v)) for k, v in kw.items() if k not in _SKIP_PARAMS)
                  if v is not _MISSING and v is not None}
        config["model"] = kw.get("model")
        meta: dict[str, Any] = {"api": "chat.completions" if self.api == "chat" else "responses",
                                "stream": bool(kw.get("stream")), "status": "error" if error else "ok"}
        usage = _get(result, "usage") if result is not None else (streamed or {}).get("usage")
        if self.api == "chat":
            tin, tout = _get(usage, "prompt_tokens"), _get(usage, "completion_tokens")
            cached = _get(usage, "prompt_tokens_details", "cached_tokens")
            reasoning = _get(usage, "completion_tokens_details", "reasoning_tokens")
        else:
            tin, tout = _get(usage, "input_tokens"), _get(usage, "output_tokens")
            cached = _get(usage, "input_tokens_details", "cached_tokens")
            reasoning = _get(usage, "output_tokens_details", "reasoning_tokens")
        u = {k: v for k, v in (("cached_input_tokens", cached), ("reasoning_tokens", reasoning))
             if isinstance(v, int)}
        if u:
            meta["usage"] = u
        text, model, rid, finish = None, None, None, None
        if result is not None:
            model, rid = _get(result, "model"), _get(result, "id")
            if self.api == "chat":
                choices = _get(result, "choices") or []
                text = _get(choices[0], "message", "content") if choices else None
                finish = [c.finish_reason for c in choices if getattr(c, "finish_reason", None)]
            else:
                text = getattr(result, "output_text", None)
        elif streamed is not None:
            text, model, rid, finish = (streamed.get("text"), streamed.get("model"), streamed.get("id"),
                                        streamed.get("finish"))
        if rid:
            meta["response_id"] = rid
        if finish:
            meta["finish_reasons"] = finish
        if self.first_token is not None:
            meta["time_to_first_token_ms"] = round((self.first_token - self.t0) * 1000, 3)
        if error is not None:
            meta["error"] = {"type": type(error).__name__, "message": str(error)[:2000]}
        model = model if isinstance(model, str) else kw.get("model")
        tin = tin if isinstance(tin, int) else None
        tout = tout if isinstance(tout, int) else None
        row: dict[str, Any] = {
            "id": self.gid, "kind": "chat", "messages": _messages(kw, self.api), "output_text": text or None,
            "model": model, "provider": lg.provider, "tokens_in": tin, "tokens_out": tout,
            "latency_ms": latency, "config": config, "output_meta": meta, "cost": lg.cost(model, tin, tout),
        }
        row.update(self.extra)
        return {k: v for k, v in row.items() if v is not None}


def _split(kw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    extra = kw.pop("learnloop", None) or {}
    return kw, dict(extra)


def _tag(obj: Any, gid: UUID) -> Any:
    try:  # outside the pydantic fields: never in model_dump()/to_json()
        object.__setattr__(obj, "learnloop_generation_id", gid)
    except Exception:  # noqa: BLE001,S110 - a result that takes no attribute just goes untagged
        pass
    return obj


class _Accumulator:
    """What a stream said, chunk by chunk (chat chunks or responses events)."""

    def __init__(self, call: _Call) -> None:
        self.call = call
        self.parts: list[str] = []
        self.out: dict[str, Any] = {}
        self.final: Any = None

    def add(self, ev: Any) -> None:
        if self.call.first_token is None:
            self.call.first_token = time.perf_counter()
        if self.call.api == "chat":
            self.out.setdefault("id", _get(ev, "id"))
            self.out["model"] = _get(ev, "model") or self.out.get("model")
            for c in _get(ev, "choices") or []:
                if c.index == 0 and c.delta is not None and c.delta.content:
                    self.parts.append(c.delta.content)
                if c.finish_reason:
                    self.out.setdefault("finish", []).append(c.finish_reason)
            if _get(ev, "usage") is not None:
                self.out["usage"] = ev.usage
        else:
            t = _get(ev, "type")
            if t == "response.output_text.delta":
                self.parts.append(ev.delta)
            elif t in ("response.completed", "response.incomplete", "response.failed"):
                self.final = ev.response

    def result(self) -> tuple[Any, dict[str, Any]]:
        if self.final is not None:
            return self.final, {}
        self.out["text"] = "".join(self.parts)
        return None, self.out


class _Stream:
    """The client's Stream, passed through; the generation is logged when it ends."""

    def __init__(self, inner: Any, call: _Call, lg: _Logger) -> None:
        self._inner, self._acc, self._lg, self._done = inner, _Accumulator(call), lg, False
        self.learnloop_generation_id = call.gid

    def __iter__(self) -> Iterator[Any]:
        try:
            for ev in self._inner:
                self._acc.add(ev)
                yield ev
        except BaseException as exc:
            self._finish(exc)
            raise
        self._finish(None)

    def __next__(self) -> Any:
        try:
            ev = next(self._inner)
        except StopIteration:
            self._finish(None)
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        self._acc.add(ev)
        return ev

    def _finish(self, error: BaseException | None) -> None:
        if not self._done:
            self._done = True
            result, streamed = self._acc.result()
            self._lg.record(self._acc.call, result, error if isinstance(error, Exception) else None, streamed)

    def close(self) -> None:
        self._finish(None)
        self._inner.close()

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _AsyncStream(_Stream):
    def __aiter__(self) -> AsyncIterator[Any]:
        return self._agen()

    async def _agen(self) -> AsyncIterator[Any]:
        try:
            async for ev in self._inner:
                self._acc.add(ev)
                yield ev
        except BaseException as exc:
            self._finish(exc)
            raise
        self._finish(None)

    async def close(self) -> None:  # type: ignore[override]
        self._finish(None)
        await self._inner.close()

    async def __aenter__(self) -> _AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Create:
    """A resource (``chat.completions``, ``responses``) whose ``create`` is logged."""

    def __init__(self, inner: Any, api: str, lg: _Logger, is_async: bool) -> None:
        self._inner, self._api, self._lg = inner, api, lg
        self.create = self._acreate if is_async else self._create

    def _create(self, **kw: Any) -> Any:
        kw, extra = _split(kw)
        call = _Call(self._api, kw, extra)
        try:
            out = self._inner.create(**kw)
        except Exception as exc:
            self._lg.record(call, error=exc)
            raise
        if kw.get("stream"):
            return _Stream(out, call, self._lg)
        self._lg.record(call, out)
        return _tag(out, call.gid)

    async def _acreate(self, **kw: Any) -> Any:
        kw, extra = _split(kw)
        call = _Call(self._api, kw, extra)
        try:
            out = await self._inner.create(**kw)
        except Exception as exc:
            self._lg.record(call, error=exc)
            raise
        if kw.get("stream"):
            return _AsyncStream(out, call, self._lg)
        self._lg.record(call, out)
        return _tag(out, call.gid)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Chat:
    def __init__(self, inner: Any, lg: _Logger, is_async: bool) -> None:
        self._inner = inner
        self.completions = _Create(inner.completions, "chat", lg, is_async)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Client:
    """The wrapped client: ``chat`` and ``responses`` logged, the rest the client's own."""

    def __init__(self, inner: Any, lg: _Logger) -> None:
        import inspect

        import openai

        is_async = isinstance(inner, openai.AsyncOpenAI) or inspect.iscoroutinefunction(
            inspect.unwrap(inner.chat.completions.create))
        self._inner = inner
        self.learnloop = lg
        self.chat = _Chat(inner.chat, lg, is_async)
        self.responses = _Create(inner.responses, "responses", lg, is_async)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
