"""A local HTTP server speaking the OpenAI files + fine_tuning.jobs API (the endpoints learnloop uses).

Request and response shapes follow the OpenAI API reference: multipart upload to
``POST /v1/files``, ``POST /v1/fine_tuning/jobs`` with ``method``, ``GET`` of a job, its
``/events`` list page, and ``/cancel``. Each ``GET`` of a job advances it one step through
a script (validating_files -> running 1/3 -> running 2/3 -> running 3/3 -> succeeded), or
to ``failed`` when ``fail_job`` is set. Knobs on the server object make it fail the way
the real one does: HTTP errors with an ``{"error": {...}}`` body, or answering too late.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeProvider:
    def __init__(self, api_key: str = "sk-test") -> None:
        self.api_key = api_key
        self.files: dict[str, dict[str, Any]] = {}
        self.file_lines: dict[str, list[dict[str, Any]]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.steps: dict[str, int] = {}
        self.requests: list[tuple[str, str]] = []
        self.fail_upload: int | None = None
        self.fail_create: int | None = None
        self.fail_job: str | None = None
        self.delay: float = 0.0
        self.total_steps = 3
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeProvider:
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

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, code: int, message: str, type_: str = "invalid_request_error", param: str | None = None) -> None:
                self._send(code, {"error": {"message": message, "type": type_, "param": param, "code": None}})

            def _auth(self) -> bool:
                fake.requests.append((self.command, self.path))
                if fake.delay:
                    time.sleep(fake.delay)
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    self._error(401, "Incorrect API key provided.", "invalid_request_error")
                    return False
                return True

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_POST(self) -> None:  # noqa: N802
                body = self._body()
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
                    return self._send(200, fake.jobs[jid])
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
                        return self._send(200, fake.jobs[jid])
                    if parts[4] == "events":
                        evs = list(reversed(fake.events.get(jid, [])))  # newest first, like the API
                        return self._send(200, {"object": "list", "data": evs, "has_more": False})
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
                self._send(200, fake.files[fid])

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
                self._send(200, fake.jobs[jid])

        return Handler
