"""The one serialized committer: applies queued batches to the index, in order, exactly once.

Per batch (DESIGN.md): skip if its id is in the ledger; else one index transaction that applies
the items in order — each upsert checked against the active model *as of that item*, failures
dead-lettered with the whole item — then the ledger row in the same transaction, commit, and only
then acknowledge the queue message. A crash anywhere leaves the message in flight; the next
committer puts it back at its position and the ledger makes the redelivery harmless.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from memwal import store
from memwal.config import Settings, ensure_home
from memwal.fingerprint import ModelInfo, name_of
from memwal.lock import CommitterLock
from memwal.queue import Delivery, HueyQueue, WriteAheadQueue, open_queue
from memwal.records import (
    ChunkKey, DecodedBatch, FileSnapshot, MalformedItem, Reset, UndecodableBatch, Upsert, decode_batch,
    describe_item, pack_item, parse_item,
)
from memwal.store import DeadLetter, LedgerEntry
from memwal.vectors import VectorError, check_vector


# Errors that come from an item's data, not from the environment: the item is dead-lettered.
# (OperationalError — locked, disk full, I/O — is the environment: the batch stays in flight.)
DATA_ERRORS = (ValueError, TypeError, OverflowError, KeyError, store.IntegrityError, store.DataError,
               store.InterfaceError)


@dataclass(frozen=True)
class BatchOutcome:
    """What happened to one delivered batch."""

    batch_id: str
    position: int
    received: int
    committed: int
    dead_lettered: int
    skipped: int
    duplicate: bool = False


@dataclass
class DrainStats:
    """Totals over the batches one drain applied."""

    batches: int = 0
    duplicates: int = 0
    committed: int = 0
    dead_lettered: int = 0
    skipped: int = 0

    def add(self, outcome: BatchOutcome) -> None:
        if outcome.duplicate:
            self.duplicates += 1
            return
        self.batches += 1
        self.committed += outcome.committed
        self.dead_lettered += outcome.dead_lettered
        self.skipped += outcome.skipped


class _Counts:
    def __init__(self) -> None:
        self.committed = self.dead_lettered = self.skipped = 0


class Committer:
    """Applies deliveries to an index connection it alone writes. Hold the lock before using it."""

    def __init__(self, conn: store.Connection, queue: WriteAheadQueue) -> None:
        self.conn = conn
        self.queue = queue

    # -- one batch ---------------------------------------------------------------------------

    def apply(self, delivery: Delivery) -> BatchOutcome:
        """Apply one delivery in one transaction, then acknowledge it."""
        try:
            batch = decode_batch(delivery.data)
        except UndecodableBatch as exc:
            outcome = self._apply_undecodable(delivery, exc)
        else:
            outcome = self._apply_batch(delivery, batch)
        self.queue.acknowledge(delivery.position)
        return outcome

    def _transaction(self) -> "_Transaction":
        return _Transaction(self.conn)

    def _apply_undecodable(self, delivery: Delivery, exc: UndecodableBatch) -> BatchOutcome:
        # Without a readable id, the queue position is the only identity such a batch has.
        ledger_id = f"undecodable@{delivery.position}"
        with self._transaction():
            if store.in_ledger(self.conn, ledger_id):
                return BatchOutcome(ledger_id, delivery.position, 1, 0, 1, 0, duplicate=True)
            store.add_dead_letter(self.conn, DeadLetter(
                reason=exc.reason, detail=exc.detail, position=delivery.position, raw=delivery.data))
            store.add_ledger_entry(self.conn, LedgerEntry(ledger_id, delivery.position, {}, None,
                                                          1, 0, 1, 0))
        return BatchOutcome(ledger_id, delivery.position, 1, 0, 1, 0)

    def _apply_batch(self, delivery: Delivery, batch: DecodedBatch) -> BatchOutcome:
        try:
            return self._apply_items(delivery, batch, careful=False)
        except DATA_ERRORS:
            # An item failed in a way the checks did not foresee; the transaction was rolled
            # back. Apply the batch again item by item, each in a savepoint, so that only the
            # failing items become dead letters and the queue never stalls on a poison batch.
            # (Not the fast path: a savepoint per item makes FTS5 flush per item.)
            return self._apply_items(delivery, batch, careful=True)

    def _apply_items(self, delivery: Delivery, batch: DecodedBatch, careful: bool) -> BatchOutcome:
        with self._transaction():
            if store.in_ledger(self.conn, batch.id):
                return BatchOutcome(batch.id, delivery.position, len(batch.raw_items), 0, 0, 0,
                                    duplicate=True)
            counts = _Counts()
            applier = _ItemApplier(self.conn, batch, delivery.position, counts)
            for index, raw in enumerate(batch.raw_items):
                if careful:
                    applier.apply_guarded(index, raw)
                else:
                    applier.apply(index, raw)
            applier.flush()
            if batch.replays:
                # The audit trail of a replay is written by the committer, in the same
                # transaction as the replayed items: never by the replaying process.
                self.conn.executemany(
                    "UPDATE dead_letters SET replayed_by=?, replayed_at=? WHERE id=?",
                    [(batch.id, time.time(), letter_id) for letter_id in batch.replays])
            store.add_ledger_entry(self.conn, LedgerEntry(
                batch.id, delivery.position, batch.producer, batch.enqueued_at,
                len(batch.raw_items), counts.committed, counts.dead_lettered, counts.skipped))
        return BatchOutcome(batch.id, delivery.position, len(batch.raw_items), counts.committed,
                            counts.dead_lettered, counts.skipped)

    # -- loops -------------------------------------------------------------------------------

    def drain(self, should_stop: Callable[[], bool] = lambda: False,
              on_batch: Callable[[BatchOutcome], None] | None = None,
              stats: DrainStats | None = None) -> DrainStats:
        """Apply batches until the queue is empty or `should_stop()` says so (checked per batch).

        Totals are added to `stats` if given, else to a new DrainStats.
        """
        stats = DrainStats() if stats is None else stats
        while not should_stop():
            delivery = self.queue.take()
            if delivery is None:
                break
            outcome = self.apply(delivery)
            stats.add(outcome)
            if on_batch:
                on_batch(outcome)
        return stats

    def run(self, stop: threading.Event, poll_interval: float,
            on_batch: Callable[[BatchOutcome], None] | None = None) -> DrainStats:
        """Apply batches as they arrive until `stop` is set; idle waits are `poll_interval` long."""
        total = DrainStats()
        while not stop.is_set():
            self.drain(stop.is_set, on_batch, total)
            if not stop.is_set():
                stop.wait(poll_interval)
        return total


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (KeyboardInterrupt included)."""

    def __init__(self, conn: store.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


class _ItemApplier:
    """Applies the items of one batch, inside the batch's transaction."""

    def __init__(self, conn: store.Connection, batch: DecodedBatch, position: int,
                 counts: _Counts) -> None:
        self.conn = conn
        self.batch = batch
        self.position = position
        self.counts = counts
        self.active = store.active_model(conn)
        self.stale_files: set[tuple[str, str]] = set()
        # Checked upserts not yet written: a run of them is written with a few executemany
        # calls. Flushed before any other item, so no item sees a state per-item application
        # would not have left. A repeated key keeps its first place and its last version.
        self.pending: dict[ChunkKey, Upsert] = {}

    def apply_guarded(self, index: int, raw: object) -> None:
        """`apply` inside a savepoint: an item that fails to apply becomes an `apply_error`."""
        before = (self.counts.committed, self.counts.dead_lettered, self.counts.skipped,
                  self.active, set(self.stale_files))
        self.conn.execute("SAVEPOINT item")
        try:
            self.apply(index, raw)
            self.flush()
        except DATA_ERRORS as exc:
            self.conn.execute("ROLLBACK TO item")
            (self.counts.committed, self.counts.dead_lettered, self.counts.skipped,
             self.active, self.stale_files) = before
            self._dead_letter(index, raw, "apply_error", f"{type(exc).__name__}: {exc}")
        self.conn.execute("RELEASE item")

    def apply(self, index: int, raw: object) -> None:
        try:
            item = parse_item(raw)
        except MalformedItem as exc:
            self._dead_letter(index, raw, "malformed", str(exc))
            return
        if isinstance(item, Upsert):
            self._check_upsert(index, raw, item)
            return
        self.flush()
        if isinstance(item, FileSnapshot):
            self._file(item)
        else:
            self._reset(item)

    def _dead_letter(self, index: int, raw: object, reason: str, detail: str) -> None:
        described = describe_item(raw)
        store.add_dead_letter(self.conn, DeadLetter(
            reason=reason, detail=detail, position=self.position, batch_id=self.batch.id,
            item_index=index, enqueued_at=self.batch.enqueued_at, kind=described.get("kind"),
            fingerprint=described.get("fingerprint"),
            active_fingerprint=self.active.fingerprint if self.active else None,
            namespace=described.get("namespace"), source_file=described.get("source_file"),
            content_hash=described.get("content_hash"), start_line=described.get("start_line"),
            item=pack_item(raw),
        ))
        self.counts.dead_lettered += 1

    def _adopt(self, model: ModelInfo) -> None:
        store.set_active_model(self.conn, model)
        if not store.has_vector_table(self.conn):
            store.create_vector_table(self.conn, model.dim)
        self.active = model

    def _check_upsert(self, index: int, raw: object, item: Upsert) -> None:
        key = item.key
        if (key.namespace, key.source_file) in self.stale_files:
            self.counts.skipped += 1
            return
        if self.active is None:
            self._adopt(ModelInfo(name_of(item.fingerprint), item.dim, item.fingerprint))
        assert self.active is not None
        if item.fingerprint != self.active.fingerprint:
            self._dead_letter(index, raw, "fingerprint_mismatch",
                              f"vector from {item.fingerprint}; the active model is "
                              f"{self.active.fingerprint}")
            return
        try:
            check_vector(item.vector, item.dim, self.active.dim)
        except VectorError as exc:
            self._dead_letter(index, raw, exc.reason, str(exc))
            return
        self.pending[key] = item
        self.counts.committed += 1

    def flush(self) -> None:
        """Write the pending upserts: existing keys row by row, new keys in bulk."""
        if not self.pending:
            return
        items, self.pending = list(self.pending.values()), {}
        existing = self._existing_ids(items)
        fresh = [item for item in items if item.key not in existing]
        for item in items:
            if item.key in existing:
                self._update(existing[item.key], item)
        if not fresh:
            return
        # The committer is the only writer and holds BEGIN IMMEDIATE: max(id)+1… are the ids
        # SQLite would pick, and knowing them lets vectors and FTS rows go in by executemany.
        first = self.conn.execute("SELECT coalesce(max(id), 0) + 1 FROM chunks").fetchone()[0]
        ids = range(first, first + len(fresh))
        batch_id = self.batch.id
        self.conn.executemany(
            "INSERT INTO chunks (id, namespace, source_file, content_hash, start_line, end_line, "
            "heading_path, content, tags, fingerprint, batch_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [(chunk_id, item.key.namespace, item.key.source_file, item.key.content_hash,
              item.key.start_line, item.end_line,
              json.dumps(list(item.heading_path), ensure_ascii=False), item.content,
              json.dumps(list(item.tags), ensure_ascii=False), item.fingerprint, batch_id)
             for chunk_id, item in zip(ids, fresh)])
        self.conn.executemany(
            f"INSERT INTO {store.VECTOR_TABLE} (chunk_id, embedding) VALUES (?, ?)",
            [(chunk_id, item.vector) for chunk_id, item in zip(ids, fresh)])
        store.insert_fts_rows(self.conn, ids[0], ids[-1])

    def _existing_ids(self, items: list[Upsert]) -> dict[ChunkKey, int]:
        # Producers keep one file's items together: one indexed lookup per file.
        found: dict[ChunkKey, int] = {}
        wanted = {item.key for item in items}
        for namespace, source_file in {(k.namespace, k.source_file) for k in wanted}:
            for chunk_id, content_hash, start_line in self.conn.execute(
                    "SELECT id, content_hash, start_line FROM chunks WHERE namespace=? AND "
                    "source_file=?", (namespace, source_file)):
                key = ChunkKey(namespace, source_file, content_hash, start_line)
                if key in wanted:
                    found[key] = chunk_id
        return found

    def _update(self, chunk_id: int, item: Upsert) -> None:
        """A new version of a stored chunk: its row (FTS by trigger) and its vector."""
        self.conn.execute(
            "UPDATE chunks SET end_line=?, heading_path=?, content=?, tags=?, fingerprint=?, "
            "batch_id=? WHERE id=?",
            (item.end_line, json.dumps(list(item.heading_path), ensure_ascii=False), item.content,
             json.dumps(list(item.tags), ensure_ascii=False), item.fingerprint, self.batch.id,
             chunk_id))
        # vec0 rejects INSERT OR REPLACE and ON CONFLICT: update, then insert if nothing changed
        # (the vector was removed by a reset).
        updated = self.conn.execute(
            f"UPDATE {store.VECTOR_TABLE} SET embedding=? WHERE chunk_id=?", (item.vector, chunk_id))
        if updated.rowcount == 0:
            self.conn.execute(f"INSERT INTO {store.VECTOR_TABLE} (chunk_id, embedding) VALUES (?, ?)",
                              (chunk_id, item.vector))

    def _file(self, item: FileSnapshot) -> None:
        file_key = (item.namespace, item.source_file)
        row = self.conn.execute("SELECT mtime_ns FROM files WHERE namespace=? AND source_file=?",
                                file_key).fetchone()
        if row is not None and item.mtime_ns < row[0]:
            # An older read of the file than the one committed: applying it would roll it back.
            self.stale_files.add(file_key)
            self.counts.skipped += 1
            return
        self.stale_files.discard(file_key)
        keep = set(item.keys)
        doomed = [chunk_id for chunk_id, content_hash, start_line in self.conn.execute(
            "SELECT id, content_hash, start_line FROM chunks WHERE namespace=? AND source_file=?",
            file_key) if (content_hash, start_line) not in keep]
        self._delete_chunks(doomed)
        if item.keys:
            self.conn.execute(
                "INSERT INTO files (namespace, source_file, digest, size, mtime_ns, chunk_count, "
                "batch_id, committed_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (namespace, "
                "source_file) DO UPDATE SET digest=excluded.digest, size=excluded.size, "
                "mtime_ns=excluded.mtime_ns, chunk_count=excluded.chunk_count, "
                "batch_id=excluded.batch_id, committed_at=excluded.committed_at",
                (*file_key, item.digest, item.size, item.mtime_ns, len(item.keys), self.batch.id,
                 time.time()))
        else:
            self.conn.execute("DELETE FROM files WHERE namespace=? AND source_file=?", file_key)
        self.counts.committed += 1

    def _delete_chunks(self, chunk_ids: list[int]) -> None:
        if not chunk_ids:
            return
        rows = [(chunk_id,) for chunk_id in chunk_ids]
        if store.has_vector_table(self.conn):
            self.conn.executemany(f"DELETE FROM {store.VECTOR_TABLE} WHERE chunk_id=?", rows)
        self.conn.executemany("DELETE FROM chunks WHERE id=?", rows)

    def _reset(self, item: Reset) -> None:
        model = ModelInfo(item.name, item.dim, item.fingerprint)
        if self.active is not None and self.active.fingerprint == model.fingerprint:
            self.counts.committed += 1
            return
        if self.active is None or self.active.dim != model.dim or not store.has_vector_table(self.conn):
            store.create_vector_table(self.conn, model.dim)
        else:
            self.conn.execute(
                f"DELETE FROM {store.VECTOR_TABLE} WHERE chunk_id IN (SELECT id FROM chunks "
                "WHERE fingerprint IS NOT NULL AND fingerprint != ?)", (model.fingerprint,))
        # Chunks and their text stay; they lack a vector until `mm index` re-embeds them.
        self.conn.execute("UPDATE chunks SET fingerprint=NULL WHERE fingerprint IS NOT NULL "
                          "AND fingerprint != ?", (model.fingerprint,))
        store.set_active_model(self.conn, model)
        self.active = model
        self.counts.committed += 1


@contextmanager
def committer_session(settings: Settings, lock: CommitterLock | None = None,
                      patience: float = 1.0) -> Iterator[Committer]:
    """Take the committer role for `settings.home`: lock, open, put in-flight messages back.

    Raises CommitterBusy (naming the holder's pid) if another committer is alive.
    """
    ensure_home(settings.home)
    own_lock = lock is None
    lock = lock or CommitterLock(settings.lock_path)
    if not lock.held:
        lock.acquire(patience)
    queue: HueyQueue | None = None
    conn: store.Connection | None = None
    try:
        conn = store.open_for_write(settings.index_path)
        queue = open_queue(settings.queue_path, durable=False)
        queue.recover()
        yield Committer(conn, queue)
    finally:
        if queue is not None:
            # A delivery interrupted before its commit goes back to its place now, not at the
            # next start, so `mm queue status` never shows a stuck in-flight message.
            queue.recover()
            queue.close()
        if conn is not None:
            conn.close()
        if own_lock:
            lock.release()
