"""The queue keeps a message in flight until it is acknowledged, and recovers it in place."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from memwal.queue import open_queue, queue_counts


def test_fifo_and_acknowledge(tmp_path: Path) -> None:
    queue = open_queue(tmp_path / "q.sqlite3")
    positions = [queue.put(f"m{i}".encode()) for i in range(3)]
    assert positions == sorted(positions)
    first = queue.take()
    assert first is not None and first.data == b"m0"
    assert (queue.pending(), queue.inflight()) == (2, 1)
    queue.acknowledge(first.position)
    assert (queue.pending(), queue.inflight()) == (2, 0)
    assert [queue.take().data for _ in range(2)] == [b"m1", b"m2"]
    assert queue.take() is None


def test_recover_puts_in_flight_messages_back_at_their_original_position(tmp_path: Path) -> None:
    queue = open_queue(tmp_path / "q.sqlite3")
    for i in range(4):
        queue.put(f"m{i}".encode())
    taken = [queue.take(), queue.take()]
    queue.put(b"m4")  # enqueued after the two were taken
    assert queue.recover() == 2
    order = []
    while (delivery := queue.take()) is not None:
        order.append(delivery.data)
        queue.acknowledge(delivery.position)
    assert order == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert [d.position for d in taken] == sorted(d.position for d in taken)


def test_positions_are_never_reused_after_acknowledgement(tmp_path: Path) -> None:
    queue = open_queue(tmp_path / "q.sqlite3")
    first = queue.put(b"a")
    delivery = queue.take()
    queue.acknowledge(delivery.position)
    assert queue.put(b"b") > first


def test_a_message_taken_by_a_killed_consumer_is_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    queue = open_queue(path)
    for i in range(3):
        queue.put(f"m{i}".encode())
    queue.close()
    consumer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from memwal.queue import open_queue
        queue = open_queue(__import__('pathlib').Path({str(path)!r}))
        queue.take()
        print('taken', flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert consumer.stdout.readline().strip() == "taken"
    os.kill(consumer.pid, signal.SIGKILL)
    consumer.wait()
    assert queue_counts(path) == (2, 1)
    queue = open_queue(path)
    queue.recover()
    assert [queue.take().data for _ in range(3)] == [b"m0", b"m1", b"m2"]


def test_queue_counts_does_not_create_a_queue(tmp_path: Path) -> None:
    assert queue_counts(tmp_path / "absent.sqlite3") == (0, 0)
    assert not (tmp_path / "absent.sqlite3").exists()


def test_queue_file_holds_no_pickle(tmp_path: Path) -> None:
    queue = open_queue(tmp_path / "q.sqlite3")
    assert type(queue.huey.serializer).__name__ == "MsgpackSerializer"
    assert queue.huey.serializer.deserialize(queue.huey.serializer.serialize({"a": 1})) == {"a": 1}
