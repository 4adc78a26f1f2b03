"""Switching the index's model: a reset travels through the queue like any write.

Everything enqueued before the reset is judged against the old model, everything after it
against the new one; the committer removes vectors of other models and keeps chunks and text.
"""

from __future__ import annotations

from typing import Any

from memwal import store
from memwal.config import Settings, ensure_home
from memwal.embedders import configured_embedder
from memwal.producer import queued_resets
from memwal.queue import open_queue
from memwal.records import Batch, Producer, Reset, encode_batch


def reset_status(settings: Settings) -> dict[str, Any]:
    """Active vs configured model, queued resets, and chunks lacking a vector of the active model."""
    embedder = configured_embedder(settings)
    conn = store.open_for_read(settings.index_path)
    try:
        active = store.active_model(conn)
        lacking = 0
        if conn is not None:
            lacking = conn.execute("SELECT count(*) FROM chunks WHERE fingerprint IS NOT ?",
                                   (active.fingerprint if active else None,)).fetchone()[0]
    finally:
        if conn is not None:
            conn.close()
    queued = []
    if settings.queue_path.exists():
        queue = open_queue(settings.queue_path)
        try:
            queued = [{"position": position, "name": r.name, "fingerprint": r.fingerprint, "dim": r.dim}
                      for position, r in queued_resets(queue)]
        finally:
            queue.close()
    return {
        "active_model": active.as_dict() if active else None,
        "configured_model": embedder.info.as_dict(),
        "differ": active is not None and active.fingerprint != embedder.fingerprint,
        "reset_to_configured_queued": bool(queued) and queued[-1]["fingerprint"] == embedder.fingerprint,
        "queued_resets": queued,
        "chunks_without_active_vector": int(lacking),
    }


def enqueue_reset(settings: Settings) -> tuple[str, Reset]:
    """Enqueue a reset to the configured model; return its batch id and the reset."""
    ensure_home(settings.home)
    embedder = configured_embedder(settings)
    reset = Reset(embedder.fingerprint, embedder.name, embedder.dim)
    batch = Batch(items=(reset,), producer=Producer.current("mm embedding-reset"))
    queue = open_queue(settings.queue_path)
    try:
        queue.put(encode_batch(batch))
    finally:
        queue.close()
    return batch.id, reset


