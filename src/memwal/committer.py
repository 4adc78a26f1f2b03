"""The one serialized committer: applies queued batches to the index, in order, exactly once.

Per batch (docs/architecture.md): skip if its id is in the ledger; else apply the items in order —
each upsert checked against the active model *as of that item*, failures dead-lettered with the
whole item — then the batch's ledger row, in the same transaction; commit, and only then
acknowledge the queue message. The batches already waiting when the committer takes its next
work (a group, up to `queue.commit_group`) share one transaction and one acknowledgement. A crash
anywhere leaves the messages in flight; the next committer puts them back at their positions and
the ledger makes the redelivery harmless.

This module decides what happens to each item; `store.writes` runs the statements. Taking the
committer role (the lock, the session, the loops a process runs) is `memwal.worker`.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

from memwal import faults, store
from memwal.errors import QueueUnavailable
from memwal.fingerprint import ModelInfo, name_of
from memwal.queue import Delivery, WriteAheadQueue
from memwal.queuewatch import QueueWatch
from memwal.records import (
    CancelMigration, ChunkKey, ChunkVector, Cutover, DecodedBatch, FileSnapshot, MalformedItem,
    Migrate, Reset, UndecodableBatch, Upsert, decode_batch, describe_item, pack_item, parse_item,
)
from memwal.store import reads
from memwal.store import writes
from memwal.store.writes import DeadLetter, LedgerEntry
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
    # (namespace, source file) of every file the batch changed: what a publisher republishes.
    touched: frozenset[tuple[str, str]] = frozenset()


@dataclass
class DrainStats:
    """Totals over the batches one drain applied."""

    batches: int = 0
    duplicates: int = 0
    committed: int = 0
    dead_lettered: int = 0
    skipped: int = 0

    def as_json(self) -> dict[str, int]:
        return asdict(self)

    def add(self, outcome: BatchOutcome) -> None:
        if outcome.duplicate:
            self.duplicates += 1
            return
        self.batches += 1
        self.committed += outcome.committed
        self.dead_lettered += outcome.dead_lettered
        self.skipped += outcome.skipped


@dataclass
class _Counts:
    committed: int = 0
    dead_lettered: int = 0
    skipped: int = 0


class Committer:
    """Applies deliveries to an index connection it alone writes. Hold the lock before using it.

    `current` is the delivery being applied (None between batches), for whoever must report
    where a committer stopped; `on_commit` is called with the outcomes of every acknowledged
    group (the index then reflects all of them: anything published from it is published once per
    group, so a crash between two batches of a group cannot leave half of it unpublished). A drain
    takes up to `group` waiting batches (at most `group_bytes` of them) and commits them in one
    index transaction: each keeps its own ledger row, so the group is redelivered and skipped
    as a whole after a crash, and a backlog pays one COMMIT and one acknowledge per group
    instead of one per batch.

    `watch` compares the queue with what the committer saw of it before each take, so a queue
    re-created under it (its file deleted, its Redis keys lost) is an incident, never silence
    (memwal.queuewatch); pass one with an `on_incident` to keep them.
    """

    def __init__(self, conn: store.Connection, queue: WriteAheadQueue,
                 on_commit: Callable[[list[BatchOutcome]], None] | None = None,
                 group: int = 1, group_bytes: int = 0, watch: QueueWatch | None = None) -> None:
        self.conn = conn
        self.queue = queue
        self.watch = watch or QueueWatch(conn, queue)
        self.current: Delivery | None = None
        self.on_commit = on_commit
        self.group = max(1, group)
        self.group_bytes = group_bytes
        self.on_idle: Callable[[], None] | None = None  # called each time the queue is found empty

    # -- one group of batches ----------------------------------------------------------------

    def apply(self, delivery: Delivery) -> BatchOutcome:
        """Apply one delivery in one transaction, then acknowledge it."""
        return self.apply_group([delivery])[0]

    def apply_group(self, deliveries: Sequence[Delivery]) -> list[BatchOutcome]:
        """Apply deliveries in queue order in one transaction, then acknowledge them together."""
        outcomes = self._commit_group(deliveries)
        faults.point("group-committed")
        self.queue.acknowledge_many([delivery.position for delivery in deliveries])
        self.current = None
        if self.on_commit:
            self.on_commit(outcomes)
        return outcomes

    def _commit_group(self, deliveries: Sequence[Delivery]) -> list[BatchOutcome]:
        if len(deliveries) == 1:
            return [self._commit_one(deliveries[0])]
        try:
            with writes.transaction(self.conn):
                outcomes = [self._apply_delivery(delivery, careful=False) for delivery in deliveries]
                faults.point("group-before-commit")
                return outcomes
        except Exception:
            # Rolled back whole. A batch failed in a way its checks did not foresee, or the
            # environment did: commit the group one batch at a time, so a poison batch is
            # applied item by item and a lasting error is recorded against the batch it hit.
            return [self._commit_one(delivery) for delivery in deliveries]

    def _commit_one(self, delivery: Delivery) -> BatchOutcome:
        try:
            with writes.transaction(self.conn):
                return self._apply_delivery(delivery, careful=False)
        except DATA_ERRORS:
            # An item failed in a way the checks did not foresee; the transaction was rolled
            # back. Apply the batch again item by item, each in a savepoint, so that only the
            # failing items become dead letters and the queue never stalls on a poison batch.
            # (Not the fast path: a savepoint per item makes FTS5 flush per item.)
            with writes.transaction(self.conn):
                return self._apply_delivery(delivery, careful=True)

    def _apply_delivery(self, delivery: Delivery, careful: bool) -> BatchOutcome:
        """One batch's items and ledger row, inside the caller's transaction."""
        self.current = delivery
        self.watch.committed(delivery.position)  # the mark moves in this same transaction
        try:
            batch = decode_batch(delivery.data)
        except UndecodableBatch as exc:
            return self._apply_undecodable(delivery, exc)
        return self._apply_items(delivery, batch, careful)

    def _apply_undecodable(self, delivery: Delivery, exc: UndecodableBatch) -> BatchOutcome:
        # Without a readable id, the queue position is the only identity such a batch has: within
        # the queue's epoch, as a re-created queue hands out the same positions again.
        ledger_id = self.watch.ledger_id(delivery.position)
        if writes.in_ledger(self.conn, ledger_id):
            return BatchOutcome(ledger_id, delivery.position, 1, 0, 1, 0, duplicate=True)
        writes.add_dead_letter(self.conn, DeadLetter(
            reason=exc.reason, detail=exc.detail, position=delivery.position, raw=delivery.data))
        writes.add_ledger_entry(self.conn, LedgerEntry(ledger_id, delivery.position, {}, None,
                                                       1, 0, 1, 0))
        return BatchOutcome(ledger_id, delivery.position, 1, 0, 1, 0)

    def _apply_items(self, delivery: Delivery, batch: DecodedBatch, careful: bool) -> BatchOutcome:
        if writes.in_ledger(self.conn, batch.id):
            return BatchOutcome(batch.id, delivery.position, len(batch.raw_items), 0, 0, 0,
                                duplicate=True)
        counts = _Counts()
        seq = writes.next_seq(self.conn)
        applier = _ItemApplier(self.conn, batch, delivery.position, counts, seq)
        # A dead letter is replayed once: when two replays race, the first one the committer
        # applies claims it, and the other's copy of the item is skipped (unless --again).
        claimed = set() if batch.replay_again else writes.replayed_letters(self.conn, batch.replays)
        for index, raw in enumerate(batch.raw_items):
            if batch.replays and batch.replays[index] in claimed:
                counts.skipped += 1
            elif careful:
                applier.apply_guarded(index, raw)
            else:
                applier.apply(index, raw)
        applier.flush()
        if batch.endpoints or applier.models_changed:
            keep = {model.fingerprint for model in (applier.active, applier.migration_target)
                    if model is not None}
            writes.record_endpoints(self.conn, {**batch.endpoints, **applier.endpoints}, keep)
        if batch.replays:
            # The audit trail of a replay is written by the committer, in the same
            # transaction as the replayed items: never by the replaying process.
            writes.mark_replayed(self.conn, batch.id,
                                 [letter for letter in batch.replays if letter not in claimed])
        if batch.purge:
            # A purge is a control entry like a reset: applied here, in queue order, so it works
            # while any committer runs. Each id counts as one received entry: committed if it was
            # deleted, skipped if it was already gone (purged meanwhile), so the ledger row
            # tells the purging process how many it deleted.
            deleted = writes.purge_dead_letters(self.conn, batch.purge)
            counts.committed += deleted
            counts.skipped += len(batch.purge) - deleted
        received = len(batch.raw_items) + len(batch.purge)
        writes.add_ledger_entry(self.conn, LedgerEntry(
            batch.id, delivery.position, batch.producer, batch.enqueued_at,
            received, counts.committed, counts.dead_lettered, counts.skipped, seq))
        return BatchOutcome(batch.id, delivery.position, received, counts.committed,
                            counts.dead_lettered, counts.skipped,
                            touched=frozenset(applier.touched))

    # -- loops -------------------------------------------------------------------------------

    def drain(self, should_stop: Callable[[], bool] = lambda: False,
              on_batch: Callable[[BatchOutcome], None] | None = None,
              stats: DrainStats | None = None) -> DrainStats:
        """Apply batches until the queue is empty or `should_stop()` says so (checked per group).

        Totals are added to `stats` if given, else to a new DrainStats.
        """
        stats = DrainStats() if stats is None else stats
        while not should_stop():
            self.watch.check()  # a queue re-created since the last take is an incident
            deliveries = self.queue.take_many(self.group, self.group_bytes)
            if not deliveries:
                self.watch.flush()  # idle: remember how far the queue's positions have gone
                if self.on_idle:
                    self.on_idle()
                break
            for outcome in self.apply_group(deliveries):
                stats.add(outcome)
                if on_batch:
                    on_batch(outcome)
        return stats

    def run(self, stop: threading.Event, poll_interval: float,
            on_batch: Callable[[BatchOutcome], None] | None = None,
            on_wait: Callable[[str], None] | None = None) -> DrainStats:
        """Apply batches as they arrive until `stop` is set; idle waits are `poll_interval` long.

        A queue whose server stops answering (a Redis restart) is waited for, not given up on:
        the loop retries with backoff. After any such loss, the first thing it does once the
        server answers, before it takes anything, is put back what it held in flight (a batch
        committed but not acknowledged is redelivered, and skipped by the ledger; one whose
        lease was taken but never reached us is delivered at its place). Until that recover
        succeeds nothing is taken, so nothing is committed ahead of a message we held.
        """
        total = DrainStats()
        backoff = poll_interval
        must_recover = False  # set by every lost connection, cleared only by a recover that worked
        while not stop.is_set():
            try:
                if must_recover:
                    self.queue.recover()
                    must_recover = False
                self.drain(stop.is_set, on_batch, total)
                backoff = poll_interval
            except QueueUnavailable as exc:
                must_recover = True
                self.current = None
                if on_wait:
                    on_wait(f"{exc.message} Retrying in {backoff:.1f} s.")
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if not stop.is_set():
                stop.wait(poll_interval)
        return total


class _ItemApplier:
    """Decides what each item of one batch does, inside the batch's transaction."""

    def __init__(self, conn: store.Connection, batch: DecodedBatch, position: int,
                 counts: _Counts, seq: int) -> None:
        self.conn = conn
        self.batch = batch
        self.position = position
        self.seq = seq
        self.counts = counts
        self.active = store.active_model(conn)
        migration = store.migration(conn)
        self.migration_target = migration.target if migration else None
        self.models_changed = False  # a reset, migration or cutover was applied
        self.endpoints: dict[str, dict[str, object]] = {}  # from `migrate` items
        self.stale_files: set[tuple[str, str]] = set()
        self.touched: set[tuple[str, str]] = set()
        # Checked upserts not yet written: a run of them is written with a few executemany
        # calls. Flushed before any other item, so no item sees a state per-item application
        # would not have left. A repeated key keeps its first place and its last version.
        self.pending: dict[ChunkKey, Upsert] = {}
        # Shadow vectors (of a migration's model) of pending upserts, and of stored chunks.
        self.pending_shadow: dict[ChunkKey, bytes] = {}
        self.shadow_rows: dict[int, bytes] = {}

    def apply_guarded(self, index: int, raw: object) -> None:
        """`apply` inside a savepoint: an item that fails to apply becomes an `apply_error`."""
        counts = self.counts
        before = (counts.committed, counts.dead_lettered, counts.skipped, self.active,
                  self.migration_target, set(self.stale_files))
        with writes.savepoint(self.conn, DATA_ERRORS) as caught:
            self.apply(index, raw)
            self.flush()
        if caught:
            (counts.committed, counts.dead_lettered, counts.skipped, self.active,
             self.migration_target, self.stale_files) = before
            self.pending, self.pending_shadow, self.shadow_rows = {}, {}, {}
            exc = caught[0]
            self._dead_letter(index, raw, "apply_error", f"{type(exc).__name__}: {exc}")

    def apply(self, index: int, raw: object) -> None:
        try:
            item = parse_item(raw)
        except MalformedItem as exc:
            self._dead_letter(index, raw, "malformed", str(exc))
            return
        if isinstance(item, Upsert):
            self._check_upsert(index, raw, item)
            return
        if isinstance(item, ChunkVector):
            self._vector(index, raw, item)
            return
        self.flush()
        if isinstance(item, FileSnapshot):
            self._file(item)
        elif isinstance(item, Reset):
            self._reset(item)
        elif isinstance(item, Migrate):
            self._migrate(item)
        elif isinstance(item, Cutover):
            self._cutover(item)
        else:
            self._cancel(item)

    def _dead_letter(self, index: int, raw: object, reason: str, detail: str) -> None:
        writes.add_dead_letter(self.conn, DeadLetter(
            reason=reason, detail=detail, position=self.position, batch_id=self.batch.id,
            item_index=index, enqueued_at=self.batch.enqueued_at,
            active_fingerprint=self.active.fingerprint if self.active else None,
            described=describe_item(raw), item=pack_item(raw),
        ))
        self.counts.dead_lettered += 1

    def _check_upsert(self, index: int, raw: object, item: Upsert) -> None:
        key = item.key
        if (key.namespace, key.source_file) in self.stale_files:
            self.counts.skipped += 1
            return
        if self.active is None:
            self.active = ModelInfo(name_of(item.fingerprint), item.dim, item.fingerprint)
            writes.adopt_model(self.conn, self.active)
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
        shadow, target = item.shadow, self.migration_target
        if shadow is not None and target is not None and shadow.fingerprint == target.fingerprint:
            try:
                check_vector(shadow.vector, shadow.dim, target.dim)
                self.pending_shadow[key] = shadow.vector
            except VectorError:
                pass  # an optional extra: the migrator re-embeds the chunk's text instead
        self.touched.add((key.namespace, key.source_file))
        self.counts.committed += 1

    def _vector(self, index: int, raw: object, item: ChunkVector) -> None:
        """A vector for a stored chunk: a shadow vector of the migration's model, or (a
        re-embedding) the chunk's vector of the active model; of any other model, skipped."""
        if item.key in self.pending:
            self.flush()
        target, active = self.migration_target, self.active
        model = target if target is not None and item.fingerprint == target.fingerprint else (
            active if active is not None and item.fingerprint == active.fingerprint else None)
        if model is None:
            # Of a migration cancelled or replaced since it was queued: it carries nothing the
            # index does not hold (the chunk's text is there), so it is skipped, not kept.
            self.counts.skipped += 1
            return
        try:
            check_vector(item.vector, item.dim, model.dim)
        except VectorError as exc:
            self._dead_letter(index, raw, exc.reason, str(exc))
            return
        chunk_id = writes.chunk_id(self.conn, item.key)
        if chunk_id is None:
            self.counts.skipped += 1  # deleted since the migrator read it
        elif model is target:
            self.shadow_rows[chunk_id] = item.vector
            self.counts.committed += 1
        else:
            writes.set_vector(self.conn, chunk_id, item.vector, model.fingerprint)
            self.counts.committed += 1

    def flush(self) -> None:
        """Write the pending upserts (existing keys row by row, new keys in bulk), then the
        pending shadow vectors."""
        if self.pending:
            items, self.pending = list(self.pending.values()), {}
            existing = writes.chunk_ids(self.conn, (item.key for item in items))
            for item in items:
                if item.key in existing:
                    writes.update_chunk(self.conn, existing[item.key], item, self.batch.id, self.seq)
            writes.insert_chunks(self.conn, [item for item in items if item.key not in existing],
                                 self.batch.id, self.seq)
        if self.pending_shadow:
            shadow, self.pending_shadow = self.pending_shadow, {}
            ids = writes.chunk_ids(self.conn, shadow)
            self.shadow_rows.update({ids[key]: vector for key, vector in shadow.items()
                                     if key in ids})
        if self.shadow_rows:
            rows, self.shadow_rows = self.shadow_rows, {}
            writes.put_shadow_vectors(self.conn, sorted(rows.items()), self.seq)

    def _file(self, item: FileSnapshot) -> None:
        file_key = (item.namespace, item.source_file)
        if _is_stale(item, writes.committed_snapshot(self.conn, *file_key)):
            self.stale_files.add(file_key)
            self.counts.skipped += 1
            return
        self.stale_files.discard(file_key)
        keep = set(item.keys)
        writes.delete_chunks(self.conn, [
            chunk_id for chunk_id, content_hash, start_line in writes.file_chunks(self.conn, *file_key)
            if (content_hash, start_line) not in keep])
        writes.record_file(self.conn, item, self.batch.id)
        self.touched.add(file_key)
        self.counts.committed += 1

    def _reset(self, item: Reset) -> None:
        model = ModelInfo(item.name, item.dim, item.fingerprint)
        if self.active is None or self.active.fingerprint != model.fingerprint:
            writes.switch_model(self.conn, model, self.active)
            self.active = model
            self.migration_target = None  # a reset ends any migration
            self.models_changed = True
        self.counts.committed += 1

    def _migrate(self, item: Migrate) -> None:
        """Start a migration; skipped when there is nothing to migrate (no model yet, the model
        is the active one) or it runs already (a resumed migration enqueues it again)."""
        model = ModelInfo(item.name, item.dim, item.fingerprint)
        if item.endpoint:
            self.endpoints[item.fingerprint] = dict(item.endpoint)
        if (self.active is None or self.active.fingerprint == model.fingerprint
                or (self.migration_target is not None
                    and self.migration_target.fingerprint == model.fingerprint)):
            self.counts.skipped += 1
            self.models_changed = True
            return
        writes.start_migration(self.conn, model, item.endpoint, self.seq)
        self.migration_target = model
        self.models_changed = True
        self.counts.committed += 1

    def _cutover(self, item: Cutover) -> None:
        """Switch to the migration's model if it covers every chunk; else skipped (the migrator
        catches up with what was written since it looked, and asks again)."""
        target = self.migration_target
        if target is None or target.fingerprint != item.fingerprint:
            self.counts.skipped += 1
            return
        covered, total = reads.migration_coverage(self.conn)
        if covered < total:
            self.counts.skipped += 1
            return
        writes.cut_over(self.conn, target, self.active)
        self.active, self.migration_target = target, None
        self.models_changed = True
        self.counts.committed += 1

    def _cancel(self, item: CancelMigration) -> None:
        target = self.migration_target
        if target is None or target.fingerprint != item.fingerprint:
            self.counts.skipped += 1
            return
        writes.end_migration(self.conn)
        self.migration_target = None
        self.models_changed = True
        self.counts.committed += 1


def _is_stale(item: FileSnapshot, committed: tuple[int, str] | None) -> bool:
    """Whether applying this snapshot would roll the file back to an older read of it.

    The queue decides, not the file's clock: a snapshot whose producer diffed against the
    snapshot committed now (its `base`) succeeds it, even with an older mtime (a restored
    backup, a clock set back, a file copied from another machine). Only when another snapshot
    was committed after the producer looked (two producers racing on one file), or the producer
    did not say what it looked at, does the older read by mtime lose (docs/design.md).
    """
    if committed is None:
        return False
    mtime_ns, batch_id = committed
    if item.base is not None and item.base == batch_id:
        return False
    return item.mtime_ns < mtime_ns
