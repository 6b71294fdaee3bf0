"""``learnloop stats ...``: seed 000's analytics (breakdown, drivers and the named calls)."""

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


def _rate(m: object) -> str:
    rate = getattr(m, "failure_rate", None)
    if rate is None:
        return "-"
    low, high = getattr(m, "failure_low", None), getattr(m, "failure_high", None)
    return f"{rate:.1%}" if low is None or high is None else f"{rate:.1%} [{low:.1%}-{high:.1%}]"


@stats.command()
@click.option("--by", "by", multiple=True,
              help="Dimension (repeatable, at most 2): style_preset, context.region, model, tag, day, "
                   "week:tz=Europe/Madrid, demand_kw:bands=0,100,500, efficiency:bins=4.")
@click.option("--where", "where", multiple=True,
              help="Config/context condition (repeatable, all must hold): audience=INVESTOR, demand_kw>500.")
@click.option("--kind", multiple=True)
@click.option("--model", multiple=True)
@click.option("--verdict", multiple=True, type=click.Choice(["POSITIVE", "NEGATIVE", "NEUTRAL", "UNRATED"]))
@click.option("--tag", "tags", multiple=True, help="Generations whose feedback carries this tag (any of).")
@with_period
@json_flag
@click.pass_context
def breakdown(ctx: click.Context, by: tuple[str, ...], where: tuple[str, ...], kind: tuple[str, ...],
              model: tuple[str, ...], verdict: tuple[str, ...], tags: tuple[str, ...], since: str | None,
              until: str | None, all_projects: bool, as_json: bool) -> None:
    """Attempts, verdicts, failure rate with its 95% interval, rating, tokens, cost and latency
    per group, e.g. --by style_preset --by demand_kw:bands=0,100,500 --where audience=INVESTOR."""
    b = get_client(ctx).analytics.breakdown(
        list(by), list(where) or None, kind=list(kind) or None, model=list(model) or None,
        verdict=list(verdict) or None, tags=list(tags) or None, since=_when(since, "--since"),
        until=_when(until, "--until"), all_projects=all_projects or None)
    if as_json:
        echo_json(b)
        return
    names = [d.label for d in b.dimensions]
    rows = [{**{n: bk.value for n, bk in zip(names, g.by, strict=True)}, "attempts": g.attempts, "rated": g.rated,
             "negative": g.negative, "failure rate [95%]": _rate(g), "avg rating": g.avg_rating,
             "cost": g.cost, "latency p50": g.latency_p50_ms, "p95": g.latency_p95_ms} for g in b.groups]
    t = b.total
    rows.append({**dict.fromkeys(names[:1], "(all)"), "attempts": t.attempts, "rated": t.rated,
                 "negative": t.negative, "failure rate [95%]": _rate(t), "avg rating": t.avg_rating,
                 "cost": t.cost, "latency p50": t.latency_p50_ms, "p95": t.latency_p95_ms})
    table(rows, [*names, "attempts", "rated", "negative", "failure rate [95%]", "avg rating", "cost",
                 "latency p50", "p95"], title="breakdown by " + (" x ".join(names) or "nothing"))


@stats.command()
@click.option("--where", "where", multiple=True, help="Config/context condition (repeatable).")
@click.option("--bins", default=4, show_default=True, help="Equal-count bins for numeric keys.")
@click.option("--min-rated", default=10, show_default=True, help="Ratings a group needs to be compared.")
@with_period
@json_flag
@click.pass_context
def drivers(ctx: click.Context, where: tuple[str, ...], bins: int, min_rated: int, since: str | None,
            until: str | None, all_projects: bool, as_json: bool) -> None:
    """What drives failure: every config/context key ranked by how far the failure rate moves."""
    d = get_client(ctx).analytics.drivers(
        list(where) or None, bins=bins, min_rated=min_rated, since=_when(since, "--since"),
        until=_when(until, "--until"), all_projects=all_projects or None)
    if as_json:
        echo_json(d)
        return
    rows = []
    for x in d.drivers:
        worst = max((g for g in x.groups if g.rated >= min_rated), key=lambda g: g.failure_rate or 0, default=None)
        best = min((g for g in x.groups if g.rated >= min_rated), key=lambda g: g.failure_rate or 0, default=None)
        rows.append({"key": f"{x.source}.{x.key}", "differs": "yes" if x.differs else "no",
                     "spread": x.spread, "worst": f"{worst.bucket.value}: {_rate(worst)}" if worst else "-",
                     "best": f"{best.bucket.value}: {_rate(best)}" if best else "-"})
    table(rows, ["key", "differs", "spread", "worst", "best"],
          title=f"what drives failure ({d.rated} rated, overall {_rate(d)})")
    if d.skipped:
        click.echo(f"skipped (too many distinct values): {', '.join(d.skipped)}")


@stats.command("failure-rate")
@click.option("--by", "by", required=True, help="Config (or context) key to group by, e.g. style_preset.")
@click.option("--source", type=click.Choice(["config", "context", "output_meta"]), default="config", show_default=True)
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
        table([{**r.model_dump(), "95% interval": _rate(r)} for r in rows],
              ["value", "attempts", "rated", "negative", "positive", "failure_rate", "95% interval"],
              title=f"failure rate by {source}.{by}")


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
        table([r.model_dump() for r in rows], ["id", "prompt", "output_text", "output_url", "positives", "avg_rating",
                                               "created_at"], title="golden examples")


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
        table([r.model_dump() for r in rows], ["tag", "count", "generations", "share"], title="tags")


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
    r = r.model_dump()
    click.echo(f"negatively judged attempts: {r['negative']}")
    click.echo(f"  regenerated:              {r['regenerated']}")
    rate = f"{r['fix_rate']:.1%}" if r["fix_rate"] is not None else "-"
    click.echo(f"  fixed (a child judged positive): {r['fixed']}  fix rate {rate}")
    rows = [{"first positive at iteration": k, "trees": v} for k, v in sorted(r["iterations"].items())]
    rows.append({"first positive at iteration": "never", "trees": r["never"]})
    table(rows, ["first positive at iteration", "trees"], title="iterations needed")

@stats.command()
@click.option("--max-days", type=click.IntRange(min=0), help="Stop after about this many project-days.")
@json_flag
@click.pass_context
def refresh(ctx: click.Context, max_days: int | None, as_json: bool) -> None:
    """Rebuild the analytics rollup's changed days (answers are exact without it; faster with it)."""
    r = get_client(ctx).analytics.refresh(max_days=max_days)
    if as_json:
        echo_json(r)
        return
    if not r.available:
        click.echo("no rollup on a Citus cluster: analytics read the shards in parallel")
        return
    if r.busy:
        click.echo("another refresh is running for this tenant: nothing done")
        return
    wide = f"; too varied to roll up value by value: {', '.join(r.wide_keys)}" if r.wide_keys else ""
    click.echo(f"rebuilt {r.days} days ({r.rows} rollup rows) in {r.seconds:.1f} s; {r.pending} days still changed{wide}")


from .search import stats_search  # noqa: E402  (learnloop stats search lives with search)

stats.add_command(stats_search, "search")
