"""Embedders: model name → model, built once per process and shared by every caller.

Loading a real model (its ONNX session, its tokenizer, the digest of its weights) costs about
0.3 s; a search or an index call in a long-lived process must not pay it again. `get_embedder`
therefore memoises by (name, batch size): an embedder holds no state a caller can change, so
sharing one is safe, and its lazy parts are built under a lock.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from memwal.embedders.base import Embedder
from memwal.errors import UnknownModel
from memwal.models import REAL_MODELS, HashModel, lookup, validate_model_name

if TYPE_CHECKING:
    from memwal.config import Settings


@functools.lru_cache(maxsize=16)
def get_embedder(name: str, batch_size: int = 32) -> Embedder:
    """The embedder a model name stands for (one per process). Real models load on first embed."""
    entry = lookup(name)
    if isinstance(entry, HashModel):
        from memwal.embedders.hashing import HashEmbedder

        return HashEmbedder(dim=entry.dim, variant=entry.variant)
    from memwal.embedders.onnx_minilm import OnnxSentenceEmbedder

    return OnnxSentenceEmbedder(entry, batch_size=batch_size)


def configured_embedder(settings: "Settings") -> Embedder:
    """The embedder the configuration names (embedding.model, embedding.batch_size)."""
    return get_embedder(settings.model, settings["embedding.batch_size"])


__all__ = ["Embedder", "UnknownModel", "configured_embedder", "get_embedder",
           "validate_model_name", "REAL_MODELS"]
