"""The derived vector index: HNSW graphs (usearch) beside sqlite-vec's table, never a second truth.

sqlite-vec's table stays the record of every vector. Beside it, under `<home>/vectors/`, an
approximate index of the active model's vectors, stamped with the commit sequence it reflects
(`current.json` names the files, the model, the stamp, and each file's size and checksum). A
reader searches the graphs for what was committed up to the stamp, scans exactly what was
committed after it (the "tail", found by `chunks_by_seq`), and keeps only chunks that still hold
a vector of the active model: so a search never misses a committed vector (beyond the graphs'
recall) and never returns a deleted one. A missing, stale (another model) or damaged index is
simply not used: the search is exact, and slower, until the index is rebuilt.

Why usearch (measured against hnswlib and faiss, docs/benchmarks.md): readers open the files as
memory-mapped views (no copy per process, instant), it adds and removes by integer key (chunk
ids), and stores vectors as float16 (half the memory of the raw float32, recall kept).

The index is cut into segments of at most `vectors.segment_size` vectors, one graph file each,
because a graph is changed in memory: a merge loads the segments it changes (the last one, to
add, and those holding deleted or replaced chunks), one at a time, so the committer's memory
stays bounded whatever the size of the index (a segment of 100,000 is about 100 MB in memory).
A reader searches every segment and keeps the nearest overall.

The committer keeps it current (`Maintainer`): once the tail exceeds `merge_at` vectors, a
background thread of the committer's process folds the tail into the segments and saves every
changed segment as a new file (written whole, fsynced, renamed); only then does `current.json`
(replaced atomically) name the new set. A committer killed at any point leaves the previous
files and their stamp in place: still a consistent set. Once commits stop the tail is brought
under `tail_bound`: by a lasting committer when it is idle, or by the detached merge a committer
that ends leaves behind.

The package is cut like `store/`: here, the names both sides share (the folder, the stamp and
its segments, the graph's parameters, usearch's import); `vectorindex.reads`, what search and
doctor use (the stamped segments opened memory-mapped, searched, checked);
`vectorindex.writes`, what changes the files (merges, new segment files, the stamp, a rebuild,
the committer's `Maintainer`). A search never imports the write side.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memwal.config import Settings
from memwal.safeio import read_regular

MERGE_AT = 20_000  # tail vectors that trigger a merge into the graph
TAIL_SHARE = 0.05  # of all vectors: what may stay outside the graph, beside `vectors.tail_bound`
# EXPANSION_SEARCH: recall@10 on 1M clustered vectors 0.908 at 64 (usearch's default, which a
# restored view has unless told), 0.964 at 160, 0.970 at 256 (2.0 ms), 0.980 at 384.
CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH = 16, 128, 256


def folder(settings: Settings) -> Path:
    return settings.home / "vectors"


@dataclass(frozen=True)
class Segment:
    """One graph file of the derived index."""

    file: str
    count: int
    size: int
    sha256: str

    def path(self, settings: Settings) -> Path:
        return folder(settings) / Path(self.file).name


@dataclass(frozen=True)
class Stamp:
    """What `current.json` says: the files, their model, the commit sequence they reflect."""

    fingerprint: str
    dim: int
    seq: int
    segments: tuple[Segment, ...]

    @property
    def count(self) -> int:
        return sum(segment.count for segment in self.segments)

    @classmethod
    def read(cls, settings: Settings, name: str = "current.json") -> "Stamp | None":
        try:
            data = json.loads(read_regular(folder(settings) / name, max_bytes=1 << 20))
            if "segments" in data:
                segments = tuple(Segment(**{k: part[k] for k in Segment.__dataclass_fields__})
                                 for part in data["segments"])
            else:  # one graph file, as written before segments
                segments = (Segment(**{k: data[k] for k in Segment.__dataclass_fields__}),)
            return cls(data["fingerprint"], int(data["dim"]), int(data["seq"]), segments)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def as_json(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "dim": self.dim, "seq": self.seq,
                "count": self.count, "segments": [s.__dict__ for s in self.segments]}


def usearch_index() -> Any:
    """usearch's `Index` class, imported after onnxruntime.

    With onnxruntime 1.32 and usearch 2.26, importing onnxruntime after usearch kills the process
    (SIGSEGV while onnxruntime's native module loads); the other order is fine. A process may
    need both in either order (a server that runs doctor, then its first search), so whoever
    imports usearch imports onnxruntime first, when it is installed.
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        pass
    from usearch.index import Index

    return Index


def tail_bound(settings: Settings, vectors: int) -> int:
    """How many of `vectors` may stay outside the graph once commits stop (searched exactly):
    the larger of `vectors.tail_bound` and TAIL_SHARE of them."""
    return max(int(settings["vectors.tail_bound"]), math.ceil(vectors * TAIL_SHARE))
