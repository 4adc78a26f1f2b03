"""What is committed, as a producer sees it: the one module that knows where that is.

With a queue beside the index (SQLite), a producer reads the index itself (`IndexView`), by
indexed lookups of one file at a time. With a queue shared across machines (Redis), a producer
on another machine has no index to read: after each commit the committer publishes what
producers need (`Publisher`: the active model, the commit sequence, and per file its size,
mtime, digest and the keys of its chunks that hold a vector of the active model), and producers
diff against that (`PublishedView`). Either view is stale by design (the queue may hold more);
the file snapshot in every batch makes a stale diff harmless.

`Committed` asks every question a producer has of the committed state (the model gate, the
diff, the ledger counts of its batches, whether a committer runs) through one queue handle and
one read connection, whichever the topology; nothing else branches on it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from memwal import store
from memwal.config import Settings
from memwal.discover import FoundFile
from memwal.errors import ModelMismatch
from memwal.fingerprint import ModelInfo
from memwal.lock import committer_alive
from memwal.queue import Publication, WriteAheadQueue
from memwal.records import Reset, UndecodableBatch, decode_batch, parse_item
from memwal.store import reads
from memwal.store.reads import CommittedFile

if TYPE_CHECKING:
    from memwal.embedders import Embedder

__all__ = ["Committed", "CommittedFile", "IndexView", "PublishedView", "Publisher", "check_model",
           "queued_resets"]

# A reset batch is one small item; larger messages are data and are not decoded to find resets.
RESET_MAX_BYTES = 4096


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

    def __init__(self, publication: Publication, namespace: str, fingerprint: str) -> None:
        super().__init__(None, namespace, fingerprint)
        self.publication = publication
        self.entries: dict[str, dict[str, Any]] = {}
        self._all = False

    def prefetch(self, sources: list[str]) -> None:
        self.entries.update(self.publication.published_files(self.namespace, sources))

    def _entry(self, source_file: str) -> dict[str, Any] | None:
        if source_file not in self.entries and not self._all:
            self.entries.update(self.publication.published_files(self.namespace, [source_file]))
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
            self.entries = self.publication.published_files(self.namespace, None)
            self._all = True
        return sorted(s for s in self.entries if _below(s, root))


class Committed:
    """The committed state as this home sees it, for the length of one producer's work (a run of
    `mm index`, its wait for the committer, a watcher's life): one queue handle (the caller's)
    and one read connection to the index, opened once the index exists and closed by `close()`.

    With a shared queue the index is the committer's, maybe on another machine: every answer
    then comes from what it published (the queue's Publication), and no index is opened here.
    """

    def __init__(self, settings: Settings, queue: WriteAheadQueue) -> None:
        self.settings, self.queue = settings, queue
        self.publication = queue.publication
        self._conn: store.Connection | None = None

    @property
    def shared(self) -> bool:
        """Whether the queue is shared across machines: its committer commits into its own index,
        so a producer here never takes the role."""
        return self.publication is not None

    def conn(self) -> store.Connection | None:
        """The read connection to this home's index (None while nothing is committed, or when
        the index is the shared queue's committer's)."""
        if self._conn is None and self.publication is None:
            self._conn = store.open_for_read(self.settings.index_path)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def active_model(self) -> ModelInfo | None:
        """The index's active model: from the index, or as the committer of a shared queue published."""
        if self.publication is None:
            return store.active_model(self.conn())
        model = (self.publication.published_state() or {}).get("active")
        return ModelInfo(model["name"], model["dim"], model["fingerprint"]) if model else None

    def target_model(self) -> ModelInfo | None:
        """The model the index will have once the queue drains: the last queued reset, else active."""
        resets = queued_resets(self.queue)
        if resets:
            reset = resets[-1][1]
            return ModelInfo(reset.name, reset.dim, reset.fingerprint)
        return self.active_model()

    def gate(self, embedder: Embedder) -> None:
        """The model gate every producer passes before it embeds: ModelMismatch (exit 2) unless
        `embedder` is the model the index will have once the queue drains."""
        check_model(embedder, self.target_model())

    def migration(self) -> store.MigrationState | None:
        """The migration in progress: from the index, or as a shared queue's committer published."""
        if self.publication is None:
            return store.migration(self.conn())
        data = (self.publication.published_state() or {}).get("migration")
        return store.MigrationState.from_dict(data) if data else None

    def endpoint_of(self, fingerprint: str) -> dict[str, Any] | None:
        """How to reach a model the index names (memwal.store.endpoint_of), wherever it is."""
        if self.publication is None:
            return store.endpoint_of(self.conn(), fingerprint)
        endpoint = ((self.publication.published_state() or {}).get("endpoints") or {}).get(fingerprint)
        return endpoint if isinstance(endpoint, dict) else None

    def embedders_for(self, configured: Embedder) -> tuple[Embedder, Embedder | None]:
        """The model gate, with migrations: (the embedder whose vectors a producer sends, the one
        whose shadow vectors it sends beside them, or None).

        Outside a migration that is the configured model alone, if it passes the gate. During
        one, a producer sends the active model's vectors (search reads them until the cutover)
        and the new model's as shadows: a process configured with the new model embeds with
        the active one too (reached as the index recorded it); one still configured with the
        old model adds the new one's where it can build it (else the migrator catches up).
        """
        resets = queued_resets(self.queue)
        target = ModelInfo(resets[-1][1].name, resets[-1][1].dim, resets[-1][1].fingerprint) \
            if resets else self.active_model()
        # A queued reset ends the migration before these records land.
        migration = None if resets else self.migration()
        to = migration.target if migration is not None else None
        from memwal.embedders.indexed import embedder_of

        if target is None or target.fingerprint == configured.fingerprint:
            shadow = None
            if to is not None and to.fingerprint != configured.fingerprint:
                shadow = embedder_of(self.settings, to, self.endpoint_of(to.fingerprint))
            return configured, shadow
        if to is not None and to.fingerprint == configured.fingerprint:
            main = embedder_of(self.settings, target, self.endpoint_of(target.fingerprint))
            if main is None:
                raise ModelMismatch(
                    f"the index migrates from {target.name} ({target.fingerprint}) to the "
                    f"configured {configured.name}, and until the cutover every write carries "
                    f"a vector of {target.name} too, which this process cannot build.",
                    f"Make {target.name} reachable here again, or wait for the migration "
                    "(`mm embedding-reset` shows it) to end.")
            return main, configured
        check_model(configured, target)
        return configured, None

    def view(self, namespace: str, fingerprint: str) -> IndexView:
        """What a producer diffs against: the index, or the published state of a shared queue."""
        if self.publication is not None:
            return PublishedView(self.publication, namespace, fingerprint)
        return IndexView(self.conn(), namespace, fingerprint)

    def ledger_counts(self, batch_ids: Sequence[str]) -> dict[str, tuple[int, int, int]]:
        """(committed, dead_lettered, skipped) of the given batches that are in the ledger: the
        index's, or what the committer of a shared queue published."""
        if self.publication is not None:
            return self.publication.published_batches(list(batch_ids))
        conn = self.conn()
        return {} if conn is None else reads.ledger_counts(conn, batch_ids)

    def committer_running(self) -> bool:
        """Whether a committer will commit what is queued: one holds the home's lock, or (a shared
        queue) the queue's claim, from any machine."""
        if self.publication is not None:
            return self.queue.holder() is not None
        return committer_alive(self.settings.lock_path)[0]


def queued_resets(queue: WriteAheadQueue) -> list[tuple[int, Reset]]:
    """(position, reset) of every reset waiting in the queue, in queue order."""
    found: list[tuple[int, Reset]] = []
    for delivery in queue.messages(max_bytes=RESET_MAX_BYTES):
        try:
            batch = decode_batch(delivery.data)
        except UndecodableBatch:
            continue
        for raw in batch.raw_items:
            if isinstance(raw, dict) and raw.get("kind") == "reset":
                try:
                    item = parse_item(raw)
                except ValueError:
                    continue
                assert isinstance(item, Reset)
                found.append((delivery.position, item))
    return found


def check_model(embedder: Embedder, target: ModelInfo | None) -> None:
    """Refuse, naming both models and the fix, if the embedder is not the index's model."""
    if target is None or target.fingerprint == embedder.fingerprint:
        return
    raise ModelMismatch(
        f"the index uses {target.name} ({target.fingerprint}, {target.dim}-d) but the configured "
        f"model is {embedder.name} ({embedder.fingerprint}, {embedder.dim}-d).",
        f"Either configure {_how_to_configure(target.name)} again (a running server: restart it "
        "so), or move the index to the configured model with `mm embedding-reset --mode "
        "migrate` (search stays up meanwhile).")


def _how_to_configure(name: str) -> str:
    """The settings that name a model: `embedding.model` for a bundled one, the provider and the
    model for a remote one (`ollama:bge-m3`)."""
    provider, _, model = name.partition(":")
    if model:
        return (f"{name} (MM_EMBEDDING_PROVIDER={provider} MM_EMBEDDING_MODEL={model}, or "
                "embedding.provider and embedding.model in config.json)")
    return f"{name} (MM_EMBEDDING_MODEL={name} or embedding.model in config.json)"


class Publisher:
    """The committer's side: after each commit, publish what changed (shared queues only).

    Besides what producers diff against, every publication carries who commits and where its
    index is (`committer`), and what a home without the index shows for it (`summary`: index
    and ledger totals, dead letters, last commit): `mm status` and `mm queue status` on a
    producer machine read these (memwal.remote)."""

    def __init__(self, conn: store.Connection, queue: WriteAheadQueue,
                 home: Path | None = None) -> None:
        self.conn, self.publication = conn, queue.publication
        self.summary = Summary()
        self.committer = {"host": socket.gethostname(), "pid": os.getpid(),
                          "home": str(home) if home is not None else None, "since": time.time()}
        if self.publication is not None:
            state = self.publication.published_state() or {}
            behind = state.get("seq") != reads.commit_seq(conn) or not state.get("complete")
            # Behind: publish everything. Else only the state: this committer is a new one.
            self._publish(self._all_files() if behind else [], complete=True)

    def _all_files(self) -> list[tuple[str, str]]:
        return [tuple(row) for row in self.conn.execute(  # type: ignore[misc]
            "SELECT namespace, source_file FROM files")]

    def committed(self, outcomes: Sequence[Any]) -> None:
        """After a group of batches (a committer's BatchOutcomes) is committed and acknowledged:
        one publication, so the published commit sequence never runs ahead of published files."""
        if self.publication is not None:
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
        migration = store.migration(self.conn)
        endpoints = store.get_meta(self.conn, "endpoints")
        state = {"active": active.as_dict() if active else None,
                 "migration": migration.as_dict() if migration else None,
                 "endpoints": json.loads(endpoints) if endpoints else {},
                 "seq": reads.commit_seq(self.conn), "complete": complete,
                 "committer": self.committer, "summary": self.summary(self.conn, fingerprint),
                 "published_at": time.time()}
        assert self.publication is not None
        self.publication.publish(state, files, gone, batches or {})


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
