"""`mm search` end to end: the real CLI over a small corpus of distinct topics.

The fast tests use the hash-384 embedder (exact words find their texts); the integration test uses
the real default model, where a question that shares few words with a text still finds it.
No test asserts a duration: anything asynchronous is awaited with a bounded polling loop.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any, Sequence

import pytest

from helpers import MM, assert_doctor_ok, mm_command, mm_env, write_config
from memwal.worker import committer_session
from memwal.config import Settings
from memwal.embedders import get_embedder
from memwal.producer import enqueue_items
from memwal.records import FileSnapshot
from memwal.retrieval import search as library_search
from helpers import poll, ok


HIT_KEYS = {"rank", "score", "namespace", "source_file", "start_line", "end_line", "heading_path",
            "content", "chunk_id"}

CORPUS = {
    "gardening.md": """\
# Gardening

A vegetable bed wants six hours of sun, loose soil and steady watering. Tomatoes, beans and
courgettes all do well on a south-facing plot if the ground is weeded every week.

## Compost

Turn the compost heap every fortnight so it stays aerobic. Mix green kitchen scraps with brown
cardboard and dry leaves, keep it as damp as a wrung-out sponge, and it will be crumbly by spring.

## Pests

Slugs and aphids are the usual culprits. Beer traps catch slugs overnight, and ladybirds eat
aphids faster than any spray; plant marigolds along the edges to draw the ladybirds in.
""",
    "astronomy.md": """\
# Astronomy

Notes from the club's autumn talks on the solar system, and what a beginner can see from a
back garden with modest equipment and a little patience.

## The outer planets

Jupiter is the largest planet and has at least ninety-five known moons. Ganymede, the biggest of
them, is larger than Mercury and has its own magnetic field. Saturn has even more moons, with
well over a hundred confirmed, and the icy geysers of Enceladus feed its E ring.

## Observing

A small refracting telescope shows the four Galilean moons on any clear night. Let your eyes
adapt to the dark for twenty minutes, and use a red torch so you keep your night vision.
""",
    "cooking.md": """\
# Cooking

Weeknight recipes that reward a little patience at the stove; quantities are for four people
unless a recipe says otherwise.

## Risotto

A good risotto wants warm stock added one ladle at a time while you stir. Toast the arborio rice
in butter first, deglaze with white wine, and finish with parmesan and a knob of cold butter.

## Bread

Sourdough needs a lively starter fed the day before. Knead the dough until it passes the
windowpane test, let it prove slowly in the fridge overnight, and bake it in a hot covered pot.
""",
    "sailing.md": """\
# Sailing

## Points of sail

Close-hauled, a dinghy sails about forty-five degrees off the wind; bear away through a beam
reach to a broad reach as the wind comes further aft. Trim the sheets until the telltales stream.

## Downwind

Running before the wind, hoist the spinnaker and ease the pole forward until the luff just curls.
Watch for an accidental gybe: the boom crosses the cockpit fast when the wind gets behind the main.

## Weather

Check the shipping forecast before leaving the harbour, and reef early when the gusts build.
""",
    "taxes.md": """\
# Tax filing

## Deadlines

The self-assessment return is due by the end of January, and any balance owed must be paid the
same day. Late filing brings an automatic penalty even when no tax is due.

## Deductions

Keep receipts for every deduction you claim: home office costs, professional subscriptions and
pension contributions all reduce taxable income. A deduction without evidence can be disallowed
on inspection, so scan paper receipts the day you get them.
""",
}

# word → (file, heading path of the section that holds the word)
EXACT_WORDS = {
    "compost": ("gardening.md", ["Gardening", "Compost"]),
    "Ganymede": ("astronomy.md", ["Astronomy", "The outer planets"]),
    "risotto": ("cooking.md", ["Cooking", "Risotto"]),
    "spinnaker": ("sailing.md", ["Sailing", "Downwind"]),
    "deduction": ("taxes.md", ["Tax filing", "Deductions"]),
}

JOURNAL = """\
# Allotment journal

Spread the compost on the allotment beds this morning and sowed broad beans in the two long
rows by the shed; the robin followed the fork the whole time.
"""

# -- helpers -------------------------------------------------------------------------------


def search(mm: MM, query: str, *options: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """`mm search --json OPTIONS QUERY`, which must succeed; its hits."""
    return ok(mm("search", "--json", *options, query, env=env)).json()


def write_corpus(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def index(mm: MM, *args: str | Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """`mm index --json ARGS`, which must succeed and (unless --no-wait) commit everything."""
    report = ok(mm("index", "--json", *map(str, args), env=env)).json()
    if "--no-wait" not in args:
        assert report["committed"] == report["records_enqueued"] > 0, report
        assert report["dead_lettered"] == 0, report
    return report


def names(hits: list[dict[str, Any]]) -> list[str]:
    return [Path(hit["source_file"]).name for hit in hits]


def read_index(home: Path, sql: str, params: Sequence[object] = ()) -> list[tuple]:
    """A read-only query on the committed index (WAL: never blocks, never blocked)."""
    conn = sqlite3.connect(f"file:{home / 'index.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, tuple(params)).fetchall()
    finally:
        conn.close()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """Five files on five distinct topics, each with headings and two or three sections."""
    return write_corpus(tmp_path / "corpus", CORPUS)


@pytest.fixture
def indexed(mm: MM, corpus: Path) -> Path:
    """The corpus, committed into the default namespace of `mm`'s home; returns its folder."""
    index(mm, corpus)
    return corpus


# -- what a hit is -------------------------------------------------------------------------


def test_exact_words_put_their_file_and_section_at_rank_1(mm: MM, indexed: Path) -> None:
    for word, (name, heading_path) in EXACT_WORDS.items():
        hits = search(mm, word)
        top = hits[0]
        assert (names(hits)[0], top["heading_path"]) == (name, heading_path), (word, hits[:3])
        assert top["source_file"] == str(indexed / name) and top["namespace"] == "default"
        assert word in top["content"]
        # The line range is the chunk's real place in the file.
        lines = (indexed / name).read_text().splitlines()
        assert "\n".join(lines[top["start_line"] - 1:top["end_line"]]).strip() == top["content"]


def test_hits_have_exactly_the_documented_keys_ranked_by_falling_score(mm: MM, indexed: Path) -> None:
    hits = search(mm, "moons of Jupiter")
    assert hits and all(set(hit) == HIT_KEYS for hit in hits), hits
    assert [hit["rank"] for hit in hits] == list(range(1, len(hits) + 1))
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    assert len({hit["chunk_id"] for hit in hits}) == len(hits)
    for hit in hits:
        assert isinstance(hit["chunk_id"], int) and isinstance(hit["heading_path"], list)
        assert 1 <= hit["start_line"] <= hit["end_line"]


def test_search_before_anything_is_committed_is_empty_with_a_hint(mm: MM) -> None:
    run = ok(mm("search", "--json", "compost"))
    assert run.json() == []
    assert "mm index" in run.stderr


# -- filters and bounds --------------------------------------------------------------------


def test_namespace_filter_returns_only_that_namespace(mm: MM, indexed: Path, tmp_path: Path) -> None:
    journal = write_corpus(tmp_path / "journal", {"diary.md": JOURNAL})
    index(mm, "--namespace", "journal", journal)
    both = {hit["namespace"] for hit in search(mm, "compost", "--top-k", "20")}
    assert both == {"default", "journal"}

    only_journal = search(mm, "compost", "--namespace", "journal")
    assert names(only_journal) == ["diary.md"] and only_journal[0]["namespace"] == "journal"
    assert only_journal[0]["heading_path"] == ["Allotment journal"]

    only_default = search(mm, "compost", "-n", "default")
    assert names(only_default)[0] == "gardening.md"
    assert {hit["namespace"] for hit in only_default} == {"default"}
    assert search(mm, "compost", "--namespace", "nowhere") == []


def test_source_glob_and_plain_substring_filter_files(mm: MM, indexed: Path) -> None:
    # "compost" is in gardening.md only, but the vector leg ranks every chunk: filters still hold.
    sailing = search(mm, "compost", "--source", "*/sailing.md")
    assert sailing and set(names(sailing)) == {"sailing.md"}
    taxes = search(mm, "compost", "--source", "taxes")  # no glob character: a substring
    assert taxes and set(names(taxes)) == {"taxes.md"}
    cooking_or_taxes = search(mm, "receipts butter", "--source", "*/corpus/[ct]*.md")
    assert set(names(cooking_or_taxes)) == {"cooking.md", "taxes.md"}
    assert search(mm, "compost", "--source", "*.txt") == []


def test_top_k_bounds_the_number_of_hits(mm: MM, indexed: Path) -> None:
    chunks = read_index(mm.home, "SELECT count(*) FROM chunks")[0][0]
    assert chunks > 10  # so that the default of 10 is a real bound
    assert len(search(mm, "the wind and the moons")) == 10
    for k in (1, 3):
        hits = search(mm, "the wind and the moons", "--top-k", str(k))
        assert len(hits) == k
    assert len(search(mm, "the wind and the moons", "-k", "100", "--max-per-doc", "0")) == chunks
    assert names(search(mm, "spinnaker", "-k", "1")) == ["sailing.md"]


# -- ranking defects, fixed ---------------------------------------------------------------


def many_sections(root: Path, files: int = 6, sections: int = 40) -> Path:
    """Files whose every section mentions "lantern": a query for it matches them all."""
    root.mkdir()
    for f in range(files):
        body = "\n\n".join(f"## Part {s}\n\nThe lantern number {s} of file {f} hangs in hall {s * f}."
                           for s in range(sections))
        (root / f"f{f}.md").write_text(f"# File {f}\n\n{body}\n")
    return root


def test_a_leg_whose_weight_is_0_contributes_no_hits(mm: MM, indexed: Path) -> None:
    only_keyword = search(mm, "spinnaker", "-k", "50", env={"MM_SEARCH_VECTOR_WEIGHT": "0"})
    assert names(only_keyword) == ["sailing.md"]  # before: every chunk, vector hits scored 0
    assert all(hit["score"] > 0 for hit in only_keyword)
    only_vector = search(mm, "spinnaker", "-k", "50", "--max-per-doc", "0",
                         env={"MM_SEARCH_BM25_WEIGHT": "0"})
    assert len(only_vector) == read_index(mm.home, "SELECT count(*) FROM chunks")[0][0]
    assert all(hit["score"] > 0 for hit in only_vector)


def test_one_file_fills_at_most_max_per_doc_results(mm: MM, tmp_path: Path) -> None:
    index(mm, many_sections(tmp_path / "lanterns"))
    capped = search(mm, "lantern hall", "-k", "12")
    assert len(capped) == 12 and max(names(capped).count(n) for n in set(names(capped))) == 2
    one_each = search(mm, "lantern hall", "-k", "12", "--max-per-doc", "1")
    assert len(one_each) == 6 and len(set(names(one_each))) == 6
    uncapped = search(mm, "lantern hall", "-k", "12", "--max-per-doc", "0")
    assert max(names(uncapped).count(n) for n in set(names(uncapped))) > 3
    capped_by_config = search(mm, "lantern hall", "-k", "12", env={"MM_SEARCH_MAX_PER_DOC": "3"})
    assert max(names(capped_by_config).count(n) for n in set(names(capped_by_config))) == 3


def test_the_first_k_results_do_not_depend_on_top_k(tmp_path: Path, home: Path, settings: Settings) -> None:
    mm = MM(home)
    index(mm, many_sections(tmp_path / "lanterns", files=8, sections=60))
    chunks = read_index(home, "SELECT count(*) FROM chunks")[0][0]
    for max_per_doc in (0, 3):
        full = [h.chunk_id for h in library_search(settings, "lantern hall 12", top_k=1000,
                                                   max_per_doc=max_per_doc).hits]
        assert len(full) == (chunks if max_per_doc == 0 else 24)
        for k in (1, 2, 5, 10, 23, 50, 99, 100, 101, 150, chunks - 1):
            hits = [h.chunk_id for h in library_search(settings, "lantern hall 12", top_k=k,
                                                       max_per_doc=max_per_doc).hits]
            assert hits == full[:k], (max_per_doc, k)
    assert_doctor_ok(home)


@pytest.mark.parametrize("options", [("--top-k", "820"), ("--namespace", "default", "--top-k", "41")],
                         ids=["large-top-k", "filtered-top-k-41"])
def test_top_k_beyond_the_knn_limit_still_returns_hits(mm: MM, indexed: Path,
                                                       options: tuple[str, ...]) -> None:
    hits = search(mm, "compost", *options)
    assert names(hits)[0] == "gardening.md"


def test_namespace_filter_keeps_vector_hits_outside_the_global_nearest(mm: MM, tmp_path: Path) -> None:
    # 1,200 default chunks that all say "xylophone" are nearer to the query than the journal's
    # one chunk; the journal has no "xylophone", so only the vector leg can find it.
    filler = {f"band-{i:04d}.md": f"# Band {i}\n\nThe xylophone solo number {i}.\n" for i in range(1200)}
    index(mm, write_corpus(tmp_path / "band", filler))
    index(mm, "--namespace", "journal", write_corpus(tmp_path / "journal", {"diary.md": JOURNAL}))
    assert names(search(mm, "xylophone", "-k", "1")) != ["diary.md"]
    assert names(search(mm, "xylophone", "--namespace", "journal")) == ["diary.md"]


# -- hostile and odd input -----------------------------------------------------------------


@pytest.mark.parametrize("query", ["?!... ,;: --- ()", "*", '"', "()", "…—«»", "   "])
def test_punctuation_only_query_returns_an_empty_list(mm: MM, indexed: Path, query: str) -> None:
    run = ok(mm("search", "--json", query))
    assert run.json() == []


# (query, the file that must come first because the query holds one of its exact words)
FTS_SYNTAX = [
    ('"unbalanced', None), ('"Ganymede', "astronomy.md"),
    ("foo AND (", None), ("spinnaker AND (", "sailing.md"),
    ("NEAR(x y)", None), ("NEAR(risotto butter, 2)", "cooking.md"),
    ("col:term", None), ("content:compost", "gardening.md"), ("heading_path:Deductions", "taxes.md"),
    ("*", None), ("risotto*", "cooking.md"), ("^Jupiter", "astronomy.md"),
    ("x -y", None), ("AND OR NOT", None), ("{compost}", "gardening.md"), ("'deduction'", "taxes.md"),
]


def test_fts5_syntax_in_user_text_never_errors(mm: MM, indexed: Path) -> None:
    for query, first in FTS_SYNTAX:
        hits = search(mm, query)
        assert isinstance(hits, list), query
        if first is not None:
            assert names(hits)[0] == first, (query, hits[:2])


@pytest.mark.parametrize("query", ["-x", "-spinnaker", "--", "-"])
def test_a_query_starting_with_a_dash_is_text_after_double_dash(indexed: Path, home: Path,
                                                                query: str) -> None:
    # `--home` must come before `--` here, so set the home through the environment instead.
    proc = subprocess.run(mm_command("search", "--json", "--", query), capture_output=True, text=True,
                          env=mm_env({"MM_HOME": str(home)}), timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    hits = json.loads(proc.stdout)
    if query == "-spinnaker":
        assert names(hits)[0] == "sailing.md"
    elif query in ("--", "-"):
        assert hits == []


# -- models --------------------------------------------------------------------------------


def test_another_configured_model_searches_with_the_index_model_and_warns_naming_both_and_the_fix(
        mm: MM, indexed: Path) -> None:
    """A process configured with another model (a server started before a model swap's cutover)
    keeps its vector leg: the query is embedded with the index's model, and a warning says so."""
    other = {"MM_EMBEDDING_MODEL": "hash-384-b"}
    run = ok(mm("search", "--json", "Ganymede", env=other))
    assert names(run.json())[0] == "astronomy.md"
    warning = run.stderr.strip()
    assert warning.startswith("warning:") and len(warning.splitlines()) == 1, run.stderr
    for needle in ("hash-384-b", "hash-384 (", get_embedder("hash-384").fingerprint,
                   get_embedder("hash-384-b").fingerprint, "embedded with hash-384",
                   "mm embedding-reset --mode migrate"):
        assert needle in warning, (needle, warning)
    # A word in no text: only the vector leg can return anything, and it runs on the index's
    # model (the configured model's vectors would not be comparable with the index's).
    assert search(mm, "xylophone") != []
    assert search(mm, "xylophone", env=other) == search(mm, "xylophone")
    # The matching model gives no warning.
    assert ok(mm("search", "--json", "Ganymede")).stderr.strip() == ""


def test_a_model_this_process_cannot_build_leaves_keyword_results_with_a_warning(
        mm: MM, indexed: Path, tmp_path: Path) -> None:
    """The index's model is a remote one whose server is gone: keyword results, and why."""
    import sqlite3

    conn = sqlite3.connect(mm.home / "index.sqlite3")
    with conn:  # pretend the index was built by a remote model recorded at a dead address
        row = conn.execute("SELECT value FROM meta WHERE key='active_model'").fetchone()[0]
        active = json.loads(row)
        gone = "ollama:gone/" + "0" * 24
        conn.execute("UPDATE meta SET value=? WHERE key='active_model'",
                     (json.dumps({**active, "name": "ollama:gone", "fingerprint": gone}),))
        conn.execute("UPDATE chunks SET fingerprint=?", (gone,))
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('endpoints', ?)", (json.dumps(
            {gone: {"provider": "ollama", "model": "gone", "url": "http://127.0.0.1:9"}}),))
    conn.close()
    run = ok(mm("search", "--json", "Ganymede"))
    assert names(run.json())[0] == "astronomy.md"
    assert "keyword results only" in run.stderr and "ollama:gone" in run.stderr
    assert search(mm, "xylophone") == []


# -- concurrency ---------------------------------------------------------------------------


def test_search_reads_committed_data_only_and_is_not_blocked_by_a_running_committer(
        mm: MM, indexed: Path, tmp_path: Path) -> None:
    files = 3500
    big = write_corpus(tmp_path / "big", {
        f"log-{i:05d}.md": f"# Log {i}\n\nEntry {i}: the zebrafinch sang at dawn by the feeder.\n"
        for i in range(files)})
    report = index(mm, "--no-wait", big)
    assert report["batches"] > 10, report

    def committed_logs() -> set[str]:
        return {source for (source,) in read_index(
            mm.home, "SELECT DISTINCT source_file FROM chunks WHERE source_file LIKE ?",
            (f"{big}/%",))}

    def check_reads_committed_only() -> int:
        """Search agrees with what is committed right now; returns how many logs that is."""
        assert names(search(mm, "Ganymede"))[0] == "astronomy.md"
        committed = committed_logs()
        logs = search(mm, "zebrafinch", "--source", f"{big}/*")
        assert {hit["source_file"] for hit in logs} <= committed, "search saw uncommitted data"
        assert len(logs) == min(10, len(committed))
        return len(committed)

    # Enqueued, not committed: search does not read the queue.
    assert check_reads_committed_only() == 0
    assert not set(names(search(mm, "zebrafinch", "-k", "50"))) - set(CORPUS)

    ledger_before = read_index(mm.home, "SELECT count(*) FROM ledger")[0][0]
    worker = mm.popen("queue", "worker")
    seen: list[int] = []
    try:
        poll(lambda: read_index(mm.home, "SELECT count(*) FROM ledger")[0][0] > ledger_before,
             "the worker to commit its first batch", every=0.005)
        while not seen or seen[-1] < files:
            assert worker.poll() is None, worker.communicate()
            # Frozen, the worker holds the committer role and most likely an open write
            # transaction: search must neither wait for it nor see its uncommitted rows.
            worker.send_signal(signal.SIGSTOP)
            try:
                seen.append(check_reads_committed_only())
            finally:
                worker.send_signal(signal.SIGCONT)
            # And while it runs freely.
            assert names(search(mm, "Ganymede"))[0] == "astronomy.md"
            assert len(seen) < 500, f"the worker made no progress: {seen[-5:]}"
    finally:
        worker.send_signal(signal.SIGCONT)
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
    assert code == 0, worker.communicate()
    assert seen == sorted(seen), seen  # the committed prefix only grows
    assert names(search(mm, "zebrafinch", "-k", "1"))[0].startswith("log-")


def test_a_commit_landing_mid_search_does_not_tear_the_results(mm: MM, indexed: Path,
                                                               settings: Settings) -> None:
    hash384 = get_embedder("hash-384")

    class CommitsWhileEmbedding:
        """The hash embedder; while it embeds the query, a committer deletes gardening.md."""

        name, dim, fingerprint, info = hash384.name, hash384.dim, hash384.fingerprint, hash384.info

        def embed(self, texts: Sequence[str]):  # type: ignore[no-untyped-def]
            enqueue_items(settings, [FileSnapshot("default", str(indexed / "gardening.md"), "", 0,
                                                  time.time_ns(), ())])
            with committer_session(settings) as committer:
                committer.drain()
            return hash384.embed(texts)

    result = library_search(settings, "compost", embedder=CommitsWhileEmbedding())
    # One snapshot, taken when the search began: the file was still there.
    assert [Path(hit.source_file).name for hit in result.hits][:1] == ["gardening.md"]
    assert names(search(mm, "compost"))[0] != "gardening.md"  # and now it is gone


# -- the real model ------------------------------------------------------------------------


@pytest.mark.integration
def test_real_model_finds_the_right_file_for_a_question_in_other_words(tmp_path: Path,
                                                                       corpus: Path) -> None:
    home = tmp_path / "real-home"
    write_config(home, {"embedding": {"model": "minilm"}})
    mm = MM(home)
    index(mm, corpus)
    questions = {
        "which planet has the most moons": "astronomy.md",
        "how do I keep my compost healthy": "gardening.md",
        "boat sail downwind": "sailing.md",
        "bugs eating my lettuce": "gardening.md",
        "looking at the night sky": "astronomy.md",
        "making bread at home": "cooking.md",
    }
    found = {question: names(search(mm, question))[0] for question in questions}
    assert found == questions
    assert_doctor_ok(home)
