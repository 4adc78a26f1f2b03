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
files and their stamp in place: still a consistent set.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

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
# Several segments are each searched for the whole depth, and each holds a fraction of the
# vectors: a smaller expansion per segment keeps the recall. At 1M clustered vectors in 10
# segments, the vector leg took p50 27.7 ms at 256 and 19.4 ms at 128, recall@10 1.000 at both
# (benchmarks/search_bench.py); one graph of 1M took 4.4 ms at 256, recall@10 0.970.
SEGMENTS_EXPANSION = 128
ADD_SLICE = 4096  # vectors read from the table and added to a graph at a time


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
    def read(cls, settings: Settings) -> "Stamp | None":
        try:
            data = json.loads(read_regular(folder(settings) / "current.json", max_bytes=1 << 20))
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


def _new_index(dim: int) -> Any:
    Index = usearch_index()
    return Index(ndim=dim, metric="cos", dtype="f16", connectivity=CONNECTIVITY,
                 expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)


# -- readers -------------------------------------------------------------------------------


class Derived:
    """A reader's view of the derived index of one model (memory-mapped, read-only)."""

    def __init__(self, stamp: Stamp, views: list[Any]) -> None:
        self.stamp = stamp
        self.views = [view for view in views if len(view)]
        if len(self.views) > 1:
            for view in self.views:
                view.expansion_search = SEGMENTS_EXPANSION
        self._pool: Any = None

    def search(self, query: "np.ndarray", count: int) -> tuple["np.ndarray", "np.ndarray"]:
        """(chunk ids, cosine distances) of the nearest `count` over every segment, nearest first."""
        import numpy as np

        def one(view: Any) -> Any:
            return view.search(query, min(count, len(view)), threads=1)

        if len(self.views) > 1:  # usearch releases the GIL: the segments are searched side by side
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(min(len(self.views), os.cpu_count() or 1),
                                                thread_name_prefix="memwal-segments")
            found = list(self._pool.map(one, self.views))
        else:
            found = [one(view) for view in self.views]
        if not found:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        keys = np.concatenate([f.keys for f in found]).astype(np.int64)
        distances = np.concatenate([f.distances for f in found])
        nearest = np.lexsort((keys, distances))[:count]
        return keys[nearest], distances[nearest]


def _open_segment(settings: Settings, segment: Segment, dim: int, verify: bool) -> Any:
    """A memory-mapped view of one segment; ValueError if its file is not the one stamped."""
    path = segment.path(settings)
    if path.stat().st_size != segment.size or (verify and file_digest(path) != segment.sha256):
        raise ValueError(f"{path.name} is not the file stamped")
    Index = usearch_index()
    meta = Index.metadata(str(path))
    if meta is None or meta.get("dimensions") != dim:
        raise ValueError(f"{path.name} has another header")
    view = Index.restore(str(path), view=True)
    if view is None or len(view) != segment.count:
        raise ValueError(f"{path.name} holds another count")
    view.expansion_search = EXPANSION_SEARCH  # a restored index has usearch's default
    return view


def open_view(settings: Settings, active: ModelInfo, verify: bool = False) -> Derived | None:
    """The derived index for the active model, or None if it is missing, stale or damaged.

    Checks each file's size, header and count (and its whole checksum with `verify`, which a
    long-lived reader does once): a damaged file is never searched.
    """
    stamp = Stamp.read(settings)
    if stamp is None or stamp.fingerprint != active.fingerprint or stamp.dim != active.dim:
        return None
    try:
        return Derived(stamp, [_open_segment(settings, segment, stamp.dim, verify)
                               for segment in stamp.segments])
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
    return True, (f"{stamp.count:,} vectors in {len(stamp.segments)} segment(s) up to commit "
                  f"{stamp.seq}; {current - stamp.seq} commits since are searched exactly")


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


class Folder:
    """One merge: the segments of `model` brought from `stamp` to a read snapshot at `upto`.

    Every changed segment is written as a new file, so the files the current stamp names are
    never touched; `save` names the new set in current.json, then deletes what it no longer
    names. At most one segment is in memory at a time (the last one, being filled, or one
    losing deleted and replaced chunks).
    """

    def __init__(self, settings: Settings, model: ModelInfo, stamp: Stamp | None,
                 threads: int = 1) -> None:
        self.settings, self.model, self.threads = settings, model, threads
        self.segment_size: int = settings["vectors.segment_size"]
        same = stamp is not None and stamp.fingerprint == model.fingerprint and \
            stamp.dim == model.dim and open_view(settings, model, verify=True) is not None
        self.segments: list[Segment] = list(stamp.segments) if same and stamp else []
        self.seq = stamp.seq if same and stamp else 0
        self.tag = hashlib.sha256(model.fingerprint.encode()).hexdigest()[:12]

    def fold(self, conn: store.Connection, upto: int) -> Stamp:
        import numpy as np

        fingerprint, self.upto = self.model.fingerprint, upto
        # Chunk ids as flags (a byte per id up to the largest), not sorted id arrays: at a
        # million vectors, the set operations on arrays took tens of MB more at their peak.
        live = _flags(reads.each_id_with_vector(conn, fingerprint))
        fresh = _flags(reads.each_id_with_vector(conn, fingerprint, self.seq), len(live))
        tail = np.flatnonzero(fresh)
        folded: list[Segment] = []
        last = None  # the segment the tail is added to, in memory
        pending = tail
        for number, segment in enumerate(self.segments):
            keys = np.asarray(self._view(segment).keys, dtype=np.int64)
            # Gone from the index, or replaced after the stamp (the new vector is in the tail).
            known = keys < len(live)
            gone = ~known
            gone[known] = ~live[keys[known]] | fresh[keys[known]]
            drop = keys[gone].astype(np.uint64)
            is_last = number == len(self.segments) - 1 and segment.count < self.segment_size \
                and len(tail) > 0
            if not len(drop) and not is_last:
                folded.append(segment)
                continue
            kept = keys[~gone]
            if not is_last and len(kept) < self.segment_size // 4:
                # Mostly emptied by deletions: its few vectors are added again with the tail,
                # so churn cannot leave the index in many near-empty segments.
                pending = np.union1d(pending, kept)
                continue
            index = self._load(segment)
            if len(drop):
                index.remove(drop)
            if is_last:
                last = index
            elif len(index):
                folded.append(self._write(index, len(folded)))
            del index
        while len(pending) or last is not None:
            index = last if last is not None else _new_index(self.model.dim)
            last = None
            room = self.segment_size - len(index)
            for start in range(0, min(room, len(pending)), ADD_SLICE):
                part = pending[start:min(start + ADD_SLICE, room)]
                ids, matrix = reads.vectors_of(conn, [int(i) for i in part], self.model.dim)
                if len(ids):
                    index.add(ids.astype(np.uint64), matrix, threads=self.threads)
            pending = pending[max(room, 0):]
            if len(index):
                folded.append(self._write(index, len(folded)))
            del index
        return Stamp(fingerprint, self.model.dim, upto, tuple(folded))

    def _view(self, segment: Segment) -> Any:
        return usearch_index().restore(str(segment.path(self.settings)), view=True)

    def _load(self, segment: Segment) -> Any:
        index = _new_index(self.model.dim)
        index.load(str(segment.path(self.settings)))
        return index

    def _write(self, index: Any, number: int) -> Segment:
        """`index` as a new file (fsynced, renamed into place), not yet named by current.json."""
        where = folder(self.settings)
        where.mkdir(mode=0o700, exist_ok=True)
        final = where / f"{self.tag}-{self.upto}-{number}-{os.urandom(4).hex()}.usearch"
        temporary = where / f".{final.name}.{os.getpid()}.tmp"
        index.save(str(temporary))
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        faults.point("ann-before-rename")
        os.chmod(temporary, 0o600)
        os.replace(temporary, final)
        return Segment(final.name, len(index), final.stat().st_size, file_digest(final))


def _flags(ids: Iterator[int], size: int = 0) -> "np.ndarray":
    """A bool per id, up to the largest of `ids` (at least `size`): True for those in `ids`."""
    import numpy as np

    flags = np.zeros(size, dtype=bool)
    while block := list(itertools.islice(ids, 65536)):
        found = np.array(block, dtype=np.int64)
        if found.max() >= len(flags):
            flags = np.concatenate([flags, np.zeros(int(found.max()) + 1 - len(flags), dtype=bool)])
        flags[found] = True
    return flags


def save(settings: Settings, stamp: Stamp) -> None:
    """Name `stamp`'s files in current.json (atomically), then drop every file it does not name."""
    where = folder(settings)
    where.mkdir(mode=0o700, exist_ok=True)
    faults.point("ann-before-stamp")  # every new segment file written, none named yet
    write_atomically(where / "current.json", json.dumps(stamp.as_json()).encode())
    named = {segment.file for segment in stamp.segments}
    for old in where.glob("*.usearch"):
        if old.name not in named:
            old.unlink(missing_ok=True)
    for junk in where.glob(".*.tmp"):
        junk.unlink(missing_ok=True)


def merge(settings: Settings, fresh: bool = False, threads: int = 1) -> Stamp | None:
    """Fold what was committed since the stamp into the derived index (`fresh`: from nothing).

    The committer's merges add on one thread (it keeps the other core); a repair, on all.
    """
    with _WriterLock(settings), store.reading(settings.index_path, snapshot=True) as conn:
        active = store.active_model(conn)
        if conn is None or active is None:
            return None
        conn.execute("PRAGMA cache_size=-4000")  # read once, in order: a large cache only holds memory
        stamp = Folder(settings, active, None if fresh else Stamp.read(settings), threads).fold(
            conn, reads.commit_seq(conn))
        save(settings, stamp)
        return stamp


def rebuild(settings: Settings) -> dict[str, Any]:
    """Build the derived index from sqlite-vec's table, from scratch (`mm doctor --repair`)."""
    started = time.perf_counter()
    stamp = merge(settings, fresh=True, threads=os.cpu_count() or 1)
    if stamp is None:
        return {"built": False, "why": "no vectors yet"}
    return {"built": True, "vectors": stamp.count, "segments": len(stamp.segments),
            "seq": stamp.seq, "seconds": round(time.perf_counter() - started, 2)}


class Maintainer:
    """Keeps the derived index current from inside the committer's process.

    After each committed batch, if the tail (vectors newer than the stamp) holds `merge_at`
    vectors or more, a background thread folds it into the segments and saves them; the
    committer goes on committing meanwhile (a graph is built on one thread: on two cores, the
    committer keeps the other). Vectors committed while a merge runs are folded by the same
    thread right after, once they reach `merge_at`: a burst ends with its tail under
    `merge_at`, not waiting for the next commit. Nothing is kept in memory between merges.
    Closing waits for the merge under way and starts no other.
    """

    def __init__(self, settings: Settings, merge_at: int = MERGE_AT) -> None:
        self.settings, self.merge_at = settings, merge_at
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
            try:
                merge(self.settings)
            except Exception as exc:  # the index is never wrong for it: searches stay exact
                self.error = exc
            with self.guard:
                if self.error is not None or self.closing or self.since < self.merge_at:
                    self.running = False
                    return
                self.since = 0

    def settle(self) -> None:
        """Wait until no merge runs: the tail is then under `merge_at` (or a merge failed)."""
        while (thread := self.thread) is not None and thread.is_alive():
            thread.join()

    def close(self) -> None:
        with self.guard:
            self.closing = True
        self.settle()
