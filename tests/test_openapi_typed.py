"""Every response of the HTTP API is typed: no free-form object (``dict[str, Any]``) and no
list of them, at any depth, so generated clients (clients/typescript) get real types.

Free-form JSON that is the user's own data (a generation's ``config``, an entity's
``metadata``, an event's ``payload``) is allowed *as a named property of a typed model*;
what is refused is a response, or an item of a response list, that is nothing but an
open object."""

from __future__ import annotations

from typing import Any

from learnloop.api.schema import schema


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


def test_no_untyped_response() -> None:
    untyped_routes = _untyped_routes()
    assert not untyped_routes, f"untyped responses (give them a response model): {sorted(untyped_routes)}"


def test_the_checker_sees_an_open_object() -> None:
    schemas = {"M": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object"}}}},
               "N": {"type": "object", "properties": {"metadata": {"type": "object", "additionalProperties": True}}}}
    assert untyped({"type": "object", "additionalProperties": True}, schemas)
    assert untyped({"type": "array", "items": {"type": "object"}}, schemas)
    assert untyped({"$ref": "#/components/schemas/M"}, schemas)
    assert not untyped({"$ref": "#/components/schemas/N"}, schemas)  # user data inside a model is fine
