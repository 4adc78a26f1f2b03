"""The one adapter from a leased huey storage to the WriteAheadQueue protocol, for every backend.

Each backend is a subclass of one of huey's storages that adds the verbs at-least-once delivery
needs (`take`, `acknowledge`, `recover`, `counts`, `messages`, `stuck`) and returns positions from
`enqueue`; `LeasedQueue` exposes exactly those verbs over the storage of a huey instance whose
serializer is msgpack, never pickle.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any, Callable, ContextManager, Iterable, Iterator, TypeVar

import msgpack
from huey import Huey
from huey.serializer import Serializer

from memwal.queue.protocol import Delivery, Lease, QueueCounts, QueueGeneration


class MsgpackSerializer(Serializer):
    """huey's serializer with msgpack in place of pickle: decoding can never run code."""

    def _serialize(self, data: object) -> bytes:
        return msgpack.packb(data, use_bin_type=True)

    def _deserialize(self, data: bytes) -> object:
        return msgpack.unpackb(data, raw=False)


def leased_huey(name: str, storage_class: type, **storage_options: Any) -> Huey:
    """A huey instance on a leased storage, FIFO, msgpack, no result store."""
    return Huey(name, results=False, serializer=MsgpackSerializer(), storage_class=storage_class,
                **storage_options)


T = TypeVar("T")
ErrorMap = Callable[[Exception], "Exception | None"]


def as_bytes(value: object) -> bytes:
    """A stored message as bytes, whatever type a damaged or hostile writer left in its place."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return b"" if value is None else repr(value).encode()


def within_budget(sizes: Iterable[int], max_bytes: int) -> int:
    """How many of the first messages, of these sizes in queue order, `take_many` leases: the
    first always, then each that keeps the total at most `max_bytes` (the Redis script keeps the
    same rule in Lua)."""
    count = total = 0
    for size in sizes:
        if count and total + size > max_bytes:
            break
        count, total = count + 1, total + size
    return count


class HueyVerbs:
    """huey's own storage verbs, written once over the leased ones, for every leased storage
    (listed first among its bases so these win over huey's): a huey consumer pointed at one of
    our storages leases, as the committer does, instead of deleting a message before its task
    runs. Sizes and listings count pending (unleased) messages only, so they agree."""

    def take(self) -> Delivery | None:
        taken = self.take_many(1, 0)  # type: ignore[attr-defined]
        return taken[0] if taken else None

    def dequeue(self) -> bytes | None:
        delivery = self.take()
        return None if delivery is None else delivery.data

    def acknowledge(self, position: int) -> None:
        self.acknowledge_many([position])  # type: ignore[attr-defined]

    def queue_size(self) -> int:
        return self.counts().pending  # type: ignore[attr-defined, no-any-return]

    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        leased = {lease.position for lease in self.stuck(float("-inf"))}  # type: ignore[attr-defined]
        pending = (delivery.data for delivery in self.messages()  # type: ignore[attr-defined]
                   if delivery.position not in leased)
        return list(pending if limit is None else itertools.islice(pending, limit))

    def flush_queue(self) -> None:
        """Every message gone (positions are never reused: a late acknowledgement hits nothing)."""
        self.recover()  # type: ignore[attr-defined]
        self.acknowledge_many([d.position for d in self.messages()])  # type: ignore[attr-defined]


class StoredPublication:
    """The Publication verbs of a shared storage, with its errors translated as the queue's are."""

    def __init__(self, queue: "LeasedQueue") -> None:
        self._queue = queue
        self._storage = queue.storage

    def publish(self, state: dict[str, Any], files: dict[str, dict[str, Any]],
                gone: dict[str, list[str]], batches: dict[str, list[int]]) -> None:
        self._queue._call(lambda: self._storage.publish(state, files, gone, batches))

    def published_batches(self, batch_ids: list[str]) -> dict[str, tuple[int, int, int]]:
        return self._queue._call(lambda: self._storage.published_batches(batch_ids))

    def published_state(self) -> dict[str, Any] | None:
        return self._queue._call(self._storage.published_state)

    def published_files(self, namespace: str, sources: list[str] | None) -> dict[str, dict[str, Any]]:
        return self._queue._call(lambda: self._storage.published_files(namespace, sources))


class LeasedQueue:
    """The WriteAheadQueue on a huey instance whose storage leases.

    `translate(exc)` lets a backend turn its storage's errors into memwal's (a damaged file,
    an unreachable server); an error it returns None for is raised as it is.
    """

    def __init__(self, huey: Huey, translate: ErrorMap = lambda exc: None) -> None:
        self.huey = huey
        self.storage = huey.storage
        self.name = huey.name
        self._translate = translate
        self.publication = StoredPublication(self) if hasattr(self.storage, "publish") else None

    def __enter__(self) -> "LeasedQueue":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, verb: Callable[[], T]) -> T:
        try:
            return verb()
        except Exception as exc:
            translated = self._translate(exc)
            if translated is None:
                raise
            raise translated from None

    def put(self, data: bytes) -> int:
        return self._call(lambda: int(self.storage.enqueue(data)))

    def take(self) -> Delivery | None:
        return self._call(self.storage.take)

    def take_many(self, limit: int, max_bytes: int) -> list[Delivery]:
        return self._call(lambda: self.storage.take_many(limit, max_bytes))

    def acknowledge(self, position: int) -> None:
        self._call(lambda: self.storage.acknowledge(position))

    def acknowledge_many(self, positions: list[int]) -> None:
        self._call(lambda: self.storage.acknowledge_many(positions))

    def recover(self) -> int:
        return self._call(lambda: int(self.storage.recover()))

    def counts(self) -> QueueCounts:
        return self._call(self.storage.counts)

    def messages(self, max_bytes: int | None = None) -> Iterator[Delivery]:
        return iter(self._call(lambda: list(self.storage.messages(max_bytes))))

    def stuck(self, older_than: float) -> list[Lease]:
        return self._call(lambda: self.storage.stuck(older_than))

    def claim(self) -> ContextManager[None]:
        claim = getattr(self.storage, "claim", None)
        return contextlib.nullcontext() if claim is None else self._call(claim)

    def holder(self) -> str | None:
        holder = getattr(self.storage, "holder", None)
        return None if holder is None else self._call(holder)

    def oldest(self) -> Delivery | None:
        return self._call(self.storage.oldest)

    def durability(self) -> str | None:
        check = getattr(self.storage, "durability", None)
        return None if check is None else self._call(check)

    def generation(self) -> QueueGeneration:
        return self._call(self.storage.generation)

    def bind(self, index_id: str | None, about: dict[str, Any]) -> dict[str, Any] | None:
        bind = getattr(self.storage, "bind", None)
        return None if bind is None else self._call(lambda: bind(index_id, about))

    def close(self) -> None:
        self.storage.close()
