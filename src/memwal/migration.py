"""A model swap without downtime: `mm embedding-reset --mode migrate`.

The active model keeps serving search while the migrator re-embeds every chunk, from the text
stored in the index (so notes added through the API are included, files or not), with the
configured model, and sends the vectors through the queue as shadow vectors (`vector` items).
Producers that write meanwhile send both vectors (`Upsert.shadow`); whatever they add without one
is found by the migrator's next pass. When the configured model covers every chunk, one queued
`cutover` item switches the index to it in queue order, in one transaction: from that commit on
the active model is the new one, the old vectors are gone, and a late record of the old model is
dead-lettered like after any reset. A cutover that finds a chunk without a shadow vector (written
between the migrator's last look and the cutover) is skipped, and the migrator catches up and
asks again: no chunk ends without a vector of the new model.

Everything the migration has done lives in the index (the shadow vectors) and the queue, so a
migrator killed at any point resumes where the committed state is when it is run again; what it
had queued but not seen committed is embedded again at most once (the committer keeps the last).
`--mode cancel` drops the shadow vectors. The derived vector index of the new model is built from
the shadow vectors before the cutover (memwal.vectorindex.writes.build_next), so search keeps its
approximate leg across the switch.

Where things run: this module reads the index (read-only) and writes only to the queue, like any
producer; the committer applies the items (memwal.committer). A migration needs the index on this
machine: with a queue shared across machines, run it on the committer's.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from memwal import faults, store
from memwal.config import Settings, ensure_home
from memwal.embedders import Embedder, configured_embedder
from memwal.errors import MigrationError
from memwal.fingerprint import ModelInfo
from memwal.producer import BatchWriter, endpoint_map
from memwal.records import (
    Batch, CancelMigration, ChunkKey, ChunkVector, Cutover, Migrate, Producer, encode_batch,
)
from memwal.results import JsonResult
from memwal.store import reads
from memwal.vectors import to_bytes
from memwal.worker import Host, hosting
from memwal.migrationstatus import progress as _progress
from memwal.progress import Rate

PAGE = 2048  # chunks read from the index at a time


@dataclass
class MigrationReport:
    """What one run of the migrator did."""

    target: dict[str, Any] | None = None
    embedded: int = 0
    batches: int = 0
    passes: int = 0
    cutover: bool = False
    already: bool = False  # the index was on the configured model already
    seconds: float = 0.0
    covered: int = 0
    total: int = 0
    stopped: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"target": self.target, "embedded": self.embedded, "batches": self.batches,
                "passes": self.passes, "cut_over": self.cutover, "already_active": self.already,
                "seconds": round(self.seconds, 3), "covered": self.covered, "total": self.total,
                "stopped": self.stopped,
                "chunks_per_second": round(self.embedded / self.seconds, 1) if self.seconds else None}


def _enqueue(host: Host, item: Any, command: str) -> str:
    """Enqueue one control item (None: an empty batch, a barrier); return the batch id."""
    batch = Batch(items=() if item is None else (item,), producer=Producer.current(command))
    host.queue.put(encode_batch(batch))
    return batch.id


@contextmanager
def _local_index(settings: Settings, host: Host) -> Iterator[store.Connection]:
    """A read connection to this home's index. With a queue shared across machines that is the
    index of the committer on this machine (`mm queue worker` here); a home without one is a
    producer's, and cannot migrate."""
    if host.committed.shared:
        conn = store.open_for_read(settings.index_path)
        if conn is None:
            raise MigrationError(
                "a migration reads the index, and this home has none: its queue is shared with "
                "a committer on another machine.",
                "Run `mm embedding-reset --mode migrate` on the machine of `mm queue worker`.")
        try:
            yield _with_model(conn)
        finally:
            conn.close()
        return
    yield _with_model(host.committed.conn())


def _with_model(conn: store.Connection | None) -> store.Connection:
    if conn is None or store.active_model(conn) is None:
        raise MigrationError("the index holds no model yet: there is nothing to migrate.",
                             "Run `mm index PATH`: it uses the configured model from the start.")
    return conn


def start(settings: Settings, host: Host, conn: store.Connection, embedder: Embedder,
          command: str) -> ModelInfo | None:
    """Enqueue the start of a migration to `embedder`'s model unless the index has it already
    (active: None is returned) or migrates to it; wait until it is committed."""
    active = store.active_model(conn)
    assert active is not None
    target = embedder.info
    if active.fingerprint == target.fingerprint:
        return None
    state = store.migration(conn)
    if state is None or state.target.fingerprint != target.fingerprint:
        endpoint = endpoint_map(embedder).get(target.fingerprint)
        batch_id = _enqueue(host, Migrate(target.fingerprint, target.name, target.dim, endpoint),
                            command)
        host.take_role()
        host.wait([batch_id])
        state = store.migration(conn)
        if state is None or state.target.fingerprint != target.fingerprint:
            active = store.active_model(conn)
            if active is not None and active.fingerprint == target.fingerprint:
                return None
            raise MigrationError("the committer did not start the migration (a reset or another "
                                 "migration came first).", "See `mm embedding-reset`.")
    return target


def migrate_model(settings: Settings, *, on_progress: Callable[[dict[str, Any]], None] | None = None,
                  stop: threading.Event | None = None,
                  command: str = "mm embedding-reset --mode migrate",
                  embedder: Embedder | None = None, nice: int = 0) -> MigrationReport:
    """Migrate the index to the configured model without downtime; return when it is the active
    model (or `stop` is set: the migration stays, resumable). `on_progress(status)` is called
    after every batch with covered, total, rate and ETA. `nice` lowers this whole process's
    CPU priority first (for a process of its own, as `mm embedding-reset --mode migrate`
    passes `migration.nice`): the model's threads then yield to searches on the machine."""
    ensure_home(settings.home)
    if nice > 0:
        os.nice(nice)
    embedder = embedder or configured_embedder(settings)
    stop = stop or threading.Event()
    report = MigrationReport()
    started = time.monotonic()
    rate = Rate()
    with hosting(settings) as host, _local_index(settings, host) as conn:
        target = start(settings, host, conn, embedder, command)
        if target is None:
            report.already = True
            report.target = embedder.info.as_dict()
            return report
        report.target = target.as_dict()
        host.take_role()
        # What an earlier run queued and no committer has committed yet (it was stopped or
        # killed): wait for it once, behind an empty batch (the queue is FIFO), rather than
        # embed those chunks again.
        host.wait([_enqueue(host, None, command)])
        writer = BatchWriter(host.queue, Producer.current(command),
                             settings["queue.batch_records"],
                             endpoints=endpoint_map(embedder))
        limit = settings["queue.batch_records"]

        def progress() -> None:
            covered, total = reads.migration_coverage(conn)
            report.covered, report.total = covered, total
            rate.add(covered)
            if on_progress:
                on_progress(_progress(covered, total, rate.per_second()))

        while not stop.is_set():
            report.passes += 1
            sent = _one_pass(conn, embedder, target, writer, limit, stop, report, progress)
            if stop.is_set():
                break
            if sent:
                # Committed: the next pass sees what still lacks a shadow vector.
                counts = host.wait(writer.batch_ids)
                writer.batch_ids.clear()
                if counts is not None and counts.dead_lettered:
                    raise MigrationError(
                        f"{counts.dead_lettered} shadow vectors of {target.name} were "
                        "dead-lettered (the migration stays; nothing else changed).",
                        "See `mm queue dead-letters list --json` for why, then run the "
                        "migration again.")
                progress()
                continue
            covered, total = reads.migration_coverage(conn)
            if covered < total:
                continue  # chunks added by another producer, committed meanwhile
            _build_next_graph(settings, conn, target)
            faults.pause("migration-before-cutover")
            counts = host.wait([_enqueue(host, Cutover(target.fingerprint), command)])
            if counts is not None and counts.committed:
                report.cutover = True
                faults.pause("migration-cut-over")
                _install_next_graph(settings)
                break
            state = store.migration(conn)
            if state is None or state.target.fingerprint != target.fingerprint:
                raise MigrationError("the migration was cancelled or replaced while it ran.",
                                     "See `mm embedding-reset`.")
        if stop.is_set() and writer.batch_ids:
            host.wait(writer.batch_ids)  # what was embedded is kept: committed before we leave
        report.stopped = stop.is_set() and not report.cutover
        report.seconds = time.monotonic() - started
        if not report.cutover:
            report.covered, report.total = reads.migration_coverage(conn)
        else:
            report.covered = report.total = reads.index_counts(conn).chunks
    return report


def _one_pass(conn: store.Connection, embedder: Embedder, target: ModelInfo, writer: BatchWriter,
              limit: int, stop: threading.Event, report: MigrationReport,
              progress: Callable[[], None]) -> int:
    """Embed and enqueue a shadow vector for every chunk that lacks one; return how many."""
    after, sent = 0, 0
    while not stop.is_set():
        rows = reads.chunks_lacking_shadow(conn, after, PAGE)
        if not rows:
            break
        after = rows[-1].id
        for start_at in range(0, len(rows), limit):
            if stop.is_set():
                break
            part = rows[start_at:start_at + limit]
            vectors = embedder.embed([row.content for row in part])
            for row, vector in zip(part, vectors):
                writer.add_group([ChunkVector(
                    ChunkKey(row.namespace, row.source_file, row.content_hash, row.start_line),
                    target.fingerprint, target.dim, to_bytes(vector))])
            writer.flush()
            faults.pause("migration-batch")
            report.batches += 1
            report.embedded += len(part)
            sent += len(part)
            progress()
    writer.flush()
    return sent


def _build_next_graph(settings: Settings, conn: store.Connection, target: ModelInfo) -> None:
    from memwal.vectorindex.writes import build_next

    build_next(settings, target)


def _install_next_graph(settings: Settings) -> None:
    from memwal.vectorindex.writes import install_next

    install_next(settings)


def cancel_migration(settings: Settings, command: str = "mm embedding-reset --mode cancel") -> JsonResult:
    """Drop the migration in progress (its shadow vectors); the active model stays."""
    ensure_home(settings.home)
    with hosting(settings) as host, _local_index(settings, host) as conn:
        state = store.migration(conn)
        if state is None:
            return JsonResult({"cancelled": False, "why": "no migration is in progress"})
        batch_id = _enqueue(host, CancelMigration(state.target.fingerprint), command)
        counts = host.wait([batch_id])
        return JsonResult({"cancelled": bool(counts and counts.committed),
                           "target": state.target.as_dict()})


class BackgroundMigration:
    """A migration run by a long-lived server (MCP `mem_embedding_reset` mode=migrate, the web
    page's button) in a thread of its own: started once, stopped (resumable) when the server
    stops. `state()` is what the tools and the page show."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.progress: dict[str, Any] | None = None
        self.report: MigrationReport | None = None
        self.error: str | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> dict[str, Any]:
        """Start the migration to the configured model unless one runs in this process; checks
        what can be checked first (an index with a model, a local one) so the caller hears why not."""
        if not self.running:
            embedder = configured_embedder(self.settings)
            with hosting(self.settings) as host, _local_index(self.settings, host) as conn:
                active = store.active_model(conn)
                if active is not None and active.fingerprint == embedder.fingerprint:
                    return {**self.state(), "already_active": True}
            self.stop.clear()
            self.error, self.report, self.progress = None, None, None
            self.thread = threading.Thread(target=self._run, args=(embedder,),
                                           name="memwal-migration", daemon=True)
            self.thread.start()
        return self.state()

    def _run(self, embedder: Embedder) -> None:
        try:
            self.report = migrate_model(self.settings, embedder=embedder, stop=self.stop,
                                        on_progress=self._progressed,
                                        command="mm serve: migration")
        except Exception as exc:  # shown by state(); the migration stays, resumable
            from memwal.errors import as_memwal_error

            error = as_memwal_error(exc)
            self.error = str(error) if error is not None else f"{type(exc).__name__}: {exc}"

    def _progressed(self, status: dict[str, Any]) -> None:
        self.progress = status

    def state(self) -> dict[str, Any]:
        return {"running": self.running, "progress": self.progress,
                "report": self.report.as_json() if self.report else None, "error": self.error}

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
