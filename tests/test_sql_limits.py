"""User SQL is bounded (issue 14, finding 6): a read key ran a 60 s query, and the DuckDB
connection could take 18.8 GiB. Now: a time limit, a memory limit, a few at once per key."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import learnloop
from learnloop.api import create_app
from learnloop.config import get_settings
from learnloop.events.query import QueryLimitExceeded, TooManyQueries

SLOW = "SELECT count(*) FROM range(100000000000) a"  # minutes, unbounded
HUNGRY = "SELECT list(i) FROM range(200000000) t(i)"  # GBs


@pytest.fixture(scope="module")
def ll(db_url: str) -> Iterator[learnloop.Client]:
    c = learnloop.connect(db_url, tenant="sql-limits", sql_timeout=1.0, sql_memory_limit="64MB", sql_concurrency=1)
    c.log(kind="chat", prompt="one event at least")
    yield c
    c.close()


def test_defaults_are_safe() -> None:
    s = get_settings()
    assert 0 < s.sql_timeout <= 30 and s.sql_memory_limit == "256MB" and s.sql_threads == 1
    assert 1 <= s.sql_concurrency <= 4


def test_a_query_past_its_time_limit_is_stopped(ll: learnloop.Client) -> None:
    t0 = time.monotonic()
    with pytest.raises(QueryLimitExceeded, match="longer than 1 s"):
        ll.events.sql(SLOW)
    assert time.monotonic() - t0 < 5
    assert ll.events.sql("SELECT count(*) AS n FROM events")["rows"][0][0] >= 1  # and the next one runs


def test_a_query_past_its_memory_limit_is_refused(ll: learnloop.Client) -> None:
    with pytest.raises(QueryLimitExceeded, match="memory"):
        ll.events.sql(HUNGRY)


def _run_slow_in_background(fn: Any) -> tuple[threading.Thread, threading.Event]:
    started = threading.Event()

    def run() -> None:
        started.set()
        try:
            fn()
        except (QueryLimitExceeded, TooManyQueries):
            pass

    t = threading.Thread(target=run)
    t.start()
    started.wait()
    time.sleep(0.3)
    return t, started


def test_one_query_at_a_time_per_caller(ll: learnloop.Client) -> None:
    t, _ = _run_slow_in_background(lambda: ll.events.sql(SLOW))
    with pytest.raises(TooManyQueries):
        ll.events.sql("SELECT 1")
    assert ll.events.sql("SELECT 1", caller="another key")["rows"] == [[1]]
    t.join(10)
    assert ll.events.sql("SELECT 1")["rows"] == [[1]]


def test_api_answers_limits_with_clear_problems(ll: learnloop.Client, tmp_path_factory: pytest.TempPathFactory) -> None:
    _, key = ll.events.create_key("sql-reader", ["read"])
    hdr = {"Authorization": f"Bearer {key}"}
    app = create_app(get_settings(home=tmp_path_factory.mktemp("sqlapi")), client=ll, archive=False)
    with TestClient(app) as tc:
        r = tc.post("/v1/events/sql", headers=hdr, json={"sql": SLOW})
        assert r.status_code == 422 and r.json()["type"].endswith("/query_limit"), r.text
        assert "LEARNLOOP_SQL_TIMEOUT" in r.json()["detail"]
        r = tc.post("/v1/events/sql", headers=hdr, json={"sql": HUNGRY})
        assert r.status_code == 422 and "memory" in r.json()["detail"], r.text
        t, _ = _run_slow_in_background(lambda: tc.post("/v1/events/sql", headers=hdr, json={"sql": SLOW}))
        r = tc.post("/v1/events/sql", headers=hdr, json={"sql": "SELECT 1"})
        t.join(10)
        assert r.status_code == 429, r.text
        assert r.json()["type"].endswith("/too_many_queries") and int(r.headers["Retry-After"]) >= 1
        assert tc.post("/v1/events/sql", headers=hdr, json={"sql": "SELECT 1"}).status_code == 200
