"""Vector validation: nothing but finite float32 vectors of the active dimension is stored."""

from __future__ import annotations

import numpy as np
import pytest

from memwal.vectors import VectorError, check_vector, to_bytes


def test_a_good_vector_passes() -> None:
    vector = check_vector(to_bytes(np.ones(4)), 4, 4)
    assert vector.dtype == np.dtype("<f4") and vector.tolist() == [1.0] * 4


@pytest.mark.parametrize("data, declared, reason", [
    (to_bytes(np.ones(3)), 3, "wrong_dimension"),
    (to_bytes(np.ones(4)), 3, "wrong_dimension"),
    (np.ones(4, dtype="<f8").tobytes(), 4, "wrong_dimension"),   # float64 bytes
    (b"\0\0\0", 4, "wrong_dimension"),
    (to_bytes(np.array([1, np.nan, 0, 0])), 4, "invalid_vector"),
    (to_bytes(np.array([1, np.inf, 0, 0])), 4, "invalid_vector"),
    (to_bytes(np.array([1, -np.inf, 0, 0])), 4, "invalid_vector"),
])
def test_bad_vectors_are_refused_with_a_reason(data: bytes, declared: int, reason: str) -> None:
    with pytest.raises(VectorError) as caught:
        check_vector(data, declared, 4)
    assert caught.value.reason == reason
