"""``python -m learnloop.api.schema [PATH]``: write the HTTP API's OpenAPI schema as JSON.

The TypeScript client's types are generated from this file; ``make test`` writes it again
and fails when the committed copy (and so the generated types) is stale. Building the
schema opens no database.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def schema() -> dict[str, Any]:
    from .app import create_app

    return create_app(archive=False).openapi()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    text = json.dumps(schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
