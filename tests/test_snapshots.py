"""Which snapshot of a file wins, and work that must leave no trace (issue 22, items 5 and 6).

The queue decides, not the file's clock: a file restored with an older modification time is
committed like any other change. Only a snapshot read before another one that is committed
meanwhile (two producers racing on one file) loses by its mtime, as docs/design.md says. Empty files
are indexed once, and a note refused before it is queued leaves no file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from helpers import MM, ok, queue_rows, write_config
from test_mcp import A, B, call, refused, stdio_session


def search_texts(mm: MM, query: str) -> list[str]:
    """The text of every hit: with one small file indexed, every chunk the index holds (the
    vector leg finds them all)."""
    return [hit["content"] for hit in ok(mm("search", query, "--json")).json()]


def write(path: Path, text: str, mtime_s: int) -> None:
    path.write_text(text)
    os.utime(path, (mtime_s, mtime_s))


def indexed_note(mm: MM, tmp_path: Path, text: str) -> tuple[Path, Path]:
    """A notes folder holding one note `a.md` (with an mtime of 1_700_000_000), indexed and
    committed: (the folder, the note)."""
    notes = tmp_path / "notes"
    notes.mkdir()
    note = notes / "a.md"
    write(note, text, 1_700_000_000)
    ok(mm("index", str(notes)))
    return notes, note


def test_a_file_restored_with_an_older_mtime_is_committed_and_found(mm: MM, tmp_path: Path) -> None:
    notes, note = indexed_note(mm, tmp_path, "alpha version one\n")
    backup = tmp_path / "a.md.backup"
    shutil.copy2(note, backup)  # what cp -p, rsync -a or tar -x keep: the old mtime
    write(note, "beta version two\n", 1_700_000_100)
    ok(mm("index", str(notes)))
    assert search_texts(mm, "beta") == ["beta version two"]

    shutil.copy2(backup, note)  # the backup is put back, with its older mtime
    report = ok(mm("index", str(notes), "--json")).json()
    assert (report["new"], report["committed"], report["not_applied"]) == (1, 2, [])  # file + chunk
    assert search_texts(mm, "alpha") == ["alpha version one"]
    # From now on it is unchanged: the producer's diff and the committer agree.
    again = ok(mm("index", str(notes), "--json")).json()
    assert (again["new"], again["unchanged"], again["batches"]) == (0, 1, 0)


def test_two_producers_racing_on_one_file_end_with_the_later_snapshot(mm: MM, tmp_path: Path) -> None:
    """Both producers diffed against the same committed snapshot; the queue holds both. The
    later-enqueued (and later-read) one is what the index ends with, whatever the mtimes."""
    notes, note = indexed_note(mm, tmp_path, "first draft of the plan\n")
    write(note, "second draft of the plan\n", 1_700_000_200)
    ok(mm("index", str(notes), "--no-wait"))
    write(note, "third draft of the plan\n", 1_700_000_300)
    ok(mm("index", str(notes), "--no-wait"))
    assert len(queue_rows(mm.home)) == 2
    ok(mm("queue", "worker", "--once"))
    assert search_texts(mm, "draft plan") == ["third draft of the plan"]
    again = ok(mm("index", str(notes), "--json")).json()
    assert (again["new"], again["unchanged"]) == (0, 1)


def test_a_snapshot_read_before_one_committed_meanwhile_is_skipped_and_the_producer_is_told(
        mm: MM, tmp_path: Path) -> None:
    """A producer that read the file before another producer's newer read was committed does not
    roll it back (docs/design.md: the older read loses), and its `mm index` says so."""
    notes, note = indexed_note(mm, tmp_path, "version one\n")
    write(note, "version two\n", 1_700_000_100)
    # Producer A reads version two and queues it (nobody commits yet).
    ok(mm("index", str(notes), "--no-wait"))
    # Producer B read the file earlier (an older read: version "one and a half", older mtime)
    # and queues it after A: its snapshot is based on the same commit as A's.
    write(note, "version one and a half\n", 1_700_000_050)
    run = mm("index", str(notes), "--json")
    report = run.json()
    assert report["not_applied"] == [str(note.resolve())]
    assert "another producer committed a newer read" in run.stderr
    assert search_texts(mm, "version") == ["version two"]
    # Until a run commits what the file holds, doctor names it.
    doctor = mm("doctor", "--json", check=1).json()
    (check,) = [c for c in doctor["checks"] if c["name"] == "last_index_applied"]
    assert not check["ok"] and str(note.resolve()) in check["detail"], check
    # They never disagree for long: the next run is based on what is committed now, so the
    # file as it is on disk is committed, whatever its clock.
    healed = ok(mm("index", str(notes), "--json")).json()
    assert (healed["new"], healed["committed"], healed["not_applied"]) == (1, 2, [])
    assert search_texts(mm, "version") == ["version one and a half"]


def test_empty_and_blank_files_are_indexed_once(mm: MM, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "empty.md").write_text("")
    (notes / "blank.txt").write_text("  \n\n\t\n")
    (notes / "full.md").write_text("# Full\n\nSomething worth finding.\n")
    first = ok(mm("index", str(notes), "--json")).json()
    assert first["new"] == 3
    for _ in range(2):
        again = ok(mm("index", str(notes), "--json")).json()
        assert (again["new"], again["unchanged"], again["batches"]) == (0, 3, 0)
    status = ok(mm("status", "--json")).json()
    assert status["files"] == 3
    # An empty file that gets content is indexed; one that is removed is forgotten.
    (notes / "empty.md").write_text("# Now\n\nIt has words.\n")
    (notes / "blank.txt").unlink()
    changed = ok(mm("index", str(notes), "--json")).json()
    assert (changed["new"], changed["deleted"]) == (1, 1)
    assert any("It has words." in text for text in search_texts(mm, "words"))


async def test_a_mem_add_refused_by_the_model_gate_leaves_no_file(mm: MM, tmp_path: Path) -> None:
    notes = tmp_path / "home" / "notes"
    async with stdio_session(mm.home, "--worker") as session:
        await call(session, "mem_add", content="the first note", title="one", wait=True)
    before = sorted(p.name for p in notes.rglob("*"))
    write_config(mm.home, {"embedding": {"model": B}})  # another model than the index's (A)
    async with stdio_session(mm.home, "--worker") as session:
        for _ in range(3):  # an agent that retries
            text = await refused(session, "mem_add", content="a refused note", title="two")
            assert "configured model" in text
        await refused(session, "mem_add", content="appended", file="sub/dir/x.md")
        await refused(session, "mem_add", content="appended", file=before[0])
    assert sorted(p.name for p in notes.rglob("*")) == before
    assert (notes / before[0]).read_text().count("the first note") == 1
    assert "appended" not in (notes / before[0]).read_text()
    write_config(mm.home, {"embedding": {"model": A}})


def test_on_a_shared_redis_queue_a_restore_is_committed_and_an_empty_file_sent_once(
        tmp_path: Path) -> None:
    """The same rules for a producer on another machine, which diffs against what the committer
    publishes (the base of a snapshot included)."""
    from redis_server import RedisServer
    from test_redis import machine, stop

    redis = RedisServer(tmp_path / "redis")
    try:
        committer, writer = machine(tmp_path, "server", redis), machine(tmp_path, "laptop", redis)
        worker = committer.popen("queue", "worker")
        try:
            notes = tmp_path / "notes"
            notes.mkdir()
            note, backup = notes / "a.md", tmp_path / "a.md.backup"
            (notes / "empty.md").write_text(" \n")
            write(note, "alpha version one\n", 1_700_000_000)
            ok(writer("index", str(notes)))
            shutil.copy2(note, backup)
            write(note, "beta version two\n", 1_700_000_100)
            ok(writer("index", str(notes)))
            shutil.copy2(backup, note)
            restored = ok(writer("index", str(notes), "--json")).json()
            assert (restored["new"], restored["unchanged"], restored["not_applied"]) == (1, 1, [])
            again = ok(writer("index", str(notes), "--json")).json()
            assert (again["new"], again["unchanged"], again["batches"]) == (0, 2, 0)
        finally:
            assert "Traceback" not in stop(worker)
        assert search_texts(committer, "version") == ["alpha version one"]
    finally:
        redis.stop()
