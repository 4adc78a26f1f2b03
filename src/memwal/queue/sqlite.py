"""The SQLite backend: huey's SQLite storage on `<home>/queue.sqlite3`, leased, strict FIFO, msgpack.

huey 3.5.4's `SqliteStorage.dequeue` deletes a row before the task runs, so a consumer killed
mid-task loses it, and huey has no acknowledgement. `LeasedSqliteStorage` changes exactly the
verbs that must change: `take`/`dequeue` leases the first message (its id goes into `inflight`;
the row stays in `task`, at its queue position), `acknowledge` deletes row and lease once the
batch is committed, and `recover` drops the leases, so every message that was in flight is
pending again at its original position. huey's own storage test suite runs against it
(benchmarks/huey_storage_suite.py; the intended differences are in docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Iterator

from huey.storage import SqliteStorage

from memwal.errors import DAMAGED_QUEUE_FIX, DamagedFile, QueueError, is_damage
from memwal.queue.leased import HueyVerbs, LeasedQueue, as_bytes, leased_huey, within_budget
from memwal.queue.protocol import Delivery, Lease, QueueCounts, QueueGeneration
from memwal.safeio import (NotRegularFile, create_private, readonly_uri, refuse_links,
                           sqlite_companions)

# The name every queue file written before queue names were per home used.
LEGACY_NAME = "memwal"


class LeasedSqliteStorage(HueyVerbs, SqliteStorage):
    """huey's SQLite storage with at-least-once delivery: taken → leased → acknowledged.

    A taken message stays in `task`, at its place; `take` only records its id in `inflight` (a
    lease: the bytes are not copied, which was a third of the queue's cost per batch), a leased
    message is not handed out again, `acknowledge` deletes the row and its lease in one
    transaction once the batch is committed, and `recover` drops the leases, which leaves every
    message exactly where it was in the queue. huey's size and listing verbs count pending
    (unleased) messages only, so `queue_size()` and `enqueued_items()` agree.
    """

    priority = False  # strictly FIFO by position (huey's suite then skips its priority test)

    table_inflight = (
        "create table if not exists inflight ("
        "id integer not null primary key, queue text not null, taken_at real not null)"
    )
    # The file's own facts: its epoch, a random id made with the file. Positions (AUTOINCREMENT,
    # strict_fifo) never go back within a file, but a deleted file starts again at 1: the epoch
    # tells the committer so, and keeps ledger ids of the new file's positions apart.
    table_about = "create table if not exists memwal_queue (key text primary key, value text not null)"
    _unleased = "queue = ? and id not in (select id from inflight)"

    def __init__(self, *args: object, synchronous: str = "FULL", readonly: bool = False,
                 legacy_names: tuple[str, ...] = (LEGACY_NAME,), **kwargs: object) -> None:
        # huey's fsync=False means synchronous=OFF, which can corrupt a WAL file on power loss;
        # NORMAL cannot, so the level is set here instead (FULL or NORMAL).
        self._synchronous = synchronous
        self._readonly = readonly
        self._legacy_names = legacy_names
        self.ddl: list[str] = list(SqliteStorage.ddl) + [self.table_inflight, self.table_about]
        if readonly:
            kwargs.update(create_tables=False, journal_mode=None)
        super().__init__(*args, **kwargs)
        if not readonly:
            self._upgrade()

    def _create_connection(self):  # type: ignore[no-untyped-def]
        if not self._readonly:
            conn = super()._create_connection()
            conn.execute(f"pragma synchronous={self._synchronous}")
            # Debian's SQLite is built with SECURE_DELETE: an acknowledge would overwrite every
            # freed page of a batch with zeros, which was 9 in 10 of its time (a group of 64
            # batches: 228 ms, 28 ms with "fast"). "fast" still clears what is deleted from
            # b-tree pages; freed overflow pages keep their bytes until the next puts reuse them
            # (the same text lives in the index).
            conn.execute("pragma secure_delete=fast")
            return conn
        conn = sqlite3.connect(readonly_uri(Path(self.filename)), uri=True, timeout=self._timeout,
                               check_same_thread=False)
        conn.isolation_level = None
        return conn

    def _upgrade(self) -> None:
        with self.db(commit=True) as cursor:
            # Queue files from before leases kept a copy of each in-flight message in `inflight`.
            columns = {row[1] for row in cursor.execute("pragma table_info(inflight)")}
            if "data" in columns:
                cursor.execute("insert or ignore into task (id, queue, data, priority) "
                               "select id, queue, data, priority from inflight")
                cursor.execute("drop table inflight")
                cursor.execute(self.table_inflight)
            # Queue files from before per-home names used one constant name, and those from
            # before home ids a name derived from the home's path: their rows are this queue's.
            for legacy in self._legacy_names:
                if legacy != self.name:
                    cursor.execute("update task set queue = ? where queue = ?", (self.name, legacy))
                    cursor.execute("update inflight set queue = ? where queue = ?",
                                   (self.name, legacy))
            cursor.execute("insert or ignore into memwal_queue (key, value) values "
                           "('epoch', lower(hex(randomblob(16))))")

    # -- huey's verbs, with leases -----------------------------------------------------------

    def enqueue(self, data: bytes, priority: float | None = None) -> int:  # type: ignore[override]
        """Insert and commit (durable: synchronous=FULL); return the queue position.

        Every verb reads in position order alone: huey's `priority` column is kept for its
        schema, but a row a hostile or foreign writer gave a priority never jumps the queue.
        """
        with self.db(commit=True) as cursor:
            cursor.execute("insert into task (queue, data, priority) values (?, ?, ?)",
                           (self.name, self.to_blob(data), priority or 0))
            return int(cursor.lastrowid)

    def take_many(self, limit: int, max_bytes: int) -> list[Delivery]:
        """Lease the first pending messages (at most `limit`, at most `max_bytes` after the first)."""
        if not self.sql(f"select 1 from task where {self._unleased} limit 1", (self.name,),
                        results=True):
            return []
        with self.db(commit=True) as cursor:
            # Sizes first (length() of a blob does not read it), so a message past the byte
            # budget is never loaded.
            cursor.execute(f"select id, length(data) from task where {self._unleased} "
                           "order by id limit ?", (self.name, max(1, limit)))
            sized = cursor.fetchall()
            taken = sized[:within_budget((size or 0 for _, size in sized), max_bytes)]
            chosen = [int(position) for position, _ in taken]
            if not chosen:
                return []
            marks = ",".join("?" * len(chosen))
            cursor.execute(f"select id, data from task where id in ({marks})", chosen)
            found = dict(cursor.fetchall())
            now = time.time()
            cursor.executemany("insert into inflight (id, queue, taken_at) values (?, ?, ?)",
                               [(position, self.name, now) for position in chosen])
            # A row a damaged or hostile writer filled with text or a number is still delivered
            # (as the bytes that could be read): the committer dead-letters it, never dies on it.
            return [Delivery(position, as_bytes(found[position])) for position in chosen]

    def acknowledge_many(self, positions: list[int]) -> None:
        rows = [(position, self.name) for position in positions]
        with self.db(commit=True) as cursor:
            cursor.executemany("delete from task where id = ? and queue = ?", rows)
            cursor.executemany("delete from inflight where id = ? and queue = ?", rows)

    def recover(self) -> int:
        """Release every lease: those messages are pending again, at their place. Return how many."""
        with self.db(commit=True) as cursor:
            cursor.execute("delete from inflight where queue = ?", (self.name,))
            return int(cursor.rowcount)

    # -- what the contract adds --------------------------------------------------------------

    def _tables_missing(self) -> bool:
        # Only a reader can meet a file whose first writer has not created the tables yet.
        return self._readonly and not self.sql(
            "select 1 from sqlite_master where name = 'inflight'", results=True)

    def counts(self) -> QueueCounts:
        if self._tables_missing():
            return QueueCounts(0, 0)
        with self.db() as cursor:  # one read transaction: both counts from the same snapshot
            cursor.execute("begin")
            try:
                total = cursor.execute("select count(*) from task where queue = ?",
                                       (self.name,)).fetchone()[0]
                leased = cursor.execute("select count(*) from inflight where queue = ?",
                                        (self.name,)).fetchone()[0]
            finally:
                cursor.execute("commit")
        return QueueCounts(int(total) - int(leased), int(leased))

    def generation(self) -> QueueGeneration:
        """The file's epoch and the highest position it handed out (sqlite_sequence, which
        AUTOINCREMENT keeps even when every row is acknowledged)."""
        if self._tables_missing() or not self.sql(
                "select 1 from sqlite_master where name = 'memwal_queue'", results=True):
            return QueueGeneration(None, 0)
        with self.db() as cursor:
            cursor.execute("begin")
            try:
                epoch = cursor.execute("select value from memwal_queue where key = 'epoch'"
                                       ).fetchone()
                last = cursor.execute("select seq from sqlite_sequence where name = 'task'"
                                      ).fetchone()
            finally:
                cursor.execute("commit")
        return QueueGeneration(epoch[0] if epoch else None, int(last[0]) if last else 0)

    def stuck(self, older_than: float) -> list[Lease]:
        if self._tables_missing():
            return []
        now = time.time()  # `taken_at` is this machine's clock: the file is local
        rows = self.sql("select id, taken_at from inflight where queue = ? and taken_at < ? "
                        "order by id", (self.name, now - older_than), results=True)
        return [Lease(int(position), float(since), now - float(since)) for position, since in rows]

    def oldest(self) -> Delivery | None:
        if self._tables_missing():
            return None
        rows = self.sql(f"select id, data from task where {self._unleased} "
                        "order by id limit 1", (self.name,), results=True)
        return Delivery(int(rows[0][0]), as_bytes(rows[0][1])) if rows else None

    def messages(self, max_bytes: int | None = None) -> Iterator[Delivery]:
        if self._tables_missing():
            return
        query = "select id, data from task where queue = ?"
        params: tuple[object, ...] = (self.name,)
        if max_bytes is not None:
            query += " and length(data) <= ?"
            params += (max_bytes,)
        for position, data in self.sql(query + " order by id", params, results=True):
            yield Delivery(int(position), as_bytes(data))


def sqlite_queue(path: Path, name: str, *, durable: bool = True, readonly: bool = False,
                 timeout: float = 30.0, legacy_names: tuple[str, ...] = ()) -> LeasedQueue:
    """The queue in the SQLite file `path`: durable puts (synchronous=FULL) unless `durable` is
    False (the committer's leases and acknowledgements), or a reader that never writes.
    Rows under one of `legacy_names` (or the constant name of the first queue files) are
    renamed to `name` by a writer that opens the file.

    The file and its companions are refused if they are symlinks; a new file is made private
    (0600) before SQLite opens it, and so are its companions. A damaged file is a DamagedFile error naming it, from the open or from any verb.
    """
    try:
        refuse_links(*sqlite_companions(path))
    except NotRegularFile as exc:
        raise QueueError(f"{exc.filename} is a symlink: memwal never follows links in its home.",
                         "Remove the link (and find out who put it there).") from None

    def translate(exc: Exception) -> Exception | None:
        if is_damage(exc):
            return DamagedFile(f"the queue {path} is damaged ({exc}).", DAMAGED_QUEUE_FIX)
        return None

    if not readonly:
        # Before SQLite makes it, so that its -wal and -shm are private too. A folder we cannot
        # write fails here as it fails in SQLite, which says so in its own words below.
        with contextlib.suppress(OSError):
            create_private(path)
    try:
        huey = leased_huey(name, LeasedSqliteStorage, filename=str(path), strict_fifo=True,
                           synchronous="FULL" if durable else "NORMAL", readonly=readonly,
                           timeout=timeout, legacy_names=(LEGACY_NAME, *legacy_names))
    except Exception as exc:
        raise (translate(exc) or exc) from None
    return LeasedQueue(huey, translate)
