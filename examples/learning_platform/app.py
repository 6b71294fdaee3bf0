"""The learning platform of seed 003 on learnloop's library.

Goals, tasks and code snapshots are app **entities** (entity_type, entity_id, user_ref,
metadata): their text is embedded and their status lives in metadata, so "similar
completed goals of this user" and "validated code with score > 0.8" are one filtered
vector search each. Every domain change also emits an **app event** (``goal.created``,
``task.completed``, ``code.validated``, ...) into learnloop's outbox, from where the
Parquet archive, DuckDB, the live WebSocket stream and the RabbitMQ relay carry it: the
seed's event sourcing without a second pipeline. Status changes are entity *patches*:
the text and the rest of the metadata are not sent again.
"""

from __future__ import annotations

from typing import Any

import learnloop


class LearningPlatform:
    def __init__(self, ll: learnloop.Client) -> None:
        self.ll = ll
        self.kn = ll.knowledge

    # -- goals ---------------------------------------------------------------------------
    def create_goal(self, user: str, goal_id: str, title: str, description: str, *, course: str | None = None) -> None:
        self.kn.upsert_entity("goal", goal_id, f"{title}. {description}", user_ref=user,
                              metadata={"title": title, "status": "active", "course": course})
        self.ll.events.emit("goal.created", entity=("goal", goal_id), user=user, payload={"title": title})

    def complete_goal(self, goal_id: str) -> dict[str, Any]:
        goal = self.kn.patch_entity("goal", goal_id, metadata={"status": "completed"})
        self.ll.events.emit("goal.completed", entity=("goal", goal_id), user=goal["user_ref"])
        return goal

    # -- tasks ---------------------------------------------------------------------------
    def add_task(self, user: str, goal_id: str, task_id: str, text: str) -> None:
        self.kn.upsert_entity("task", task_id, text, user_ref=user, metadata={"goal_id": goal_id, "status": "todo"})
        self.ll.events.emit("task.created", entity=("task", task_id), user=user, payload={"goal_id": goal_id})

    def complete_task(self, task_id: str, minutes: int) -> None:
        task = self.kn.patch_entity("task", task_id, metadata={"status": "done", "minutes": minutes})
        self.ll.events.emit("task.completed", entity=("task", task_id), user=task["user_ref"],
                            payload={"goal_id": task["metadata"]["goal_id"], "minutes": minutes})

    # -- code ----------------------------------------------------------------------------
    def submit_code(self, user: str, snapshot_id: str, task_id: str, code: str, *, language: str = "python") -> None:
        self.kn.upsert_entity("code_snapshot", snapshot_id, code, user_ref=user,
                              metadata={"task_id": task_id, "language": language, "status": "submitted"})
        self.ll.events.emit("code.submitted", entity=("code_snapshot", snapshot_id), user=user,
                            payload={"task_id": task_id, "language": language})

    def validate_code(self, snapshot_id: str, score: float, feedback: str) -> None:
        snap = self.kn.patch_entity("code_snapshot", snapshot_id,
                                    metadata={"status": "validated", "validation_score": score})
        self.ll.events.emit("code.validated", entity=("code_snapshot", snapshot_id), user=snap["user_ref"],
                            payload={"validation_score": score, "feedback": feedback})

    # -- retrieval (the agents' RAG tools) -----------------------------------------------
    def similar_completed_goals(self, user: str, text: str, k: int = 3) -> list[dict[str, Any]]:
        """Goals like ``text`` that this user already completed (seed 003's goals agent)."""
        hits = self.kn.search(text, k, owner_types="entity", entity_types="goal", user=user,
                              where={"status": "completed"})
        return [{"goal_id": h["entity_id"], "title": h["metadata"]["title"], "similarity": round(h["similarity"], 3)}
                for h in hits]

    def validated_code_like(self, code: str, k: int = 3, *, min_score: float = 0.8) -> list[dict[str, Any]]:
        """Validated snapshots scoring above ``min_score``, nearest to ``code`` (validation agent)."""
        hits = self.kn.search(code, k, owner_types="entity", entity_types="code_snapshot",
                              where={"validation_score": {"gt": min_score}})
        return [{"snapshot_id": h["entity_id"], "user": h["user_ref"], "score": h["metadata"]["validation_score"],
                 "similarity": round(h["similarity"], 3), "code": h["content"]} for h in hits]

    # -- analytics over the archive (DuckDB) ---------------------------------------------
    def report(self, *, root: str | None = None) -> dict[str, Any]:
        """Seed 003's metrics: counts per domain event and the mean validation score."""
        out = self.ll.events.sql(
            "SELECT count(*) FILTER (WHERE event_type = 'goal.created') AS goals_created,"
            " count(*) FILTER (WHERE event_type = 'goal.completed') AS goals_completed,"
            " count(*) FILTER (WHERE event_type = 'task.completed') AS tasks_completed,"
            " count(*) FILTER (WHERE event_type = 'code.validated') AS code_validated,"
            " avg(CAST(json_extract(payload, '$.validation_score') AS DOUBLE))"
            "   FILTER (WHERE event_type = 'code.validated') AS avg_validation_score"
            " FROM events", root=root)
        return dict(zip(out["columns"], out["rows"][0], strict=True))

    def productivity(self, days: int = 7, *, root: str | None = None) -> list[dict[str, Any]]:
        """Per user over the last N days (actor = the user of each app event)."""
        con = self.ll.events.duckdb(root=root)  # a DuckDB connection with this tenant's `events` view
        try:
            cur = con.execute(
                "SELECT actor AS user, count(*) FILTER (WHERE event_type = 'task.completed') AS tasks_completed,"
                " sum(CAST(json_extract(payload, '$.minutes') AS INTEGER)) AS minutes,"
                " count(DISTINCT CAST(created_at AS DATE)) AS active_days"
                " FROM events WHERE actor IS NOT NULL AND created_at >= now() - to_days(CAST(? AS INTEGER))"
                " AND event_type LIKE 'task.%' GROUP BY 1 ORDER BY tasks_completed DESC, user", [days])
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        finally:
            con.close()
