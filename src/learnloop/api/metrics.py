"""Prometheus metrics of one app: request latency, search latency, embedding cache hit
rate, archive lag. Each app has its own registry (tests create many apps)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram("learnloop_http_request_duration_seconds", "HTTP request latency",
                                  ["method", "route", "status"], buckets=BUCKETS, registry=self.registry)
        self.search = Histogram("learnloop_search_duration_seconds", "Similarity search latency",
                                buckets=BUCKETS, registry=self.registry)
        self.archive_lag = Gauge("learnloop_archive_lag_seconds",
                                 "Age of the oldest event not yet in the Parquet archive", registry=self.registry)
        self.archived = Gauge("learnloop_archived_events", "Events archived so far", registry=self.registry)
        self.cache_hit_rate = Gauge("learnloop_embedding_cache_hit_rate",
                                    "Share of embedding requests served from the cache", registry=self.registry)
        self.ws_clients = Gauge("learnloop_stream_clients", "Open WebSocket event streams", registry=self.registry)
        self.ws_events = Counter("learnloop_stream_events", "Events sent over WebSocket streams",
                                 registry=self.registry)

    def render(self, db: Any) -> bytes:
        from ..events import archive

        try:
            st = archive.status(db)
            self.archive_lag.set(st["lag_seconds"])
            self.archived.set(float(st.get("archived") or 0))
        except Exception:  # noqa: BLE001 - metrics must render even when the database is down
            pass
        try:
            from ..knowledge import metrics as km  # lands with the knowledge issue

            rate = getattr(km, "cache_hit_rate", None)
            if callable(rate):
                value = rate()
                if value is not None:
                    self.cache_hit_rate.set(float(value))
        except Exception:  # noqa: BLE001
            pass
        return generate_latest(self.registry)
