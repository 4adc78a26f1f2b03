"""The one adapter from a leased huey storage to the WriteAheadQueue protocol, for every backend.

Each backend is a subclass of one of huey's storages that adds the verbs at-least-once delivery
needs (`take`, `acknowledge`, `recover`, `counts`, `messages`) and returns positions from
`enqueue`; `LeasedQueue` exposes exactly those verbs over the storage of a huey instance whose
serializer is msgpack, never pickle.
"""

from __future__ import annotations

from typing import Any, Iterator

import msgpack
from huey import Huey
from huey.serializer import Serializer

from memwal.queue.protocol import Delivery, QueueCounts


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


class LeasedQueue:
    """The WriteAheadQueue on a huey instance whose storage leases."""

    def __init__(self, huey: Huey) -> None:
        self.huey = huey
        self.storage = huey.storage
        self.name = huey.name

    def put(self, data: bytes) -> int:
        return int(self.storage.enqueue(data))

    def take(self) -> Delivery | None:
        return self.storage.take()

    def acknowledge(self, position: int) -> None:
        self.storage.acknowledge(position)

    def recover(self) -> int:
        return int(self.storage.recover())

    def counts(self) -> QueueCounts:
        return self.storage.counts()

    def messages(self, max_bytes: int | None = None) -> Iterator[Delivery]:
        return self.storage.messages(max_bytes)

    def close(self) -> None:
        self.storage.close()
