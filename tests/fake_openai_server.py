"""A local server that speaks the OpenAI chat completions and responses protocols (JSON
and server-sent events), for the OTLP acceptance tests, the wrapper tests and
benchmarks/bench_otlp.py. Only what is remote and paid is faked; the official ``openai``
client talks to it unchanged.

Answers are deterministic so tests can check what was recorded: the reply to a last user
message ``m`` is ``"echo: m"``; token counts are word counts (input = words of every
message, output = words of the reply), with ``cached_tokens = 1`` and
``reasoning_tokens = 2`` so the detailed counts are visible. The response model is the
request model with ``-2025-01-01`` appended (a dated snapshot, as OpenAI answers).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CACHED, REASONING = 1, 2


def _words(x: Any) -> int:
    if isinstance(x, str):
        return len(x.split())
    if isinstance(x, list):
        return sum(_words(i) for i in x)
    if isinstance(x, dict):
        return sum(_words(v) for k, v in x.items() if k in ("content", "text", "input"))
    return 0


def _last_user(messages: Any) -> str:
    if isinstance(messages, str):
        return messages
    for m in reversed(messages or []):
        if isinstance(m, dict) and m.get("role", "user") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
            return str(c)
    return ""


class FakeOpenAI:
    def __init__(self, chunk_delay: float = 0.0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.chunk_delay = chunk_delay
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body in separate writes: no 40 ms delayed-ACK stall

            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _sse(self, events: list[dict[str, Any] | str], named: bool = False) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for ev in events:
                    data = ev if isinstance(ev, str) else json.dumps(ev)
                    prefix = f"event: {ev['type']}\n" if named and isinstance(ev, dict) else ""
                    chunk = f"{prefix}data: {data}\n\n".encode()
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                    if fake.chunk_delay:
                        time.sleep(fake.chunk_delay)
                self.wfile.write(b"0\r\n\r\n")

            def do_POST(self) -> None:  # noqa: N802
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                fake.requests.append({"path": self.path, "body": req})
                if self.path.endswith("/chat/completions"):
                    self._chat(req)
                elif self.path.endswith("/responses"):
                    self._responses(req)
                else:
                    self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

            def _chat(self, req: dict[str, Any]) -> None:
                if req.get("model") == "fail-model":
                    self._json(400, {"error": {"message": "the model fail-model does not exist",
                                               "type": "invalid_request_error", "code": "model_not_found"}})
                    return
                text = "echo: " + _last_user(req.get("messages"))
                model = f"{req.get('model')}-2025-01-01"
                cid = f"chatcmpl-{next(fake._ids)}"
                usage = {"prompt_tokens": _words(req.get("messages")), "completion_tokens": _words(text),
                         "total_tokens": _words(req.get("messages")) + _words(text),
                         "prompt_tokens_details": {"cached_tokens": CACHED},
                         "completion_tokens_details": {"reasoning_tokens": REASONING}}
                if not req.get("stream"):
                    self._json(200, {"id": cid, "object": "chat.completion", "created": int(time.time()),
                                     "model": model, "system_fingerprint": "fp_fake",
                                     "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                                  "message": {"role": "assistant", "content": text}}],
                                     "usage": usage})
                    return
                base = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
                words = text.split(" ")
                events: list[dict[str, Any] | str] = [
                    {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                          "finish_reason": None}]}]
                for i, w in enumerate(words):
                    events.append({**base, "choices": [{"index": 0, "delta": {"content": (" " if i else "") + w},
                                                        "finish_reason": None}]})
                events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                if (req.get("stream_options") or {}).get("include_usage"):
                    events.append({**base, "choices": [], "usage": usage})
                events.append("[DONE]")
                self._sse(events)

            def _responses(self, req: dict[str, Any]) -> None:
                inp = req.get("input")
                text = "echo: " + _last_user(inp if isinstance(inp, list) else [{"role": "user", "content": inp}])
                rid = f"resp_{next(fake._ids)}"
                mid = f"msg_{rid}"
                model = f"{req.get('model')}-2025-01-01"
                words_in = _words(inp) + _words(req.get("instructions") or "")
                resp = {"id": rid, "object": "response", "created_at": int(time.time()), "model": model,
                        "status": "completed", "error": None, "incomplete_details": None,
                        "instructions": req.get("instructions"), "parallel_tool_calls": True,
                        "temperature": req.get("temperature", 1.0), "top_p": 1.0, "tool_choice": "auto",
                        "tools": [], "text": {"format": {"type": "text"}}, "truncation": "disabled",
                        "metadata": {},
                        "output": [{"type": "message", "id": mid, "status": "completed", "role": "assistant",
                                    "content": [{"type": "output_text", "text": text, "annotations": []}]}],
                        "usage": {"input_tokens": words_in, "output_tokens": _words(text),
                                  "total_tokens": words_in + _words(text),
                                  "input_tokens_details": {"cached_tokens": CACHED},
                                  "output_tokens_details": {"reasoning_tokens": REASONING}}}
                if not req.get("stream"):
                    self._json(200, resp)
                    return
                seq = itertools.count()
                start = {**resp, "status": "in_progress", "output": [], "usage": None}
                events: list[dict[str, Any] | str] = [
                    {"type": "response.created", "sequence_number": next(seq), "response": start},
                    {"type": "response.output_item.added", "sequence_number": next(seq), "output_index": 0,
                     "item": {"type": "message", "id": mid, "status": "in_progress", "role": "assistant",
                              "content": []}},
                    {"type": "response.content_part.added", "sequence_number": next(seq), "item_id": mid,
                     "output_index": 0, "content_index": 0,
                     "part": {"type": "output_text", "text": "", "annotations": []}}]
                for i, w in enumerate(text.split(" ")):
                    events.append({"type": "response.output_text.delta", "sequence_number": next(seq),
                                   "item_id": mid, "output_index": 0, "content_index": 0,
                                   "delta": (" " if i else "") + w, "logprobs": []})
                events += [
                    {"type": "response.output_text.done", "sequence_number": next(seq), "item_id": mid,
                     "output_index": 0, "content_index": 0, "text": text, "logprobs": []},
                    {"type": "response.output_item.done", "sequence_number": next(seq), "output_index": 0,
                     "item": resp["output"][0]},
                    {"type": "response.completed", "sequence_number": next(seq), "response": resp}]
                self._sse(events, named=True)

        return H
