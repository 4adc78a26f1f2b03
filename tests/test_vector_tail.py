"""The derived vector graph is current on every path a user takes (issue 25, item 1).

Whatever commits leaves at most `tail_bound` vectors outside the graph once commits stop: a lone
`mm index` (a short-lived committer: a detached merge it leaves behind), `mm queue worker` and
`mm serve --worker` (long-lived committers that fold when idle). Each test waits on the tail size
`mm status --json` reports, never on a timer. Small sizes: the bound is lowered by configuration.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from helpers import MM, mm_command, mm_env, poll, write_config
from test_mcp import HttpServer
from test_vector_index import write_notes

BOUND = 20  # vectors.tail_bound here; 5% of the ~240 vectors below is less


def configure(mm: MM) -> None:
    # merge_at out of reach: no merge runs while committing, so what folds is what this issue adds.
    write_config(mm.home, {"embedding": {"model": "hash-384"},
                           "vectors": {"merge_at": 10**8, "tail_bound": BOUND}})


def graph(mm: MM) -> dict[str, int]:
    return mm("status", "--json").json()["vector_index"]


def folded(mm: MM) -> dict[str, int] | None:
    state = graph(mm)
    return state if state["in_graph"] and state["tail"] <= state["bound"] else None


def test_status_reports_the_tail_and_its_bound(mm: MM, tmp_path: Path) -> None:
    configure(mm)
    assert graph(mm) == {"in_graph": 0, "tail": 0, "bound": BOUND, "segments": 0}
    mm("index", str(write_notes(tmp_path / "notes", 40)), "--no-wait")  # nothing commits these
    assert graph(mm)["tail"] == 0
    mm("queue", "worker", "--once")  # a short-lived committer: ends, leaves the tail to a merge
    state = poll(lambda: folded(mm), "the detached merge to fold the tail", timeout=120)
    assert state["bound"] == BOUND and state["segments"] == 1
    text = mm("status").stdout
    assert "vector graph" in text and "within its bound" in text


def test_a_lone_mm_index_leaves_the_tail_to_a_merge_that_outlives_it(mm: MM, tmp_path: Path) -> None:
    configure(mm)
    notes = write_notes(tmp_path / "notes", 40)
    done = mm("index", str(notes), "--json").json()
    assert done["chunks_embedded"] > BOUND
    # mm index has exited; its committer is gone: what folds now is the merge it left behind.
    state = poll(lambda: folded(mm), "the tail left by mm index to be folded", timeout=120)
    assert state["in_graph"] >= done["chunks_embedded"] - BOUND


def test_an_idle_worker_folds_a_tail_it_committed(mm: MM, tmp_path: Path) -> None:
    configure(mm)
    mm("index", str(write_notes(tmp_path / "notes", 40)), "--no-wait")
    worker = subprocess.Popen(mm_command("queue", "worker", "--home", str(mm.home)),
                              env=mm_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        poll(lambda: folded(mm), "the idle worker to fold the tail", timeout=120)
        assert worker.poll() is None  # folded while the worker runs, not by a merge it left
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def test_an_idle_worker_folds_a_tail_an_earlier_committer_left(mm: MM, tmp_path: Path) -> None:
    # The tail of an index committed before (an older memwal, a merge that was killed): the next
    # long-lived committer folds it without any new commit.
    write_config(mm.home, {"embedding": {"model": "hash-384"},
                           "vectors": {"merge_at": 10**8, "tail_bound": 10**6}})
    mm("index", str(write_notes(tmp_path / "notes", 40)))  # within that bound: nothing folds
    assert graph(mm)["in_graph"] == 0
    configure(mm)  # the bound lowered: the same tail is now too large
    worker = subprocess.Popen(mm_command("queue", "worker", "--home", str(mm.home)),
                              env=mm_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        poll(lambda: folded(mm), "the worker to fold the tail it found", timeout=120)
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def test_a_server_with_worker_folds_the_tail_of_what_its_agents_add(mm: MM, tmp_path: Path) -> None:
    configure(mm)
    server = HttpServer(mm.home, "--worker")
    try:
        mm("index", str(write_notes(tmp_path / "notes", 40)), "--no-wait")  # the server commits
        poll(lambda: folded(mm), "the server's committer to fold the tail", timeout=120)
        assert server.process.poll() is None
    finally:
        server.stop()
    assert json.loads(mm("doctor", "--json").stdout)["ok"]


# -- a warm memwal.search (issue 25, item 2) ---------------------------------------------------


def test_memwal_search_keeps_one_warm_searcher_per_home_and_follows_the_index(
        mm: MM, tmp_path: Path) -> None:
    import shutil

    import memwal
    from memwal.retrieval import KEPT

    from helpers import home_settings

    configure(mm)
    notes = write_notes(tmp_path / "notes", 3)
    mm("index", str(notes))
    settings = home_settings(mm.home)
    first = memwal.search(settings, "Note")
    searcher = KEPT.get(settings)
    assert memwal.search(settings, "Note") == first  # the same answer from the kept Searcher
    assert KEPT.get(settings) is searcher and searcher._keywords is not None  # postings kept now
    (notes / "extra.md").write_text("# Zanzibar\n\nquokka xylophone\n")
    mm("index", str(notes))
    assert memwal.search(settings, "quokka xylophone").hits[0].source_file.endswith("extra.md")
    # The index file replaced (a restore from a copy): the kept Searcher reads the new file.
    other = tmp_path / "other"
    write_config(other, {"embedding": {"model": "hash-384"}})
    (tmp_path / "other-notes").mkdir()
    (tmp_path / "other-notes" / "only.md").write_text("# Walrus\n\nwalrus umbrella\n")
    MM(other)("index", str(tmp_path / "other-notes"))
    for suffix in ("", "-wal", "-shm"):
        (mm.home / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    shutil.rmtree(mm.home / "vectors", ignore_errors=True)
    shutil.copy(other / "index.sqlite3", mm.home / "index.sqlite3")
    assert [h.source_file for h in memwal.search(settings, "walrus umbrella").hits] == \
        [str(tmp_path / "other-notes" / "only.md")]
    assert KEPT.get(settings) is searcher


async def test_search_async_uses_the_kept_searcher(mm: MM, tmp_path: Path) -> None:
    import memwal
    from memwal.retrieval import KEPT

    from helpers import home_settings

    configure(mm)
    mm("index", str(write_notes(tmp_path / "notes", 2)))
    settings = home_settings(mm.home)
    hits = (await memwal.search_async(settings, "Note")).hits
    assert hits and (await memwal.search_async(settings, "Note")).hits == hits
    assert KEPT.get(settings) is KEPT.get(settings)
