"""The queue contract (memwal.queue.protocol), one suite run against every backend.

Modelled on huey's own `StorageTests` (one mixin, every storage): the points of it that apply to
a write-ahead queue are here — FIFO order, sizes after each take, listing, a queue per name,
many consumers taking at once — plus what at-least-once adds: leases, acknowledgement after
commit, recovery at the original position, durability across a killed process. huey's suite
itself also runs against our storages (benchmarks/huey_storage_suite.py, docs/architecture.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from helpers import poll, write_config
from redis_server import RedisServer
from memwal.config import load_settings
from memwal.queue import QueueCounts, Role, WriteAheadQueue, open_queue

BACKENDS = ("sqlite", "memory", "redis")
DURABLE = {"sqlite", "redis"}  # backends whose messages outlive the process that put them


@dataclass
class Backend:
    name: str
    home: Path
    url: str | None = None

    def settings(self, queue_name: str | None = None):  # type: ignore[no-untyped-def]
        config: dict = {"queue": {"backend": self.name}}
        if self.url:
            config["queue"]["url"] = self.url
        if queue_name:
            config["queue"]["name"] = queue_name
        write_config(self.home, config)
        return load_settings(self.home, environ={})

    def open(self, role: Role = Role.PRODUCER, queue_name: str | None = None) -> WriteAheadQueue:
        return open_queue(self.settings(queue_name), role)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real redis-server for this test process; every test uses its own queue name."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return Backend(request.param, tmp_path / "home", url)


def durable_only(backend: Backend) -> None:
    if backend.name not in DURABLE:
        pytest.skip(f"the {backend.name} backend does not outlive its process, by design")


def drain(queue: WriteAheadQueue) -> list[bytes]:
    taken = []
    while (delivery := queue.take()) is not None:
        taken.append(delivery.data)
        queue.acknowledge(delivery.position)
    return taken


def test_messages_come_out_in_the_order_they_went_in(backend: Backend) -> None:
    queue = backend.open()
    positions = [queue.put(f"m{i}".encode()) for i in range(5)]
    assert positions == sorted(positions) and len(set(positions)) == 5
    assert drain(backend.open(Role.COMMITTER)) == [f"m{i}".encode() for i in range(5)]
    assert queue.take() is None


def test_sizes_and_listing_follow_every_take_and_acknowledge(backend: Backend) -> None:
    queue = backend.open()
    for i in range(3):
        queue.put(f"item-{i}".encode())
    assert queue.counts() == QueueCounts(pending=3, inflight=0)
    first = queue.take()
    assert first is not None and first.data == b"item-0"
    assert queue.counts() == QueueCounts(pending=2, inflight=1)
    # A leased message is still in the queue (it is not acknowledged): listed, at its place.
    assert [d.data for d in queue.messages()] == [b"item-0", b"item-1", b"item-2"]
    queue.acknowledge(first.position)
    assert queue.counts() == QueueCounts(pending=2, inflight=0)
    assert [d.data for d in queue.messages()] == [b"item-1", b"item-2"]
    assert drain(queue) == [b"item-1", b"item-2"]
    assert queue.counts() == QueueCounts(0, 0) and list(queue.messages()) == []


def test_oldest_is_the_first_pending_message_and_leases_nothing(backend: Backend) -> None:
    queue = backend.open()
    assert queue.oldest() is None
    first = queue.put(b"one")
    queue.put(b"two")
    assert queue.oldest() == queue.oldest() and queue.oldest().position == first
    assert queue.counts() == QueueCounts(2, 0)
    taken = queue.take()
    assert taken is not None and queue.oldest().data == b"two"  # a leased one is not pending


def test_a_leased_message_is_not_handed_out_again(backend: Backend) -> None:
    queue = backend.open()
    queue.put(b"only")
    assert queue.take() is not None
    assert queue.take() is None
    assert backend.open(Role.COMMITTER).take() is None


def test_acknowledging_an_unknown_position_changes_nothing(backend: Backend) -> None:
    queue = backend.open()
    position = queue.put(b"a")
    queue.acknowledge(position + 1000)
    assert queue.counts() == QueueCounts(1, 0)


def test_positions_are_never_reused_after_acknowledgement(backend: Backend) -> None:
    queue = backend.open()
    first = queue.put(b"a")
    delivery = queue.take()
    assert delivery is not None
    queue.acknowledge(delivery.position)
    assert queue.put(b"b") > first


def test_recover_puts_in_flight_messages_back_at_their_original_position(backend: Backend) -> None:
    queue = backend.open()
    for i in range(4):
        queue.put(f"m{i}".encode())
    taken = [queue.take(), queue.take()]
    queue.put(b"m4")  # enqueued after the two were taken
    assert queue.recover() == 2
    assert queue.counts() == QueueCounts(5, 0)
    assert drain(queue) == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert [d.position for d in taken if d] == sorted(d.position for d in taken if d)


def test_recover_of_a_later_lease_alone_keeps_the_order(backend: Backend) -> None:
    queue = backend.open()
    for i in range(3):
        queue.put(f"m{i}".encode())
    first, second = queue.take(), queue.take()
    assert first is not None and second is not None
    queue.acknowledge(first.position)
    assert queue.recover() == 1
    assert drain(queue) == [b"m1", b"m2"]


def test_take_many_leases_the_first_messages_in_order_within_its_count_and_byte_budget(
        backend: Backend) -> None:
    queue = backend.open()
    sizes = [300, 300, 300, 5000, 10, 10]
    positions = [queue.put(bytes([65 + i]) * size) for i, size in enumerate(sizes)]
    first = queue.take_many(2, 10_000)  # the count stops it
    assert [d.position for d in first] == positions[:2]
    assert [d.data for d in first] == [b"A" * 300, b"B" * 300]
    assert queue.counts() == QueueCounts(4, 2)
    second = queue.take_many(10, 1_000)  # the byte budget stops it before the 5000-byte message
    assert [d.position for d in second] == positions[2:3]
    third = queue.take_many(10, 100)  # the first message is always taken, whatever its size
    assert [d.data for d in third] == [b"D" * 5000]
    assert [d.position for d in queue.take_many(10, 10_000)] == positions[4:]
    assert queue.take_many(10, 10_000) == []
    assert queue.counts() == QueueCounts(0, 6)


def test_acknowledge_many_removes_exactly_those_and_recover_returns_the_rest_in_place(
        backend: Backend) -> None:
    queue = backend.open()
    positions = [queue.put(f"m{i}".encode()) for i in range(5)]
    taken = queue.take_many(4, 1 << 20)
    assert [d.position for d in taken] == positions[:4]
    queue.acknowledge_many([positions[0], positions[2], positions[3] + 1000])
    assert queue.counts() == QueueCounts(1, 2)
    assert [d.data for d in queue.messages()] == [b"m1", b"m3", b"m4"]
    queue.acknowledge_many([])
    assert queue.recover() == 2
    assert drain(queue) == [b"m1", b"m3", b"m4"]


def test_stuck_lists_the_leases_older_than_asked_in_queue_order_with_their_age(
        backend: Backend) -> None:
    queue = backend.open()
    positions = [queue.put(f"m{i}".encode()) for i in range(3)]
    assert queue.stuck(0) == []
    started = time.time()
    taken = queue.take_many(2, 1 << 20)
    poll(lambda: [lease.position for lease in queue.stuck(0)] == positions[:2],
         "both leases to be older than 0 s")
    for lease in queue.stuck(0):
        assert started - 5 <= lease.since <= time.time() + 5 and lease.held_for >= 0
    assert queue.stuck(3600) == []  # nothing has been leased for an hour
    queue.acknowledge(taken[0].position)
    assert [lease.position for lease in queue.stuck(0)] == positions[1:2]
    queue.recover()
    assert queue.stuck(0) == []
    assert backend.open(Role.READER).stuck(0) == []


def test_messages_can_skip_large_ones(backend: Backend) -> None:
    queue = backend.open()
    queue.put(b"s" * 10)
    queue.put(b"L" * 5000)
    queue.put(b"t" * 20)
    assert [d.data for d in queue.messages(max_bytes=4096)] == [b"s" * 10, b"t" * 20]


def test_two_queue_names_never_see_each_other(backend: Backend) -> None:
    first, second = backend.open(queue_name="team-a"), backend.open(queue_name="team-b")
    first.put(b"for a")
    second.put(b"for b")
    assert first.counts() == second.counts() == QueueCounts(1, 0)
    assert drain(first) == [b"for a"] and drain(second) == [b"for b"]


def test_two_homes_get_two_queues_by_default(backend: Backend, tmp_path: Path) -> None:
    other = Backend(backend.name, tmp_path / "other-home", backend.url)
    backend.open().put(b"mine")
    assert other.open(Role.READER).counts() == QueueCounts(0, 0)


def test_many_consumers_taking_at_once_get_every_message_exactly_once(backend: Backend) -> None:
    queue = backend.open()
    for i in range(400):
        queue.put(b"%d" % i)
    taken: list[bytes] = []
    lock = threading.Lock()

    def consume(consumer: WriteAheadQueue) -> None:
        while (delivery := consumer.take()) is not None:
            consumer.acknowledge(delivery.position)
            with lock:
                taken.append(delivery.data)

    consumers = [backend.open(Role.COMMITTER) for _ in range(8)]
    threads = [threading.Thread(target=consume, args=(c,)) for c in consumers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken, key=int) == [b"%d" % i for i in range(400)]
    assert queue.counts() == QueueCounts(0, 0)


def test_a_reader_never_creates_the_queue(backend: Backend) -> None:
    reader = backend.open(Role.READER)
    assert reader.counts() == QueueCounts(0, 0) and list(reader.messages()) == []
    if backend.name == "sqlite":
        assert not backend.settings().queue_path.exists()


def _run_and_kill(script: str, ready: str) -> None:
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == ready
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


OPEN_IN_CHILD = """
    import time
    from memwal.config import load_settings
    from memwal.queue import Role, open_queue
    queue = open_queue(load_settings({home!r}, environ={{}}), Role.{role})
"""


def test_a_put_that_returned_survives_the_producer_being_killed(backend: Backend) -> None:
    durable_only(backend)
    backend.settings()
    _run_and_kill(OPEN_IN_CHILD.format(home=str(backend.home), role="PRODUCER") + """
    queue.put(b"durable")
    print("put", flush=True)
    time.sleep(60)
    """, "put")
    assert drain(backend.open(Role.COMMITTER)) == [b"durable"]


def test_a_message_taken_by_a_killed_consumer_is_not_lost(backend: Backend) -> None:
    durable_only(backend)
    queue = backend.open()
    for i in range(3):
        queue.put(f"m{i}".encode())
    _run_and_kill(OPEN_IN_CHILD.format(home=str(backend.home), role="COMMITTER") + """
    queue.take()
    print("taken", flush=True)
    time.sleep(60)
    """, "taken")
    assert queue.counts() == QueueCounts(2, 1)
    committer = backend.open(Role.COMMITTER)
    assert committer.recover() == 1
    assert drain(committer) == [b"m0", b"m1", b"m2"]


def test_messages_are_msgpack_never_pickle_in_the_huey_instance(backend: Backend) -> None:
    queue = backend.open()
    huey = getattr(queue, "huey", None)
    if huey is None:
        pytest.skip("this backend has no huey instance of its own")
    assert type(huey.serializer).__name__ == "MsgpackSerializer"
    assert huey.serializer.deserialize(huey.serializer.serialize({"a": 1})) == {"a": 1}


def test_hueys_own_verbs_lease_and_count_pending_messages_only(backend: Backend) -> None:
    """A huey consumer pointed at our storage leases, as the committer does (one mixin for every
    backend): what it dequeued stays in the queue until acknowledged."""
    with backend.open(Role.COMMITTER, queue_name="huey-verbs") as queue:
        storage = queue.huey.storage  # type: ignore[attr-defined]
        for data in (b"a", b"b", b"c"):
            queue.put(data)
        assert storage.dequeue() == b"a"
        assert storage.queue_size() == 2 and storage.enqueued_items() == [b"b", b"c"]
        assert storage.enqueued_items(limit=1) == [b"b"]
        assert queue.counts() == QueueCounts(pending=2, inflight=1)
        assert queue.recover() == 1 and storage.queue_size() == 3  # never deleted by dequeue
        storage.acknowledge(queue.take().position)
        storage.flush_queue()
        assert storage.queue_size() == 0 and queue.counts().total == 0
        assert queue.put(b"d") == 4  # positions are never reused


@pytest.mark.parametrize("backend_name", ["sqlite", "memory"])
def test_hueys_own_storage_suite_passes_on_our_storage(backend_name: str) -> None:
    import huey

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "huey_storage_suite.py"
    installed = Path(huey.__file__).resolve().parent.parent  # huey's wheel ships its tests
    run = subprocess.run([sys.executable, str(script), str(installed), "--backend", backend_name],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 failed, 0 errors" in run.stdout, run.stdout


# -- the queue's generation and its stamp (issue 22, item 7) ------------------------------------


def test_a_queue_keeps_one_epoch_and_its_counter_never_goes_back(backend: Backend) -> None:
    queue = backend.open(queue_name="generations")
    try:
        before = queue.generation()
        positions = [queue.put(b"m%d" % i) for i in range(3)]
        after = queue.generation()
        assert after.epoch is not None and before.epoch in (None, after.epoch)
        assert after.last_position == positions[-1]
        drain(queue)  # acknowledging every message never moves the counter back
        assert queue.generation() == after
    finally:
        queue.close()
    reader = backend.open(Role.READER, queue_name="generations")
    try:
        assert reader.generation() == after
    finally:
        reader.close()


def test_a_re_created_queue_has_another_epoch(backend: Backend) -> None:
    durable_only(backend)
    queue = backend.open(queue_name="re-created")
    try:
        queue.put(b"m0")
        queue.put(b"m1")
        old = queue.generation()
        drain(queue)
    finally:
        queue.close()
    if backend.name == "sqlite":  # deleted when empty, as docs/operations.md allows
        for path in backend.home.glob("queue.sqlite3*"):
            path.unlink()
    else:  # every key of that queue lost (a FLUSHDB, an eviction)
        import redis

        client = redis.Redis.from_url(backend.url)
        client.delete(*client.keys("memwal:re-created:*"))
    queue = backend.open(queue_name="re-created")
    try:
        assert queue.put(b"m2") == 1  # positions restart...
        new = queue.generation()
        assert new.epoch not in (None, old.epoch) and new.last_position == 1  # ...in a new epoch
    finally:
        queue.close()


def test_only_a_shared_queue_is_stamped_with_the_index_of_its_committer(backend: Backend) -> None:
    queue = backend.open(Role.COMMITTER, queue_name="stamped")
    try:
        assert queue.bind("index-a", {"home": "/a"}) is None
        assert queue.bind("index-a", {"home": "/a"}) is None  # its own stamp: free to go on
        held = queue.bind("index-b", {"home": "/b"})
        if queue.publication is not None:
            assert held == {"index": "index-a", "home": "/a"}
        else:  # its queue lives beside its index, whose lock already makes it the only one
            assert held is None
    finally:
        queue.close()


def test_only_a_shared_queue_carries_a_publication_and_it_round_trips(backend: Backend) -> None:
    with backend.open(Role.COMMITTER, queue_name="published") as queue:
        publication = queue.publication
        if backend.name != "redis":  # the index is beside the queue: producers read it there
            assert publication is None
            return
        assert publication is not None and publication.published_state() is None
        entry = {"digest": "d", "size": 1}
        publication.publish({"seq": 3}, {"ns": {"/a.md": entry}}, {}, {"batch-1": [2, 0, 0]})
        assert publication.published_state() == {"seq": 3}
        assert publication.published_files("ns", None) == {"/a.md": entry}
        assert publication.published_batches(["batch-1", "batch-2"]) == {"batch-1": (2, 0, 0)}
        publication.publish({"seq": 4}, {}, {"ns": ["/a.md"]}, {})
        assert publication.published_files("ns", ["/a.md"]) == {}
