"""Embedders: name → model. One small interface, three kinds: MiniLM, paraphrase-MiniLM, hashing."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from memwal.embedders.base import Embedder, UnknownModel

if TYPE_CHECKING:
    from memwal.config import Settings

REAL_MODELS = ("minilm", "paraphrase-minilm")
_HASH_NAME = re.compile(r"^hash-(\d{1,5})(?:-([a-z0-9]{1,16}))?$")


def validate_model_name(name: str) -> str:
    """Return the name if it is one we can build, else raise UnknownModel naming the valid ones."""
    if name in REAL_MODELS:
        return name
    match = _HASH_NAME.match(name)
    if match and 1 <= int(match.group(1)) <= 8192:
        return name
    raise UnknownModel(
        f"unknown embedding model {name!r}: use minilm (all-MiniLM-L6-v2, 384-d, the default), "
        "paraphrase-minilm (paraphrase-MiniLM-L3-v2, 384-d) or hash-<dim>[-<variant>] "
        "(e.g. hash-384, hash-384-b; for tests)"
    )


def get_embedder(name: str, batch_size: int = 32) -> Embedder:
    """Build the embedder a model name stands for. Real models load lazily on first embed."""
    validate_model_name(name)
    if name == "minilm":
        from memwal.embedders.onnx_minilm import minilm

        return minilm(batch_size)
    if name == "paraphrase-minilm":
        from memwal.embedders.onnx_minilm import paraphrase_minilm

        return paraphrase_minilm(batch_size)
    from memwal.embedders.hashing import HashEmbedder

    match = _HASH_NAME.match(name)
    assert match is not None
    return HashEmbedder(dim=int(match.group(1)), variant=match.group(2) or "a")


def configured_embedder(settings: "Settings") -> Embedder:
    """The embedder the configuration names (embedding.model, embedding.batch_size)."""
    return get_embedder(settings.model, settings["embedding.batch_size"])


__all__ = ["Embedder", "UnknownModel", "configured_embedder", "get_embedder",
           "validate_model_name", "REAL_MODELS"]
