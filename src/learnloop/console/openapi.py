"""``python -m learnloop.console.openapi PATH``: write the API's OpenAPI schema for the
console build (openapi-typescript turns it into the app's request/response types)."""

from __future__ import annotations

import json
import sys


def main() -> None:
    from ..api.app import create_app

    schema = create_app().openapi()  # no database needed: only the routes are read
    out = json.dumps(schema, indent=1, sort_keys=True)
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as f:
            f.write(out)
    else:
        print(out)


if __name__ == "__main__":
    main()
