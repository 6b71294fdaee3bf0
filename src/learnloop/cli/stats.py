"""``learnloop stats ...``: seed 000's analytics."""

from __future__ import annotations

from datetime import datetime

import click

from ._common import echo_json, get_client, json_flag, table


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date (YYYY-MM-DD[THH:MM])", param_hint=name) from None


period = [
    click.option("--since", help="From this date/time (ISO), inclusive."),
    click.option("--until", help="Up to this date/time (ISO), exclusive."),
    click.option("--all-projects", is_flag=True, help="Across every project of the tenant."),
]


def with_period(f):  # type: ignore[no-untyped-def]
    for opt in reversed(period):
        f = opt(f)
    return f


@click.group()
def stats() -> None:
    """Analytics over the ledger."""


@stats.command("failure-rate")
@click.option("--by", "by", required=True, help="Config (or context) key to group by, e.g. style_preset.")
@click.option("--source", type=click.Choice(["config", "context", "output_meta", "links"]), default="config", show_default=True)
@click.option("--min-rated", default=0, show_default=True, help="Hide groups with fewer judged generations.")
@with_period
@json_flag
@click.pass_context
def failure_rate(ctx: click.Context, by: str, source: str, min_rated: int, since: str | None, until: str | None,
                 all_projects: bool, as_json: bool) -> None:
    """Which config value fails most: negative verdicts / judged generations per value."""
    rows = get_client(ctx).analytics.failure_rate(
        by, source=source, min_rated=min_rated, since=_when(since, "--since"), until=_when(until, "--until"),
        all_projects=all_projects)
    if as_json:
        echo_json(rows)
    else:
        table(rows, ["value", "attempts", "rated", "negative", "positive", "failure_rate"], title=f"failure rate by {source}.{by}")


@stats.command()
@click.option("--where", "where", multiple=True, help="Numeric condition on the context, e.g. 'efficiency<0.08' (repeatable).")
@click.option("--source", type=click.Choice(["context", "config", "output_meta"]), default="context", show_default=True)
@click.option("--min-rating", type=float)
@click.option("--limit", default=10, show_default=True)
@with_period
@json_flag
@click.pass_context
def golden(ctx: click.Context, where: tuple[str, ...], source: str, min_rating: float | None, limit: int,
           since: str | None, until: str | None, all_projects: bool, as_json: bool) -> None:
    """Golden examples: positively judged generations, newest first."""
    rows = get_client(ctx).analytics.golden(
        list(where), source=source, min_rating=min_rating, limit=limit,
        since=_when(since, "--since"), until=_when(until, "--until"), all_projects=all_projects)
    if as_json:
        echo_json(rows)
    else:
        table(rows, ["id", "prompt", "output_text", "output_url", "positives", "avg_rating", "created_at"], title="golden examples")


@stats.command()
@click.option("--sentiment", type=click.Choice(["POSITIVE", "NEGATIVE", "NEUTRAL"]))
@with_period
@json_flag
@click.pass_context
def tags(ctx: click.Context, sentiment: str | None, since: str | None, until: str | None, all_projects: bool, as_json: bool) -> None:
    """Tag frequencies over a period (by feedback time)."""
    rows = get_client(ctx).analytics.tags(since=_when(since, "--since"), until=_when(until, "--until"),
                                          sentiment=sentiment, all_projects=all_projects)
    if as_json:
        echo_json(rows)
    else:
        table(rows, ["tag", "count", "generations", "share"], title="tags")


@stats.command()
@with_period
@json_flag
@click.pass_context
def corrections(ctx: click.Context, since: str | None, until: str | None, all_projects: bool, as_json: bool) -> None:
    """Did corrections fix it? Fix rate of regenerated negative attempts, iterations to success."""
    r = get_client(ctx).analytics.corrections(since=_when(since, "--since"), until=_when(until, "--until"),
                                              all_projects=all_projects)
    if as_json:
        echo_json(r)
        return
    click.echo(f"negatively judged attempts: {r['negative']}")
    click.echo(f"  regenerated:              {r['regenerated']}")
    rate = f"{r['fix_rate']:.1%}" if r["fix_rate"] is not None else "-"
    click.echo(f"  fixed (a child judged positive): {r['fixed']}  fix rate {rate}")
    rows = [{"first positive at iteration": k, "trees": v} for k, v in sorted(r["iterations"].items())]
    rows.append({"first positive at iteration": "never", "trees": r["never"]})
    table(rows, ["first positive at iteration", "trees"], title="iterations needed")

from .search import stats_search  # noqa: E402  (learnloop stats search lives with search)

stats.add_command(stats_search, "search")
