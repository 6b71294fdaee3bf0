"""Process-wide embedding counters (seed 002: embedding time, cache hits/misses).

One ``METRICS`` object per process, updated by ``embed_with_cache`` under a lock so
threads of a server can share it. Search metrics live next to search; they read
``METRICS.snapshot()`` to report embedding figures beside their own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class EmbeddingMetrics:
    embed_calls: int = 0        # calls that reached a provider (a full cache hit makes none)
    texts_embedded: int = 0     # texts a provider actually embedded
    cache_hits: int = 0         # texts answered from learnloop.embedding_cache
    cache_misses: int = 0       # texts that had to be embedded
    embed_seconds: float = 0.0  # wall time spent inside providers
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, *, hits: int, misses: int, seconds: float, calls: int) -> None:
        with self._lock:
            self.cache_hits += hits
            self.cache_misses += misses
            self.texts_embedded += misses
            self.embed_calls += calls
            self.embed_seconds += seconds

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            looked_up = self.cache_hits + self.cache_misses
            return {
                "embed_calls": self.embed_calls,
                "texts_embedded": self.texts_embedded,
                "cache_hits": self.cache_hits,
                "cache_misses": self.cache_misses,
                "cache_hit_rate": (self.cache_hits / looked_up) if looked_up else 0.0,
                "embed_seconds": self.embed_seconds,
                "embed_ms_per_text": (1000 * self.embed_seconds / self.texts_embedded)
                if self.texts_embedded else 0.0,
            }

    def reset(self) -> None:
        with self._lock:
            self.embed_calls = self.texts_embedded = self.cache_hits = self.cache_misses = 0
            self.embed_seconds = 0.0


METRICS = EmbeddingMetrics()
