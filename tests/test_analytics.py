"""Each analytics call checked against the same answer computed here in plain Python.

The data set is random (seeded) but shaped like seed 000: style presets with different
failure odds, telemetry with an efficiency number, tags, regenerations of rejected images.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

STYLES = {"CYBERPUNK_DARK": 0.6, "MINIMAL": 0.2, "BLUEPRINT": 0.35}
TAGS = ["TOO_DARK", "TEXT_GLITCH", "WRONG_COLOR", "OFF_BRAND"]


@pytest.fixture(scope="module")
def world(client):
    rnd = random.Random(7)
    ll = client.scoped(project="hub")
    gens: dict[str, dict] = {}
    fbs: list[dict] = []
    base = datetime(2026, 10, 1, tzinfo=UTC)

    def rate(gid: str, style: str) -> None:
        n = rnd.choice([0, 1, 1, 2, 3])
        for _ in range(n):
            kind = rnd.random()
            neg = rnd.random() < STYLES[style]
            tags = rnd.sample(TAGS, rnd.randint(0, 2)) if neg else []
            when = base + timedelta(days=rnd.randint(0, 40))
            if kind < 0.4:
                f = ll.feedback(gid, sentiment="NEGATIVE" if neg else "POSITIVE", tags=tags, created_at=when)
            elif kind < 0.8:
                f = ll.feedback(gid, rating=rnd.choice([1, 2]) if neg else rnd.choice([3, 4, 5]), tags=tags, created_at=when)
            else:
                f = ll.feedback(gid, thumbs=-1 if neg else 1, tags=tags, created_at=when)
            fbs.append({"gid": gid, "sentiment": f.sentiment, "tags": f.tags, "created_at": when, "rating": f.rating})

    for i in range(120):
        style = rnd.choice(list(STYLES))
        ctx = {"efficiency": round(rnd.uniform(0.02, 0.2), 3), "demand_kw": rnd.randint(100, 900)}
        if i % 17 == 0:
            ctx["efficiency"] = "n/a"  # not a number: never matches a numeric condition
        g = ll.log(kind="image", prompt=f"plant {i}", config={"style_preset": style, "audience": rnd.choice(["INVESTOR", "ENGINEER"])},
                   context=ctx, output_url=f"https://cdn/{i}.png")
        gens[str(g.id)] = {"style": style, "ctx": ctx, "parent": None, "root": str(g.id), "it": 1, "created": g.created_at}
        rate(str(g.id), style)
        node, depth = g, 1
        while depth < 4 and rnd.random() < 0.45:
            child = ll.log(kind="image", prompt=f"plant {i} v{depth + 1}", parent_id=node.id,
                           config={"style_preset": style}, context=ctx)
            depth += 1
            gens[str(child.id)] = {"style": style, "ctx": ctx, "parent": str(node.id), "root": str(g.id), "it": depth, "created": child.created_at}
            rate(str(child.id), style)
            node = child
    # Another project and another tenant must never leak into these numbers.
    other = client.scoped(project="elsewhere").log(kind="image", config={"style_preset": "MINIMAL"})
    client.scoped(project="elsewhere").feedback(other.id, sentiment="NEGATIVE", tags=["TOO_DARK"])
    stranger = client.scoped(tenant="acme", project="hub").log(kind="image", config={"style_preset": "MINIMAL"})
    client.scoped(tenant="acme", project="hub").feedback(stranger.id, sentiment="NEGATIVE", tags=["TOO_DARK"])
    return ll, gens, fbs


def verdicts(fbs):
    pos, neg, any_ = Counter(), Counter(), Counter()
    for f in fbs:
        if f["sentiment"] == "POSITIVE":
            pos[f["gid"]] += 1
        elif f["sentiment"] == "NEGATIVE":
            neg[f["gid"]] += 1
        if f["sentiment"]:
            any_[f["gid"]] += 1
    out = {}
    for gid in any_:
        out[gid] = "POSITIVE" if pos[gid] > neg[gid] else "NEGATIVE" if neg[gid] > pos[gid] else "NEUTRAL"
    return out


def test_failure_rate_by_style_matches_python(world):
    ll, gens, fbs = world
    v = verdicts(fbs)
    expect = defaultdict(lambda: {"attempts": 0, "rated": 0, "negative": 0, "positive": 0})
    for gid, g in gens.items():
        e = expect[g["style"]]
        e["attempts"] += 1
        if gid in v:
            e["rated"] += 1
            e["negative"] += v[gid] == "NEGATIVE"
            e["positive"] += v[gid] == "POSITIVE"
    rows = ll.analytics.failure_rate("style_preset")
    got = {r["value"]: r for r in rows}
    assert set(got) == set(STYLES)
    for style, e in expect.items():
        r = got[style]
        assert (r["attempts"], r["rated"], r["negative"], r["positive"]) == (e["attempts"], e["rated"], e["negative"], e["positive"])
        assert r["failure_rate"] == pytest.approx(e["negative"] / e["rated"])
    rates = [r["failure_rate"] for r in rows]
    assert rates == sorted(rates, reverse=True)
    assert rows[0]["value"] == "CYBERPUNK_DARK"  # the style built to fail most does


def test_failure_rate_by_a_key_only_some_rows_have(world):
    ll, gens, fbs = world
    rows = ll.analytics.failure_rate("audience")
    # Regenerations were logged without an audience: they group under None.
    missing = next(r for r in rows if r["value"] is None)
    assert missing["attempts"] == sum(1 for g in gens.values() if g["parent"] is not None)


def test_golden_examples_match_python(world):
    ll, gens, fbs = world
    v = verdicts(fbs)
    expect = [gid for gid, g in gens.items()
              if v.get(gid) == "POSITIVE" and isinstance(g["ctx"]["efficiency"], float) and g["ctx"]["efficiency"] < 0.08]
    expect.sort(key=lambda gid: (gens[gid]["created"], gid), reverse=True)
    rows = ll.analytics.golden([("efficiency", "<", 0.08)], limit=1000)
    assert [str(r["id"]) for r in rows] == expect
    assert all(r["context"]["efficiency"] < 0.08 for r in rows)
    two = ll.analytics.golden(["efficiency<0.08", "demand_kw>=500"], limit=1000)
    assert {str(r["id"]) for r in two} == {gid for gid in expect if gens[gid]["ctx"]["demand_kw"] >= 500}


def test_tag_frequencies_over_a_period_match_python(world):
    ll, gens, fbs = world
    since, until = datetime(2026, 10, 10, tzinfo=UTC), datetime(2026, 10, 25, tzinfo=UTC)
    window = [f for f in fbs if since <= f["created_at"] < until]
    counts = Counter(t for f in window for t in f["tags"])
    gens_with = {t: len({f["gid"] for f in window if t in f["tags"]}) for t in counts}
    rated = len({f["gid"] for f in window})
    rows = ll.analytics.tags(since=since, until=until)
    assert {r["tag"]: r["count"] for r in rows} == dict(counts)
    for r in rows:
        assert r["generations"] == gens_with[r["tag"]]
        assert r["share"] == pytest.approx(gens_with[r["tag"]] / rated)
    assert [r["count"] for r in rows] == sorted((r["count"] for r in rows), reverse=True)


def test_correction_effectiveness_matches_python(world):
    ll, gens, fbs = world
    v = verdicts(fbs)
    children = defaultdict(list)
    for gid, g in gens.items():
        if g["parent"]:
            children[g["parent"]].append(gid)
    negative = [gid for gid in gens if v.get(gid) == "NEGATIVE"]
    regenerated = [gid for gid in negative if children[gid]]
    fixed = [gid for gid in regenerated if any(v.get(c) == "POSITIVE" for c in children[gid])]
    trees = defaultdict(list)
    for gid, g in gens.items():
        trees[g["root"]].append(gid)
    dist, never = Counter(), 0
    for members in trees.values():
        if not any(m in v for m in members):
            continue
        pos = [gens[m]["it"] for m in members if v.get(m) == "POSITIVE"]
        if pos:
            dist[min(pos)] += 1
        else:
            never += 1
    r = ll.analytics.corrections()
    assert (r["negative"], r["regenerated"], r["fixed"]) == (len(negative), len(regenerated), len(fixed))
    assert r["fix_rate"] == pytest.approx(len(fixed) / len(regenerated))
    assert r["iterations"] == dict(dist)
    assert r["never"] == never


def test_all_projects_includes_the_other_project_but_never_another_tenant(world):
    ll, gens, fbs = world
    rows = ll.analytics.failure_rate("style_preset", all_projects=True)
    minimal = next(r for r in rows if r["value"] == "MINIMAL")
    here = next(r for r in ll.analytics.failure_rate("style_preset") if r["value"] == "MINIMAL")
    assert minimal["attempts"] == here["attempts"] + 1  # "elsewhere", not "acme"


@pytest.mark.parametrize("bad", [123, ["a", 7], None, {"k": 1}, "", "a\x00b"])
def test_a_key_that_is_not_a_plain_string_is_refused(world, bad):
    from learnloop import InvalidInput

    ll = world[0]
    with pytest.raises(InvalidInput):
        ll.analytics.failure_rate(bad)


def test_a_key_with_sql_in_it_is_refused_by_name(world):
    from learnloop import InvalidInput

    ll = world[0]
    with pytest.raises(InvalidInput, match="never run as SQL"):
        ll.analytics.failure_rate("style_preset') OR 1=1; DROP TABLE learnloop.generations; --")
    assert ll.analytics.failure_rate("style_preset")  # table still there


def test_golden_rejects_unknown_operators_and_non_numbers(world):
    from learnloop import InvalidInput

    ll = world[0]
    with pytest.raises(InvalidInput, match="operator"):
        ll.analytics.golden([("efficiency", "; DROP", 0.1)])
    with pytest.raises(InvalidInput, match="number"):
        ll.analytics.golden([("efficiency", "<", "0.1")])
    with pytest.raises(InvalidInput, match="condition"):
        ll.analytics.golden(["efficiency is small"])


def test_tag_frequencies_over_all_time_match_python(world):
    # No period: rows come from feedback, generations from the verdict summary's tag sets.
    ll, gens, fbs = world
    counts = Counter(t for f in fbs for t in f["tags"])
    gens_with = {t: len({f["gid"] for f in fbs if t in f["tags"]}) for t in counts}
    rated = len({f["gid"] for f in fbs})
    rows = ll.analytics.tags()
    assert {r["tag"]: r["count"] for r in rows} == dict(counts)
    for r in rows:
        assert r["generations"] == gens_with[r["tag"]]
        assert r["share"] == pytest.approx(gens_with[r["tag"]] / rated)
    assert ll.analytics.tags(since=datetime(2000, 1, 1, tzinfo=UTC)) == rows  # the other path agrees
