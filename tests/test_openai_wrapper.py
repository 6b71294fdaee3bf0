"""learnloop.integrations.openai.wrap: the official openai client against a local server
that speaks the OpenAI protocol; every call (sync, async, chat, responses, streaming,
failing) lands as a generation, and a logging failure never breaks the app's call."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest

import learnloop
from learnloop.integrations.openai import wrap
from learnloop.integrations.recorder import LoggingFailure, Recorder
from tests.fake_openai_server import CACHED, REASONING, FakeOpenAI

PRICES = {"gpt-4o-mini": (0.15, 0.60)}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as f:
        yield f


@pytest.fixture(scope="module")
def ll(client: learnloop.Client) -> learnloop.Client:
    return client.scoped(tenant="wrapper", project="bot")


def _sync(fake: FakeOpenAI, ll: learnloop.Client) -> Any:
    return wrap(openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0), ll, prices=PRICES)


def test_chat_completion_is_logged_with_messages_tokens_cost_and_id(fake: FakeOpenAI, ll: learnloop.Client) -> None:
    c = _sync(fake, ll)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "what is a loan term"}]
    r = c.chat.completions.create(model="gpt-4o-mini", messages=msgs, temperature=0.3,
                                  learnloop={"session_ref": "s-1", "user_ref": "u-1", "links": {"loan": "456"}})
    assert r.choices[0].message.content == "echo: what is a loan term"  # the app's result, unchanged
    assert "learnloop_generation_id" not in r.model_dump()
    assert c.learnloop.flush(10)
    g = ll.get(r.learnloop_generation_id)
    assert g.messages == msgs and g.output_text == "echo: what is a loan term"
    assert g.model == "gpt-4o-mini-2025-01-01" and g.config == {"model": "gpt-4o-mini", "temperature": 0.3}
    assert (g.tokens_in, g.tokens_out) == (7, 6)
    assert g.output_meta["usage"] == {"cached_input_tokens": CACHED, "reasoning_tokens": REASONING}
    assert g.cost == Decimal("0.00000465")  # 7 * 0.15/1M + 6 * 0.60/1M
    assert g.latency_ms is not None and g.latency_ms > 0
    assert (g.session_ref, g.user_ref, g.links) == ("s-1", "u-1", {"loan": "456"})
    assert "learnloop" not in fake.requests[-1]["body"]  # our options never reach the provider
    fb = ll.feedback(r.learnloop_generation_id, thumbs="down")
    assert fb.sentiment == "NEGATIVE"


def test_streaming_chat_and_responses(fake: FakeOpenAI, ll: learnloop.Client) -> None:
    c = _sync(fake, ll)
    s = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "stream me this"}],
                                  stream=True, stream_options={"include_usage": True})
    text = "".join(ch.choices[0].delta.content or "" for ch in s if ch.choices)
    assert text == "echo: stream me this"
    r = c.responses.create(model="gpt-4o-mini", instructions="Be kind.", input="hello there")
    assert r.output_text == "echo: hello there"
    with c.responses.create(model="gpt-4o-mini", input="streamed response", stream=True) as rs:
        kinds = [ev.type for ev in rs]
    assert kinds[-1] == "response.completed"
    assert c.learnloop.flush(10)
    g = ll.get(s.learnloop_generation_id)
    assert g.output_text == text and (g.tokens_in, g.tokens_out) == (3, 4)
    assert g.output_meta["stream"] is True and g.output_meta["time_to_first_token_ms"] >= 0
    g2 = ll.get(r.learnloop_generation_id)
    assert g2.messages == [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hello there"}]
    assert g2.output_text == "echo: hello there" and g2.output_meta["api"] == "responses"
    assert (g2.tokens_in, g2.tokens_out) == (4, 3)
    g3 = ll.get(rs.learnloop_generation_id)
    assert g3.output_text == "echo: streamed response" and g3.tokens_out == 3
    assert g3.output_meta["usage"]["reasoning_tokens"] == REASONING


def test_async_client(fake: FakeOpenAI, ll: learnloop.Client) -> None:
    c = wrap(openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0), ll)

    async def main() -> tuple[Any, Any, str]:
        r = await c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "async hi"}])
        s = await c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "async stream"}],
                                            stream=True)
        text = "".join([ch.choices[0].delta.content or "" async for ch in s if ch.choices])
        return r, s, text

    r, s, text = asyncio.run(main())
    assert text == "echo: async stream"
    assert c.learnloop.flush(10)
    assert ll.get(r.learnloop_generation_id).output_text == "echo: async hi"
    g = ll.get(s.learnloop_generation_id)
    assert g.output_text == "echo: async stream" and g.tokens_in is None  # no usage asked for in the stream


def test_failed_call_is_logged_and_reraised(fake: FakeOpenAI, ll: learnloop.Client) -> None:
    c = _sync(fake, ll)
    before = len(ll.find(model="fail-model"))
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="fail-model", messages=[{"role": "user", "content": "x"}])
    assert c.learnloop.flush(10)
    (g, *_) = ll.find(model="fail-model")
    assert len(ll.find(model="fail-model")) == before + 1
    assert g.output_meta["status"] == "error" and g.output_meta["error"]["type"] == "BadRequestError"


def test_logging_failure_never_breaks_the_call(fake: FakeOpenAI, ll: learnloop.Client) -> None:
    class Broken:
        def bulk_log(self, rows: Any) -> Any:
            raise learnloop.errors.DatabaseUnavailable("database is down")

    c = wrap(openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0), recorder=Recorder(Broken()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "still works"}])
        assert c.learnloop.flush(10)
    assert r.choices[0].message.content == "echo: still works"
    assert c.learnloop.failed == 1 and c.learnloop.written == 0
    assert any(issubclass(w.category, LoggingFailure) and "database is down" in str(w.message) for w in caught)


def test_a_bad_row_costs_only_itself(fake: FakeOpenAI, ll: learnloop.Client) -> None:
    c = _sync(fake, ll)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        ok = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "fine"}])
        # A NUL in the app's message: the ledger refuses that row; the call itself succeeds.
        bad = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a\x00b"}])
        assert c.learnloop.flush(10)
    assert bad.choices[0].message.content.startswith("echo: a")
    assert ll.get(ok.learnloop_generation_id).output_text == "echo: fine"
    with pytest.raises(learnloop.errors.NotFound):
        ll.get(bad.learnloop_generation_id)
    assert c.learnloop.failed == 1
