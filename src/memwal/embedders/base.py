"""The embedder interface every model implements."""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from memwal.errors import UnknownModel
from memwal.fingerprint import ModelInfo
from memwal.models import Endpoint

__all__ = ["Embedder", "UnknownModel", "l2_normalise"]


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def endpoint(self) -> Endpoint: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def info(self) -> ModelInfo: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An (n, dim) float32 array, each row of unit length."""
        ...


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; an all-zero row stays zero rather than becoming NaN."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32, copy=False)
