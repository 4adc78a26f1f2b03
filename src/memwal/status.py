"""Read-only views of a home's state: the queue, the committer, the ledger, the active model."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from memwal import remote, store
from memwal.config import Settings
from memwal.embedders import configured_model
from memwal.lock import committer_alive
from memwal.migrationstatus import published_status, status_of
from memwal.queue import QueueCounts, QueueGeneration, Role, open_queue
from memwal.queuewatch import QueueMark, incidents, judge
from memwal.records import UndecodableBatch, decode_batch
from memwal.results import JsonResult, with_iso_times
from memwal.safeio import read_regular
from memwal.store import reads
from memwal.vectorindex.reads import coverage


def queue_counts(settings: Settings) -> QueueCounts:
    """Pending and in-flight messages, read without creating or writing the queue."""
    queue = open_queue(settings, Role.READER)
    try:
        return queue.counts()
    finally:
        queue.close()


def queue_status(settings: Settings) -> JsonResult:
    """The queue's state: pending and in-flight batches, unreplayed dead letters, whether a
    committer holds the lock (and its pid; with a shared queue, who holds its claim, from any
    machine), the active model and the ledger's totals.

    `lost` lists the queue's open incidents (re-created under its committer: memwal.queuewatch),
    the ones the committer recorded and the one this reading finds (`recorded` false) if the
    committer has not looked since.

    Read-only (works on a read-only home); the `mm queue status --json` document. On a home
    whose index is on another machine (a shared queue's producer), the committer, model, dead
    letters and ledger are as that committer published them, and `index.here` is false (the
    queue's incidents are then the committer's to find: `lost` is empty here).

    Every time is seconds since the epoch (`last_commit_at`) with its ISO 8601 twin next to it
    (`last_commit_at_iso`).
    """
    return with_iso_times(JsonResult(_queue_status(settings)[0]))


def _queue_status(settings: Settings) -> tuple[dict[str, Any], remote.Elsewhere | None]:
    """`queue_status`, and where the index is when it is not here."""
    queue = open_queue(settings, Role.READER)
    try:
        counts, holder, oldest = queue.counts(), queue.holder(), queue.oldest()
        place = remote.elsewhere_of(settings, queue)
        # Incidents are judged against this home's index: a producer machine has none to read.
        generation = queue.generation() if place is None else None
        shared = queue.publication is not None
    finally:
        queue.close()
    if place is not None:  # a producer machine: the index and its committer are elsewhere
        elsewhere = remote.queue_status(place, counts, _age(oldest), settings)
        return {"queue": settings.queue_name, **elsewhere, "lost": []}, place
    assert generation is not None  # read above: the index is here
    running, pid = committer_alive(settings.lock_path)
    with store.reading(settings.index_path) as conn:
        model = store.active_model(conn)
        dead = reads.unreplayed_dead_letters(conn)
        ledger = reads.ledger_totals(conn)
        last = reads.last_commit_at(conn) if conn else None
        mark = reads.queue_mark(conn)
    return ({
        "queue": settings.queue_name,
        "pending": counts.pending,
        "inflight": counts.inflight,
        "dead_letters": int(dead),
        "committer": {"running": running or holder is not None, "pid": pid,
                      "host": socket.gethostname() if running else None,
                      **({"holder": holder} if holder is not None else {})},
        "oldest_pending_age": _age(oldest),
        "last_commit_at": last,
        "active_model": model.as_dict() if model else None,
        "ledger": {k: ledger[k] for k in ("batches", "committed", "dead_lettered", "skipped")},
        "index": remote.index_location(None, settings),
        "lost": queue_incidents(settings, mark, generation, shared),
    }, None)


def queue_losses(settings: Settings) -> list[JsonResult]:
    """The queue's open incidents (`queue_status(settings)["lost"]`): each says what happened,
    which positions may be lost (`lost_positions`), whether batches may be lost (`loud`) and how
    to re-send them. Read-only; the `mm queue lost --json` document."""
    return [JsonResult(incident) for incident in queue_status(settings)["lost"]]


def queue_incidents(settings: Settings, mark: str | None, generation: QueueGeneration,
                    shared: bool) -> list[dict[str, Any]]:
    """The queue's open incidents: those the committer recorded, then the one this reading of
    the queue against the committer's mark finds (not yet recorded), if any."""
    found = [{**incident.as_dict(), "recorded": True} for incident in incidents(settings.home)]
    live = judge(QueueMark.loads(mark), settings.queue_name, generation, shared)[1] \
        if mark is not None else None
    if live is not None:
        found.append({**live.as_dict(), "recorded": False})
    return found


def _age(oldest: Any) -> float | None:
    """Seconds the first pending batch has waited (from its envelope's enqueue time)."""
    if oldest is None:
        return None
    try:
        return round(max(0.0, time.time() - decode_batch(oldest.data).enqueued_at), 3)
    except UndecodableBatch:
        return None


def throughput(settings: Settings, seconds: int = 600, step: int = 5) -> JsonResult:
    """Records committed per second over the last `seconds`, in buckets of `step` seconds: the
    committer's throughput history (from the ledger's commit times).

    Each point is `[end, rate]`: the bucket `[end - step, end)` and its records per second
    (`unit`). Buckets end on wall-clock multiples of `step` and only complete ones are given,
    so a later reading shows the same buckets with the same values, and one or two more."""
    now = time.time()
    end = (int(now) // step) * step  # the last complete bucket ends here
    count = max(1, seconds // step)
    start = end - count * step
    buckets = [0] * count
    with store.reading(settings.index_path) as conn:
        commits = reads.commits_since(conn, start) if conn else []
    for committed_at, committed in commits:
        if start <= committed_at < end:
            buckets[int((committed_at - start) // step)] += committed
    return JsonResult(now=now, step=step, unit="records/s", start=start,
                      points=[[start + (i + 1) * step, n / step] for i, n in enumerate(buckets)])


def watcher_folder(settings: Settings) -> Path:
    """Where each running watcher keeps its status file (`<home>/watchers/<pid>-<n>.json`)."""
    return settings.home / "watchers"


def watchers(settings: Settings) -> list[dict[str, Any]]:
    """The status of every watcher alive on this home: roots, model, state, last pass, error."""
    found = []
    for path in sorted(watcher_folder(settings).glob("*.json")):
        try:
            state = json.loads(read_regular(path, max_bytes=1 << 16))
            os.kill(int(state["pid"]), 0)  # a watcher killed without cleaning up is not listed
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.append(state)
    return found


def _size(path: Path) -> int:
    """Bytes of a SQLite file with its -wal and -shm companions."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def index_status(settings: Settings) -> JsonResult:
    """What the index holds (chunks, files, namespaces, vectors by fingerprint), the active and
    configured models, the queue's state and the files' sizes.

    Read-only; the `mm status --json` document, its times as in `queue_status`. Raises
    UnknownModel if the configured model's package is missing.
    """
    configured = configured_model(settings)
    queue, place = _queue_status(settings)
    if place is not None:  # as the committer elsewhere published it
        held = {**remote.index_counts(place), "vector_index": None,
                "migration": published_status(place.state)}
    else:
        with store.reading(settings.index_path) as conn:
            counts = reads.index_counts(conn) if conn else reads.IndexCounts(0, 0, [])
            model = store.active_model(conn)
            held = {"chunks": counts.chunks, "files": counts.files,
                    "namespaces": counts.namespaces,
                    "vectors_by_fingerprint": reads.vectors_by_fingerprint(conn) if conn else {},
                    "active_model": model.as_dict() if model else None,
                    "migration": status_of(conn),
                    "vector_index": coverage(settings, conn)}
    return with_iso_times(JsonResult({
        "home": str(settings.home),
        **held,
        "configured_model": configured,
        "queue": queue,
        "watchers": watchers(settings),
        "index_bytes": _size(settings.index_path) if settings.index_path.exists() else 0,
        "queue_bytes": _size(settings.queue_path) if settings.queue_path.exists() else 0,
    }))
