"""Typed outputs of the dictionary and the field catalog (the library answers dicts with
these keys; the API serves them through these models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field


class Term(BaseModel):
    """A word of the app's language and the table.field it means."""

    id: UUID
    word: str
    definition: str | None = None
    category: str | None = None
    table_name: str | None = None
    field_name: str | None = None
    synonyms: list[str]
    examples: list[str]
    active: bool
    created_at: datetime
    updated_at: datetime


class TermMatch(BaseModel):
    """What a phrase means: a term found by its word, a synonym, or by meaning."""

    word: str
    table: str | None
    field: str | None
    score: float = Field(description="1.0 exact, 0.95 synonym, else cosine similarity.")
    match: Literal["exact", "synonym", "semantic"]
    definition: str | None
    category: str | None
    field_definition: str | None = Field(description="The catalog's definition of table.field, if any.")
    data_type: str | None
    term_id: UUID


class CatalogField(BaseModel):
    """One column of the app's database, with what introspection found and what people wrote."""

    id: UUID
    schema_name: str
    table_name: str
    field_name: str
    definition: str | None = Field(None, description="Human-written meaning; never overwritten by introspection.")
    data_type: str | None = None
    required: bool | None = None
    indexed: bool | None = None
    fk_table: str | None = None
    fk_field: str | None = None
    allowed_values: list[Any] | None = None
    example_values: list[Any] | None = None
    notes: str | None = None
    db_comment: str | None = None
    present: bool = Field(description="false when the last introspection no longer found the column.")
    introspected_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
