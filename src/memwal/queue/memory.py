"""The in-memory backend: huey's memory storage with the same leases, for fast tests.

Nothing survives the process, so it is never durable and never shared between processes; within
one process every `open_queue` of the same queue name returns the same storage, so a producer
and a committer in one test see one queue.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from typing import Iterator

from huey import Huey
from huey.storage import MemoryStorage

from memwal.queue.leased import HueyVerbs, LeasedQueue, leased_huey, within_budget
from memwal.queue.protocol import Delivery, Lease, QueueCounts, QueueGeneration


class LeasedMemoryStorage(HueyVerbs, MemoryStorage):
    """huey's memory storage, FIFO by position, with take → lease → acknowledge and recover."""

    priority = False  # strictly FIFO by position: nothing in memwal enqueues with a priority

    def __init__(self, name: str = "memwal", **options: object) -> None:
        super().__init__(name)
        self._messages: dict[int, bytes] = {}  # position → data, in position order
        self._leased: dict[int, float] = {}  # position → when it was taken (unix seconds)
        self._next = 1
        self._epoch = uuid.uuid4().hex  # one per storage: it lives as long as the process
        self._lock = threading.RLock()

    def enqueue(self, data: bytes, priority: float | None = None) -> int:  # type: ignore[override]
        with self._lock:
            position, self._next = self._next, self._next + 1
            self._messages[position] = bytes(data)
            return position

    def take_many(self, limit: int, max_bytes: int) -> list[Delivery]:
        with self._lock:
            pending = list(itertools.islice(
                ((position, data) for position, data in self._messages.items()
                 if position not in self._leased), max(1, limit)))
            taken = pending[:within_budget((len(data) for _, data in pending), max_bytes)]
            now = time.time()
            self._leased.update((position, now) for position, _ in taken)
        return [Delivery(position, data) for position, data in taken]

    def acknowledge_many(self, positions: list[int]) -> None:
        with self._lock:
            for position in positions:
                self._messages.pop(position, None)
                self._leased.pop(position, None)

    def recover(self) -> int:
        with self._lock:
            released = len(self._leased)
            self._leased.clear()
            return released

    def oldest(self) -> Delivery | None:
        with self._lock:
            for position, data in self._messages.items():
                if position not in self._leased:
                    return Delivery(position, data)
        return None

    def durability(self) -> str:
        return "the memory backend keeps nothing once its process ends (it is for tests)"

    def generation(self) -> QueueGeneration:
        with self._lock:
            return QueueGeneration(self._epoch, self._next - 1, persistent=False)

    def counts(self) -> QueueCounts:
        with self._lock:
            return QueueCounts(len(self._messages) - len(self._leased), len(self._leased))

    def stuck(self, older_than: float) -> list[Lease]:
        now = time.time()
        with self._lock:
            return [Lease(position, since, now - since) for position, since
                    in sorted(self._leased.items()) if now - since > older_than]

    def messages(self, max_bytes: int | None = None) -> Iterator[Delivery]:
        with self._lock:
            snapshot = list(self._messages.items())
        for position, data in snapshot:
            if max_bytes is None or len(data) <= max_bytes:
                yield Delivery(position, data)


class MemoryQueues:
    """The memory queues of one process, by queue name."""

    def __init__(self) -> None:
        self._hueys: dict[str, Huey] = {}
        self._lock = threading.Lock()

    def open(self, name: str) -> LeasedQueue:
        with self._lock:
            if name not in self._hueys:
                self._hueys[name] = leased_huey(name, LeasedMemoryStorage)
            return LeasedQueue(self._hueys[name])
