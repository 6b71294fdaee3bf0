"""OTLP/HTTP trace requests in, plain span records out.

Decoding uses the OpenTelemetry project's own generated classes (``opentelemetry-proto``);
OTLP/JSON goes through ``google.protobuf.json_format`` after the one place where the OTLP
JSON mapping differs from proto3's: trace and span ids are hex strings, not base64.
Everything else (lowerCamelCase or original field names, enums as integers, 64-bit
integers as strings or numbers, unknown fields ignored) is proto3 JSON as the spec says.

A request that cannot be decoded at all is refused whole (``InvalidInput``, HTTP 400). A
span that decodes but breaks a limit (id lengths, timestamps, attribute counts and sizes,
NUL characters, nesting depth) is dropped and counted: OTLP's ``partial_success``.
"""

from __future__ import annotations

import base64
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import InvalidInput

MAX_ATTRIBUTES = 1_000  # per span, events' attributes included (the SDK's default limit is 128)
MAX_VALUE_CHARS = 1_000_000  # one string or bytes value
MAX_SPAN_CHARS = 4_000_000  # all values of one span together
MAX_KEY_CHARS = 500
MAX_NAME_CHARS = 1_000
MAX_DEPTH = 8  # arrays/maps inside attribute values
MAX_EVENTS = 1_000
FUTURE_SLACK_NS = 24 * 3600 * 10**9  # clocks drift; a day ahead is a clock, more is a bug
PAST_LIMIT_NS = 946_684_800 * 10**9  # 2000-01-01: earlier is a seconds/nanoseconds mix-up

STATUS = {0: "unset", 1: "ok", 2: "error"}


class SpanRejected(Exception):
    """One span breaks a limit; the request goes on without it."""


@dataclass(slots=True)
class SpanRecord:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    span_kind: int
    start_ns: int
    end_ns: int
    status: str
    status_message: str | None
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    resource: dict[str, Any]
    scope: str | None = None
    size: int = 0


@dataclass
class Decoded:
    spans: list[SpanRecord] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < 5 and reason not in self.reasons:
            self.reasons.append(reason)


def _pb() -> Any:
    try:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    except ModuleNotFoundError:  # pragma: no cover - depends on the install
        from ..errors import ConfigurationError

        raise ConfigurationError("the OTLP receiver needs the otel extra: pip install 'learnloop[otel]'") from None
    return trace_service_pb2


def gunzip(body: bytes, limit: int) -> bytes:
    """The inflated body, refusing more than ``limit`` bytes (a small gzip can hide GBs)."""
    d = zlib.decompressobj(wbits=31)
    try:
        out = d.decompress(body, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise TooLarge(f"the decompressed body is larger than {limit} bytes")
        out += d.flush()
    except zlib.error as exc:
        raise InvalidInput(f"the body is not valid gzip: {exc}") from None
    if not d.eof:
        raise InvalidInput("the gzip body is truncated")
    return out


class TooLarge(InvalidInput):
    """The body, or what its gzip inflates to, is over the limit (HTTP 413)."""

    status = 413
    code = "too_large"


def parse_protobuf(body: bytes) -> Any:
    pb = _pb()
    try:
        return pb.ExportTraceServiceRequest.FromString(body)
    except Exception as exc:  # DecodeError, RecursionError...: any undecodable body is a 400
        raise InvalidInput(f"the body is not an OTLP ExportTraceServiceRequest in protobuf: {_short(exc)}") from None


def parse_json(body: bytes) -> Any:
    from google.protobuf import json_format

    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not JSON (or not UTF-8): {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput("an OTLP/JSON body is an object with resourceSpans")
    rs = data.get("resourceSpans", data.get("resource_spans"))
    if rs is None or not isinstance(rs, list) or not (set(data) <= {"resourceSpans", "resource_spans"}):
        raise InvalidInput("the body is JSON but not an OTLP ExportTraceServiceRequest: "
                           "expected {\"resourceSpans\": [...]}")
    _hex_ids_to_base64(rs)
    try:
        return json_format.ParseDict(data, _pb().ExportTraceServiceRequest(), ignore_unknown_fields=True,
                                      max_recursion_depth=64)
    except (json_format.ParseError, RecursionError, TypeError, ValueError) as exc:
        raise InvalidInput(f"the body is not a valid OTLP/JSON trace request: {_short(exc)}") from None


_ID_KEYS = (("traceId", 32), ("trace_id", 32), ("spanId", 16), ("span_id", 16),
            ("parentSpanId", 16), ("parent_span_id", 16))


def _hex_ids_to_base64(resource_spans: list[Any]) -> None:
    """OTLP/JSON ids are hex; proto3 JSON reads bytes as base64. A malformed id becomes a
    marker of the wrong length, so the span is rejected (and counted) by ``_check``."""

    def fix(obj: Any) -> None:
        if not isinstance(obj, dict):
            return
        for key, n in _ID_KEYS:
            v = obj.get(key)
            if v is None:
                continue
            raw = b"\x00"  # wrong length for any id: rejected later with a clear reason
            if isinstance(v, str) and (v == "" or len(v) == n):
                try:
                    raw = bytes.fromhex(v)
                except ValueError:
                    pass
            obj[key] = base64.b64encode(raw).decode()

    for r in resource_spans:
        if not isinstance(r, dict):
            continue
        for ss in r.get("scopeSpans", r.get("scope_spans")) or []:
            if not isinstance(ss, dict):
                continue
            for sp in ss.get("spans") or []:
                fix(sp)
                if isinstance(sp, dict):
                    for link in sp.get("links") or []:
                        fix(link)


def _short(exc: BaseException) -> str:
    s = str(exc) or type(exc).__name__
    return s if len(s) <= 300 else s[:300] + "..."


# -- flattening ---------------------------------------------------------------------------

class _Budget:
    __slots__ = ("chars", "count")

    def __init__(self) -> None:
        self.chars = 0
        self.count = 0


def _text(s: str, budget: _Budget, what: str) -> str:
    n = len(s)
    if n > MAX_VALUE_CHARS:
        raise SpanRejected(f"{what} is {n} characters, over the {MAX_VALUE_CHARS} limit")
    budget.chars += n
    if budget.chars > MAX_SPAN_CHARS:
        raise SpanRejected(f"the span's values add up to more than {MAX_SPAN_CHARS} characters")
    if "\x00" in s:
        raise SpanRejected(f"{what} contains a NUL character")
    return s


def _value(v: Any, budget: _Budget, what: str, depth: int = 0) -> Any:
    which = v.WhichOneof("value")
    if which == "string_value":
        return _text(v.string_value, budget, what)
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        d = v.double_value
        return d if d == d and d not in (float("inf"), float("-inf")) else None
    if which == "bool_value":
        return v.bool_value
    if which is None:
        return None
    if depth >= MAX_DEPTH:
        raise SpanRejected(f"{what} nests deeper than {MAX_DEPTH} levels")
    if which == "array_value":
        vals = v.array_value.values
        budget.count += len(vals)
        if budget.count > MAX_ATTRIBUTES * 10:
            raise SpanRejected(f"{what} holds too many values")
        return [_value(x, budget, what, depth + 1) for x in vals]
    if which == "kvlist_value":
        return _attrs(v.kvlist_value.values, budget, depth + 1, what + ".")
    if which == "bytes_value":
        b = v.bytes_value
        if len(b) > MAX_VALUE_CHARS:
            raise SpanRejected(f"{what} is {len(b)} bytes, over the {MAX_VALUE_CHARS} limit")
        budget.chars += len(b) * 4 // 3
        return base64.b64encode(b).decode()
    return None


def _attrs(kvs: Any, budget: _Budget, depth: int = 0, prefix: str = "") -> dict[str, Any]:
    budget.count += len(kvs)
    if budget.count > MAX_ATTRIBUTES:
        raise SpanRejected(f"the span has more than {MAX_ATTRIBUTES} attributes")
    out: dict[str, Any] = {}
    for kv in kvs:
        k = kv.key
        if len(k) > MAX_KEY_CHARS or "\x00" in k:
            raise SpanRejected(f"an attribute key is over {MAX_KEY_CHARS} characters or holds a NUL")
        out[k] = _value(kv.value, budget, f"attribute {prefix}{k[:100]}", depth)
    return out


def _hex(b: bytes) -> str:
    return b.hex()


def flatten(req: Any, now_ns: int | None = None) -> Decoded:
    """Every span of the request as a SpanRecord, or counted as rejected with a reason."""
    out = Decoded()
    now_ns = now_ns or time.time_ns()
    for rs in req.resource_spans:
        try:
            resource = _attrs(rs.resource.attributes, _Budget())
        except SpanRejected as exc:
            n = sum(len(ss.spans) for ss in rs.scope_spans)
            for _ in range(n):
                out.reject(f"resource: {exc}")
            continue
        for ss in rs.scope_spans:
            scope = ss.scope.name or None
            for sp in ss.spans:
                try:
                    out.spans.append(_span(sp, resource, scope, now_ns))
                except SpanRejected as exc:
                    out.reject(str(exc))
    return out


def _span(sp: Any, resource: dict[str, Any], scope: str | None, now_ns: int) -> SpanRecord:
    tid, sid, pid = sp.trace_id, sp.span_id, sp.parent_span_id
    if len(tid) != 16 or tid == b"\x00" * 16:
        raise SpanRejected(f"a trace id must be 16 bytes (32 hex digits) and not all zero, got {len(tid)} bytes")
    if len(sid) != 8 or sid == b"\x00" * 8:
        raise SpanRejected(f"a span id must be 8 bytes (16 hex digits) and not all zero, got {len(sid)} bytes")
    if len(pid) not in (0, 8):
        raise SpanRejected(f"a parent span id must be empty or 8 bytes, got {len(pid)} bytes")
    start, end = sp.start_time_unix_nano, sp.end_time_unix_nano
    if start < PAST_LIMIT_NS:
        raise SpanRejected("start_time_unix_nano is missing or before 2000 (seconds sent as nanoseconds?)")
    if end < start:
        raise SpanRejected("the span ends before it starts")
    if end > now_ns + FUTURE_SLACK_NS:
        raise SpanRejected("the span's timestamps are more than a day in the future")
    name = sp.name
    if len(name) > MAX_NAME_CHARS or "\x00" in name:
        raise SpanRejected(f"a span name must be at most {MAX_NAME_CHARS} characters without NUL")
    budget = _Budget()
    attrs = _attrs(sp.attributes, budget)
    if len(sp.events) > MAX_EVENTS:
        raise SpanRejected(f"the span has more than {MAX_EVENTS} events")
    events = []
    for ev in sp.events:
        if ev.time_unix_nano > now_ns + FUTURE_SLACK_NS:
            raise SpanRejected("an event's timestamp is more than a day in the future")
        events.append({"name": _text(ev.name, budget, "an event name"), "time_unix_nano": ev.time_unix_nano,
                       "attributes": _attrs(ev.attributes, budget)})
    msg = sp.status.message or None
    if msg is not None:
        _text(msg, budget, "the status message")
    return SpanRecord(
        trace_id=_hex(tid), span_id=_hex(sid), parent_span_id=_hex(pid) if pid else None, name=name,
        span_kind=int(sp.kind), start_ns=start, end_ns=end, status=STATUS.get(sp.status.code, "unset"),
        status_message=msg, attributes=attrs, events=events, resource=resource, scope=scope,
        size=budget.chars,
    )


def response(rejected: int, message: str, as_json: bool) -> bytes:
    """An ExportTraceServiceResponse in the request's encoding."""
    if as_json:
        body: dict[str, Any] = {}
        if rejected or message:
            body["partialSuccess"] = {"rejectedSpans": rejected, "errorMessage": message}
        return orjson.dumps(body)
    pb = _pb()
    resp = pb.ExportTraceServiceResponse()
    if rejected or message:
        resp.partial_success.rejected_spans = rejected
        resp.partial_success.error_message = message
    return bytes(resp.SerializeToString())


def status_body(code: int, message: str, as_json: bool) -> bytes:
    """A google.rpc.Status, the body OTLP/HTTP gives every 4xx and 5xx response."""
    if as_json:
        return orjson.dumps({"code": code, "message": message})
    from google.rpc import status_pb2

    return bytes(status_pb2.Status(code=code, message=message).SerializeToString())
