"""Demo section: archive the demo's events to Parquet and query them with DuckDB."""

from __future__ import annotations

from typing import Any


def run(client: Any, console: Any) -> None:
    ev = client.events
    res = ev.archive()
    console.print(f"archived {res['events']} events in {res['files']} Parquet files under {ev.archive_root}")
    rows = ev.by_type_and_day()
    console.print("events by type (archive + live, DuckDB):")
    for r in rows[:6]:
        console.print(f"  {r['day']}  {r['event_type']:<22} {r['events']:>6}")
    out = ev.sql("SELECT count(DISTINCT entity_id) AS generations FROM events WHERE event_type = 'generation.logged'")
    console.print(f"learnloop sql: {out['rows'][0][0]} distinct generations logged")
    console.print("[dim]`make serve` starts the HTTP API on this data and prints a key.[/]")
