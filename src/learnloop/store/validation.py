"""Checks shared by every capability: names, JSON objects, NUL-free text.

PostgreSQL refuses NUL (U+0000) in text and jsonb; we refuse it first, with the field
name, so nothing is half-written and the user knows which value to fix.

What JSON learnloop accepts, in the library and at the API's edge alike
(``learnloop.api.middleware.JsonGuard``): strings that are valid Unicode (no lone
surrogate, which UTF-8 cannot encode), finite numbers, and at most ``MAX_JSON_DEPTH``
levels of nesting (the encoders' own limits sit far above it, around 255 and 1000; no
metadata needs more than a handful). Anything else is an ``InvalidInput`` naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import InvalidInput

MAX_NAME = 200
MAX_JSON_DEPTH = 64
# \u0000 in encoder output is a NUL only if preceded by an even number of backslashes.
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def check_name(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, got {type(value).__name__}", field=what)
    if not value or len(value) > MAX_NAME:
        raise InvalidInput(f"{what} must be 1 to {MAX_NAME} characters", field=what)
    check_text(value, what)
    return value


def check_text(value: str, field: str) -> str:
    if "\x00" in value:
        raise InvalidInput(f"{field} contains a NUL character (U+0000), which cannot be stored", field=field)
    if not value.isascii():
        check_unicode(value, field)
    return value


def check_unicode(value: str, field: str) -> str:
    """Refuse a lone surrogate (``"\\ud800"`` in JSON decodes to one): no UTF-8 for it."""
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{field} is not valid Unicode: a lone surrogate (U+{ord(exc.object[exc.start]):04X}) "
                           f"at character {exc.start}", field=field) from None
    return value


def json_depth_exceeds(value: Any, text: bytes | None = None, limit: int = MAX_JSON_DEPTH) -> bool:
    """Is ``value`` nested more than ``limit`` levels (``[]`` is one level)? With ``text``
    (its JSON), values with no more brackets than the limit are passed without a walk."""
    if text is not None and text.count(b"[") + text.count(b"{") <= limit:
        return False
    # Level by level, containers only, in comprehensions: ~5x faster than a stack of
    # (value, depth) pairs on a 1,000-item bulk body, where every request pays it.
    level = [value] if isinstance(value, _CONTAINERS) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [c for x in level for c in (x.values() if isinstance(x, dict) else x) if isinstance(c, _CONTAINERS)]
    return False


_CONTAINERS = (dict, list, tuple)


def _too_deep(field: str) -> InvalidInput:
    return InvalidInput(f"{field} is nested more than {MAX_JSON_DEPTH} levels deep", field=field)


def check_json(value: Any, field: str) -> Any:
    """A JSON-able value with finite numbers, string keys and no NUL anywhere."""
    json_bytes(value, field)
    return value


def json_bytes(value: Any, field: str) -> bytes:
    """``value`` as JSON text, refusing what PostgreSQL's jsonb or JSON itself cannot hold.

    orjson serialises in C in well under a microsecond for typical payloads, which matters
    on the bulk path (which sends these very bytes, so nothing is serialised twice). It
    writes NaN as null and stops at 64-bit integers, so a payload with a null or one orjson
    refuses takes the stdlib encoder, which tells NaN apart and accepts big integers (jsonb
    stores them).
    """
    try:
        data = orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        msg = str(exc)
        if "surrogates" in msg:
            raise InvalidInput(f"{field} is not valid Unicode: a string holds a lone surrogate", field=field) from None
        if "Recursion" in msg:
            raise _too_deep(field) from None
        data = None
    except TypeError:
        data = None
    if data is None or b"null" in data:
        data = _stdlib_dumps(value, field)
    if b"\\u0000" in data and _ESCAPED_NUL.search(data):
        raise InvalidInput(f"{field} contains a NUL character (U+0000), which cannot be stored", field=field)
    if json_depth_exceeds(value, data):
        raise _too_deep(field)
    return data


def _stdlib_dumps(value: Any, field: str) -> bytes:
    try:
        # ensure_ascii=False, so that a lone surrogate fails the UTF-8 encode below instead
        # of passing as an escape PostgreSQL refuses later.
        return json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
    except ValueError as exc:
        if isinstance(exc, UnicodeEncodeError):
            raise InvalidInput(f"{field} is not valid Unicode: a string holds a lone surrogate", field=field) from None
        if "Out of range float" in str(exc):
            raise InvalidInput(f"{field} contains a NaN or infinite number, which is not valid JSON",
                               field=field) from exc
        raise InvalidInput(f"{field} holds a value that is not JSON ({exc})", field=field) from exc
    except TypeError as exc:
        raise InvalidInput(f"{field} holds a value that is not JSON ({exc})", field=field) from exc
    except RecursionError:
        raise _too_deep(field) from None


def check_object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is dict:  # the common case; ABC isinstance checks are slow
        check_json(value, field)
        return value
    if not isinstance(value, Mapping):
        raise InvalidInput(
            f"{field} must be a JSON object, got {_json_type(value)}", field=field
        )
    check_json(value, field)
    return dict(value)


def check_key(value: Any, field: str = "key") -> str:
    """A JSON key named by the caller (e.g. a config key to group by): a plain string."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a plain string, got {_json_type(value)}", field=field)
    if not value or len(value) > MAX_NAME:
        raise InvalidInput(f"{field} must be 1 to {MAX_NAME} characters", field=field)
    return check_text(value, field)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"
