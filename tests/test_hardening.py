"""Every bad input, corrupt file and hostile path gets a clear answer, and nothing is lost.

Each test drives the real `mm` where a user would, and failed on the code before these fixes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from helpers import MM, Run, home_settings, mm_command, mm_env, producer_queue, write_config
from memwal.discover import Skipped, discover, load_text
from memwal.store import reads

# -- helpers -------------------------------------------------------------------------------


def one_error(run: Run, code: int) -> str:
    """The run exited `code` with exactly one `error:` line and no traceback; that line."""
    assert run.code == code and "Traceback" not in run.stderr, str(run)
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, str(run)
    return errors[0]


def indexed(mm: MM, *args: str | Path) -> dict[str, Any]:
    run = mm("index", "--json", *map(str, args))
    assert "Traceback" not in run.stderr, str(run)
    return run.json()


def files_in_index(mm: MM) -> int:
    return mm("status", "--json").json()["files"]


def sql(path: Path, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """A query on a home file with the stdlib sqlite3, as a damaged or hostile writer would."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


# -- 1. a missing, unreadable or emptied root ----------------------------------------------


@pytest.mark.parametrize("json_out", [False, True])
def test_a_root_that_does_not_exist_exits_2_and_deletes_nothing(
        mm: MM, notes: Path, tmp_path: Path, json_out: bool) -> None:
    mount = tmp_path / "mnt" / "notes"
    shutil.copytree(notes, mount)
    assert indexed(mm, mount)["files"] == 3
    shutil.rmtree(tmp_path / "mnt")  # the drive is unmounted
    run = mm("index", *(["--json"] if json_out else []), str(mount), check=None)
    line = one_error(run, 2)
    assert str(mount) in line and "does not exist" in line and "nothing was" in line, line
    if json_out:
        error = run.json()["error"]
        assert error["exit_code"] == 2 and str(mount) in error["message"]
    else:
        assert run.stdout == ""
    assert files_in_index(mm) == 3


def test_a_root_that_is_now_empty_keeps_its_files_unless_told_otherwise(
        mm: MM, notes: Path, tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    shutil.copytree(notes, mount)
    assert indexed(mm, mount)["files"] == 3
    for child in mount.iterdir():  # an empty mount point where the drive was
        child.unlink()
    run = mm("index", "--json", str(mount))
    report = run.json()
    assert (report["deleted"], report["kept_roots"]) == (0, [{"root": str(mount), "indexed_files": 3}])
    assert "--allow-empty-root" in run.stderr and str(mount) in run.stderr
    assert files_in_index(mm) == 3
    report = indexed(mm, "--allow-empty-root", mount)
    assert (report["deleted"], report["kept_roots"]) == (3, [])
    assert files_in_index(mm) == 0


def test_a_root_that_lost_some_files_deletes_only_those(mm: MM, notes: Path) -> None:
    indexed(mm, notes)
    (notes / "cooking.txt").unlink()
    report = indexed(mm, notes)
    assert (report["deleted"], report["kept_roots"]) == (1, [])


def test_an_unreadable_root_exits_2_and_deletes_nothing(mm: MM, notes: Path) -> None:
    indexed(mm, notes)
    if os.geteuid() == 0:
        pytest.skip("root reads every folder whatever its mode")
    notes.chmod(0o000)
    try:
        line = one_error(mm("index", str(notes), check=None), 2)
    finally:
        notes.chmod(0o755)
    assert str(notes) in line and "permission denied" in line
    assert files_in_index(mm) == 3


# -- 2. queue rows the decoder cannot read -------------------------------------------------


@pytest.mark.parametrize("value", [3.25, "plain text", 42], ids=["REAL", "TEXT", "INTEGER"])
def test_a_queue_row_that_is_not_a_blob_becomes_a_dead_letter_not_a_crash_loop(
        mm: MM, notes: Path, tmp_path: Path, value: Any) -> None:
    indexed(mm, "--no-wait", notes)
    name = home_settings(mm.home).queue_name
    sql(mm.home / "queue.sqlite3", "INSERT INTO task (queue, data, priority) VALUES (?, ?, 0)",
        name, value)
    later = tmp_path / "later"
    later.mkdir()
    (later / "boats.md").write_text("# Boats\n\nThe catamaran capsized near the lighthouse.\n")
    report = indexed(mm, later)  # takes the committer role and drains everything before it
    assert report["committed"] == 2 and report["dead_lettered"] == 0, report
    status = mm("queue", "status", "--json").json()
    assert (status["pending"], status["inflight"], status["dead_letters"]) == (0, 0, 1)
    (letter,) = mm("queue", "dead-letters", "list", "--json").json()
    shown = mm("queue", "dead-letters", "show", str(letter["id"]), "--json").json()
    assert letter["reason"] == "undecodable" and shown["raw_bytes"] is not None


@pytest.mark.no_doctor
def test_a_committer_that_cannot_make_progress_is_reported_by_doctor(
        mm: MM, notes: Path, tmp_path: Path) -> None:
    indexed(mm, notes)
    # Damage the vector storage: every later commit of a vector fails on it.
    sql(mm.home / "index.sqlite3", "UPDATE chunk_vectors_vector_chunks00 SET vectors = x'00'")
    later = tmp_path / "later"
    later.mkdir()
    (later / "boats.md").write_text("# Boats\n\nThe catamaran capsized near the lighthouse.\n")
    indexed_run = mm("index", "--no-wait", str(later))
    assert indexed_run.code == 0, str(indexed_run)
    for _ in range(2):  # the same batch stops every committer that starts
        line = one_error(mm("queue", "worker", "--once", check=None), 1)
        assert "damaged" in line and "index.sqlite3" in line, line
    report = mm("doctor", "--json", check=1).json()
    progress = next(c for c in report["checks"] if c["name"] == "committer_progress")
    assert not progress["ok"] and "queue position" in progress["detail"], progress
    assert "A stuck committer" in progress["detail"]
    assert mm("queue", "status", "--json").json()["pending"] == 1  # nothing lost


# -- 3. a file swapped for a FIFO during a run ---------------------------------------------


def test_a_file_swapped_for_a_fifo_after_discovery_is_skipped_without_hanging(tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    note.write_text("# Note\n\ntext\n")
    (found,) = discover([tmp_path]).files
    note.unlink()
    os.mkfifo(note)  # nobody ever writes to it: a blocking open would wait forever
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(load_text(found)), daemon=True)
    reader.start()
    reader.join(timeout=60)
    assert result == [Skipped(found.source_file, "not_a_regular_file", "a FIFO")]


def test_a_fifo_or_pdf_named_on_the_command_line_is_reported_in_json(
        mm: MM, notes: Path, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.md")
    (tmp_path / "paper.pdf").write_bytes(b"%PDF-1.7\n")
    report = indexed(mm, tmp_path / "pipe.md", tmp_path / "paper.pdf", notes)
    skipped = {(Path(s["path"]).name, s["reason"]) for s in report["skipped_files"]}
    assert skipped == {("pipe.md", "not_a_regular_file"), ("paper.pdf", "unsupported_type")}
    assert report["skipped"] == 2 and report["files"] == 3


# -- 4. hostile paths in the home ----------------------------------------------------------


@pytest.mark.no_doctor
def test_a_symlink_planted_as_the_committer_lock_never_touches_its_target(
        mm: MM, notes: Path, tmp_path: Path) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("do not truncate me\n")
    mm.home.mkdir(parents=True, exist_ok=True)
    (mm.home / "committer.lock").symlink_to(victim)
    line = one_error(mm("index", str(notes), check=None), 2)
    assert "committer.lock" in line and "symlink" in line, line
    assert victim.read_text() == "do not truncate me\n"


@pytest.mark.no_doctor
@pytest.mark.parametrize("name", ["index.sqlite3", "queue.sqlite3", "queue.sqlite3-wal"])
def test_a_symlinked_index_or_queue_file_is_refused(mm: MM, notes: Path, tmp_path: Path,
                                                     name: str) -> None:
    victim = tmp_path / "elsewhere.db"
    victim.write_bytes(b"")
    mm.home.mkdir(parents=True, exist_ok=True)
    (mm.home / name).symlink_to(victim)
    line = one_error(mm("index", str(notes), check=None), 2)
    assert name in line and "symlink" in line, line
    assert victim.read_bytes() == b""


def test_the_home_is_private_and_so_are_its_files(mm: MM, notes: Path) -> None:
    shutil.rmtree(mm.home)
    indexed(mm, notes)
    assert mm.home.stat().st_mode & 0o777 == 0o700
    for name in ("index.sqlite3", "queue.sqlite3", "committer.lock"):
        assert (mm.home / name).stat().st_mode & 0o777 == 0o600, name


# -- 5. damaged files ----------------------------------------------------------------------

READS = [("search", "--json", "moons"), ("status", "--json"), ("queue", "status", "--json"),
         ("queue", "dead-letters", "list", "--json")]
QUEUE_USERS = [("status", "--json"), ("queue", "status", "--json"), ("index", "--json", "{notes}"),
               ("embedding-reset", "--json"), ("queue", "worker", "--once")]


@pytest.mark.no_doctor
@pytest.mark.parametrize("command", QUEUE_USERS, ids=" ".join)
def test_a_garbage_queue_file_is_named_in_one_line_and_json(mm: MM, notes: Path,
                                                            command: tuple[str, ...]) -> None:
    indexed(mm, notes)
    for companion in ("queue.sqlite3-wal", "queue.sqlite3-shm"):
        (mm.home / companion).unlink(missing_ok=True)
    (mm.home / "queue.sqlite3").write_bytes(b"this is not a database" * 100)
    run = mm(*[a.format(notes=notes) for a in command], check=None)
    line = one_error(run, 1)
    assert "queue.sqlite3" in line and "damaged" in line and "operations.md" in line, line
    if "--json" in command:
        assert run.json()["error"]["error"] == "DamagedFile"
    # Reads that do not need the queue still work.
    assert mm("search", "--json", "moons").code == 0


@pytest.mark.no_doctor
def test_a_half_truncated_index_gives_doctor_json_and_every_command_a_clear_line(
        mm: MM, notes: Path) -> None:
    indexed(mm, notes)
    index = mm.home / "index.sqlite3"
    mm("queue", "worker", "--once")  # checkpoint: the whole index is in the main file
    for companion in ("index.sqlite3-wal", "index.sqlite3-shm"):
        (mm.home / companion).unlink(missing_ok=True)
    with open(index, "r+b") as handle:
        handle.truncate(index.stat().st_size // 2)
    report = mm("doctor", "--json", check=1).json()
    assert report["ok"] is False
    failed = [c for c in report["checks"] if not c["ok"]]
    assert failed and all("index.sqlite3" in c["detail"] for c in failed), failed
    for command in READS[:2]:
        line = one_error(mm(*command, check=None), 1)
        assert "index.sqlite3" in line and "damaged" in line, line


@pytest.mark.no_doctor
@pytest.mark.parametrize("damage", ["nan", "short blob"])
def test_a_damaged_vector_fails_doctor_and_search_says_damaged_not_locked(
        mm: MM, notes: Path, damage: str) -> None:
    indexed(mm, notes)
    index = mm.home / "index.sqlite3"
    if damage == "nan":
        conn = sqlite3.connect(index)
        # vec0's storage: one blob of vectors per chunk of rows; put NaN into the first vector.
        (blob,) = conn.execute("SELECT vectors FROM chunk_vectors_vector_chunks00").fetchone()
        blob = struct.pack("<f", float("nan")) * 384 + bytes(blob)[384 * 4:]
        conn.execute("UPDATE chunk_vectors_vector_chunks00 SET vectors=?", (blob,))
        conn.commit()
        conn.close()
    else:
        sql(index, "UPDATE chunk_vectors_vector_chunks00 SET vectors = substr(vectors, 1, 40)")
    report = mm("doctor", "--json", check=1).json()
    vectors = next(c for c in report["checks"] if c["name"] == "vectors_sound")
    assert not vectors["ok"], vectors
    assert ("NaN" in vectors["detail"]) if damage == "nan" else ("damaged" in vectors["detail"])
    run = mm("search", "Ganymede moons", check=None)
    if damage == "short blob":
        line = one_error(run, 1)
        assert "damaged" in line and "locked" not in line, line


# -- 6. bad arguments and configuration ----------------------------------------------------


def test_a_huge_top_k_is_a_usage_error_not_a_traceback(mm: MM, notes: Path) -> None:
    indexed(mm, notes)
    run = mm("search", "--top-k", "99999999999999999999", "moons", check=2)
    assert "Traceback" not in run.stderr and "--top-k" in run.stderr


@pytest.mark.parametrize("text, named", [
    (b'{"embedding": {"model": "caf\xe9"}}', "not UTF-8"),
    (b'{"search": {"vector_weight": Infinity}}', "search.vector_weight"),
    (b'{"search": {"bm25_weight": NaN}}', "search.bm25_weight"),
    (b'{"search": {"top_k": 99999999999999999999}}', "search.top_k"),
], ids=["invalid UTF-8", "Infinity", "NaN", "huge top_k"])
def test_bad_config_values_exit_2_in_one_line(mm: MM, text: bytes, named: str) -> None:
    mm.home.mkdir(parents=True, exist_ok=True)
    (mm.home / "config.json").write_bytes(text)
    run = mm("status", "--json", check=None)
    assert named in one_error(run, 2)
    (mm.home / "config.json").unlink()


@pytest.mark.parametrize("value", ["inf", "nan", "-1"])
def test_weights_from_the_environment_must_be_finite(mm: MM, value: str) -> None:
    run = mm("config", "show", env={"MM_SEARCH_VECTOR_WEIGHT": value}, check=None)
    assert "MM_SEARCH_VECTOR_WEIGHT" in one_error(run, 2)


@pytest.mark.parametrize("command", READS + [("doctor", "--json")], ids=" ".join)
def test_a_home_that_is_a_regular_file_is_an_error_for_reads_too(tmp_path: Path,
                                                                command: tuple[str, ...]) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder\n")
    proc = subprocess.run(mm_command(*command, "--home", str(home)), capture_output=True,
                          text=True, env=mm_env(), timeout=120)
    run = Run(command, proc.returncode, proc.stdout, proc.stderr)
    line = one_error(run, 2)
    assert str(home) in line and "not a folder" in line, line


def _read_only_view(home: Path, view: Path, script: str) -> subprocess.CompletedProcess:
    """Run `script` (shell) where `view` is a read-only bind mount of `home`."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to make a read-only mount")
    view.mkdir()
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c",
         f"mount --bind '{home}' '{view}' && mount -o remount,bind,ro '{view}' && {script}"],
        capture_output=True, text=True, env=mm_env(), timeout=300)


def test_a_read_only_home_can_be_searched_and_checked(mm: MM, notes: Path, tmp_path: Path) -> None:
    indexed(mm, notes)
    mm("queue", "worker", "--once")  # a clean shutdown: no -wal or -shm left, like a backup
    for name in os.listdir(mm.home):
        if name.endswith(("-wal", "-shm")):
            (mm.home / name).unlink()
    view = tmp_path / "snapshot"
    commands = ["search --json Ganymede", "status --json", "queue status --json", "doctor --json",
                "queue dead-letters list --json"]
    script = " && ".join(
        f"{' '.join(mm_command())} {command} --home '{view}' > '{tmp_path}/{n}.json'"
        for n, command in enumerate(commands))
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.decode().strip()}")
    done = _read_only_view(mm.home, view, script)
    assert done.returncode == 0, done.stderr
    outputs = [json.loads((tmp_path / f"{n}.json").read_text()) for n in range(len(commands))]
    assert Path(outputs[0][0]["source_file"]).name == "astronomy.md"
    assert outputs[1]["files"] == 3 and outputs[3]["ok"] is True
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("verb", ["show", "replay", "purge"])
def test_a_dead_letter_id_beyond_sqlite_integers_is_a_usage_error(mm: MM, verb: str) -> None:
    args = ["queue", "dead-letters", verb, "99999999999999999999"] + (["--yes"] if verb == "purge" else [])
    run = mm(*args, check=2)
    assert "Traceback" not in run.stderr, str(run)
    assert "99999999999999999999" in run.stderr or "9223372036854775807" in run.stderr, str(run)


def test_a_home_path_with_uri_characters_works(tmp_path: Path, notes: Path) -> None:
    home = tmp_path / "my notes?mode=rw#x%20y"
    write_config(home, {"embedding": {"model": "hash-384"}})
    mm = MM(home)
    assert indexed(mm, notes)["files"] == 3
    assert Path(mm("search", "--json", "Ganymede").json()[0]["source_file"]).name == "astronomy.md"
    assert mm("doctor", "--json").json()["ok"] is True


# -- 8. indexing cost does not grow with the index -----------------------------------------


def test_the_per_file_diff_uses_the_file_index_not_a_scan_of_the_model(mm: MM, notes: Path) -> None:
    indexed(mm, notes)
    conn = sqlite3.connect(mm.home / "index.sqlite3")
    try:
        for query, params in ((reads.CURRENT_KEYS, ("default", "/x.md", "hash-384/x")),
                              (reads.FILE_CHUNK_COUNTS, ("hash-384/x", "default", "/x.md"))):
            plan = " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + query, params))
            assert "chunks_by_file" in plan and "chunks_by_fingerprint" not in plan, plan
    finally:
        conn.close()


def test_queue_rows_written_by_a_hostile_writer_are_never_unpickled(mm: MM) -> None:
    import pickle

    class Boom:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, ("touch /tmp/memwal-pwned",))

    queue = producer_queue(mm.home)
    queue.put(pickle.dumps(Boom()))
    queue.close()
    mm("queue", "worker", "--once")
    assert not Path("/tmp/memwal-pwned").exists()
    assert mm("queue", "status", "--json").json()["dead_letters"] == 1

