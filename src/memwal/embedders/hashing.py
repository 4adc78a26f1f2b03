"""A deterministic hashing embedder for fast tests: no model, same output on every machine.

Feature hashing of lowercased words and their bigrams into `dim` signed buckets. The variant
salts the hash, so `hash-384` and `hash-384-b` have the same dimension but different vectors.
Exact-word queries find the texts that contain those words, which is what the fast tests need.
"""

from __future__ import annotations

import hashlib
import re
from typing import Sequence

import numpy as np

from memwal.embedders.base import l2_normalise
from memwal.fingerprint import ModelInfo, ModelSpec, fingerprint_of
from memwal.models import Endpoint

# Bump when the hashing changes: it is what the fingerprint digests in place of weights.
ALGORITHM = "blake2b-words-bigrams-v1"
_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """`hash-<dim>[-<variant>]`."""

    def __init__(self, dim: int, variant: str = "a") -> None:
        self.dim = dim
        self.variant = variant
        self.name = f"hash-{dim}" if variant == "a" else f"hash-{dim}-{variant}"
        self.endpoint = Endpoint("hash", self.name)
        self._salt = hashlib.blake2b(variant.encode(), digest_size=16).digest()
        self._spec = ModelSpec(
            provider="memwal-hash", model_id=self.name, dim=dim, dtype="float32",
            normalize=True, pooling="sum", max_tokens=0, weights_digest=ALGORITHM,
        )
        self._fingerprint = fingerprint_of(self._spec, self.name)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(self.name, self.dim, self._fingerprint)

    def _bucket(self, feature: str) -> tuple[int, float]:
        digest = hashlib.blake2b(feature.encode(), digest_size=8, key=self._salt).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dim, (1.0 if (value >> 63) & 1 else -1.0)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            features = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
            if not features:
                features = [f"\x00empty\x00{text}"]
            for feature in features:
                bucket, sign = self._bucket(feature)
                out[row, bucket] += sign
        return l2_normalise(out)
