"""``learnloop db status|start|stop|url`` and ``learnloop migrate``."""

from __future__ import annotations

from typing import Any

import click

from ..config import get_settings
from ._common import echo_json, json_flag, table


@click.group()
def db() -> None:
    """The embedded PostgreSQL server (for psql users and long sessions)."""


def _server() -> object:
    from ..store.embedded import EmbeddedServer

    s = get_settings()
    if s.database_url:
        raise click.ClickException("LEARNLOOP_DATABASE_URL is set: the embedded server is not in use.")
    return EmbeddedServer(s)


@db.command()
@json_flag
def status(as_json: bool) -> None:
    """Is the embedded server running, where is its data, how to reach it."""
    st = _server().status()  # type: ignore[attr-defined]
    if as_json:
        echo_json(st.__dict__)
        return
    click.echo(f"data dir: {st.data_dir}")
    click.echo(f"running:  {f'yes (pid {st.pid})' if st.running else 'no'}")
    if st.url:
        click.echo(f"url:      {st.url}")
    click.echo(f"stays up: {'yes (learnloop db stop to stop it)' if st.keep_running else 'no (stops when the last client exits)'}")
    click.echo("restarts: yes, by any client while one runs (after a crash; not after `learnloop db stop`)")


@db.command()
def start() -> None:
    """Start the embedded server and keep it running until `learnloop db stop`."""
    url = _server().ensure_running(keep_running=True)  # type: ignore[attr-defined]
    click.echo(url)


@db.command()
def stop() -> None:
    """Stop the embedded server (fast shutdown: open sessions are rolled back)."""
    was = _server().stop()  # type: ignore[attr-defined]
    click.echo("stopped" if was else "not running")


@db.command()
def url() -> None:
    """Print the running server's URL: psql "$(learnloop db url)". Changes nothing: when the
    server is not running, says so (start it with `learnloop db start`)."""
    st = _server().status()  # type: ignore[attr-defined]
    if not st.running:
        raise click.ClickException("the embedded server is not running; `learnloop db start` starts it "
                                   "and keeps it up until `learnloop db stop`")
    click.echo(st.url)


def _connect(ctx: click.Context) -> Any:
    """An autocommit connection to the configured server (the embedded one if no URL), checked."""
    import psycopg

    from ..errors import DatabaseUnavailable
    from ..store.database import check_server

    o = ctx.find_root().obj
    s = get_settings()
    url = o.get("database_url") or s.database_url
    if not url:
        from ..store.embedded import EmbeddedServer

        url = EmbeddedServer(s).ensure_running()
    try:
        conn = psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {str(exc).strip().splitlines()[0]}") from exc
    try:
        check_server(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@click.command()
@click.option("--list", "list_", is_flag=True, help="List migrations and whether each is applied.")
@json_flag
@click.pass_context
def migrate(ctx: click.Context, list_: bool, as_json: bool) -> None:
    """Apply pending schema migrations (under an advisory lock)."""
    from ..store import migrations

    with _connect(ctx) as conn:
        if list_:
            rows = [
                {"set": m.set_name, "name": m.name, "applied_at": m.applied_at.isoformat() if m.applied_at else None}
                for m in migrations.status(conn)
            ]
            if as_json:
                echo_json(rows)
            else:
                table(rows, ["set", "name", "applied_at"], title="migrations")
            return
        done = migrations.apply(conn)
    if as_json:
        echo_json([{"set": m.set_name, "name": m.name} for m in done])
    elif done:
        for m in done:
            click.echo(f"applied {m.set_name}/{m.name}")
    else:
        click.echo("nothing to apply: the schema is up to date")


@click.command()
@click.option("--shard-count", type=int, default=None, help="Shards per distributed table (Citus' citus.shard_count if omitted).")
@json_flag
@click.pass_context
def distribute(ctx: click.Context, shard_count: int | None, as_json: bool) -> None:
    """Distribute the schema by tenant on a Citus coordinator (docs/scaling.md)."""
    from ..store.distribute import distribute as run

    with _connect(ctx) as conn:
        report = run(conn, shard_count=shard_count)
    if as_json:
        echo_json({"citus": report.citus, "workers": report.workers, "reference": report.reference,
                   "distributed": report.distributed, "already": report.already, "message": report.message})
    else:
        click.echo(report.message)
