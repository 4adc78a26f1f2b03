"""The derived vector index: never a second truth, right after any crash, rebuilt when damaged."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import MM, home_settings, poll, upsert, write_config
from memwal.config import load_settings
from memwal.producer import enqueue_items
from memwal.retrieval import Searcher

WORDS = ("apple banana cherry delta echo foxtrot golf hotel india juliet kilo lima mike november "
         "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


def write_notes(root: Path, files: int, seed: int = 3, prefix: str = "n") -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        sections = "\n\n".join(f"## Part {s}\n\n" + " ".join(rng.choice(WORDS) for _ in range(40))
                               for s in range(6))
        (root / f"{prefix}{f:03d}.md").write_text(f"# Note {f}\n\n{sections}\n")
    return root


def configure(mm: MM, merge_at: int) -> None:
    write_config(mm.home, {"embedding": {"model": "hash-384"}, "vectors": {"merge_at": merge_at}})


def stamp(mm: MM) -> dict | None:
    path = mm.home / "vectors" / "current.json"
    return json.loads(path.read_text()) if path.exists() else None


def ids(searcher: Searcher, query: str, exact: bool = False) -> list[int]:
    # A source filter makes the vector leg exact (sqlite-vec's own search): the reference.
    return [h.chunk_id for h in searcher.search(query, top_k=10, max_per_doc=0,
                                                source_glob="*" if exact else None).hits]


def kill_the_merge_at(mm: MM, fault: str, notes: Path, tmp_path: Path) -> None:
    """Index `notes` with a worker that stops at fault point `fault` of its merge, and SIGKILL it there."""
    marker = tmp_path / "at-the-fault"
    worker = mm.popen("queue", "worker", env={"MM_FAULT": fault, "MM_FAULT_MARKER": str(marker)})
    try:
        mm("index", "--no-wait", str(notes))
        poll(marker.exists, f"the committer's merge to reach {fault}", 300)
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()


def vector_only(mm: MM) -> Searcher:
    write_config(mm.home, {"embedding": {"model": "hash-384"}, "vectors": {"merge_at": 10**8},
                           "search": {"bm25_weight": 0}})
    return Searcher(home_settings(mm.home))


def test_the_committer_builds_the_index_and_searches_agree_with_exact_search(
        mm: MM, tmp_path: Path) -> None:
    configure(mm, merge_at=300)
    mm("index", str(write_notes(tmp_path / "notes", 120)))
    current = stamp(mm)
    assert current is not None and current["count"] >= 300
    for segment in current["segments"]:
        assert oct((mm.home / "vectors" / segment["file"]).stat().st_mode & 0o777) == "0o600"
    searcher = Searcher(home_settings(mm.home))
    rng = random.Random(5)
    overlap = 0
    for _ in range(40):
        query = " ".join(rng.sample(WORDS, 3))
        overlap += len(set(ids(searcher, query)) & set(ids(searcher, query, exact=True)))
    assert overlap / 400 >= 0.95
    assert mm("doctor", "--json").json()["ok"]


def test_a_reader_searches_the_graph_with_the_configured_expansion(mm: MM, tmp_path: Path) -> None:
    # usearch restores a saved index with its default expansion (64): recall@10 0.91 at 1M.
    from memwal import store
    from memwal.vectorindex import EXPANSION_SEARCH
    from memwal.vectorindex.reads import open_view

    configure(mm, merge_at=50)
    mm("index", str(write_notes(tmp_path / "notes", 20)))
    settings = home_settings(mm.home)
    with store.reading(settings.index_path) as conn:
        active = store.active_model(conn)
    assert active is not None
    view = open_view(settings, active)
    assert view is not None
    assert view.views and all(v.expansion_search == EXPANSION_SEARCH for v in view.views)


def test_what_was_committed_after_the_stamp_is_found_and_what_was_deleted_is_never_returned(
        mm: MM, tmp_path: Path) -> None:
    configure(mm, merge_at=200)
    notes = write_notes(tmp_path / "notes", 60)
    mm("index", str(notes))
    before = stamp(mm)
    assert before is not None
    searcher = vector_only(mm)  # no more merges: everything below lives in the tail
    (notes / "fresh.md").write_text("# Fresh\n\nquasar pulsar nebula quasar pulsar nebula\n")
    doomed = sorted(notes.glob("n0*.md"))[:20]
    doomed_names = {str(p.resolve()) for p in doomed}
    for path in doomed:
        path.unlink()
    mm("index", str(notes))
    assert stamp(mm) == before
    hits = searcher.search("quasar pulsar nebula", top_k=5, max_per_doc=0).hits
    assert Path(hits[0].source_file).name == "fresh.md"
    for query in ("apple banana", "kilo lima mike", "zulu yankee xray"):
        found = searcher.search(query, top_k=50, max_per_doc=0).hits
        assert found and not {h.source_file for h in found} & doomed_names


def test_a_vector_replaced_after_the_stamp_is_judged_by_its_new_value(mm: MM) -> None:
    configure(mm, merge_at=50)
    settings = home_settings(mm.home)
    filler = [upsert(" ".join(random.Random(i).sample(WORDS, 8)), source=f"/f/{i}.md", start=1)
              for i in range(80)]
    target = upsert("alpha bravo charlie delta", source="/target.md")
    enqueue_items(settings, [target, *filler])
    mm("queue", "worker", "--once")
    assert stamp(mm) is not None
    searcher = vector_only(mm)
    assert searcher.search("alpha bravo charlie delta", top_k=1).hits[0].source_file == "/target.md"
    # Same chunk, a new vector far from that query: the graph still holds the old one.
    far = upsert("alpha bravo charlie delta", source="/target.md",
                 vector=upsert("omega sigma tau upsilon", source="/x.md").vector)
    enqueue_items(settings, [far])
    mm("queue", "worker", "--once")
    top = searcher.search("alpha bravo charlie delta", top_k=3, max_per_doc=0).hits
    assert "/target.md" not in {h.source_file for h in top}
    assert searcher.search("omega sigma tau upsilon", top_k=1).hits[0].source_file == "/target.md"


def test_vectors_committed_during_a_merge_are_folded_by_the_next_merge_without_another_commit(
        mm: MM, monkeypatch: pytest.MonkeyPatch) -> None:
    # A burst that ends while a merge runs must not leave its tail waiting for the next commit.
    import threading

    from memwal import store
    from memwal.store import reads
    from memwal.vectorindex import Stamp, writes

    configure(mm, merge_at=10**8)  # the worker below never merges: the Maintainer under test does
    settings = home_settings(mm.home)

    def commit(first: int) -> None:
        enqueue_items(settings, [upsert(" ".join(random.Random(i).sample(WORDS, 8)),
                                        source=f"/f/{i}.md") for i in range(first, first + 30)])
        mm("queue", "worker", "--once")

    commit(0)
    saving, go_on = threading.Event(), threading.Event()
    real_save = writes.save

    def save_once_held(settings: object, written: Stamp) -> None:
        if not saving.is_set():  # the first merge waits here, its snapshot already taken
            saving.set()
            go_on.wait()
        real_save(settings, written)

    monkeypatch.setattr(writes, "save", save_once_held)
    maintainer = writes.Maintainer(settings, merge_at=20)
    maintainer.committed(0)  # 30 vectors in the tail already: the first merge starts
    assert saving.wait(60), "the first merge never reached its save"
    commit(30)
    maintainer.committed(30)  # while the first merge runs: no second thread, its turn comes
    go_on.set()
    maintainer.settle()
    assert maintainer.error is None
    with store.reading(settings.index_path) as conn:
        current = reads.commit_seq(conn)
    written = stamp(mm)
    assert written is not None and (written["seq"], written["count"]) == (current, 60)
    maintainer.close()


@pytest.mark.no_doctor
def test_a_committer_killed_in_the_middle_of_saving_the_index_leaves_searches_right(
        mm: MM, tmp_path: Path) -> None:
    configure(mm, merge_at=300)
    notes = write_notes(tmp_path / "notes", 80)
    mm("index", str(notes))
    first = stamp(mm)
    assert first is not None
    write_notes(tmp_path / "notes", 140, seed=9, prefix="m")
    kill_the_merge_at(mm, "ann-before-rename", notes, tmp_path)
    assert stamp(mm) == first  # the previous file and stamp: still a consistent pair
    assert list((mm.home / "vectors").glob(".*.tmp"))  # the half-done file is left, unused
    # The merge ran beside the committer: batches may still be queued (the next `mm index`
    # commits them). Whatever was committed is searched right, from the old graph + the tail.
    searcher = Searcher(home_settings(mm.home))
    for query in ("apple banana cherry", "tango uniform victor"):
        assert ids(searcher, query) and set(ids(searcher, query)) & set(ids(searcher, query, exact=True))
    checks = {c["name"]: c for c in mm("doctor", "--json", check=None).json()["checks"]}
    assert checks["vector_index"]["ok"]  # (a batch caught in flight by the kill is flagged too)
    (notes / "extra.md").write_text("# Extra\n\n" + " ".join(WORDS) + "\n")
    mm("index", str(notes))  # the next commit brings a new merge, which cleans up
    assert stamp(mm)["seq"] > first["seq"]
    assert not list((mm.home / "vectors").glob(".*.tmp"))
    assert mm("doctor", "--json").json()["ok"]


@pytest.mark.no_doctor
@pytest.mark.parametrize("damage", ["garbage", "missing", "truncated"])
def test_a_damaged_or_missing_index_is_not_used_and_repair_rebuilds_it(
        mm: MM, tmp_path: Path, damage: str) -> None:
    configure(mm, merge_at=300)
    mm("index", str(write_notes(tmp_path / "notes", 80)))
    current = stamp(mm)
    searcher = Searcher(home_settings(mm.home))
    good = ids(searcher, "apple banana cherry")
    path = mm.home / "vectors" / current["segments"][0]["file"]
    if damage == "garbage":
        path.write_bytes(os.urandom(path.stat().st_size))
    elif damage == "missing":
        path.unlink()
    else:
        with open(path, "r+b") as handle:
            handle.truncate(path.stat().st_size // 2)
    fresh = Searcher(home_settings(mm.home))  # a new reader: the exact search, same answers
    assert set(ids(fresh, "apple banana cherry")) & set(good)
    # Exact search (sqlite-vec's KNN) against the exact filtered scan: the same up to ties.
    assert len(set(ids(fresh, "apple banana cherry")) &
               set(ids(fresh, "apple banana cherry", exact=True))) >= 9
    report = mm("doctor", "--json", check=None).json()
    vector_check = next(c for c in report["checks"] if c["name"] == "vector_index")
    if damage == "missing":
        assert vector_check["ok"] is False or "none" in vector_check["detail"]
    else:
        assert vector_check["ok"] is False and "--repair" in vector_check["detail"]
    repaired = mm("doctor", "--repair", "--json").json()
    assert repaired["ok"] and repaired["repaired"]["vector_index"]["built"]


def test_after_a_reset_the_old_models_index_is_never_used(mm: MM, tmp_path: Path) -> None:
    configure(mm, merge_at=300)
    notes = write_notes(tmp_path / "notes", 80)
    mm("index", str(notes))
    assert stamp(mm) is not None
    b = {"MM_EMBEDDING_MODEL": "hash-384-b"}
    mm("embedding-reset", "--mode", "apply-current", "--yes", env=b)
    mm("index", str(notes), env=b)
    current = stamp(mm)
    assert current is not None and current["fingerprint"].startswith("hash-384-b/")
    searcher = Searcher(load_settings(mm.home, environ={}, flags={"embedding.model": "hash-384-b"}))
    found = ids(searcher, "apple banana cherry")
    assert len(set(found) & set(ids(searcher, "apple banana cherry", exact=True))) >= 9


@pytest.mark.integration
def test_a_process_that_checks_the_index_before_its_first_search_does_not_crash(
        mm: MM, tmp_path: Path) -> None:
    """Doctor opens the derived index (usearch) before the first search loads the model
    (onnxruntime), as a server does when `mem_doctor` comes first: with onnxruntime 1.32 and
    usearch 2.26 that import order crashed the process with SIGSEGV."""
    write_config(mm.home, {"vectors": {"merge_at": 1}})  # the default model; the index built at once
    mm("index", str(write_notes(tmp_path / "notes", 3)))
    poll(lambda: stamp(mm) is not None, "the derived index to be saved")
    script = ("import sys, memwal\n"
              "settings = memwal.load_settings(sys.argv[1])\n"
              "checks = {c['name']: c['ok'] for c in memwal.run_doctor(settings)['checks']}\n"
              "assert checks['vector_index'], checks\n"
              "assert memwal.search(settings, 'note part').hits\n")
    run = subprocess.run([sys.executable, "-c", script, str(mm.home)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])


def test_the_index_is_cut_into_segments_and_a_merge_holds_one_segment_at_a_time(
        mm: MM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import weakref

    from memwal.vectorindex import writes

    write_config(mm.home, {"embedding": {"model": "hash-384"},
                           "vectors": {"merge_at": 100, "segment_size": 120}})
    notes = write_notes(tmp_path / "notes", 70)
    mm("index", str(notes))  # the committer's own merges, segments of at most 120
    built = stamp(mm)
    assert built is not None and len(built["segments"]) >= 2
    assert all(0 < s["count"] <= 120 for s in built["segments"])
    on_disk = {p.name for p in (mm.home / "vectors").glob("*.usearch")}
    assert on_disk == {s["file"] for s in built["segments"]}

    alive, most = [0], [0]
    real_new = writes._new_index

    def counted(dim: int) -> object:
        index = real_new(dim)
        alive[0] += 1
        most[0] = max(most[0], alive[0])
        weakref.finalize(index, lambda: alive.__setitem__(0, alive[0] - 1))
        return index

    monkeypatch.setattr(writes, "_new_index", counted)
    settings = home_settings(mm.home)
    # Deleted chunks sit in the oldest segments, new ones go to the last: a merge changes several.
    doomed = sorted(notes.glob("n0*.md"))[:25]
    doomed_names = {str(p.resolve()) for p in doomed}
    for path in doomed:
        path.unlink()
    write_notes(tmp_path / "notes", 20, seed=11, prefix="m")
    mm("index", "--no-wait", str(notes))  # the CLI's committer below, not this one
    mm("queue", "worker", "--once", env={"MM_VECTORS_MERGE_AT": str(10**8)})
    merged = writes.merge(settings)
    assert merged is not None and most[0] == 1  # one graph in memory at a time
    changed = {s.file for s in merged.segments} - {s["file"] for s in built["segments"]}
    assert len(changed) >= 2
    assert all(0 < s.count <= 120 for s in merged.segments)
    from memwal import store
    from memwal.store import reads
    with store.reading(settings.index_path) as conn:
        active = store.active_model(conn)
        assert active is not None
        assert merged.count == len(reads.ids_with_vectors(conn, active.fingerprint))
    assert {p.name for p in (mm.home / "vectors").glob("*.usearch")} == \
        {s.file for s in merged.segments}

    searcher = vector_only(mm)  # the tail is empty: every answer comes from the segments
    rng = random.Random(8)
    overlap = 0
    for _ in range(30):
        query = " ".join(rng.sample(WORDS, 3))
        found = searcher.search(query, top_k=10, max_per_doc=0).hits
        assert not {h.source_file for h in found} & doomed_names
        overlap += len({h.chunk_id for h in found} & set(ids(searcher, query, exact=True)))
    assert overlap / 300 >= 0.95
    assert mm("doctor", "--json").json()["ok"]


def test_a_stamp_written_before_segments_is_read_as_one_segment(mm: MM, tmp_path: Path) -> None:
    configure(mm, merge_at=300)
    mm("index", str(write_notes(tmp_path / "notes", 80)))
    current = stamp(mm)
    assert current is not None and len(current["segments"]) == 1
    only = current["segments"][0]
    (mm.home / "vectors" / "current.json").write_text(json.dumps(  # the one-file shape
        {"file": only["file"], "fingerprint": current["fingerprint"], "dim": current["dim"],
         "seq": current["seq"], "count": only["count"], "size": only["size"],
         "sha256": only["sha256"]}))
    checks = {c["name"]: c for c in mm("doctor", "--json").json()["checks"]}
    assert checks["vector_index"]["ok"] and "1 segment" in checks["vector_index"]["detail"]
    from memwal import store
    from memwal.vectorindex.reads import open_view
    settings = home_settings(mm.home)
    with store.reading(settings.index_path) as conn:
        active = store.active_model(conn)
    assert active is not None
    derived = open_view(settings, active, verify=True)
    assert derived is not None and derived.stamp.count == only["count"]


def test_a_segment_mostly_emptied_by_deletions_is_dissolved_into_the_others(
        mm: MM, tmp_path: Path) -> None:
    from memwal import store
    from memwal.store import reads
    from memwal.vectorindex import writes
    from memwal.vectorindex.reads import open_view

    write_config(mm.home, {"embedding": {"model": "hash-384"},
                           "vectors": {"merge_at": 10**8, "segment_size": 120}})
    notes = write_notes(tmp_path / "notes", 60)
    mm("index", str(notes))
    settings = home_settings(mm.home)
    first = writes.merge(settings, fresh=True)
    assert first is not None and len(first.segments) >= 3
    with store.reading(settings.index_path) as conn:
        oldest = set(reads.chunk_rows(conn, list(open_view(
            settings, store.active_model(conn)).views[0].keys)).values())
    sources = sorted({row.source_file for row in oldest})
    for source in sources[:len(sources) // 2] + sources[len(sources) // 2 + 1:]:
        Path(source).unlink()  # all but one note with a chunk in the oldest segment
    mm("index", str(notes))
    merged = writes.merge(settings)
    assert merged is not None
    assert first.segments[0].file not in {s.file for s in merged.segments}
    assert all(s.count >= 30 for s in merged.segments[:-1])  # none left near-empty
    with store.reading(settings.index_path) as conn:
        assert merged.count == len(reads.ids_with_vectors(conn, store.active_model(conn).fingerprint))
    searcher = vector_only(mm)
    for query in ("apple banana cherry", "tango uniform victor"):
        assert len(set(ids(searcher, query)) & set(ids(searcher, query, exact=True))) >= 9
    assert mm("doctor", "--json").json()["ok"]


@pytest.mark.no_doctor
def test_a_committer_killed_after_writing_new_segments_but_before_naming_them_leaves_searches_right(
        mm: MM, tmp_path: Path) -> None:
    write_config(mm.home, {"embedding": {"model": "hash-384"},
                           "vectors": {"merge_at": 150, "segment_size": 100}})
    notes = write_notes(tmp_path / "notes", 40)
    mm("index", str(notes))
    first = stamp(mm)
    assert first is not None and len(first["segments"]) >= 2
    named = {s["file"] for s in first["segments"]}
    for path in sorted(notes.glob("n0*.md"))[:10]:
        path.unlink()  # chunks leave the older segments: several files are rewritten
    write_notes(tmp_path / "notes", 40, seed=9, prefix="m")
    kill_the_merge_at(mm, "ann-before-stamp", notes, tmp_path)
    assert stamp(mm) == first  # the previous files and stamp: still a consistent set
    orphans = {p.name for p in (mm.home / "vectors").glob("*.usearch")} - named
    assert len(orphans) >= 2  # the new segments, written whole and never named
    searcher = Searcher(home_settings(mm.home))
    for query in ("apple banana cherry", "tango uniform victor"):
        assert len(set(ids(searcher, query)) & set(ids(searcher, query, exact=True))) >= 9
    (notes / "extra.md").write_text("# Extra\n\n" + " ".join(WORDS) + "\n")
    mm("index", str(notes))  # a commit, so the next merge runs: it names its own files only
    current = stamp(mm)
    assert current["seq"] > first["seq"]
    assert {p.name for p in (mm.home / "vectors").glob("*.usearch")} == \
        {s["file"] for s in current["segments"]}
    assert mm("doctor", "--json").json()["ok"]
