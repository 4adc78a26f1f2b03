"""Builders for batches and items, shared by the tests."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Callable, TypeVar

from memwal.embedders import get_embedder
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


def queue_rows(home: Path, table: str = "task") -> list[bytes]:
    """The raw messages in the queue file, in queue order: all of them (`task`, pending and in
    flight) or only those leased by a committer (`inflight`)."""
    conn = sqlite3.connect(f"file:{home / 'queue.sqlite3'}?mode=ro", uri=True, timeout=10)
    query = {"task": "SELECT data FROM task ORDER BY id",
             "inflight": "SELECT t.data FROM task t JOIN inflight i USING (id) ORDER BY t.id"}[table]
    try:
        return [bytes(data) for (data,) in conn.execute(query)]
    finally:
        conn.close()
