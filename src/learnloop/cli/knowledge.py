"""Knowledge commands: ingest files, list documents, index entities, embed generations, re-embed.

Each command parses, makes one library call on ``client.knowledge``, prints. Only the
commands that embed load the model (on their first embedding, not at import).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ._common import echo_json, get_client, json_flag, json_option, table, to_jsonable


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--title", default=None, help="Title for a single file (default: from the file).")
@click.option("--metadata", default=None, help="JSON object stored on the documents and their chunk vectors.")
@click.option("--force", is_flag=True, help="Re-process files even when their content is unchanged.")
@json_flag
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[str, ...], title: str | None, metadata: str | None, force: bool,
           as_json: bool) -> None:
    """Ingest documents (PDF, DOCX, TXT, Markdown, HTML): files and folders.

    Exit code 1 when any file failed (the summary says why).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..knowledge.documents import expand

    kn = get_client(ctx).knowledge
    files = expand(paths)
    options: dict[str, Any] = {"force": force}
    if title is not None:
        options["title"] = title
    if metadata is not None:
        options["metadata"] = json_option(metadata, "metadata")
    results = []
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=as_json) as bar:
        task = bar.add_task("ingesting", total=len(files))
        for f in files:
            bar.update(task, description=f"ingesting {f.name[:40]}")
            results.append(kn.ingest(f, **options))
            bar.advance(task)
        bar.update(task, description="ingested")
    rows = [r.to_dict() for r in results]
    if as_json:
        echo_json(rows)
    else:
        table(rows, ["file_name", "status", "file_type", "chunks", "seconds", "error"], title="Ingestion")
        counts = {s: sum(1 for r in results if r.status == s) for s in ("processed", "unchanged", "failed")}
        click.echo(", ".join(f"{n} {s}" for s, n in counts.items()))
    if any(r.status == "failed" for r in results):
        sys.exit(1)


@click.command("documents")
@click.option("--status", type=click.Choice(["pending", "processed", "failed"]), default=None)
@click.option("--limit", type=int, default=100, show_default=True)
@json_flag
@click.pass_context
def documents(ctx: click.Context, status: str | None, limit: int, as_json: bool) -> None:
    """List ingested documents of the project."""
    rows = get_client(ctx).knowledge.documents(status=status, limit=limit)
    if as_json:
        echo_json(rows)
    else:
        table(rows, ["id", "file_name", "file_type", "status", "chunk_count", "active", "error"], title="Documents")


@click.group("entity")
def entity() -> None:
    """Index app records (goals, tasks, code...) for semantic search."""


@entity.command("upsert")
@click.argument("entity_type")
@click.argument("entity_id")
@click.argument("text")
@click.option("--user", "user_ref", default=None, help="The user the record belongs to.")
@click.option("--metadata", default=None, help='JSON object, e.g. \'{"status": "completed"}\'.')
@json_flag
@click.pass_context
def entity_upsert(ctx: click.Context, entity_type: str, entity_id: str, text: str, user_ref: str | None,
                  metadata: str | None, as_json: bool) -> None:
    """Insert or replace ENTITY_TYPE/ENTITY_ID with TEXT (embedded)."""
    out = get_client(ctx).knowledge.upsert_entity(entity_type, entity_id, text, user_ref=user_ref,
                                                  metadata=json_option(metadata, "metadata"))
    if as_json:
        echo_json(out)
    else:
        click.echo(f"{'created' if out['created'] else 'updated'} {entity_type}/{entity_id} ({out['id']})")


@entity.command("delete")
@click.argument("entity_type")
@click.argument("entity_id")
@click.pass_context
def entity_delete(ctx: click.Context, entity_type: str, entity_id: str) -> None:
    """Delete ENTITY_TYPE/ENTITY_ID and its vectors."""
    get_client(ctx).knowledge.delete_entity(entity_type, entity_id)
    click.echo(f"deleted {entity_type}/{entity_id}")


@click.command("embed-generations")
@click.option("--what", type=click.Choice(["prompt", "output", "both"]), default="both", show_default=True,
              help="Which text of each generation to embed.")
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--limit", type=int, default=None, help="Stop after this many generations.")
@json_flag
@click.pass_context
def embed_generations(ctx: click.Context, what: str, batch_size: int, limit: int | None, as_json: bool) -> None:
    """Embed the project's generations that have no vector yet (run it from cron or a worker)."""
    out = get_client(ctx).knowledge.embed_generations(what=what, batch_size=batch_size, limit=limit)
    if as_json:
        echo_json(out)
    else:
        click.echo(f"embedded {out['embedded']} generations with {out['model']} in {out['seconds']} s; "
                   f"refreshed feedback metadata of {out['metadata_refreshed']}")


@click.command("reembed")
@click.option("--model", required=True, help="Target embedding model id.")
@click.option("--provider", type=click.Choice(["local", "openai"]), default=None,
              help="Provider of the target model (default: LEARNLOOP_EMBEDDING_PROVIDER).")
@click.option("--from-model", default=None, help="Only copy vectors of this model (default: any other).")
@click.option("--all-projects", is_flag=True, help="Every project of the tenant, not just the current one.")
@click.option("--drop-old", is_flag=True, help="Delete the --from-model vectors afterwards.")
@json_flag
@click.pass_context
def reembed(ctx: click.Context, model: str, provider: str | None, from_model: str | None, all_projects: bool,
            drop_old: bool, as_json: bool) -> None:
    """Re-embed the corpus with another model; both models stay searchable meanwhile."""
    from ..errors import InvalidInput

    if drop_old and not from_model:
        raise InvalidInput("--drop-old needs --from-model (which model's vectors to delete)")
    client = get_client(ctx)
    kn = client.knowledge.with_provider(provider or client.settings.embedding_provider, model=model)
    out = kn.reembed(from_model=from_model, all_projects=all_projects)
    if drop_old:
        out["dropped"] = kn.drop_model(from_model)
    out["models"] = kn.model_counts(all_projects=all_projects)
    if as_json:
        echo_json(to_jsonable(out))
    else:
        click.echo(f"re-embedded {out['reembedded']} vectors with {out['model']} in {out['seconds']} s")
        table(out["models"], ["model", "owner_type", "vectors"], title="Vectors per model")
