"""Every response of the HTTP API is typed: no free-form object (``dict[str, Any]``) and no
list of them, at any depth, so generated clients (clients/typescript) get real types.

Free-form JSON that is the user's own data (a generation's ``config``, an entity's
``metadata``, an event's ``payload``) is allowed *as a named property of a typed model*;
what is refused is a response, or an item of a response list, that is nothing but an
open object. Routes not converted yet are listed in ``NOT_YET``: the list may only shrink
(a route that becomes typed must leave it, a new untyped route fails)."""

from __future__ import annotations

from typing import Any

from learnloop.api.schema import schema

# Routes whose 2xx JSON answer is still untyped somewhere (issue 15's typed-API sweep).
NOT_YET = {
    "GET /readyz",
    "GET /v1/catalog/fields", "GET /v1/catalog/fields/{schema_name}/{table_name}/{field_name}",
    "PUT /v1/catalog/fields/{schema_name}/{table_name}/{field_name}",
    "GET /v1/dictionary/lookup", "GET /v1/dictionary/terms", "POST /v1/dictionary/terms",
    "GET /v1/documents", "POST /v1/documents", "DELETE /v1/documents/{document_id}",
    "GET /v1/documents/{document_id}", "POST /v1/documents/{document_id}/activate",
    "DELETE /v1/entities/{entity_type}/{entity_id}", "GET /v1/entities/{entity_type}/{entity_id}",
    "PUT /v1/entities/{entity_type}/{entity_id}",
    "GET /v1/events/activity", "GET /v1/events/by-type-day", "POST /v1/events/sql",
    "POST /v1/generations/embed", "GET /v1/generations/{generation_id}/training",
    "GET /v1/generations/{generation_id}/tree",
    "GET /v1/predictions", "POST /v1/predictions", "GET /v1/predictions/models/{model_name}/versions/{model_version}/report",
    "GET /v1/predictions/versions", "GET /v1/predictions/{prediction_id}", "POST /v1/predictions/{prediction_id}/outcome",
    "GET /v1/training/jobs/{job_id}/events", "GET /v1/training/models/{model}/generations",
    "GET /v1/review-queue", "POST /v1/search", "POST /v1/search/similar-successes",
    "GET /v1/generations/{generation_id}/trace", "GET /v1/traces/{trace_id}",
}


def _open(s: dict[str, Any]) -> bool:
    return s.get("type") == "object" and not s.get("properties") and s.get("additionalProperties", True) is not False \
        and s.get("additionalProperties") in (True, None, {})


def untyped(s: dict[str, Any], schemas: dict[str, Any], seen: frozenset[str] = frozenset(), top: bool = True) -> bool:
    """Is ``s`` (or an item/branch of it) an open object where a model should be?"""
    if "$ref" in s:
        name = s["$ref"].rsplit("/", 1)[-1]
        return name not in seen and untyped(schemas[name], schemas, seen | {name}, top)
    if top and _open(s):
        return True
    if s.get("type") == "array":
        return untyped(s.get("items", {}), schemas, seen, top=True)  # an item is a "response" too
    for key in ("anyOf", "oneOf", "allOf"):
        if key in s and any(untyped(x, schemas, seen, top) for x in s[key] if x.get("type") != "null"):
            return True
    # A model's properties may be free-form user data, but lists of open objects are not.
    return any(p.get("type") == "array" and untyped(p, schemas, seen, top=True)
               or ("$ref" in p and untyped(p, schemas, seen, top=False))
               for p in (s.get("properties") or {}).values())


def _untyped_routes() -> set[str]:
    doc = schema()
    schemas = doc["components"]["schemas"]
    out = set()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for code, resp in op["responses"].items():
                content = resp.get("content", {}).get("application/json")
                if code.startswith("2") and content is not None and (
                        not content.get("schema") or untyped(content["schema"], schemas)):
                    out.add(f"{method.upper()} {path}")
    return out


def test_no_new_untyped_response() -> None:
    new = _untyped_routes() - NOT_YET
    assert not new, f"untyped responses (give them a response model): {sorted(new)}"


def test_the_not_yet_list_only_shrinks() -> None:
    typed_now = NOT_YET - _untyped_routes()
    assert not typed_now, f"these are typed now: remove them from NOT_YET: {sorted(typed_now)}"


def test_the_checker_sees_an_open_object() -> None:
    schemas = {"M": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object"}}}},
               "N": {"type": "object", "properties": {"metadata": {"type": "object", "additionalProperties": True}}}}
    assert untyped({"type": "object", "additionalProperties": True}, schemas)
    assert untyped({"type": "array", "items": {"type": "object"}}, schemas)
    assert untyped({"$ref": "#/components/schemas/M"}, schemas)
    assert not untyped({"$ref": "#/components/schemas/N"}, schemas)  # user data inside a model is fine
