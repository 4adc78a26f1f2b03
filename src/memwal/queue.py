"""The durable write-ahead queue: a huey instance on `<home>/queue.sqlite3`, strict FIFO, msgpack.

huey 3.5.4's `SqliteStorage.dequeue` deletes a row before the task runs, so a consumer killed
mid-task loses it, and huey has no acknowledgement. `InFlightSqliteStorage` changes exactly the
verbs that must change: `take`/`dequeue` leases the first message (its id goes into `inflight`;
the row stays in `task`, at its queue position), `acknowledge` deletes row and lease once the
batch is committed, and `recover` drops the leases when a new committer starts, so every message
that was in flight is pending again at its original position.

The committer talks to the `WriteAheadQueue` protocol, not to huey, so another backend can slot in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

import msgpack
from huey import Huey
from huey.serializer import Serializer
from huey.storage import SqliteStorage

QUEUE_NAME = "memwal"


@dataclass(frozen=True)
class Delivery:
    """A message handed to the committer: its bytes and its queue position (FIFO id)."""

    position: int
    data: bytes


class WriteAheadQueue(Protocol):
    """What producers and the committer need of a durable FIFO queue with acknowledgement."""

    def put(self, data: bytes) -> int: ...
    def take(self) -> Delivery | None: ...
    def acknowledge(self, position: int) -> None: ...
    def recover(self) -> int: ...
    def pending(self) -> int: ...
    def inflight(self) -> int: ...
    def close(self) -> None: ...


class MsgpackSerializer(Serializer):
    """huey's serializer with msgpack in place of pickle: decoding can never run code."""

    def _serialize(self, data: object) -> bytes:
        return msgpack.packb(data, use_bin_type=True)

    def _deserialize(self, data: bytes) -> object:
        return msgpack.unpackb(data, raw=False)


class InFlightSqliteStorage(SqliteStorage):
    """huey's SQLite storage with at-least-once delivery: taken → leased → acknowledged.

    A taken message stays in `task`, at its place; `take` only records its id in `inflight` (a
    lease: the bytes are not copied, which was a third of the queue's cost per batch), a leased
    message is not handed out again, `acknowledge` deletes the row and its lease in one
    transaction once the batch is committed, and `recover` drops the leases, which leaves every
    message exactly where it was in the queue.
    """

    table_inflight = (
        "create table if not exists inflight ("
        "id integer not null primary key, queue text not null, taken_at real not null)"
    )
    _unleased = "queue = ? and id not in (select id from inflight)"

    def __init__(self, *args: object, synchronous: str = "FULL", **kwargs: object) -> None:
        # huey's fsync=False means synchronous=OFF, which can corrupt a WAL file on power loss;
        # NORMAL cannot, so the level is set here instead (FULL or NORMAL).
        self._synchronous = synchronous
        self.ddl = list(self.ddl) + [self.table_inflight]
        super().__init__(*args, **kwargs)
        self._upgrade_inflight()

    def _create_connection(self):  # type: ignore[no-untyped-def]
        conn = super()._create_connection()
        conn.execute(f"pragma synchronous={self._synchronous}")
        return conn

    def _upgrade_inflight(self) -> None:
        # Queue files from before leases kept a copy of each in-flight message in `inflight`.
        columns = {row[1] for row in self.sql("pragma table_info(inflight)", results=True)}
        if "data" not in columns:
            return
        with self.db(commit=True) as cursor:
            cursor.execute("insert or ignore into task (id, queue, data, priority) "
                           "select id, queue, data, priority from inflight")
            cursor.execute("drop table inflight")
            cursor.execute(self.table_inflight)

    def enqueue(self, data: bytes, priority: float | None = None) -> int:  # type: ignore[override]
        """Insert and commit (durable: synchronous=FULL); return the queue position."""
        with self.db(commit=True) as cursor:
            cursor.execute("insert into task (queue, data, priority) values (?, ?, ?)",
                           (self.name, self.to_blob(data), priority or 0))
            return int(cursor.lastrowid)

    def take(self) -> Delivery | None:
        """Lease the first pending message and return it."""
        if not self.sql(f"select 1 from task where {self._unleased} limit 1", (self.name,),
                        results=True):
            return None
        with self.db(commit=True) as cursor:
            cursor.execute(f"select id, data from task where {self._unleased} "
                           "order by priority desc, id limit 1", (self.name,))
            row = cursor.fetchone()
            if row is None:
                return None
            position, data = row
            cursor.execute("insert into inflight (id, queue, taken_at) values (?, ?, ?)",
                           (position, self.name, time.time()))
            return Delivery(int(position), bytes(data))

    def dequeue(self) -> bytes | None:
        delivery = self.take()
        return None if delivery is None else delivery.data

    def acknowledge(self, position: int) -> None:
        with self.db(commit=True) as cursor:
            cursor.execute("delete from task where id = ?", (position,))
            cursor.execute("delete from inflight where id = ?", (position,))

    def recover(self) -> int:
        """Release every lease: those messages are pending again, at their place. Return how many."""
        with self.db(commit=True) as cursor:
            cursor.execute("delete from inflight where queue = ?", (self.name,))
            return int(cursor.rowcount)

    def queue_size(self) -> int:
        return self.sql(f"select count(*) from task where {self._unleased}", (self.name,),
                        results=True)[0][0]

    def inflight_size(self) -> int:
        return self.sql("select count(*) from inflight where queue = ?", (self.name,),
                        results=True)[0][0]

    def pending_rows(self, max_bytes: int | None = None) -> Iterator[tuple[int, bytes]]:
        """(position, data) of pending and in-flight messages in queue order, optionally small ones."""
        query = "select id, data from task where queue = ?"
        params: tuple[object, ...] = (self.name,)
        if max_bytes is not None:
            query += " and length(data) <= ?"
            params += (max_bytes,)
        for position, data in self.sql(query + " order by id", params, results=True):
            yield int(position), bytes(data)


class HueyQueue:
    """The WriteAheadQueue on huey's SQLite storage."""

    def __init__(self, path: Path, timeout: float = 30.0, durable: bool = True) -> None:
        self.path = path
        self.huey = Huey(
            QUEUE_NAME,
            results=False,
            serializer=MsgpackSerializer(),
            storage_class=InFlightSqliteStorage,
            filename=str(path),
            strict_fifo=True,
            synchronous="FULL" if durable else "NORMAL",
            timeout=timeout,
        )
        self.storage: InFlightSqliteStorage = self.huey.storage

    def put(self, data: bytes) -> int:
        return self.storage.enqueue(data)

    def take(self) -> Delivery | None:
        return self.storage.take()

    def acknowledge(self, position: int) -> None:
        self.storage.acknowledge(position)

    def recover(self) -> int:
        return self.storage.recover()

    def pending(self) -> int:
        return self.storage.queue_size()

    def inflight(self) -> int:
        return self.storage.inflight_size()

    def pending_rows(self, max_bytes: int | None = None) -> Iterator[tuple[int, bytes]]:
        return self.storage.pending_rows(max_bytes)

    def close(self) -> None:
        self.storage.close()


def open_queue(path: Path, durable: bool = True) -> HueyQueue:
    """Open (creating if needed) the queue file.

    `durable=False` (synchronous=NORMAL: no fsync per commit, still corruption-safe) is for the committer only: its
    writes to the queue are leases and acknowledgements, and losing either to a power cut is
    harmless (the message is pending again; a redelivery is skipped by the ledger). Enqueues
    must be durable, and a later durable commit syncs the earlier frames of the WAL with it.
    """
    return HueyQueue(path, durable=durable)


def queue_counts(path: Path) -> tuple[int, int]:
    """(pending, in flight) read without creating or locking the queue file."""
    import sqlite3

    if not path.exists():
        return 0, 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        tables = {name for (name,) in conn.execute("select name from sqlite_master where type='table'")}
        if "task" not in tables:
            return 0, 0
        queued = conn.execute("select count(*) from task where queue=?", (QUEUE_NAME,)).fetchone()[0]
        inflight = conn.execute("select count(*) from inflight where queue=?", (QUEUE_NAME,)
                                ).fetchone()[0] if "inflight" in tables else 0
        return int(queued) - int(inflight), int(inflight)
    finally:
        conn.close()
