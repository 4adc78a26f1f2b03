"""The watcher: a long-lived producer that keeps folders indexed and follows model resets."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

from helpers import MM, home_settings, poll
from memwal.producer import enqueue_items
from memwal.records import Reset

A, B = "hash-384", "hash-384-b"


def found(mm: MM, query: str, env: dict[str, str] | None = None) -> list[str]:
    """Names of the files whose hits hold every word of `query`."""
    hits = mm("search", "--json", "--top-k", "200", query, env=env, check=None)
    if hits.code != 0:
        return []
    words = query.lower().split()
    return sorted({Path(h["source_file"]).name for h in hits.json()
                   if all(w in h["content"].lower() for w in words)})


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)


def watchers(mm: MM, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return mm("status", "--json", env=env).json()["watchers"]


def test_the_watcher_indexes_new_changed_and_deleted_files(mm: MM, tmp_path: Path) -> None:
    root = tmp_path / "notes"
    root.mkdir()
    (root / "kept.md").write_text("# Kept\n\nThe orchard has seven pear trees.\n")
    worker, watcher = mm.popen("queue", "worker"), mm.popen("watch", str(root))
    try:
        poll(lambda: found(mm, "pear trees") == ["kept.md"], "the first pass", 120)
        (root / "new.md").write_text("# New\n\nA kingfisher nests by the mill race.\n")
        poll(lambda: found(mm, "kingfisher") == ["new.md"], "a new file", 120)
        (root / "new.md").write_text("# New\n\nA dipper nests by the mill race now.\n")
        poll(lambda: found(mm, "dipper") == ["new.md"] and found(mm, "kingfisher") == [],
             "a changed file", 120)
        (root / "new.md").unlink()
        poll(lambda: found(mm, "dipper") == [], "a deleted file", 120)
        (state,) = watchers(mm)
        assert state["state"] == "watching" and state["roots"] == [str(root)]
    finally:
        stop(watcher)
        stop(worker)
    assert watchers(mm) == []  # a stopped watcher leaves no status behind


def test_a_reset_while_watching_never_mixes_and_the_watcher_switches_models(
        mm: MM, tmp_path: Path) -> None:
    root = tmp_path / "notes"
    root.mkdir()
    for n in range(40):
        (root / f"n{n:02d}.md").write_text(f"# Note {n}\n\nWillow number {n} by the river.\n")
    a, b = {"MM_EMBEDDING_MODEL": A}, {"MM_EMBEDDING_MODEL": B}
    worker, watcher = mm.popen("queue", "worker", env=a), mm.popen("watch", str(root), env=a)
    try:
        poll(lambda: len(found(mm, "willow river", a)) == 40, "the first pass with model A", 180)
        mm("embedding-reset", "--mode", "apply-current", "--yes", "--no-wait", env=b)
        for n in range(40, 60):  # written while the reset travels the queue
            (root / f"n{n:02d}.md").write_text(f"# Note {n}\n\nWillow number {n} by the river.\n")

        def all_on_b() -> bool:
            status = mm("status", "--json", env=b).json()
            return (status["active_model"]["name"] == B and status["files"] == 60
                    and status["vectors_by_fingerprint"] == {status["active_model"]["fingerprint"]:
                                                             status["chunks"]}
                    and status["queue"]["pending"] == 0)

        poll(all_on_b, "every note re-embedded with model B", 300)
        (state,) = watchers(mm, b)
        assert state["model"]["name"] == B and state["state"] == "watching"
        assert len(found(mm, "willow river", b)) == 60
    finally:
        stop(watcher)
        stop(worker)
    letters = mm("queue", "dead-letters", "list", "--json", env=b).json()
    # Records the watcher made before it switched may be refused; none made after.
    assert {(d["reason"], d["fingerprint"].split("/")[0]) for d in letters} <= \
        {("fingerprint_mismatch", A)}


def test_a_watcher_that_cannot_build_the_new_model_stops_enqueueing_and_says_why(
        mm: MM, tmp_path: Path) -> None:
    root = tmp_path / "notes"
    root.mkdir()
    (root / "one.md").write_text("# One\n\nHeather on the moor.\n")
    watcher = mm.popen("watch", str(root))
    try:
        poll(lambda: watchers(mm) and watchers(mm)[0]["passes"] >= 1, "the first pass", 120)
        # A reset to a model this process builds differently (another machine's weights).
        enqueue_items(home_settings(mm.home), [Reset(f"{A}/000000000000000000000000", A, 384)])
        (root / "two.md").write_text("# Two\n\nGorse on the hill.\n")
        poll(lambda: watchers(mm) and watchers(mm)[0]["state"] == "stopped",
             "the watcher to stop", 120)
        assert "cannot build" in watchers(mm)[0]["error"]
    finally:
        stop(watcher)
    mm("queue", "worker", "--once")
    assert mm("status", "--json").json()["chunks"] == 1  # one.md only (its vector was removed)
