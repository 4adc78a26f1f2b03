"""Work that is queued with no committer says why it is not searchable yet (issue 22, item 8).

Real processes throughout: `mm watch` and `mm index --no-wait` with no committer on the home,
`mm mcp` driven by the official MCP client, and a producer of a shared queue on a real
redis-server whose committer is not running (yet).
"""

from __future__ import annotations

import json
import queue as queues
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import anyio
import pytest

from helpers import MM, poll, queue_rows
from memwal.records import decode_batch
from redis_server import RedisServer
from test_mcp import stdio_session
from test_redis import machine, notes, stop

NO_COMMITTER = "no committer is running"
OPERATIONS = Path(__file__).parent.parent / "docs" / "operations.md"


def snapshots_queued(home: Path) -> Counter[str]:
    """How many snapshots of each file (by name) the home's queue holds."""
    counts: Counter[str] = Counter()
    for data in queue_rows(home):
        for item in decode_batch(data).raw_items:
            if item.get("kind") == "file":
                counts[Path(item["source_file"]).name] += 1
    return counts


def watcher_state(home: Path) -> dict[str, Any] | None:
    """The one watcher's status file (`<home>/watchers/*.json`), once it exists."""
    for path in (home / "watchers").glob("*.json"):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # being replaced: read again
    return None


def passes(home: Path) -> int:
    state = watcher_state(home)
    return int(state["passes"]) if state else 0


def test_watch_without_a_committer_queues_each_change_once_and_says_so_once(
        mm: MM, tmp_path: Path) -> None:
    root = notes(tmp_path / "notes", 3)
    watcher = mm.popen("watch", str(root))
    try:
        poll(lambda: passes(mm.home) >= 1, "the watcher's first pass", 120)
        assert snapshots_queued(mm.home) == {"heron-0.md": 1, "heron-1.md": 1, "heron-2.md": 1}
        # Written aside and renamed: a pass never sees it half-written (a snapshot of its own).
        (root / ".heron-1.tmp").write_text("# heron 1\n\nThe heron number 1 caught a fish.\n")
        (root / ".heron-1.tmp").replace(root / "heron-1.md")
        poll(lambda: passes(mm.home) >= 2, "the pass after a change", 120)
        # Only the changed file again: the committed state did not move (nothing commits),
        # and what this watcher queued before is unchanged.
        assert snapshots_queued(mm.home) == {"heron-0.md": 1, "heron-1.md": 2, "heron-2.md": 1}
        assert watcher_state(mm.home)["committer_running"] is False
    finally:
        if watcher.poll() is None:
            watcher.terminate()
        _, err = watcher.communicate(timeout=60)
    assert err.count(NO_COMMITTER) == 1 and "mm queue worker" in err, err
    searched = mm("search", "heron")
    assert "2 batches are queued but no committer is running" in searched.stderr
    assert "run `mm index" not in searched.stderr
    mm("queue", "worker", "--once")  # committed now: the watcher's snapshots were whole
    hits = mm("search", "--json", "heron caught fish").json()
    assert Path(hits[0]["source_file"]).name == "heron-1.md"


def test_index_no_wait_without_a_committer_says_nothing_commits_it_yet(
        mm: MM, tmp_path: Path) -> None:
    folder = notes(tmp_path / "notes", 2)
    run = mm("index", "--no-wait", str(folder))
    assert NO_COMMITTER in run.stderr and "mm queue worker" in run.stderr
    said = "queued, not yet committed: no committer is running, so search"
    assert said in run.stderr and said in " ".join(OPERATIONS.read_text().split())
    assert mm("index", "--no-wait", "--json", str(folder / "heron-0.md"),
              "--force").json()["committer_running"] is False
    worker = mm.popen("queue", "worker")
    try:
        poll(lambda: mm("queue", "status", "--json").json()["committer"]["running"],
             "the worker to start", 60)
        quiet = mm("index", "--no-wait", "--force", str(folder))
        assert NO_COMMITTER not in quiet.stderr
    finally:
        stop(worker)


async def test_mem_add_that_times_out_with_no_committer_says_why_in_its_text(mm: MM) -> None:
    with anyio.fail_after(120):
        async with stdio_session(mm.home) as session:  # no --worker and no worker process
            result = await session.call_tool(
                "mem_add", {"content": "Puffins nest in burrows on the cliff top.", "wait": True,
                            "timeout": 0.2}, read_timeout_seconds=120)
    assert not result.is_error
    text = result.content[0].text
    assert "queued, not yet committed: no committer is running" in text, text
    assert result.structured_content["committer_running"] is False
    mm("queue", "worker", "--once")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


def stderr_lines(process: subprocess.Popen) -> "queues.Queue[str | None]":
    """The process's stderr, line by line as it comes (None at its end)."""
    lines: queues.Queue[str | None] = queues.Queue()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_a_producer_of_a_shared_queue_says_at_once_that_no_committer_holds_it(
        tmp_path: Path, redis_server: RedisServer) -> None:
    writer = machine(tmp_path, "laptop", redis_server)
    committer = machine(tmp_path, "server", redis_server)
    waiting = writer.popen("index", "--json", str(notes(tmp_path / "notes", 2)))
    worker = None
    try:
        lines = stderr_lines(waiting)
        # Its first words come well before it gives up (after 20 s without a committer): a
        # generous bound for a loaded machine, not a timing assertion.
        first = lines.get(timeout=15)
        assert first is not None and "no committer holds the shared queue" in first, first
        assert "waiting: no committer holds the shared queue" in OPERATIONS.read_text()
        assert "mm queue worker" in first and waiting.poll() is None
        worker = committer.popen("queue", "worker")
        assert waiting.stdout is not None
        out = waiting.stdout.read()  # the stderr thread reads the other pipe
        assert waiting.wait(timeout=120) == 0
        assert json.loads(out)["committed"] == 4
    finally:
        if waiting.poll() is None:
            waiting.kill()
        if worker is not None:
            stop(worker)
