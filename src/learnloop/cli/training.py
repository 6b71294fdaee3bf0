"""Training commands: ``dataset`` (create/list/show/trace), ``export``, ``finetune``."""

from __future__ import annotations

from typing import Any

import click

from ._common import echo_json, get_client, json_flag, json_option, table, to_jsonable
from .ledger import _pair


@click.group()
def dataset() -> None:
    """Curated, immutable dataset versions built from the ledger."""


@dataset.command("create")
@click.argument("name")
@click.option("--kind", type=click.Choice(["sft", "preference"]), default="sft", show_default=True)
@click.option("--verdict", multiple=True, help="POSITIVE / NEGATIVE / NEUTRAL (repeatable).")
@click.option("--min-rating", type=float)
@click.option("--max-rating", type=float)
@click.option("--tag", "tags", multiple=True, help="Feedback tag that must be present (repeatable).")
@click.option("--without-tag", "without_tags", multiple=True, help="Feedback tag that must be absent (repeatable).")
@click.option("--model")
@click.option("--gen-kind", "kind_filter", help="Generation kind (chat, image...).")
@click.option("--since", help="ISO date/time, inclusive.")
@click.option("--until", help="ISO date/time, exclusive.")
@click.option("--link", "links", multiple=True, help="TYPE=ID, e.g. --link loan=456 (repeatable).")
@click.option("--reviewed-only", is_flag=True, help="Only generations whose feedback an admin processed.")
@click.option("--filter", "filter_json", help="The whole filter as JSON (merged under the options above).")
@click.option("--scrub-pii", is_flag=True, help="Replace emails, phones, card and ID numbers.")
@click.option("--no-dedupe", is_flag=True, help="Keep duplicate examples.")
@click.option("--validation", type=float, default=0.0, show_default=True, help="Fraction held out.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--system", help="System message prepended to every example.")
@json_flag
@click.pass_context
def dataset_create(ctx: click.Context, name: str, kind: str, as_json: bool, links: tuple[str, ...],
                   filter_json: str | None, scrub_pii: bool, no_dedupe: bool, validation: float, seed: int,
                   system: str | None, kind_filter: str | None, verdict: tuple[str, ...], tags: tuple[str, ...],
                   without_tags: tuple[str, ...], **flt: Any) -> None:
    """Create a new version of dataset NAME (or show the latest, if nothing changed)."""
    f: dict[str, Any] = json_option(filter_json, "filter") or {}
    f.update({k: v for k, v in flt.items() if v is not None})
    if kind_filter:
        f["kind"] = kind_filter
    if verdict:
        f["verdict"] = list(verdict)
    if tags:
        f["tags"] = list(tags)
    if without_tags:
        f["without_tags"] = list(without_tags)
    if links:
        f["links"] = dict(_pair(x, "--link") for x in links)
    options: dict[str, Any] = {"scrub_pii": scrub_pii, "dedupe": not no_dedupe, "validation": validation, "seed": seed}
    if system is not None:
        options["system"] = system
    ds = get_client(ctx).training.create_dataset(name, f, kind=kind, options=options)
    if as_json:
        echo_json(ds)
        return
    state = "unchanged, existing" if ds.reused else "created"
    click.echo(f"{ds.name}@{ds.version} {state}: {ds.counts['examples']} examples "
               f"({ds.counts['train']} train, {ds.counts['validation']} validation), {ds.content_hash}")


@dataset.command("list")
@click.option("--name")
@json_flag
@click.pass_context
def dataset_list(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Dataset versions of this project."""
    rows = get_client(ctx).training.datasets(name)
    if as_json:
        echo_json(rows)
        return
    table([{**r.model_dump(), "examples": r.counts.get("examples"), "hash": r.content_hash[:19]} for r in rows],
          ["name", "version", "kind", "examples", "hash", "created_at"], title=f"{len(rows)} dataset versions")


@dataset.command("show")
@click.argument("ref")
@click.option("--items", "show_items", is_flag=True, help="List the member generations too.")
@json_flag
@click.pass_context
def dataset_show(ctx: click.Context, ref: str, show_items: bool, as_json: bool) -> None:
    """A dataset version (REF = id, name, or name@version): filter, counts, members."""
    tr = get_client(ctx).training
    ds = tr.dataset(ref)
    items = tr.items(ds.id) if show_items else None
    if as_json:
        out = to_jsonable(ds)
        if items is not None:
            out["items"] = to_jsonable([{k: v for k, v in i.items() if k != "example"} for i in items])
        echo_json(out)
        return
    for k in ("id", "name", "version", "kind", "content_hash", "filter", "options", "counts", "created_at"):
        click.echo(f"{k:>13}: {getattr(ds, k)}")
    if items is not None:
        table(items, ["position", "generation_id", "rejected_id", "split"], title="members")


@dataset.command("trace")
@click.argument("generation_id")
@json_flag
@click.pass_context
def dataset_trace(ctx: click.Context, generation_id: str, as_json: bool) -> None:
    """Which dataset versions and trained models a generation is part of."""
    t = get_client(ctx).training.trace(generation_id)
    if as_json:
        echo_json(t)
        return
    table(t["datasets"], ["name", "version", "role", "split"], title="dataset versions")
    table(t["trained_jobs"], ["id", "status", "result_model", "dataset", "dataset_version"], title="jobs trained on it")
    if t["logged_with_job"]:
        click.echo(f"logged with {t['model']}, produced by job {t['logged_with_job']['id']}")


@click.command("export")
@click.argument("ref")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["chat", "completion", "preference", "openai-preference"]),
              default="chat", show_default=True)
@click.option("--split", type=click.Choice(["train", "validation"]), help="Only one split.")
@click.option("--max-tokens", type=int, default=65_536, show_default=True, help="Per-example limit (estimated).")
@json_flag
@click.pass_context
def export_cmd(ctx: click.Context, ref: str, path: str, fmt: str, split: str | None, max_tokens: int,
               as_json: bool) -> None:
    """Write dataset REF to PATH as JSONL; prints the validation and token report."""
    rep = get_client(ctx).training.export(ref, path, fmt=fmt, split=split, max_tokens=max_tokens)
    if as_json:
        echo_json({k: v for k, v in rep.items() if k != "per_example_tokens"})
        return
    click.echo(f"{rep['examples']} examples -> {rep['path']} ({rep['format']}, {rep['split']}); "
               f"~{rep['total_tokens']} tokens (estimate), max {rep['max_tokens_per_example']} per example")
    if rep["rejected"]:
        click.echo(f"{rep['rejected']} examples left out:", err=True)
        for p in rep["problems"]:
            click.echo(f"  #{p['position']} {p['generation_id']}: {'; '.join(p['problems'])}", err=True)


@click.group()
def finetune() -> None:
    """Fine-tuning jobs on an OpenAI-compatible API (LEARNLOOP_FINETUNE_BASE_URL / _API_KEY)."""


_JOB_COLS = ["id", "status", "progress", "base_model", "result_model", "example_count", "provider_job_id", "created_at"]


def _show_job(job: Any, as_json: bool) -> None:
    if as_json:
        echo_json(job)
        return
    for k, v in job.model_dump().items():
        if v not in (None, {}, []):
            click.echo(f"{k:>18}: {v}")


@finetune.command("start")
@click.argument("dataset_ref")
@click.option("--base-model", required=True, help="e.g. gpt-4o-mini-2024-07-18")
@click.option("--epochs", type=int)
@click.option("--learning-rate", type=float, help="Learning-rate multiplier.")
@click.option("--batch-size", type=int)
@click.option("--suffix")
@click.option("--seed", type=int)
@json_flag
@click.pass_context
def finetune_start(ctx: click.Context, dataset_ref: str, base_model: str, epochs: int | None,
                   learning_rate: float | None, batch_size: int | None, suffix: str | None, seed: int | None,
                   as_json: bool) -> None:
    """Upload DATASET_REF and start a job; the job is recorded even if the provider refuses."""
    hp = {k: v for k, v in (("n_epochs", epochs), ("learning_rate_multiplier", learning_rate),
                            ("batch_size", batch_size)) if v is not None}
    job = get_client(ctx).training.start_job(dataset_ref, base_model=base_model, hyperparameters=hp,
                                             suffix=suffix, seed=seed)
    _show_job(job, as_json)


@finetune.command("status")
@click.argument("job_ref")
@click.option("--events", "with_events", is_flag=True, help="Also list the provider's events (as last synced).")
@json_flag
@click.pass_context
def finetune_status(ctx: click.Context, job_ref: str, with_events: bool, as_json: bool) -> None:
    """A job as last synced (JOB_REF = our id or the provider's ftjob-... id)."""
    tr = get_client(ctx).training
    job = tr.job(job_ref)
    if with_events:
        evs = tr.job_events(job.id)
        if as_json:
            echo_json({**to_jsonable(job), "events": to_jsonable(evs)})
            return
        _show_job(job, False)
        table(evs, ["created_at", "level", "message"], title="events")
        return
    _show_job(job, as_json)


@finetune.command("sync")
@click.argument("job_ref", required=False)
@json_flag
@click.pass_context
def finetune_sync(ctx: click.Context, job_ref: str | None, as_json: bool) -> None:
    """Poll the provider for one job, or for every pending/running job."""
    tr = get_client(ctx).training
    if job_ref:
        _show_job(tr.sync(job_ref), as_json)
        return
    jobs = tr.sync_all()
    if as_json:
        echo_json(jobs)
    else:
        table([j.model_dump() for j in jobs], _JOB_COLS, title=f"{len(jobs)} jobs synced")


@finetune.command("list")
@click.option("--status", type=click.Choice(["pending", "running", "succeeded", "failed", "cancelled"]))
@click.option("--limit", default=50, show_default=True)
@json_flag
@click.pass_context
def finetune_list(ctx: click.Context, status: str | None, limit: int, as_json: bool) -> None:
    """Fine-tuning jobs of this project, newest first."""
    jobs = get_client(ctx).training.jobs(status=status, limit=limit)
    if as_json:
        echo_json(jobs)
    else:
        table([j.model_dump() for j in jobs], _JOB_COLS, title=f"{len(jobs)} jobs")


@finetune.command("cancel")
@click.argument("job_ref")
@json_flag
@click.pass_context
def finetune_cancel(ctx: click.Context, job_ref: str, as_json: bool) -> None:
    """Cancel a pending or running job at the provider."""
    _show_job(get_client(ctx).training.cancel(job_ref), as_json)


@finetune.command("trained-on")
@click.argument("model")
@json_flag
@click.pass_context
def finetune_trained_on(ctx: click.Context, model: str, as_json: bool) -> None:
    """Which generations trained MODEL (a fine-tuned model id)."""
    rows = get_client(ctx).training.trained_on(model)
    if as_json:
        echo_json(rows)
    else:
        table(rows, ["generation_id", "role", "split", "dataset", "dataset_version", "job_id"],
              title=f"{len(rows)} generations trained {model}")
