"""Ledger commands: log, feedback, show, find, review, import."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import InvalidInput
from ..ledger.models import LineageNode
from ._common import echo_json, get_client, json_flag, json_option, table, to_jsonable


@click.command("log")
@click.option("--kind", default="completion", show_default=True, help="image, chat, completion, call, code...")
@click.option("--prompt")
@click.option("--negative-prompt")
@click.option("--output", "output_text", help="Output text.")
@click.option("--output-url")
@click.option("--parent", "parent_id", help="Id of the generation this one regenerates.")
@click.option("--config", help='Engine config JSON, e.g. \'{"style_preset": "CYBERPUNK_DARK"}\'.')
@click.option("--context", help='Input context JSON, e.g. \'{"efficiency": 0.06}\'.')
@click.option("--meta", "output_meta", help="Output metadata JSON.")
@click.option("--messages", help="Chat messages JSON array.")
@click.option("--link", "links", multiple=True, help="Business entity, TYPE=ID (repeatable): --link loan=456.")
@click.option("--model")
@click.option("--provider")
@click.option("--user", "user_ref")
@click.option("--session", "session_ref")
@click.option("--external-id")
@click.option("--tokens-in", type=int)
@click.option("--tokens-out", type=int)
@click.option("--latency-ms", type=float)
@click.option("--cost", type=float)
@json_flag
@click.pass_context
def log_cmd(ctx: click.Context, as_json: bool, links: tuple[str, ...], **fields: Any) -> None:
    """Record one AI attempt; prints its id and nothing else (ID=$(learnloop log ...)).
    With --json: the whole stored generation (iteration, root_id, ...)."""
    for name in ("config", "context", "output_meta", "messages"):
        fields[name] = json_option(fields[name], name.replace("output_", ""))
    data = {k: v for k, v in fields.items() if v is not None}
    if links:
        data["links"] = dict(_pair(x, "--link") for x in links)
    g = get_client(ctx).log(data)
    if as_json:
        echo_json(g)
    else:
        click.echo(str(g.id))


def _pair(text: str, opt: str) -> tuple[str, str]:
    key, sep, val = text.partition("=")
    if not sep or not key:
        raise InvalidInput(f"{opt} takes KEY=VALUE, got {text!r}")
    return key, val


@click.command("feedback")
@click.argument("generation_id")
@click.option("--sentiment", help="POSITIVE, NEGATIVE or NEUTRAL (derived from --rating/--thumbs if omitted).")
@click.option("--rating", type=int, help="1 to 5.")
@click.option("--thumbs", type=click.Choice(["up", "down"]))
@click.option("--tag", "tags", multiple=True, help="Repeatable: --tag TOO_DARK --tag TEXT_GLITCH.")
@click.option("--comment")
@click.option("--instruction", help="What the user asked to change.")
@click.option("--corrected-output")
@click.option("--source", type=click.Choice(["user", "admin", "automatic"]), default="user", show_default=True)
@click.option("--author", "author_ref")
@json_flag
@click.pass_context
def feedback_cmd(ctx: click.Context, generation_id: str, as_json: bool, tags: tuple[str, ...], **fields: Any) -> None:
    """Attach feedback to a generation."""
    data = {k: v for k, v in fields.items() if v is not None}
    if tags:
        data["tags"] = list(tags)
    f = get_client(ctx).feedback(generation_id, **data)
    if as_json:
        echo_json(f)
    else:
        click.echo(f"{f.id}  ({f.sentiment or 'no sentiment'})")


TREE_LEGEND = ("#N: iteration (1 = the original, 2 = its first regeneration, ...); "
               "then the id, the verdict of its feedback (POSITIVE green, NEGATIVE red, NEUTRAL yellow, "
               "unrated dim) and the start of its output; '<' marks the generation you asked for.")


@click.command(epilog=f"--tree legend: {TREE_LEGEND}")
@click.argument("generation_id")
@click.option("--tree", is_flag=True, help="Show the whole lineage tree the generation belongs to "
              "(legend below and under the tree).")
@click.option("--path", "path_", is_flag=True, help="Show the path from the original to this generation.")
@json_flag
@click.pass_context
def show(ctx: click.Context, generation_id: str, tree: bool, path_: bool, as_json: bool) -> None:
    """Show a generation with its feedback, its lineage tree or its path."""
    ll = get_client(ctx)
    if tree:
        root = ll.tree(generation_id)
        if as_json:
            echo_json(root)
            return
        from rich.console import Console
        from rich.tree import Tree

        def label(n: LineageNode) -> str:
            text = (n.output_text or n.output_url or n.prompt or "")[:70].replace("\n", " ")
            mark = " <" if str(n.id) == str(generation_id) else ""
            return f"[bold]#{n.iteration}[/] {n.id} [{_color(n.verdict)}]{n.verdict or 'unrated'}[/] {text}{mark}"

        def add(t: Tree, n: LineageNode) -> None:
            for c in n.children:
                add(t.add(label(c)), c)

        t = Tree(label(root))
        add(t, root)
        console = Console()
        console.print(t)
        console.print(f"[dim]{TREE_LEGEND}[/]", highlight=False)
        return
    if path_:
        nodes = ll.path(generation_id)
        if as_json:
            echo_json(nodes)
        else:
            table([n.model_dump() for n in nodes], ["iteration", "id", "prompt", "output_text", "created_at"], title="path")
        return
    g = ll.get(generation_id)
    fb = ll.feedback_for(generation_id)
    if as_json:
        echo_json({**to_jsonable(g), "feedback": to_jsonable(fb)})
        return
    for k, v in g.model_dump().items():
        if v not in (None, {}, []):
            click.echo(f"{k:>16}: {json.dumps(v, default=str) if isinstance(v, dict | list) else v}")
    if fb:
        table([f.model_dump() for f in fb], ["created_at", "sentiment", "rating", "thumbs", "tags", "comment", "instruction", "source"], title="feedback")


def _color(verdict: str | None) -> str:
    return {"POSITIVE": "green", "NEGATIVE": "red", "NEUTRAL": "yellow"}.get(verdict or "", "dim")


@click.command()
@click.option("--where", "where", multiple=True,
              help="Config/context condition (repeatable, all must hold): audience=INVESTOR, demand_kw>500.")
@click.option("--link", "links", multiple=True, help="TYPE=ID, e.g. --link loan=456 (repeatable, all must match).")
@click.option("--kind")
@click.option("--user", "user_ref")
@click.option("--session", "session_ref")
@click.option("--model")
@click.option("--verdict", multiple=True, type=click.Choice(["POSITIVE", "NEGATIVE", "NEUTRAL", "UNRATED"]))
@click.option("--tag", "tags", multiple=True, help="Feedback tag (repeatable, any of).")
@click.option("--after", help="Last id of the previous page (keyset paging).")
@click.option("--limit", default=20, show_default=True)
@json_flag
@click.pass_context
def find(ctx: click.Context, where: tuple[str, ...], links: tuple[str, ...], verdict: tuple[str, ...],
         tags: tuple[str, ...], limit: int, as_json: bool, **filters: Any) -> None:
    """Find generations, e.g. every conversation about loan 456, or
    ``--where audience=INVESTOR --where "demand_kw>500" --verdict NEGATIVE``."""
    f = {k: v for k, v in filters.items() if v is not None}
    if links:
        f["links"] = dict(_pair(x, "--link") for x in links)
    f["filters"] = {"verdict": list(verdict) or None, "tags": list(tags) or None}
    rows = get_client(ctx).find(list(where) or None, limit=limit, **f)
    if as_json:
        echo_json(rows)
    else:
        table([r.model_dump() for r in rows], ["id", "kind", "iteration", "prompt", "links", "created_at"], title=f"{len(rows)} generations")


@click.group()
def review() -> None:
    """The admin review queue (negative feedback waiting to be handled)."""


@review.command("list")
@click.option("--sentiment", default="NEGATIVE", show_default=True, help="Use 'any' for all feedback.")
@click.option("--all", "include_processed", is_flag=True, help="Include processed feedback.")
@click.option("--limit", default=20, show_default=True)
@json_flag
@click.pass_context
def review_list(ctx: click.Context, sentiment: str, include_processed: bool, limit: int, as_json: bool) -> None:
    """Feedback pending review, oldest first."""
    rows = get_client(ctx).review_queue(
        sentiment=None if sentiment.lower() == "any" else sentiment,
        include_processed=include_processed, limit=limit,
    )
    if as_json:
        echo_json(rows)
    else:
        table([r.model_dump() for r in rows], ["id", "generation_id", "sentiment", "tags", "comment", "prompt", "output_text"], title=f"{len(rows)} to review")


@review.command("done")
@click.argument("feedback_id")
@click.option("--notes")
@click.option("--improved/--not-improved", default=None, help="Was the system improved because of it?")
@click.option("--by", help="Who reviewed it.")
@json_flag
@click.pass_context
def review_done(ctx: click.Context, feedback_id: str, notes: str | None, improved: bool | None, by: str | None, as_json: bool) -> None:
    """Mark feedback processed, with notes and whether it led to an improvement."""
    f = get_client(ctx).mark_reviewed(feedback_id, notes=notes, improved=improved, by=by)
    if as_json:
        echo_json(f)
    else:
        click.echo(f"{f.id} processed")


@click.command("import")
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "oasst"]), default="jsonl", show_default=True,
              help="jsonl: one generation object per line; oasst: OpenAssistant message trees.")
@json_flag
@click.pass_context
def import_cmd(ctx: click.Context, path: str, fmt: str, as_json: bool) -> None:
    """Import history in bulk: all lines checked first (an error names the line), then one
    transaction. Rows whose external_id is already stored are skipped, so a re-import
    writes nothing and says so. JSONL format: docs/quickstart.md, "Importing history"."""
    from ..ledger import importers

    ll = get_client(ctx)
    if fmt == "oasst":
        result = importers.import_oasst(ll, Path(path))
    else:
        stream = sys.stdin if path == "-" else Path(path).open(encoding="utf-8")
        with stream:
            result = importers.import_jsonl(ll, stream)
    if as_json:
        echo_json(result)
    else:
        click.echo(_import_summary(result))


def _import_summary(result: dict[str, int]) -> str:
    written = result.get("generations", 0)
    words = {"generations": "generations written", "already_present": "already present (skipped)",
             "feedback": "feedback written", "trees": "trees"}
    parts = [f"{v} {words.get(k, k)}" for k, v in result.items()]
    return ("nothing written: " if written == 0 and not result.get("feedback") else "") + ", ".join(parts)
