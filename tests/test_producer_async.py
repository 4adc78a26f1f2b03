"""The producer's async API: indexing and enqueueing never block the caller's event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from helpers import upsert
from memwal import store
from memwal.producer import enqueue_items_async, index_paths_async


async def test_index_paths_async_commits_while_the_event_loop_keeps_running(settings, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n in range(150):
        (corpus / f"note-{n}.md").write_text(f"# Note {n}\n\nword{n} " * 40)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    report = await index_paths_async(settings, [corpus])
    done.set()
    await ticking
    # The loop ran other work while the index was built: it was never blocked.
    assert ticks > 10
    assert (report.files, report.new) == (150, 150)
    assert report.committed == report.records_enqueued and report.dead_lettered == 0
    conn = store.open_for_read(settings.index_path)
    assert conn.execute("SELECT count(*) FROM files").fetchone()[0] == 150


async def test_enqueue_items_async_returns_durable_batch_ids(settings) -> None:
    ids = await enqueue_items_async(settings, [upsert("alpha"), upsert("beta", start=2)])
    assert len(ids) == 1
    from memwal.status import queue_counts

    counts = queue_counts(settings)
    assert (counts.pending, counts.inflight) == (1, 0)
