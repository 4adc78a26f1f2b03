"""The producer: discover → chunk → diff (read-only) → embed → enqueue. It never writes the index.

`index_paths` is what `mm index` runs; `index_paths_async` is the same for servers that must not
block their event loop. With `wait=True` it returns once its own batches are committed, taking the
committer role itself (in a background thread, so committing overlaps embedding) when no
committer is alive (see `memwal.worker`).
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from memwal import faults, notapplied
from memwal.chunking import Chunk, chunk_text, is_markdown
from memwal.committed import Committed, CommittedFile, IndexView
from memwal.config import Settings, ensure_home
from memwal.discover import FoundFile, IgnoredBy, Skipped, discover, load_text
from memwal.embedders import Embedder, configured_embedder
from memwal.errors import NO_COMMITTER_NOTE, PathError, QueueUnavailable
from memwal.progress import IndexProgress, Progress
from memwal.queue import Role, WriteAheadQueue, open_queue
from memwal.records import (
    Batch, ChunkKey, FileSnapshot, Item, Producer, ShadowVector, Upsert, encode_batch,
)
from memwal.vectors import to_bytes
from memwal.worker import Host, hosting

# Failures a user must hear about (exit 1); the other skip reasons are policy, not failures.
FAILURE_REASONS = frozenset({"unreadable"})
# Texts gathered across files before one call into the embedder.
EMBED_GROUP = 256


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
    positions: list[int] = field(default_factory=list)  # the batches' queue positions
    committed: int | None = None
    dead_lettered: int | None = None
    # Roots that held indexed files and now yield none: their files were not deleted.
    kept_roots: list[tuple[str, int]] = field(default_factory=list)
    # (source file, digest) of every file snapshot this run enqueued ("" for a deletion).
    sent: dict[str, str] = field(default_factory=dict)
    # Files whose snapshot the committer skipped: another producer committed a newer read of the
    # file after this run looked at it. Known only when waiting.
    not_applied: list[str] = field(default_factory=list)
    # Without waiting: whether a committer was running once the batches were queued (None:
    # not asked, the run waited). False means nothing commits this work until one starts.
    committer_running: bool | None = None
    # What discovery left out, per rule (an ignore pattern, an unsupported suffix).
    ignored: list[IgnoredBy] = field(default_factory=list)
    # The folders among the roots (a file named on the command line is never ignored).
    folder_roots: list[str] = field(default_factory=list)

    def ignored_note(self) -> str | None:
        """Why nothing was found to index, when every file under the roots was left out by an
        ignore pattern or its suffix (and what to change); None otherwise."""
        if self.files or not self.ignored or not self.folder_roots:
            return None
        files = sum(rule.files for rule in self.ignored)
        folders = sum(rule.folders for rule in self.ignored)
        what = " and ".join(f"{n} {kind}{'s' if n != 1 else ''}" for n, kind in
                            ((files, "file"), (folders, "folder")) if n)
        fixes = []
        if any(rule.rule == "index.ignore" for rule in self.ignored):
            fixes.append("change index.ignore (`mm config show` lists its patterns; set it in "
                         "config.json or MM_INDEX_IGNORE)")
        if any(rule.rule == ".gitignore" for rule in self.ignored):
            fixes.append("change the folder's .gitignore")
        if any(rule.rule == "suffix" for rule in self.ignored):
            fixes.append("give the notes a .md, .markdown or .txt name")
        return (f"nothing to index under {', '.join(self.folder_roots)}: all {what} there were "
                f"left out, {'; '.join(rule.describe() for rule in self.ignored)}. To index "
                f"them, {' or '.join(fixes) or 'see index.ignore'}.")

    def not_committed_note(self) -> str | None:
        """Why this run's work is not searchable yet, when nothing will commit it (no committer
        is running and the run did not wait); None otherwise."""
        if self.committer_running is False and self.records_enqueued:
            return NO_COMMITTER_NOTE
        return None

    @property
    def failed(self) -> list[Skipped]:
        return [s for s in self.skipped if s.reason in FAILURE_REASONS]

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "files": self.files, "new": self.new, "unchanged": self.unchanged,
            "deleted": self.deleted, "skipped": len(self.skipped),
            "records_enqueued": self.records_enqueued, "batches": len(self.batch_ids),
            # Each durable in the queue: what a caller can look for in the ledger later.
            "batch_ids": self.batch_ids, "positions": self.positions,
        }
        if self.committed is not None:
            out["committed"] = self.committed
            out["dead_lettered"] = self.dead_lettered
        out["chunks_embedded"] = self.chunks_embedded
        out["skipped_files"] = [{"path": s.path, "reason": s.reason, "detail": s.detail}
                                for s in self.skipped]
        out["replaced_invalid_utf8"] = self.replaced_utf8
        out["kept_roots"] = [{"root": root, "indexed_files": n} for root, n in self.kept_roots]
        if self.committed is not None:
            out["not_applied"] = self.not_applied
        if self.committer_running is not None:
            out["committer_running"] = self.committer_running
        out["ignored"] = [rule.as_json() for rule in self.ignored]
        out["ignored_note"] = self.ignored_note()
        return out


def checked_roots(paths: Sequence[Path | str]) -> list[Path]:
    """The resolved roots to index; PathError if one does not exist or cannot be read.

    A root that is missing (an unmounted drive, a typo) must never look like a folder whose
    files were all deleted: refusing it is what keeps its committed chunks.
    """
    roots = []
    for given in paths:
        path = Path(given).expanduser().absolute()
        try:
            st = path.stat()
        except FileNotFoundError:
            raise PathError(f"{path} does not exist.", "Check the path (an unmounted drive?); "
                            "nothing was indexed or deleted.") from None
        except OSError as exc:
            raise PathError(f"cannot use {path}: {exc.strerror}.",
                            "Check the path and its permissions; nothing was indexed or deleted."
                            ) from None
        if stat.S_ISDIR(st.st_mode) and not os.access(path, os.R_OK | os.X_OK):
            raise PathError(f"cannot read the folder {path}: permission denied.",
                            "Check its permissions; nothing was indexed or deleted.")
        roots.append(path.resolve())
    return roots


# -- batching ------------------------------------------------------------------------------


class BatchWriter:
    """Groups items into batches of at most `limit`, keeping one file's items together if they fit."""

    def __init__(self, queue: WriteAheadQueue, producer: Producer, limit: int,
                 on_enqueued: Callable[[Batch], None] | None = None,
                 endpoints: dict[str, dict[str, Any]] | None = None) -> None:
        self.queue = queue
        self.endpoints = endpoints or {}  # stamped on every batch (records.Batch.endpoints)
        self.producer = producer
        self.limit = limit
        self.items: list[Item] = []
        self.batch_ids: list[str] = []
        self.positions: list[int] = []
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
        batch = Batch(items=tuple(self.items), producer=self.producer, endpoints=self.endpoints)
        # Returns only once the batch is durable.
        self.positions.append(self.queue.put(encode_batch(batch)))
        faults.pause("batch-enqueued")
        self.batch_ids.append(batch.id)
        self.records += len(batch.items)
        self.items = []
        if self.on_enqueued:
            self.on_enqueued(batch)


def endpoint_map(*embedders: Embedder | None) -> dict[str, dict[str, Any]]:
    """fingerprint → how to reach the model (records.Batch.endpoints), for these embedders; the
    bundled models need none (their name says it all)."""
    found: dict[str, dict[str, Any]] = {}
    for embedder in embedders:
        endpoint = getattr(embedder, "endpoint", None)
        if embedder is not None and endpoint is not None and endpoint.remote:
            found[embedder.fingerprint] = endpoint.as_dict()
    return found


def enqueue_items(settings: Settings, items: Iterable[Item], command: str = "memwal") -> list[str]:
    """Enqueue ready-made items (upserts, file snapshots, resets) in batches; return batch ids.

    For producers that build their own records. Items are enqueued in order, in batches of
    `queue.batch_records`, each durable before the next; nothing waits for the committer
    (`wait_committed` does).
    """
    with open_queue(settings, Role.PRODUCER) as queue:
        writer = BatchWriter(queue, Producer.current(command), settings["queue.batch_records"])
        for item in items:
            writer.add_group([item])
        writer.flush()
        return writer.batch_ids


class QueuedSnapshots:
    """What one long-lived producer (a watcher) already enqueued: per file, the size, mtime and
    digest of the snapshot it queued (or that it queued the file's deletion).

    The diff compares files with what is committed; while no committer runs (or before it
    catches up) that never moves, and every pass would queue the same files again. A file
    whose size and mtime (or, once read, digest) are those of the snapshot this producer
    queued is unchanged; once that snapshot is committed it is unchanged by the committed
    state too. Kept per model: after a switch to another model everything is embedded anew.
    """

    GONE = (-1, -1, "")

    def __init__(self) -> None:
        self.fingerprint: str | None = None
        self.files: dict[tuple[str, str], tuple[int, int, str]] = {}

    def for_model(self, fingerprint: str) -> None:
        if fingerprint != self.fingerprint:
            self.fingerprint, self.files = fingerprint, {}

    def unchanged(self, namespace: str, found: FoundFile) -> bool:
        entry = self.files.get((namespace, found.source_file))
        return entry is not None and entry[:2] == (found.size, found.mtime_ns)

    def same_content(self, namespace: str, source: str, digest: str) -> bool:
        entry = self.files.get((namespace, source))
        return entry is not None and entry != self.GONE and entry[2] == digest

    def deleted(self, namespace: str, source: str) -> bool:
        return self.files.get((namespace, source)) == self.GONE

    def queued(self, namespace: str, found: FoundFile, digest: str) -> None:
        self.files[(namespace, found.source_file)] = (found.size, found.mtime_ns, digest)

    def queued_deletion(self, namespace: str, source: str) -> None:
        self.files[(namespace, source)] = self.GONE


# -- the pipeline --------------------------------------------------------------------------


@dataclass
class _FileWork:
    found: FoundFile
    digest: str
    chunks: list[Chunk]
    to_embed: list[Chunk]
    base: str | None


@dataclass
class IndexJob:
    """What one `index_paths` call was asked to do, as one value."""

    settings: Settings
    roots: list[Path]
    namespace: str
    embedder: Embedder
    command: str
    force: bool = False
    wait: bool = True
    allow_empty_root: bool = False
    on_start: Callable[[int], None] | None = None
    on_progress: Callable[[int], None] = lambda n: None
    on_wait: Callable[[str], None] | None = None
    # A long-lived producer's QueuedSnapshots (never with `force`: everything is sent again).
    remember: QueuedSnapshots | None = None
    # During a migration: the model whose vectors go beside `embedder`'s (Upsert.shadow).
    shadow: Embedder | None = None
    # Where the run is, told to its `on_stage` callback (memwal.progress).
    progress: IndexProgress = field(default_factory=lambda: IndexProgress(None))


class _Pipeline:
    def __init__(self, job: IndexJob, writer: BatchWriter, report: IndexReport) -> None:
        self.namespace = job.namespace
        self.embedder = job.embedder
        self.shadow = job.shadow
        self.writer = writer
        self.report = report
        self.progress = job.on_progress
        self.stages = job.progress
        self.waiting: list[_FileWork] = []
        self.waiting_texts = 0

    def add(self, work: _FileWork) -> None:
        self.waiting.append(work)
        self.waiting_texts += len(work.to_embed)
        if self.waiting_texts >= EMBED_GROUP:
            self.flush()

    def flush(self) -> None:
        texts = [chunk.content for work in self.waiting for chunk in work.to_embed]
        vectors, shadows = self._embedded(texts) if texts else (None, None)
        row = 0
        fingerprint, dim = self.embedder.fingerprint, self.embedder.dim
        for work in self.waiting:
            source = work.found.source_file
            items: list[Item] = [FileSnapshot(
                namespace=self.namespace, source_file=source, digest=work.digest,
                size=work.found.size, mtime_ns=work.found.mtime_ns,
                keys=tuple((c.content_hash, c.start_line) for c in work.chunks), base=work.base)]
            for chunk in work.to_embed:
                assert vectors is not None
                items.append(Upsert(
                    key=ChunkKey(self.namespace, source, chunk.content_hash, chunk.start_line),
                    end_line=chunk.end_line, heading_path=chunk.heading_path,
                    content=chunk.content, tags=chunk.tags, fingerprint=fingerprint, dim=dim,
                    vector=to_bytes(vectors[row]),
                    shadow=None if shadows is None or self.shadow is None else ShadowVector(
                        self.shadow.fingerprint, self.shadow.dim, to_bytes(shadows[row]))))
                row += 1
            self.writer.add_group(items)
            self.report.sent[source] = work.digest
            self.report.chunks_embedded += len(work.to_embed)
            self.progress(1)
        self.waiting = []
        self.waiting_texts = 0

    def _embedded(self, texts: list[str]) -> tuple[Any, Any]:
        """The vectors (and shadow vectors) of `texts`, EMBED_GROUP texts per call so that the
        progress moves within a large file too (a vector does not depend on its neighbours)."""
        import numpy as np

        parts, shadows = [], []
        for start in range(0, len(texts), EMBED_GROUP):
            part = texts[start:start + EMBED_GROUP]
            parts.append(self.embedder.embed(part))
            if self.shadow is not None:
                shadows.append(self.shadow.embed(part))
            self.stages.embedded(len(part))
        return np.concatenate(parts), np.concatenate(shadows) if shadows else None


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
    allow_empty_root: bool = False,
    on_wait: Callable[[str], None] | None = None,
    remember: QueuedSnapshots | None = None,
    host: Host | None = None,
    on_stage: Callable[[Progress], None] | None = None,
) -> IndexReport:
    """Index files and folders: discover, chunk, diff, embed, enqueue. Never writes the index.

    Unchanged files (size and mtime as committed, every chunk with a vector of the configured
    model) are skipped without being read; files gone from under a root are enqueued as
    deletions, except when a root that held indexed files yields none at all (an unmounted
    drive?): its files are kept and listed in `report.kept_roots`, unless `allow_empty_root`. Every batch is durable in the queue before the next is built. With `wait`, return
    once this call's batches are committed: by the running committer, or by this process taking
    the committer role itself (in a background thread) when none is alive. `on_start(files)` and
    `on_progress(n)` report progress; `embedder` overrides the configured one. Waiting on a
    shared queue, `on_wait(message)` says what for (within a second, and when that changes).
    Without `wait`, `report.committer_running` says whether any committer will commit the
    work. `remember` (a long-lived producer's QueuedSnapshots) skips files it already queued.
    `host` (a long-lived producer's, see `memwal.worker.hosting`) is used instead of a new one.
    `on_stage(progress)` is told each stage and step (a `memwal.progress.Progress`): loading the
    model, discovering, embedding (chunks done of the total, the rate and the seconds left),
    enqueueing, waiting for the committer (batches committed of this run's).

    Returns an IndexReport (its `as_json()` is `mm index --json`). Raises PathError (exit 2),
    before anything is read or enqueued, for a path that does not exist or cannot be read;
    ModelMismatch (exit 2)
    before embedding anything if the configured model is not the index's (nor its queued
    reset's); StorageError or OSError when the queue cannot be written (a full disk). Interrupted,
    it leaves only whole batches in the queue.
    """
    ensure_home(settings.home)
    job = IndexJob(settings=settings, namespace=namespace or settings["index.namespace"],
                   embedder=embedder or configured_embedder(settings),
                   roots=checked_roots(paths), command=command, force=force, wait=wait,
                   allow_empty_root=allow_empty_root, on_start=on_start,
                   on_progress=on_progress or (lambda n: None), on_wait=on_wait,
                   remember=None if force else remember, progress=IndexProgress(on_stage))
    if host is not None:
        return _index(job, host)
    with hosting(settings) as own:
        return _index(job, own)


def _index(job: IndexJob, host: Host) -> IndexReport:
    """The body of `index_paths`, through `host`'s queue and committed state."""
    report = IndexReport()
    writer: BatchWriter | None = None
    try:
        writer = BatchWriter(host.queue, Producer.current(job.command),
                             job.settings["queue.batch_records"])
        seen = _enqueue(job, host, writer, report)
    except QueueUnavailable as exc:
        done = "nothing was enqueued" if writer is None or not writer.positions else (
            f"{len(writer.batch_ids)} batches ({writer.records} records) were enqueued before it, "
            f"the last at queue position {writer.positions[-1]}")
        raise QueueUnavailable(f"{exc.message} {done}; nothing after.", exc.fix) from None
    if job.wait:
        _wait(job, host, report, seen)
    else:
        report.committer_running = host.committed.committer_running()
    return report


def _enqueue(job: IndexJob, host: Host, writer: BatchWriter, report: IndexReport) -> set[str]:
    """Discover, diff, embed and enqueue: every batch durable when this returns. Returns the
    files seen under the roots."""
    remember, namespace, stages = job.remember, job.namespace, job.progress
    stages.begin("model", model=job.embedder.name)
    job.embedder, job.shadow = host.committed.embedders_for(job.embedder)
    writer.endpoints = endpoint_map(job.embedder, job.shadow)
    if remember is not None:
        remember.for_model(job.embedder.fingerprint)
    stages.begin("discover")
    found = discover(job.roots, ignore=job.settings["index.ignore"],
                     max_file_bytes=job.settings["index.max_file_bytes"])
    report.files = len(found.files)
    report.skipped.extend(found.skipped)
    report.ignored = list(found.ignored_by)
    report.folder_roots = [str(root) for root in job.roots if root.is_dir()]
    if job.on_start:
        job.on_start(len(found.files))
    progress = job.on_progress
    committed = host.committed.view(namespace, job.embedder.fingerprint)
    committed.prefetch([f.source_file for f in found.files])
    # Unchanged by size and mtime (and a complete entry), decided once: the count to read goes
    # to the progress before the first file is read.
    unchanged = set() if job.force else {
        item.source_file for item in found.files if committed.is_unchanged(item)
        or (remember is not None and remember.unchanged(namespace, item))}
    to_read = [item for item in found.files if item.source_file not in unchanged]
    stages.found(len(found.files), len(to_read), sum(item.size for item in to_read),
                 found.ignored)
    stages.begin("embed")
    if job.wait:
        host.take_role()  # committing overlaps embedding when no committer is alive
    pipeline = _Pipeline(job, writer, report)
    seen: set[str] = set()
    sent: list[_FileWork] = []
    for item in found.files:
        seen.add(item.source_file)
        if item.source_file in unchanged:
            report.unchanged += 1
            stages.file_done(unchanged=True)
            progress(1)
            continue
        work = _read_and_diff(job, item, committed, report)
        if work is None:
            stages.file_done(read_bytes=item.size)
            progress(1)
            continue
        if remember is not None and remember.same_content(namespace, item.source_file, work.digest):
            remember.queued(namespace, item, work.digest)  # touched, not changed
            report.unchanged += 1
            stages.file_done(read_bytes=item.size, unchanged=True)
            progress(1)
            continue
        report.new += 1
        sent.append(work)
        stages.file_done(read_bytes=item.size, chunks=len(work.to_embed))
        pipeline.add(work)
    pipeline.flush()
    stages.begin("enqueue", batches=len(writer.batch_ids), records=writer.records)
    for root in job.roots:
        gone = [source for source in committed.sources_under(root)
                if source not in seen and not _still_there(source, report)]
        if gone and not any(_below(source, root) for source in seen) and not job.allow_empty_root:
            # Every indexed file of this root vanished at once: far likelier an unmounted
            # drive or an emptied mount point than a user deleting them all. Keep them.
            report.kept_roots.append((str(root), len(gone)))
            continue
        for source in gone:
            if remember is not None and remember.deleted(namespace, source):
                continue  # its deletion is queued already
            writer.add_group([FileSnapshot(namespace, source, "", 0, time.time_ns(), (),
                                           base=committed.base(source))])
            report.sent[source] = ""
            report.deleted += 1
    writer.flush()
    if remember is not None:  # durable now: what this producer need not send again
        for work in sent:
            remember.queued(namespace, work.found, work.digest)
        for source, digest in report.sent.items():
            if not digest:  # a deletion
                remember.queued_deletion(namespace, source)
    report.batch_ids, report.positions = writer.batch_ids, writer.positions
    report.records_enqueued = writer.records
    stages.enqueued(len(writer.batch_ids), writer.records)
    return seen


def _wait(job: IndexJob, host: Host, report: IndexReport, seen: set[str]) -> None:
    """Until this run's batches are committed; then which of its snapshots were not applied."""
    job.progress.begin("commit", to_commit=len(report.batch_ids))
    totals = host.wait(report.batch_ids, on_wait=job.on_wait, on_remaining=job.progress.remaining)
    assert totals is not None  # no timeout: it returns only once all are committed
    report.committed, report.dead_lettered = totals.committed, totals.dead_lettered
    if totals.skipped:
        report.not_applied = _not_applied(job, host.committed, report.sent)
    notapplied.record(job.settings, job.namespace, seen | set(report.sent),
                      {source: report.sent[source] for source in report.not_applied})


def _not_applied(job: IndexJob, committed: Committed, sent: dict[str, str]) -> list[str]:
    """The files whose committed digest is not the one this run sent: the committer skipped our
    snapshot of them as an older read than one committed meanwhile."""
    after = committed.view(job.namespace, job.embedder.fingerprint)
    after.prefetch(sorted(sent))
    return [source for source, digest in sorted(sent.items())
            if (after.file(source) or _GONE).digest != digest]


_GONE = CommittedFile("", 0, 0, 0, 0, 0)


def _below(source: str, root: Path) -> bool:
    return source == str(root) or source.startswith(str(root).rstrip("/") + "/")


def _still_there(source: str, report: IndexReport) -> bool:
    # A file we could not read this time is not a deleted file: keep what is committed.
    return any(s.path == source and s.reason != "not_found" for s in report.skipped)


def _read_and_diff(job: IndexJob, found: FoundFile, committed: IndexView,
                   report: IndexReport) -> _FileWork | None:
    settings = job.settings
    loaded = load_text(found, settings["index.max_file_bytes"])
    if isinstance(loaded, Skipped):
        report.skipped.append(loaded)
        return None
    if loaded.replaced:
        report.replaced_utf8.append(found.source_file)
    chunks = chunk_text(loaded.text, markdown=is_markdown(found.source_file),
                        max_chars=settings["index.chunk_max_chars"],
                        min_chars=settings["index.chunk_min_chars"])
    current = set() if job.force else committed.current_keys(found.source_file)
    to_embed = [c for c in chunks if (c.content_hash, c.start_line) not in current]
    return _FileWork(found, loaded.digest, chunks, to_embed, committed.base(found.source_file))


def add_note(settings: Settings, content: str, *, title: str | None = None,
             tags: Sequence[str] = (), file: str | None = None,
             command: str = "memwal add_note") -> tuple[Path, IndexReport]:
    """Write a note into the notes folder (`write_note`) and queue it; never waits for the commit.

    Work refused before it is queued leaves no trace: the model gate is checked before the note
    is written, and if queueing it fails all the same (the model changed meanwhile, the queue is
    unreachable) the note's write is taken back, so an agent that retries does not pile up
    copies. Returns the note's path and the IndexReport of its queueing. Raises what
    `write_note` and `index_paths` raise.
    """
    from memwal.notes import undo_note, write_note_undoably

    embedder = configured_embedder(settings)
    with hosting(settings) as host:
        host.committed.embedders_for(embedder)  # the gate, before the note is written
        note = write_note_undoably(settings, content, title=title, tags=tags, file=file)
        try:
            report = index_paths(settings, [note.path], wait=False, command=command,
                                 embedder=embedder, host=host)
        except BaseException:
            undo_note(settings, note)
            raise
    return note.path, report


async def index_paths_async(settings: Settings, paths: Sequence[Path], **options: object) -> IndexReport:
    """`index_paths` for an event loop: the work runs in a worker thread, the loop stays free.

    Same options, result and errors as `index_paths`.
    """
    return await asyncio.to_thread(index_paths, settings, paths, **options)  # type: ignore[arg-type]


async def enqueue_items_async(settings: Settings, items: Sequence[Item],
                              command: str = "memwal") -> list[str]:
    """`enqueue_items` for an event loop."""
    return await asyncio.to_thread(enqueue_items, settings, items, command)
