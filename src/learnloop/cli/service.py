"""Service commands: serve, archive, sql, keys, relay."""

from __future__ import annotations

from typing import Any

import click

from ._common import echo_json, get_client, json_flag, table, to_jsonable


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="Processes (each with its own pool).")
@click.option("--archive-every", type=float, default=None,
              help="Seconds between archive passes (0 = off; default LEARNLOOP_ARCHIVE_INTERVAL).")
@click.option("--archive-root", default=None, help="Archive folder or URI (default LEARNLOOP_ARCHIVE_ROOT).")
@click.option("--create-key", is_flag=True, help="Create and print an admin key for the tenant first.")
@click.option("--login-link/--no-login-link", default=True, show_default=True,
              help="Print a one-time URL that signs a browser into the console.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int, archive_every: float | None,
          archive_root: str | None, create_key: bool, login_link: bool) -> None:
    """Run the HTTP API and the web console (uvicorn)."""
    import os

    import uvicorn

    o = ctx.find_root().obj
    for env, val in (("LEARNLOOP_DATABASE_URL", o.get("database_url")), ("LEARNLOOP_ARCHIVE_ROOT", archive_root),
                     ("LEARNLOOP_ARCHIVE_INTERVAL", archive_every)):
        if val is not None:
            os.environ[env] = str(val)
    if create_key:
        rec, key = get_client(ctx).events.create_key("serve", ["admin"])
        click.echo(f"admin key (shown once): {key}")
    click.echo(f"learnloop API on http://{host}:{port}/v1  (docs: http://{host}:{port}/docs)")
    if login_link:
        from ..console.sessions import login_link_for_tenant

        ll = get_client(ctx)
        with ll.db.connection() as conn:
            token = login_link_for_tenant(conn, ll.scope.tenant_id, ll.scope.tenant)
        # In the fragment: browsers never send it to a server or put it in a Referer.
        click.echo(f"console (one-time sign-in link, 15 minutes): http://{host}:{port}/login#token={token}")
    uvicorn.run("learnloop.api.app:create_app", factory=True, host=host, port=port, workers=workers,
                timeout_keep_alive=5, limit_concurrency=1000, log_level="info", proxy_headers=False)


@click.command("archive")
@click.option("--root", default=None, help="Archive folder or URI (default LEARNLOOP_ARCHIVE_ROOT or HOME/archive).")
@click.option("--compact", is_flag=True, help="Merge small files per partition afterwards.")
@click.option("--prune-days", type=float, default=None, help="Then delete archived outbox rows older than N days.")
@json_flag
@click.pass_context
def archive(ctx: click.Context, root: str | None, compact: bool, prune_days: float | None, as_json: bool) -> None:
    """Archive the outbox to Parquet (one pass, all tenants)."""
    ev = get_client(ctx).events
    res = ev.archive(root=root, compact=compact)
    if prune_days is not None:
        res["pruned"] = ev.prune(older_than_days=prune_days, root=root)
    if as_json:
        echo_json(res)
    else:
        click.echo(f"archived {res['events']} events in {res['files']} files to {root or ev.archive_root}"
                   + (f"; compacted {res['compacted']} files" if compact else "")
                   + (f"; pruned {res['pruned']} outbox rows" if "pruned" in res else ""))


@click.command("sql")
@click.argument("query")
@click.option("--root", default=None, help="Archive folder or URI.")
@click.option("--max-rows", default=1000, show_default=True, type=int)
@json_flag
@click.pass_context
def sql(ctx: click.Context, query: str, root: str | None, max_rows: int, as_json: bool) -> None:
    """SQL (DuckDB) over this tenant's events: the table is `events` (archive + live)."""
    out = get_client(ctx).events.sql(query, root=root, max_rows=max_rows)
    if as_json:
        echo_json(out)
        return
    rows = [dict(zip(out["columns"], r, strict=True)) for r in to_jsonable(out["rows"])]
    table(rows, out["columns"])
    if out["truncated"]:
        click.echo(f"(first {max_rows} rows)")


@click.group("keys")
def keys() -> None:
    """API keys of the tenant (--tenant), or of the installation (--installation)."""


_INSTALLATION = click.option("--installation", is_flag=True,
                             help="The installation's admin keys (they create tenants over HTTP).")


@keys.command("create")
@click.option("--name", required=True)
@click.option("--scope", "scopes", multiple=True, type=click.Choice(["ingest", "read", "admin"]),
              help="Repeatable; default ingest + read.")
@_INSTALLATION
@json_flag
@click.pass_context
def keys_create(ctx: click.Context, name: str, scopes: tuple[str, ...], installation: bool, as_json: bool) -> None:
    """Create a key and print it ONCE (only a salted hash is stored)."""
    if installation and scopes:
        raise click.UsageError("an installation key has no scopes: it manages tenants only")
    if installation:
        rec, key = get_client(ctx).accounts.create_installation_key(name)
        rec["scopes"] = ["installation"]
    else:
        rec, key = get_client(ctx).events.create_key(name, list(scopes) or ["ingest", "read"])
    if as_json:
        echo_json({**rec, "key": key})
    else:
        click.echo(key)
        click.echo(f"(id {rec['id']}, scopes {','.join(rec['scopes'])}; this is the only time it is shown)", err=True)


@keys.command("list")
@_INSTALLATION
@json_flag
@click.pass_context
def keys_list(ctx: click.Context, installation: bool, as_json: bool) -> None:
    c = get_client(ctx)
    rows = c.accounts.installation_keys() if installation else c.events.list_keys()
    if as_json:
        echo_json(rows)
    else:
        table(rows, ["id", "name", "created_at", "revoked_at"] if installation
              else ["id", "name", "scopes", "created_at", "revoked_at"])


@keys.command("revoke")
@click.argument("key_id")
@_INSTALLATION
@json_flag
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str, installation: bool, as_json: bool) -> None:
    """Revoke a key; the next request with it fails."""
    c = get_client(ctx)
    rec = c.accounts.revoke_installation_key(key_id) if installation else c.events.revoke_key(key_id)
    if as_json:
        echo_json(rec)
    else:
        click.echo(f"revoked {rec['id']} ({rec['name']})")


@click.command("relay")
@click.option("--url", default=None, help="AMQP URL (default LEARNLOOP_AMQP_URL, guest@127.0.0.1).")
@click.option("--exchange", default="learnloop.events", show_default=True)
@click.option("--once", is_flag=True, help="Publish what is pending, then exit.")
@click.pass_context
def relay(ctx: click.Context, url: str | None, exchange: str, once: bool) -> None:
    """Relay outbox events to a RabbitMQ topic exchange (routing key = event type)."""
    from ..events.relay import Relay

    c: Any = get_client(ctx)
    r = Relay(c.db, url=url or c.settings.amqp_url, exchange=exchange)
    r.check()
    if once:
        click.echo(f"published {r.run_once()} events")
        r.close()
        return
    click.echo(f"relaying to exchange {exchange!r}; Ctrl-C to stop")
    try:
        r.run_forever()
    except KeyboardInterrupt:
        r.close()
