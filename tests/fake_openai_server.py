"""A local server that speaks the OpenAI protocol where learnloop is its client: chat
completions and responses (JSON and server-sent events; the OTLP acceptance tests, the
wrapper tests, benchmarks/bench_otlp.py), and files + fine-tuning jobs (the fine-tuning,
API and example tests). Only what is remote and paid is faked; the official ``openai``
client talks to it unchanged.

**Chat and responses.**
Answers are deterministic so tests can check what was recorded: the reply to a last user
message ``m`` is ``"echo: m"``; token counts are word counts (input = words of every
message, output = words of the reply), with ``cached_tokens = 1`` and
``reasoning_tokens = 2`` so the detailed counts are visible. The response model is the
request model with ``-2025-01-01`` appended (a dated snapshot, as OpenAI answers).

**Files and fine-tuning jobs** (these need ``Authorization: Bearer <api_key>``, 401 otherwise):
multipart upload to ``POST /v1/files``, ``POST /v1/fine_tuning/jobs`` with ``method``,
``GET`` of a job, its ``/events`` list page, and ``/cancel``. Each ``GET`` of a job advances
it one step through a script (validating_files -> running 1/3 -> running 2/3 -> running 3/3
-> succeeded), or to ``failed`` when ``fail_job`` is set. Knobs on the server object make it
fail the way the real one does: HTTP errors with an ``{"error": {...}}`` body
(``fail_upload``, ``fail_create``), or answering too late (``delay``).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from email.parser import BytesParser
from email.policy import HTTP
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
    def __init__(self, chunk_delay: float = 0.0, api_key: str = "sk-test") -> None:
        self.requests: list[dict[str, Any]] = []
        self.chunk_delay = chunk_delay
        self._ids = itertools.count(1)
        # files + fine-tuning
        self.api_key = api_key
        self.files: dict[str, dict[str, Any]] = {}
        self.file_lines: dict[str, list[dict[str, Any]]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.steps: dict[str, int] = {}
        self.fail_upload: int | None = None
        self.fail_create: int | None = None
        self.fail_job: str | None = None
        self.delay: float = 0.0
        self.total_steps = 3
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

    # -- behaviour ---------------------------------------------------------------------------
    def _event(self, job_id: str, message: str, data: dict[str, Any] | None = None, level: str = "info") -> None:
        evs = self.events.setdefault(job_id, [])
        evs.append({"object": "fine_tuning.job.event", "id": f"ftevent-{uuid.uuid4().hex[:20]}",
                    "created_at": int(time.time()) + len(evs), "level": level, "message": message,
                    "data": data, "type": "metrics" if data else "message"})

    def advance(self, job_id: str) -> None:
        job = self.jobs[job_id]
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return
        step = self.steps.get(job_id, 0) + 1
        self.steps[job_id] = step
        if self.fail_job and step >= 2:
            job["status"] = "failed"
            job["finished_at"] = int(time.time())
            job["error"] = {"code": "invalid_training_file", "message": self.fail_job, "param": "training_file"}
            self._event(job_id, f"Job failed: {self.fail_job}", level="error")
            return
        if step <= self.total_steps:
            job["status"] = "running"
            self._event(job_id, f"Step {step}/{self.total_steps}: training loss={1.0 / step:.2f}",
                        {"step": step, "total_steps": self.total_steps, "train_loss": 1.0 / step})
            return
        job["status"] = "succeeded"
        job["finished_at"] = int(time.time())
        job["fine_tuned_model"] = f"ft:{job['model']}:learnloop::{job_id[-8:]}"
        job["trained_tokens"] = 1234
        self._event(job_id, "The job has successfully completed")

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

            def _error(self, code: int, message: str, type_: str = "invalid_request_error", param: str | None = None) -> None:
                self._json(code, {"error": {"message": message, "type": type_, "param": param, "code": None}})

            def _auth(self) -> bool:
                fake.requests.append({"method": self.command, "path": self.path})
                if fake.delay:
                    time.sleep(fake.delay)
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    self._error(401, "Incorrect API key provided.", "invalid_request_error")
                    return False
                return True

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith(("/chat/completions", "/responses")):
                    req = json.loads(raw or b"{}")
                    fake.requests.append({"method": "POST", "path": self.path, "body": req})
                    if self.path.endswith("/chat/completions"):
                        self._chat(req)
                    else:
                        self._responses(req)
                    return
                self._fine_tuning_post(raw)

            def _fine_tuning_post(self, body: bytes) -> None:
                if not self._auth():
                    return
                path = self.path.split("?")[0]
                if path == "/v1/files":
                    return self._upload(body)
                if path == "/v1/fine_tuning/jobs":
                    return self._create(json.loads(body))
                if path.startswith("/v1/fine_tuning/jobs/") and path.endswith("/cancel"):
                    jid = path.split("/")[4]
                    if jid not in fake.jobs:
                        return self._error(404, f"No such fine-tuning job: {jid}")
                    fake.jobs[jid]["status"] = "cancelled"
                    fake.jobs[jid]["finished_at"] = int(time.time())
                    return self._json(200, fake.jobs[jid])
                self._error(404, f"Unknown path {path}")

            def do_GET(self) -> None:  # noqa: N802
                if not self._auth():
                    return
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[:3] == ["v1", "fine_tuning", "jobs"] and len(parts) >= 4:
                    jid = parts[3]
                    if jid not in fake.jobs:
                        return self._error(404, f"No such fine-tuning job: {jid}")
                    if len(parts) == 4:
                        fake.advance(jid)
                        return self._json(200, fake.jobs[jid])
                    if parts[4] == "events":
                        evs = list(reversed(fake.events.get(jid, [])))  # newest first, like the API
                        return self._json(200, {"object": "list", "data": evs, "has_more": False})
                self._error(404, "Unknown path")

            def _upload(self, body: bytes) -> None:
                if fake.fail_upload:
                    return self._error(fake.fail_upload, "The server had an error while processing your request.",
                                       "server_error")
                msg = BytesParser(policy=HTTP).parsebytes(
                    b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
                fields = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
                if fields.get("purpose") is None or fields["purpose"].get_content().strip() != "fine-tune":
                    return self._error(400, "purpose must be fine-tune", param="purpose")
                part = fields["file"]
                raw = part.get_payload(decode=True)
                lines = []
                for n, line in enumerate(raw.decode("utf-8").split("\n"), 1):
                    if not line:
                        continue
                    try:
                        lines.append(json.loads(line))
                    except json.JSONDecodeError:
                        return self._error(400, f"Invalid file format: line {n} is not valid JSON", param="file")
                fid = f"file-{uuid.uuid4().hex[:24]}"
                fake.files[fid] = {"object": "file", "id": fid, "purpose": "fine-tune",
                                   "filename": part.get_filename(), "bytes": len(raw),
                                   "created_at": int(time.time()), "status": "processed", "status_details": None}
                fake.file_lines[fid] = lines
                self._json(200, fake.files[fid])

            def _create(self, req: dict[str, Any]) -> None:
                if fake.fail_create:
                    return self._error(fake.fail_create, "Model gpt-nope is not available for fine-tuning.",
                                       param="model")
                if req.get("training_file") not in fake.files:
                    return self._error(400, f"invalid training_file: {req.get('training_file')}", param="training_file")
                method = req.get("method") or {"type": "supervised", "supervised": {"hyperparameters": {}}}
                hp = dict(method.get(method["type"], {}).get("hyperparameters", {}))
                hp = {"n_epochs": hp.get("n_epochs", "auto"), "batch_size": hp.get("batch_size", "auto"),
                      "learning_rate_multiplier": hp.get("learning_rate_multiplier", "auto")}
                resolved = {k: (3 if k == "n_epochs" else 1 if k == "batch_size" else 1.8) if v == "auto" else v
                            for k, v in hp.items()}
                jid = f"ftjob-{uuid.uuid4().hex[:24]}"
                fake.jobs[jid] = {
                    "object": "fine_tuning.job", "id": jid, "model": req["model"], "created_at": int(time.time()),
                    "finished_at": None, "fine_tuned_model": None, "organization_id": "org-test",
                    "result_files": [], "status": "validating_files", "validation_file": req.get("validation_file"),
                    "training_file": req["training_file"], "hyperparameters": resolved,
                    "trained_tokens": None, "error": None, "seed": req.get("seed", 42),
                    "estimated_finish": None, "integrations": [], "metadata": None,
                    "method": {"type": method["type"], method["type"]: {"hyperparameters": resolved}},
                    "user_provided_suffix": req.get("suffix"),
                }
                fake._event(jid, f"Created fine-tuning job: {jid}")
                self._json(200, fake.jobs[jid])


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
