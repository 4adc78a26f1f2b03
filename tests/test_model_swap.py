"""The seed scenario: a model swap while an old-model writer keeps writing. Nothing mixes, nothing is lost."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers import MM, assert_doctor_ok, home_settings, poll, queue_rows, upsert, write_config
from memwal.lock import CommitterLock
from memwal import store
from memwal.config import load_settings
from memwal.embedders import get_embedder
from memwal.producer import enqueue_items
from test_crash import read_log, start_producer

A, B = "hash-384", "hash-384-b"


def index_conn(home: Path):
    return store.open_for_read(home / "index.sqlite3")


def query(home: Path, sql: str, params=()) -> list[tuple]:
    conn = index_conn(home)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def ledger_position(home: Path, batch_id: str) -> int:
    return query(home, "SELECT position FROM ledger WHERE batch_id=?", (batch_id,))[0][0]


def test_swap_with_two_live_writers_dead_letters_every_old_record_after_the_reset(
        mm: MM, home: Path, notes: Path, tmp_path: Path) -> None:
    mm("index", str(notes))
    worker = mm.popen("queue", "worker")
    log = tmp_path / "writer-a.log"
    writer_a = start_producer(home, log, seed=7, batches=100_000, pause=0.02, bad_ratio=0.0)
    try:
        poll(lambda: len(read_log(log)[0]) >= 5, what="writer A to enqueue")
        reset = mm("embedding-reset", "--mode", "apply-current", "--yes", "--json",
                   env={"MM_EMBEDDING_MODEL": B}).json()
        reset_position = ledger_position(home, reset["batch_id"])
        mm("index", str(notes), env={"MM_EMBEDDING_MODEL": B})  # writer B
        poll(lambda: sum(b.position > reset_position for b in read_log(log)[0].values()) >= 5,
                   what="writer A to enqueue after the reset")
    finally:
        writer_a.kill()
        writer_a.wait()
    mm("queue", "status")  # the worker drains what writer A left
    poll(lambda: mm("queue", "status", "--json").json()["pending"] == 0, what="the drain")
    worker.terminate()
    assert worker.wait(timeout=10) == 0

    a_fp, b_fp = get_embedder(A).fingerprint, get_embedder(B).fingerprint
    done = read_log(log)[0]
    before = [b for b in done.values() if b.position < reset_position]
    after = [b for b in done.values() if b.position > reset_position]
    assert before and after
    ledger = {r[0]: r[1:] for r in query(home, "SELECT batch_id, committed, dead_lettered, skipped FROM ledger")}
    for batch in before:
        assert ledger[batch.id] == (batch.items, 0, 0), "an A record before the reset was not committed"
    for batch in after:
        assert ledger[batch.id] == (0, batch.items, 0), "an A record after the reset was not dead-lettered"
    letters = query(home, "SELECT reason, fingerprint, active_fingerprint, batch_id FROM dead_letters")
    assert len(letters) == sum(b.items for b in after)
    assert {(r[0], r[1], r[2]) for r in letters} == {("fingerprint_mismatch", a_fp, b_fp)}
    assert {r[3] for r in letters} == {b.id for b in after}
    # No A vector anywhere; B vectors for writer B's notes.
    vectors = dict(query(home, "SELECT fingerprint, count(*) FROM chunks WHERE fingerprint IS NOT NULL GROUP BY 1"))
    assert set(vectors) == {b_fp}
    status = mm("status", "--json").json()
    assert list(status["vectors_by_fingerprint"]) == [b_fp]


def test_reset_back_then_replay_all_commits_dead_letters_in_original_order(mm: MM, home: Path, notes: Path) -> None:
    settings = load_settings(home, environ={})
    mm("index", str(notes))
    mm("embedding-reset", "--mode", "apply-current", "--yes", env={"MM_EMBEDDING_MODEL": B})
    # Writer A, still running with the old model, writes three versions of one key, then another key.
    versions = [upsert("same key", vector=_unit(i)) for i in range(3)] + [upsert("other", start=9)]
    enqueue_items(settings, versions)
    mm("queue", "worker", "--once")
    listed = mm("queue", "dead-letters", "list", "--json").json()
    assert [r["reason"] for r in listed] == ["fingerprint_mismatch"] * 4
    assert mm("index", str(notes), check=None).code == 2  # A configured, B active: refused

    mm("embedding-reset", "--mode", "apply-current", "--yes")  # back to A
    result = mm("queue", "dead-letters", "replay", "--all", "--json").json()
    assert result == {"queued": 4, "batches": 1, "batch_ids": result["batch_ids"], "replayed": 4,
                      "committed": 4, "dead_lettered": 0, "already_replayed": 0, "claimed_by": []}
    (vector,) = query(home, f"SELECT v.embedding FROM chunks c JOIN {store.VECTOR_TABLE} v ON v.chunk_id = c.id "
                            "WHERE c.content = 'same key'")[0]
    assert bytes(vector) == versions[2].vector  # original order: the last version wins
    replayed = mm("queue", "dead-letters", "list", "--include-replayed", "--json").json()
    assert all(r["replayed_by"] for r in replayed) and len({r["replayed_by"] for r in replayed}) == 1
    assert mm("queue", "dead-letters", "list", "--json").json() == []
    again = mm("queue", "dead-letters", "replay", str(listed[0]["id"]), check=2)
    assert "--again" in again.stderr
    purged = mm("queue", "dead-letters", "purge", "--replayed", "--yes", "--json").json()
    assert purged == {"purged": 4}


def four_dead_letters_replayable(mm: MM, home: Path, notes: Path) -> None:
    """Four fingerprint mismatches, with the index back on their model so that replay commits."""
    mm("index", str(notes))
    mm("embedding-reset", "--mode", "apply-current", "--yes", env={"MM_EMBEDDING_MODEL": B})
    enqueue_items(load_settings(home, environ={}), [upsert(f"text {i}", start=i + 1) for i in range(4)])
    mm("queue", "worker", "--once")
    mm("embedding-reset", "--mode", "apply-current", "--yes")  # back to A


def test_two_replays_before_a_commit_claim_each_dead_letter_once(mm: MM, home: Path, notes: Path) -> None:
    four_dead_letters_replayable(mm, home, notes)
    first = mm("queue", "dead-letters", "replay", "--all", "--no-wait", "--json").json()
    second = mm("queue", "dead-letters", "replay", "--all", "--no-wait", "--json").json()
    # Both read them as not yet replayed, and both queue them.
    assert (first["queued"], first["batches"]) == (second["queued"], second["batches"]) == (4, 1)
    mm("queue", "worker", "--once")
    ledger = dict((r[0], r[1:]) for r in query(
        home, "SELECT batch_id, committed, skipped FROM ledger ORDER BY position DESC LIMIT 2"))
    assert sorted(ledger.values()) == [(0, 4), (4, 0)]  # the later replay's copies are skipped
    letters = mm("queue", "dead-letters", "list", "--include-replayed", "--json").json()
    (claimer,) = {r["replayed_by"] for r in letters}
    assert ledger[claimer] == (4, 0)
    assert query(home, "SELECT count(*) FROM chunks WHERE content LIKE 'text %'") == [(4,)]
    again = mm("queue", "dead-letters", "replay", "--all", "--again", "--json").json()
    assert (again["committed"], again["already_replayed"]) == (4, 0)  # --again replays them once more


def test_two_replays_at_once_with_a_worker_running_replay_each_letter_once(
        mm: MM, home: Path, notes: Path) -> None:
    four_dead_letters_replayable(mm, home, notes)
    worker = mm.popen("queue", "worker")
    try:
        replays = [mm.popen("queue", "dead-letters", "replay", "--all", "--json") for _ in range(2)]
        results = [json.loads(p.communicate(timeout=120)[0]) for p in replays]
    finally:
        worker.terminate()
        worker.communicate(timeout=60)
    # However the two interleave, each letter is committed once in all: by one replay, or by the
    # two together, the other's copies skipped or never enqueued.
    assert sum(r["committed"] for r in results) == 4, results
    assert all(r["committed"] + r["already_replayed"] == r["queued"] for r in results), results
    assert sum(r["replayed"] for r in results) == 4, results
    assert query(home, "SELECT count(*) FROM chunks WHERE content LIKE 'text %'") == [(4,)]


def worker_holding_the_role(mm: MM) -> subprocess.Popen:
    """`mm queue worker`, once it is the home's committer (its pid is the one status names)."""
    worker = mm.popen("queue", "worker")
    poll(lambda: mm("queue", "status", "--json").json()["committer"]["pid"] == worker.pid,
         "the worker to take the committer role")
    return worker


def test_purge_while_a_worker_runs_goes_through_the_queue_and_reports_the_count(
        mm: MM, home: Path, notes: Path) -> None:
    four_dead_letters_replayable(mm, home, notes)
    ids = [r["id"] for r in mm("queue", "dead-letters", "list", "--json").json()]
    worker = worker_holding_the_role(mm)
    try:
        two = mm("queue", "dead-letters", "purge", str(ids[0]), str(ids[1]), "--yes", "--json")
        assert two.json() == {"purged": 2}
        assert [r["id"] for r in mm("queue", "dead-letters", "list", "--json").json()] == ids[2:]
        rest = mm("queue", "dead-letters", "purge", "--all", "--yes")
        assert "purged 2 dead letters" in rest.stderr + rest.stdout
        assert mm("queue", "dead-letters", "list", "--include-replayed", "--json").json() == []
        assert_doctor_ok(home)  # the ledger rows of the purges sum up
        assert mm("queue", "status", "--json").json()["committer"]["pid"] == worker.pid
    finally:
        worker.terminate()
        assert worker.wait(timeout=60) == 0


def test_two_replays_of_one_letter_at_once_one_replays_it_the_other_is_told_by_which_batch(
        mm: MM, home: Path, notes: Path) -> None:
    four_dead_letters_replayable(mm, home, notes)
    letter = mm("queue", "dead-letters", "list", "--json").json()[0]["id"]
    # The role is held here until both replays have planned and queued the letter: both read it
    # as not yet replayed, as two callers do that plan before either is committed.
    lock = CommitterLock(home_settings(home).lock_path)
    lock.acquire()
    try:
        replays = [mm.popen("queue", "dead-letters", "replay", str(letter), "--json") for _ in range(2)]
        poll(lambda: len(queue_rows(home)) == 2, "both replays to be queued")
    finally:
        lock.release()  # one of the two replays takes the role and commits both batches
    results = [json.loads(p.communicate(timeout=120)[0]) for p in replays]
    assert [p.returncode for p in replays] == [0, 0], results
    (first,) = [r for r in results if r["replayed"] == 1]
    (second,) = [r for r in results if r["replayed"] == 0]
    assert (first["committed"], first["already_replayed"], first["claimed_by"]) == (1, 0, [])
    assert (second["committed"], second["already_replayed"]) == (0, 1)
    assert second["claimed_by"] == [{"id": letter, "batch_id": first["batch_ids"][0]}]
    shown = mm("queue", "dead-letters", "show", str(letter), "--json").json()
    assert shown["replayed_by"] == first["batch_ids"][0]
    text = mm("queue", "dead-letters", "replay", str(letter), "--again")
    assert "already replayed by" not in text.stderr  # --again replays it once more, no claim


def test_replay_reembed_after_the_swap_gives_the_dead_letters_new_model_vectors(mm: MM, home: Path, notes: Path) -> None:
    settings = load_settings(home, environ={})
    mm("index", str(notes))
    mm("embedding-reset", "--mode", "apply-current", "--yes", env={"MM_EMBEDDING_MODEL": B})
    enqueue_items(settings, [upsert("late old-model note", start=3), upsert("another", start=4)])
    mm("queue", "worker", "--once")
    result = mm("queue", "dead-letters", "replay", "--all", "--reembed", "--json",
                env={"MM_EMBEDDING_MODEL": B}).json()
    assert result["committed"] == 2 and result["dead_lettered"] == 0
    rows = query(home, "SELECT content, fingerprint FROM chunks WHERE content IN ('late old-model note', 'another')")
    assert sorted(rows) == sorted([("late old-model note", get_embedder(B).fingerprint),
                                   ("another", get_embedder(B).fingerprint)])


def test_reset_queued_behind_pending_batches_does_not_overtake_them(mm: MM, home: Path, notes: Path) -> None:
    first = mm("index", str(notes), "--no-wait", "--json").json()
    assert first["batches"] >= 1
    mm("embedding-reset", "--mode", "apply-current", "--yes", "--no-wait", env={"MM_EMBEDDING_MODEL": B})
    mm("queue", "worker", "--once")
    ledger = query(home, "SELECT position, committed, dead_lettered FROM ledger ORDER BY position")
    *data_batches, reset_batch = ledger
    assert all(dead == 0 and committed > 0 for _, committed, dead in data_batches)
    assert reset_batch[1:] == (1, 0)
    # They committed under A, then lost their vectors to the reset; the text stays.
    assert query(home, "SELECT count(*) FROM chunks WHERE fingerprint IS NOT NULL") == [(0,)]
    assert query(home, "SELECT count(*) FROM chunks")[0][0] > 0
    state = mm("embedding-reset", "--json", env={"MM_EMBEDDING_MODEL": B}).json()
    assert state["chunks_without_active_vector"] > 0 and not state["differ"]
    # After the reset, a plain `mm index` re-embeds what lacks a current vector.
    again = mm("index", str(notes), "--json", env={"MM_EMBEDDING_MODEL": B}).json()
    assert again["new"] == again["files"] and again["chunks_embedded"] > 0
    assert mm("embedding-reset", "--json", env={"MM_EMBEDDING_MODEL": B}).json()["chunks_without_active_vector"] == 0


def test_reset_across_dimensions_rebuilds_vectors(mm: MM, home: Path, notes: Path) -> None:
    mm("index", str(notes))
    mm("embedding-reset", "--mode", "apply-current", "--yes", env={"MM_EMBEDDING_MODEL": "hash-64"})
    mm("index", str(notes), env={"MM_EMBEDDING_MODEL": "hash-64"})
    hits = mm("search", "Jupiter moons", "--json", env={"MM_EMBEDDING_MODEL": "hash-64"}).json()
    assert hits[0]["source_file"].endswith("astronomy.md")


def test_apply_without_yes_and_without_a_terminal_asks_for_yes(mm: MM, notes: Path) -> None:
    run = mm("embedding-reset", "--mode", "apply-current", env={"MM_EMBEDDING_MODEL": B}, check=2)
    assert "--yes" in run.stderr


@pytest.mark.integration
def test_swap_between_the_two_real_384_dimension_models(tmp_path: Path, notes: Path) -> None:
    home = tmp_path / "real-home"
    write_config(home, {"embedding": {"model": "minilm"}})
    mm = MM(home)
    settings = load_settings(home, environ={})
    mm("index", str(notes))
    minilm, paraphrase = get_embedder("minilm"), get_embedder("paraphrase-minilm")
    mm("embedding-reset", "--mode", "apply-current", "--yes", "--no-wait",
       env={"MM_EMBEDDING_MODEL": "paraphrase-minilm"})
    # The old writer, started with minilm before the swap, enqueues after the reset.
    text = "Saturn's rings are made of ice and rock."
    vector = minilm.embed([text])[0]
    from memwal.records import ChunkKey, Upsert
    from memwal.vectors import to_bytes
    from memwal.chunking import content_hash
    late = Upsert(ChunkKey("default", "/late.md", content_hash(text), 1), 1, (), text, (),
                  minilm.fingerprint, 384, to_bytes(vector))
    enqueue_items(settings, [late])
    mm("index", str(notes), env={"MM_EMBEDDING_MODEL": "paraphrase-minilm"})
    letters = mm("queue", "dead-letters", "list", "--json").json()
    assert [(r["reason"], r["fingerprint"], r["active_fingerprint"]) for r in letters] == [
        ("fingerprint_mismatch", minilm.fingerprint, paraphrase.fingerprint)]
    status = mm("status", "--json").json()
    assert list(status["vectors_by_fingerprint"]) == [paraphrase.fingerprint]
    hits = mm("search", "moons of Jupiter", "--json", env={"MM_EMBEDDING_MODEL": "paraphrase-minilm"}).json()
    assert hits[0]["source_file"].endswith("astronomy.md")
    result = mm("queue", "dead-letters", "replay", "--all", "--reembed", "--json",
                env={"MM_EMBEDDING_MODEL": "paraphrase-minilm"}).json()
    assert (result["committed"], result["dead_lettered"]) == (1, 0)
    assert mm("doctor", "--json").json()["ok"]


def _unit(i: int) -> bytes:
    vector = np.zeros(384, dtype="<f4")
    vector[i] = 1.0
    return vector.tobytes()
