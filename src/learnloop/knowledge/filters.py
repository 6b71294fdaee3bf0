"""The metadata filter language: a small, safe subset of Mongo-style filters, compiled to SQL.

    {"status": "completed"}                                   equality
    {"validation_score": {"gt": 0.8}, "language": "python"}   several keys: all must hold
    {"language": {"in": ["python", "go"]}}
    {"reviewed_by": {"exists": True}}
    {"or": [{"status": "completed"}, {"score": {"gte": 4}}]}

Operators: ``eq ne in lt lte gt gte exists`` on a key, ``and or`` over a list of filters
(a leading ``$`` is accepted too: ``$gt``). A dict value is always a set of operators: to
match a nested object write ``{"eq": {...}}``. Keys are top-level metadata keys, taken
literally: ``"a.b"`` is the key ``a.b``.

Invariant: keys and values never become SQL text. Every key and value is a bound parameter;
the only SQL this module writes is its own fixed fragments. A key full of quotes or SQL is
just an odd key that matches nothing; an unknown operator, a non-JSON value or a filter too
large or too deep raises InvalidInput before any query runs.

Semantics worth knowing: ``eq`` is JSON containment (``metadata @> {"k": v}``, served by the
GIN index); ``ne`` also matches rows where the key is missing; ``lt/lte/gt/gte`` compare
numbers with numbers and strings with strings and never match a value of another type.

CLI form (``parse_condition``): ``status=completed``, ``score>0.8``, ``score>=4``,
``lang!=go``, ``lang~python,go`` (in), ``reviewed?`` (exists). The value is read as JSON
when it parses (numbers, true/false/null, "quoted strings"), else as a plain string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from ..errors import InvalidInput
from ..store.validation import check_json, check_key

KEY_OPS = ("eq", "ne", "in", "lt", "lte", "gt", "gte", "exists")
LOGIC_OPS = ("and", "or")
MAX_CLAUSES = 200
MAX_DEPTH = 16
MAX_IN = 1000

_CMP = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


class Compiled:
    """A SQL condition and its parameters, in placeholder order."""

    def __init__(self, query: sql.Composable, params: list[Any]) -> None:
        self.sql = query
        self.params = params


def compile_filter(where: Mapping[str, Any] | None, column: sql.Composable | None = None) -> Compiled | None:
    """Compile a filter over a jsonb ``column`` (default ``e.metadata``); None if empty."""
    if where is None:
        return None
    if not isinstance(where, Mapping):
        raise InvalidInput(f"a filter must be a JSON object, got {type(where).__name__}", field="where")
    col = column if column is not None else sql.SQL("e.metadata")
    state = {"clauses": 0}
    params: list[Any] = []
    cond = _node(where, col, params, state, 0)
    if cond is None:
        return None
    return Compiled(cond, params)


def _op_name(name: str) -> str:
    return name[1:] if name.startswith("$") else name


def _node(where: Mapping[str, Any], col: sql.Composable, params: list[Any], state: dict[str, int],
          depth: int) -> sql.Composable | None:
    if depth > MAX_DEPTH:
        raise InvalidInput(f"the filter is nested too deeply (more than {MAX_DEPTH} levels)", field="where")
    parts: list[sql.Composable] = []
    for raw_key, value in where.items():
        key = check_key(raw_key, "filter key")
        logic = _op_name(key)
        if logic in LOGIC_OPS and isinstance(value, list | tuple):
            subs = []
            for i, sub in enumerate(value):
                if not isinstance(sub, Mapping):
                    raise InvalidInput(f"each item of {key!r} must be a filter object (item {i} is not)", field="where")
                c = _node(sub, col, params, state, depth + 1)
                if c is not None:
                    subs.append(c)
            if not subs:
                raise InvalidInput(f"{key!r} needs at least one filter", field="where")
            joiner = sql.SQL(" AND ") if logic == "and" else sql.SQL(" OR ")
            parts.append(sql.SQL("({})").format(joiner.join(subs)))
            continue
        if isinstance(value, Mapping):
            # A dict value is always operators; to match a nested object use {"eq": {...}}.
            if not value:
                raise InvalidInput(f"the filter for {key!r} is an empty object; use {{\"eq\": {{}}}} to match one", field="where")
            for op, arg in value.items():
                name = _op_name(op) if isinstance(op, str) else op
                if name not in KEY_OPS:
                    raise InvalidInput(_unknown_op(str(op)), field="where")
                parts.append(_key_op(key, name, arg, col, params, state))
        else:
            parts.append(_key_op(key, "eq", value, col, params, state))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else sql.SQL("({})").format(sql.SQL(" AND ").join(parts))


def _unknown_op(name: str) -> str:
    return f"unknown filter operator {name!r}; use one of {', '.join(KEY_OPS + LOGIC_OPS)}"


def _key_op(key: str, op: str, arg: Any, col: sql.Composable, params: list[Any], state: dict[str, int]) -> sql.Composable:
    state["clauses"] += 1
    if state["clauses"] > MAX_CLAUSES:
        raise InvalidInput(f"the filter has more than {MAX_CLAUSES} conditions", field="where")
    check_json(arg, f"filter value for {key!r}")
    if op == "eq":
        params.append(Jsonb({key: arg}))
        return sql.SQL("({} @> %s)").format(col)
    if op == "ne":
        params.append(Jsonb({key: arg}))
        return sql.SQL("(NOT ({} @> %s))").format(col)
    if op == "in":
        if not isinstance(arg, list | tuple) or not arg:
            raise InvalidInput(f"'in' for {key!r} needs a non-empty list of values", field="where")
        if len(arg) > MAX_IN:
            raise InvalidInput(f"'in' for {key!r} has more than {MAX_IN} values", field="where")
        # An OR of containments, so each one can use the GIN index (a BitmapOr).
        ors = []
        for v in arg:
            params.append(Jsonb({key: v}))
            ors.append(sql.SQL("{} @> %s").format(col))
        return sql.SQL("({})").format(sql.SQL(" OR ").join(ors))
    if op in _CMP:
        if isinstance(arg, bool) or not isinstance(arg, int | float | str):
            raise InvalidInput(f"{op!r} for {key!r} compares numbers or strings, got {json.dumps(arg)}", field="where")
        # jsonb comparison orders values of different types by type, so the type check is
        # what makes "score > 0.8" false (not true) for a score stored as "high".
        params.extend([key, "number" if not isinstance(arg, str) else "string", key, Jsonb(arg)])
        return sql.SQL("(jsonb_typeof({c} -> %s) = %s AND ({c} -> %s) {op} %s)").format(
            c=col, op=sql.SQL(_CMP[op]))
    if op == "exists":
        if not isinstance(arg, bool):
            raise InvalidInput(f"'exists' for {key!r} takes true or false", field="where")
        params.append(key)
        return sql.SQL("({} ? %s)" if arg else "(NOT ({} ? %s))").format(col)
    raise InvalidInput(_unknown_op(op), field="where")


# -- the CLI form --------------------------------------------------------------------------
_COND = re.compile(r"^(?P<key>[^=!<>~?]+?)\s*(?P<op>!=|>=|<=|=|>|<|~|\?)\s*(?P<value>.*)$", re.S)
_CLI_OPS = {"=": "eq", "!=": "ne", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte", "~": "in"}


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_condition(text: str) -> dict[str, Any]:
    """``"score>0.8"`` -> ``{"score": {"gt": 0.8}}`` (see the module docstring)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("a condition must be a non-empty string such as status=completed", field="where")
    m = _COND.match(text.strip())
    if not m:
        raise InvalidInput(
            f"cannot read the condition {text!r}; write key=value, key!=value, key>n, key>=n, "
            "key<n, key<=n, key~a,b (one of) or key? (exists)", field="where")
    key, op, value = m.group("key").strip(), m.group("op"), m.group("value").strip()
    if op == "?":
        if value:
            raise InvalidInput(f"'?' (exists) takes no value in {text!r}", field="where")
        return {key: {"exists": True}}
    if op == "~":
        return {key: {"in": [_value(v.strip()) for v in value.split(",") if v.strip()]}}
    return {key: {_CLI_OPS[op]: _value(value)}}


def parse_conditions(texts: Sequence[str]) -> dict[str, Any] | None:
    """Several CLI conditions, all of which must hold."""
    if not texts:
        return None
    return {"and": [parse_condition(t) for t in texts]}
