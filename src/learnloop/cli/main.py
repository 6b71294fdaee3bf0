"""Entry point. Command groups live in their own modules and load lazily, so a command
that never embeds never imports torch; library errors become one line, exit code 1."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from ..errors import LearnloopError

# name -> "module:attribute"; add a line here for a new command or group.
COMMANDS: dict[str, str] = {
    "serve": "learnloop.cli.service:serve",
    "distribute": "learnloop.cli.db:distribute",
    "archive": "learnloop.cli.service:archive",
    "sql": "learnloop.cli.service:sql",
    "keys": "learnloop.cli.service:keys",
    "relay": "learnloop.cli.service:relay",
    "db": "learnloop.cli.db:db",
    "migrate": "learnloop.cli.db:migrate",
    "log": "learnloop.cli.ledger:log_cmd",
    "feedback": "learnloop.cli.ledger:feedback_cmd",
    "show": "learnloop.cli.ledger:show",
    "find": "learnloop.cli.ledger:find",
    "review": "learnloop.cli.ledger:review",
    "import": "learnloop.cli.ledger:import_cmd",
    "stats": "learnloop.cli.stats:stats",
    "ingest": "learnloop.cli.knowledge:ingest",
    "documents": "learnloop.cli.knowledge:documents",
    "entity": "learnloop.cli.knowledge:entity",
    "embed-generations": "learnloop.cli.knowledge:embed_generations",
    "reembed": "learnloop.cli.knowledge:reembed",
    "search": "learnloop.cli.search:search",
    "dataset": "learnloop.cli.training:dataset",
    "export": "learnloop.cli.training:export_cmd",
    "finetune": "learnloop.cli.training:finetune",
    "dict": "learnloop.cli.dictionary:dict_group",
    "catalog": "learnloop.cli.dictionary:catalog",
    "predict": "learnloop.cli.predictions:predict",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        ref = COMMANDS.get(name)
        if ref is None:
            return None
        module, attr = ref.split(":")
        cmd: click.Command = getattr(importlib.import_module(module), attr)
        return cmd

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LearnloopError as exc:
            raise click.ClickException(exc.message) from None


@click.group(cls=LazyGroup)
@click.option("--tenant", envvar="LEARNLOOP_TENANT", default=None, help="Tenant name (default: 'default').")
@click.option("--project", envvar="LEARNLOOP_PROJECT", default=None, help="Project name (default: 'default').")
@click.option("--database-url", envvar="LEARNLOOP_DATABASE_URL", default=None,
              help="PostgreSQL URL; default is the embedded server under LEARNLOOP_HOME.")
@click.version_option(package_name="learnloop")
@click.pass_context
def cli(ctx: click.Context, tenant: str | None, project: str | None, database_url: str | None) -> None:
    """learnloop: the learning loop for AI applications, on PostgreSQL."""
    ctx.ensure_object(dict)
    ctx.obj.update(tenant=tenant, project=project, database_url=database_url)


def main() -> None:
    try:
        cli(prog_name="learnloop")
    except LearnloopError as exc:  # raised outside a group's invoke (e.g. while closing)
        click.echo(f"Error: {exc.message}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
