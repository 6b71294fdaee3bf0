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
    console.rule(f"done in {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
