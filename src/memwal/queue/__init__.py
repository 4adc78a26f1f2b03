"""The write-ahead queue behind one contract: `open_queue(settings, role)` is the only way in.

No module outside this package opens the queue's storage. The backend is the setting
`queue.backend` (env MM_QUEUE_BACKEND): `sqlite` (`<home>/queue.sqlite3`, the default) or `memory`
(one process only; for fast tests) or `redis` (`queue.url`: writers on many machines). Every backend passes the contract suite in
tests/test_queue_contract.py; the contract itself is `protocol.WriteAheadQueue`.
"""

from __future__ import annotations

from enum import Enum
from typing import Iterator

from memwal.config import Settings, ensure_home
from memwal.errors import QueueError
from memwal.queue.memory import MemoryQueues
from memwal.queue.protocol import (Delivery, Lease, Publication, QueueCounts, QueueGeneration,
                                   WriteAheadQueue)

__all__ = ["Delivery", "Lease", "Publication", "QueueCounts", "QueueGeneration", "Role",
           "WriteAheadQueue", "legacy_backlog", "open_queue"]


class Role(Enum):
    """What a caller will do with the queue; it decides durability and whether to create it."""

    PRODUCER = "producer"    # puts: every put durable before it returns
    COMMITTER = "committer"  # takes, acknowledges, recovers: leases and acks may be lost harmlessly
    READER = "reader"        # counts and reads: never creates, never writes


# The memory backend's queues: the one process-wide registry, because sharing a queue between
# the objects of one process is all that backend is for.
_MEMORY = MemoryQueues()


class _EmptyQueue:
    """What a reader sees of a queue that has never been written."""

    def __init__(self, name: str) -> None:
        self.name = name

    def counts(self) -> QueueCounts:
        return QueueCounts(0, 0)

    def messages(self, max_bytes: int | None = None) -> Iterator[Delivery]:
        return iter(())

    def stuck(self, older_than: float) -> list[Lease]:
        return []

    def _refuse(self, *args: object) -> None:
        raise QueueError("this queue was opened read-only", "Open it as a producer or committer.")

    put = take = acknowledge = recover = claim = _refuse  # type: ignore[assignment]

    publication = None

    def holder(self) -> str | None:
        return None

    def durability(self) -> None:
        return None

    def oldest(self) -> None:
        return None

    def generation(self) -> QueueGeneration:
        return QueueGeneration(None, 0)

    def close(self) -> None:
        pass

    def __enter__(self) -> "_EmptyQueue":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def open_queue(settings: Settings, role: Role = Role.PRODUCER) -> WriteAheadQueue:
    """The home's write-ahead queue, on the configured backend, opened for `role`; close it, or
    use it as a context manager (`with open_queue(settings) as queue:`).

    A producer or committer creates the home (and its id, which names its default queue)
    first; a reader never writes, and reads the queue of the name the home has now.
    """
    backend = settings["queue.backend"]
    if role is not Role.READER:
        ensure_home(settings.home)
    name = settings.queue_name
    if backend == "memory":
        return _MEMORY.open(name)
    if backend == "sqlite":
        from memwal.queue.sqlite import sqlite_queue

        path = settings.queue_path
        if role is Role.READER:
            if not path.exists():
                return _EmptyQueue(name)  # type: ignore[return-value]
            return sqlite_queue(path, name, readonly=True)
        # Rows queued under the home's path-derived name (before home ids) are this queue's.
        legacy = settings.legacy_queue_name
        return sqlite_queue(path, name, durable=role is Role.PRODUCER,
                            legacy_names=(legacy,) if legacy else ())
    if backend == "redis":
        from memwal.queue.redis import redis_queue

        url = settings["queue.url"]
        if not url:
            raise QueueError("the redis queue backend needs a server URL.",
                             "Set queue.url (MM_QUEUE_URL), e.g. redis://127.0.0.1:6379/0.")
        return redis_queue(url, name, lease_timeout=settings["queue.lease_timeout"])
    raise QueueError(f"unknown queue backend {backend!r}",
                     "Set queue.backend to sqlite, memory or redis.")


def legacy_backlog(settings: Settings) -> tuple[str, int] | None:
    """(name, messages) of this home's Redis queue under its path-derived name (before home
    ids), if messages still wait there; None otherwise or for another backend.

    A SQLite queue file renames such rows itself; a Redis queue is shared, so its old name is
    never taken over silently: the committer refuses to start and `mm doctor` fails until it is
    drained (or named explicitly).
    """
    legacy = settings.legacy_queue_name
    if settings["queue.backend"] != "redis" or not legacy:
        return None
    from memwal.queue.redis import redis_queue

    with redis_queue(settings["queue.url"], legacy) as queue:
        total = queue.counts().total
    return (legacy, total) if total else None
