"""Settings, read from the environment (prefix ``LEARNLOOP_``) when asked for, never at import.

Local use needs none of them: no ``LEARNLOOP_DATABASE_URL`` means the embedded
PostgreSQL under ``LEARNLOOP_HOME`` (default: the platform user-data dir).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError

DEFAULT_TENANT = "default"
DEFAULT_PROJECT = "default"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEARNLOOP_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("learnloop")),
        description="Where the embedded server keeps its data directory.",
    )
    database_url: str | None = Field(
        default=None, description="An external PostgreSQL (>= 15, pgvector >= 0.8) to use instead."
    )
    tenant: str = DEFAULT_TENANT
    project: str = DEFAULT_PROJECT
    pool_min: int = 1
    pool_max: int = 10
    connect_timeout: float = 10.0
    synchronous_commit: Literal["on", "off"] | None = Field(
        default=None,
        description="PostgreSQL synchronous_commit for learnloop's connections; unset keeps the server's "
        "(on, for the embedded one). 'off' stops every write waiting for the WAL flush: a crash may lose "
        "the last fraction of a second of writes, never half of one. See docs/operations.md.")
    # Embedded server tuning; written to the data dir's learnloop.conf.
    shared_buffers: str | None = Field(
        default=None, description="Embedded PostgreSQL shared_buffers; unset: a quarter of the memory this "
        "process may use (the machine's, or its container's limit), from 128MB to 8GB (docs/operations.md).")
    io_method: Literal["sync", "worker", "io_uring"] | None = Field(
        default=None, description="Embedded PostgreSQL io_method; unset: 'sync' on a machine with two CPUs or "
        "fewer (reads in the scanning process: a 10M-row breakdown ~15% faster there), PostgreSQL's "
        "'worker' above (docs/operations.md).")
    effective_cache_size: str = "4GB"
    maintenance_work_mem: str = "1GB"
    work_mem: str = "16MB"
    max_connections: int = 200
    # Search (learnloop.knowledge.search); see docs/retrieval.md for how they were chosen.
    search_ef_search: int | None = Field(
        default=None, description="HNSW candidate list size (hnsw.ef_search); unset: 64 up to 81.5k vectors, "
        "growing with the table beyond (80 at 117k, about 300 at 1M, at most 400), see docs/retrieval.md.")
    search_exact_threshold: int | None = Field(
        default=None, description="Filters matching fewer rows than this are searched exactly (B-tree + sort); "
        "unset: sqrt(12 * k * rows in the table), see docs/retrieval.md.")
    search_max_scan_tuples: int = Field(default=20000, description="hnsw.max_scan_tuples for iterative scans.")
    slow_search_ms: float = Field(default=200.0, description="Searches slower than this log a warning.")
    # Service (events/api): archive location (folder or pyarrow URI), broker, HTTP limits.
    archive_root: str | None = None
    archive_interval: float = 60.0
    rollup_interval: float = Field(default=30.0, description="Seconds between the server's passes that rebuild the "
                                   "analytics rollup's changed days (0: never; see docs/analytics.md).")
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    api_max_body_bytes: int = 10_000_000
    api_db_timeout: float = 5.0
    api_max_upload_bytes: int = 10_000_000  # one uploaded document; the whole request also obeys api_max_body_bytes
    api_preload_model: bool = Field(default=True, description="Load the local embedding model when the API starts "
                                    "(when search is installed), not on the first search.")
    # User SQL (events.sql, POST /v1/events/sql): each query's limits, and how many may run
    # at once per caller (an API key; the tenant for library calls) in one process.
    sql_timeout: float = Field(default=10.0, gt=0, description="Seconds a user SQL query may run.")
    sql_memory_limit: str = Field(default="256MB", description="DuckDB memory_limit per user SQL query.")
    sql_threads: int = Field(default=1, ge=1, description="DuckDB threads per user SQL query.")
    sql_concurrency: int = Field(default=2, ge=1, description="User SQL queries running at once per caller.")
    # Fine-tuning provider (OpenAI-compatible); the key falls back to OPENAI_API_KEY.
    finetune_base_url: str | None = None
    finetune_api_key: str | None = None
    finetune_timeout: float = 60.0
    # Embeddings (learnloop.embeddings): "local" = the packaged all-MiniLM-L6-v2, or "openai".
    embedding_provider: str = "local"
    embedding_model: str | None = Field(default=None, description="Model id; default depends on the provider.")
    embedding_dimensions: int | None = Field(default=None, description="Dimensions of an unknown OpenAI-compatible model.")
    embedding_batch_size: int = 64
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    openai_timeout: float = 30.0
    openai_max_retries: int = 2
    # Documents (learnloop.knowledge): limits for parsing untrusted files in a subprocess.
    max_file_bytes: int = 50 * 1024 * 1024
    extract_timeout: float = 60.0
    extract_cpu_seconds: int = 30
    extract_memory_mb: int = 1024
    max_extracted_chars: int = 5_000_000
    chunk_tokens: int = 200
    chunk_overlap: int = 32

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment now, with explicit overrides on top."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)  # type: ignore[arg-type]
    except ValidationError as exc:
        # A bad LEARNLOOP_* variable or keyword: one sentence naming it, never a pydantic dump.
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigurationError(
            f"setting {name} (LEARNLOOP_{name.upper()}): {first['msg']}, got {first.get('input')!r}"
        ) from None
