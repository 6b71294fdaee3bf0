"""``make serve``: run the demo only when its data is not there yet.

The demo imports OpenAssistant trees, documents and datasets (a minute or more, with the
embedding model); the data lives under ``LEARNLOOP_HOME`` and survives restarts, so a
second ``make serve`` starts at once on what the first one loaded.
"""

from __future__ import annotations


def demo_present(ll: object) -> bool:
    """The demo project holds generations already."""
    from ..store.tenancy import list_projects

    with ll.db.connection() as conn:  # type: ignore[attr-defined]
        names = {p["name"] for p in list_projects(conn, ll.scope.tenant_id)}  # type: ignore[attr-defined]
    return "demo" in names and bool(ll.find(limit=1))  # type: ignore[attr-defined]


def main() -> None:
    import learnloop

    with learnloop.connect(project="demo") as ll:
        present = demo_present(ll)
    if present:
        print("demo data already loaded: reusing it (delete .learnloop/ to start over)")
        return
    from ..demo import main as run_demo

    run_demo()


if __name__ == "__main__":
    main()
