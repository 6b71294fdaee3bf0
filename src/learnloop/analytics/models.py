"""Typed results of the analytics calls (the library returns them; the API serves them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field


class Bucket(BaseModel):
    """Where a group sits on one dimension."""

    value: str | None = Field(description="Key/column/tag value as text, time bucket start (ISO) or band label; "
                                           "null for missing keys, non-numbers under a band, untagged generations.")
    band: int | None = Field(default=None, description="bands/bins: 0 below the first edge, i between edge i-1 and i.")
    low: float | None = Field(default=None, description="bands/bins: lower bound (inclusive).")
    high: float | None = Field(default=None, description="bands/bins: upper bound (exclusive).")
    start: datetime | None = Field(default=None, description="time: start of the bucket.")


class Measures(BaseModel):
    attempts: int = Field(description="Generations in the group.")
    rated: int = Field(description="Generations with a verdict (POSITIVE, NEGATIVE or NEUTRAL).")
    negative: int
    positive: int
    failure_rate: float | None = Field(description="negative / rated.")
    failure_low: float | None = Field(description="95% Wilson interval, lower end.")
    failure_high: float | None = Field(description="95% Wilson interval, upper end.")
    avg_rating: float | None = Field(description="Mean 1-5 rating over every rating row.")
    tokens_in: int
    tokens_out: int
    cost: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None


class Group(Measures):
    by: list[Bucket] = Field(description="One bucket per dimension, in the order asked.")


class DimensionInfo(BaseModel):
    label: str
    kind: str
    key: str | None = None
    source: str | None = None
    edges: list[float] | None = Field(default=None, description="bands: as asked; bins: the quantile edges computed.")
    unit: str | None = None
    tz: str | None = None


class Breakdown(BaseModel):
    dimensions: list[DimensionInfo]
    groups: list[Group]
    total: Measures = Field(description="Every generation the filters select, ungrouped.")


class FailureRateRow(BaseModel):
    value: str | None
    attempts: int
    rated: int
    negative: int
    positive: int
    failure_rate: float | None
    failure_low: float | None
    failure_high: float | None

    def __getitem__(self, name: str) -> Any:  # rows read like the dicts they used to be
        return getattr(self, name)


class TagRow(BaseModel):
    tag: str
    count: int = Field(description="Feedback rows carrying the tag.")
    generations: int = Field(description="Distinct generations whose feedback carries it.")
    share: float | None = Field(description="generations / generations with any feedback in the period.")

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)


class GoldenRow(BaseModel):
    id: UUID
    kind: str
    prompt: str | None
    output_text: str | None
    output_url: str | None
    model: str | None
    config: dict[str, Any]
    context: dict[str, Any]
    iteration: int
    created_at: datetime
    positives: int
    negatives: int
    avg_rating: float | None

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)


class Corrections(BaseModel):
    negative: int = Field(description="Generations judged NEGATIVE.")
    regenerated: int = Field(description="Of those, how many have at least one child.")
    fixed: int = Field(description="Of those, how many have a child judged POSITIVE.")
    fix_rate: float | None = Field(description="fixed / regenerated.")
    iterations: dict[int, int] = Field(description="Trees whose first POSITIVE verdict is at iteration N.")
    never: int = Field(description="Trees with a verdict but none POSITIVE.")

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)


class DriverGroup(BaseModel):
    """One value or bin of a key, over the rated generations that carry it."""

    bucket: Bucket
    rated: int
    negative: int
    failure_rate: float | None
    failure_low: float | None
    failure_high: float | None


class Driver(BaseModel):
    source: str
    key: str
    kind: str = Field(description="values (one group per value) or bins (numbers in equal-count bins).")
    edges: list[float] | None = None
    groups: list[DriverGroup]
    spread: float | None = Field(description="Highest minus lowest failure rate among groups with enough ratings.")
    differs: bool = Field(description="Some two groups' 95% intervals do not overlap.")


class Drivers(BaseModel):
    rated: int = Field(description="Rated generations the filters select.")
    failure_rate: float | None
    drivers: list[Driver] = Field(description="Keys whose failure rate differs first, then by spread.")
    no_difference: list[str] = Field(description="source.key of keys whose groups' intervals all overlap.")
    skipped: list[str] = Field(description="source.key of keys with too many distinct values to compare.")


class FindPage(BaseModel):
    """A keyset page: pass ``next_after`` as ``after`` to read on."""

    items: list[Any]
    next_after: UUID | None
