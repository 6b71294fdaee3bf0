"""``learnloop search "query"`` and ``learnloop stats search``: one library call each."""

from __future__ import annotations

import click

from ._common import echo_json, get_client, json_flag, json_option, table


@click.command("search")
@click.argument("query")
@click.option("--k", "-k", "k", default=5, show_default=True, help="How many results.")
@click.option("--type", "entity_types", multiple=True, help="Entity type, e.g. goal (repeatable).")
@click.option("--owner", "owner_types", multiple=True,
              type=click.Choice(["chunk", "entity", "generation", "term"]), help="What to search (repeatable).")
@click.option("--user", help="Only rows of this user (user_ref).")
@click.option("--document", "document_ids", multiple=True, help="Only chunks of this document id (repeatable).")
@click.option("--where", "where", multiple=True,
              help="Metadata condition: key=value, key!=v, key>n, key>=n, key<n, key<=n, key~a,b, key? (repeatable, all must hold).")
@click.option("--filter", "filter_json", help='A filter as JSON, e.g. \'{"or": [{"status": "completed"}, {"score": {"gte": 4}}]}\'.')
@click.option("--mode", type=click.Choice(["dense", "fulltext", "hybrid"]),
              help="dense (vectors), fulltext (BM25) or hybrid (both fused); default: the library's.")
@click.option("--hybrid", is_flag=True, help="Same as --mode hybrid.")
@click.option("--dense-weight", type=float, default=1.0, show_default=True, help="Hybrid: weight of the vector ranking.")
@click.option("--text-weight", default="auto", show_default=True,
              help="Hybrid: weight of the full-text ranking, a number or 'auto' (decided per query).")
@click.option("--depth", type=int, default=100, show_default=True, help="Hybrid: rows taken from each ranking.")
@click.option("--path", type=click.Choice(["auto", "exact", "hnsw"]), default="auto", show_default=True,
              help="How the vector side is searched (dense and hybrid).")
@click.option("--by-document", is_flag=True, help="The k best documents, each with its best chunks.")
@click.option("--chunks", "chunks_per_document", type=int, default=3, show_default=True,
              help="With --by-document: chunks shown per document.")
@click.option("--successes", is_flag=True, help="Learn from success: past generations rated positively.")
@click.option("--min-rating", type=float, help="With --successes: average rating at least this.")
@click.option("--exclude-tag", "exclude_tags", multiple=True, help="With --successes: never tagged this (repeatable).")
@click.option("--few-shot", is_flag=True, help="With --successes: print the hits as few-shot examples.")
@click.option("--all-projects", is_flag=True, help="Search every project of the tenant.")
@click.option("--ef-search", type=int, help="HNSW candidate list size (default: LEARNLOOP_SEARCH_EF_SEARCH, else 64 growing with the table).")
@json_flag
@click.pass_context
def search(ctx: click.Context, query: str, k: int, entity_types: tuple[str, ...], owner_types: tuple[str, ...],
           user: str | None, document_ids: tuple[str, ...], where: tuple[str, ...], filter_json: str | None,
           mode: str | None, hybrid: bool, dense_weight: float, text_weight: str, depth: int, path: str,
           by_document: bool, chunks_per_document: int, successes: bool, min_rating: float | None,
           exclude_tags: tuple[str, ...], few_shot: bool, all_projects: bool, ef_search: int | None,
           as_json: bool) -> None:
    """Semantic search over documents, entities and generations of this project."""
    from ..knowledge import metrics
    from ..knowledge.filters import parse_conditions
    from ..knowledge.search import format_examples

    conds = parse_conditions(list(where))
    extra = json_option(filter_json, "filter")
    flt = {"and": [c for c in (conds, extra) if c]} if (conds or extra) else None
    weight: float | str = text_weight
    if text_weight != "auto":
        try:
            weight = float(text_weight)
        except ValueError:
            raise click.BadParameter("a number or 'auto'", param_hint="--text-weight") from None
    client = get_client(ctx)
    kb = client.knowledge
    if successes:
        if by_document:
            raise click.UsageError("--by-document groups document chunks; --successes searches generations")
        hits = kb.similar_successes(query, k, positive=min_rating is None,
                                    min_rating=min_rating, exclude_tags=list(exclude_tags), user=user,
                                    where=flt, all_projects=all_projects, mode=mode or ("hybrid" if hybrid else None))
    else:
        if few_shot or min_rating is not None or exclude_tags:
            raise click.UsageError("--few-shot, --min-rating and --exclude-tag go with --successes")
        hits = kb.search(query, k, mode=mode, entity_types=list(entity_types) or None,
                         owner_types=list(owner_types) or None, user=user, document_ids=list(document_ids) or None,
                         where=flt, hybrid=hybrid, dense_weight=dense_weight, text_weight=weight, depth=depth,
                         path=path, group_by="document" if by_document else None,
                         chunks_per_document=chunks_per_document, all_projects=all_projects, ef_search=ef_search)
    metrics.flush(client.db)  # a CLI process is short-lived: book its search now
    if few_shot:
        click.echo(format_examples(hits))
        return
    if as_json:
        echo_json({"path": hits.path, "mode": hits.mode, "ms": round(hits.ms, 2), "trust": hits.trust,
                   "results": list(hits)})
        return
    if by_document:
        docs = [{"rank": d["rank"], "document": d["title"] or d["file_name"], "similarity": d["similarity"],
                 "score": d["score"], "chunks": " | ".join(c["content"].replace("\n", " ")[:120] for c in d["chunks"])}
                for d in hits]
        table(docs, ["rank", "similarity", "score", "document", "chunks"],
              title=f"{len(hits)} documents ({hits.mode}, {hits.path}, {hits.ms:.1f} ms)")
        return
    rows = [{**h, "text": (h.get("title") + ": " if h.get("title") else "") + h["content"].replace("\n", " ")}
            for h in hits]
    cols = ["similarity", "owner_type", "text"]
    if any(h.get("entity_id") for h in hits):
        cols.insert(2, "entity_id")
    if successes:
        cols += ["positives", "avg_rating"]
    if hits.mode == "hybrid":
        cols += ["score", "dense_rank", "text_rank"]
    elif hits.mode == "fulltext":
        cols += ["score"]
    table(rows, cols + ["metadata"], title=f"{len(hits)} results ({hits.path}, {hits.ms:.1f} ms)")


@click.command("search")
@click.option("--days", default=30, show_default=True, help="Sum the stored counters over this many days.")
@click.option("--all-projects", is_flag=True, help="Every project of the tenant.")
@json_flag
@click.pass_context
def stats_search(ctx: click.Context, days: int, all_projects: bool, as_json: bool) -> None:
    """Search metrics: searches, latency, query embedding time, cache hits (seed 002)."""
    from ..knowledge import metrics

    client = get_client(ctx)
    with client.db.connection() as conn:
        r = metrics.stored(conn, client.scope.tenant_id, None if all_projects else client.scope.project_id, days)
    if as_json:
        echo_json(r)
        return

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f} ms"

    def at_most(v: float | None) -> str:
        return "-" if v is None else f"<= {v:g} ms"

    rate = "-" if r["cache_hit_rate"] is None else f"{r['cache_hit_rate']:.1%}"
    click.echo(f"searches (last {days} days):  {r['searches']}  (slow: {r['slow_searches']}, "
               f"threshold {client.settings.slow_search_ms:g} ms)")
    click.echo(f"search latency:   mean {ms(r['search_ms_mean'])}, p50 {at_most(r['search_ms_p50_at_most'])}, "
               f"p99 {at_most(r['search_ms_p99_at_most'])}, max {ms(r['search_ms_max'])}")
    click.echo(f"query embeddings: {r['query_embeddings']}, mean {ms(r['query_embed_ms_mean'])}")
    click.echo(f"embedding cache:  {r['cache_hits']} hits, {r['cache_misses']} misses, hit rate {rate}")
