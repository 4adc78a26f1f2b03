"""The reading side of the derived index: its stamped segments opened memory-mapped and
searched, and doctor's check of them. Nothing here writes a file.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from memwal import store
from memwal.config import Settings
from memwal.fingerprint import ModelInfo, file_digest
from memwal.store import reads
from memwal.vectorindex import (EXPANSION_SEARCH, MERGE_AT, Segment, Stamp, tail_bound,
                                usearch_index)

if TYPE_CHECKING:
    import numpy as np

# Several segments are each searched for the whole depth, and each holds a fraction of the
# vectors: a smaller expansion per segment keeps the recall. At 1M clustered vectors in 10
# segments, the vector leg took p50 27.7 ms at 256 and 19.4 ms at 128, recall@10 1.000 at both
# (benchmarks/search_bench.py); one graph of 1M took 4.4 ms at 256, recall@10 0.970.
SEGMENTS_EXPANSION = 128


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
    """For doctor: (ok, detail) of the derived index against the index. A merge may name new
    files meanwhile (a committer's, or a detached one): the stamp is read before the index, and
    files gone between the stamp and their opening are checked again under the new stamp."""
    stamp = Stamp.read(settings)
    with store.reading(settings.index_path) as conn:
        active = store.active_model(conn)
        current = reads.commit_seq(conn) if conn is not None else 0
        vectors = reads.count_vectors(conn, active.fingerprint) \
            if active and conn is not None else 0
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
    while open_view(settings, active, verify=True) is None:
        again = Stamp.read(settings)
        if again is None or again == stamp:
            return False, "damaged (size, header or checksum): run `mm doctor --repair` to rebuild it"
        stamp = again  # replaced by a merge meanwhile: check the files it names now
    return True, (f"{stamp.count:,} vectors in {len(stamp.segments)} segment(s) up to commit "
                  f"{stamp.seq}; {current - stamp.seq} commits since are searched exactly")


def coverage(settings: Settings, conn: store.Connection | None) -> dict[str, int]:
    """How much of the active model's vectors the graph holds: `in_graph` (as stamped), `tail`
    (committed after the stamp: searched exactly), `bound` (the tail allowed once commits
    stop, `tail_bound`) and `segments`. What `mm status --json` reports as `vector_index`."""
    active = store.active_model(conn) if conn is not None else None
    stamp = Stamp.read(settings)
    current = active is not None and stamp is not None and stamp.fingerprint == active.fingerprint
    in_graph = stamp.count if current and stamp else 0
    tail = 0
    if conn is not None and active is not None:
        after = stamp.seq if current and stamp else 0
        tail = reads.count_vectors(conn, active.fingerprint, after)
    return {"in_graph": in_graph, "tail": tail, "bound": tail_bound(settings, in_graph + tail),
            "segments": len(stamp.segments) if current and stamp else 0}
