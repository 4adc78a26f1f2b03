"""How stable is a remote model's probe? The measurement behind memwal.embedders.remote's choice.

    PYTHONPATH=src python benchmarks/probe_stability.py [--texts 2000]

Serves the bundled ONNX models over HTTP (tests/embedding_server.py) and embeds the same texts
in several batch compositions (alone beside one filler, in batches of 5 and of 32 with other
texts of other lengths, reversed). For each model it prints the largest per-component
difference and the lowest cosine between compositions, then, taking every 4 consecutive texts
as a probe, how often a digest changes under each quantisation scheme: the measured noise, and
simulated noise of 1e-6 and 1e-3 (an fp16 GPU server) added to the vectors. It also compares
the optimised and unoptimised ONNX sessions in-process (onnx_minilm.py notes ~1e-7).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers import EmbeddingServer  # noqa: E402
from memwal.embedders.remote import (  # noqa: E402
    SENTINEL, RemoteEmbedder, RemoteOptions, probe_digest,
)
from memwal.models import Endpoint  # noqa: E402

WORDS = ("queue index commit vector model note garden compost moon jupiter tomato river "
         "stock ledger search chunk embed server weights probe lease batch file folder "
         "markdown heading write durable crash replay dead letter fingerprint").split()


def texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 60))) + "."
            for _ in range(n)]


def rounded(decimals: int) -> Callable[[np.ndarray], str]:
    def digest(vectors: np.ndarray) -> str:
        return hashlib.sha256(np.round(vectors.astype(np.float64), decimals).tobytes()).hexdigest()

    return digest


SCHEMES: dict[str, Callable[[np.ndarray], str]] = {
    "round 3 decimals": rounded(3), "round 2 decimals": rounded(2),
    "round 1 decimal": rounded(1), "top-8 indices+signs": probe_digest,
}


def layouts(corpus: list[str], rng: random.Random) -> dict[str, list[list[str]]]:
    """Batch compositions of the corpus (each text appears once per layout)."""
    shuffled = corpus[:]
    rng.shuffle(shuffled)
    return {
        "pairs": [[t, "filler"] for t in corpus],
        "batches of 5": [corpus[i:i + 5] for i in range(0, len(corpus), 5)],
        "batches of 32, shuffled": [shuffled[i:i + 32] for i in range(0, len(shuffled), 32)],
        "batches of 32, reversed": [corpus[::-1][i:i + 32] for i in range(0, len(corpus), 32)],
    }


def embed_layout(embedder: RemoteEmbedder, batches: list[list[str]]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for batch in batches:
        vectors = embedder._request(batch, expect_dim=None)
        for text, vector in zip(batch, vectors):
            out.setdefault(text, vector)
    return out


def flip_rate(scheme: Callable[[np.ndarray], str], a: np.ndarray, b: np.ndarray) -> float:
    groups = len(a) // 4
    return sum(scheme(a[4 * g:4 * g + 4]) != scheme(b[4 * g:4 * g + 4])
               for g in range(groups)) / groups


def top_gap(vectors: np.ndarray, k: int = 8) -> np.ndarray:
    magnitudes = -np.sort(-np.abs(vectors), axis=1)
    return magnitudes[:, k - 1] - magnitudes[:, k]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--models", default="minilm,paraphrase-minilm")
    args = parser.parse_args()
    corpus = texts(args.texts)
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as folder:
        server = EmbeddingServer(Path(folder))
        try:
            for model in args.models.split(","):
                embedder = RemoteEmbedder(Endpoint("openai", model, server.openai_url),
                                          RemoteOptions())
                by_layout = {name: embed_layout(embedder, batches)
                             for name, batches in layouts(corpus, rng).items()}
                matrices = {name: np.stack([found[t] for t in corpus])
                            for name, found in by_layout.items()}
                reference = matrices.pop("pairs")
                print(f"\n== {model}: {len(corpus)} texts, {reference.shape[1]}-d")
                for name, matrix in matrices.items():
                    cosines = np.sum(reference * matrix, axis=1)
                    print(f"  vs {name}: max |diff| {np.abs(reference - matrix).max():.2e}, "
                          f"min cosine 1 - {1 - cosines.min():.1e}")
                    for scheme, digest in SCHEMES.items():
                        print(f"    {scheme:>20}: {flip_rate(digest, reference, matrix):.4%} of "
                              "4-text probes change")
                gaps = top_gap(reference)
                print(f"  top-8 gap (8th - 9th magnitude): min {gaps.min():.1e}, "
                      f"1st percentile {np.percentile(gaps, 1):.1e}, median {np.median(gaps):.1e}")
                noise_rng = np.random.default_rng(3)
                for sigma in (1e-6, 1e-4, 1e-3):
                    noisy = reference + noise_rng.normal(0, sigma, reference.shape)
                    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
                    rates = ", ".join(f"{scheme} {flip_rate(digest, reference, noisy):.2%}"
                                      for scheme, digest in SCHEMES.items())
                    print(f"  simulated noise {sigma:g}: {rates}")
                sentinel = reference[0]
                others = [np.stack([found[t] for t in corpus])[0]
                          for found in by_layout.values()]
                print(f"  sentinel cosine across layouts: min "
                      f"{min(float(sentinel @ o) for o in others):.12f}")
            print("\n== optimised vs unoptimised ONNX session (in-process)")
            from memwal.embedders import get_embedder

            for model in args.models.split(","):
                onnx = get_embedder(model)
                sample = corpus[:256]
                encodings = onnx._tokenizer.encode_batch(sample)  # type: ignore[attr-defined]
                fast = onnx._new_session(optimised=True)  # type: ignore[attr-defined]
                slow = onnx._new_session(optimised=False)  # type: ignore[attr-defined]
                a = np.stack([onnx._pooled(fast, [e])[0] for e in encodings])  # type: ignore[attr-defined]
                b = np.stack([onnx._pooled(slow, [e])[0] for e in encodings])  # type: ignore[attr-defined]
                a /= np.linalg.norm(a, axis=1, keepdims=True)
                b /= np.linalg.norm(b, axis=1, keepdims=True)
                print(f"  {model}: max |diff| {np.abs(a - b).max():.2e}; top-8 probe changes "
                      f"{flip_rate(probe_digest, a, b):.4%}; round-2 changes "
                      f"{flip_rate(rounded(2), a, b):.4%}")
            e5 = RemoteEmbedder(Endpoint("openai", "minilm", server.openai_url), RemoteOptions())
            p5 = RemoteEmbedder(Endpoint("openai", "paraphrase-minilm", server.openai_url),
                                RemoteOptions())
            print(f"\nsentinel cosine minilm vs paraphrase-minilm: "
                  f"{float(e5._request([SENTINEL, 'y'], None)[0] @ p5._request([SENTINEL, 'y'], None)[0]):.3f}"
                  " (other weights, same dimension)")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
