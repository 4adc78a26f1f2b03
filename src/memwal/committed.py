"""What is committed, as a producer sees it to decide what changed.

With a queue beside the index (SQLite), a producer reads the index itself (`IndexView`), by
indexed lookups of one file at a time. With a queue shared across machines (Redis), a producer
on another machine has no index to read: after each commit the committer publishes what
producers need (`Publisher`: the active model, the commit sequence, and per file its size,
mtime, digest and the keys of its chunks that hold a vector of the active model), and producers
diff against that (`PublishedView`). Either view is stale by design (the queue may hold more);
the file snapshot in every batch makes a stale diff harmless.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any, Sequence

from memwal import store
from memwal.discover import FoundFile
from memwal.fingerprint import ModelInfo
from memwal.queue import WriteAheadQueue
from memwal.store import reads
from memwal.store.reads import CommittedFile

__all__ = ["CommittedFile", "IndexView", "PublishedView", "Publisher", "active_model", "view"]


def _below(source: str, root: Path) -> bool:
    return source == str(root) or source.startswith(str(root).rstrip("/") + "/")


class IndexView:
    """The index itself, read-only. Every question is an indexed lookup of one file, so the cost
    of indexing N files does not grow with the size of the index."""

    def __init__(self, conn: store.Connection | None, namespace: str, fingerprint: str) -> None:
        self.conn, self.namespace, self.fingerprint = conn, namespace, fingerprint

    def prefetch(self, sources: list[str]) -> None:
        pass  # lookups are cheap enough one by one

    def file(self, source_file: str) -> CommittedFile | None:
        if self.conn is None:
            return None
        return reads.committed_file(self.conn, self.namespace, source_file, self.fingerprint)

    def current_keys(self, source_file: str) -> set[tuple[str, int]]:
        """Keys of the file's chunks that already have a vector of the configured model."""
        if self.conn is None:
            return set()
        return reads.current_keys(self.conn, self.namespace, source_file, self.fingerprint)

    def sources_under(self, root: Path) -> list[str]:
        """Committed files that are `root` or lie below it."""
        if self.conn is None:
            return []
        return reads.committed_sources_under(self.conn, self.namespace, str(root))

    def base(self, source_file: str) -> str | None:
        """What a new snapshot of the file is based on: the batch id of the committed snapshot,
        "" if none is committed, None if the view cannot tell (an older committer's publication)."""
        committed = self.file(source_file)
        return "" if committed is None else committed.batch_id

    def is_unchanged(self, found: FoundFile) -> bool:
        """Size and mtime match, and every chunk is there with a vector of the configured model."""
        committed = self.file(found.source_file)
        return (committed is not None and committed.size == found.size
                and committed.mtime_ns == found.mtime_ns
                and committed.chunk_count == committed.chunks_present == committed.chunks_current)


class PublishedView(IndexView):
    """What the committer of a shared queue published, for producers without the index."""

    def __init__(self, queue: WriteAheadQueue, namespace: str, fingerprint: str) -> None:
        super().__init__(None, namespace, fingerprint)
        self.queue = queue
        self.entries: dict[str, dict[str, Any]] = {}
        self._all = False

    def prefetch(self, sources: list[str]) -> None:
        self.entries.update(self.queue.published_files(self.namespace, sources))

    def _entry(self, source_file: str) -> dict[str, Any] | None:
        if source_file not in self.entries and not self._all:
            self.entries.update(self.queue.published_files(self.namespace, [source_file]))
        return self.entries.get(source_file)

    def file(self, source_file: str) -> CommittedFile | None:
        entry = self._entry(source_file)
        if entry is None:
            return None
        current = len(entry["keys"]) if entry["fingerprint"] == self.fingerprint else 0
        return CommittedFile(entry["digest"], entry["size"], entry["mtime_ns"], entry["chunk_count"],
                             entry["present"], current, entry.get("batch_id"))

    def current_keys(self, source_file: str) -> set[tuple[str, int]]:
        entry = self._entry(source_file)
        if entry is None or entry["fingerprint"] != self.fingerprint:
            return set()
        return {(h, s) for h, s in entry["keys"]}

    def sources_under(self, root: Path) -> list[str]:
        if not self._all:
            self.entries = self.queue.published_files(self.namespace, None)
            self._all = True
        return sorted(s for s in self.entries if _below(s, root))


def view(conn: store.Connection | None, queue: WriteAheadQueue, namespace: str,
         fingerprint: str) -> IndexView:
    """The view a producer diffs against: the index, or the published state of a shared queue."""
    return PublishedView(queue, namespace, fingerprint) if queue.shared else \
        IndexView(conn, namespace, fingerprint)


def active_model(conn: store.Connection | None, queue: WriteAheadQueue) -> ModelInfo | None:
    """The index's active model: from the index, or as the committer of a shared queue published."""
    if not queue.shared:
        return store.active_model(conn)
    state = queue.published_state()
    model = (state or {}).get("active")
    return ModelInfo(model["name"], model["dim"], model["fingerprint"]) if model else None


class Publisher:
    """The committer's side: after each commit, publish what changed (shared queues only).

    Besides what producers diff against, every publication carries who commits and where its
    index is (`committer`), and what a home without the index shows for it (`summary`: index
    and ledger totals, dead letters, last commit): `mm status` and `mm queue status` on a
    producer machine read these (memwal.remote)."""

    def __init__(self, conn: store.Connection, queue: WriteAheadQueue,
                 home: Path | None = None) -> None:
        self.conn, self.queue = conn, queue
        self.summary = Summary()
        self.committer = {"host": socket.gethostname(), "pid": os.getpid(),
                          "home": str(home) if home is not None else None, "since": time.time()}
        if queue.shared:
            state = queue.published_state() or {}
            behind = state.get("seq") != reads.commit_seq(conn) or not state.get("complete")
            # Behind: publish everything. Else only the state: this committer is a new one.
            self._publish(self._all_files() if behind else [], complete=True)

    def _all_files(self) -> list[tuple[str, str]]:
        return [tuple(row) for row in self.conn.execute(  # type: ignore[misc]
            "SELECT namespace, source_file FROM files")]

    def committed(self, outcomes: Sequence[Any]) -> None:
        """After a group of batches (a committer's BatchOutcomes) is committed and acknowledged:
        one publication, so the published commit sequence never runs ahead of published files."""
        if self.queue.shared:
            touched = sorted({file for outcome in outcomes for file in outcome.touched})
            # A redelivered batch did nothing this time: what it did is in the ledger (its
            # first publication may have been lost with the committer that committed it).
            counts = reads.ledger_counts(self.conn, [o.batch_id for o in outcomes if o.duplicate])
            counts.update({o.batch_id: (o.committed, o.dead_lettered, o.skipped)
                           for o in outcomes if not o.duplicate})
            self._publish(touched, complete=True,
                          batches={batch_id: list(n) for batch_id, n in counts.items()})

    def _publish(self, touched: list[tuple[str, str]], complete: bool,
                 batches: dict[str, list[int]] | None = None) -> None:
        active = store.active_model(self.conn)
        fingerprint = active.fingerprint if active else None
        files: dict[str, dict[str, Any]] = {}
        gone: dict[str, list[str]] = {}
        for namespace, source in touched:
            committed = reads.committed_file(self.conn, namespace, source, fingerprint or "")
            if committed is None:
                gone.setdefault(namespace, []).append(source)
                continue
            keys = sorted(reads.current_keys(self.conn, namespace, source, fingerprint or ""))
            files.setdefault(namespace, {})[source] = {
                "digest": committed.digest, "size": committed.size,
                "mtime_ns": committed.mtime_ns, "chunk_count": committed.chunk_count,
                "present": committed.chunks_present, "fingerprint": fingerprint,
                "batch_id": committed.batch_id,
                "keys": [list(k) for k in keys]}
        state = {"active": active.as_dict() if active else None,
                 "seq": reads.commit_seq(self.conn), "complete": complete,
                 "committer": self.committer, "summary": self.summary(self.conn, fingerprint),
                 "published_at": time.time()}
        self.queue.publish(state, files, gone, batches or {})


# The vector counts scan an index of every chunk (~50 ms a million chunks): counted again at most
# once per VECTOR_COUNT_SHARE⁻¹ times what the last count took, so they never cost the committer
# more than a tenth of its time; below 10 ms (some 200,000 chunks) they are counted every time.
VECTOR_COUNT_SHARE = 0.1
VECTOR_COUNT_CHEAP = 0.01


class Summary:
    """The index's totals as a home without the index shows them (`mm status` there), computed
    once per commit group by cheap queries (counts of small indexes, a skip-scan of namespaces,
    the ledger's sums) and the vector counts (see VECTOR_COUNT_SHARE)."""

    def __init__(self) -> None:
        self.vectors: dict[str, int] = {}
        self.counted_at = 0.0
        self.cost = 0.0

    def __call__(self, conn: store.Connection, fingerprint: str | None) -> dict[str, Any]:
        now = time.monotonic()
        if self.cost < VECTOR_COUNT_CHEAP or now - self.counted_at >= self.cost / VECTOR_COUNT_SHARE:
            self.vectors = reads.vectors_by_fingerprint(conn)
            self.counted_at, self.cost = now, time.monotonic() - now
        counts = reads.index_counts(conn)
        ledger = reads.ledger_totals(conn)
        current = self.vectors.get(fingerprint, 0) if fingerprint else 0
        return {"chunks": counts.chunks, "files": counts.files, "namespaces": counts.namespaces,
                "vectors_by_fingerprint": self.vectors,
                "chunks_without_active_vector": max(0, counts.chunks - current) if fingerprint
                else sum(self.vectors.values()),
                "vectors_counted_ago": round(now - self.counted_at, 3),
                "dead_letters": reads.unreplayed_dead_letters(conn),
                "ledger": {k: ledger[k] for k in ("batches", "committed", "dead_lettered", "skipped")},
                "last_commit_at": reads.last_commit_at(conn)}
