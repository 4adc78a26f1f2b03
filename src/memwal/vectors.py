"""Vectors on the wire and in the index: little-endian float32 bytes, checked before storing.

sqlite-vec 0.1.9 accepts NaN, so nothing reaches vec0 without passing `check_vector`.
"""

from __future__ import annotations

import numpy as np

FLOAT32_LE = np.dtype("<f4")


class VectorError(ValueError):
    """A vector that must not be stored; `reason` is a dead-letter reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def to_bytes(vector: np.ndarray) -> bytes:
    """One vector as the raw little-endian float32 bytes of the wire and of vec0."""
    return np.ascontiguousarray(vector, dtype=FLOAT32_LE).tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    """Raw little-endian float32 bytes → a 1-d array (a view, no copy)."""
    return np.frombuffer(data, dtype=FLOAT32_LE)


def check_vector(data: bytes, declared_dim: int, expected_dim: int) -> np.ndarray:
    """Return the vector if it has `expected_dim` finite float32 values, else raise VectorError."""
    if len(data) % 4:
        raise VectorError("wrong_dimension", f"{len(data)} bytes is not a whole number of float32")
    actual_dim = len(data) // 4
    if declared_dim != expected_dim or actual_dim != expected_dim:
        raise VectorError("wrong_dimension",
                          f"vector has {actual_dim} float32 values (declared {declared_dim}); "
                          f"the active model has {expected_dim}")
    vector = from_bytes(data)
    if not np.isfinite(vector).all():
        raise VectorError("invalid_vector", "vector holds NaN or infinity")
    return vector
