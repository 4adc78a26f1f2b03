"""Embedders: a configured model → the object that computes its vectors, one per process.

Loading a real model (its ONNX session, its tokenizer, the digest of its weights) costs about
0.3 s, and a remote model's fingerprint costs a probe over HTTP; a search or an index call in a
long-lived process must not pay either again. `get_embedder` therefore memoises bundled models
by (name, batch size), and `embedder_for` remote ones by (Endpoint, the settings they use, the
API key included): an embedder holds no state a caller can change, so sharing one is safe, and
its lazy parts are built under a lock.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from memwal.embedders.base import Embedder
from memwal.errors import MemwalError, UnknownModel
from memwal.models import REAL_MODELS, Endpoint, HashModel, lookup, validate_model_name

if TYPE_CHECKING:
    from memwal.config import Settings
    from memwal.embedders.remote import RemoteOptions


def get_embedder(name: str, batch_size: int = 32) -> Embedder:
    """The embedder a bundled model's name stands for (one per process). Real models load on
    first embed."""
    return _bundled_embedder(name, batch_size)  # one cache key however the caller passes them


@functools.lru_cache(maxsize=16)
def _bundled_embedder(name: str, batch_size: int) -> Embedder:
    entry = lookup(name)
    if isinstance(entry, HashModel):
        from memwal.embedders.hashing import HashEmbedder

        return HashEmbedder(dim=entry.dim, variant=entry.variant)
    from memwal.embedders.onnx_minilm import OnnxSentenceEmbedder

    return OnnxSentenceEmbedder(entry, batch_size=batch_size)


@functools.lru_cache(maxsize=16)
def _remote_embedder(endpoint: Endpoint, options: "RemoteOptions") -> Embedder:
    from memwal.embedders.remote import RemoteEmbedder

    return RemoteEmbedder(endpoint, options)


def embedder_for(endpoint: Endpoint, settings: "Settings") -> Embedder:
    """The embedder of `endpoint` (one per process per endpoint and settings it uses): a bundled
    model by its name, a remote one with `settings`' batch size, concurrency, timeout, dimension,
    probe interval and API key (`settings.api_key`, from the environment it was loaded with)."""
    if not endpoint.remote:
        return get_embedder(endpoint.model, settings["embedding.batch_size"])
    from memwal.embedders.remote import RemoteOptions

    return _remote_embedder(endpoint, RemoteOptions.of(settings))


def configured_embedder(settings: "Settings") -> Embedder:
    """The embedder the configuration names (`Settings.endpoint`)."""
    return embedder_for(settings.endpoint, settings)


def configured_model(settings: "Settings") -> dict[str, Any]:
    """The configured model as status pages show it: name, dim, fingerprint and endpoint; for
    a remote model whose server does not answer, its name and endpoint with `error` (the one-line
    error and fix) and no fingerprint, so a status never fails because of it."""
    endpoint = settings.endpoint
    try:
        return {**configured_embedder(settings).info.as_dict(), "endpoint": endpoint.as_dict()}
    except MemwalError as exc:
        if not endpoint.remote:
            raise
        return {"name": endpoint.name, "dim": settings["embedding.dim"], "fingerprint": None,
                "endpoint": endpoint.as_dict(), "error": str(exc)}


__all__ = ["Embedder", "configured_model", "UnknownModel", "configured_embedder", "embedder_for", "get_embedder",
           "validate_model_name", "REAL_MODELS"]
