"""Peak RSS and speed of the `minilm` embedder on a real corpus, before and after the memory fix.

Each run is a fresh process (so peaks never mix), measured from outside with `os.wait4`'s
ru_maxrss. Configurations run in turn, `--repeat` times, so a noisy neighbour slows them alike.

- `embed`: the corpus' chunks embedded as the producer embeds them (files in discovery order,
  chunked by `chunk_text`, groups of at least EMBED_GROUP texts per `embed()` call); the wall
  time counts embedding only, after the model is loaded. The vectors are kept and compared.
- `mm`: the whole `mm index <corpus> --home <fresh home>` with the default model (committer in
  process), wall time of the whole command.

Configurations: `before` is the embedder as it was (ORT memory patterns on, 32 texts per call
sorted by characters), `after` the current one, `after:N` the current one with
`max_batch_tokens = N`.

    python benchmarks/embed_memory.py /work/corpus/tldr --repeat 2 --kinds embed
    python benchmarks/embed_memory.py /work/corpus/tldr --kinds mm
    python benchmarks/embed_memory.py /work/corpus/tldr --limit 30   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from memwal.chunking import chunk_text, is_markdown
from memwal.discover import LoadedText, discover, load_text
from memwal.embedders import get_embedder
from memwal.embedders.base import l2_normalise
from memwal.embedders.onnx_minilm import OnnxSentenceEmbedder
from memwal.producer import EMBED_GROUP


class Before(OnnxSentenceEmbedder):
    """The embedder before the fix (commit 41646ec): same model, old session and batching."""

    @cached_property
    def _session(self):  # type: ignore[no-untyped-def]
        import onnxruntime

        options = onnxruntime.SessionOptions()  # enable_mem_pattern left on, as it was
        options.intra_op_num_threads = max(1, os.cpu_count() or 1)
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(
            str(self.weights_path), options, providers=["CPUExecutionProvider"])
        self._input_names = {i.name for i in session.get_inputs()}
        return session

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            out[rows] = self._pooled(self._tokenizer.encode_batch([texts[i] for i in rows]))
        return l2_normalise(out)


def use(config: str) -> None:
    """Make `get_embedder` build the embedder `config` names (in this process)."""
    from memwal.embedders import onnx_minilm

    if config == "before":
        onnx_minilm.OnnxSentenceEmbedder = Before  # type: ignore[misc]
    elif config.startswith("after:"):
        OnnxSentenceEmbedder.max_batch_tokens = int(config.split(":", 1)[1])
    elif config != "after":
        raise SystemExit(f"unknown configuration {config!r}")


def roots(corpus: Path, limit: int | None) -> list[Path]:
    """What `mm index` is given: the corpus, or its first `limit` files."""
    return [f.path for f in discover([corpus]).files[:limit]] if limit else [corpus]


def producer_groups(paths: list[Path]) -> list[list[str]]:
    """The texts of each `embed()` call the producer makes on these paths, in order."""
    groups: list[list[str]] = []
    waiting: list[str] = []
    for found in discover(paths).files:
        loaded = load_text(found)
        if not isinstance(loaded, LoadedText):
            continue
        waiting += [c.content for c in chunk_text(loaded.text, markdown=is_markdown(found.source_file))]
        if len(waiting) >= EMBED_GROUP:
            groups.append(waiting)
            waiting = []
    return groups + ([waiting] if waiting else [])


def child_embed(config: str, paths: list[Path], vectors_out: str) -> None:
    use(config)
    groups = producer_groups(paths)
    embedder = get_embedder("minilm")
    embedder.embed(["load the model"])
    start = time.perf_counter()
    vectors = [embedder.embed(texts) for texts in groups]
    wall = time.perf_counter() - start
    np.save(vectors_out, np.vstack(vectors))
    print(json.dumps({"wall": wall}))


def child_mm(config: str, paths: list[Path], home: str) -> None:
    use(config)
    from memwal.cli.app import main

    start = time.perf_counter()
    code = main(["index", *map(str, paths), "--home", home, "--json"])
    wall = time.perf_counter() - start
    print(json.dumps({"wall": wall}))
    sys.exit(code)


def measured(args: list[str]) -> tuple[dict, float]:
    """Run this script as a child; its last JSON line and its peak RSS in MB."""
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = proc.stdout.read().splitlines()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed with exit {proc.returncode}")
    return json.loads(lines[-1]), usage.ru_maxrss / 1024


def spread(values: list[float], fmt: str) -> str:
    text = format(statistics.median(values), fmt)
    return text if len(values) == 1 else f"{text} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--limit", type=int, help="only the first N files (a smoke run)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--configs", default="before,after")
    parser.add_argument("--kinds", default="embed,mm", help="embed (the embedder alone), mm (`mm index`)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "CONFIG"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    corpus = args.corpus.resolve()
    if args.child:
        kind, config = args.child
        paths = roots(corpus, args.limit)
        (child_embed if kind == "embed" else child_mm)(config, paths, args.out)
        return

    configs = args.configs.split(",")
    kinds = args.kinds.split(",")
    limit = ["--limit", str(args.limit)] if args.limit else []
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    files = len(discover(roots(corpus, args.limit)).files)
    chunks = sum(map(len, producer_groups(roots(corpus, args.limit))))
    with tempfile.TemporaryDirectory(prefix="embed-memory-") as tmp:
        for run in range(args.repeat):
            for kind in kinds:
                for config in configs:
                    out = f"{tmp}/{config}-{run}.npy" if kind == "embed" else f"{tmp}/home-{config}-{run}"
                    got, peak = measured([str(corpus), *limit, "--child", kind, config, "--out", out])
                    results.setdefault((kind, config), []).append((peak, got["wall"], chunks / got["wall"]))
                    print(f"run {run + 1} {kind:5} {config:10} peak {peak:7.1f} MB  wall {got['wall']:7.1f} s"
                          f"  {chunks / got['wall']:6.2f} chunks/s", flush=True)
        differences = {}
        if "embed" in kinds:  # every configuration's vectors against the first's
            first = np.load(f"{tmp}/{configs[0]}-0.npy")
            differences = {c: float(np.abs(np.load(f"{tmp}/{c}-0.npy") - first).max()) for c in configs[1:]}

    print(f"\ncorpus {corpus}: {files} files, {chunks} chunks; {args.repeat} run(s) each,"
          f" median (min-max); load average now {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| what | config | peak RSS MB | wall s | chunks/s |\n|---|---|---|---|---|")
    for (kind, config), rows in results.items():
        peaks, walls, rates = zip(*rows)
        what = "embedder alone" if kind == "embed" else "`mm index`"
        print(f"| {what} | {config} | {spread(list(peaks), '.0f')} | {spread(list(walls), '.0f')}"
              f" | {spread(list(rates), '.2f')} |")
    for config, diff in differences.items():
        print(f"max |vector difference| {config} vs {configs[0]}: {diff:.2e}")


if __name__ == "__main__":
    main()
