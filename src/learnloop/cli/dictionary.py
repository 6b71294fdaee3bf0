"""Dictionary and catalog commands: ``dict add|update|lookup|list|improvements``, ``catalog introspect|list|describe``."""

from __future__ import annotations

from typing import Any

import click

from ._common import echo_json, get_client, json_flag, json_option, table


@click.group("dict")
def dict_group() -> None:
    """Semantic dictionary: everyday words mapped to database tables and fields."""


def _term_options(f: Any) -> Any:
    for opt in reversed([
        click.option("--definition"),
        click.option("--category"),
        click.option("--table", "table_name"),
        click.option("--field", "field_name"),
        click.option("--synonym", "synonyms", multiple=True, help="Repeatable."),
        click.option("--example", "examples", multiple=True, help="Repeatable."),
        click.option("--because-of", help="Feedback id of the rating this change answers."),
        click.option("--note", help="Why (stored with the improvement)."),
        click.option("--by", help="Who made the change."),
    ]):
        f = opt(f)
    return f


@dict_group.command("add")
@click.argument("word")
@_term_options
@json_flag
@click.pass_context
def dict_add(ctx: click.Context, word: str, as_json: bool, because_of: str | None, note: str | None,
             by: str | None, synonyms: tuple[str, ...], examples: tuple[str, ...], **fields: Any) -> None:
    """Add WORD to the dictionary."""
    data = {"word": word, **{k: v for k, v in fields.items() if v is not None},
            "synonyms": list(synonyms), "examples": list(examples)}
    t = get_client(ctx).dictionary.add(data, because_of=because_of, note=note, by=by)
    echo_json(t) if as_json else click.echo(f"{t['word']} -> {t['table_name']}.{t['field_name']}  ({t['id']})")


@dict_group.command("update")
@click.argument("word")
@_term_options
@click.option("--active/--inactive", default=None)
@json_flag
@click.pass_context
def dict_update(ctx: click.Context, word: str, as_json: bool, because_of: str | None, note: str | None,
                by: str | None, synonyms: tuple[str, ...], examples: tuple[str, ...], **fields: Any) -> None:
    """Change WORD (given synonyms/examples replace the old lists)."""
    changes = {k: v for k, v in fields.items() if v is not None}
    if synonyms:
        changes["synonyms"] = list(synonyms)
    if examples:
        changes["examples"] = list(examples)
    t = get_client(ctx).dictionary.update(word, because_of=because_of, note=note, by=by, **changes)
    echo_json(t) if as_json else click.echo(f"{t['word']} -> {t['table_name']}.{t['field_name']} updated")


@dict_group.command("lookup")
@click.argument("phrase")
@click.option("-k", "k", default=5, show_default=True)
@click.option("--min-score", default=0.3, show_default=True)
@json_flag
@click.pass_context
def dict_lookup(ctx: click.Context, phrase: str, k: int, min_score: float, as_json: bool) -> None:
    """Which field PHRASE refers to: exact word, synonym, then semantic similarity."""
    hits = get_client(ctx).dictionary.lookup(phrase, k=k, min_score=min_score)
    if as_json:
        echo_json(hits)
    else:
        table(hits, ["word", "table", "field", "score", "match", "definition"], title=f"{len(hits)} matches")


@dict_group.command("list")
@click.option("--category")
@click.option("--all", "include_inactive", is_flag=True, help="Include inactive terms.")
@json_flag
@click.pass_context
def dict_list(ctx: click.Context, category: str | None, include_inactive: bool, as_json: bool) -> None:
    """Terms of this project."""
    rows = get_client(ctx).dictionary.terms(category=category, include_inactive=include_inactive)
    if as_json:
        echo_json(rows)
    else:
        table(rows, ["word", "table_name", "field_name", "synonyms", "category", "active"], title=f"{len(rows)} terms")


@dict_group.command("improvements")
@click.option("--feedback", "feedback_id", help="Only changes made for this feedback id.")
@json_flag
@click.pass_context
def dict_improvements(ctx: click.Context, feedback_id: str | None, as_json: bool) -> None:
    """Dictionary/catalog changes and the ratings that asked for them."""
    rows = get_client(ctx).dictionary.improvements(feedback_id=feedback_id)
    if as_json:
        echo_json(rows)
    else:
        table(rows, ["created_at", "feedback_id", "target_type", "action", "note", "created_by"],
              title=f"{len(rows)} improvements")


@click.group()
def catalog() -> None:
    """Field catalog: what each column of the app's database means."""


@catalog.command("introspect")
@click.argument("url")
@click.option("--schema", default="public", show_default=True)
@json_flag
@click.pass_context
def catalog_introspect(ctx: click.Context, url: str, schema: str, as_json: bool) -> None:
    """Fill the catalog from a PostgreSQL database's own catalogs (keeps human definitions)."""
    rep = get_client(ctx).dictionary.introspect(url, schema)
    if as_json:
        echo_json(rep)
    else:
        click.echo(f"{rep['schema']}: {rep['tables']} tables, {rep['fields']} fields "
                   f"({rep['new']} new, {rep['refreshed']} refreshed, {len(rep['missing'])} gone)")


@catalog.command("list")
@click.option("--table", "table_name")
@click.option("--schema")
@click.option("--all", "include_missing", is_flag=True, help="Include columns no longer in the database.")
@json_flag
@click.pass_context
def catalog_list(ctx: click.Context, table_name: str | None, schema: str | None, include_missing: bool,
                 as_json: bool) -> None:
    """Catalogued fields."""
    rows = get_client(ctx).dictionary.fields(table=table_name, schema=schema, include_missing=include_missing)
    if as_json:
        echo_json(rows)
    else:
        table(rows, ["table_name", "field_name", "data_type", "required", "indexed", "fk_table", "fk_field",
                     "allowed_values", "definition"], title=f"{len(rows)} fields")


@catalog.command("describe")
@click.argument("table_name")
@click.argument("field_name")
@click.option("--schema", default="public", show_default=True)
@click.option("--definition")
@click.option("--notes")
@click.option("--allowed-values", help="JSON array.")
@click.option("--example-values", help="JSON array.")
@click.option("--create", is_flag=True, help="Add the field even if introspection never saw it.")
@click.option("--because-of", help="Feedback id of the rating this change answers.")
@click.option("--note")
@click.option("--by")
@json_flag
@click.pass_context
def catalog_describe(ctx: click.Context, table_name: str, field_name: str, schema: str, as_json: bool,
                     create: bool, because_of: str | None, note: str | None, by: str | None,
                     allowed_values: str | None, example_values: str | None, **changes: Any) -> None:
    """Write the human part of TABLE_NAME.FIELD_NAME (definition, notes, values)."""
    ch = {k: v for k, v in changes.items() if v is not None}
    if allowed_values is not None:
        ch["allowed_values"] = json_option(allowed_values, "allowed-values")
    if example_values is not None:
        ch["example_values"] = json_option(example_values, "example-values")
    row = get_client(ctx).dictionary.describe(table_name, field_name, schema=schema, create=create,
                                              because_of=because_of, note=note, by=by, **ch)
    echo_json(row) if as_json else click.echo(f"{schema}.{table_name}.{field_name} described")
