"""Writes with an optional ``Idempotency-Key``: the key's record and the write share one
transaction, so a retry after a lost response replays the stored response and writes
nothing; a retry racing the original waits for it (row lock) and then replays.

Reusing a key for a different request is a 409. Keys are per tenant.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from ..errors import Conflict, InvalidInput
from ..store.database import Conn
from .deps import Ctx


def request_hash(method: str, path: str, project: str, body: Any) -> str:
    text = json.dumps([method, path, project, jsonable_encoder(body)], sort_keys=True, ensure_ascii=False)
    # surrogatepass: the hash must never be what fails on a lone surrogate (the edge and the
    # library refuse those with a 422; a hash raising would be a 500).
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def run_write(ctx: Ctx, key: str | None, rhash: str, fn: Callable[[Conn], Any],
              status: int = 201, *, model: type[BaseModel] | None = None) -> JSONResponse:
    """Run ``fn`` in the write's transaction and answer its result (through ``model``, the
    route's response model, when the result is a plain dict: the wire then carries exactly
    what the schema declares)."""
    if key is not None and (not key or len(key) > 200 or "\x00" in key or not key.isprintable()):
        raise InvalidInput("Idempotency-Key must be 1 to 200 printable characters", field="Idempotency-Key")
    tid = ctx.principal.tenant_id
    with ctx.client.db.transaction() as conn:
        if key is not None:
            conn.execute(
                "INSERT INTO learnloop.idempotency_keys (tenant_id, key, request_hash) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING", (tid, key, rhash))
            row = conn.execute(
                "SELECT request_hash, status_code, response FROM learnloop.idempotency_keys"
                " WHERE tenant_id = %s AND key = %s FOR UPDATE", (tid, key)).fetchone()
            assert row is not None
            if row["request_hash"] != rhash:
                raise Conflict("this Idempotency-Key was already used for a different request")
            if row["status_code"] is not None:
                return JSONResponse(row["response"], status_code=row["status_code"],
                                    headers={"Idempotent-Replayed": "true"})
        result = fn(conn)
        if model is not None and not isinstance(result, model):
            result = model.model_validate(result)
        body = jsonable_encoder(result)
        if key is not None:
            conn.execute(
                "UPDATE learnloop.idempotency_keys SET status_code = %s, response = %s"
                " WHERE tenant_id = %s AND key = %s", (status, Jsonb(body), tid, key))
    return JSONResponse(body, status_code=status)
