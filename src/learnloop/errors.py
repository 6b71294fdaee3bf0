"""One error tree for everything learnloop raises on purpose.

Every error carries a sentence a user can act on. The CLI prints that sentence on one
line; the HTTP API maps the class to a status code (``status`` below). Anything that
escapes this tree is a bug.

    LearnloopError
     ├── ConfigurationError      settings, missing/old pgvector, embedded server trouble
     ├── DatabaseUnavailable     the server cannot be reached right now (retryable)
     ├── InvalidInput            wrong type/value, NUL bytes, bad JSON shape  (ValueError)
     │    └── UnsafeFile         an untrusted file was refused by a parser limit
     ├── NotFound                unknown id, or an id that belongs to another tenant (LookupError)
     ├── Conflict                duplicate name/term, state that forbids the change
     ├── PermissionDenied        missing scope or wrong tenant for an API key
     └── ProviderError           a remote model/fine-tuning provider failed or timed out
"""

from __future__ import annotations

from typing import Any


class LearnloopError(Exception):
    """Base of every error learnloop raises on purpose."""

    status = 500
    code = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class ConfigurationError(LearnloopError):
    status = 500
    code = "configuration"


class DatabaseUnavailable(LearnloopError):
    status = 503
    code = "database_unavailable"


class InvalidInput(LearnloopError, ValueError):
    status = 422
    code = "invalid_input"

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message, field=field, **details)
        self.field = field


class UnsafeFile(InvalidInput):
    code = "unsafe_file"


class NotFound(LearnloopError, LookupError):
    status = 404
    code = "not_found"


class Conflict(LearnloopError):
    status = 409
    code = "conflict"


class PermissionDenied(LearnloopError):
    status = 403
    code = "permission_denied"


class ProviderError(LearnloopError):
    status = 502
    code = "provider_error"


def provider_message(exc: object) -> str:
    """The human message inside an OpenAI-style error (``{"error": {"message": ...}}``),
    falling back to the exception's own text; shared by every remote provider adapter."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(exc, "message", exc))
