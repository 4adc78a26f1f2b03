"""The embedder of a model the index names (its active model, a migration's target), which need
not be the configured one: during a migration a process configured with the new model still
embeds queries, and the old model's vectors of what it writes, with the active one.

A bundled model is named by its fingerprint; a remote one is reached through the endpoint the
index recorded from the batches that carried its vectors (provider, model, URL; never a key).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from memwal.errors import MemwalError
from memwal.fingerprint import ModelInfo, name_of
from memwal.models import Endpoint, lookup

if TYPE_CHECKING:
    from memwal.config import Settings
    from memwal.embedders.base import Embedder


def embedder_of(settings: "Settings", model: ModelInfo, endpoint: Mapping[str, Any] | None,
                configured: "Embedder | None" = None) -> "Embedder | None":
    """An embedder whose fingerprint is `model`'s, or None if this process cannot build one (an
    unknown name, a server that does not answer, other weights behind the name)."""
    from memwal.embedders import embedder_for

    if configured is not None and _same(configured, model):
        return configured
    try:
        if endpoint:
            where = Endpoint.from_dict(dict(endpoint))
        else:  # a bundled model: its name says it all
            name = name_of(model.fingerprint)
            lookup(name)
            where = Endpoint.configured("onnx", name)
        candidate = embedder_for(where, settings)
        return candidate if _same(candidate, model) else None
    except (MemwalError, ValueError, KeyError, TypeError):
        return None


def _same(embedder: "Embedder", model: ModelInfo) -> bool:
    try:
        return embedder.fingerprint == model.fingerprint
    except MemwalError:
        return False
