"""The derived vector index: an HNSW graph (usearch) beside sqlite-vec's table, never a second truth.

sqlite-vec's table stays the record of every vector. Beside it, under `<home>/vectors/`, an
approximate index of the active model's vectors, stamped with the commit sequence it reflects
(`current.json` names the file, the model, the stamp, its size and checksum). A reader searches
the graph for what was committed up to the stamp, scans exactly what was committed after it (the
"tail", found by `chunks_by_seq`), and keeps only chunks that still hold a vector of the active
model: so a search never misses a committed vector (beyond the graph's recall) and never returns
a deleted one. A missing, stale (another model) or damaged index is simply not used: the search
is exact, and slower, until the index is rebuilt.

Why usearch (measured against hnswlib and faiss, docs/benchmarks.md): readers open the file as a
memory-mapped view (no copy per process, instant), it adds and removes by integer key (chunk
ids), and stores vectors as float16 (half the memory of the raw float32, recall kept).

The committer keeps it current (`Maintainer`): once the tail exceeds `MERGE_AT` vectors, a
background thread of the committer's process folds the tail into the graph (removing vectors
that were deleted or replaced) and saves a new file: written whole, fsynced, renamed, and only
then named by `current.json` (replaced atomically). A committer killed at any point leaves the
previous file and its stamp in place: still a consistent pair.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memwal import faults, store
from memwal.config import Settings
from memwal.fingerprint import ModelInfo, file_digest
from memwal.safeio import read_regular, write_atomically
from memwal.store import reads

if TYPE_CHECKING:
    import numpy as np

MERGE_AT = 20_000  # tail vectors that trigger a merge into the graph
# EXPANSION_SEARCH: recall@10 on 1M clustered vectors 0.908 at 64 (usearch's default, which a
# restored view has unless told), 0.964 at 160, 0.970 at 256 (2.0 ms), 0.980 at 384.
CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH = 16, 128, 256


def folder(settings: Settings) -> Path:
    return settings.home / "vectors"


@dataclass(frozen=True)
class Stamp:
    """What `current.json` says: the file, its model, the commit sequence it reflects."""

    file: str
    fingerprint: str
    dim: int
    seq: int
    count: int
    size: int
    sha256: str

    @classmethod
    def read(cls, settings: Settings) -> "Stamp | None":
        try:
            data = json.loads(read_regular(folder(settings) / "current.json", max_bytes=1 << 16))
            return cls(**{k: data[k] for k in cls.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def path(self, settings: Settings) -> Path:
        return folder(settings) / Path(self.file).name


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


def _new_index(dim: int) -> Any:
    Index = usearch_index()
    return Index(ndim=dim, metric="cos", dtype="f16", connectivity=CONNECTIVITY,
                 expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)


# -- readers -------------------------------------------------------------------------------


class Derived:
    """A reader's view of the derived index of one model (memory-mapped, read-only)."""

    def __init__(self, stamp: Stamp, view: Any) -> None:
        self.stamp = stamp
        self.view = view

    def search(self, query: "np.ndarray", count: int) -> tuple["np.ndarray", "np.ndarray"]:
        """(chunk ids, cosine distances) of the graph's nearest `count`."""
        found = self.view.search(query, min(count, len(self.view)), threads=1)
        return found.keys.astype("int64"), found.distances


def open_view(settings: Settings, active: ModelInfo, verify: bool = False) -> Derived | None:
    """The derived index for the active model, or None if it is missing, stale or damaged.

    Checks the file's size and header (and its whole checksum with `verify`, which a
    long-lived reader does once): a damaged file is never searched.
    """
    stamp = Stamp.read(settings)
    if stamp is None or stamp.fingerprint != active.fingerprint or stamp.dim != active.dim:
        return None
    try:
        path = stamp.path(settings)
        if path.stat().st_size != stamp.size or (verify and file_digest(path) != stamp.sha256):
            return None
        Index = usearch_index()
        meta = Index.metadata(str(path))
        if meta is None or meta.get("dimensions") != active.dim:
            return None
        view = Index.restore(str(path), view=True)
        view.expansion_search = EXPANSION_SEARCH  # a restored index has usearch's default
        return Derived(stamp, view)
    except (OSError, ValueError, RuntimeError):
        return None


def check(settings: Settings) -> tuple[bool, str]:
    """For doctor: (ok, detail) of the derived index against the index."""
    with store.reading(settings.index_path) as conn:
        active = store.active_model(conn)
        current = reads.commit_seq(conn) if conn is not None else 0
        vectors = len(reads.ids_with_vectors(conn, active.fingerprint)) if active else 0
    stamp = Stamp.read(settings)
    if active is None or (stamp is None and vectors < MERGE_AT):
        return True, "not needed yet: searches scan the vectors exactly"
    if stamp is None:
        return True, (f"none yet ({vectors} vectors): the committer builds one after "
                      f"{MERGE_AT:,} new vectors, or run `mm doctor --repair`")
    if stamp.fingerprint != active.fingerprint:
        return True, ("stale (an earlier model): searches are exact until the committer or "
                      "`mm doctor --repair` builds one for the active model")
    if stamp.seq > current:
        return False, (f"stamped at commit {stamp.seq}, beyond the index's {current}: it is not "
                       "from this index. Run `mm doctor --repair` to rebuild it")
    if open_view(settings, active, verify=True) is None:
        return False, "damaged (size, header or checksum): run `mm doctor --repair` to rebuild it"
    return True, (f"{stamp.count:,} vectors up to commit {stamp.seq}; {current - stamp.seq} "
                  "commits since are searched exactly")


# -- writers -------------------------------------------------------------------------------


class _WriterLock:
    """One writer of the derived files at a time (the committer's merge, or a repair)."""

    def __init__(self, settings: Settings) -> None:
        self.path = folder(settings) / "lock"

    def __enter__(self) -> "_WriterLock":
        import fcntl

        from memwal.safeio import open_regular

        self.path.parent.mkdir(mode=0o700, exist_ok=True)
        self.fd = open_regular(self.path, os.O_RDWR | os.O_CREAT)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


class Graph:
    """The writer's in-memory graph of one model, and the stamp it reflects."""

    def __init__(self, model: ModelInfo, index: Any, seq: int) -> None:
        self.model, self.index, self.seq = model, index, seq

    def fold(self, conn: store.Connection, upto: int) -> None:
        """Bring the graph from its stamp to commit `upto` (a read snapshot at `upto`)."""
        import numpy as np

        fingerprint = self.model.fingerprint
        live = np.array(reads.ids_with_vectors(conn, fingerprint), dtype=np.uint64)
        # asarray: usearch's keys have an __array__ without numpy 2's `copy` argument, which
        # np.array passes (a DeprecationWarning); the keys are only read, before any change.
        keys = np.asarray(self.index.keys, dtype=np.uint64) if len(self.index) else \
            np.empty(0, dtype=np.uint64)
        gone = np.setdiff1d(keys, live, assume_unique=True)
        tail = np.array(reads.ids_with_vectors(conn, fingerprint, after_seq=self.seq), dtype=np.uint64)
        replaced = np.intersect1d(keys, tail, assume_unique=True)
        drop = np.union1d(gone, replaced)
        if len(drop):
            self.index.remove(drop)
        if len(tail):
            ids, matrix = reads.vectors_of(conn, tail.tolist(), self.model.dim)
            for start in range(0, len(ids), 8192):
                self.index.add(ids[start:start + 8192].astype(np.uint64),
                               matrix[start:start + 8192], threads=1)
        self.seq = upto

    def save(self, settings: Settings) -> Stamp:
        """Write the graph to a new file, then name it in current.json; drop older files."""
        where = folder(settings)
        where.mkdir(mode=0o700, exist_ok=True)
        tag = hashlib.sha256(self.model.fingerprint.encode()).hexdigest()[:12]
        final = where / f"{tag}-{self.seq}.usearch"
        temporary = where / f".{final.name}.{os.getpid()}.tmp"
        self.index.save(str(temporary))
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        faults.point("ann-before-rename")
        os.chmod(temporary, 0o600)
        os.replace(temporary, final)
        stamp = Stamp(final.name, self.model.fingerprint, self.model.dim, self.seq,
                      len(self.index), final.stat().st_size, file_digest(final))
        write_atomically(where / "current.json", json.dumps(stamp.__dict__).encode())
        for old in where.glob("*.usearch"):
            if old != final:
                old.unlink(missing_ok=True)
        for junk in where.glob(".*.tmp"):
            junk.unlink(missing_ok=True)
        return stamp

    @classmethod
    def load(cls, settings: Settings, model: ModelInfo) -> "Graph":
        """The saved graph of `model` (fully in memory, to be changed), or a new empty one."""
        stamp = Stamp.read(settings)
        index = _new_index(model.dim)
        if stamp is not None and stamp.fingerprint == model.fingerprint and \
                open_view(settings, model, verify=True) is not None:
            index.load(str(stamp.path(settings)))
            return cls(model, index, stamp.seq)
        return cls(model, index, 0)


def rebuild(settings: Settings) -> dict[str, Any]:
    """Build the derived index from sqlite-vec's table, from scratch (`mm doctor --repair`)."""
    started = time.perf_counter()
    with _WriterLock(settings), store.reading(settings.index_path, snapshot=True) as conn:
        active = store.active_model(conn)
        if conn is None or active is None:
            return {"built": False, "why": "no vectors yet"}
        graph = Graph(active, _new_index(active.dim), 0)
        graph.fold(conn, reads.commit_seq(conn))
        stamp = graph.save(settings)
    return {"built": True, "vectors": stamp.count, "seq": stamp.seq,
            "seconds": round(time.perf_counter() - started, 2)}


class Maintainer:
    """Keeps the derived index current from inside the committer's process.

    After each committed batch, if the tail (vectors newer than the stamp) holds `merge_at`
    vectors or more, a background thread folds it into the graph and saves it; the committer
    goes on committing meanwhile (the graph is built on one thread: on two cores, the committer
    keeps the other). Vectors committed while a merge runs are folded by the same thread right
    after, once they reach `merge_at`: a burst ends with its tail under `merge_at`, not waiting
    for the next commit. With `keep`, the graph stays in memory between merges (a long-lived
    worker); otherwise it is loaded for each merge and dropped after. Closing waits for the
    merge under way and starts no other.
    """

    def __init__(self, settings: Settings, keep: bool = False, merge_at: int = MERGE_AT) -> None:
        self.settings, self.keep, self.merge_at = settings, keep, merge_at
        self.graph: Graph | None = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.guard = threading.Lock()  # `since`, `running` and `closing`, shared with the thread
        self.running = self.closing = False
        self.since = self._tail_size()

    def _tail_size(self) -> int:
        stamp = Stamp.read(self.settings)
        with store.reading(self.settings.index_path) as conn:
            active = store.active_model(conn)
            if conn is None or active is None:
                return 0
            after = stamp.seq if stamp and stamp.fingerprint == active.fingerprint else 0
            return len(reads.ids_with_vectors(conn, active.fingerprint, after_seq=after))

    def committed(self, vectors: int) -> None:
        with self.guard:
            self.since += vectors
            if self.since < self.merge_at or self.running or self.closing:
                return
            self.since, self.running = 0, True
        self.thread = threading.Thread(target=self._merges, name="memwal-vectors", daemon=True)
        self.thread.start()

    def _merges(self) -> None:
        while True:
            self._merge()
            with self.guard:
                if self.error is not None or self.closing or self.since < self.merge_at:
                    self.running = False
                    return
                self.since = 0

    def _merge(self) -> None:
        try:
            with _WriterLock(self.settings), store.reading(self.settings.index_path,
                                                            snapshot=True) as conn:
                active = store.active_model(conn)
                if conn is None or active is None:
                    return
                graph = self.graph
                if graph is None or graph.model != active:
                    graph = Graph.load(self.settings, active)
                graph.fold(conn, reads.commit_seq(conn))
                graph.save(self.settings)
                self.graph = graph if self.keep else None
        except Exception as exc:  # the index is never wrong for it: searches stay exact
            self.error = exc
            self.graph = None

    def settle(self) -> None:
        """Wait until no merge runs: the tail is then under `merge_at` (or a merge failed)."""
        while (thread := self.thread) is not None and thread.is_alive():
            thread.join()

    def close(self) -> None:
        with self.guard:
            self.closing = True
        self.settle()
