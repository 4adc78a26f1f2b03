"""The writing side of the derived index: merges of the tail into segments, new segment files,
the stamp in current.json, a rebuild from scratch, and the committer's `Maintainer`. One
writer at a time (`_WriterLock`): the committer's merge, or `mm doctor --repair`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Iterator

from memwal import faults, store
from memwal.config import Settings
from memwal.fingerprint import ModelInfo, file_digest
from memwal.safeio import write_atomically
from memwal.store import reads
from memwal.vectorindex import (
    CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH, MERGE_AT, Segment, Stamp, folder, tail_bound,
    usearch_index,
)
from memwal.vectorindex.reads import coverage, open_view

if TYPE_CHECKING:
    import numpy as np

ADD_SLICE = 4096  # vectors read from the table and added to a graph at a time


def _new_index(dim: int) -> Any:
    Index = usearch_index()
    return Index(ndim=dim, metric="cos", dtype="f16", connectivity=CONNECTIVITY,
                 expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)


class WriterBusy(Exception):
    """Another process writes the derived files now (a detached merge, a repair)."""


class Cancelled(Exception):
    """The merge was asked to stop: nothing it built is named, the stamp stays as it was."""


class _WriterLock:
    """One writer of the derived files at a time (the committer's merge, a detached merge, or a
    repair). Without `wait`, WriterBusy if another holds it."""

    def __init__(self, settings: Settings, wait: bool = True) -> None:
        self.path = folder(settings) / "lock"
        self.wait = wait

    def __enter__(self) -> "_WriterLock":
        import fcntl

        from memwal.safeio import open_regular

        self.path.parent.mkdir(mode=0o700, exist_ok=True)
        self.fd = open_regular(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX if self.wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise WriterBusy() from None
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
                 threads: int = 1, cancel: threading.Event | None = None,
                 finish_up_to: int = 0) -> None:
        self.settings, self.model, self.threads = settings, model, threads
        self.cancel = cancel or threading.Event()
        # A merge of at most this many vectors is finished even when cancelled: seconds of work.
        self.finish_up_to = finish_up_to
        self.small = False
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
        self.small = len(tail) <= self.finish_up_to
        folded: list[Segment] = []
        last = None  # the segment the tail is added to, in memory
        pending = tail
        for number, segment in enumerate(self.segments):
            self._go_on()
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
                self._go_on()
                part = pending[start:min(start + ADD_SLICE, room)]
                ids, matrix = reads.vectors_of(conn, [int(i) for i in part], self.model.dim)
                if len(ids):
                    index.add(ids.astype(np.uint64), matrix, threads=self.threads)
            pending = pending[max(room, 0):]
            if len(index):
                folded.append(self._write(index, len(folded)))
            del index
        return Stamp(fingerprint, self.model.dim, upto, tuple(folded))

    def _go_on(self) -> None:
        if self.cancel.is_set() and not self.small:
            raise Cancelled()

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
    upcoming = _next_stamp(settings)  # a migration's graph, built for its cutover
    if upcoming is not None:
        named |= {segment.file for segment in upcoming.segments}
    for old in where.glob("*.usearch"):
        if old.name not in named:
            old.unlink(missing_ok=True)
    for junk in where.glob(".*.tmp"):
        junk.unlink(missing_ok=True)


def merge(settings: Settings, fresh: bool = False, threads: int = 1,
          cancel: threading.Event | None = None, wait: bool = True,
          finish_up_to: int = 0) -> Stamp | None:
    """Fold what was committed since the stamp into the derived index (`fresh`: from nothing).

    The committer's merges add on one thread (it keeps the other core); a repair, on all.
    `cancel` set stops a merge of more than `finish_up_to` vectors between two slices of them
    (Cancelled; nothing is named); a smaller one is finished. Without `wait`, another writer at
    work (WriterBusy) is left to it.
    """
    with _WriterLock(settings, wait), store.reading(settings.index_path, snapshot=True) as conn:
        active = store.active_model(conn)
        if conn is None or active is None:
            return None
        conn.execute("PRAGMA cache_size=-4000")  # read once, in order: a large cache only holds memory
        if not fresh:
            _adopt_next(settings, active)
        stamp = Folder(settings, active, None if fresh else Stamp.read(settings), threads,
                       cancel, finish_up_to).fold(conn, reads.commit_seq(conn))
        save(settings, stamp)
        return stamp


# -- a migration's graph, built from its shadow vectors before the cutover -----------------

NEXT_STAMP = "next.json"


def _next_stamp(settings: Settings) -> Stamp | None:
    return Stamp.read(settings, NEXT_STAMP)


def build_next(settings: Settings, target: ModelInfo, threads: int = 0) -> Stamp | None:
    """Build the graph of a migration's model from its shadow vectors (every one written up to
    now), and name it in `next.json`: the cutover makes it current (`install_next`), so search
    keeps its approximate leg across the switch. After the cutover each chunk's `seq` is the
    sequence that wrote its shadow vector (store.writes.cut_over): the stamp's sequence then
    divides the graph from its tail as for any merge."""
    import numpy as np

    threads = threads or os.cpu_count() or 1
    with _WriterLock(settings), store.reading(settings.index_path, snapshot=True) as conn:
        if conn is None:
            return None
        migration = store.migration(conn)
        if migration is None or migration.target.fingerprint != target.fingerprint:
            return None
        conn.execute("PRAGMA cache_size=-4000")
        upto = reads.shadow_seq(conn)
        builder = Folder(settings, target, None, threads)
        builder.upto = upto
        segments: list[Segment] = []
        index, after = _new_index(target.dim), 0
        while rows := reads.each_shadow_vector(conn, upto, after, ADD_SLICE):
            after = rows[-1][0]
            ids = np.fromiter((row[0] for row in rows), dtype=np.uint64, count=len(rows))
            matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4").reshape(
                len(rows), target.dim)
            index.add(ids, matrix, threads=threads)
            if len(index) >= builder.segment_size:
                segments.append(builder._write(index, len(segments)))
                index = _new_index(target.dim)
        if len(index):
            segments.append(builder._write(index, len(segments)))
        stamp = Stamp(target.fingerprint, target.dim, upto, tuple(segments))
        old = _next_stamp(settings)
        write_atomically(folder(settings) / NEXT_STAMP, json.dumps(stamp.as_json()).encode())
        if old is not None:
            current = Stamp.read(settings)
            keep = {s.file for s in current.segments} if current else set()
            for segment in old.segments:
                if segment.file not in keep:
                    segment.path(settings).unlink(missing_ok=True)
        return stamp


def install_next(settings: Settings) -> bool:
    """After a cutover: make the migration's graph current, if it is of the active model."""
    with _WriterLock(settings), store.reading(settings.index_path) as conn:
        active = store.active_model(conn)
        return active is not None and _adopt_next(settings, active)


def _adopt_next(settings: Settings, active: ModelInfo) -> bool:
    """(With the writer lock held.) If `next.json` is the active model's graph and the current
    one is not, make it current; drop a `next.json` of another model. Whether it was adopted."""
    upcoming = _next_stamp(settings)
    if upcoming is None:
        return False
    where = folder(settings)
    if upcoming.fingerprint != active.fingerprint:
        (where / NEXT_STAMP).unlink(missing_ok=True)
        save_current = Stamp.read(settings)
        if save_current is not None:
            save(settings, save_current)  # drops the files only next.json named
        return False
    current = Stamp.read(settings)
    if current is not None and current.fingerprint == active.fingerprint:
        (where / NEXT_STAMP).unlink(missing_ok=True)
        save(settings, current)
        return False
    write_atomically(where / "current.json", json.dumps(upcoming.as_json()).encode())
    (where / NEXT_STAMP).unlink(missing_ok=True)
    save(settings, upcoming)
    return True


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

    Once commits stop, the tail must shrink to its bound (`tail_bound`): a `lasting` committer
    (a worker, a server's) folds a larger one as soon as it finds the queue empty (`idle()`),
    including one an earlier committer left. A committer that ends waits for no more than a small
    merge (of at most the bound: seconds): closing stops a larger one between two slices of
    vectors, and if the tail is then above its bound it starts a detached merge (`python -m
    memwal.vectorindex.writes HOME`, a process of its own that outlives this one; one writer at a
    time, so a committer that starts meanwhile leaves the folding to it).
    """

    BUSY_RETRY = 1.0  # seconds

    def __init__(self, settings: Settings, merge_at: int = MERGE_AT, lasting: bool = False) -> None:
        self.settings, self.merge_at, self.lasting = settings, merge_at, lasting
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.cancel = threading.Event()
        self.guard = threading.Lock()  # `since`, `total`, `running`, `closing`, shared with the thread
        self.running = self.closing = False
        self.busy_until = 0.0  # monotonic: when to ask again for a lock another writer held
        self.since, self.total = self._tail()

    def _tail(self) -> tuple[int, int]:
        """(vectors outside the graph, vectors in all) of the active model, as committed now."""
        with store.reading(self.settings.index_path) as conn:
            found = coverage(self.settings, conn)
        return found["tail"], found["in_graph"] + found["tail"]

    def committed(self, vectors: int) -> None:
        with self.guard:
            self.since += vectors
            self.total += vectors
            if self.since < self.merge_at:
                return
            self._start()

    def idle(self) -> None:
        """The committer found the queue empty: a lasting one folds a tail above its bound."""
        with self.guard:
            if self.lasting and self.since > tail_bound(self.settings, self.total) and \
                    time.monotonic() >= self.busy_until:
                self._start()

    def _start(self) -> None:  # with self.guard held
        if self.running or self.closing or self.error is not None:
            return
        self.running = True
        self.thread = threading.Thread(target=self._merges, name="memwal-vectors", daemon=True)
        self.thread.start()

    def _merges(self) -> None:
        while True:
            with self.guard:
                folding, self.since = self.since, 0
            try:
                merge(self.settings, cancel=self.cancel, wait=False,
                      finish_up_to=tail_bound(self.settings, self.total))
            except (WriterBusy, Cancelled):
                # Another process folds now (a detached merge, a repair), or this committer
                # ends: the tail is still to fold; asked again after BUSY_RETRY seconds.
                with self.guard:
                    self.since += folding
                    self.busy_until = time.monotonic() + self.BUSY_RETRY
                    self.running = False
                    return
            except Exception as exc:  # the index is never wrong for it: searches stay exact
                self.error = exc
                print(f"memwal: folding the vector graph failed ({type(exc).__name__}: {exc}); "
                      "searches scan the rest exactly until the next committer or "
                      "`mm doctor --repair` folds it", file=sys.stderr)
            with self.guard:
                if self.error is not None or self.closing or self.since < self.merge_at:
                    self.running = False
                    return

    def settle(self) -> None:
        """Wait until no merge runs: the tail is then under `merge_at` (or a merge failed)."""
        while (thread := self.thread) is not None and thread.is_alive():
            thread.join()

    def close(self) -> None:
        """Stop the merge under way (at its next slice) unless it is a small one, and start none;
        leave a tail above its bound to a detached merge."""
        with self.guard:
            self.closing = True
        self.cancel.set()
        self.settle()
        # Even after a merge here failed: a fresh process is another try, and costs nothing else.
        tail, total = self._tail()
        if tail > tail_bound(self.settings, total):
            fold_detached(self.settings)


def fold_detached(settings: Settings) -> None:
    """Start a merge in a process of its own, which outlives this one (a new session, no
    terminal, no inherited descriptors): what a committer that ends leaves behind."""
    import subprocess

    subprocess.Popen([sys.executable, "-m", "memwal.vectorindex.writes", str(settings.home)],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def main(argv: list[str]) -> int:
    """The detached merge: fold the tail of the home `argv[0]`, after any writer at work. No
    committer shares its process: it adds on every core, as a repair does."""
    from memwal.config import load_settings

    merge(load_settings(argv[0]), threads=os.cpu_count() or 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
