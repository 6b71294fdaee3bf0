"""Settings, read from the environment (prefix ``LEARNLOOP_``) when asked for, never at import.

Local use needs none of them: no ``LEARNLOOP_DATABASE_URL`` means the embedded
PostgreSQL under ``LEARNLOOP_HOME`` (default: the platform user-data dir).
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    # Embedded server tuning; written to the data dir's learnloop.conf.
    shared_buffers: str = "512MB"
    effective_cache_size: str = "4GB"
    maintenance_work_mem: str = "1GB"
    work_mem: str = "16MB"
    max_connections: int = 200
    # Fine-tuning provider (OpenAI-compatible); the key falls back to OPENAI_API_KEY.
    finetune_base_url: str | None = None
    finetune_api_key: str | None = None
    finetune_timeout: float = 60.0

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment now, with explicit overrides on top."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)  # type: ignore[arg-type]
