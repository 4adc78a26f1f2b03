"""The committer role: taking it (lock, index, queue), and the loops a process runs while holding it.

`mm queue worker`, a lone `mm index` that finds no committer alive, and a server started with
`--worker` (through a RoleSeeker) all run the committer through these functions; none of them
builds its own loop.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Self, Sequence

from memwal import store
from memwal.committed import Committed, Publisher
from memwal.committer import BatchOutcome, Committer, DrainStats
from memwal.config import Settings, ensure_home
from memwal.errors import CommitterBusy, NoCommitter, QueueError, QueueOwned, is_damage
from memwal.lock import CommitterLock
from memwal.queue import Role, WriteAheadQueue, legacy_backlog, open_queue
from memwal.queuewatch import QueueWatch, record_incident
from memwal.safeio import open_regular, read_regular, write_atomically
from memwal.store import reads
from memwal.vectorindex.writes import Maintainer


# The most queued data one commit group holds in memory (a batch of 256 records of 384-d vectors
# is ~0.6 MB, about twice that once decoded): ~27 such batches. At 16 MB the committer drained
# 0.79 of bulk inserts (goal 0.7; 0.82-0.88 at 64 MB, measured on another day's machine), and
# held ~45 MB less beside a vector merge (figure 5: 345 -> 299 MB).
GROUP_BYTES = 16 << 20


@contextmanager
def committer_session(settings: Settings, lock: CommitterLock | None = None,
                      patience: float = 1.0, lasting: bool = False) -> Iterator[Committer]:
    """Take the committer role for `settings.home`: lock, open, put in-flight messages back.

    The session also keeps the derived vector index current (a `lasting` committer, one that
    waits for work, also folds the tail whenever it finds the queue empty; one that ends leaves
    a tail above its bound to a detached merge: `vectorindex.writes.Maintainer`), and watches
    the queue for being
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
        queue = stack.enter_context(open_queue(settings, Role.COMMITTER))
        # Another index's queue is refused before anything else: before the claim (so the
        # message says whose it is even while its committer runs) and before this home grows
        # an index of its own.
        bind_queue(settings, queue)
        # A shared queue: one committer across machines. Claimed before the index is opened, so
        # a home that only produces for a committer elsewhere (a server's RoleSeeker asking
        # again and again) never grows an empty index of its own.
        stack.enter_context(queue.claim())
        conn = store.open_for_write(settings.index_path)
        stack.callback(conn.close)
        bind_queue(settings, queue, conn)  # a new index: its id stamps the queue now
        queue.recover()
        publisher = Publisher(conn, queue, settings.home)
        # On the way out, a delivery interrupted before its commit goes back to its place now,
        # not at the next start, so `mm queue status` never shows a stuck in-flight message.
        stack.callback(queue.recover)
        failures = FailureRecord(settings.failure_path)
        maintainer = Maintainer(settings, merge_at=settings["vectors.merge_at"], lasting=lasting)
        stack.callback(maintainer.close)

        def on_commit(outcomes: list[BatchOutcome]) -> None:
            failures.cleared()
            maintainer.committed(sum(outcome.committed for outcome in outcomes))
            publisher.committed(outcomes)

        watch = QueueWatch(conn, queue, on_incident=lambda found: record_incident(settings.home, found),
                           rebind=lambda: bind_queue(settings, queue, conn))
        committer = Committer(conn, queue, on_commit=on_commit, group=settings["queue.commit_group"],
                              group_bytes=GROUP_BYTES, watch=watch)
        committer.on_idle = maintainer.idle
        try:
            yield committer
        except Exception as exc:
            if committer.current is not None:
                failures.record(committer.current.position, exc)
            if is_damage(exc):  # the queue's own errors arrive translated: this is the index
                raise store.damaged(settings.index_path, exc) from None
            raise


def bind_queue(settings: Settings, queue: WriteAheadQueue,
               conn: store.Connection | None = None) -> None:
    """Stamp a shared queue as this index's; QueueOwned (exit 2) if another index holds it.

    Without `conn`, the index is read if this home has one and never made: a home with no index
    may not commit a queue another index holds. Also refuses to start while this home's Redis
    queue of an older memwal (named from the home's path) still holds batches: they would be
    abandoned in silence.
    """
    if conn is None and queue.publication is None:
        return  # a queue beside its index: no stamp, and its lock makes one committer (no read)
    if conn is None:
        with store.reading(settings.index_path) as existing:
            index_id = None if existing is None else reads.index_id(existing)
    else:
        index_id = reads.index_id(conn) or ""
    held = queue.bind(index_id, {"host": socket.gethostname(), "home": str(settings.home)})
    if held is not None:
        raise QueueOwned(queue.name, held, index_id or "")
    if conn is not None:
        return
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
    progress; `mm doctor` reads this file to say so, and which batch and error it is.

    The commonest such error is a full disk, on which a new file cannot be written: a reserve
    of RESERVE bytes is kept beside it while there is room, and on failure the record is written
    into the reserve, in place, and renamed."""

    RESERVE = 4096

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reserve = path.with_name(f".{path.name}.reserve")
        self.present = path.exists()
        self._keep_reserve()

    def _keep_reserve(self) -> None:
        try:
            fd = open_regular(self.reserve, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < self.RESERVE:
                    os.pwrite(fd, b" " * self.RESERVE, 0)
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            self.reserve.unlink(missing_ok=True)  # no room even for this: record() says so

    def record(self, position: int, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        entry = {"position": position, "error": error,
                 "at": time.time(), "pid": os.getpid()}
        data = json.dumps(entry).encode()
        try:
            write_atomically(self.path, data)
            return
        except OSError:
            pass  # a full disk, most likely: use the reserve
        data = json.dumps({**entry, "error": error[:300]}).encode()  # fits the reserve
        try:
            fd = open_regular(self.reserve, os.O_WRONLY)
            try:
                os.pwrite(fd, data.ljust(self.RESERVE), 0)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.reserve, self.path)
        except OSError:
            pass  # nothing could be written: the error itself is raised anyway

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
        for wanted in (signal.SIGTERM, signal.SIGINT):
            restore[wanted] = signal.signal(wanted, lambda *_: stop.set())
    try:
        with committer_session(settings, lasting=not once) as committer:
            committer.watch.notify = on_wait  # a queue lost under the worker is said at once
            if on_start:
                on_start(os.getpid())
            if once:
                return committer.drain(stop.is_set, on_batch)
            return committer.run(stop, settings["queue.poll_interval"], on_batch, on_wait)
    finally:
        for signum, handler in restore.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


class _CommitterThread:
    """A thread of this process that hosts the committer: started, then stopped by `join()`,
    which lets the batches in hand be committed and raises the error the thread ended on."""

    name = "memwal-committer"

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self.thread.start()
        return self

    def join(self) -> None:
        self.stop.set()
        self.thread.join()
        if self.error is not None:
            raise self.error


class BackgroundCommitter(_CommitterThread):
    """Runs the committer in a thread of this process while we hold the lock."""

    def __init__(self, settings: Settings, lock: CommitterLock, poll_interval: float = 0.05) -> None:
        self.settings = settings
        self.lock = lock
        self.poll_interval = poll_interval
        super().__init__()

    def _run(self) -> None:
        try:
            with committer_session(self.settings, self.lock) as committer:
                committer.run(self.stop, poll_interval=self.poll_interval)
        except BaseException as exc:  # surfaced by join()
            self.error = exc


class RoleSeeker(_CommitterThread):
    """Hosts the committer role in a thread of a long-lived process, whenever the role is free.

    What a server started with `--worker` runs: any number of them (agents) can share a home
    with each other and with a `mm queue worker`. While another process holds the role this one
    is a producer: it tries the lock again every `poll_interval` (never blocking), so when the
    holder ends (even by SIGKILL: the kernel frees the lock) one of the seekers takes over within
    a poll interval. A shared queue's claim held elsewhere (CommitterBusy) is treated the same
    way. A committer that fails (the index cannot be written) is tried again with a growing
    delay, and its error is said once on stderr; `join()` raises it if it was the last word.
    """

    RETRY_AFTER_FAILURE = (1.0, 60.0)  # seconds: first delay, longest delay

    name = "memwal-role-seeker"

    def __init__(self, settings: Settings, poll_interval: float | None = None) -> None:
        self.settings = settings
        self.poll_interval = settings["queue.poll_interval"] if poll_interval is None else poll_interval
        self.lock = CommitterLock(settings.lock_path)
        self.holding = threading.Event()  # set while this process is the committer
        self.failures = 0  # in a row: the delay before the next try grows with them
        super().__init__()

    def _run(self) -> None:
        while not self.stop.is_set():
            delay = self.poll_interval  # another process holds the role: ask again soon
            if self.lock.try_acquire():
                try:
                    delay = self._commit()
                finally:
                    self.lock.release()
            self.stop.wait(delay)

    def _commit(self) -> float:
        """Be the committer until stopped; return how long to wait before seeking the role again."""
        try:
            with committer_session(self.settings, self.lock, lasting=True) as committer:
                self.holding.set()
                self.error, self.failures = None, 0
                committer.run(self.stop, self.poll_interval)
            return self.poll_interval
        except CommitterBusy:
            # A shared queue's committer runs on another machine: stay a producer. Asking again
            # connects to the queue, so not more often than once a second.
            return max(self.poll_interval, 1.0)
        except QueueOwned:
            # The shared queue is another index's (this is a producer home): the role is never
            # this home's while the stamp stands; look again now and then, without a word.
            return max(self.poll_interval, 10.0)
        except Exception as exc:
            first, longest = self.RETRY_AFTER_FAILURE
            if self.error is None:
                print(f"memwal: the committer stopped: {exc} (retrying)", file=sys.stderr)
            self.error = exc
            self.failures += 1
            return min(first * 2 ** (self.failures - 1), longest)
        finally:
            self.holding.clear()


class CommitCounts(NamedTuple):
    """What the committer did with a set of batches, summed."""

    committed: int
    dead_lettered: int
    skipped: int

    def as_json(self) -> dict[str, int]:
        return dict(self._asdict())


NO_COMMITTER_AFTER = 20.0  # seconds: longer than a Redis committer claim lasts
SAY_WAITING_AFTER = 0.5  # seconds of waiting on a shared queue before saying what for


class WaitReporter:
    """Says what a writer on a shared queue waits for: once it has waited SAY_WAITING_AFTER
    seconds (well within a second), then each time that changes (a committer came or went).
    Silent when the wait is short."""

    def __init__(self, on_wait: Callable[[str], None] | None) -> None:
        self.on_wait = on_wait
        self.started = time.monotonic()
        self.said: bool | None = None  # whether a committer held the queue when we last said

    def waiting(self, remaining: int, holder: str | None) -> None:
        if self.on_wait is None or time.monotonic() - self.started < SAY_WAITING_AFTER:
            return
        if self.said is not None and self.said == (holder is not None):
            return
        self.said = holder is not None
        if holder is not None:
            self.on_wait(f"waiting for the committer on the shared queue ({holder}) to commit "
                         f"{remaining} batches")
        else:
            self.on_wait(f"waiting: no committer holds the shared queue; {remaining} batches are "
                         f"queued (durable). Start `mm queue worker` on the machine that holds "
                         f"the index (giving up after {NO_COMMITTER_AFTER:.0f} s without one)")


class Host:
    """One process's place beside the committer for the length of a piece of work: the home's
    queue (one handle, opened when first asked for), the committed state read through it
    (`committed`: one read connection), and the committer role when this process hosts it.
    Made by `hosting`, which closes it."""

    def __init__(self, settings: Settings, queue_role: Role = Role.PRODUCER) -> None:
        self.settings = settings
        self.queue_role = queue_role
        self._queue: WriteAheadQueue | None = None
        self._committed: Committed | None = None
        self.lock = CommitterLock(settings.lock_path)
        self.committer: _CommitterThread | None = None

    @property
    def queue(self) -> WriteAheadQueue:
        if self._queue is None:
            self._queue = open_queue(self.settings, self.queue_role)
        return self._queue

    @property
    def committed(self) -> Committed:
        if self._committed is None:
            self._committed = Committed(self.settings, self.queue)
        return self._committed

    def take_role(self) -> None:
        """Commit in a thread of this process (BackgroundCommitter) if no committer is alive, so
        committing overlaps this process's own work; never on a shared queue, whose committer
        commits into its own index."""
        if self.committer is None and not self.committed.shared and self.lock.try_acquire():
            self.committer = BackgroundCommitter(self.settings, self.lock).start()

    def seek_role(self) -> None:
        """Be the committer whenever the role is free, for the host's life (a RoleSeeker)."""
        if self.committer is None:
            self.committer = RoleSeeker(self.settings).start()

    def wait(self, batch_ids: Sequence[str], *, timeout: float | None = None,
             take_role: bool = True,
             on_wait: Callable[[str], None] | None = None,
             on_remaining: Callable[[int], None] | None = None) -> CommitCounts | None:
        """`wait_committed` through this host's queue handle and read connection, and its
        committer if it hosts one. `on_remaining(n)` is told how many of the batches are not
        committed yet, each time that changes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        reporter = WaitReporter(on_wait)
        committed = self.committed
        take_role = take_role and not committed.shared  # a shared queue's worker commits into its index
        remaining = set(batch_ids)
        totals: dict[str, tuple[int, int, int]] = {}
        unclaimed_since: float | None = None
        told = -1  # the count of remaining batches on_remaining was last told
        while remaining:
            if self.committer is None and take_role and self.lock.try_acquire():
                committed.close()  # reopened below: the committer's connection closes last (close())
                try:  # the committer died, or none ran: drain the queue here
                    with committer_session(self.settings, self.lock) as committer:
                        committer.drain()
                finally:
                    self.lock.release()
            found = committed.ledger_counts(sorted(remaining))
            totals.update(found)
            remaining -= set(found)
            if on_remaining is not None and len(remaining) != told:
                told = len(remaining)
                on_remaining(told)
            if isinstance(self.committer, BackgroundCommitter) and self.committer.error is not None:
                self.committer.join()  # raises what stopped it
            if remaining and committed.shared:
                # A claim vanishes for a moment when its worker restarts or the server did:
                # only a queue without a committer for longer than a claim lasts is given up on.
                now, holder = time.monotonic(), self.queue.holder()
                unclaimed_since = None if holder else unclaimed_since or now
                reporter.waiting(len(remaining), holder)
            if unclaimed_since is not None and time.monotonic() - unclaimed_since > NO_COMMITTER_AFTER:
                raise NoCommitter(
                    f"{len(remaining)} of the batches are queued (durable) but no committer is "
                    "running on the shared queue.", "Start `mm queue worker` on the machine "
                    "that holds the index (they are committed then), or pass --no-wait.")
            if remaining:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                time.sleep(0.05)
        return CommitCounts(*(sum(counts[field] for counts in totals.values()) for field in range(3)))

    def close(self) -> None:
        """Stop hosting: the committer commits the batches in hand and stops (its error is raised
        here), then the role and the queue are let go. The read connection is closed first: the
        committer's connection, closed last, then folds the WAL into the index file (SQLite
        checkpoints when the last connection closes, and a read-only one cannot)."""
        try:
            if self._committed is not None:
                self._committed.close()
            if self.committer is not None:
                self.committer.join()
        finally:
            self.lock.release()
            if self._queue is not None:
                self._queue.close()


@contextmanager
def hosting(settings: Settings, *, seek: bool = False,
            queue_role: Role = Role.PRODUCER) -> Iterator[Host]:
    """A Host for the block: what the producer (`mm index`), the servers (`mm serve`, `mm mcp`)
    and the watcher run their work in. With `seek` (a server started with `--worker`) it is the
    committer whenever the role is free; otherwise it commits only once `take_role()` is asked
    (a lone `mm index` that finds no committer) or while waiting for batches nobody commits.
    Leaving the block lets a hosted committer finish the batches in hand."""
    host = Host(settings, queue_role)
    try:
        if seek:
            host.seek_role()
        yield host
    finally:
        host.close()


def wait_committed(settings: Settings, batch_ids: Sequence[str], *,
                   timeout: float | None = None, take_role: bool = True,
                   on_wait: Callable[[str], None] | None = None) -> CommitCounts | None:
    """Block until every batch is committed (in the ledger): read your own writes.

    When no committer is alive, this process takes the role and drains the queue itself, unless
    `take_role` is False (a server that leaves committing to its worker). Returns their
    CommitCounts (committed, dead-lettered, skipped items), or None if `timeout` seconds passed
    first (the batches stay queued and will be committed). On a shared queue, `on_wait(message)`
    says what it waits for, within a second and when that changes. Raises what a committer
    raises (StorageError when the index cannot be written).
    """
    with hosting(settings, queue_role=Role.READER) as host:
        return host.wait(batch_ids, timeout=timeout, take_role=take_role, on_wait=on_wait)
