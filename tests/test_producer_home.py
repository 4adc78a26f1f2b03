"""A producer home on a shared Redis queue tells the truth (issue 22, item 2).

Two homes on "two machines" (each its own folder) share one queue on a real redis-server: the
worker home holds the index and runs `mm queue worker`; the producer home holds no index. What
the producer shows (status, queue status, embedding-reset, the web page) is the committer's
state as it published it, and `mm search` there asks the worker home's `mm serve` (search.url)
or says, exit 2, that this home has no index and how to point it at one.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

import memwal
from helpers import MM, assert_doctor_ok, poll
from memwal.config import load_settings
from redis_server import RedisServer
from test_mcp import HttpServer
from test_redis import A, machine, notes, stop
from test_web import browser, number, page  # noqa: F401 - the browser fixtures


OPERATIONS = Path(__file__).parent.parent / "docs" / "operations.md"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def two_machines(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[MM, MM, int]]:
    """(worker home with its `mm queue worker` running, producer home, the worker's pid), after
    the producer indexed 4 notes (committed by the worker)."""
    worker_home = machine(tmp_path, "server", redis_server)
    producer = machine(tmp_path, "laptop", redis_server)
    worker = worker_home.popen("queue", "worker")
    try:
        report = producer("index", "--json", str(notes(tmp_path / "notes", 4))).json()
        assert (report["new"], report["committed"]) == (4, 8)
        assert not (producer.home / "index.sqlite3").exists()
        yield worker_home, producer, worker.pid
    finally:
        stop(worker)
    assert_doctor_ok(worker_home.home)


def test_status_queue_status_and_reset_status_on_a_producer_home_are_the_committers(
        two_machines: tuple[MM, MM, int]) -> None:
    worker_home, producer, pid = two_machines
    queue = producer("queue", "status", "--json").json()
    at_home = worker_home("queue", "status", "--json").json()
    assert queue["committer"]["running"] is True
    assert (queue["committer"]["pid"], queue["committer"]["host"]) == (pid, socket.gethostname())
    assert queue["active_model"] == at_home["active_model"] and queue["active_model"]["name"] == A
    assert queue["ledger"] == at_home["ledger"] and queue["ledger"]["committed"] == 8
    assert queue["dead_letters"] == 0 and queue["last_commit_at"] == at_home["last_commit_at"]
    assert queue["index"]["here"] is False and queue["index"]["home"] == str(worker_home.home)
    assert at_home["index"]["here"] is True

    text = producer("queue", "status").stdout
    assert f"pid {pid}" in text and "none yet" not in text and "pid None" not in text
    assert "8 committed" in text and str(worker_home.home) in text

    status = producer("status", "--json").json()
    expected = worker_home("status", "--json").json()
    for key in ("chunks", "files", "namespaces", "vectors_by_fingerprint", "active_model"):
        assert status[key] == expected[key], key
    assert status["chunks"] == 4 and status["files"] == 4
    assert f"pid {pid}" in producer("status").stdout

    reset = producer("embedding-reset", "--json").json()
    assert reset["active_model"]["name"] == A and reset["differ"] is False
    assert reset["chunks_without_active_vector"] == 0 and reset["index"]["here"] is False
    assert "none" not in producer("embedding-reset").stdout.splitlines()[0]


def test_search_on_a_producer_home_without_search_url_says_there_is_no_index_here(
        two_machines: tuple[MM, MM, int]) -> None:
    worker_home, producer, _ = two_machines
    run = producer("search", "heron number 3", check=2)
    assert "has no index" in run.stderr and "search.url" in run.stderr
    assert str(worker_home.home) in run.stderr and "run `mm index" not in run.stderr
    # docs/operations.md ("Several machines: what runs where") quotes this very message.
    said = "has no index to search: its queue is shared, and the index is on"
    assert said in run.stderr and said in OPERATIONS.read_text()
    as_json = producer("search", "--json", "heron", check=2).json()
    assert as_json["error"]["error"] == "NoIndexHere"
    with pytest.raises(memwal.NoIndexHere):
        memwal.search(load_settings(producer.home, environ={}), "heron")


def test_search_on_a_producer_home_asks_the_committers_mm_serve_through_search_url(
        two_machines: tuple[MM, MM, int], monkeypatch: pytest.MonkeyPatch) -> None:
    worker_home, producer, _ = two_machines
    server = HttpServer(worker_home.home, "--token", "s3cret-token")
    try:
        url = {"MM_SEARCH_URL": server.url}  # the URL `mm serve` prints (…/mcp) is accepted
        there = worker_home("search", "--json", "heron number 3").json()
        here = producer("search", "--json", "heron number 3",
                        env={**url, "MM_SEARCH_TOKEN": "s3cret-token"}).json()
        assert here == there and Path(here[0]["source_file"]).name == "heron-3.md"
        one = producer("search", "--json", "-k", "1", "heron",
                       env={**url, "MM_SEARCH_TOKEN": "s3cret-token"}).json()
        assert len(one) == 1
        refused = producer("search", "heron", env=url, check=1)  # no token
        assert "401" in refused.stderr and "MM_SEARCH_TOKEN" in refused.stderr
        # The public API honours search.url too (the token from the environment).
        monkeypatch.setenv("MM_SEARCH_TOKEN", "s3cret-token")
        settings = load_settings(producer.home, environ={"MM_SEARCH_URL": server.base})
        hits = memwal.search(settings, "heron number 3").hits
        assert [h.source_file for h in hits] == [h["source_file"] for h in there]
    finally:
        server.stop()
    gone = producer("search", "heron", env={"MM_SEARCH_URL": server.base}, check=1)
    assert "cannot be reached" in gone.stderr


def test_the_web_page_of_a_producer_home_shows_the_committers_state(
        two_machines: tuple[MM, MM, int], page: Any) -> None:  # noqa: F811 - test_web's fixture
    worker_home, producer, pid = two_machines
    server = HttpServer(producer.home)
    try:
        with urllib.request.urlopen(server.base + "/api/queue", timeout=60) as answer:
            queue = json.loads(answer.read())
        assert queue["committer"]["pid"] == pid and queue["ledger"]["committed"] == 8
        page.goto(server.base + "/")
        assert number(page, "model-name") == A and number(page, "chunks") == "4"
        assert number(page, "files") == "4" and number(page, "committed") == "8"
        assert str(worker_home.home) in number(page, "index-where")
        # After the page's own refresh from /api/queue, the committer is still the worker.
        poll(lambda: float(page.locator("body").get_attribute("data-refreshed") or 0) > 0,
             "the page's first refresh", 60)
        assert number(page, "committer") == "alive" and f"pid {pid}" in number(page, "committer-where")
    finally:
        server.stop()
