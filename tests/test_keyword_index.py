"""The kept postings of a long-lived reader rank exactly as FTS5 does, before and after commits."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from helpers import MM, home_settings, write_config
from memwal import keywordindex, store
from memwal.keywordindex import KeywordIndex
from memwal.retrieval import Searcher, _query_tokens, fts_query
from memwal.store import reads

# A small vocabulary with a steep Zipf curve: common words match most chunks, and many chunks
# tie (same counts, same length), so the order of ties is tested too.
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
         "oscar papa quebec romeo sierra tango").split()


def word(rng: random.Random) -> str:
    return WORDS[min(int(rng.paretovariate(1.0)) - 1, len(WORDS) - 1)]


def write_notes(root: Path, files: int, seed: int, prefix: str = "n") -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        sections = "\n\n".join(f"## Part {s}\n\n" + " ".join(word(rng) for _ in range(rng.choice((3, 3, 12, 40))))
                               for s in range(4))
        (root / f"{prefix}{f:03d}.md").write_text(f"# Note {f}\n\n{sections}\n")
    return root


def queries(seed: int, count: int = 60) -> list[str]:
    rng = random.Random(seed)
    chosen = [" ".join(word(rng) for _ in range(rng.randint(1, 4))) for _ in range(count)]
    return chosen + ["Alpha ALPHA bravo", "part note", "zulu", "alpha zulu"]


def assert_same_as_fts5(conn: store.Connection, kept: KeywordIndex, texts: list[str]) -> None:
    for text in texts:
        match = fts_query(text)
        terms = KeywordIndex.terms_of(_query_tokens(text))
        assert match is not None and terms is not None
        for depth in (100, 7):
            expected = reads.bm25_ranking(conn, match, depth)
            assert kept.ranking(conn, terms, match, depth) == expected, (text, depth)


def reader(mm: MM) -> store.Connection:
    conn = store.open_for_read(mm.home / "index.sqlite3")
    assert conn is not None
    return conn


@pytest.fixture
def configured(mm: MM) -> MM:
    write_config(mm.home, {"embedding": {"model": "hash-384"}})
    return mm


def test_kept_postings_rank_exactly_as_fts5(configured: MM, tmp_path: Path) -> None:
    configured("index", str(write_notes(tmp_path / "notes", 60, seed=1)))
    conn = reader(configured)
    try:
        kept = KeywordIndex()
        assert_same_as_fts5(conn, kept, queries(2))
        assert kept.usable and kept._postings  # the kept postings answered, not FTS5
    finally:
        conn.close()


def test_after_writes_changes_and_deletions_the_ranking_is_still_fts5s(
        configured: MM, tmp_path: Path) -> None:
    notes = write_notes(tmp_path / "notes", 60, seed=3)
    configured("index", str(notes))
    conn = reader(configured)
    try:
        kept = KeywordIndex()
        assert_same_as_fts5(conn, kept, queries(4))
        stamp = kept._stamp
        top = reads.bm25_ranking(conn, fts_query("alpha bravo") or "", 3)
        conn.execute("SELECT 1")  # (a read connection sees later commits at its next read)
        # A changed file, new files, and the deletion of the file holding the best chunk.
        best_file = conn.execute("SELECT source_file FROM chunks WHERE id = ?", (top[0],)).fetchone()[0]
        last = conn.execute("SELECT max(id) FROM chunks").fetchone()[0]
        newest = conn.execute("SELECT source_file FROM chunks WHERE id = ?", (last,)).fetchone()[0]
        Path(newest).unlink()  # the newest chunks: their ids go to the next new chunks
        configured("index", str(notes))
        (notes / "n001.md").write_text("# Changed\n\nalpha alpha alpha bravo tango tango\n")
        Path(best_file).unlink(missing_ok=True)
        write_notes(notes, 10, seed=5, prefix="new")
        configured("index", str(notes))
        assert conn.execute("SELECT count(*) FROM chunks WHERE id <= ? AND seq > ?",
                            (last, stamp)).fetchone()[0] > 0  # ids reused by other text
        assert reads.commit_seq(conn) > (stamp or 0)
        assert_same_as_fts5(conn, kept, queries(6))
        assert kept._stamp == stamp  # answered from the kept postings plus FTS5 for the tail
        assert top[0] not in kept.ranking(conn, ["alpha", "bravo"], '"alpha" OR "bravo"', 100)
    finally:
        conn.close()


def test_far_behind_the_postings_are_read_again(configured: MM, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keywordindex, "BEHIND_ROWS", 5)
    notes = write_notes(tmp_path / "notes", 20, seed=7)
    configured("index", str(notes))
    conn = reader(configured)
    try:
        kept = KeywordIndex()
        assert_same_as_fts5(conn, kept, queries(8, 10))
        stamp = kept._stamp
        write_notes(notes, 10, seed=9, prefix="more")
        configured("index", str(notes))
        assert_same_as_fts5(conn, kept, queries(10, 10))
        assert kept._stamp == reads.commit_seq(conn) != stamp
    finally:
        conn.close()


def test_words_fts5_would_split_or_fold_are_left_to_fts5(configured: MM, tmp_path: Path) -> None:
    assert KeywordIndex.terms_of(["café"]) is None
    assert KeywordIndex.terms_of(["snake_case"]) is None
    assert KeywordIndex.terms_of(["Alpha", "b2"]) == ["alpha", "b2"]
    notes = write_notes(tmp_path / "notes", 10, seed=11)
    (notes / "accents.md").write_text("# Café\n\ncafé cafe snake_case alpha\n")
    configured("index", str(notes))
    keeping, one_off = Searcher(home_settings(configured.home)), \
        Searcher(home_settings(configured.home), keep_postings=False)
    try:
        for text in ("café alpha", "snake_case", "cafe", "alpha bravo charlie"):
            assert [h.chunk_id for h in keeping.search(text, top_k=20, max_per_doc=0).hits] == \
                [h.chunk_id for h in one_off.search(text, top_k=20, max_per_doc=0).hits], text
    finally:
        keeping.close()
        one_off.close()


def test_a_reader_that_started_on_an_empty_index_keeps_postings_once_it_fills(
        configured: MM, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blank.md").write_text("")
    configured("index", str(empty))  # an index file, and no row in it
    conn = reader(configured)
    try:
        kept = KeywordIndex()
        assert kept.ranking(conn, ["alpha"], '"alpha"', 10) is None  # FTS5 answers
        configured("index", str(write_notes(tmp_path / "notes", 10, seed=15)))
        assert_same_as_fts5(conn, kept, queries(16, 10))
        assert kept.usable and kept._postings
    finally:
        conn.close()
