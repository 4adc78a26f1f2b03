"""The committer's rules, per batch (docs/design.md), on a real index and queue in a temporary home."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from helpers import batch, reset, snapshot, upsert
from memwal import store
from memwal.doctor import run_doctor
from memwal.lock import CommitterBusy, CommitterLock
from memwal.queue import open_queue
from memwal.worker import committer_session
from memwal.records import encode_batch
from memwal.store import writes
from memwal.vectors import to_bytes


def enqueue(settings, *batches) -> list[int]:
    queue = open_queue(settings)
    try:
        return [queue.put(encode_batch(b)) for b in batches]
    finally:
        queue.close()


def drain(settings):
    with committer_session(settings) as committer:
        return committer.drain()


def index(settings):
    return store.open_for_read(settings.index_path)


def dead_letters(settings) -> list[tuple]:
    conn = index(settings)
    try:
        return conn.execute("SELECT reason, fingerprint, active_fingerprint, batch_id, position, "
                            "item_index FROM dead_letters ORDER BY id").fetchall()
    finally:
        conn.close()


def assert_doctor_ok(settings) -> None:
    report = run_doctor(settings)
    assert report["ok"], report


def test_first_upsert_adopts_its_model_and_commits(settings) -> None:
    enqueue(settings, batch(upsert("alpha"), upsert("beta", start=3)))
    stats = drain(settings)
    assert (stats.batches, stats.committed, stats.dead_lettered) == (1, 2, 0)
    conn = index(settings)
    assert store.active_model(conn).name == "hash-384"
    assert conn.execute(f"SELECT count(*) FROM {store.VECTOR_TABLE}").fetchone()[0] == 2
    assert_doctor_ok(settings)


def test_redelivered_batch_is_applied_once(settings) -> None:
    same = batch(upsert("alpha"))
    enqueue(settings, same, same)
    stats = drain(settings)
    assert (stats.batches, stats.duplicates) == (1, 1)
    conn = index(settings)
    assert conn.execute("SELECT count(*) FROM ledger").fetchone()[0] == 1
    assert_doctor_ok(settings)


def test_each_bad_item_is_dead_lettered_alone_and_the_rest_commits(settings) -> None:
    good = upsert("good text")
    wrong_model = upsert("other model", model="hash-384-b", start=2)
    wrong_dim = upsert("short", start=3, vector=to_bytes(np.ones(16)), dim=16)
    nan = upsert("nan", start=4, vector=to_bytes(np.full(384, np.nan)))
    float64 = upsert("f64", start=5, vector=np.ones(384, dtype="<f8").tobytes())
    bad = batch(good, wrong_model, wrong_dim, nan, float64)
    # A malformed item, inserted by hand into the wire map.
    wire = msgpack.unpackb(encode_batch(bad), raw=False)
    wire["items"].insert(1, {"kind": "upsert", "content": 3})
    enqueue_raw(settings, msgpack.packb(wire, use_bin_type=True))
    stats = drain(settings)
    assert (stats.committed, stats.dead_lettered) == (1, 5)
    reasons = [row[0] for row in dead_letters(settings)]
    assert reasons == ["malformed", "fingerprint_mismatch", "wrong_dimension", "invalid_vector",
                       "wrong_dimension"]
    mismatch = dead_letters(settings)[1]
    assert mismatch[1] == wrong_model.fingerprint and mismatch[2] == good.fingerprint
    assert mismatch[3] == bad.id and mismatch[5] == 2
    assert_doctor_ok(settings)


def enqueue_raw(settings, data: bytes) -> int:
    queue = open_queue(settings)
    try:
        return queue.put(data)
    finally:
        queue.close()


def test_garbage_batch_becomes_a_raw_dead_letter_and_the_queue_moves_on(settings) -> None:
    enqueue(settings, batch(upsert("before")))
    position = enqueue_raw(settings, b"\x93garbage that is not a batch")
    enqueue(settings, batch(upsert("after", start=2)))
    stats = drain(settings)
    assert (stats.batches, stats.committed, stats.dead_lettered) == (3, 2, 1)
    conn = index(settings)
    reason, raw, pos = conn.execute("SELECT reason, raw, position FROM dead_letters").fetchone()
    assert (reason, bytes(raw), pos) == ("undecodable", b"\x93garbage that is not a batch", position)
    assert_doctor_ok(settings)


def test_reset_applies_in_queue_order(settings) -> None:
    # The four batches are one commit group: a later batch sees what an earlier one did.
    a1 = upsert("written with A before the reset")
    b1 = upsert("written with B after the reset", model="hash-384-b", start=2)
    a2 = upsert("written with A after the reset", start=3)
    enqueue(settings, batch(a1), batch(reset("hash-384-b")), batch(b1), batch(a2))
    drain(settings)
    conn = index(settings)
    assert store.active_model(conn).name == "hash-384-b"
    rows = conn.execute("SELECT start_line, fingerprint FROM chunks ORDER BY start_line").fetchall()
    # a1 committed under A, then lost its vector at the reset (the chunk and text stay).
    assert rows == [(1, None), (2, b1.fingerprint)]
    assert [r[0] for r in dead_letters(settings)] == ["fingerprint_mismatch"]
    assert_doctor_ok(settings)


def test_reset_to_another_dimension_rebuilds_the_vector_table(settings) -> None:
    enqueue(settings, batch(upsert("alpha")), batch(reset("hash-16")),
            batch(upsert("beta", model="hash-16", start=2)))
    drain(settings)
    conn = index(settings)
    assert store.active_model(conn).dim == 16
    assert conn.execute(f"SELECT count(*) FROM {store.VECTOR_TABLE}").fetchone()[0] == 1
    assert_doctor_ok(settings)


def test_file_snapshot_deletes_chunks_not_listed_and_skips_stale_snapshots(settings) -> None:
    one, two = upsert("one", start=1), upsert("two", start=5)
    keys = [(one.key.content_hash, 1), (two.key.content_hash, 5)]
    enqueue(settings, batch(snapshot("/notes/a.md", keys, 200), one, two))
    # An older read of the same file arrives later: it must not roll the file back.
    stale_new = upsert("stale", start=9)
    enqueue(settings, batch(snapshot("/notes/a.md", [(stale_new.key.content_hash, 9)], 100), stale_new))
    # A newer read keeps only `two`.
    enqueue(settings, batch(snapshot("/notes/a.md", [keys[1]], 300)))
    stats = drain(settings)
    assert stats.skipped == 2
    conn = index(settings)
    assert conn.execute("SELECT content FROM chunks").fetchall() == [("two",)]
    enqueue(settings, batch(snapshot("/notes/a.md", [], 400, digest="")))  # the file vanished
    drain(settings)
    assert conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM files").fetchone()[0] == 0
    assert_doctor_ok(settings)


def test_a_snapshot_based_on_the_committed_one_wins_whatever_its_mtime(settings) -> None:
    """The queue decides, not the file's clock: a restore (older mtime) read after the commit
    it replaces is applied; a read based on an older commit loses to a newer mtime (a race)."""
    one, two, three = upsert("one", start=1), upsert("two", start=2), upsert("three", start=3)
    enqueue(settings, batch(snapshot("/notes/a.md", [(one.key.content_hash, 1)], 500, base=""), one,
                            batch_id="b-one"))
    enqueue(settings, batch(snapshot("/notes/a.md", [(two.key.content_hash, 2)], 100, base="b-one"),
                            two, batch_id="b-two"))
    # Also read when "b-one" was committed, but queued after "b-two", and older by mtime.
    enqueue(settings, batch(snapshot("/notes/a.md", [(three.key.content_hash, 3)], 50, base="b-one"),
                            three))
    stats = drain(settings)
    assert stats.skipped == 2
    conn = index(settings)
    assert conn.execute("SELECT content FROM chunks").fetchall() == [("two",)]
    assert conn.execute("SELECT batch_id, mtime_ns FROM files").fetchall() == [("b-two", 100)]
    assert_doctor_ok(settings)


def test_an_empty_file_is_remembered_with_no_chunks(settings) -> None:
    one = upsert("one", start=1)
    enqueue(settings, batch(snapshot("/notes/a.md", [(one.key.content_hash, 1)], 100), one))
    enqueue(settings, batch(snapshot("/notes/a.md", [], 200, digest="e3b0c442")))  # emptied
    drain(settings)
    conn = index(settings)
    assert conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0
    assert conn.execute("SELECT digest, chunk_count FROM files").fetchall() == [("e3b0c442", 0)]
    assert_doctor_ok(settings)


def test_last_enqueued_version_of_a_key_wins(settings) -> None:
    first = upsert("same text", vector=to_bytes(np.eye(384)[0]))
    second = upsert("same text", vector=to_bytes(np.eye(384)[1]))
    enqueue(settings, batch(first), batch(second))
    drain(settings)
    conn = index(settings)
    (vector,) = conn.execute(f"SELECT embedding FROM {store.VECTOR_TABLE}").fetchone()
    assert bytes(vector) == second.vector


def test_a_second_committer_on_the_same_home_is_refused(settings) -> None:
    with committer_session(settings):
        with pytest.raises(CommitterBusy) as caught:
            with committer_session(settings, patience=0.1):
                pass
        assert caught.value.pid == __import__("os").getpid()
    # Released: a new committer may start.
    lock = CommitterLock(settings.lock_path)
    assert lock.try_acquire()
    lock.release()


def test_ledger_counts_add_up(settings) -> None:
    enqueue(settings, batch(upsert("a"), upsert("b", model="hash-384-b", start=2)))
    drain(settings)
    conn = index(settings)
    row = conn.execute("SELECT received, committed, dead_lettered, skipped FROM ledger").fetchone()
    assert row == (2, 1, 1, 0)


def test_a_poison_batch_in_a_commit_group_is_applied_item_by_item_and_the_others_commit_whole(
        settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # The checks leave no known input that fails in SQLite, so the statement is made to fail
    # for one item: the case the checks did not foresee.
    insert_chunks = writes.insert_chunks

    def failing_for_poison(conn, items, *args):  # type: ignore[no-untyped-def]
        if any(item.key.source_file == "/notes/q.md" for item in items):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return insert_chunks(conn, items, *args)

    monkeypatch.setattr(writes, "insert_chunks", failing_for_poison)
    first = batch(upsert("alpha", source="/notes/a.md"))
    poison = batch(upsert("sibling", source="/notes/p.md"), upsert("poison", source="/notes/q.md"))
    last = batch(upsert("omega", source="/notes/z.md"))
    positions = enqueue(settings, first, poison, last)
    with committer_session(settings) as committer:
        assert committer.group >= 3  # the three are taken, and first tried, as one group
        stats = committer.drain()
    assert (stats.batches, stats.committed, stats.dead_lettered) == (3, 3, 1)
    assert [(reason, batch_id, position, item) for reason, _, _, batch_id, position, item
            in dead_letters(settings)] == [("apply_error", poison.id, positions[1], 1)]
    conn = index(settings)
    ledger = conn.execute("SELECT batch_id, position, committed, dead_lettered FROM ledger "
                          "ORDER BY seq").fetchall()
    assert ledger == [(first.id, positions[0], 1, 0), (poison.id, positions[1], 1, 1),
                      (last.id, positions[2], 1, 0)]
    assert sorted(r[0] for r in conn.execute("SELECT source_file FROM chunks")) == \
        ["/notes/a.md", "/notes/p.md", "/notes/z.md"]
    assert_doctor_ok(settings)



def test_a_purge_is_applied_in_queue_order_and_its_ledger_row_says_how_many_it_deleted(settings) -> None:
    from memwal.records import Batch
    from helpers import PRODUCER

    enqueue(settings, batch(reset("hash-384")), batch(upsert("old model", model="hash-384-b")),
            batch(upsert("old again", model="hash-384-b", start=5)))
    drain(settings)
    conn = index(settings)
    ids = [row[0] for row in conn.execute("SELECT id FROM dead_letters ORDER BY id")]
    conn.close()
    assert len(ids) == 2
    first = Batch(items=(), producer=PRODUCER, purge=(ids[0], ids[0], 999))
    second = Batch(items=(), producer=PRODUCER, purge=tuple(ids))  # planned before `first` committed
    enqueue(settings, first, second)
    assert drain(settings).batches == 2
    conn = index(settings)
    try:
        assert conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0
        ledger = dict((r[0], r[1:]) for r in conn.execute(
            "SELECT batch_id, received, committed, skipped FROM ledger"))
    finally:
        conn.close()
    # Each id is one received entry: committed if deleted, skipped if already gone.
    assert ledger[first.id] == (3, 1, 2) and ledger[second.id] == (2, 1, 1)
    assert_doctor_ok(settings)


def chunk_count(settings) -> int:
    if not settings.index_path.exists():
        return 0
    conn = index(settings)
    try:
        return conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    finally:
        conn.close()


def test_a_role_seeker_waits_while_another_holds_the_role_then_takes_it_and_gives_it_back(settings) -> None:
    from helpers import poll
    from memwal.lock import committer_alive
    from memwal.worker import RoleSeeker

    other = CommitterLock(settings.lock_path)
    other.acquire()
    seeker = RoleSeeker(settings, poll_interval=0.01).start()
    try:
        enqueue(settings, batch(upsert("queued while another holds the role")))
        assert not seeker.holding.wait(0.2)  # a producer meanwhile, alive and asking
        other.release()  # the holder ends
        assert seeker.holding.wait(30)
        poll(lambda: chunk_count(settings) == 1, "the seeker to commit the batch")
        assert not other.try_acquire()  # the seeker holds it now
    finally:
        seeker.join()
    assert committer_alive(settings.lock_path) == (False, None)
