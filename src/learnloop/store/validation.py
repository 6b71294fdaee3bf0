"""Checks shared by every capability: names, JSON objects, NUL-free text.

PostgreSQL refuses NUL (U+0000) in text and jsonb; we refuse it first, with the field
name, so nothing is half-written and the user knows which value to fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInput

MAX_NAME = 200


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
    return value


def check_json(value: Any, field: str, _depth: int = 0) -> Any:
    """Walk a JSON-like value: NUL-free strings, finite numbers, string keys, bounded depth."""
    if _depth > 64:
        raise InvalidInput(f"{field} is nested too deeply (more than 64 levels)", field=field)
    if isinstance(value, str):
        check_text(value, field)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{field} contains {value}, which is not valid JSON", field=field)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInput(f"{field} has a non-string key {k!r}", field=field)
            check_text(k, field)
            check_json(v, f"{field}.{k}", _depth + 1)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_json(v, f"{field}[{i}]", _depth + 1)
    elif value is None or isinstance(value, bool | int):
        pass
    else:
        raise InvalidInput(f"{field} holds a {type(value).__name__}, which is not JSON", field=field)
    return value


def check_object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
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
