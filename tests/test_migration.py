"""A model swap without downtime (`mm embedding-reset --mode migrate`, memwal.migration).

The committer's side (shadow vectors, the cutover in queue order, cancel) on a real index and
queue; the migrator and the producers through the real `mm`; kills at the migration's points.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from helpers import MM, batch, ok, poll, upsert, write_config
from memwal import store
from memwal.config import load_settings
from memwal.embedders import get_embedder
from memwal.records import Cutover, ChunkKey, ChunkVector, CancelMigration, Migrate, Reset, ShadowVector
from memwal.store import reads
from memwal.vectors import to_bytes
from test_committer import dead_letters, drain, enqueue

A, B = "hash-384", "hash-384-b"


def migrate_item(model: str) -> Migrate:
    embedder = get_embedder(model)
    return Migrate(embedder.fingerprint, embedder.name, embedder.dim)


def vector_item(text: str, model: str, source: str = "/notes/a.md", start: int = 1) -> ChunkVector:
    embedder = get_embedder(model)
    from memwal.chunking import content_hash

    return ChunkVector(ChunkKey("default", source, content_hash(text), start), embedder.fingerprint,
                       embedder.dim, to_bytes(embedder.embed([text])[0]))


def with_shadow(text: str, model: str = B, **kwargs) -> object:
    item = upsert(text, **kwargs)
    shadow = get_embedder(model)
    return type(item)(**{**item.__dict__, "shadow": ShadowVector(
        shadow.fingerprint, shadow.dim, to_bytes(shadow.embed([text])[0]))})


def conn_of(settings):
    return store.open_for_read(settings.index_path)


def coverage(settings) -> tuple[int, int]:
    conn = conn_of(settings)
    try:
        return reads.migration_coverage(conn)
    finally:
        conn.close()


def fingerprints(settings) -> set[str]:
    conn = conn_of(settings)
    try:
        return {row[0] for row in conn.execute("SELECT DISTINCT fingerprint FROM chunks")}
    finally:
        conn.close()


# -- the committer ---------------------------------------------------------------------------


def test_cutover_waits_for_every_chunk_then_switches_at_once_and_late_records_dead_letter(
        settings) -> None:
    enqueue(settings, batch(upsert("alpha"), upsert("beta", start=3)))
    enqueue(settings, batch(migrate_item(B), vector_item("alpha", B)))
    enqueue(settings, batch(Cutover(get_embedder(B).fingerprint)))
    stats = drain(settings)
    assert stats.skipped == 1, "a cutover with a chunk not covered is skipped"
    conn = conn_of(settings)
    assert store.active_model(conn).name == A
    assert store.migration(conn).target.name == B
    conn.close()
    assert coverage(settings) == (1, 2)

    enqueue(settings, batch(vector_item("beta", B, start=3), Cutover(get_embedder(B).fingerprint)),
            batch(upsert("late from A", start=9)))
    stats = drain(settings)
    conn = conn_of(settings)
    assert store.active_model(conn).name == B and store.migration(conn) is None
    stored = conn.execute(f"SELECT count(*) FROM {store.VECTOR_TABLE}").fetchone()[0]
    conn.close()
    assert stored == 2 and fingerprints(settings) == {get_embedder(B).fingerprint}
    assert [row[0] for row in dead_letters(settings)] == ["fingerprint_mismatch"]
    # What search reads is B's vector of each chunk, the one the migrator sent.
    conn = conn_of(settings)
    ids, matrix = reads.vectors_of(conn, None, 384)
    conn.close()
    expected = get_embedder(B).embed(["alpha", "beta"])
    assert np.allclose(matrix, expected, atol=1e-6)


def test_upserts_during_a_migration_keep_their_shadow_and_a_deleted_chunk_loses_it(settings) -> None:
    from helpers import snapshot

    enqueue(settings, batch(upsert("alpha")), batch(migrate_item(B)))
    enqueue(settings, batch(with_shadow("gamma", source="/notes/g.md")))
    drain(settings)
    assert coverage(settings) == (1, 2)
    enqueue(settings, batch(snapshot("/notes/g.md", [], 10**18, digest="")))
    drain(settings)
    assert coverage(settings) == (0, 1)


def test_a_shadow_or_vector_of_a_model_no_migration_moves_to_is_skipped(settings) -> None:
    """Left in the queue by a cancelled or replaced migration: they hold nothing the index
    lacks (the text is stored), so they are skipped, never kept, never dead letters."""
    enqueue(settings, batch(upsert("alpha")), batch(migrate_item(B)))
    enqueue(settings, batch(with_shadow("beta", model="hash-384-c", start=2),
                            vector_item("alpha", "hash-384-c")))
    stats = drain(settings)
    assert coverage(settings) == (0, 2)
    assert dead_letters(settings) == [] and stats.skipped == 1


def test_cancel_and_reset_each_end_a_migration_and_drop_its_shadows(settings) -> None:
    b = get_embedder(B)
    enqueue(settings, batch(upsert("alpha")), batch(migrate_item(B), vector_item("alpha", B)))
    drain(settings)
    assert coverage(settings) == (1, 1)
    enqueue(settings, batch(CancelMigration(b.fingerprint)))
    drain(settings)
    conn = conn_of(settings)
    assert store.migration(conn) is None and store.active_model(conn).name == A
    conn.close()
    assert coverage(settings) == (0, 1)
    enqueue(settings, batch(migrate_item(B), vector_item("alpha", B)),
            batch(Reset(b.fingerprint, b.name, b.dim)))
    drain(settings)
    conn = conn_of(settings)
    assert store.migration(conn) is None and store.active_model(conn).name == B
    conn.close()
    assert coverage(settings) == (0, 1)


def test_a_vector_of_the_active_model_gives_a_vectorless_chunk_its_vector(settings) -> None:
    enqueue(settings, batch(upsert("alpha")), batch(Reset(get_embedder(B).fingerprint, B, 384)))
    drain(settings)
    assert fingerprints(settings) == {None}
    enqueue(settings, batch(vector_item("alpha", B)))
    drain(settings)
    assert fingerprints(settings) == {get_embedder(B).fingerprint}


# -- the migrator through the real `mm` -------------------------------------------------------


def many_notes(root: Path, count: int) -> Path:
    root.mkdir(exist_ok=True)
    for number in range(count):
        (root / f"note-{number:03d}.md").write_text(
            f"# Note {number}\n\nGardening note {number}: tomatoes, compost and rain {number}.\n\n"
            f"## Later\n\nAstronomy note {number}: Jupiter's moons and comets {number}.\n")
    return root


def test_migrate_from_the_cli_switches_models_and_search_keeps_its_vector_leg(
        mm: MM, home: Path, notes: Path) -> None:
    ok(mm("index", str(notes)))
    status = mm("embedding-reset", "--json", env={"MM_EMBEDDING_MODEL": B}).json()
    assert status["differ"] and status["migration"] is None
    report = ok(mm("embedding-reset", "--mode", "migrate", "--json",
                   env={"MM_EMBEDDING_MODEL": B})).json()
    assert report["cut_over"] and report["covered"] == report["total"] > 0
    status = mm("embedding-reset", "--json", env={"MM_EMBEDDING_MODEL": B}).json()
    assert status["active_model"]["name"] == B and not status["differ"]
    again = ok(mm("embedding-reset", "--mode", "migrate", "--json",
                  env={"MM_EMBEDDING_MODEL": B})).json()
    assert again["already_active"]
    hits = ok(mm("search", "Jupiter", "--json", env={"MM_EMBEDDING_MODEL": B,
                                                     "MM_SEARCH_BM25_WEIGHT": "0"})).json()
    assert hits, "the vector leg alone finds it"


def test_during_a_migration_both_configurations_search_and_write_with_both_models(
        mm: MM, home: Path, tmp_path: Path) -> None:
    notes = many_notes(tmp_path / "notes", 12)
    write_config(home, {"embedding": {"model": A}, "queue": {"batch_records": 4}})
    ok(mm("index", str(notes)))
    marker, resume = tmp_path / "held", tmp_path / "resume"
    migrator = mm.popen("embedding-reset", "--mode", "migrate", "--json", env={
        "MM_EMBEDDING_MODEL": B, "MM_FAULT": "migration-batch", "MM_FAULT_MARKER": str(marker),
        "MM_FAULT_RESUME": str(resume)})
    try:
        poll(marker.exists, "the migrator to hold after its first batch")
        settings = load_settings(home, environ={})
        # Search, configured with either model, runs its vector leg on the active model (A).
        for model in (A, B):
            run = ok(mm("search", "Jupiter moons", "--json",
                        env={"MM_EMBEDDING_MODEL": model, "MM_SEARCH_BM25_WEIGHT": "0"}))
            assert run.json(), f"the vector leg answered for a process configured with {model}"
            assert "keyword results only" not in run.stderr
        # Writers with either configuration send the active model's vector and B's shadow.
        for model, name in ((A, "from-a.md"), (B, "from-b.md")):
            (notes / name).write_text(f"# Written with {model}\n\nA note about {name}.\n")
            ok(mm("index", str(notes), env={"MM_EMBEDDING_MODEL": model}))
        conn = conn_of(settings)
        try:
            rows = conn.execute(
                "SELECT c.fingerprint, m.chunk_id IS NOT NULL FROM chunks c LEFT JOIN "
                "migration_vectors m ON m.chunk_id = c.id WHERE c.source_file LIKE '%from-%'"
            ).fetchall()
        finally:
            conn.close()
        assert rows == [(get_embedder(A).fingerprint, 1)] * 2
        doctor = ok(mm("doctor", "--json")).json()
        (check,) = [c for c in doctor["checks"] if c["name"] == "migration_sound"]
        assert check["ok"] and check["detail"].startswith(f"migrating to {B}")
    finally:
        resume.write_text("go")
    out, err = migrator.communicate(timeout=120)
    assert migrator.returncode == 0, err
    assert json.loads(out)["cut_over"]
    assert fingerprints(load_settings(home, environ={})) == {get_embedder(B).fingerprint}


KILL_POINTS = ["migration-batch", "migration-before-cutover", "migration-cut-over"]


@pytest.mark.torture
@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_migrator_killed_at_each_point_resumes_and_completes(
        mm: MM, home: Path, tmp_path: Path, point: str) -> None:
    notes = many_notes(tmp_path / "notes", 30)
    write_config(home, {"embedding": {"model": A}, "queue": {"batch_records": 8}})
    ok(mm("index", str(notes)))
    marker = tmp_path / "marker"
    proc = mm.popen("embedding-reset", "--mode", "migrate", env={
        "MM_EMBEDDING_MODEL": B, "MM_FAULT": point, "MM_FAULT_MARKER": str(marker),
        "MM_FAULT_RESUME": str(tmp_path / "never")})
    poll(marker.exists, f"the migrator to reach {point}")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    report = ok(mm("embedding-reset", "--mode", "migrate", "--json",
                   env={"MM_EMBEDDING_MODEL": B})).json()
    assert report["cut_over"] or (point == "migration-cut-over" and report["already_active"])
    settings = load_settings(home, environ={})
    assert fingerprints(settings) == {get_embedder(B).fingerprint}
    conn = conn_of(settings)
    try:
        chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        vectors = conn.execute(f"SELECT count(*) FROM {store.VECTOR_TABLE}").fetchone()[0]
    finally:
        conn.close()
    assert chunks == vectors == 30


@pytest.mark.torture
def test_a_migration_killed_at_random_points_resumes_and_completes(
        mm: MM, home: Path, tmp_path: Path) -> None:
    """SIGKILLs wherever the migrator (and the committer it hosts) happens to be, found by
    polling the index's coverage: between kills the migration only moves forward."""
    notes = many_notes(tmp_path / "notes", 60)
    write_config(home, {"embedding": {"model": A}, "queue": {"batch_records": 5}})
    ok(mm("index", str(notes)))
    settings = load_settings(home, environ={})
    rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
    last = 0
    for _ in range(int(os.environ.get("MM_MIGRATION_KILLS", "4"))):
        proc = mm.popen("embedding-reset", "--mode", "migrate", env={"MM_EMBEDDING_MODEL": B})
        goal = last + int(rng.integers(1, 15))
        poll(lambda: proc.poll() is not None or coverage(settings)[0] >= goal,
             "the migration to move on")
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        covered = coverage(settings)[0]
        assert covered >= last, "a kill never takes committed shadow vectors back"
        last = covered
    report = ok(mm("embedding-reset", "--mode", "migrate", "--json",
                   env={"MM_EMBEDDING_MODEL": B})).json()
    assert report["cut_over"] or report["already_active"]
    assert fingerprints(settings) == {get_embedder(B).fingerprint}


def test_search_never_loses_its_vector_leg_while_a_migration_runs(
        home: Path, tmp_path: Path) -> None:
    """A migration in another process, searched all along by a process configured with the new
    model: every search runs the vector leg (the keyword leg is off), before, during and after
    the cutover."""
    notes = many_notes(tmp_path / "notes", 40)
    write_config(home, {"embedding": {"model": A}, "queue": {"batch_records": 4},
                        "search": {"bm25_weight": 0}})
    mm = MM(home)
    ok(mm("index", str(notes)))
    import memwal

    searcher = memwal.Searcher(load_settings(home, environ={"MM_EMBEDDING_MODEL": B}))
    done = threading.Event()
    seen: list[tuple[int, list[str]]] = []

    def search_all_along() -> None:
        while not done.is_set():
            result = searcher.search("Jupiter moons comets")
            seen.append((len(result.hits), list(result.warnings)))

    thread = threading.Thread(target=search_all_along)
    thread.start()
    try:
        poll(lambda: len(seen) > 3, "searches before the migration")
        ok(mm("embedding-reset", "--mode", "migrate", env={"MM_EMBEDDING_MODEL": B}))
        after = len(seen)
        poll(lambda: len(seen) > after + 3, "searches after the cutover")
        done.set()
    finally:
        done.set()
        thread.join()
        searcher.close()
    assert all(hits > 0 and not any("keyword results only" in w for w in warnings)
               for hits, warnings in seen), \
        [entry for entry in seen if not entry[0] or entry[1]][:5]


def test_migrate_refuses_an_empty_index_and_cancel_without_one_says_so(mm: MM) -> None:
    run = mm("embedding-reset", "--mode", "migrate", env={"MM_EMBEDDING_MODEL": B}, check=2)
    assert run.code == 2 and "nothing to migrate" in run.stderr and "Traceback" not in run.stderr
    run = mm("embedding-reset", "--mode", "bogus", check=2)
    assert run.code == 2 and "migrate" in run.stderr



def test_ctrl_c_stops_a_migration_resumably_with_exit_130(mm: MM, home: Path, tmp_path: Path) -> None:
    notes = many_notes(tmp_path / "notes", 10)
    write_config(home, {"embedding": {"model": A}, "queue": {"batch_records": 3}})
    ok(mm("index", str(notes)))
    marker = tmp_path / "held"
    proc = mm.popen("embedding-reset", "--mode", "migrate", env={
        "MM_EMBEDDING_MODEL": B, "MM_FAULT": "migration-batch", "MM_FAULT_MARKER": str(marker),
        "MM_FAULT_RESUME": str(tmp_path / "never")})
    poll(marker.exists, "the migrator to hold after its first batch")
    # It embeds at a lower CPU priority (migration.nice, 10 by default) than the rest.
    niceness = int(Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    assert niceness == min(19, os.nice(0) + 10)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "--mode migrate" in err, "the message says how to resume"
    status = mm("embedding-reset", "--json", env={"MM_EMBEDDING_MODEL": B}).json()
    assert status["migration"]["target"]["name"] == B and status["active_model"]["name"] == A
    report = ok(mm("embedding-reset", "--mode", "migrate", "--json",
                   env={"MM_EMBEDDING_MODEL": B})).json()
    assert report["cut_over"]


def test_a_cutover_never_moves_a_chunks_sequence_back(settings) -> None:
    """Readers keep what they read stamped with a sequence (postings, the graph's tail): a chunk
    rewritten after its shadow vector keeps its later sequence through the cutover."""
    enqueue(settings, batch(upsert("alpha")), batch(migrate_item(B), vector_item("alpha", B)))
    enqueue(settings, batch(upsert("alpha")))  # the same key again, after its shadow
    drain(settings)
    conn = conn_of(settings)
    before = conn.execute("SELECT seq FROM chunks").fetchone()[0]
    shadow = conn.execute("SELECT seq FROM migration_vectors").fetchone()[0]
    conn.close()
    assert shadow < before
    enqueue(settings, batch(Cutover(get_embedder(B).fingerprint)))
    drain(settings)
    conn = conn_of(settings)
    assert conn.execute("SELECT seq FROM chunks").fetchone()[0] == before
    conn.close()


def test_a_stopped_migration_keeps_what_it_embedded_and_a_resumed_one_never_embeds_it_again(
        home: Path, tmp_path: Path) -> None:
    import memwal

    notes = many_notes(tmp_path / "notes", 60)
    write_config(home, {"embedding": {"model": A}, "queue": {"batch_records": 5}})
    ok(MM(home)("index", str(notes)))
    settings = load_settings(home, environ={"MM_EMBEDDING_MODEL": B})
    stop, calls = threading.Event(), []

    def stop_early(status: dict) -> None:
        calls.append(status)
        if len(calls) >= 3:  # three batches embedded and queued (maybe not committed yet)
            stop.set()

    first = memwal.migrate_model(settings, stop=stop, on_progress=stop_early)
    assert first.stopped and first.covered == first.embedded == 15 and first.total == 60
    second = memwal.migrate_model(settings)
    assert second.cutover and first.embedded + second.embedded == 60, "none embedded twice"
