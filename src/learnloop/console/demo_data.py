"""``make serve``: run the demo only when a complete run of it is there already.

The demo imports OpenAssistant trees, the image engine's ledger, documents and datasets (a
minute or more, with the embedding model); the data lives under ``LEARNLOOP_HOME`` and
survives restarts, so a second ``make serve`` starts at once on what the first one loaded.

"Loaded" means the demo *finished*: ``learnloop.demo`` writes a marker file as its very last
step (``mark_complete``). A run stopped half-way (Ctrl-C, a crash, a closed laptop) leaves
generations but no marker, and the next ``make serve`` runs the demo again; every section
skips what it already wrote (imports by external id, documents by content hash, datasets by
content), so that run finishes the rest instead of duplicating the first part. The marker
names the database it describes: pointing ``LEARNLOOP_DATABASE_URL`` elsewhere is not
"loaded".
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MARKER = "demo-complete.json"


def _marker(ll: Any) -> Path:
    return Path(ll.settings.home) / MARKER


def _database(ll: Any) -> str:
    # Which database the marker speaks for, without its password.
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(ll.db.url)
    return f"{info.get('host', '')}:{info.get('port', '')}/{info.get('dbname', '')}"


def mark_complete(ll: Any) -> None:
    """Record that the demo ran to its end on this database and project."""
    path = _marker(ll)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"database": _database(ll), "project": ll.scope.project,
                               "finished_at": datetime.now(UTC).isoformat()}))
    tmp.replace(path)  # atomic: a reader never sees half a marker


def demo_complete(ll: Any) -> bool:
    """The demo finished on this database and project (its marker says so) and its
    generations are still there."""
    try:
        m = json.loads(_marker(ll).read_text())
    except (OSError, ValueError):
        return False
    if m.get("database") != _database(ll) or m.get("project") != ll.scope.project:
        return False
    return bool(ll.find(limit=1))


def main() -> None:
    import learnloop

    from ..ledger import demo_images

    with learnloop.connect(project="demo") as ll:
        complete = demo_complete(ll)
        started = bool(ll.find(limit=1))
        # An older demo's image URLs named a host that does not answer; the pictures are
        # served by `learnloop serve` now (no re-demo needed, the library moves the URLs).
        moved = demo_images.relocate(ll) if complete else 0
    if complete:
        if moved:
            print(f"demo images: {moved} output URLs now point at the pictures learnloop serve draws")
        print("demo data already loaded: reusing it (delete .learnloop/ to start over)")
        return
    if started:
        print("the demo's last run did not finish: running it again to complete it")
    from ..demo import main as run_demo

    run_demo()


if __name__ == "__main__":
    main()
