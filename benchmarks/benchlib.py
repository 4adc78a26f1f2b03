"""What the write-path benchmarks share: the machine, the doc's marked sections, synthetic records.

Every figure is measured on synthetic data made here from a fixed seed, so two runs on one machine
compare like with like. Nothing in this module writes outside the work folder it is handed,
except `update_section`, which rewrites one marked section of docs/benchmarks.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from memwal.chunking import content_hash
from memwal.embedders import get_embedder
from memwal.records import Batch, ChunkKey, Producer, Upsert

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
PYTHON = Path(os.path.abspath(sys.executable))  # the venv's python: not resolved past its link
MM = PYTHON.parent / "mm"
HASH_MODEL = "hash-384"
BATCH_RECORDS = 256
DOC_HEADER = "# Benchmarks\n\nFigures measured by the scripts in `benchmarks/`.\n"


# -- the machine ---------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


@dataclass(frozen=True)
class Machine:
    """Where and when the figures were measured."""

    date: str
    nproc: int
    cpu: str
    kernel: str
    python: str
    sqlite: str
    sqlite_vec: str
    disk: str

    @classmethod
    def here(cls, workdir: Path) -> "Machine":
        import sqlean
        import sqlite_vec

        return cls(
            date=dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            nproc=nproc(), cpu=cpu_model(), kernel=platform.release(),
            python=platform.python_version(), sqlite=sqlean.sqlite_version,
            sqlite_vec=getattr(sqlite_vec, "__version__", "?"), disk=_filesystem(workdir),
        )

    def line(self) -> str:
        return (f"{self.date}; {self.nproc} CPUs ({self.cpu}); Linux {self.kernel}; Python "
                f"{self.python}; SQLite {self.sqlite}; sqlite-vec {self.sqlite_vec}; work folder "
                f"on {self.disk}")


def _filesystem(path: Path) -> str:
    try:
        out = subprocess.run(["df", "-h", "--output=source,fstype,avail", str(path)],
                             capture_output=True, text=True, check=True).stdout.splitlines()[-1]
        source, fstype, avail = out.split()
        return f"{source} ({fstype}, {avail} free)"
    except (OSError, subprocess.CalledProcessError, ValueError):
        return "unknown"


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


# -- commands and the doc ------------------------------------------------------------------


def shown(path: Path) -> str:
    """A path as a reader should type it: relative to the repository when inside it."""
    try:
        return str(Path(path).relative_to(REPO))
    except ValueError:
        return str(path)


def bench_command(*args: str) -> str:
    """The exact `run.py` command line that reproduces one figure."""
    return shlex.join([shown(PYTHON), "benchmarks/run.py", *args])


def update_section(name: str, title: str, body: str, doc: Path = DOC, at_top: bool = False) -> None:
    """Replace the text between `<!-- name:start -->` and `<!-- name:end -->` (or add it).

    The `## title` heading stays outside the markers: another script that rewrites its own
    `## …` section up to the next `## ` heading can then never swallow a marker. A new section
    is appended, or with `at_top` put before the first `## ` heading.
    """
    text = doc.read_text() if doc.exists() else DOC_HEADER
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    elif at_top and re.search(r"^## ", text, re.M):
        first = re.search(r"^## ", text, re.M).start()  # type: ignore[union-attr]
        text = text[:first] + f"## {title}\n\n{block}\n\n" + text[first:]
    else:
        text = text.rstrip("\n") + f"\n\n## {title}\n\n{block}\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text if text.endswith("\n") else text + "\n")


# -- homes and subprocesses ----------------------------------------------------------------


def make_home(path: Path, model: str | None = HASH_MODEL) -> Path:
    """A fresh memwal home; `model` goes into its config.json (None: the default model)."""
    path.mkdir(parents=True, exist_ok=True)
    if model is not None:
        (path / "config.json").write_text(json.dumps({"embedding": {"model": model}}) + "\n")
    return path


def clean_env() -> dict[str, str]:
    """This environment without MM_* variables, so only --home and config.json configure mm."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MM_")}


def run_timed(argv: Sequence[str], **kwargs: object) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall seconds of one subprocess, and its result (raises if it fails)."""
    started = time.perf_counter()
    done = subprocess.run(list(argv), capture_output=True, text=True, env=clean_env(), **kwargs)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return elapsed, done


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# -- synthetic text and records ------------------------------------------------------------


class Corpus:
    """Made-up words with a Zipf frequency, joined into sentences, joined into chunks.

    Chunk text is a handful of pre-built sentences picked at random, so a million distinct
    chunks cost seconds to make, while the FTS index still sees a realistic spread of terms.
    """

    def __init__(self, seed: int = 7, vocabulary: int = 20_000, sentences: int = 20_000) -> None:
        self.rng = np.random.default_rng(seed)
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
        words: dict[str, None] = {}
        while len(words) < vocabulary:
            words["".join(self.rng.choice(letters, size=int(self.rng.integers(2, 10))))] = None
        vocab = list(words)
        weights = 1.0 / np.arange(1, vocabulary + 1) ** 1.07
        picks = self.rng.choice(vocabulary, size=sentences * 14, p=weights / weights.sum())
        lengths = self.rng.integers(6, 15, size=sentences)
        self.sentences = []
        at = 0
        for length in lengths:
            words_of = [vocab[i] for i in picks[at:at + length]]
            at += length
            self.sentences.append(" ".join(words_of).capitalize() + ".")

    def chunk(self) -> str:
        """60-160 words (~400-1000 characters)."""
        picked = self.rng.integers(0, len(self.sentences), size=int(self.rng.integers(6, 14)))
        return " ".join(self.sentences[i] for i in picked)


def hash_vector_pool(corpus: Corpus, size: int = 4096) -> tuple[str, list[bytes]]:
    """The fingerprint and `size` real hash-384 vectors, reused cyclically by the records.

    Embedding every record with the pure-Python hashing model would cost ~2.3k texts/s here;
    what the committer does with a vector does not depend on which vector it is.
    """
    embedder = get_embedder(HASH_MODEL)
    vectors = embedder.embed([corpus.chunk() for _ in range(size)])
    return embedder.fingerprint, [np.ascontiguousarray(v, dtype="<f4").tobytes() for v in vectors]


CHUNKS_PER_FILE = 20
FILES_PER_FOLDER = 100


def upsert_batches(records: int, corpus: Corpus, fingerprint: str, vectors: list[bytes],
                   batch_records: int = BATCH_RECORDS, namespace: str = "bench",
                   first: int = 0) -> Iterator[tuple[Upsert, ...]]:
    """`records` upserts with distinct keys, 20 chunks per source file, in batches."""
    producer_items: list[Upsert] = []
    for n in range(first, first + records):
        file_no, part = divmod(n, CHUNKS_PER_FILE)
        text = corpus.chunk()
        start = 1 + part * 12
        producer_items.append(Upsert(
            key=ChunkKey(namespace, f"/bench/notes/d{file_no // FILES_PER_FOLDER:04d}/"
                                    f"n{file_no:07d}.md", content_hash(text), start),
            end_line=start + 9, heading_path=(f"Note {file_no}", f"Part {part}"), content=text,
            tags=("bench",), fingerprint=fingerprint, dim=len(vectors[0]) // 4,
            vector=vectors[n % len(vectors)]))
        if len(producer_items) == batch_records:
            yield tuple(producer_items)
            producer_items = []
    if producer_items:
        yield tuple(producer_items)


def bench_batch(items: tuple[Upsert, ...]) -> Batch:
    return Batch(items=items, producer=Producer("bench", os.getpid(), "benchmarks/run.py"))


