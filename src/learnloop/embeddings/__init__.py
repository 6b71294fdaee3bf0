"""Embeddings: providers (the packaged local model, any OpenAI-compatible API) and the cache.

Importing this package is cheap: torch and sentence-transformers load only when a
``LocalProvider`` embeds its first batch, once per process.

    from learnloop.embeddings import get_provider, embed_with_cache
    p = get_provider()                        # settings: LEARNLOOP_EMBEDDING_PROVIDER/MODEL
    vecs = p.embed(["hello"])                 # float32, L2-normalised, shape (n, p.dimensions)
"""

from .base import EmbeddingProvider, content_hash, get_provider, normalize
from .cache import embed_with_cache
from .metrics import METRICS

__all__ = ["METRICS", "EmbeddingProvider", "content_hash", "embed_with_cache", "get_provider", "normalize"]
