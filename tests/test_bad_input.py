"""Bad input, end to end: garbage in the queue, hostile files, a locked index, an unusable home,
a full disk, and random mixes of items the committer must survive.

Every case ends the same way: a documented exit code (0 ok, 1 failed, 2 usage, 3 busy, 130
interrupted), at most one `error:` line and never a traceback on stderr, and nothing lost —
`mm doctor` passes (the `mm` fixture checks it after each test) and what went in adds up to
committed + dead-lettered + skipped in the ledger.

Behaviour that is wrong today is pinned as it should be, under `xfail(strict=True)` naming the bug.
test_cli_e2e.py already covers plain garbage rows, binary / too-large / invalid UTF-8 files, the
model gate and SIGINT; this file does not repeat them. No test asserts a duration.
"""

from __future__ import annotations

import functools
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings as hypothesis_settings, strategies as st

from helpers import MM, Run, mm_command, mm_env, write_config
from helpers import PRODUCER, batch, home_settings, producer_queue, queue_rows, upsert
from memwal import store
from memwal.chunking import content_hash
from memwal.config import load_settings
from memwal.discover import Skipped, discover, load_text
from memwal.doctor import run_doctor
from memwal.embedders import get_embedder
from memwal.queue import open_queue
from memwal.status import queue_counts
from memwal.worker import committer_session
from memwal.records import (
    ChunkKey, FileSnapshot, Reset, UndecodableBatch, Upsert, decode_batch, encode_batch,
    item_to_wire,
)
from memwal.vectors import to_bytes

FUZZER = Path(__file__).resolve().parent.parent / "benchmarks" / "fuzz_decoder.py"


# -- helpers -------------------------------------------------------------------------------


def clean(run: Run, code: int = 0) -> Run:
    """The run exited `code`, with no traceback, and an error line only if it failed."""
    assert run.code == code and "Traceback" not in run.stderr, str(run)
    if code == 0:
        assert "error:" not in run.stderr, str(run)
    return run


def error_line(run: Run) -> str:
    """The one `error:` line of a failed run (info lines such as "committer running" may precede it)."""
    assert run.code != 0 and "Traceback" not in run.stderr, str(run)
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, str(run)
    return errors[0]


def index(mm: MM, *args: str | Path) -> dict[str, Any]:
    return clean(mm("index", "--json", *map(str, args))).json()


def queue_status(mm: MM) -> dict[str, Any]:
    return clean(mm("queue", "status", "--json")).json()


def search_files(mm: MM, query: str) -> list[str]:
    return [Path(hit["source_file"]).name for hit in clean(mm("search", "--json", query)).json()]


def files_mentioning(mm: MM, word: str) -> list[str]:
    """Files of the hits whose text holds `word` (the vector leg also returns unrelated chunks)."""
    return sorted(Path(hit["source_file"]).name for hit in
                  clean(mm("search", "--json", word)).json() if word in hit["content"])


def ledger_total(status: dict[str, Any]) -> int:
    """Items the ledger accounts for: committed + dead-lettered + skipped."""
    ledger = status["ledger"]
    return ledger["committed"] + ledger["dead_lettered"] + ledger["skipped"]


def insert_rows(home: Path, rows: list[bytes]) -> None:
    """Raw rows straight into the queue's table, as a damaged or hostile writer would leave them."""
    conn = sqlite3.connect(home / "queue.sqlite3", timeout=10)
    try:
        with conn:
            conn.executemany("INSERT INTO task (queue, data, priority) VALUES (?, ?, 0)",
                             [(home_settings(home).queue_name, row) for row in rows])
    finally:
        conn.close()


def enqueue(home: Path, *messages: bytes) -> None:
    queue = producer_queue(home)
    try:
        for data in messages:
            queue.put(data)
    finally:
        queue.close()


def dead_letters(home: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{home / 'index.sqlite3'}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute("SELECT * FROM dead_letters ORDER BY id")]
    finally:
        conn.close()


def later_notes(tmp_path: Path) -> Path:
    """A second folder whose batch is enqueued after the bad input."""
    root = tmp_path / "later"
    root.mkdir()
    (root / "boats.md").write_text("# Boats\n\nThe catamaran capsized near the lighthouse.\n")
    return root


def vector_of(text: str, model: str = "hash-384") -> np.ndarray:
    return np.asarray(get_embedder(model).embed([text])[0], dtype="<f4")


def envelope(items: list[Any], **fields: Any) -> bytes:
    """A v1 batch around raw wire items; `fields` override or add envelope fields."""
    wire = {"v": 1, "id": uuid.uuid4().hex,
            "producer": {"host": PRODUCER.host, "pid": PRODUCER.pid, "command": PRODUCER.command},
            "enqueued_at": time.time(), "items": items, **fields}
    return msgpack.packb(wire, use_bin_type=True)


# -- 1. garbage in the queue file ----------------------------------------------------------


def test_truncated_copies_of_a_real_batch_are_dead_lettered_whole_and_the_neighbours_commit(
        mm: MM, notes: Path, tmp_path: Path) -> None:
    before = index(mm, "--no-wait", notes)
    real = queue_rows(mm.home)[0]
    truncated = [real[:n] for n in sorted({0, 1, 7, len(real) // 3, len(real) // 2, len(real) - 1})]
    insert_rows(mm.home, truncated)
    after = index(mm, "--no-wait", later_notes(tmp_path))

    clean(mm("queue", "worker", "--once"))
    status = queue_status(mm)
    assert (status["pending"], status["inflight"]) == (0, 0)
    assert [(d["reason"], bytes(d["raw"])) for d in dead_letters(mm.home)] == \
        [("undecodable", t) for t in truncated]
    assert status["ledger"]["batches"] == before["batches"] + len(truncated) + after["batches"]
    assert status["ledger"]["dead_lettered"] == len(truncated)
    went_in = before["records_enqueued"] + len(truncated) + after["records_enqueued"]
    assert ledger_total(status) == went_in
    assert search_files(mm, "Ganymede")[0] == "astronomy.md"
    assert search_files(mm, "catamaran")[0] == "boats.md"


def test_unknown_version_and_bad_vectors_are_dead_lettered_with_their_reasons(
        mm: MM, notes: Path, tmp_path: Path) -> None:
    before = index(mm, "--no-wait", notes)
    good = vector_of("x")
    nan, pinf, ninf = good.copy(), good.copy(), good.copy()
    nan[7], pinf[0], ninf[383] = np.nan, np.inf, -np.inf
    v99 = envelope([item_to_wire(upsert("from the future"))], v=99)
    bad = batch(
        upsert("The walrus sibling before the bad vectors.", source="/bad/a.md"),
        upsert("short", source="/bad/b.md", vector=good[:383].tobytes(), dim=383),
        upsert("long", source="/bad/c.md", vector=good.tobytes() + b"\0\0\0\0"),
        upsert("ragged", source="/bad/d.md", vector=good.tobytes()[:-1]),
        upsert("nan", source="/bad/e.md", vector=nan.tobytes()),
        upsert("plus infinity", source="/bad/f.md", vector=pinf.tobytes()),
        upsert("minus infinity", source="/bad/g.md", vector=ninf.tobytes()),
        upsert("The narwhal sibling after the bad vectors.", source="/bad/h.md"),
    )
    enqueue(mm.home, v99, encode_batch(bad))
    after = index(mm, "--no-wait", later_notes(tmp_path))

    clean(mm("queue", "worker", "--once"))
    letters = dead_letters(mm.home)
    assert [(d["reason"], d["batch_id"], d["item_index"]) for d in letters] == [
        ("unsupported_version", None, None),
        ("wrong_dimension", bad.id, 1), ("wrong_dimension", bad.id, 2),
        ("wrong_dimension", bad.id, 3),
        ("invalid_vector", bad.id, 4), ("invalid_vector", bad.id, 5), ("invalid_vector", bad.id, 6),
    ]
    assert bytes(letters[0]["raw"]) == v99
    status = queue_status(mm)
    assert (status["pending"], status["inflight"]) == (0, 0)
    went_in = before["records_enqueued"] + 1 + len(bad.items) + after["records_enqueued"]
    assert ledger_total(status) == went_in
    assert status["ledger"]["dead_lettered"] == 7
    assert search_files(mm, "walrus")[0] == "a.md" and search_files(mm, "narwhal")[0] == "h.md"
    assert search_files(mm, "catamaran")[0] == "boats.md"


def _sibling() -> dict[str, Any]:
    return item_to_wire(upsert("The okapi sibling of the poison.", source="/poison/s.md"))


def _poison_upsert(field: str, value: Any) -> dict[str, Any]:
    wire = item_to_wire(upsert("poison", source="/poison/p.md"))
    wire[field] = value
    return wire


def _poison_file(field: str, value: Any) -> dict[str, Any]:
    wire = item_to_wire(FileSnapshot("default", "/poison/f.md", "d", 1, 1, (("h", 1),)))
    wire[field] = value
    return wire


# (id, the poison batch, whether it comes first: a fresh index adopts its model from it,
#  whether something must be dead-lettered: a producer map is metadata, sanitised, not refused)
POISON = [
    ("upsert start_line 2**64-1",
     lambda: envelope([_sibling(), _poison_upsert("start_line", 2**64 - 1)]), False, True),
    ("upsert end_line 2**63", lambda: envelope([_sibling(), _poison_upsert("end_line", 2**63)]),
     False, True),
    ("file mtime_ns 2**63", lambda: envelope([_sibling(), _poison_file("mtime_ns", 2**63)]), False, True),
    ("file size 2**64-1", lambda: envelope([_sibling(), _poison_file("size", 2**64 - 1)]), False, True),
    ("upsert dim 0 adopting the model", lambda: envelope([_poison_upsert("dim", 0), _sibling()]),
     True, True),
    ("reset dim 8193 over sqlite-vec's 8192",
     lambda: envelope([item_to_wire(Reset("hash-8193/x", "hash-8193", 8193))]), False, True),
    ("reset dim 2**63", lambda: envelope([item_to_wire(Reset("big/x", "big", 2**63))]), False, True),
    ("producer holding bytes", lambda: envelope([_sibling()], producer={"host": b"\xff"}), False, False),
    ("replays id 2**64-1", lambda: envelope([_sibling()], replays=[2**64 - 1]), False, True),
]


@pytest.mark.parametrize("make, first, refused", [pytest.param(make, first, refused, id=name)
                                                  for name, make, first, refused in POISON])
def test_an_out_of_range_field_is_dead_lettered_and_never_blocks_the_queue(
        mm: MM, notes: Path, make: Any, first: bool, refused: bool) -> None:
    poison = make()
    if first:
        enqueue(mm.home, poison)
    before = index(mm, "--no-wait", notes)
    # Enqueued by the library, not `mm index`: the model gate would (rightly) refuse to embed
    # with hash-384 behind a queued reset to another model.
    after = batch(upsert("The catamaran capsized near the lighthouse.", source="/later/boats.md"))
    enqueue(mm.home, *([] if first else [poison]), encode_batch(after))

    clean(mm("queue", "worker", "--once"))
    status = queue_status(mm)
    assert (status["pending"], status["inflight"]) == (0, 0)
    assert status["dead_letters"] >= (1 if refused else 0)
    items = len(msgpack.unpackb(poison, raw=False)["items"])
    # Dead-lettered item by item, or (for a bad envelope) whole as one undecodable batch.
    assert ledger_total(status) - before["records_enqueued"] - len(after.items) in (items, 1)
    assert search_files(mm, "catamaran")[0] == "boats.md"
    assert search_files(mm, "Ganymede")[0] == "astronomy.md"


# -- 2. hostile files ----------------------------------------------------------------------


def test_a_50_mb_file_is_skipped_as_too_large_and_the_rest_is_indexed(mm: MM, notes: Path) -> None:
    with open(notes / "huge.md", "wb") as f:
        f.truncate(50 * 1000 * 1000)  # sparse: never read, discovery decides from its size
    report = index(mm, notes)
    assert report["files"] == 3 and report["committed"] == report["records_enqueued"]
    assert [(Path(s["path"]).name, s["reason"]) for s in report["skipped_files"]] == \
        [("huge.md", "too_large")]
    assert str(5 * 1024 * 1024) in report["skipped_files"][0]["detail"]


BIG_MB = 20  # 50 MB works too but takes ~60 s with the hash embedder here; 20 MB keeps CI quick


def test_a_20_mb_markdown_file_of_real_text_is_indexed_once_the_limit_is_raised(
        mm: MM, tmp_path: Path) -> None:
    write_config(mm.home, {"embedding": {"model": "hash-384"},
                           "index": {"max_file_bytes": 64 * 1024 * 1024}})
    root = tmp_path / "big"
    root.mkdir()
    words = ("river mountain garden compost tomato jupiter moon harbour lighthouse ladle stock "
             "risotto boat fox dog lazy quick brown the over").split()
    rng = np.random.default_rng(1)
    lines = 0
    with open(root / "big.md", "w", encoding="utf-8") as f:
        written, section = 0, 0
        while written < BIG_MB * 1000 * 1000:
            section += 1
            paragraphs = [" ".join(rng.choice(words, int(rng.integers(20, 120)))) + "."
                          for _ in range(int(rng.integers(1, 5)))]
            text = f"## Section {section}\n\n" + "\n\n".join(paragraphs) + "\n\n"
            written += f.write(text)
            lines += text.count("\n")
        f.write("## The end\n\nA quokka waits at the very end of the file.\n")
        lines += 3
    run = clean(mm("index", "--json", str(root), timeout=600))
    report = run.json()
    assert (report["files"], report["skipped"]) == (1, 0), report
    assert report["committed"] == report["records_enqueued"] and report["dead_lettered"] == 0
    assert clean(mm("status", "--json")).json()["chunks"] == report["chunks_embedded"]
    [hit] = [h for h in clean(mm("search", "--json", "quokka")).json() if "quokka" in h["content"]]
    assert hit["end_line"] == lines


def test_symlink_loops_inside_the_folder_are_reported_and_the_run_finishes(
        mm: MM, notes: Path) -> None:
    (notes / "a").mkdir()
    (notes / "a" / "inside.md").write_text("# Inside\n\nThe axolotl lives inside folder a.\n")
    (notes / "a" / "loop").symlink_to("..")
    (notes / "self.md").symlink_to("self.md")
    (notes / "spin").symlink_to("spin")
    report = index(mm, notes)
    assert report["files"] == 4 and report["committed"] == report["records_enqueued"]
    assert sorted((Path(s["path"]).relative_to(notes).as_posix(), s["reason"])
                  for s in report["skipped_files"]) == \
        [("a/loop", "symlink_loop"), ("self.md", "symlink_loop"), ("spin", "symlink_loop")]
    assert files_mentioning(mm, "axolotl") == ["inside.md"]


@pytest.mark.parametrize("vanish", ["file deleted", "folder deleted", "folder replaced by a file"])
def test_a_file_that_vanishes_between_discovery_and_reading_is_not_found(
        tmp_path: Path, vanish: str) -> None:
    root = tmp_path / "notes"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "gone.md").write_text("# Gone\n\nSoon gone.\n")
    (root / "kept.md").write_text("# Kept\n\nStill here.\n")
    found = discover([root])
    victim = next(f for f in found.files if f.path.name == "gone.md")
    if vanish == "file deleted":
        victim.path.unlink()
    else:
        shutil.rmtree(root / "sub")
        if vanish == "folder replaced by a file":
            (root / "sub").write_text("now a file")
    loaded = load_text(victim)
    assert isinstance(loaded, Skipped), loaded
    assert (loaded.path, loaded.reason) == (victim.source_file, "not_found")
    assert not isinstance(load_text(next(f for f in found.files if f.path.name == "kept.md")),
                          Skipped)


def test_a_folder_that_vanishes_between_two_runs_is_deleted_from_the_index(
        mm: MM, notes: Path) -> None:
    (notes / "sub").mkdir()
    (notes / "sub" / "one.md").write_text("# One\n\nThe pangolin curls up.\n")
    (notes / "sub" / "two.txt").write_text("The pangolin eats ants.\n")
    assert index(mm, notes)["files"] == 5
    assert files_mentioning(mm, "pangolin") == ["one.md", "two.txt"]
    shutil.rmtree(notes / "sub")
    report = index(mm, notes)
    assert (report["deleted"], report["unchanged"], report["new"]) == (2, 3, 0), report
    assert files_mentioning(mm, "pangolin") == []
    assert clean(mm("status", "--json")).json()["files"] == 3


# -- 3. the index file locked by another program -------------------------------------------

LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # held until the test closes our stdin (or dies)
conn.execute("COMMIT")
"""


class ExclusiveLock:
    """Another process holding `BEGIN EXCLUSIVE` on a SQLite file until released."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", LOCKER, str(path)], text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def __enter__(self) -> "ExclusiveLock":
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # bounded: the locker prints or exits
        assert line.strip() == "locked", (line, self.process.poll())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.mark.parametrize("command", ["worker", "index"])
def test_a_locked_index_fails_after_the_busy_timeout_and_keeps_the_batch(
        mm: MM, notes: Path, tmp_path: Path, command: str) -> None:
    index(mm, notes)
    later = later_notes(tmp_path)
    if command == "worker":
        index(mm, "--no-wait", later)
        args: tuple[str, ...] = ("queue", "worker", "--once")
    else:
        args = ("index", str(later))  # enqueues, then waits for a commit that cannot happen
    with ExclusiveLock(mm.home / "index.sqlite3"):
        run = mm(*args, check=1, timeout=300)
    line = error_line(run)
    assert "database is locked" in line and "another program" in line, line
    status = queue_status(mm)
    assert (status["pending"], status["inflight"]) == (1, 0), status
    clean(mm("queue", "worker", "--once"))
    assert queue_status(mm)["pending"] == 0
    assert search_files(mm, "catamaran")[0] == "boats.md"


def test_search_and_status_still_read_while_another_program_holds_the_index_exclusively(
        mm: MM, notes: Path) -> None:
    index(mm, notes)
    with ExclusiveLock(mm.home / "index.sqlite3"):
        # WAL: an exclusive write transaction does not stop readers.
        assert search_files(mm, "Ganymede")[0] == "astronomy.md"
        assert queue_status(mm)["ledger"]["batches"] == 1
        assert clean(mm("status", "--json")).json()["files"] == 3


# -- 4. a home that cannot be a folder -----------------------------------------------------

WRITE_COMMANDS = {
    "index": ("index", "{notes}"),
    "index --no-wait": ("index", "--no-wait", "{notes}"),
    "queue worker": ("queue", "worker", "--once"),
    "embedding-reset": ("embedding-reset", "--mode", "apply-current", "--yes"),
}


@pytest.mark.parametrize("how", ["--home", "MM_HOME"])
@pytest.mark.parametrize("where", ["parent is a file", "home is a file"])
@pytest.mark.parametrize("command", list(WRITE_COMMANDS))
def test_a_home_that_cannot_be_a_folder_exits_2_naming_it_and_the_fix(
        tmp_path: Path, notes: Path, command: str, where: str, how: str) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder\n")
    home = blocker / "sub" if where == "parent is a file" else blocker
    args = [a.format(notes=notes) for a in WRITE_COMMANDS[command]]
    env = {"MM_EMBEDDING_MODEL": "hash-384"}
    if how == "--home":
        args += ["--home", str(home)]
    else:
        env["MM_HOME"] = str(home)
    proc = subprocess.run(mm_command(*args), capture_output=True, text=True, env=mm_env(env),
                          timeout=120)
    run = Run(tuple(args), proc.returncode, proc.stdout, proc.stderr)
    assert run.code == 2, str(run)
    line = error_line(run)
    assert str(home) in line and "--home" in line and "MM_HOME" in line, line
    assert blocker.read_text() == "not a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "notes"]


# -- 5. a full disk ------------------------------------------------------------------------


def write_corpus(root: Path, files: int) -> Path:
    root.mkdir()
    for n in range(files):
        paragraphs = "\n\n".join(f"## Part {p}\n\nNote {n} paragraph {p} about topic {n * 7 + p} "
                                 "with some filler words to embed." for p in range(6))
        (root / f"note-{n:04d}.md").write_text(f"# Note {n}\n\n{paragraphs}\n")
    return root


def run_with_file_size_limit(mm: MM, limit: int, *args: str) -> Run:
    """`mm ARGS` unable to grow any file past `limit` bytes: writes fail with EFBIG, as on a full disk."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death by signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(mm_command(*args, "--home", str(mm.home)), capture_output=True,
                          text=True, env=mm_env(), timeout=300, preexec_fn=limit_file_size)
    return Run(args, proc.returncode, proc.stdout, proc.stderr)


def full_disk_setup(mm: MM, notes: Path, tmp_path: Path) -> tuple[Path, int]:
    """A home holding `notes`, a corpus far bigger than the room left, and that room."""
    write_config(mm.home, {"embedding": {"model": "hash-384"}, "queue": {"batch_records": 16}})
    index(mm, notes)
    corpus = write_corpus(tmp_path / "corpus", 150)
    # The index file is already bigger (sqlite-vec allocates ahead), and writes below the limit
    # still succeed: the queue is what must grow, and cannot grow far.
    return corpus, (mm.home / "queue.sqlite3").stat().st_size + 128 * 1024


def test_a_full_disk_while_enqueueing_gives_one_clear_error_line(
        mm: MM, notes: Path, tmp_path: Path) -> None:
    corpus, limit = full_disk_setup(mm, notes, tmp_path)
    run = run_with_file_size_limit(mm, limit, "index", "--no-wait", str(corpus))
    assert run.code == 1, str(run)
    line = error_line(run)
    assert "disk" in line, line
    clean(mm("queue", "worker", "--once"))


def test_a_full_disk_leaves_only_whole_batches_and_a_rerun_completes_the_job(
        mm: MM, notes: Path, tmp_path: Path) -> None:
    corpus, limit = full_disk_setup(mm, notes, tmp_path)
    run = run_with_file_size_limit(mm, limit, "index", str(corpus))
    assert run.code != 0, str(run)
    for data in queue_rows(mm.home):
        decode_batch(data)  # raises on a partial batch
    clean(mm("queue", "worker", "--once"))
    status = queue_status(mm)
    assert (status["pending"], status["inflight"], status["ledger"]["dead_lettered"]) == (0, 0, 0)
    assert status["ledger"]["batches"] > 1  # some of the corpus made it before the disk filled
    clean(mm("doctor"))
    report = index(mm, corpus)
    assert (report["files"], report["skipped"], report["dead_lettered"]) == (150, 0, 0), report
    assert report["unchanged"] + report["new"] == 150
    assert clean(mm("status", "--json")).json()["files"] == 153
    assert "note-0149.md" in search_files(mm, "1048")  # topic 149 * 7 + 5: only the last note


# -- 6. any mix of items, in-process -------------------------------------------------------

MODELS = ("hash-384", "hash-384-b", "hash-256")
TEXTS = ("Tomatoes need full sun.", "Jupiter has many moons.", "Stir the risotto.",
         "The catamaran capsized.")
SOURCES = ("/p/a.md", "/p/b.md", "/p/c.md")


@functools.lru_cache(maxsize=None)
def _vector(model: str, text: str) -> bytes:
    return to_bytes(get_embedder(model).embed([text])[0])


def _upsert_wire(model: str, text: str, source: str, start: int) -> dict[str, Any]:
    embedder = get_embedder(model)
    return item_to_wire(Upsert(ChunkKey("default", source, content_hash(text), start), start,
                               ("H",), text, (), embedder.fingerprint, embedder.dim,
                               _vector(model, text)))


upserts = st.builds(_upsert_wire, st.sampled_from(MODELS), st.sampled_from(TEXTS),
                    st.sampled_from(SOURCES), st.integers(1, 3))


@st.composite
def bad_vectors(draw: st.DrawFn) -> dict[str, Any]:
    wire = draw(upserts)
    values = np.frombuffer(wire["vector"], "<f4").copy()
    how = draw(st.sampled_from(["cut", "extend", "ragged", "declared", "nan", "inf", "-inf"]))
    if how == "cut":
        wire["vector"] = values[:draw(st.integers(0, len(values) - 1))].tobytes()
    elif how == "extend":
        wire["vector"] = values.tobytes() + b"\0" * 4 * draw(st.integers(1, 8))
    elif how == "ragged":
        wire["vector"] = values.tobytes()[:-draw(st.integers(1, 3))]
    elif how == "declared":
        wire["dim"] = draw(st.sampled_from([1, 256, 383, 385, 8192]))
    else:
        values[draw(st.integers(0, len(values) - 1))] = float(how)
        wire["vector"] = values.tobytes()
    return wire


# Values within SQLite's int64; the out-of-range ones are pinned by the POISON cases above.
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats() | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8)


@st.composite
def malformed(draw: st.DrawFn) -> Any:
    how = draw(st.sampled_from(["not a map", "random map", "unknown kind", "field removed",
                                "wrong type"]))
    if how == "not a map":
        return draw(plain_values.filter(lambda v: not isinstance(v, dict)))
    if how == "random map":
        return draw(st.dictionaries(st.text(max_size=8), plain_values, max_size=5))
    wire = draw(st.one_of(upserts, files, resets))
    if how == "unknown kind":
        wire["kind"] = draw(st.sampled_from(["delete", "", "UPSERT", None, 1]))
        return wire
    field = draw(st.sampled_from(sorted(set(wire) - {"kind"})))
    if how == "field removed":
        del wire[field]
    else:
        expected = type(wire[field])
        wire[field] = draw(plain_values.filter(lambda v: not isinstance(v, expected)
                                               or isinstance(v, bool)))
    return wire


@st.composite
def file_snapshots(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.tuples(st.sampled_from(TEXTS).map(content_hash), st.integers(1, 3)),
                         max_size=4, unique=True))
    return item_to_wire(FileSnapshot("default", draw(st.sampled_from(SOURCES)), "d", 1,
                                     draw(st.integers(0, 4)), tuple(keys)))


files = file_snapshots()
resets = st.sampled_from(MODELS).map(
    lambda m: item_to_wire(Reset(get_embedder(m).fingerprint, m, get_embedder(m).dim)))
items = st.one_of(upserts, upserts, bad_vectors(), malformed(), files, resets)

# A queued message: a batch of items, garbage bytes, or the redelivery of an earlier message.
messages = st.one_of(
    st.lists(items, max_size=6).map(lambda its: ("batch", its)),
    st.binary(max_size=64).map(lambda data: ("bytes", data)),
    st.just(("again", None)),
)


@hypothesis_settings(max_examples=25, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(plan=st.lists(messages, min_size=1, max_size=8))
def test_the_committer_survives_any_mix_of_items_and_every_batch_adds_up(
        tmp_path_factory: pytest.TempPathFactory, plan: list[tuple[str, Any]]) -> None:
    home = tmp_path_factory.mktemp("mix")
    write_config(home, {"embedding": {"model": "hash-384"}})
    settings = load_settings(home, environ={})
    expected: dict[str, int] = {}  # ledger id -> items received
    sent: list[bytes] = []
    queue = open_queue(settings)
    try:
        for kind, payload in plan:
            if kind == "again":
                if not sent:
                    continue
                data = sent[-1]
            else:
                data = envelope(payload) if kind == "batch" else payload
            position = queue.put(data)
            sent.append(data)
            try:
                decoded = decode_batch(data)
                expected.setdefault(decoded.id, len(decoded.raw_items))
            except UndecodableBatch:  # ledger id: the position within the queue's epoch
                expected[f"undecodable@{queue.generation().epoch[:12]}:{position}"] = 1
    finally:
        queue.close()

    with committer_session(settings) as committer:
        committer.drain()

    conn = store.open_for_read(settings.index_path)
    assert conn is not None
    try:
        ledger = {row[0]: row[1:] for row in conn.execute(
            "SELECT batch_id, received, committed, dead_lettered, skipped FROM ledger")}
        for (reason,) in conn.execute("SELECT DISTINCT reason FROM dead_letters"):
            event(f"dead letter: {reason}")  # --hypothesis-show-statistics shows the mix
    finally:
        conn.close()
    assert set(ledger) == set(expected)
    for batch_id, (received, committed, dead, skipped) in ledger.items():
        assert received == expected[batch_id] == committed + dead + skipped, batch_id
    assert queue_counts(settings).total == 0
    report = run_doctor(settings)
    assert report["ok"], report


# -- the fuzzer, CI-sized ------------------------------------------------------------------


def run_fuzzer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(FUZZER), *args], capture_output=True, text=True,
                          env=mm_env(), timeout=600)


def test_fuzzed_batches_never_crash_the_decoder() -> None:
    proc = run_fuzzer("--count", "3000", "--worker-count", "0", "--seed", "0")
    assert proc.returncode == 0 and "crashes 0" in proc.stdout, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def test_fuzzed_batches_never_crash_the_committer() -> None:
    proc = run_fuzzer("--count", "0", "--worker-count", "100", "--seed", "0")
    assert proc.returncode == 0 and "crashes 0" in proc.stdout, proc.stdout + proc.stderr
