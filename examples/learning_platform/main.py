"""Play the cohort through the platform and show every part of seed 003 at work.

    python -m examples.learning_platform        (after `make install`; uses LEARNLOOP_HOME or ./.learnloop)
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import learnloop

from .app import LearningPlatform
from .consumer import PointsConsumer, relay_once
from .data import CODE, GOALS, TASKS
from .live import serve, watch

AMQP_URL = os.environ.get("LEARNLOOP_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def play(p: LearningPlatform) -> int:
    """Write the cohort's history; returns how many domain events the platform emitted."""
    n = 0
    for user, gid, title, desc, _ in GOALS:
        p.create_goal(user, gid, title, desc)
        n += 1
    for user, goal, tid, text, minutes in TASKS:
        p.add_task(user, goal, tid, text)
        n += 1
        if minutes is not None:
            p.complete_task(tid, minutes)
            n += 1
    for user, sid, tid, code, score, feedback in CODE:
        p.submit_code(user, sid, tid, code)
        n += 1
        if score is not None:
            p.validate_code(sid, score, feedback)
            n += 1
    for _, gid, _, _, done in GOALS:
        if done:
            p.complete_goal(gid)
            n += 1
    return n


def broker_up(url: str = AMQP_URL) -> bool:
    host, port = "127.0.0.1", 5672
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False
    del url


def run(ll: learnloop.Client, *, archive_root: str, out: Callable[[str], None] = print,
        amqp_url: str | None = AMQP_URL) -> dict[str, Any]:
    p = LearningPlatform(ll)
    _, key = ll.events.create_key("live view", ["read"])
    live: list[dict[str, Any]] = []

    def show(ev: dict[str, Any]) -> None:
        live.append(ev)
        out(f"  live  #{ev['id']:<6} {ev['event_type']:<15} {ev['entity_type']}/{ev['entity_id']:<9} by {ev['actor']}")

    start = ll.events.list(limit=1)  # nothing yet for a new tenant; resume point otherwise
    after = start[-1]["id"] if start else 0
    out("== the platform runs; the live view (WebSocket) prints what happens ==")
    with serve(ll) as base, watch(base, key, show, after=after):
        emitted = play(p)
        deadline = time.time() + 30
        watched = sum(1 for e in ll.events.list(limit=10_000) if e["event_type"] in
                      ("goal.created", "goal.completed", "task.completed", "code.validated"))
        while len(live) < watched and time.time() < deadline:
            time.sleep(0.1)

    out("\n== similar completed goals of ana (goals agent) ==")
    similar = p.similar_completed_goals("ana", "I want to build web APIs in Python")
    for g in similar:
        out(f"  {g['similarity']:.2f}  {g['goal_id']}  {g['title']}")
    out("\n== validated code with score > 0.8 like the submission (validation agent) ==")
    code = p.validated_code_like("def read_user(user_id, db=Depends(get_db)): return db.get(User, user_id)")
    for c in code:
        out(f"  {c['similarity']:.2f}  {c['snapshot_id']} by {c['user']} (score {c['score']})")

    archived = ll.events.archive(root=archive_root)
    report = p.report(root=archive_root)
    out(f"\n== archive: {archived['events']} events written to Parquet under {archive_root} ==")
    out("  " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in report.items()))
    productivity = p.productivity(7, root=archive_root)
    for row in productivity:
        out(f"  {row['user']:<5} {row['tasks_completed']} tasks, {row['minutes']} min, {row['active_days']} active day(s)")

    points: dict[str, float] = {}
    if amqp_url is not None and broker_up(amqp_url):
        consumer = PointsConsumer(amqp_url, queue=f"learning_platform.points.{uuid.uuid4().hex[:8]}")
        try:
            published = relay_once(ll, amqp_url)
            consumer.drain()
        finally:
            consumer.delete()
        points = dict(consumer.points)
        out(f"\n== RabbitMQ: relay published {published} events; the points consumer handled "
            f"{len(consumer.handled)} domain events ==")
        for user, pts in sorted(points.items(), key=lambda kv: -kv[1]):
            out(f"  {user:<5} {pts:g} points")
    else:
        out("\n(RabbitMQ not reachable at 127.0.0.1:5672: relay and consumer skipped)")
    return {"emitted": emitted, "live": live, "similar": similar, "code": code, "report": report,
            "productivity": productivity, "points": points}


def main() -> None:
    home = os.environ.get("LEARNLOOP_HOME") or os.path.join(os.getcwd(), ".learnloop")
    tenant = f"learning-platform-{time.strftime('%Y%m%d-%H%M%S')}"
    with learnloop.connect(home=home, tenant=tenant, project="platform") as ll:
        run(ll, archive_root=os.path.join(home, "archive"))


if __name__ == "__main__":
    main()
