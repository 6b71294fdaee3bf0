"""Every breakdown and drivers result checked against an independent computation in Python,
on random ledgers (hypothesis): filters, bands, bins, time buckets, two dimensions,
intervals, tags, empty groups, missing keys, non-numbers under a band, and tenants.

Each example writes its ledger into a tenant of its own (a neighbour tenant with the same
keys is written first), so a count that leaks across tenants fails the comparison.
"""

from __future__ import annotations

import bisect
import math
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

STYLES = ["CYBERPUNK_DARK", "MINIMAL", "BLUEPRINT"]
TAGS = ["TOO_DARK", "TEXT_GLITCH", "WRONG_COLOR"]
BASE = datetime(2026, 3, 28, 20, 0, tzinfo=UTC)  # spans Madrid's DST change

kw_values = st.one_of(st.integers(-50, 900), st.floats(0, 900, allow_nan=False).map(lambda x: round(x, 2)),
                      st.sampled_from(["n/a", True, None]))
generation = st.fixed_dictionaries({
    "style": st.sampled_from([*STYLES, None]),
    "audience": st.sampled_from(["INVESTOR", "ENGINEER"]),
    "kw": st.one_of(kw_values, st.just("missing")),
    "minutes": st.integers(0, 60 * 24 * 40),
    "model": st.sampled_from(["dall-e-3", "sdxl"]),
    "tokens": st.integers(0, 100),
    "latency": st.one_of(st.none(), st.floats(1, 5000, allow_nan=False).map(lambda x: round(x, 1))),
    "feedback": st.lists(st.fixed_dictionaries({
        "sentiment": st.sampled_from(["POSITIVE", "NEGATIVE", "NEUTRAL", None]),
        "rating": st.one_of(st.none(), st.integers(1, 5)),
        "tags": st.lists(st.sampled_from(TAGS), max_size=2, unique=True),
        "source": st.sampled_from(["user", "admin"]),
    }), max_size=3),
    "parent": st.one_of(st.none(), st.integers(0, 1000)),
})
ledgers = st.lists(generation, min_size=0, max_size=40)


def write(client, gens: list[dict[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
    """Store a ledger in a new tenant; half the feedback by single calls, half in bulk."""
    ll = client.scoped(tenant=f"t{uuid.uuid4().hex[:10]}", project="hub")
    rows, stored = [], []
    for g in gens:
        config = {"audience": g["audience"]}
        if g["style"] is not None:
            config["style_preset"] = g["style"]
        context = {} if g["kw"] == "missing" else {"demand_kw": g["kw"]}
        gid = uuid.uuid4()
        parent = stored[g["parent"] % len(stored)]["id"] if g["parent"] is not None and stored else None
        row = {"id": gid, "kind": "image", "config": config, "context": context, "model": g["model"],
               "tokens_in": g["tokens"], "latency_ms": g["latency"], "parent_id": parent,
               "created_at": BASE + timedelta(minutes=g["minutes"])}
        rows.append(row)
        stored.append({**g, **row})
    if rows:
        ll.bulk_log(rows)
    bulk = []
    for i, g in enumerate(stored):
        for j, fb in enumerate(g["feedback"]):
            item = {"generation_id": g["id"], "tags": fb["tags"], "source": fb["source"]}
            if fb["sentiment"]:
                item["sentiment"] = fb["sentiment"]
            if fb["rating"]:
                item["rating"] = fb["rating"]
            if (i + j) % 2:
                bulk.append(item)
            else:
                ll.feedback(g["id"], **{k: v for k, v in item.items() if k != "generation_id"})
    if bulk:
        ll.bulk_feedback(bulk)
    # what the server derived for bulk rows: read it back the way a user would
    for g in stored:
        g["fbs"] = [{"sentiment": f.sentiment, "rating": f.rating, "tags": f.tags, "source": f.source}
                    for f in ll.feedback_for(g["id"])] if g["feedback"] else []
    return ll, stored


# -- the independent computation ---------------------------------------------------------

def verdict(g: dict[str, Any]) -> str | None:
    pos = sum(f["sentiment"] == "POSITIVE" for f in g["fbs"])
    neg = sum(f["sentiment"] == "NEGATIVE" for f in g["fbs"])
    if pos > neg:
        return "POSITIVE"
    if neg > pos:
        return "NEGATIVE"
    return "NEUTRAL" if any(f["sentiment"] for f in g["fbs"]) else None


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def pct_cont(values: list[float], p: float) -> float:
    s = sorted(values)
    pos = p * (len(s) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def pct_disc(values: list[float], p: float) -> float:
    """PostgreSQL's percentile_disc: the value at position ceil(p * n), at least the first."""
    s = sorted(values)
    return s[max(1, math.ceil(p * len(s))) - 1]


def grid_floor(v: float) -> float:
    """The number's floor to two significant digits, in exact decimals (276 -> 270,
    0.0654 -> 0.065, -0.305 -> -0.31): what drives failure cuts its bins there."""
    d = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
    if d == 0:
        return 0.0
    unit = Decimal(1).scaleb(d.adjusted() - 1)
    return float((d / unit).to_integral_value(rounding=ROUND_FLOOR) * unit)


def wilson_ref(k: int, n: int) -> tuple[float | None, float | None]:
    if not n:
        return None, None
    z, p = 1.959963984540054, k / n
    c = (2 * n * p + z * z) / (2 * (n + z * z))
    h = z * math.sqrt(z * z + 4 * n * p * (1 - p)) / (2 * (n + z * z))
    return max(0.0, c - h), min(1.0, c + h)


def bucket_of(dim: str, g: dict[str, Any], edges: list[float] | None) -> list[Any]:
    """The group key(s) a generation falls under for one dimension."""
    if dim == "style":
        return [g["config"].get("style_preset")]
    if dim == "model":
        return [g["model"]]
    if dim == "tag":
        tags = sorted({t for f in g["fbs"] for t in f["tags"]})
        return tags or [None]
    if dim.startswith("band") or dim.startswith("bins"):
        v = g["context"].get("demand_kw")
        return [bisect.bisect_right(edges, v) if is_number(v) and edges else None]
    unit, tz = dim.split("@")
    t = g["created_at"].astimezone(ZoneInfo(tz))
    if unit == "hour":
        return [datetime(t.year, t.month, t.day, t.hour, tzinfo=ZoneInfo(tz))]
    if unit == "day":
        t = t.replace(hour=0, minute=0, second=0, microsecond=0)
    elif unit == "week":
        t = (t - timedelta(days=t.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    elif unit == "month":
        t = t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    # re-attach the zone's offset for that wall time (DST: the offset may differ)
    return [datetime(t.year, t.month, t.day, tzinfo=ZoneInfo(tz))]


def expected(gens: list[dict[str, Any]], dims: list[str], edges: list[list[float] | None]) -> dict[tuple, dict]:
    out: dict[tuple, dict] = defaultdict(lambda: {"attempts": 0, "rated": 0, "negative": 0, "positive": 0,
                                                  "rsum": 0, "rcount": 0, "tokens": 0, "lat": []})
    for g in gens:
        keys: list[tuple] = [()]
        for d, e in zip(dims, edges, strict=True):
            keys = [k + (b,) for k in keys for b in bucket_of(d, g, e)]
        v = verdict(g)
        for k in keys:
            m = out[k]
            m["attempts"] += 1
            m["rated"] += v is not None
            m["negative"] += v == "NEGATIVE"
            m["positive"] += v == "POSITIVE"
            m["rsum"] += sum(f["rating"] or 0 for f in g["fbs"])
            m["rcount"] += sum(f["rating"] is not None for f in g["fbs"])
            m["tokens"] += g["tokens"]
            if g["latency"] is not None:
                m["lat"].append(g["latency"])
    return out


def raw(dim: str, bucket: Any) -> Any:
    if bucket.band is not None:
        return bucket.band
    if bucket.start is not None:
        return bucket.start
    return bucket.value


def check_group(got: Any, m: dict[str, Any]) -> None:
    assert (got.attempts, got.rated, got.negative, got.positive) == (m["attempts"], m["rated"], m["negative"], m["positive"])
    assert got.tokens_in == m["tokens"]
    if m["rated"]:
        assert got.failure_rate == pytest.approx(m["negative"] / m["rated"])
        lo, hi = wilson_ref(m["negative"], m["rated"])
        assert (got.failure_low, got.failure_high) == (pytest.approx(lo), pytest.approx(hi))
        assert got.failure_low <= got.failure_rate <= got.failure_high
    else:
        assert got.failure_rate is got.failure_low is got.failure_high is None
    assert got.avg_rating == (pytest.approx(m["rsum"] / m["rcount"]) if m["rcount"] else None)
    if m["lat"]:
        assert got.latency_p50_ms == pytest.approx(pct_cont(m["lat"], 0.5))
        assert got.latency_p95_ms == pytest.approx(pct_cont(m["lat"], 0.95))
    else:
        assert got.latency_p50_ms is None


def expected_edges(dims: list[str], gens: list[dict[str, Any]]) -> list[list[float] | None]:
    """Each dimension's band edges: the fixed ones, or the quantiles of the numbers (bins=3)."""
    edges: list[list[float] | None] = []
    for d in dims:
        if d == "band":
            edges.append([0.0, 100.0, 500.0])
        elif d == "bins":
            nums = [float(g["context"]["demand_kw"]) for g in gens if is_number(g["context"].get("demand_kw"))]
            edges.append(sorted({pct_cont(nums, f) for f in (1 / 3, 2 / 3)}) if nums else [])
        else:
            edges.append(None)
    return edges


DIMS = {
    "style": "style_preset", "model": "model", "tag": "tag",
    "band": "demand_kw:bands=0,100,500", "bins": "context.demand_kw:bins=3",
    "day@UTC": "day", "day@Europe/Madrid": "day:tz=Europe/Madrid", "week@UTC": "week", "month@America/New_York":
    "month:tz=America/New_York", "hour@Asia/Kolkata": "hour:tz=Asia/Kolkata",
}


@pytest.fixture(scope="module")
def neighbour(client):
    """Another tenant with the same keys, rated harshly: must never be counted."""
    other = client.scoped(tenant="neighbour", project="hub")
    for i in range(30):
        g = other.log(kind="image", config={"style_preset": STYLES[i % 3], "audience": "INVESTOR"},
                      context={"demand_kw": i * 40}, model="dall-e-3", tokens_in=7, latency_ms=3.0)
        other.feedback(g.id, sentiment="NEGATIVE", tags=["TOO_DARK"])
    return other


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(gens=ledgers, dims=st.lists(st.sampled_from(sorted(DIMS)), min_size=0, max_size=2, unique=True),
       audience=st.sampled_from([None, "INVESTOR"]), min_kw=st.sampled_from([None, 100]))
def test_breakdown_matches_python(client, neighbour, gens, dims, audience, min_kw):
    ll, stored = write(client, gens)
    where: dict[str, Any] = {}
    if audience:
        where["audience"] = audience
    if min_kw is not None:
        where["demand_kw"] = {"gte": min_kw}
    keep = [g for g in stored
            if (not audience or g["config"]["audience"] == audience)
            and (min_kw is None or (is_number(g["context"].get("demand_kw")) and g["context"]["demand_kw"] >= min_kw))]
    b = ll.analytics.breakdown([DIMS[d] for d in dims], where or None)
    edges = expected_edges(dims, keep)
    for d, e, info in zip(dims, edges, b.dimensions, strict=True):
        if d == "bins":
            assert info.edges == pytest.approx(e)
    want = expected(keep, dims, edges)
    check_group(b.total, expected(keep, [], [])[()] if keep else expected([], [], [])[()])
    if not dims:
        assert b.groups == []
        return
    got = {tuple(raw(d, bk) for d, bk in zip(dims, gr.by, strict=True)): gr for gr in b.groups}
    for k, m in want.items():
        assert k in got, (k, sorted(got, key=str))
        check_group(got[k], m)
    extra = [k for k in got if k not in want]
    for k in extra:  # only empty bands may be listed without rows
        assert got[k].attempts == 0
        assert any(d in ("band", "bins") and k[i] is not None for i, d in enumerate(dims))
    if "band" in dims and keep:  # every band is listed, empty or not, for each other value
        i = dims.index("band")
        others = {k[1 - i] for k in want} if len(dims) == 2 else {None}
        for o in others:
            for band in range(4):
                k = (band,) if len(dims) == 1 else ((band, o) if i == 0 else (o, band))
                assert k in got


def drivers_ref(gens: list[dict[str, Any]], min_rated: int) -> dict[str, dict[str, Any]]:
    """Per source.key: differs and spread, following the documented rules (rated
    generations only: keys, bins and groups are theirs)."""
    out = {}
    gens = [g for g in gens if verdict(g)]
    for src in ("config", "context"):
        keys = sorted({k for g in gens for k, v in g[src].items() if v is not None})
        for key in keys:
            kinds = {g["kind"] for g in gens if g[src].get(key) is not None}  # compared among these
            vals = [g[src][key] for g in gens if g[src].get(key) is not None]
            distinct = {(type(v).__name__ if not is_number(v) else "n", v) for v in vals}
            nums = [v for v in vals if is_number(v)]
            numeric = len(nums) >= 0.9 * len(vals) and len(distinct) > 12
            if not numeric and len(distinct) > 50:
                continue
            groups: dict[Any, list[str | None]] = defaultdict(list)
            e: list[float] | None = None
            if numeric:
                e = sorted({grid_floor(pct_disc(nums, f)) for f in (0.25, 0.5, 0.75)})
            for g in gens:
                if g["kind"] not in kinds:
                    continue
                v = g[src].get(key)
                if numeric:
                    b = bisect.bisect_right(e, v) if is_number(v) else None
                else:
                    b = None if v is None else (v if isinstance(v, str) else repr(v))
                groups[b].append(verdict(g))
            stats = []
            for vs in groups.values():
                rated = sum(v is not None for v in vs)
                neg = sum(v == "NEGATIVE" for v in vs)
                if rated >= min_rated:
                    stats.append((neg / rated, *wilson_ref(neg, rated)))
            spread = differs = None
            if len(stats) >= 2:
                spread = max(s[0] for s in stats) - min(s[0] for s in stats)
                differs = max(s[1] for s in stats) > min(s[2] for s in stats)
            out[f"{src}.{key}"] = {"spread": spread, "differs": bool(differs), "groups": len(groups), "edges": e}
    return out


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(gens=st.lists(generation, min_size=0, max_size=60), min_rated=st.sampled_from([1, 2, 3]))
def test_drivers_match_python(client, neighbour, gens, min_rated):
    ll, stored = write(client, gens)
    d = ll.analytics.drivers(min_rated=min_rated)
    want = drivers_ref(stored, min_rated)
    got = {f"{x.source}.{x.key}": x for x in d.drivers}
    assert set(got) == set(want)
    for name, w in want.items():
        assert got[name].differs == w["differs"], name
        assert got[name].spread == (pytest.approx(w["spread"]) if w["spread"] is not None else None)
        assert len(got[name].groups) == w["groups"]
        assert got[name].edges == w["edges"], name
    assert set(d.no_difference) == {n for n, w in want.items() if not w["differs"]}
    ranked = [x.differs for x in d.drivers]
    assert ranked == sorted(ranked, reverse=True)  # keys that differ come first
    rated = [verdict(g) for g in stored if verdict(g)]
    assert d.rated == len(rated)


def test_drivers_compare_a_key_among_the_kinds_that_carry_it(client):
    """Chats have no style preset and fail twice as often as images; the presets make no
    difference among images. Counting chats as the preset's "missing" group would rank
    style_preset as a driver; among images it is not."""
    ll = client.scoped(tenant=f"t{uuid.uuid4().hex[:10]}", project="hub")
    rows, fb = [], []
    for i in range(400):
        gid = uuid.uuid4()
        if i % 2:
            rows.append({"id": gid, "kind": "chat", "config": {"temperature_band": "low"}})
            bad = i % 10 < 6  # 60% of chats fail
        else:
            rows.append({"id": gid, "kind": "image", "config": {"style_preset": STYLES[i % 3]}})
            bad = i % 10 < 2 or (i % 10 == 4 and i % 3 == 0)  # ~20-27% whatever the preset
        fb.append({"generation_id": gid, "sentiment": "NEGATIVE" if bad else "POSITIVE"})
    ll.bulk_log(rows)
    ll.bulk_feedback(fb)
    d = ll.analytics.drivers(min_rated=20)
    preset = next(x for x in d.drivers if x.key == "style_preset")
    assert {g.bucket.value for g in preset.groups} == set(STYLES)  # no "(none)" group of chats
    assert sum(g.rated for g in preset.groups) == 200
    assert not preset.differs and "config.style_preset" in d.no_difference
    assert d.rated == 400  # the totals still count every rated generation
    images = ll.analytics.drivers(min_rated=20, kind=["image"])
    same = next(x for x in images.drivers if x.key == "style_preset")
    assert [g.model_dump() for g in same.groups] == [g.model_dump() for g in preset.groups]


def test_two_banded_keys_list_every_band_against_the_others_missing_value(client):
    """Two banded dimensions: the whole grid of bands, and each band against the other's
    missing values (found by the hypothesis test above: the row of generations without a
    demand listed only the bands that had rows). A group of nothing but missing values is
    listed only when generations fall in it."""
    ll = client.scoped(tenant=f"t{uuid.uuid4().hex[:10]}", project="hub")
    ll.bulk_log([{"kind": "image", "config": {"style_preset": "MINIMAL"}, "context": {"demand_kw": 50}},
                 {"kind": "image", "config": {"style_preset": "MINIMAL"}, "context": {}},
                 {"kind": "image", "config": {"style_preset": "MINIMAL"}, "context": {"cost_eur": 10}}])
    b = ll.analytics.breakdown(["demand_kw:bands=0,100,500", "context.cost_eur:bands=100"], latency=False)
    got = {(g.by[0].band, g.by[1].band): g.attempts for g in b.groups}
    for kw in range(4):  # every demand band, against each cost band and against the missing cost
        for cost in (0, 1, None):  # one edge: below 100, from 100
            assert (kw, cost) in got, (kw, cost)
    for cost in range(2):  # and every cost band against the missing demand (which occurs)
        assert (None, cost) in got, cost
    assert got[(1, None)] == 1 and got[(None, 0)] == 1 and got[(None, None)] == 1
    assert sum(got.values()) == 3
    only = ll.analytics.breakdown(["demand_kw:bands=0,100,500", "context.cost_eur:bands=100"], latency=False,
                                  where={"demand_kw": {"exists": True}})
    assert (None, None) not in {(g.by[0].band, g.by[1].band) for g in only.groups}
