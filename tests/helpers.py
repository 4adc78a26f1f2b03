"""Builders for batches and items, shared by the tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, TypeVar

from memwal.config import Settings, load_settings
from memwal.embedders import get_embedder
from memwal.queue import Role, WriteAheadQueue, open_queue
from memwal.records import Batch, ChunkKey, FileSnapshot, Producer, Reset, Upsert
from memwal.chunking import content_hash
from memwal.vectors import to_bytes

PRODUCER = Producer("test-host", 1, "pytest")


def upsert(text: str, *, model: str = "hash-384", source: str = "/notes/a.md", start: int = 1,
           namespace: str = "default", vector: bytes | None = None, dim: int | None = None) -> Upsert:
    embedder = get_embedder(model)
    return Upsert(
        key=ChunkKey(namespace, source, content_hash(text), start), end_line=start,
        heading_path=("Notes",), content=text, tags=(), fingerprint=embedder.fingerprint,
        dim=embedder.dim if dim is None else dim,
        vector=to_bytes(embedder.embed([text])[0]) if vector is None else vector)


def snapshot(source: str, keys: list[tuple[str, int]], mtime_ns: int, namespace: str = "default") -> FileSnapshot:
    return FileSnapshot(namespace, source, "digest", 1, mtime_ns, tuple(keys))


def reset(model: str) -> Reset:
    embedder = get_embedder(model)
    return Reset(embedder.fingerprint, embedder.name, embedder.dim)


def batch(*items, batch_id: str | None = None) -> Batch:
    if batch_id is None:
        return Batch(items=tuple(items), producer=PRODUCER)
    return Batch(items=tuple(items), producer=PRODUCER, id=batch_id)


T = TypeVar("T")


def poll(condition: Callable[[], T], what: str, timeout: float = 60.0, every: float = 0.1) -> T:
    """Call `condition` until it returns something truthy; fail after `timeout` seconds.

    Waiting is bounded, never timed: these machines are shared and noisy.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def ok(run):  # type: ignore[no-untyped-def]
    """A `mm` run that succeeded: exit 0, no error line, no traceback."""
    assert run.code == 0 and "error:" not in run.stderr and "Traceback" not in run.stderr, str(run)
    return run


def home_settings(home: Path) -> Settings:
    """The settings of a test home, with nothing from the caller's environment."""
    return load_settings(home, environ={})


def producer_queue(home: Path) -> WriteAheadQueue:
    """The home's queue, opened as a producer opens it."""
    return open_queue(home_settings(home), Role.PRODUCER)


def queue_rows(home: Path) -> list[bytes]:
    """Every message still in the home's queue (pending and in flight), in queue order."""
    queue = open_queue(home_settings(home), Role.READER)
    try:
        return [delivery.data for delivery in queue.messages()]
    finally:
        queue.close()


def queue_inflight(home: Path) -> int:
    queue = open_queue(home_settings(home), Role.READER)
    try:
        return queue.counts().inflight
    finally:
        queue.close()
