"""OpenAI-compatible embeddings (``POST {base_url}/embeddings``) with the official client.

Works with api.openai.com (``text-embedding-3-small``, 1536 dims) or any server that
speaks the same protocol (``LEARNLOOP_OPENAI_BASE_URL``). Texts go in batches; every
failure (timeout, connection, HTTP status, malformed answer) becomes ``ProviderError``
with the provider's own reason, so a caller never sees an openai/httpx exception.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigurationError, InvalidInput, ProviderError, provider_message
from .base import normalize

DEFAULT_MODEL = "text-embedding-3-small"
KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class OpenAIProvider:
    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        dimensions: int | None = None,
        batch_size: int = 256,
    ) -> None:
        if not api_key:
            if base_url is None:
                raise ConfigurationError(
                    "the openai embedding provider needs LEARNLOOP_OPENAI_API_KEY "
                    "(or LEARNLOOP_OPENAI_BASE_URL for a local OpenAI-compatible server)"
                )
            api_key = "unused"  # local servers often need none; the client insists on one
        self.model_id = model
        self.base_url = base_url
        self.batch_size = batch_size
        self._dims = dimensions or KNOWN_DIMENSIONS.get(model)
        self._kwargs: dict[str, Any] = {
            "api_key": api_key, "base_url": base_url, "timeout": timeout, "max_retries": max_retries,
        }
        self._client: Any = None

    @property
    def dimensions(self) -> int:
        if self._dims is None:  # unknown model on a custom server: ask it once
            self._dims = int(self._request(["dimension probe"]).shape[1])
        return self._dims

    def _openai(self) -> Any:
        if self._client is None:
            try:
                import openai
            except ImportError as exc:
                raise ConfigurationError("the openai package is not installed: pip install 'learnloop[knowledge]'") from exc
            self._client = openai.OpenAI(**self._kwargs)
        return self._client

    def _request(self, batch: list[str]) -> np.ndarray:
        import openai

        where = self.base_url or "api.openai.com"
        try:
            resp = self._openai().embeddings.create(model=self.model_id, input=batch)
        except openai.APITimeoutError:
            raise ProviderError(
                f"embedding request to {where} timed out after {self._kwargs['timeout']} s"
            ) from None
        except openai.APIConnectionError as exc:
            raise ProviderError(f"cannot reach the embedding provider at {where}: {exc}") from None
        except openai.APIStatusError as exc:
            raise ProviderError(
                f"embedding provider at {where} answered HTTP {exc.status_code}: {provider_message(exc)}"
            ) from None
        except openai.OpenAIError as exc:
            raise ProviderError(f"embedding provider at {where} failed: {exc}") from None
        data = sorted(resp.data or [], key=lambda d: d.index)
        if len(data) != len(batch):
            raise ProviderError(
                f"embedding provider at {where} returned {len(data)} vectors for {len(batch)} texts"
            )
        try:
            return normalize([d.embedding for d in data], self._dims)
        except InvalidInput as exc:
            raise ProviderError(f"embedding provider at {where} returned bad vectors: {exc}") from None

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        parts = [self._request(list(texts[i:i + self.batch_size])) for i in range(0, len(texts), self.batch_size)]
        return np.vstack(parts)

    def __repr__(self) -> str:
        return f"OpenAIProvider({self.model_id!r}, base_url={self.base_url!r})"

