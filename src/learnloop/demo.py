"""``make demo``: the learning loop on real data, end to end, on the embedded server.

Each capability contributes a section (``learnloop.<capability>.demo:run``); a section
whose module is not there yet is skipped with a note.
"""

from __future__ import annotations

import importlib
import time

from rich.console import Console

SECTIONS = [
    ("ledger", "learnloop.ledger.demo"),
    ("image engine", "learnloop.ledger.demo_images"),
    ("knowledge", "learnloop.knowledge.demo"),
    ("training", "learnloop.training.demo"),
    ("service", "learnloop.events.demo"),
]


def main() -> None:
    import learnloop

    console = Console()
    t0 = time.perf_counter()
    console.rule("[bold]learnloop demo")
    with learnloop.connect(project="demo") as ll:
        console.print(f"database: {ll.db.url}")
        for name, module in SECTIONS:
            try:
                mod = importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name == module:
                    console.print(f"[dim]({name}: not built yet)[/]")
                    continue
                raise
            console.rule(f"[bold]{name}")
            mod.run(ll, console)
        # The analytics rollup over what the sections wrote (the server keeps it current).
        r = ll.analytics.refresh()
        if r.available:
            console.print(f"analytics rollup: {r.days} days rebuilt in {r.seconds:.1f}s")
        home, project = ll.settings.home, ll.scope.project
        # Last: an interrupted run leaves no marker, and `make serve` finishes it.
        from .console.demo_data import mark_complete

        mark_complete(ll)
    console.rule(f"done in {time.perf_counter() - t0:.1f}s")
    # Plain print: the console would wrap a long path, and these lines are meant to be copied.
    print(look_at_it(str(home), project), flush=True)


def look_at_it(home: str, project: str) -> str:
    """How to look at the demo's data afterwards: its home and project are not the CLI's
    defaults, so `learnloop review list` alone shows nothing."""
    import shlex

    env = f"LEARNLOOP_HOME={shlex.quote(home)}"
    return "\n".join([
        f"The demo's data is in {home} (LEARNLOOP_HOME), project '{project}'. To look at it:",
        f"  export {env}",
        f"  .venv/bin/learnloop --project {project} review list",
        f"  .venv/bin/learnloop --project {project} stats failure-rate --by author",
        f"  .venv/bin/learnloop --project {project} serve --create-key     # the HTTP API on it",
    ])


if __name__ == "__main__":
    main()
