"""The daily rollup (analytics/rollup.py) never changes an answer: breakdowns read from a
rollup built halfway through a ledger's life, then written to again (new generations in
built days, feedback on old ones), match the independent Python computation; a write that
lands while a refresh runs keeps its day read from the ledger; keys too varied to roll up
are read from the ledger and still counted right."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learnloop.analytics import lineage_rollup, rollup

from .test_analytics_breakdown import (
    BASE,
    DIMS,
    check_group,
    drivers_ref,
    expected,
    expected_edges,
    generation,
    neighbour,  # noqa: F401  (fixture: another tenant that must never be counted)
    raw,
    verdict,
)


def _store(ll, gens: list[dict[str, Any]], stored: list[dict[str, Any]], single: bool = False) -> None:
    """Log ``gens`` (parents among everything stored so far) and their feedback; by
    ``bulk_log`` or, with ``single``, every other generation by ``log``."""
    rows, new = [], []
    for g in gens:
        config = {"audience": g["audience"]}
        if g["style"] is not None:
            config["style_preset"] = g["style"]
        context = {} if g["kw"] == "missing" else {"demand_kw": g["kw"]}
        pool = stored + new
        parent = pool[g["parent"] % len(pool)]["id"] if g["parent"] is not None and pool else None
        row = {"id": uuid.uuid4(), "kind": "image", "config": config, "context": context, "model": g["model"],
               "tokens_in": g["tokens"], "latency_ms": g["latency"], "parent_id": parent,
               "created_at": BASE + timedelta(minutes=g["minutes"])}
        rows.append(row)
        new.append({**g, **row})
    pending: list[dict[str, Any]] = []
    for i, r in enumerate(rows):  # in order: a parent is stored before its children
        if single and i % 2 == 0:
            if pending:
                ll.bulk_log(pending)
                pending = []
            ll.log(**r)
        else:
            pending.append(r)
    if pending:
        ll.bulk_log(pending)
    stored += new
    for g in new:
        for fb in g["feedback"]:
            _feedback(ll, g, fb)


def _feedback(ll, g: dict[str, Any], fb: dict[str, Any]) -> None:
    item: dict[str, Any] = {"tags": fb["tags"], "source": fb["source"]}
    if fb["sentiment"]:
        item["sentiment"] = fb["sentiment"]
    if fb["rating"]:
        item["rating"] = fb["rating"]
    ll.feedback(g["id"], **item)


def late_votes(n: int) -> st.SearchStrategy[list[tuple[int, dict[str, Any]]]]:
    """Up to ``n`` votes on generations already stored (index, feedback)."""
    return st.lists(st.tuples(st.integers(0, 1000), st.fixed_dictionaries({
        "sentiment": st.sampled_from(["POSITIVE", "NEGATIVE", None]), "rating": st.none(),
        "tags": st.lists(st.sampled_from(["TOO_DARK", "LATE_TAG"]), max_size=1), "source": st.just("admin")})),
        max_size=n)


def _vote_late(ll, stored: list[dict[str, Any]], late: list[tuple[int, dict[str, Any]]]) -> None:
    """Votes on stored generations (built days among them): every other one by ``feedback``,
    the rest in one ``bulk_feedback``."""
    for i, fb in late[::2]:
        _feedback(ll, stored[i % len(stored)], fb)
    if late[1::2]:
        ll.bulk_feedback([{"generation_id": stored[i % len(stored)]["id"], **{k: v for k, v in fb.items() if v}}
                          for i, fb in late[1::2]])


def _read_back(ll, stored: list[dict[str, Any]]) -> None:
    for g in stored:
        g["fbs"] = [{"sentiment": f.sentiment, "rating": f.rating, "tags": f.tags, "source": f.source}
                    for f in ll.feedback_for(g["id"])]


def _no_latency(want: dict[tuple, dict]) -> dict[tuple, dict]:
    for m in want.values():
        m["lat"] = []  # the rollup answers breakdowns asked without latency percentiles
    return want


def _compare(ll, stored: list[dict[str, Any]], dims: list[str]) -> None:
    b = ll.analytics.breakdown([DIMS[d] for d in dims], latency=False)
    edges = expected_edges(dims, stored)
    check_group(b.total, _no_latency(expected(stored, [], []))[()])
    if not dims:
        return
    want = _no_latency(expected(stored, dims, edges))
    got = {tuple(raw(d, bk) for d, bk in zip(dims, gr.by, strict=True)): gr for gr in b.groups}
    for k, m in want.items():
        assert k in got, (k, sorted(got, key=str))
        check_group(got[k], m)
    for k in got:
        if k not in want:
            assert got[k].attempts == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(before=st.lists(generation, min_size=1, max_size=30), after=st.lists(generation, max_size=15),
       late=late_votes(5),
       dims=st.lists(st.sampled_from(["style", "model", "tag", "band", "bins", "day@UTC", "week@UTC"]),
                     min_size=0, max_size=2, unique=True), wide=st.booleans())
def test_breakdowns_through_the_rollup_match_python(client, neighbour, monkeypatch, before, after, late, dims,  # noqa: F811
                                                    wide):
    ll = client.scoped(tenant=f"r{uuid.uuid4().hex[:10]}", project="hub")
    stored: list[dict[str, Any]] = []
    _store(ll, before, stored)
    neighbour.analytics.refresh()
    if wide:  # every key with over 2 values a day wide: demand_kw's numbers on the grid
        monkeypatch.setattr(rollup, "MAX_VALUES_A_DAY", 2)
    built = ll.analytics.refresh()
    monkeypatch.undo()
    assert built.days >= 1 and built.pending == 0
    # Then the ledger moves on: new generations (in built days and new ones), feedback on
    # generations whose days are built.
    _store(ll, after, stored, single=True)
    _vote_late(ll, stored, late)
    _read_back(ll, stored)
    _compare(ll, stored, dims)
    ll.analytics.refresh()
    _compare(ll, stored, dims)


def test_a_write_during_a_refresh_keeps_its_day_read_from_the_ledger(client):
    ll = client.scoped(tenant=f"r{uuid.uuid4().hex[:10]}", project="hub")
    g = ll.log(kind="image", config={"style_preset": "MINIMAL"}, created_at=BASE)
    ll.feedback(g.id, sentiment="NEGATIVE")
    with client.db.connection() as a:
        with a.transaction():
            a.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            marked = a.execute("SELECT DISTINCT project_id, day FROM learnloop.analytics_dirty WHERE tenant_id = %s",
                               (ll.scope.tenant_id,)).fetchall()
            # Another session rates the generation after the refresh's snapshot was taken.
            ll.feedback(g.id, sentiment="POSITIVE", source="admin")
            ll.feedback(g.id, sentiment="POSITIVE", source="admin")
            rollup._build(a, ll.scope.tenant_id, [r["project_id"] for r in marked], [r["day"] for r in marked])
    again = ll.analytics.refresh(max_days=0)
    assert again.pending == 1  # the late feedback's mark survived the rebuild of its day
    b1 = ll.analytics.breakdown(["style_preset"], latency=False)
    assert [(x.by[0].value, x.rated, x.positive, x.negative) for x in b1.groups] == [("MINIMAL", 1, 1, 0)]
    ll.analytics.refresh()
    assert ll.analytics.breakdown(["style_preset"], latency=False).groups == b1.groups


def test_keys_too_varied_to_roll_up_are_read_from_the_ledger(client):
    ll = client.scoped(tenant=f"r{uuid.uuid4().hex[:10]}", project="hub")
    n = rollup.MAX_VALUES_A_DAY + 20
    rows = [{"kind": "image", "config": {"seed": i, "style_preset": "MINIMAL" if i % 2 else "BLUEPRINT"},
             "created_at": BASE + timedelta(minutes=i)} for i in range(n)]
    ids = ll.bulk_log(rows)
    ll.bulk_feedback([{"generation_id": gid, "sentiment": "NEGATIVE" if i % 3 == 0 else "POSITIVE"}
                      for i, gid in enumerate(ids)])
    rep = ll.analytics.refresh()
    assert rep.wide_keys == ["config.seed"]
    by_seed = ll.analytics.breakdown(["seed:bands=60"], latency=False)
    assert [(x.by[0].value, x.attempts, x.negative) for x in by_seed.groups] == [
        ("< 60", 60, 20), (">= 60", n - 60, sum(1 for i in range(60, n) if i % 3 == 0))]
    by_style = ll.analytics.breakdown(["style_preset"], latency=False)
    assert {x.by[0].value: x.attempts for x in by_style.groups} == {"MINIMAL": n // 2, "BLUEPRINT": n - n // 2}


def test_wide_numbers_on_the_grid_answer_bands_and_drivers_exactly(client, monkeypatch):
    """A measurement with a value per generation: the rollup keeps its numbers on the grid.
    Days built before the key turned wide are converted; bands on grid edges are read from
    the rollup and equal the ledger's; edges off the grid go to the ledger; drivers cut
    its bins on grid edges with the same counts as the ledger scan."""
    ll = client.scoped(tenant=f"r{uuid.uuid4().hex[:10]}", project="hub")

    def rows(day: int, n: int) -> list[dict[str, Any]]:
        out = []
        for i in range(n):
            kw: Any = round(-40 + (i * 37.77 + day * 11.3) % 1000, 3)
            if i % 7 == 0:  # just below an edge, in a cell that ends there
                kw = [-5.03, -0.004, 99.99, 0.2499, 119.9, 0, 500.0, 499.999, -40.5][(i // 7) % 9]
            if i % 19 == 0:
                kw = "n/a"
            ctx = {} if i % 23 == 0 else {"demand_kw": kw}
            out.append({"kind": "image", "config": {"style_preset": ["MINIMAL", "BLUEPRINT"][i % 2]}, "context": ctx,
                        "created_at": BASE + timedelta(days=day, minutes=i)})
        return out

    def rate(ids: list[Any], salt: int) -> None:
        ll.bulk_feedback([{"generation_id": gid, "sentiment": "NEGATIVE" if (i * 7 + salt) % 10 < 4 else "POSITIVE"}
                          for i, gid in enumerate(ids)])

    rate(ll.bulk_log(rows(0, 60)), 0)  # day 0: few values, rolled up one by one
    assert ll.analytics.refresh().wide_keys == []
    rate(ll.bulk_log(rows(1, rollup.MAX_VALUES_A_DAY + 40)), 1)  # day 1: too many values
    assert ll.analytics.refresh().wide_keys == ["context.demand_kw"]
    with client.db.connection() as conn:
        held = conn.execute("SELECT r.day, count(*) FILTER (WHERE r.value IS NULL) AS cells,"
                            " count(*) FILTER (WHERE r.value IS NOT NULL) AS values FROM learnloop.analytics_days r"
                            " WHERE r.tenant_id = %s AND r.key = 'demand_kw' GROUP BY 1 ORDER BY 1",
                            (ll.scope.tenant_id,)).fetchall()
    assert [(r["cells"] > 0, r["values"]) for r in held] == [(True, 0), (True, 0)]  # day 0 converted
    rate(ll.bulk_log(rows(2, 30)), 2)  # day 2: not built yet, read from the ledger

    reads: list[int] = []
    real_read = rollup.read
    monkeypatch.setattr(rollup, "read", lambda *a, **k: reads.append(1) or real_read(*a, **k))
    for by, from_rollup in (("demand_kw:bands=0,100,500", True), ("demand_kw:bands=-5,0.25,120", True),
                            ("demand_kw:bands=123.4", False)):
        reads.clear()
        got = ll.analytics.breakdown(["day", by], latency=False)
        assert bool(reads) == from_rollup, by
        with monkeypatch.context() as m:
            m.setattr(rollup, "available", lambda conn: False)
            want = ll.analytics.breakdown(["day", by], latency=False)
        assert got == want, by
    got_d = ll.analytics.drivers(min_rated=1)
    kw = next(x for x in got_d.drivers if x.key == "demand_kw")
    assert kw.kind == "bins" and kw.edges and rollup.on_grid(kw.edges)
    with monkeypatch.context() as m:
        m.setattr(rollup, "available", lambda conn: False)
        assert ll.analytics.drivers(min_rated=1) == got_d


def test_numbers_beyond_the_grid_leave_the_key_to_the_ledger(client):
    ll = client.scoped(tenant=f"r{uuid.uuid4().hex[:10]}", project="hub")
    rows = [{"kind": "image", "config": {"x": i * 1.5}, "created_at": BASE + timedelta(minutes=i)}
            for i in range(rollup.MAX_VALUES_A_DAY + 5)]
    rows[3]["config"]["x"] = 1e305
    ll.bulk_log(rows)
    assert ll.analytics.refresh().wide_keys == ["config.x"]
    with client.db.connection() as conn:
        row = conn.execute("SELECT grid FROM learnloop.analytics_wide_keys WHERE tenant_id = %s",
                           (ll.scope.tenant_id,)).fetchone()
        n = conn.execute("SELECT count(*) AS n FROM learnloop.analytics_days WHERE tenant_id = %s AND key = 'x'",
                         (ll.scope.tenant_id,)).fetchone()
    assert row is not None and row["grid"] is False and n is not None and n["n"] == 0
    b = ll.analytics.breakdown(["x:bands=100"], latency=False)
    assert sorted((x.by[0].value, x.attempts) for x in b.groups) == [("< 100", 66), (">= 100", 39)]


def test_a_key_that_turns_wide_and_overflows_the_grid_in_one_pass_is_left_to_the_ledger(client, monkeypatch):
    ll = client.scoped(tenant=f"r{uuid.uuid4().hex[:10]}", project="hub")
    n = rollup.MAX_VALUES_A_DAY + 20
    ll.bulk_log([{"kind": "image", "config": {"x": 10 + i}, "created_at": BASE + timedelta(minutes=i)}
                 for i in range(n)])
    monkeypatch.setattr(rollup, "MAX_CELLS_A_DAY", 50)  # 10..129 take 93 cells
    assert ll.analytics.refresh().wide_keys == ["config.x"]
    monkeypatch.undo()
    with client.db.connection() as conn:
        grid = conn.execute("SELECT grid FROM learnloop.analytics_wide_keys WHERE tenant_id = %s",
                            (ll.scope.tenant_id,)).fetchall()
        rows = conn.execute("SELECT count(*) AS n FROM learnloop.analytics_days WHERE tenant_id = %s AND key = 'x'",
                            (ll.scope.tenant_id,)).fetchone()
    assert [r["grid"] for r in grid] == [False] and rows is not None and rows["n"] == 0
    b = ll.analytics.breakdown(["x:bands=50"], latency=False)
    assert sorted((x.by[0].value, x.attempts) for x in b.groups) == [("< 50", 40), (">= 50", n - 40)]


def test_period_edges_inside_built_days_are_read_from_the_ledger(client):
    ll = client.scoped(tenant=f"r{uuid.uuid4().hex[:10]}", project="hub")
    rows = [{"kind": "image", "config": {"style_preset": "MINIMAL"}, "created_at": BASE + timedelta(hours=h)}
            for h in range(0, 72, 3)]
    ll.bulk_log(rows)
    ll.analytics.refresh()
    since, until = BASE + timedelta(hours=5), BASE + timedelta(hours=50)
    b = ll.analytics.breakdown(["style_preset"], latency=False, since=since, until=until)
    want = sum(1 for r in rows if since <= r["created_at"] < until)
    assert b.total.attempts == want == b.groups[0].attempts


def test_refresh_on_nothing_changed_does_nothing(client):
    ll = client.scoped(tenant=f"r{uuid.uuid4().hex[:10]}", project="hub")
    ll.log(kind="chat", config={"temperature": 0.2}, created_at=BASE)
    assert ll.analytics.refresh().days == 1
    again = ll.analytics.refresh()
    assert (again.days, again.rows, again.pending) == (0, 0, 0)


@pytest.mark.parametrize("bad", [-1, "x"])
def test_refresh_max_days_must_be_a_count(client, bad):
    from learnloop.errors import InvalidInput

    with pytest.raises(InvalidInput):
        client.analytics.refresh(max_days=bad)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(before=st.lists(generation, min_size=1, max_size=40), after=st.lists(generation, max_size=20),
       min_rated=st.sampled_from([1, 2]), wide=st.booleans())
def test_drivers_through_the_rollup_match_python_and_the_ledger(client, neighbour, monkeypatch, before, after,  # noqa: F811
                                                                min_rated, wide):
    ll = client.scoped(tenant=f"r{uuid.uuid4().hex[:10]}", project="hub")
    stored: list[dict[str, Any]] = []
    _store(ll, before, stored)
    if wide:  # demand_kw read by a scan of the rated rows, the rest from the rollup
        monkeypatch.setattr(rollup, "MAX_VALUES_A_DAY", 2)
    ll.analytics.refresh()
    monkeypatch.undo()
    _store(ll, after, stored)
    _read_back(ll, stored)
    got = ll.analytics.drivers(min_rated=min_rated)
    want = drivers_ref(stored, min_rated)
    assert {f"{x.source}.{x.key}": len(x.groups) for x in got.drivers} == {k: w["groups"] for k, w in want.items()}
    for x in got.drivers:
        w = want[f"{x.source}.{x.key}"]
        assert x.differs == w["differs"]
        assert x.spread == (pytest.approx(w["spread"]) if w["spread"] is not None else None)
        assert x.edges == w["edges"]
    with monkeypatch.context() as m:
        m.setattr(rollup, "available", lambda conn: False)
        assert ll.analytics.drivers(min_rated=min_rated) == got


def test_binned_numbers_through_the_rollup_equal_the_ledger_scan(client, monkeypatch):
    """A numeric key with 40 values (cut in bins), some non-numbers and missing ones,
    some of it logged after the refresh: the rollup's drivers equal the ledger scan's."""
    ll = client.scoped(tenant=f"r{uuid.uuid4().hex[:10]}", project="hub")

    def rows(start: int, n: int) -> list[dict[str, Any]]:
        out = []
        for i in range(start, start + n):
            config: dict[str, Any] = {"style_preset": ["MINIMAL", "BLUEPRINT"][i % 2], "guidance": (i % 40) * 0.5}
            if i % 17 == 0:
                config["guidance"] = "n/a"
            if i % 23 == 0:
                del config["guidance"]
            out.append({"kind": "image", "config": config, "created_at": BASE + timedelta(hours=i)})
        return out

    def rate(ids: list[Any], start: int) -> None:
        ll.bulk_feedback([{"generation_id": gid, "sentiment": "NEGATIVE" if (start + j) % 40 < 12 or (start + j) % 5 == 0
                           else "POSITIVE"} for j, gid in enumerate(ids)])

    first = ll.bulk_log(rows(0, 160))
    rate(first, 0)
    assert ll.analytics.refresh().days >= 6
    later = ll.bulk_log(rows(160, 30))
    rate(later, 160)
    got = ll.analytics.drivers()
    guidance = next(x for x in got.drivers if x.key == "guidance")
    assert guidance.kind == "bins" and guidance.differs
    assert sum(g.rated for g in guidance.groups) == 190
    with monkeypatch.context() as m:
        m.setattr(rollup, "available", lambda conn: False)
        assert ll.analytics.drivers() == got


def test_refresh_from_the_cli_and_the_api(client, db_url):
    """One line from the CLI; a typed report from the API, refused to a read-only key."""
    import os
    import subprocess
    import sys

    from fastapi.testclient import TestClient

    from learnloop.api.app import create_app

    tenant = f"r{uuid.uuid4().hex[:10]}"
    ll = client.scoped(tenant=tenant, project="hub")
    ll.log(kind="chat", config={"temperature": 0.2}, created_at=BASE)
    ll.log(kind="chat", config={"temperature": 0.4}, created_at=BASE + timedelta(days=2))
    _, rw = ll.events.create_key("rw", ["read", "ingest"])
    _, ro = ll.events.create_key("ro", ["read"])
    with TestClient(create_app(client=client, archive=False)) as tc:
        refused = tc.post("/v1/analytics/refresh", headers={"Authorization": f"Bearer {ro}"})
        assert refused.status_code == 403
        r = tc.post("/v1/analytics/refresh", headers={"Authorization": f"Bearer {rw}"})
        assert r.status_code == 200 and r.json()["days"] == 2 and r.json()["pending"] == 0, r.text
        bad = tc.post("/v1/analytics/refresh?max_days=-1", headers={"Authorization": f"Bearer {rw}"})
        assert bad.status_code == 422
    ll.log(kind="chat", config={"temperature": 0.2}, created_at=BASE)
    env = {**os.environ, "LEARNLOOP_DATABASE_URL": db_url, "LEARNLOOP_TENANT": tenant, "LEARNLOOP_PROJECT": "hub"}
    p = subprocess.run([sys.executable, "-m", "learnloop.cli.main", "stats", "refresh"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("rebuilt 1 days") and "0 days still changed" in p.stdout


def test_a_deleted_generation_leaves_the_rollup(client):
    ll = client.scoped(tenant=f"r{uuid.uuid4().hex[:10]}", project="hub")
    keep = ll.log(kind="image", config={"style_preset": "MINIMAL"}, created_at=BASE)
    gone = ll.log(kind="image", config={"style_preset": "BLUEPRINT"}, created_at=BASE + timedelta(hours=1))
    ll.analytics.refresh()
    with client.db.connection() as conn:  # learnloop never deletes a generation; an operator may
        conn.execute("DELETE FROM learnloop.generations WHERE tenant_id = %s AND id = %s", (ll.scope.tenant_id, gone.id))
    for _ in range(2):  # before and after the refresh
        b = ll.analytics.breakdown(["style_preset"], latency=False)
        assert [(x.by[0].value, x.attempts) for x in b.groups] == [("MINIMAL", 1)]
        ll.analytics.refresh()
    assert keep.id


def _tags_ref(stored: list[dict[str, Any]]) -> dict[str, tuple[int, int, float]]:
    rows: Counter[str] = Counter()
    gens: Counter[str] = Counter()
    for g in stored:
        rows.update(t for f in g["fbs"] for t in f["tags"])
        gens.update({t for f in g["fbs"] for t in f["tags"]})
    reviewed = sum(1 for g in stored if g["fbs"])
    return {t: (rows[t], gens[t], gens[t] / reviewed) for t in rows}


def _corrections_ref(stored: list[dict[str, Any]]) -> tuple[int, int, int, dict[int, int], int]:
    """(negative, regenerated, fixed, first positive iteration -> trees, never), over all time."""
    v = {g["id"]: verdict(g) for g in stored}
    children: dict[Any, list[Any]] = defaultdict(list)
    root: dict[Any, Any] = {}
    it: dict[Any, int] = {}
    for g in stored:  # a parent is stored before its children
        p = g["parent_id"]
        root[g["id"]], it[g["id"]] = (root[p], it[p] + 1) if p else (g["id"], 1)
        if p:
            children[p].append(g["id"])
    negative = [x for x in v if v[x] == "NEGATIVE"]
    regenerated = [x for x in negative if children[x]]
    fixed = [x for x in regenerated if any(v[c] == "POSITIVE" for c in children[x])]
    trees: dict[Any, list[Any]] = defaultdict(list)
    for x in v:
        trees[root[x]].append(x)
    first: Counter[int] = Counter()
    never = 0
    for nodes in trees.values():
        if not any(v[x] for x in nodes):
            continue
        pos = [it[x] for x in nodes if v[x] == "POSITIVE"]
        if pos:
            first[min(pos)] += 1
        else:
            never += 1
    return len(negative), len(regenerated), len(fixed), dict(first), never


def _check_lineage(ll, stored: list[dict[str, Any]], *, from_rollup: bool) -> None:
    want_tags = _tags_ref(stored)
    want = _corrections_ref(stored)
    got_tags = ll.analytics.tags()
    assert {t.tag: (t.count, t.generations) for t in got_tags} == {k: x[:2] for k, x in want_tags.items()}
    for t in got_tags:
        assert t.share == pytest.approx(want_tags[t.tag][2])
    assert [t.count for t in got_tags] == sorted((t.count for t in got_tags), reverse=True)
    c = ll.analytics.corrections()
    assert (c.negative, c.regenerated, c.fixed, c.iterations, c.never) == want
    with ll.db.connection() as conn:
        # The rollup answers whenever a built day is unchanged (else the ledger's own query).
        clean = lineage_rollup._days(conn, ll.scope, False) is not None
        assert clean or not from_rollup
        assert (lineage_rollup.all_time_corrections(conn, ll.scope, False) is not None) == clean
        assert (lineage_rollup.all_time_tags(conn, ll.scope, False) is not None) == clean
    # The period form (the ledger's own query) agrees over a period holding everything.
    p = ll.analytics.corrections(since=BASE - timedelta(days=1))
    assert (p.negative, p.regenerated, p.fixed, p.iterations, p.never) == want


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(before=st.lists(generation, min_size=1, max_size=30), after=st.lists(generation, max_size=15),
       late=late_votes(6))
def test_tags_and_corrections_through_the_rollup_match_python(client, neighbour, before, after, late):  # noqa: F811
    """Built days answer from the rollup; children logged later for parents in built days,
    votes on their nodes and new days are read from the ledger, and the sum is exact."""
    ll = client.scoped(tenant=f"r{uuid.uuid4().hex[:10]}", project="hub")
    stored: list[dict[str, Any]] = []
    _store(ll, before, stored)
    neighbour.analytics.refresh()
    assert ll.analytics.refresh().days >= 1
    _store(ll, after, stored, single=True)
    _vote_late(ll, stored, late)
    _read_back(ll, stored)
    _check_lineage(ll, stored, from_rollup=False)
    ll.analytics.refresh()
    _check_lineage(ll, stored, from_rollup=True)


def test_a_regeneration_and_its_vote_move_the_parents_day(client):
    """A child logged days after its parent (by ``log`` or ``bulk_log``), and its vote, change
    what the parent's built day says (regenerated, fixed, the tree's first positive); so does
    deleting the child. Each checked before and after the next refresh."""
    ll = client.scoped(tenant=f"r{uuid.uuid4().hex[:10]}", project="hub")
    other = ll.log(kind="image", created_at=BASE - timedelta(days=2))  # its day stays built and unchanged
    ll.feedback(other.id, sentiment="POSITIVE")
    parents = [ll.log(kind="image", created_at=BASE + timedelta(hours=h)) for h in (0, 1)]
    for p in parents:
        ll.feedback(p.id, sentiment="NEGATIVE", tags=["TOO_DARK"])
    ll.analytics.refresh()

    def check(want: tuple[Any, ...], tags: dict[str, int]) -> None:
        for _ in range(2):
            c = ll.analytics.corrections()
            assert (c.negative, c.regenerated, c.fixed, c.iterations, c.never) == want
            assert {t.tag: t.generations for t in ll.analytics.tags()} == tags
            with ll.db.connection() as conn:
                assert lineage_rollup._days(conn, ll.scope, False) is not None  # the rollup answers
            ll.analytics.refresh()

    check((2, 0, 0, {1: 1}, 2), {"TOO_DARK": 2})
    child = ll.log(kind="image", parent_id=parents[0].id, created_at=BASE + timedelta(days=3))
    check((2, 1, 0, {1: 1}, 2), {"TOO_DARK": 2})
    ll.bulk_log([{"kind": "image", "parent_id": parents[1].id, "created_at": BASE + timedelta(days=4)}])
    check((2, 2, 0, {1: 1}, 2), {"TOO_DARK": 2})
    ll.feedback(child.id, sentiment="POSITIVE", tags=["CLEAR"])
    check((2, 2, 1, {1: 1, 2: 1}, 1), {"TOO_DARK": 2, "CLEAR": 1})
    with client.db.connection() as conn:  # learnloop never deletes a generation; an operator may
        conn.execute("DELETE FROM learnloop.generations WHERE tenant_id = %s AND id = %s", (ll.scope.tenant_id, child.id))
    check((2, 1, 0, {1: 1}, 2), {"TOO_DARK": 2})


@pytest.fixture(scope="module")
def two_projects_built(client):
    """A tenant with two projects, a generation every 5 hours over 20 days in each, built."""
    tenant = f"r{uuid.uuid4().hex[:10]}"
    for name in ("east", "west"):
        ll = client.scoped(tenant=tenant, project=name)
        ll.bulk_log([{"kind": "image", "config": {"style_preset": "MINIMAL"}, "created_at": BASE + timedelta(hours=h)}
                     for h in range(0, 20 * 24, 5)])
    ll.analytics.refresh()
    with client.db.connection() as conn:
        rows = conn.execute("SELECT DISTINCT b.project_id, b.day FROM learnloop.analytics_built b"
                            " WHERE b.tenant_id = %s ORDER BY 1, 2", [ll.scope.tenant_id]).fetchall()
    return ll, [(r["project_id"], r["day"]) for r in rows]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.lists(st.booleans(), min_size=60, max_size=60), spans=st.sampled_from([1, 50]))
def test_days_as_spans_read_the_same_rollup_rows_as_the_pairs(two_projects_built, monkeypatch, picks, spans):
    """Any subset of built (project, day) pairs, holes included, selects the same rollup
    rows written as spans per project as listed pair by pair (and with more projects than
    spans, as the pairs themselves)."""
    ll, pairs = two_projects_built
    assert len({p for p, _ in pairs}) == 2 and 40 <= len(pairs) <= 60  # 20 days (21 calendar days) each
    monkeypatch.setattr(rollup, "MAX_DAY_SPANS", spans)
    chosen = [p for p, keep in zip(pairs, picks, strict=False) if keep]
    text, params = rollup.days_frag([p for p, _ in chosen], [d for _, d in chosen])
    from psycopg import sql
    count = sql.SQL("SELECT count(*) AS n, coalesce(sum(r.attempts), 0) AS a FROM learnloop.analytics_days r"
                    " WHERE r.tenant_id = %s AND ")
    with ll.db.connection() as conn:
        got = conn.execute(count + text, [ll.scope.tenant_id, *params]).fetchone()
        want = conn.execute(count + sql.SQL("(r.project_id, r.day) IN (SELECT * FROM unnest(%s::uuid[], %s::date[]))"),
                            [ll.scope.tenant_id, [p for p, _ in chosen], [d for _, d in chosen]]).fetchone()
    assert got == want
    assert (got["a"] > 0) == bool(chosen)
