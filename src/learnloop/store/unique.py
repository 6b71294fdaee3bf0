"""Which unique constraint a write broke: on one server and on a Citus cluster alike.

On Citus a shard's constraint carries the shard id (``generations_external_idx_102427``),
and a duplicate met by COPY into a distributed table comes back as an internal error
(SQLSTATE XX000) that only names the constraint in its message. The library's Conflict
messages must not depend on which of the two it runs on.
"""

from __future__ import annotations

import re

import psycopg

_DUPLICATE = re.compile(r'^duplicate key value violates unique constraint "(?P<name>[^"]+)"')
_SHARD_ID = re.compile(r"_\d{6,}$")  # Citus shard ids start at 102008


def violated_unique(exc: BaseException) -> str | None:
    """The table-level name of the unique constraint ``exc`` reports, or None when ``exc``
    is no duplicate-key error."""
    if not isinstance(exc, psycopg.Error):
        return None
    name: str | None
    if exc.sqlstate == "23505":
        name = exc.diag.constraint_name
        if name is None:
            m = _DUPLICATE.match(exc.diag.message_primary or "")
            name = m.group("name") if m else ""
    elif exc.sqlstate == "XX000":
        m = _DUPLICATE.match(exc.diag.message_primary or "")
        if m is None:
            return None
        name = m.group("name")
    else:
        return None
    return _SHARD_ID.sub("", name)
