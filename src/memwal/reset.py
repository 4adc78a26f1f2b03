"""Switching the index's model: enqueueing a `reset` item, and what `mm embedding-reset` shows.

A reset travels through the queue like any write: everything enqueued before it is judged against
the old model, everything after it against the new one; the committer removes vectors of other
models and keeps chunks and text. The model gate every producer passes (the model the index
*will* have once the queue drains) is `memwal.committed.Committed.gate`.
"""

from __future__ import annotations

from memwal import remote, store
from memwal.committed import queued_resets
from memwal.config import Settings
from memwal.embedders import configured_embedder, configured_model
from memwal.fingerprint import ModelInfo
from memwal.migrationstatus import published_status, status_of
from memwal.queue import Role, open_queue
from memwal.records import Batch, Producer, Reset, encode_batch
from memwal.results import JsonResult, with_iso_times
from memwal.store import reads


def reset_status(settings: Settings) -> JsonResult:
    """The active and configured models, whether they differ, the resets waiting in the queue,
    and how many chunks lack a vector of the active model. Read-only. On a home whose index is
    on another machine, the active model and the count are as its committer published them."""
    configured = configured_model(settings)
    queue = open_queue(settings, Role.READER)
    try:
        queued = [{"position": position, "name": r.name, "fingerprint": r.fingerprint, "dim": r.dim}
                  for position, r in queued_resets(queue)]
        place = remote.elsewhere_of(settings, queue)
    finally:
        queue.close()
    migration = None
    if place is not None:
        migration = published_status(place.state)
        model = place.state.get("active")
        active = ModelInfo(model["name"], model["dim"], model["fingerprint"]) if model else None
        lacking = place.summary.get("chunks_without_active_vector", 0)
    else:
        with store.reading(settings.index_path) as conn:
            active = store.active_model(conn)
            lacking = 0 if conn is None else reads.chunks_without_vector_of(
                conn, active.fingerprint if active else None)
            migration = status_of(conn)
    return with_iso_times(JsonResult({  # `migration.started_at` gains `started_at_iso`
        "active_model": active.as_dict() if active else None,
        "configured_model": configured,
        # None: unknown, the configured (remote) model does not answer.
        "differ": None if configured["fingerprint"] is None else
        active is not None and active.fingerprint != configured["fingerprint"],
        "reset_to_configured_queued": bool(queued) and queued[-1]["fingerprint"] == configured["fingerprint"],
        "queued_resets": queued,
        "migration": migration,
        "chunks_without_active_vector": int(lacking),
        "index": remote.index_location(place, settings),
    }))


def enqueue_reset(settings: Settings) -> tuple[str, Reset]:
    """Enqueue a switch of the index to the configured model; return its batch id and the reset.

    It travels through the queue like any write: batches enqueued before it are judged against
    the old model, those after it against the new one. When committed, vectors of other models
    are removed (chunks and text stay) until `index_paths` re-embeds them.
    """
    embedder = configured_embedder(settings)
    reset = Reset(embedder.fingerprint, embedder.name, embedder.dim)
    batch = Batch(items=(reset,), producer=Producer.current("mm embedding-reset"))
    queue = open_queue(settings, Role.PRODUCER)
    try:
        queue.put(encode_batch(batch))
    finally:
        queue.close()
    return batch.id, reset
