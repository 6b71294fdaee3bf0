"""What a breakdown is asked for: dimensions, filters, and their validation.

A dimension is one of

* ``key``    a JSON key of ``config``, ``context`` or ``output_meta`` (``style_preset``,
             ``context.region``): one group per value (as text), missing keys under null;
* ``column`` ``model``, ``kind``, ``provider``, ``user_ref``, ``session_ref``, ``project``;
* ``tag``    a feedback tag: a generation counts once under each tag its feedback carries,
             and under null when it has none;
* ``time``   ``hour``, ``day``, ``week`` (Monday) or ``month`` of ``created_at`` in a named
             IANA time zone (default UTC);
* ``bands``  a JSON number cut at increasing edges (``demand_kw:bands=0,100,500``: below 0,
             0-100, 100-500, 500 and over); missing or non-numeric values under null;
* ``bins``   a JSON number cut into N groups of about equal count (``efficiency:bins=4``);
             edges are the ``percentile_cont`` quantiles of the rows in scope, ties kept
             together.

The text form (CLI, query strings) is ``NAME[:OPTION]``: ``style_preset``,
``config.audience``, ``model``, ``tag``, ``day``, ``week:tz=Europe/Madrid``,
``demand_kw:bands=0,100,500``, ``efficiency:bins=4``. A bare JSON key is looked up in config,
then context, then output_meta (see :func:`learnloop.analytics.breakdown.resolve_sources`).

Keys are data: they are bound as parameters, and besides that an analytics key must be
made of letters, digits, spaces and ``_ - . : / @ #`` so a pasted SQL fragment is refused
with a sentence instead of silently matching nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidInput
from ..knowledge.filters import parse_conditions
from ..ledger.models import describe
from ..store.validation import check_key

Source = Literal["config", "context", "output_meta"]
SOURCES: tuple[Source, ...] = ("config", "context", "output_meta")
COLUMNS = ("model", "kind", "provider", "user_ref", "session_ref", "project")
UNITS = ("hour", "day", "week", "month")
KINDS = ("key", "column", "tag", "time", "bands", "bins")
VERDICTS = ("POSITIVE", "NEGATIVE", "NEUTRAL", "UNRATED")
FEEDBACK_SOURCES = ("user", "admin", "automatic")
MAX_DIMENSIONS = 2
MAX_EDGES = 100
MAX_BINS = 100
_KEY = re.compile(r"^[\w \-.:/@#]+$")


def check_analytics_key(key: Any, what: str = "key") -> str:
    key = check_key(key, what)
    if not _KEY.match(key) or "--" in key:
        raise InvalidInput(
            f"{what} {key!r} has characters an analytics key cannot have (quotes, ';', '(', ')', '--'...):"
            " use letters, digits, spaces and _ - . : / @ #; keys are matched as data, never run as SQL",
            field=what)
    return key


def split_source(name: str) -> tuple[Source | None, str]:
    """``"context.region"`` -> ("context", "region"); a bare key -> (None, key)."""
    head, dot, rest = name.partition(".")
    if dot and head in SOURCES and rest:
        return head, rest  # type: ignore[return-value]
    return None, name


class Dimension(BaseModel):
    """One way to group generations (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str = Field(description="key, column, tag, time, bands or bins")
    key: str | None = Field(default=None, description="JSON key (key/bands/bins) or column name (column).")
    source: Source | None = Field(default=None, description="config, context or output_meta; looked up when omitted.")
    edges: tuple[float, ...] | None = Field(default=None, description="bands: increasing numbers.")
    bins: int | None = Field(default=None, description="bins: how many groups of about equal count.")
    unit: str | None = Field(default=None, description="time: hour, day, week or month.")
    tz: str = Field(default="UTC", description="time: IANA time zone the buckets are cut in.")

    @property
    def label(self) -> str:
        if self.kind == "time":
            return f"{self.unit}@{self.tz}" if self.tz != "UTC" else str(self.unit)
        if self.kind == "tag":
            return "tag"
        return f"{self.source}.{self.key}" if self.source else str(self.key)


def dimension(spec: Any) -> Dimension:
    """A Dimension from its text form, a dict, or a Dimension; validated."""
    if isinstance(spec, Dimension):
        d = spec
    elif isinstance(spec, str):
        d = _parse_text(spec)
    elif isinstance(spec, Mapping):
        try:
            d = Dimension.model_validate(dict(spec))
        except ValidationError as exc:
            raise InvalidInput(describe(exc), field="by") from None
    else:
        raise InvalidInput(f"a dimension is a string like 'style_preset' or an object, got {type(spec).__name__}",
                           field="by")
    return _checked(d)


def dimensions(specs: Any) -> list[Dimension]:
    if specs is None:
        return []
    if isinstance(specs, str | Mapping | Dimension):
        specs = [specs]
    if not isinstance(specs, Sequence):
        raise InvalidInput("by must be a list of dimensions", field="by")
    if len(specs) > MAX_DIMENSIONS:
        raise InvalidInput(f"a breakdown groups by at most {MAX_DIMENSIONS} dimensions, got {len(specs)}", field="by")
    return [dimension(s) for s in specs]


def _parse_text(text: str) -> Dimension:
    text = text.strip()
    if not text:
        raise InvalidInput("a dimension cannot be empty", field="by")
    name, colon, option = text.partition(":")
    name = name.strip()
    if not colon:
        if name == "tag":
            return Dimension(kind="tag")
        if name in UNITS:
            return Dimension(kind="time", unit=name)
        if name in COLUMNS:
            return Dimension(kind="column", key=name)
        source, key = split_source(name)
        return Dimension(kind="key", key=key, source=source)
    opt, eq, value = option.partition("=")
    opt = opt.strip()
    if not eq:
        raise InvalidInput(f"cannot read dimension {text!r}: write NAME:bands=0,100,500, NAME:bins=4 or UNIT:tz=ZONE",
                           field="by")
    source, key = split_source(name)
    if opt == "bands":
        return Dimension(kind="bands", key=key, source=source, edges=tuple(_number(v, text) for v in value.split(",")))
    if opt == "bins":
        try:
            n = int(value)
        except ValueError:
            raise InvalidInput(f"bins must be a whole number in {text!r}", field="by") from None
        return Dimension(kind="bins", key=key, source=source, bins=n)
    if opt == "tz":
        if name not in UNITS:
            raise InvalidInput(f"tz applies to a time bucket ({', '.join(UNITS)}), not to {name!r}", field="by")
        return Dimension(kind="time", unit=name, tz=value.strip())
    raise InvalidInput(f"unknown dimension option {opt!r} in {text!r}: use bands=, bins= or tz=", field="by")


def _number(v: str, text: str) -> float:
    try:
        x = float(v)
    except ValueError:
        raise InvalidInput(f"band edges must be numbers, got {v.strip()!r} in {text!r}", field="by") from None
    return x


def _checked(d: Dimension) -> Dimension:
    if d.kind not in KINDS:
        raise InvalidInput(f"unknown dimension kind {d.kind!r}: use one of {', '.join(KINDS)}", field="by")
    if d.kind in ("key", "bands", "bins"):
        check_analytics_key(d.key, "dimension key")
    if d.kind == "column" and d.key not in COLUMNS:
        raise InvalidInput(f"unknown column {d.key!r}: use one of {', '.join(COLUMNS)}", field="by")
    if d.kind == "bands":
        edges = d.edges or ()
        if not edges:
            raise InvalidInput("bands need at least one edge, e.g. bands=0,100,500", field="by")
        if len(edges) > MAX_EDGES:
            raise InvalidInput(f"bands take at most {MAX_EDGES} edges", field="by")
        if any(isinstance(e, bool) or not math.isfinite(e) for e in edges):
            raise InvalidInput("band edges must be finite numbers", field="by")
        if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
            raise InvalidInput(f"band edges must be strictly increasing numbers, got {list(edges)}", field="by")
    if d.kind == "bins" and (d.bins is None or not 2 <= d.bins <= MAX_BINS):
        raise InvalidInput(f"bins must be a whole number from 2 to {MAX_BINS}", field="by")
    if d.kind == "time":
        if d.unit not in UNITS:
            raise InvalidInput(f"unknown time unit {d.unit!r}: use one of {', '.join(UNITS)}", field="by")
        check_time_zone(d.tz)
    return d


def _cli_text(w: Any) -> str:
    if not isinstance(w, str):
        raise InvalidInput("each condition is a string like audience=INVESTOR or demand_kw>500", field="where")
    return w


def check_time_zone(tz: Any) -> str:
    if not isinstance(tz, str) or not tz or "\x00" in tz:
        raise InvalidInput("a time zone is a name like Europe/Madrid", field="tz")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {tz!r}: use an IANA name such as UTC or Europe/Madrid",
                           field="tz") from None
    return tz


class Filters(BaseModel):
    """Which generations a breakdown, ``find`` or drivers call looks at (all must hold).

    ``where`` uses the search's filter language (eq, ne, in, lt/lte/gt/gte, exists, and/or);
    its keys are JSON keys of config, context or output_meta (``context.region`` to name the
    source, else looked up). ``config``/``context``/``output_meta`` take the same language
    over that one document.
    """

    model_config = ConfigDict(extra="forbid")
    where: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    output_meta: dict[str, Any] | None = None
    kind: list[str] | None = None
    model: list[str] | None = None
    provider: list[str] | None = None
    user_ref: list[str] | None = None
    session_ref: list[str] | None = None
    projects: list[str] | None = Field(default=None, description="Project names; default the client's project.")
    all_projects: bool = False
    links: dict[str, Any] | None = Field(default=None, description="Business entities, all must match.")
    tags: list[str] | None = Field(default=None, description="Generations whose feedback carries any of these tags.")
    verdict: list[Literal["POSITIVE", "NEGATIVE", "NEUTRAL", "UNRATED"]] | None = None
    feedback_source: list[Literal["user", "admin", "automatic"]] | None = Field(
        None, description="Generations with feedback from any of these sources.")
    since: datetime | None = Field(default=None, description="created_at from (inclusive).")
    until: datetime | None = Field(default=None, description="created_at up to (exclusive).")


def filters(value: Any = None, *, where: Any = None, **more: Any) -> Filters:
    """A Filters from a Filters or a dict of its fields, plus keyword fields.

    ``where`` is the filter language (a dict), or its CLI form (``"audience=INVESTOR"`` or a
    list of such strings, all of which must hold); it is ANDed with any ``where`` already in
    ``value``. One-string lists may be given as the string.
    """
    data: dict[str, Any] = {}
    if isinstance(value, Filters):
        data = value.model_dump(exclude_defaults=True)
    elif isinstance(value, Mapping):
        data = dict(value)
    elif value is not None:
        raise InvalidInput(f"filters must be an object, got {type(value).__name__}", field="filters")
    data.update({k: v for k, v in more.items() if v is not None})
    if isinstance(where, str):
        where = [where]
    if isinstance(where, list | tuple):
        where = parse_conditions([_cli_text(w) for w in where])
    if where is not None:
        if not isinstance(where, Mapping):
            raise InvalidInput(f"where must be a filter object or conditions like 'audience=INVESTOR', "
                               f"got {type(where).__name__}", field="where")
        data["where"] = {"and": [data["where"], dict(where)]} if data.get("where") else dict(where)
    for name in ("kind", "model", "provider", "user_ref", "session_ref", "projects", "tags", "verdict",
                 "feedback_source"):
        if isinstance(data.get(name), str):
            data[name] = [data[name]]
    try:
        f = Filters.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(describe(exc), field="filters") from None
    for name in ("since", "until"):
        t = getattr(f, name)
        if t is not None and t.tzinfo is None:  # a bare date from the CLI: read it as UTC
            setattr(f, name, t.replace(tzinfo=UTC))
    return f
