"""``/v1/project/settings``: the full-text language and embedding model of the project named
by ``X-Learnloop-Project`` (docs/languages.md).

Reading needs a read key; changing needs an admin key. A change is validated before
anything is written: a language PostgreSQL does not have, a local model that is not on the
server, an OpenAI-compatible model whose dimensions differ from the vectors stored under its
name are 422 problems naming the field, and nothing changes. A language and a model sent
together are checked both first, then written (the language re-stems the project's rows).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from ...embeddings.base import get_provider
from ...errors import ConfigurationError, InvalidInput
from ...knowledge import languages as _lang
from ..deps import Admin, Ctx, Read

router = APIRouter(prefix="/v1", tags=["knowledge"])


class ProjectSettings(BaseModel):
    project: str
    language: str = Field(description="PostgreSQL text search configuration used to stem this project's texts.")
    embedding_provider: Literal["local", "openai"] | None = Field(
        description="The project's own embedding provider; null: the server's.")
    embedding_model: str | None = Field(description="The project's own embedding model; null: the server's.")
    model_in_use: str = Field(description="The model that embeds this project's writes and text queries now.")
    available_languages: list[str] = Field(description="Text search configurations this server has.")
    restemmed: int | None = Field(None, description="After a language change: stored rows re-stemmed.")


class ProjectSettingsChange(BaseModel):
    """Fields left out keep their value. ``embedding_model`` needs ``embedding_provider``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"language": "spanish"},
        {"embedding_provider": "openai", "embedding_model": "text-embedding-3-small"}]})
    language: str | None = Field(None, min_length=1, max_length=63, examples=["spanish"])
    embedding_provider: Literal["local", "openai"] | None = None
    embedding_model: str | None = Field(None, min_length=1, max_length=500,
                                        description="A sentence-transformers name or server path (local), "
                                                    "or an OpenAI-compatible model name.")


def _out(ctx: Ctx, restemmed: int | None = None) -> dict[str, Any]:
    with ctx.client.db.connection() as conn:
        ps = _lang.settings(ctx.client.db, ctx.scope, conn)
        langs = _lang.available(conn)
    return {"project": ctx.scope.project, **ps, "model_in_use": ctx.client.knowledge.provider.model_id,
            "available_languages": langs, "restemmed": restemmed}


@router.get("/project/settings", response_model=ProjectSettings,
            summary="This project's full-text language and embedding model")
def get_project_settings(ctx: Read) -> Any:
    return _out(ctx)


@router.put("/project/settings", response_model=ProjectSettings,
            summary="Change this project's full-text language and/or embedding model (admin)")
def put_project_settings(body: ProjectSettingsChange, ctx: Admin) -> Any:
    if body.language is None and body.embedding_provider is None and body.embedding_model is None:
        raise InvalidInput("nothing to change: give language, or embedding_provider with embedding_model",
                           field="language")
    if (body.embedding_provider is None) != (body.embedding_model is None):
        raise InvalidInput("give embedding_provider and embedding_model together",
                           field="embedding_model" if body.embedding_model is None else "embedding_provider")
    kn = ctx.client.knowledge
    provider = None
    if body.embedding_provider is not None:
        try:
            provider = get_provider(body.embedding_provider, model=body.embedding_model, settings=ctx.client.settings)
        except ConfigurationError as exc:  # e.g. a local model that is not on this server
            raise InvalidInput(exc.message, field="embedding_model") from None
    with ctx.client.db.connection() as conn:
        if body.language is not None:
            _lang.check_language(conn, body.language)  # before the model is written
    if provider is not None:
        kn.set_model(provider)  # refuses other dimensions under the same model name
    restemmed = kn.set_language(body.language) if body.language is not None else None
    return _out(ctx, restemmed)
