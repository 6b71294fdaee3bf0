"""Analytics over the ledger (seed 000's queries): failure rates, golden examples, tags,
correction effectiveness. Keys the caller names are bound as parameters, never SQL text;
every query is scoped to a tenant and, unless asked otherwise, to a project."""

from .ledger import corrections, failure_rate, golden, tag_frequencies

__all__ = ["corrections", "failure_rate", "golden", "tag_frequencies"]
