"""The contract every write-ahead queue backend keeps (SQLite, memory, and any later one).

The contract suite (tests/test_queue_contract.py) runs the same tests against every backend; a
backend is done when it passes. The guarantees that rest on the queue (docs/architecture.md):

- **durable enqueue**: `put` returns only once the message survives a crash of the producer (and,
  for a persistent backend, of the machine as far as its storage promises);
- **at-least-once delivery with a lease**: `take` leases the first pending message; a leased
  message is not handed out again, and it leaves the queue only when `acknowledge` is called,
  which the committer does only after the index transaction that applied it has committed;
- **order**: messages are taken in the order they were put (FIFO by position, across producers);
  a message whose lease is released by `recover` is pending again *at its original position*,
  ahead of everything put after it;
- **no lease outlives its holder**: a lease whose holder is gone (a committer that stopped
  renewing it for `queue.lease_timeout`, or this very queue object after a lost connection
  dropped the reply that would have handed it over) is put back at its place before anything
  after it is taken, so nothing is committed ahead of it. A backend whose queue lives beside
  the index (SQLite, memory) has no connection to lose, and its committer's lock dies with it:
  the next committer's `recover` is all it needs. A queue on a server (Redis) names each
  lease's holder and checks it on every take;
- exactly-once *effect* is not the queue's job: the committer's ledger skips a redelivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ContextManager, Iterator, Protocol, Self


@dataclass(frozen=True)
class Delivery:
    """A message handed to the committer: its queue position (FIFO order) and its bytes."""

    position: int
    data: bytes


@dataclass(frozen=True)
class QueueCounts:
    """How many messages wait (pending) and how many are leased (in flight)."""

    pending: int
    inflight: int

    @property
    def total(self) -> int:
        return self.pending + self.inflight


@dataclass(frozen=True)
class QueueGeneration:
    """Which incarnation of a queue this is, and how far its positions have gone.

    `epoch` is an id the queue's storage gets when it is created (a new queue file; a Redis
    queue's first put or first committer, so a Redis queue whose keys were lost gets a new one;
    None before that); `last_position` is the
    highest position handed out in this epoch (0 if none). A committer that saw a higher
    position, or another epoch, knows the queue was re-created under it.
    """

    epoch: str | None
    last_position: int
    # False for a queue that lives only as long as its process (memory): a new epoch at each
    # start is what it is, not a loss.
    persistent: bool = True


@dataclass(frozen=True)
class Lease:
    """One in-flight message: its position, since when it is leased (unix seconds, on the
    queue's clock) and for how long so far (seconds, measured on that same clock)."""

    position: int
    since: float
    held_for: float


class WriteAheadQueue(Protocol):
    """A durable FIFO queue of opaque messages with leases. Positions are never reused."""

    name: str

    def put(self, data: bytes) -> int:
        """Append a message; return its position only once it is durable.

        Positions grow strictly with every put and are never reused, even after acknowledgement.
        """
        ...

    def take(self) -> Delivery | None:
        """Lease the first pending message and return it; None if nothing is pending.

        The message stays in the queue, in flight, until `acknowledge` or `recover`. A lease
        no live holder has (see the module's "no lease outlives its holder") is put back first.
        """
        ...

    def take_many(self, limit: int, max_bytes: int) -> list[Delivery]:
        """Lease the first pending messages, in queue order: at most `limit` of them, and no more
        than `max_bytes` of data in all, except that the first is always taken. Empty if nothing
        is pending. What a committer that commits several batches in one transaction takes.
        """
        ...

    def acknowledge(self, position: int) -> None:
        """Remove a leased message for good. Call only after its effect is committed.

        Acknowledging a position that is not in the queue is a no-op.
        """
        ...

    def acknowledge_many(self, positions: list[int]) -> None:
        """`acknowledge` every one of `positions`, as one write (all or none of them)."""
        ...

    def recover(self) -> int:
        """Release every lease: those messages are pending again at their original positions.

        A starting committer calls it (its predecessor may have died holding leases); return how
        many leases were released.
        """
        ...

    def counts(self) -> QueueCounts:
        """Pending and in-flight messages, as one consistent reading."""
        ...

    def stuck(self, older_than: float) -> list[Lease]:
        """The leases taken more than `older_than` seconds ago, in queue order, read-only.

        A live committer holds a lease for one group commit (seconds); `mm doctor` asks for
        those older than `queue.lease_timeout` to say which messages are stuck and since when.
        """
        ...

    def messages(self, max_bytes: int | None = None) -> Iterator[Delivery]:
        """Every message still in the queue (pending and in flight), in queue order, read-only.

        With `max_bytes`, only messages at most that large (e.g. to find queued resets, which
        are small, without reading the data batches).
        """
        ...

    def oldest(self) -> Delivery | None:
        """The first pending message, without leasing it (how long the queue has waited)."""
        ...

    def claim(self) -> ContextManager[None]:
        """Hold this queue's committer claim for the block; CommitterBusy naming the holder if
        another process holds it. A backend whose queue lives beside the index (SQLite, memory)
        claims nothing: the index's own lock already makes its committer the only one. A shared
        backend (Redis) must, because committers on other machines cannot see that lock."""
        ...

    def holder(self) -> str | None:
        """Who holds the claim ("host pid N"), for a backend that has one; else None."""
        ...

    def durability(self) -> str | None:
        """Why acknowledged writes could be lost with this backend's settings, or None."""
        ...

    def generation(self) -> QueueGeneration:
        """The queue's epoch and the highest position handed out in it (read-only)."""
        ...

    def bind(self, index_id: str | None, about: dict[str, Any]) -> dict[str, Any] | None:
        """Stamp the queue as the queue of the index `index_id` (with `about`: host, home) if it
        has no stamp yet; return the stamp of another index that holds it, else None. With
        `index_id` None (a home with no index yet) only look: any stamp is another index's.

        A shared backend (Redis) keeps the stamp so that a committer of another index is
        refused; a backend whose queue lives beside its index stamps nothing (None).
        """
        ...

    @property
    def publication(self) -> "Publication | None":
        """Where the queue is shared across machines (Redis), the committed state that producers
        there need beside it (`memwal.committed`); None for a queue beside its index."""
        ...

    def close(self) -> None:
        """Release the backend's connections; the queue object is not used afterwards."""
        ...

    def __enter__(self) -> Self:
        ...

    def __exit__(self, *exc: object) -> None:
        """`close()`: `with open_queue(...) as queue:` closes it whatever happens."""
        ...


class Publication(Protocol):
    """The committed state a shared queue carries for producers on other machines, which have no
    index to read: the committer publishes it after each commit (`memwal.committed`), producers
    diff against it, and writers waiting for their batches read the ledger counts from it."""

    def publish(self, state: dict[str, Any], files: dict[str, dict[str, Any]],
                gone: dict[str, list[str]], batches: dict[str, list[int]]) -> None:
        """Publish the committer's state, by namespace files' entries (and files gone), and the
        ledger counts (committed, dead-lettered, skipped) of batches just committed."""
        ...

    def published_batches(self, batch_ids: list[str]) -> dict[str, tuple[int, int, int]]:
        """The published ledger counts of those batches that are committed."""
        ...

    def published_state(self) -> dict[str, Any] | None:
        """The last published state (active model, commit sequence), None if never."""
        ...

    def published_files(self, namespace: str, sources: list[str] | None) -> dict[str, dict[str, Any]]:
        """Published entries of those files (all the namespace's with None)."""
        ...
