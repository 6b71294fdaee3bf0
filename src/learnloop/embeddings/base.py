"""The provider interface, content hashes, and picking a provider from settings.

A provider has a ``model_id`` (stored on every vector and in every cache key), its
``dimensions``, and ``embed(texts) -> float32 array (n, dimensions)`` with unit-length
rows, so cosine distance in pgvector equals 1 - dot product. Providers are cached per
(kind, model, endpoint) for the whole process: the local model loads once.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigurationError, InvalidInput

HASH_PREFIX = "sha256:"
PROVIDERS = ("local", "openai")


@runtime_checkable
class EmbeddingProvider(Protocol):
    model_id: str

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


def content_hash(text: str) -> str:
    """Cache/dedup key of a text; the prefix names the algorithm so it can change later."""
    return HASH_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize(vectors: Any, dimensions: int | None = None) -> np.ndarray:
    """float32 rows of unit length; zero rows stay zero rather than becoming NaN."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        raise InvalidInput(f"expected a 2-D batch of vectors, got shape {arr.shape}", field="embedding")
    if dimensions is not None and arr.shape[1] != dimensions:
        raise InvalidInput(
            f"vector has {arr.shape[1]} dimensions, expected {dimensions}", field="embedding"
        )
    if not np.isfinite(arr).all():
        raise InvalidInput("vector contains NaN or infinity", field="embedding")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return arr / norms


def as_array(value: Any) -> np.ndarray:
    """A vector read from PostgreSQL (pgvector ``Vector``, list or array) as float32."""
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    return np.asarray(value, dtype=np.float32)


_lock = threading.Lock()
_providers: dict[tuple[str, ...], EmbeddingProvider] = {}


def get_provider(name: str | None = None, *, model: str | None = None, settings: Any = None) -> EmbeddingProvider:
    """The provider named (or ``LEARNLOOP_EMBEDDING_PROVIDER``), one instance per process."""
    from ..config import get_settings

    s = settings or get_settings()
    kind = (name or s.embedding_provider or "local").lower()
    if kind not in PROVIDERS:
        raise ConfigurationError(
            f"unknown embedding provider {kind!r}; choose one of: {', '.join(PROVIDERS)}"
        )
    model = model or s.embedding_model
    if kind == "local":
        from .local import DEFAULT_MODEL

        key: tuple[str, ...] = ("local", model or DEFAULT_MODEL)
    else:
        from .remote import DEFAULT_MODEL as OPENAI_DEFAULT

        key = ("openai", model or OPENAI_DEFAULT, s.openai_base_url or "")
    with _lock:
        if key not in _providers:
            if kind == "local":
                from .local import LocalProvider

                _providers[key] = LocalProvider(key[1])
            else:
                from .remote import OpenAIProvider

                _providers[key] = OpenAIProvider(
                    model=key[1], base_url=s.openai_base_url, api_key=s.openai_api_key,
                    timeout=s.openai_timeout, max_retries=s.openai_max_retries,
                    dimensions=s.embedding_dimensions, batch_size=max(1, min(2048, s.embedding_batch_size * 4)),
                )
        return _providers[key]
