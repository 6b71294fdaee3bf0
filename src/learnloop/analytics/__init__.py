"""Analytics over the ledger (seed 000's questions) at any size.

One breakdown query (:mod:`.breakdown`) answers them all: filters in the search's filter
language, up to two dimensions (JSON keys, columns, tags, time buckets, numeric bands or
equal-count bins), measures with 95% Wilson intervals. ``failure_rate``, ``golden``,
``tags`` and ``corrections`` (:mod:`.ledger`) are its named special cases; ``drivers``
(:mod:`.drivers`) ranks config/context keys by how far the failure rate moves across them.
Keys the caller names are bound as parameters, never SQL text; every query is scoped to a
tenant on every table it reads and, unless asked otherwise, to a project.
"""

from .breakdown import breakdown
from .drivers import drivers
from .ledger import corrections, failure_rate, golden, tag_frequencies

__all__ = ["breakdown", "corrections", "drivers", "failure_rate", "golden", "tag_frequencies"]
