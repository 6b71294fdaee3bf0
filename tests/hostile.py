"""Hostile JSON for every route of the OpenAPI schema, and a live server to send it to.

Used by ``tests/test_hardening.py`` (a few hundred cases per run, driven by hypothesis)
and ``scripts/hostile_json.py`` (10,000+ cases). A case is one request: an operation of
the schema, its path parameters filled (valid ids, or hostile text), and a body built from
the operation's request schema with one hostile piece of raw JSON text spliced in: a lone
surrogate in a value or a key, nesting around every limit (ours, the encoders'), numbers
beyond a double or a 64-bit integer, NaN/Infinity literals, NUL, invalid UTF-8, duplicate
keys. What must hold: no 5xx, and the keep-alive connection still answers afterwards.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from learnloop.store.validation import MAX_JSON_DEPTH

HOLE = "\x07HOLE\x07"  # a string placeholder, replaced by raw hostile text after json.dumps

_DEPTHS = (MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 128, 254, 255, 256, 257, 1000, 1023, 1024,
           1025, 5000, 100_000)


def _nest(depth: int, obj: bool) -> str:
    return '{"a":' * depth + "1" + "}" * depth if obj else "[" * depth + "1" + "]" * depth


# Raw JSON text (bytes) for a value position.
VALUES: list[bytes] = [
    rb'"a\ud800b"', rb'"\udfff"', rb'"\ud800"', rb'"x\udbff\u0041"', rb'"\ud800\u0000"',
    rb'"\u0000"', rb'"a\u0000b"', b'"\xff\xfe"', b'"\xed\xa0\x80"', b'"\xc0\xaf"',
    b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1e-400", b"1E+999999",
    b"12345678901234567890123456789", b"-9223372036854775809", b"18446744073709551616",
    b"9" * 5000, b"1." + b"1" * 5000, b"0.1e-99999",
    b'{"\\ud800": 1}', b'{"a\\u0000": 1}', b'{"a": 1, "a": 2}', b'{"": ""}',
    b"[]", b"{}", b"null", b"true", b'""', b'"' + b"x" * 10_000 + b'"',
    *(_nest(d, obj).encode() for d in _DEPTHS for obj in (False, True)),
]
# Whole bodies.
BODIES: list[bytes] = [
    b"NaN", b"[" * 100_000, b"{" * 50_000, b'"\\ud800"', b"\xff", b"", b"   ", b"{", b"}", b"[1,]", b"{'a': 1}",
    b'{"a": 1} {"b": 2}', b"\x00", b'{"a":"\x00"}', b"1e400", b"9" * 5000,
]
# Hostile text for path and query parameters (decoded by the server from the URL).
PATH_TEXT = ["%ED%A0%80", "%00", "a%00b", "%FF%FE", "..%2F..%2Fetc", "x" * 300, "%F0%9F%92%A9", "-1",
             "99999999999999999999999", "NaN", "%7B%7D", "%5Cud800"]


@dataclass
class Case:
    method: str
    path: str
    body: bytes | None
    content_type: str | None = "application/json"

    def describe(self) -> str:
        b = self.body if self.body is None or len(self.body) < 120 else self.body[:100] + b"...(%d bytes)" % len(self.body)
        return f"{self.method} {self.path} {b!r}"


class Schema:
    """The operations of an OpenAPI document and skeleton bodies for them."""

    def __init__(self, openapi: dict[str, Any], ids: dict[str, str]) -> None:
        self.doc = openapi
        self.ids = ids
        self.ops: list[tuple[str, str, dict[str, Any]]] = [
            (m.upper(), p, op) for p, ms in openapi["paths"].items() for m, op in ms.items()
            if m in ("get", "post", "put", "delete", "patch")]

    def resolve(self, s: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in s:
            node: Any = self.doc
            for part in s["$ref"].lstrip("#/").split("/"):
                node = node[part]
            s = node
        return s

    def skeleton(self, s: dict[str, Any], rnd: random.Random, depth: int = 0) -> Any:
        s = self.resolve(s)
        for comb in ("anyOf", "oneOf", "allOf"):
            if comb in s:
                opts = [o for o in s[comb] if self.resolve(o).get("type") != "null"] or s[comb]
                return self.skeleton(rnd.choice(opts), rnd, depth)
        if "enum" in s:
            return rnd.choice(s["enum"])
        if "const" in s:
            return s["const"]
        if "examples" in s and isinstance(s["examples"], list) and s["examples"] and rnd.random() < 0.3:
            return s["examples"][0]
        t = s.get("type")
        if t == "object" or "properties" in s:
            props = s.get("properties", {})
            req = set(s.get("required", []))
            out = {k: self.skeleton(v, rnd, depth + 1) for k, v in props.items()
                   if k in req or (depth < 3 and rnd.random() < 0.5)}
            if not props and s.get("additionalProperties", True) is not False:
                out = {"k": "v"}
            return out
        if t == "array":
            return [self.skeleton(s.get("items", {}), rnd, depth + 1)] if depth < 4 else []
        if t == "string":
            fmt = s.get("format")
            if fmt == "uuid":
                return str(uuid.uuid4())
            if fmt == "date-time":
                return "2026-01-01T00:00:00Z"
            return "x" * max(1, s.get("minLength", 1))
        if t == "integer":
            return max(1, s.get("minimum", 1))
        if t == "number":
            return 0.5
        if t == "boolean":
            return True
        return "x"

    def path_for(self, path: str, op: dict[str, Any], rnd: random.Random, hostile: bool) -> str:
        for prm in op.get("parameters", []):
            if prm["in"] != "path":
                continue
            name = prm["name"]
            value = rnd.choice(PATH_TEXT) if hostile else self.ids.get(name, str(uuid.uuid4()))
            path = path.replace("{" + name + "}", value)
        if hostile and rnd.random() < 0.5:
            q = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
            if q:
                path += f"?{rnd.choice(q)}={rnd.choice(PATH_TEXT)}"
        return path

    def case(self, rnd: random.Random) -> Case:
        method, path, op = rnd.choice(self.ops)
        content = op.get("requestBody", {}).get("content", {})
        has_json = "application/json" in content
        if not has_json:
            # A route without a JSON body: hostile path/query, or a JSON body it should ignore.
            body = rnd.choice(VALUES) if method != "GET" and rnd.random() < 0.3 else None
            return Case(method, self.path_for(path, op, rnd, hostile=rnd.random() < 0.7), body,
                        "application/json" if body is not None else None)
        full = self.path_for(path, op, rnd, hostile=rnd.random() < 0.15)
        if rnd.random() < 0.1:
            return Case(method, full, rnd.choice(BODIES), rnd.choice(["application/json", None]))
        body = self.skeleton(content["application/json"]["schema"], rnd)
        return Case(method, full, splice(body, rnd.choice(VALUES), rnd))


def splice(body: Any, raw: bytes, rnd: random.Random) -> bytes:
    """``body`` as JSON text with ``raw`` in place of one of its values, or as one of its
    keys (for raw text that is a string), or as the whole body."""
    spots: list[tuple[Any, Any]] = []  # (container, key or index) of every value

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for k in list(v):
                spots.append((v, k))
                walk(v[k])
        elif isinstance(v, list):
            for i in range(len(v)):
                spots.append((v, i))
                walk(v[i])

    walk(body)
    if not spots:
        return raw
    container, k = rnd.choice(spots)
    if isinstance(container, dict) and raw.startswith(b'"') and rnd.random() < 0.3:
        container[HOLE] = container.pop(k)  # a hostile key
    else:
        container[k] = HOLE
    text = json.dumps(body).encode()
    return text.replace(json.dumps(HOLE).encode(), raw, 1)


# -- a live server and a keep-alive connection ------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread (real sockets, real keep-alive); yield its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_keep_alive=30))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.time() + 600  # startup loads the embedding model: minutes on a loaded machine
    while not server.started:
        if time.time() > deadline or not t.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(30)


class Result:
    def __init__(self, status: int, body: bytes, headers: dict[str, str], kept_alive: bool) -> None:
        self.status, self.body, self.headers, self.kept_alive = status, body, headers, kept_alive


class Probe:
    """One keep-alive HTTP/1.1 connection; after each case, checks it still answers."""

    def __init__(self, hostport: str, headers: dict[str, str]) -> None:
        self.hostport = hostport
        self.headers = headers
        self.conn = http.client.HTTPConnection(hostport, timeout=60)

    def send(self, case: Case) -> Result:
        hdrs = dict(self.headers)
        if case.content_type and case.body is not None:
            hdrs["Content-Type"] = case.content_type
        self.conn.request(case.method, case.path, body=case.body, headers=hdrs)
        sock = self.conn.sock
        r = self.conn.getresponse()
        body = r.read()
        status, headers = r.status, {k.lower(): v for k, v in r.getheaders()}
        kept = headers.get("connection", "").lower() != "close" and self._still_open(sock)
        if not kept:
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.hostport, timeout=60)
        return Result(status, body, headers, kept)

    def _still_open(self, sock: Any) -> bool:
        """The same socket answers a second request (nothing reconnected in between)."""
        try:
            self.conn.request("GET", "/healthz")
            ok = self.conn.sock is sock and self.conn.getresponse().read() == b'{"status":"ok"}'
        except (OSError, http.client.HTTPException):
            return False
        return ok and self.conn.sock is sock

    def close(self) -> None:
        self.conn.close()
