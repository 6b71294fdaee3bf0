"""The filter language against the real database, checked by an independent Python evaluator.

Every filter runs through a real search (exact path, k above the row count, so the hits are
exactly the matching rows) and must select the same rows as ``_matches`` below. Hypothesis
throws arbitrary keys (quotes, SQL, unicode) and values at it: they stay data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learnloop.errors import InvalidInput
from learnloop.knowledge.filters import compile_filter, parse_condition, parse_conditions
from learnloop.knowledge.search import SearchMixin
from learnloop.knowledge.vectors import EmbeddingRow, ensure_index, upsert_embeddings
from learnloop.store.ids import uuid7

MODEL = "test/filters-4"
ROWS: list[dict[str, Any]] = [
    {"status": "completed", "score": 0.9, "lang": "python"},
    {"status": "completed", "score": 0.5, "lang": "go"},
    {"status": "abandoned", "score": 0.95},
    {"status": "completed", "score": "high", "lang": "python"},
    {"score": 4, "lang": "rust", "reviewed": True},
    {"status": None, "lang": "python", "tags": ["a", "b"]},
    {"it's": "quoted", "'; DROP TABLE learnloop.embeddings; --": 1},
    {"nested": {"x": 1}, "date": "2024-05-01"},
    {"date": "2023-12-31", "score": 0.8},
    {},
]


class KB(SearchMixin):
    def __init__(self, c: Any) -> None:
        self._c = c


@pytest.fixture(scope="module")
def kb(client: Any) -> KB:
    rng = np.random.default_rng(3)
    rows = [EmbeddingRow("entity", uuid7(), f"row {i}", rng.standard_normal(4), metadata={**m, "_i": i})
            for i, m in enumerate(ROWS)]
    with client.db.transaction() as conn:
        ensure_index(conn, MODEL, 4)
        upsert_embeddings(conn, client.scope, MODEL, rows)
    return KB(client)


def _hits(kb: KB, where: Any) -> set[int]:
    res = kb.search(np.ones(4, dtype=np.float32), k=100, model=MODEL, where=where, path="exact")
    return {h["metadata"]["_i"] for h in res}


_MISSING = object()


def _cmp(a: Any, b: Any, op: str) -> bool:
    num = (int, float)
    same = (isinstance(a, num) and not isinstance(a, bool) and isinstance(b, num)) or (isinstance(a, str) and isinstance(b, str))
    if not same:
        return False
    return {"lt": a < b, "lte": a <= b, "gt": a > b, "gte": a >= b}[op]


def _eq(have: Any, want: Any) -> bool:
    """JSON containment of {"k": want} in {"k": have}, as jsonb @> defines it for our shapes."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and _eq(have[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and all(any(_eq(h, w) for h in have) for w in want)
    if have is None or want is None:
        return have is None and want is None
    if isinstance(want, bool) or isinstance(have, bool):
        return type(want) is type(have) and want == have
    if isinstance(want, int | float) and isinstance(have, int | float):
        return have == want
    return isinstance(want, str) and isinstance(have, str) and have == want


def _matches(meta: dict[str, Any], where: dict[str, Any]) -> bool:
    for key, value in where.items():
        if key in ("and", "or") and isinstance(value, list):
            results = [_matches(meta, w) for w in value]
            if not (all(results) if key == "and" else any(results)):
                return False
            continue
        ops = value if isinstance(value, dict) else {"eq": value}
        have = meta.get(key, _MISSING)
        for op, arg in ops.items():
            if op == "eq":
                ok = have is not _MISSING and _eq(have, arg)
            elif op == "ne":
                ok = have is _MISSING or not _eq(have, arg)
            elif op == "in":
                ok = have is not _MISSING and any(_eq(have, a) for a in arg)
            elif op == "exists":
                ok = (have is not _MISSING) == arg
            else:
                ok = have is not _MISSING and _cmp(have, arg, op)
            if not ok:
                return False
    return True


def _expected(where: dict[str, Any]) -> set[int]:
    return {i for i, m in enumerate(ROWS) if _matches(m, where)}


CASES = [
    {"status": "completed"},
    {"status": "completed", "lang": "python"},
    {"score": {"gt": 0.8}},
    {"score": {"gte": 0.8}},
    {"score": {"lt": 1}},
    {"score": {"lte": 4, "gt": 0.85}},
    {"score": {"gt": "a"}},                      # strings compare with strings only
    {"status": {"ne": "completed"}},             # includes rows without a status
    {"lang": {"in": ["python", "rust"]}},
    {"reviewed": {"exists": True}},
    {"lang": {"exists": False}},
    {"status": None},
    {"tags": {"eq": ["a"]}},
    {"nested": {"eq": {"x": 1}}},
    {"date": {"gte": "2024-01-01"}},
    {"it's": "quoted"},
    {"'; DROP TABLE learnloop.embeddings; --": 1},
    {"or": [{"status": "abandoned"}, {"lang": "rust"}]},
    {"and": [{"lang": "python"}, {"or": [{"score": {"gt": 0.5}}, {"status": None}]}]},
    {"$or": [{"score": {"$gte": 4}}, {"lang": {"$in": ["go"]}}]},
]


@pytest.mark.parametrize("where", CASES, ids=[str(c) for c in CASES])
def test_filter_selects_exactly_the_rows_python_says(kb: KB, where: dict[str, Any]) -> None:
    expected = _expected({k.lstrip("$"): _strip(v) for k, v in where.items()})
    assert _hits(kb, where) == expected


def _strip(v: Any) -> Any:
    if isinstance(v, dict):
        return {k.lstrip("$"): _strip(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_strip(x) for x in v]
    return v


def test_some_cases_select_what_a_reader_expects(kb: KB) -> None:
    assert _hits(kb, {"score": {"gt": 0.8}}) == {0, 2, 4}       # "high" is a string: never > 0.8
    assert _hits(kb, {"status": {"ne": "completed"}}) == {2, 4, 5, 6, 7, 8, 9}
    assert _hits(kb, {"lang": {"in": ["python", "rust"]}}) == {0, 3, 4, 5}


keys = st.text(min_size=1, max_size=30).filter(lambda s: "\x00" not in s)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-2, 2, allow_nan=False),
                    st.sampled_from(["completed", "python", "high", "2024-01-01"]),
                    st.text(max_size=10).filter(lambda s: "\x00" not in s))
key_pool = st.one_of(st.sampled_from(["status", "score", "lang", "reviewed", "date", "it's"]), keys)


@st.composite
def conditions(draw: Any) -> dict[str, Any]:
    key = draw(key_pool)
    op = draw(st.sampled_from(["eq", "ne", "in", "lt", "lte", "gt", "gte", "exists", "bare"]))
    if op == "bare":
        return {key: draw(scalars)}
    if op == "in":
        return {key: {"in": draw(st.lists(scalars, min_size=1, max_size=3))}}
    if op == "exists":
        return {key: {"exists": draw(st.booleans())}}
    if op in ("lt", "lte", "gt", "gte"):
        return {key: {op: draw(st.one_of(st.integers(-5, 5), st.floats(-2, 2, allow_nan=False),
                                         st.sampled_from(["a", "2024-01-01", "python"])))}}
    return {key: {op: draw(scalars)}}


filters = st.recursive(conditions(), lambda inner: st.builds(
    lambda op, items: {op: items}, st.sampled_from(["and", "or"]), st.lists(inner, min_size=1, max_size=3)),
    max_leaves=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=filters)
def test_any_filter_is_data_and_agrees_with_python(kb: KB, where: dict[str, Any]) -> None:
    assert _hits(kb, where) == _expected(where)


@pytest.mark.parametrize("where,message", [
    ({"status": {"like": "comp%"}}, "unknown filter operator 'like'"),
    ({"status": {"$regex": "x"}}, "unknown filter operator"),
    ({"score": {"gt": [1]}}, "compares numbers or strings"),
    ({"score": {"gt": True}}, "compares numbers or strings"),
    ({"lang": {"in": []}}, "non-empty list"),
    ({"lang": {"in": "python"}}, "non-empty list"),
    ({"x": {"exists": "yes"}}, "true or false"),
    ({"x": {}}, "empty object"),
    ({"or": []}, "at least one"),
    ({"or": ["status"]}, "filter object"),
    ({"a\x00b": 1}, "NUL"),
    ({"a": "b\x00"}, "NUL"),
    ({"a": float("nan")}, "not valid JSON"),
    ("status=completed", "JSON object"),
])
def test_bad_filters_raise_invalid_input_before_any_query(where: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        compile_filter(where)


def test_filter_size_is_bounded() -> None:
    with pytest.raises(InvalidInput, match="more than"):
        compile_filter({"or": [{f"k{i}": i} for i in range(500)]})
    deep: dict[str, Any] = {"a": 1}
    for _ in range(40):
        deep = {"and": [deep]}
    with pytest.raises(InvalidInput, match="nested too deeply"):
        compile_filter(deep)


def test_compiled_sql_never_contains_keys_or_values() -> None:
    evil = "x'); DROP TABLE t; --"
    c = compile_filter({evil: {"gt": evil}, "or": [{evil: {"in": [evil]}}, {evil: {"exists": True}}]})
    assert c is not None
    text = c.sql.as_string(None)
    assert evil not in text and "DROP" not in text
    assert text.count("%s") == len(c.params)


@pytest.mark.parametrize("text,parsed", [
    ("status=completed", {"status": {"eq": "completed"}}),
    ("score>0.8", {"score": {"gt": 0.8}}),
    ("score>=4", {"score": {"gte": 4}}),
    ("score<=4", {"score": {"lte": 4}}),
    ("score<1e3", {"score": {"lt": 1000.0}}),
    ("lang!=go", {"lang": {"ne": "go"}}),
    ("lang~python,go", {"lang": {"in": ["python", "go"]}}),
    ("reviewed?", {"reviewed": {"exists": True}}),
    ('name="42"', {"name": {"eq": "42"}}),
    ("flag=true", {"flag": {"eq": True}}),
    ("note=a=b", {"note": {"eq": "a=b"}}),
])
def test_cli_conditions(text: str, parsed: dict[str, Any]) -> None:
    assert parse_condition(text) == parsed


def test_cli_conditions_bad_and_combined(kb: KB) -> None:
    for bad in ("", "=x", "justakey", "k?v"):
        with pytest.raises(InvalidInput):
            parse_condition(bad)
    where = parse_conditions(["status=completed", "score>0.8"])
    assert _hits(kb, where) == {0}
    assert parse_conditions([]) is None
