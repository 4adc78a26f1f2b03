"""The committer role: taking it (lock, index, queue), and the loops a process runs while holding it.

`mm queue worker`, a lone `mm index` that finds no committer alive, and a server started with
`--worker` all run the committer through these functions; none of them builds its own loop.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

from memwal import store
from memwal.committed import Publisher
from memwal.committer import BatchOutcome, Committer, DrainStats
from memwal.config import Settings, ensure_home
from memwal.errors import NoCommitter, QueueOwned, QueueError, is_damage
from memwal.lock import CommitterLock
from memwal.queue import Role, WriteAheadQueue, legacy_backlog, open_queue
from memwal.queuewatch import QueueWatch, record_incident
from memwal.safeio import read_regular, write_atomically
from memwal.store import reads
from memwal.vectorindex import Maintainer


# The most queued data one commit group holds in memory (a batch of 256 records of 384-d vectors
# is ~0.6 MB, about twice that once decoded): ~27 such batches. At 16 MB the committer drained
# 0.79 of bulk inserts (goal 0.7; 0.82-0.88 at 64 MB, measured on another day's machine), and
# held ~45 MB less beside a vector merge (figure 5: 345 -> 299 MB).
GROUP_BYTES = 16 << 20


@contextmanager
def committer_session(settings: Settings, lock: CommitterLock | None = None,
                      patience: float = 1.0) -> Iterator[Committer]:
    """Take the committer role for `settings.home`: lock, open, put in-flight messages back.

    The session also keeps the derived vector index current, and watches the queue for being
    lost or re-created under it (memwal.queuewatch). Raises QueueOwned (exit 2) if the shared
    queue is stamped with another index, CommitterBusy (naming the holder's pid) if another
    committer is alive.
    """
    ensure_home(settings.home)
    with ExitStack() as stack:
        if lock is None:
            lock = CommitterLock(settings.lock_path)
            stack.callback(lock.release)
        if not lock.held:
            lock.acquire(patience)
        conn = store.open_for_write(settings.index_path)
        stack.callback(conn.close)
        queue = open_queue(settings, Role.COMMITTER)
        stack.callback(queue.close)
        bind_queue(settings, queue, conn)  # another index's queue: refused before anything else
        stack.enter_context(queue.claim())  # a shared queue: one committer across machines
        queue.recover()
        publisher = Publisher(conn, queue)
        # On the way out, a delivery interrupted before its commit goes back to its place now,
        # not at the next start, so `mm queue status` never shows a stuck in-flight message.
        stack.callback(queue.recover)
        failures = FailureRecord(settings.failure_path)
        maintainer = Maintainer(settings, merge_at=settings["vectors.merge_at"])
        stack.callback(maintainer.close)

        def on_commit(outcomes: list[BatchOutcome]) -> None:
            failures.cleared()
            maintainer.committed(sum(outcome.committed for outcome in outcomes))
            publisher.committed(outcomes)

        watch = QueueWatch(conn, queue, on_incident=lambda found: record_incident(settings.home, found),
                           rebind=lambda: bind_queue(settings, queue, conn))
        committer = Committer(conn, queue, on_commit=on_commit, group=settings["queue.commit_group"],
                              group_bytes=GROUP_BYTES, watch=watch)
        try:
            yield committer
        except Exception as exc:
            if committer.current is not None:
                failures.record(committer.current.position, exc)
            if is_damage(exc):  # the queue's own errors arrive translated: this is the index
                raise store.damaged(settings.index_path, exc) from None
            raise


def bind_queue(settings: Settings, queue: WriteAheadQueue, conn: store.Connection) -> None:
    """Stamp a shared queue as this index's; QueueOwned (exit 2) if another index holds it.

    Also refuses to start while this home's Redis queue of an older memwal (named from the home's
    path) still holds batches: they would be abandoned in silence.
    """
    index_id = reads.index_id(conn) or ""
    held = queue.bind(index_id, {"host": socket.gethostname(), "home": str(settings.home)})
    if held is not None:
        raise QueueOwned(queue.name, held, index_id)
    backlog = legacy_backlog(settings)
    if backlog is not None:
        name, count = backlog
        raise QueueError(
            f"the Redis queue {name} (this home's queue before home ids, named from its path) "
            f"still holds {count} batches; this home now uses {queue.name}.",
            f"Set queue.name to {name} on the home whose batches they are and on the homes that "
            "write to it, to keep using that queue, or drain it with the memwal that queued them.")


class FailureRecord:
    """`<home>/committer-failure.json`: where and why the last committer stopped, until a batch
    commits again. A committer that dies on the same batch each time it starts cannot make
    progress; `mm doctor` reads this file to say so, and which batch and error it is."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.present = path.exists()

    def record(self, position: int, exc: BaseException) -> None:
        entry = {"position": position, "error": f"{type(exc).__name__}: {exc}",
                 "at": time.time(), "pid": os.getpid()}
        try:
            write_atomically(self.path, json.dumps(entry).encode())
        except OSError:
            pass  # a full or read-only disk may be the very failure; the error is raised anyway

    def cleared(self) -> None:
        """A batch committed: the committer is past where it stopped."""
        if self.present:
            self.path.unlink(missing_ok=True)
            self.present = False


def read_failure(settings: Settings) -> dict[str, object] | None:
    """The last committer's fatal error (see FailureRecord), if no batch committed since."""
    try:
        entry = json.loads(read_regular(settings.failure_path, max_bytes=1 << 16))
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) else None


def run_worker(settings: Settings, *, once: bool = False,
               on_batch: Callable[[BatchOutcome], None] | None = None,
               on_start: Callable[[int], None] | None = None,
               on_wait: Callable[[str], None] | None = None,
               stop: threading.Event | None = None) -> DrainStats:
    """Be the home's committer: apply queued batches in order until SIGTERM/SIGINT or `stop`
    is set, or, with `once`, until the queue is empty. What `mm queue worker` runs.

    A signal lets the batches in hand (one commit group) finish and be acknowledged, then the
    loop ends: nothing is half-applied. Signal handlers are installed only when called from the
    main thread.
    `on_start(pid)` is called once the role is taken, `on_batch(outcome)` after each batch.
    Returns the totals (a DrainStats). Raises CommitterBusy (exit 3) if another committer holds
    the role.
    """
    stop = stop or threading.Event()
    restore: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            restore[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        with committer_session(settings) as committer:
            committer.watch.notify = on_wait  # a queue lost under the worker is said at once
            if on_start:
                on_start(os.getpid())
            if once:
                return committer.drain(stop.is_set, on_batch)
            return committer.run(stop, settings["queue.poll_interval"], on_batch, on_wait)
    finally:
        for signum, handler in restore.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


class BackgroundCommitter:
    """Runs the committer in a thread of this process while we hold the lock."""

    def __init__(self, settings: Settings, lock: CommitterLock, poll_interval: float = 0.05) -> None:
        self.settings = settings
        self.lock = lock
        self.poll_interval = poll_interval
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="memwal-committer", daemon=True)

    def _run(self) -> None:
        try:
            with committer_session(self.settings, self.lock) as committer:
                committer.run(self.stop, poll_interval=self.poll_interval)
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
    """(committed, dead_lettered, skipped) of the given batches that are in the ledger: the
    index's, or what the committer of a shared queue published (a writer elsewhere has no index)."""
    queue = open_queue(settings, Role.READER)
    try:
        if queue.shared:
            return queue.published_batches(list(batch_ids))
    finally:
        queue.close()
    with store.reading(settings.index_path) as conn:
        return {} if conn is None else reads.ledger_counts(conn, batch_ids)


class CommitCounts(NamedTuple):
    """What the committer did with a set of batches, summed."""

    committed: int
    dead_lettered: int
    skipped: int


def wait_committed(settings: Settings, batch_ids: Sequence[str], *,
                   timeout: float | None = None, take_role: bool = True) -> CommitCounts | None:
    """Block until every batch is committed (in the ledger): read your own writes.

    When no committer is alive, this process takes the role and drains the queue itself, unless
    `take_role` is False (a server that leaves committing to its worker). Returns their CommitCounts (committed, dead-lettered, skipped items), or None if `timeout` seconds
    passed first (the batches stay queued and will be committed). Raises what a committer
    raises (StorageError when the index cannot be written).
    """
    return await_ledger(settings, batch_ids, None, CommitterLock(settings.lock_path), timeout,
                        take_role)


NO_COMMITTER_AFTER = 20.0  # seconds: longer than a Redis committer claim lasts


def await_ledger(settings: Settings, batch_ids: Sequence[str], background: BackgroundCommitter | None,
                 lock: CommitterLock, timeout: float | None = None,
                 take_role: bool = True) -> CommitCounts | None:
    """`wait_committed` for a caller that may already run a BackgroundCommitter with `lock`."""
    deadline = None if timeout is None else time.monotonic() + timeout
    queue = open_queue(settings, Role.READER)
    try:
        shared = queue.shared
        take_role = take_role and not shared  # a shared queue's worker commits into its index
        remaining = set(batch_ids)
        totals: dict[str, tuple[int, int, int]] = {}
        unclaimed_since: float | None = None
        while remaining:
            if background is None and take_role and lock.try_acquire():
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
            if remaining and shared:
                # A claim vanishes for a moment when its worker restarts or the server did:
                # only a queue without a committer for longer than a claim lasts is given up on.
                now = time.monotonic()
                unclaimed_since = None if queue.holder() else unclaimed_since or now
            if unclaimed_since is not None and time.monotonic() - unclaimed_since > NO_COMMITTER_AFTER:
                raise NoCommitter(
                    f"{len(remaining)} of the batches are queued (durable) but no committer is "
                    "running on the shared queue.", "Start `mm queue worker` on the machine "
                    "that holds the index (they are committed then), or pass --no-wait.")
            if remaining:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                time.sleep(0.05)
    finally:
        queue.close()
    return CommitCounts(*(sum(counts[field] for counts in totals.values()) for field in range(3)))
