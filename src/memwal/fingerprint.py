"""Model fingerprints: an identity for the vectors a model produces, not just for its name.

A fingerprint digests everything that changes the vectors: provider, model id, dimension, dtype,
normalisation, pooling and truncation, and the weights (or, for models without weights, the
algorithm version). Two models of the same dimension never share one; one model on two machines
always does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelSpec:
    """Everything about a model that determines its vectors."""

    provider: str
    model_id: str
    dim: int
    dtype: str
    normalize: bool
    pooling: str
    max_tokens: int
    weights_digest: str


@dataclass(frozen=True)
class ModelInfo:
    """What the index records about a model: the name users type, its dimension, its fingerprint."""

    name: str
    dim: int
    fingerprint: str

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "dim": self.dim, "fingerprint": self.fingerprint}


def fingerprint_of(spec: ModelSpec, name: str) -> str:
    """`<name>/<24 hex digits of the spec's digest>`.

    The name prefix (what users type: `minilm`, `hash-384-b`) lets the committer name the model
    when it adopts one from the first upsert; the digest is what makes two models differ.
    """
    canonical = json.dumps(asdict(spec), sort_keys=True, separators=(",", ":"))
    return f"{name}/{hashlib.sha256(canonical.encode()).hexdigest()[:24]}"


def name_of(fingerprint: str) -> str:
    """The model name a fingerprint carries."""
    return fingerprint.split("/", 1)[0]


def file_digest(path: Path) -> str:
    """sha256 of a weights file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
