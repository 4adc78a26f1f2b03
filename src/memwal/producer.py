"""The producer: discover → chunk → diff (read-only) → embed → enqueue. It never writes the index.

`index_paths` is what `mm index` runs; `index_paths_async` is the same for servers that must not
block their event loop. With `wait=True` it returns once its own batches are committed, taking the
committer role itself (in a background thread, so committing overlaps embedding) when no
committer is alive.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from memwal import store
from memwal.chunking import Chunk, chunk_text, is_markdown
from memwal.committer import committer_session
from memwal.config import Settings, ensure_home
from memwal.discover import FoundFile, Skipped, discover, load_text
from memwal.embedders import Embedder, configured_embedder
from memwal.fingerprint import ModelInfo
from memwal.lock import CommitterLock
from memwal.queue import HueyQueue, open_queue
from memwal.records import (
    Batch, ChunkKey, FileSnapshot, Item, Producer, Reset, UndecodableBatch, Upsert, decode_batch,
    encode_batch, parse_item,
)
from memwal.vectors import to_bytes

# Failures a user must hear about (exit 1); the other skip reasons are policy, not failures.
FAILURE_REASONS = frozenset({"unreadable"})
# Texts gathered across files before one call into the embedder.
EMBED_GROUP = 256


class ModelMismatch(Exception):
    """The configured model is not the one the index (or its queued reset) uses."""


@dataclass
class IndexReport:
    """What one `mm index` run did; `as_json` is the stable `--json` shape."""

    files: int = 0
    new: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    replaced_utf8: list[str] = field(default_factory=list)
    chunks_embedded: int = 0
    records_enqueued: int = 0
    batch_ids: list[str] = field(default_factory=list)
    committed: int | None = None
    dead_lettered: int | None = None

    @property
    def failed(self) -> list[Skipped]:
        return [s for s in self.skipped if s.reason in FAILURE_REASONS]

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "files": self.files, "new": self.new, "unchanged": self.unchanged,
            "deleted": self.deleted, "skipped": len(self.skipped),
            "records_enqueued": self.records_enqueued, "batches": len(self.batch_ids),
        }
        if self.committed is not None:
            out["committed"] = self.committed
            out["dead_lettered"] = self.dead_lettered
        out["chunks_embedded"] = self.chunks_embedded
        out["skipped_files"] = [{"path": s.path, "reason": s.reason, "detail": s.detail}
                                for s in self.skipped]
        out["replaced_invalid_utf8"] = self.replaced_utf8
        return out


# -- what is committed ---------------------------------------------------------------------


@dataclass(frozen=True)
class CommittedFile:
    digest: str
    size: int
    mtime_ns: int
    chunk_count: int
    chunks_present: int
    chunks_current: int  # chunks whose vector is of the configured model


class CommittedState:
    """A read-only view of the index, for diffing. Stale by design: the queue may hold more."""

    def __init__(self, conn: store.Connection | None, namespace: str, fingerprint: str) -> None:
        self.conn = conn
        self.namespace = namespace
        self.fingerprint = fingerprint
        self.files: dict[str, CommittedFile] = {}
        if conn is None:
            return
        counts = {
            source: (present, current or 0) for source, present, current in conn.execute(
                "SELECT source_file, count(*), sum(fingerprint IS ?) FROM chunks "
                "WHERE namespace=? GROUP BY source_file", (fingerprint, namespace))
        }
        for source, digest, size, mtime_ns, chunk_count in conn.execute(
                "SELECT source_file, digest, size, mtime_ns, chunk_count FROM files "
                "WHERE namespace=?", (namespace,)):
            present, current = counts.get(source, (0, 0))
            self.files[source] = CommittedFile(digest, size, mtime_ns, chunk_count, present, current)

    def is_unchanged(self, found: FoundFile) -> bool:
        """Size and mtime match, and every chunk is there with a vector of the configured model."""
        committed = self.files.get(found.source_file)
        return (committed is not None and committed.size == found.size
                and committed.mtime_ns == found.mtime_ns
                and committed.chunk_count == committed.chunks_present == committed.chunks_current)

    def current_keys(self, source_file: str) -> set[tuple[str, int]]:
        """Keys of the file's chunks that already have a vector of the configured model."""
        if self.conn is None:
            return set()
        return {(h, s) for h, s in self.conn.execute(
            "SELECT content_hash, start_line FROM chunks WHERE namespace=? AND source_file=? "
            "AND fingerprint IS ?", (self.namespace, source_file, self.fingerprint))}


def _under(path: str, roots: Sequence[Path]) -> bool:
    return any(path == str(root) or path.startswith(str(root).rstrip("/") + "/") for root in roots)


# -- the model gate ------------------------------------------------------------------------


def queued_resets(queue: HueyQueue) -> list[tuple[int, Reset]]:
    """(position, reset) of every reset waiting in the queue, in queue order.

    Reset batches are one small item; larger rows are data and are not decoded.
    """
    found: list[tuple[int, Reset]] = []
    for position, data in queue.pending_rows(max_bytes=4096):
        try:
            batch = decode_batch(data)
        except UndecodableBatch:
            continue
        for raw in batch.raw_items:
            if isinstance(raw, dict) and raw.get("kind") == "reset":
                try:
                    item = parse_item(raw)
                except ValueError:
                    continue
                assert isinstance(item, Reset)
                found.append((position, item))
    return found


def queued_reset(queue: HueyQueue) -> Reset | None:
    """The last reset waiting in the queue, if any."""
    resets = queued_resets(queue)
    return resets[-1][1] if resets else None


def target_model(conn: store.Connection | None, queue: HueyQueue) -> ModelInfo | None:
    """The model the index will have once the queue drains: the last queued reset, else active."""
    reset = queued_reset(queue)
    if reset is not None:
        return ModelInfo(reset.name, reset.dim, reset.fingerprint)
    return store.active_model(conn)


def check_model(embedder: Embedder, target: ModelInfo | None) -> None:
    """Refuse, naming both models and the fix, if the embedder is not the index's model."""
    if target is None or target.fingerprint == embedder.fingerprint:
        return
    raise ModelMismatch(
        f"the index uses {target.name} ({target.fingerprint}, {target.dim}-d) but the configured "
        f"model is {embedder.name} ({embedder.fingerprint}, {embedder.dim}-d). Either configure "
        f"{target.name} again (MM_EMBEDDING_MODEL={target.name} or embedding.model in "
        "config.json), or switch the index to the configured model with "
        "`mm embedding-reset --mode apply-current`.")


# -- batching ------------------------------------------------------------------------------


class BatchWriter:
    """Groups items into batches of at most `limit`, keeping one file's items together if they fit."""

    def __init__(self, queue: HueyQueue, producer: Producer, limit: int,
                 on_enqueued: Callable[[Batch], None] | None = None) -> None:
        self.queue = queue
        self.producer = producer
        self.limit = limit
        self.items: list[Item] = []
        self.batch_ids: list[str] = []
        self.records = 0
        self.on_enqueued = on_enqueued

    def add_group(self, items: Sequence[Item]) -> None:
        if self.items and len(self.items) + len(items) > self.limit:
            self.flush()
        for item in items:
            if len(self.items) >= self.limit:
                self.flush()
            self.items.append(item)

    def flush(self) -> None:
        if not self.items:
            return
        batch = Batch(items=tuple(self.items), producer=self.producer)
        self.queue.put(encode_batch(batch))  # returns only once the batch is durable
        self.batch_ids.append(batch.id)
        self.records += len(batch.items)
        self.items = []
        if self.on_enqueued:
            self.on_enqueued(batch)


def enqueue_items(settings: Settings, items: Iterable[Item], command: str = "memwal") -> list[str]:
    """Enqueue items in batches (library entry point for other producers); return batch ids."""
    ensure_home(settings.home)
    queue = open_queue(settings.queue_path)
    try:
        writer = BatchWriter(queue, Producer.current(command), settings["queue.batch_records"])
        for item in items:
            writer.add_group([item])
        writer.flush()
        return writer.batch_ids
    finally:
        queue.close()


# -- waiting for our batches ---------------------------------------------------------------


class BackgroundCommitter:
    """Runs the committer in a thread of this process while we hold the lock."""

    def __init__(self, settings: Settings, lock: CommitterLock) -> None:
        self.settings = settings
        self.lock = lock
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="memwal-committer", daemon=True)

    def _run(self) -> None:
        try:
            with committer_session(self.settings, self.lock) as committer:
                committer.run(self.stop, poll_interval=0.05)
        except BaseException as exc:  # surfaced by join()
            self.error = exc

    def start(self) -> "BackgroundCommitter":
        self.thread.start()
        return self

    def join(self) -> None:
        self.stop.set()
        self.thread.join()
        if self.error is not None:
            raise self.error


def ledger_counts(settings: Settings, batch_ids: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """(committed, dead_lettered, skipped) of the given batches that are in the ledger."""
    conn = store.open_for_read(settings.index_path)
    if conn is None:
        return {}
    try:
        found: dict[str, tuple[int, int, int]] = {}
        ids = list(batch_ids)
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            for batch_id, committed, dead, skipped in conn.execute(
                    "SELECT batch_id, committed, dead_lettered, skipped FROM ledger WHERE batch_id "
                    f"IN ({','.join('?' * len(part))})", part):
                found[batch_id] = (committed, dead, skipped)
        return found
    finally:
        conn.close()


def wait_committed(settings: Settings, batch_ids: Sequence[str],
                   background: BackgroundCommitter | None = None,
                   lock: CommitterLock | None = None) -> tuple[int, int]:
    """Block until every batch is in the ledger; drain the queue ourselves if nobody else does.

    Returns (committed, dead_lettered) summed over those batches.
    """
    lock = lock or CommitterLock(settings.lock_path)
    remaining = set(batch_ids)
    totals: dict[str, tuple[int, int, int]] = {}
    while remaining:
        if background is None and lock.try_acquire():
            try:
                with committer_session(settings, lock) as committer:
                    committer.drain()
            finally:
                lock.release()
        found = ledger_counts(settings, sorted(remaining))
        totals.update(found)
        remaining -= set(found)
        if background is not None and background.error is not None:
            background.join()
        if remaining:
            time.sleep(0.05)
    return (sum(c for c, _, _ in totals.values()), sum(d for _, d, _ in totals.values()))


# -- the pipeline --------------------------------------------------------------------------


@dataclass
class _FileWork:
    found: FoundFile
    digest: str
    chunks: list[Chunk]
    to_embed: list[Chunk]


class _Pipeline:
    def __init__(self, settings: Settings, namespace: str, embedder: Embedder,
                 committed: CommittedState, writer: BatchWriter, report: IndexReport,
                 progress: Callable[[int], None]) -> None:
        self.settings = settings
        self.namespace = namespace
        self.embedder = embedder
        self.committed = committed
        self.writer = writer
        self.report = report
        self.progress = progress
        self.waiting: list[_FileWork] = []
        self.waiting_texts = 0

    def add(self, work: _FileWork) -> None:
        self.waiting.append(work)
        self.waiting_texts += len(work.to_embed)
        if self.waiting_texts >= EMBED_GROUP:
            self.flush()

    def flush(self) -> None:
        texts = [chunk.content for work in self.waiting for chunk in work.to_embed]
        vectors = self.embedder.embed(texts) if texts else None
        row = 0
        fingerprint, dim = self.embedder.fingerprint, self.embedder.dim
        for work in self.waiting:
            source = work.found.source_file
            items: list[Item] = [FileSnapshot(
                namespace=self.namespace, source_file=source, digest=work.digest,
                size=work.found.size, mtime_ns=work.found.mtime_ns,
                keys=tuple((c.content_hash, c.start_line) for c in work.chunks))]
            for chunk in work.to_embed:
                assert vectors is not None
                items.append(Upsert(
                    key=ChunkKey(self.namespace, source, chunk.content_hash, chunk.start_line),
                    end_line=chunk.end_line, heading_path=chunk.heading_path,
                    content=chunk.content, tags=chunk.tags, fingerprint=fingerprint, dim=dim,
                    vector=to_bytes(vectors[row])))
                row += 1
            self.writer.add_group(items)
            self.report.chunks_embedded += len(work.to_embed)
            self.progress(1)
        self.waiting = []
        self.waiting_texts = 0


def index_paths(
    settings: Settings,
    paths: Sequence[Path],
    *,
    namespace: str | None = None,
    force: bool = False,
    wait: bool = True,
    command: str = "mm index",
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    embedder: Embedder | None = None,
) -> IndexReport:
    """Index `paths` into the queue (and, with `wait`, until committed). Never writes the index.

    Raises ModelMismatch before embedding anything if the configured model is not the index's.
    """
    ensure_home(settings.home)
    namespace = namespace or settings["index.namespace"]
    embedder = embedder or configured_embedder(settings)
    roots = [Path(p).expanduser().absolute().resolve() for p in paths]
    report = IndexReport()
    queue = open_queue(settings.queue_path)
    conn = store.open_for_read(settings.index_path)
    lock = CommitterLock(settings.lock_path)
    background: BackgroundCommitter | None = None
    try:
        check_model(embedder, target_model(conn, queue))
        found = discover(roots, ignore=settings["index.ignore"],
                         max_file_bytes=settings["index.max_file_bytes"])
        report.files = len(found.files)
        report.skipped.extend(found.skipped)
        if on_start:
            on_start(len(found.files))
        progress = on_progress or (lambda n: None)
        committed = CommittedState(conn, namespace, embedder.fingerprint)
        if wait and lock.try_acquire():
            background = BackgroundCommitter(settings, lock).start()
        writer = BatchWriter(queue, Producer.current(command), settings["queue.batch_records"])
        pipeline = _Pipeline(settings, namespace, embedder, committed, writer, report, progress)
        seen: set[str] = set()
        for item in found.files:
            seen.add(item.source_file)
            if not force and committed.is_unchanged(item):
                report.unchanged += 1
                progress(1)
                continue
            work = _read_and_diff(item, settings, committed, force, report)
            if work is None:
                progress(1)
                continue
            report.new += 1
            pipeline.add(work)
        pipeline.flush()
        for source in sorted(committed.files):
            if source not in seen and _under(source, roots) and not _still_there(source, report):
                writer.add_group([FileSnapshot(namespace, source, "", 0, time.time_ns(), ())])
                report.deleted += 1
        writer.flush()
        report.batch_ids = writer.batch_ids
        report.records_enqueued = writer.records
        if wait:
            report.committed, report.dead_lettered = wait_committed(
                settings, writer.batch_ids, background, lock)
        return report
    finally:
        if background is not None:
            background.join()
            lock.release()
        if conn is not None:
            conn.close()
        queue.close()


def _still_there(source: str, report: IndexReport) -> bool:
    # A file we could not read this time is not a deleted file: keep what is committed.
    return any(s.path == source and s.reason != "not_found" for s in report.skipped)


def _read_and_diff(found: FoundFile, settings: Settings, committed: CommittedState,
                   force: bool, report: IndexReport) -> _FileWork | None:
    loaded = load_text(found)
    if isinstance(loaded, Skipped):
        report.skipped.append(loaded)
        return None
    if loaded.replaced:
        report.replaced_utf8.append(found.source_file)
    chunks = chunk_text(loaded.text, markdown=is_markdown(found.source_file),
                        max_chars=settings["index.chunk_max_chars"],
                        min_chars=settings["index.chunk_min_chars"])
    current = set() if force else committed.current_keys(found.source_file)
    to_embed = [c for c in chunks if (c.content_hash, c.start_line) not in current]
    return _FileWork(found, loaded.digest, chunks, to_embed)


async def index_paths_async(settings: Settings, paths: Sequence[Path], **options: object) -> IndexReport:
    """`index_paths` for an event loop: the work runs in a thread, the loop stays free."""
    return await asyncio.to_thread(index_paths, settings, paths, **options)  # type: ignore[arg-type]


async def enqueue_items_async(settings: Settings, items: Sequence[Item],
                              command: str = "memwal") -> list[str]:
    """`enqueue_items` for an event loop."""
    return await asyncio.to_thread(enqueue_items, settings, items, command)
