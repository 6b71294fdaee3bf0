"""Shared CLI plumbing: the client from the context, JSON or table output, JSON options."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import click
from pydantic import BaseModel

from ..errors import InvalidInput


def get_client(ctx: click.Context) -> Any:
    from .. import connect

    root = ctx.find_root()
    if "client" not in root.obj:
        o = root.obj
        client = connect(o.get("database_url"), tenant=o.get("tenant"), project=o.get("project"))
        root.obj["client"] = client
        root.call_on_close(client.close)
    return root.obj["client"]


def _default(o: Any) -> Any:
    if isinstance(o, BaseModel):
        return o.model_dump(mode="json")
    if isinstance(o, UUID | Decimal):
        return str(o) if isinstance(o, UUID) else float(o)
    if isinstance(o, datetime | date):
        return o.isoformat()
    raise TypeError(f"not JSON: {type(o).__name__}")


def to_jsonable(data: Any) -> Any:
    return json.loads(json.dumps(data, default=_default))


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, default=_default, indent=2, ensure_ascii=False))


def json_option(value: str | None, name: str) -> Any:
    """Parse a --config/--context style option; malformed JSON is one clear sentence."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--{name} is not valid JSON ({exc.msg} at position {exc.pos})") from None


def _is_id(column: str) -> bool:
    return column == "id" or column.endswith("_id")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> None:
    """Rows as a table. Id columns are never wrapped or cut (a folded id cannot be copied):
    they keep their full width and the other columns share what is left."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for c in columns:
        if _is_id(c):
            width = max([len(c), *(len(_cell(r.get(c))) for r in rows)])
            t.add_column(c, no_wrap=True, overflow="ignore", min_width=width)
        else:
            t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*[_cell(r.get(c)) for c in columns])
    Console(width=max(100, Console().width)).print(t)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, dict | list):
        return json.dumps(v, default=_default, ensure_ascii=False)
    s = str(v)
    return s if len(s) <= 80 else s[:77] + "..."


def json_flag(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)
