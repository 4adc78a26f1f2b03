"""End to end: the real `mm` in subprocesses against a temporary home (hash embedder, no mocks).

No test asserts a duration: anything asynchronous is awaited with a bounded polling loop.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from helpers import MM, Run, mm_command, mm_env, write_config
from memwal.records import decode_batch
from helpers import ok, poll, producer_queue, queue_inflight, queue_rows


INDEX_KEYS = {"files", "new", "unchanged", "deleted", "skipped", "records_enqueued", "batches"}
WAIT_KEYS = {"committed", "dead_lettered"}


# -- fixtures and helpers ------------------------------------------------------------------


def index(mm: MM, *args: str | Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """`mm index --json ARGS`, which must succeed; its report."""
    return ok(mm("index", "--json", *map(str, args), env=env)).json()


def queue_status(mm: MM) -> dict[str, Any]:
    return ok(mm("queue", "status", "--json")).json()


def doctor(mm: MM) -> dict[str, Any]:
    run = mm("doctor", "--json", check=None)
    assert "Traceback" not in run.stderr, str(run)
    return run.json()


def search(mm: MM, query: str) -> list[dict[str, Any]]:
    return ok(mm("search", "--json", query)).json()


def try_queue_status(mm: MM) -> dict[str, Any] | None:
    """Queue status, or None while it cannot be read yet (a committer may be creating the index)."""
    run = mm("queue", "status", "--json", check=None)
    try:
        return run.json()
    except json.JSONDecodeError:
        return None


def index_has_ledger(home: Path) -> bool:
    path = home / "index.sqlite3"
    if not path.exists():
        return False
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE name='ledger'").fetchone() is not None
    finally:
        conn.close()


def start_worker(mm: MM, *args: str) -> subprocess.Popen:
    """`mm queue worker` in the background, returned once it holds the role and the index exists."""
    worker = mm.popen("queue", "worker", *args)

    def running() -> bool:
        assert worker.poll() is None, f"the worker exited {worker.returncode}: {worker.communicate()}"
        status = try_queue_status(mm)
        return bool(status and status["committer"]["running"] and index_has_ledger(mm.home))

    try:
        poll(running, "the worker to take the committer role")
    except BaseException:
        stop(worker)
        raise
    return worker


def stop(process: subprocess.Popen, timeout: float = 60.0) -> int:
    """SIGTERM a process we started and wait for it; SIGKILL it if it does not go.

    The bound is generous (a worker just woken by SIGCONT first commits what waited, and
    closes its index and derived vector index): it catches a worker that ignores SIGTERM, not a
    slow one (10 s was once too short in a full run).
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"pid {process.pid} ignored SIGTERM for {timeout:.0f} s")


def communicate_or_dump(process: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """`communicate`, but a process that does not end in time is failed with its thread stacks
    (mm prints them on SIGUSR1), so an intermittent hang names the line it hangs on."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)
        try:
            out, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        raise AssertionError(f"pid {process.pid} did not end within {timeout:.0f} s; its "
                             f"threads:\n{err}") from None


def indexed(mm: MM, notes: Path) -> dict[str, Any]:
    """A home holding `notes`, committed by a lone `mm index` (no worker running)."""
    report = index(mm, notes)
    assert report["committed"] > 0, report
    return report


def hit_files(hits: list[dict[str, Any]]) -> list[str]:
    return [Path(hit["source_file"]).name for hit in hits]


def one_error_line(run: Run) -> str:
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), str(run)
    assert "Traceback" not in run.stderr, str(run)
    return lines[0]


def vec_connect(path: Path) -> Any:
    """A writable connection to the index with sqlite-vec loaded (as store.connect opens it)."""
    import sqlean
    import sqlite_vec

    conn = sqlean.connect(str(path), isolation_level=None, timeout=10)
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.enable_load_extension(False)
    return conn


# -- the command surface -------------------------------------------------------------------


def help_text(*args: str) -> str:
    """`mm ARGS --help` (without the --home that MM appends, which a group does not take)."""
    proc = subprocess.run(mm_command(*args, "--help"), capture_output=True, text=True,
                          env=mm_env(), timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def test_help_lists_every_command_and_the_queue_subcommands(mm: MM) -> None:
    top = help_text()
    for command in ("index", "search", "status", "doctor", "config", "queue"):
        assert command in top, top
    queue = help_text("queue")
    assert "worker" in queue and "status" in queue, queue


def test_read_commands_print_documented_json(mm: MM, notes: Path) -> None:
    indexed(mm, notes)

    status = queue_status(mm)
    assert set(status) >= {"pending", "inflight", "dead_letters", "committer", "active_model", "ledger"}
    assert set(status["committer"]) == {"running", "pid", "host"}
    assert set(status["active_model"]) == {"name", "dim", "fingerprint"}
    assert status["active_model"]["name"] == "hash-384" and status["active_model"]["dim"] == 384
    assert set(status["ledger"]) == {"batches", "committed", "dead_lettered", "skipped"}

    overall = ok(mm("status", "--json")).json()
    assert set(overall) >= {"chunks", "files", "namespaces", "vectors_by_fingerprint",
                            "active_model", "configured_model", "queue"}
    assert overall["files"] == 3 and overall["chunks"] >= 3
    assert overall["vectors_by_fingerprint"] == {status["active_model"]["fingerprint"]: overall["chunks"]}
    assert set(overall["queue"]) == set(status)

    report = doctor(mm)
    assert set(report) == {"ok", "checks", "vectors_by_fingerprint", "warnings"} and report["ok"] is True
    assert report["checks"] and all(set(c) == {"name", "ok", "detail"} for c in report["checks"])

    config = ok(mm("config", "show", "--json")).json()
    assert config["embedding.model"] == {"value": "hash-384", "source": "config.json"}

    hits = search(mm, "Ganymede")
    assert isinstance(hits, list) and hits
    assert {"rank", "source_file", "start_line", "end_line", "content"} <= set(hits[0])


def test_index_json_has_commit_counts_only_when_waiting(mm: MM, notes: Path) -> None:
    enqueued = index(mm, "--no-wait", notes)
    assert set(enqueued) >= INDEX_KEYS and not set(enqueued) & WAIT_KEYS, enqueued
    ok(mm("queue", "worker", "--once"))
    (notes / "extra.md").write_text("# Extra\n\nA fresh note about kayaks.\n")
    waited = index(mm, notes)
    assert set(waited) >= INDEX_KEYS | WAIT_KEYS, waited
    assert waited["committed"] > 0 and waited["dead_lettered"] == 0


# -- configuration -------------------------------------------------------------------------


def test_config_show_json_gives_value_and_source_of_every_key(mm: MM) -> None:
    config = ok(mm("config", "show", "--json")).json()
    assert {"home", "embedding.model", "index.max_file_bytes", "queue.batch_records",
            "search.top_k"} <= set(config)
    for key, entry in config.items():
        assert set(entry) == {"value", "source"}, key
    assert config["home"] == {"value": str(mm.home), "source": "flag --home"}
    assert config["embedding.model"] == {"value": "hash-384", "source": "config.json"}
    assert config["search.top_k"]["source"] == "default"


def test_env_overrides_config_file_and_index_model_flag_overrides_env(mm: MM, notes: Path) -> None:
    env = {"MM_EMBEDDING_MODEL": "hash-384-c"}
    shown = ok(mm("config", "show", "--json", env=env)).json()
    assert shown["embedding.model"] == {"value": "hash-384-c", "source": "env MM_EMBEDDING_MODEL"}

    index(mm, "--no-wait", "--model", "hash-384-b", notes, env=env)
    ok(mm("queue", "worker", "--once", env=env))
    assert queue_status(mm)["active_model"]["name"] == "hash-384-b"


def test_config_show_names_the_queue_backend_and_the_homes_own_queue_name(mm: MM) -> None:
    config = ok(mm("config", "show", "--json")).json()
    assert config["queue.backend"] == {"value": "sqlite", "source": "default"}
    assert config["queue.name"]["value"].startswith("memwal-home-")
    shown = ok(mm("config", "show", "--json", env={"MM_QUEUE_BACKEND": "memory"})).json()
    assert shown["queue.backend"] == {"value": "memory", "source": "env MM_QUEUE_BACKEND"}


def test_an_unknown_queue_backend_exits_2_naming_the_known_ones(mm: MM, notes: Path) -> None:
    run = mm("index", str(notes), env={"MM_QUEUE_BACKEND": "kafka"}, check=2)
    line = one_error_line(run)
    assert "kafka" in line and "sqlite" in line and "MM_QUEUE_BACKEND" in line


BAD_CONFIGS = {
    "unknown key": ('{"embedding": {"modle": "hash-384"}}', "embedding.modle"),
    "invalid JSON": ('{"embedding": {"model": ', "not valid JSON"),
    "unknown model": ('{"embedding": {"model": "no-such-model"}}', "no-such-model"),
    "unknown queue backend": ('{"queue": {"backend": "kafka"}}', "kafka"),
}


@pytest.mark.parametrize("command", [("config", "show", "--json"), ("status", "--json"),
                                     ("queue", "status", "--json")], ids=" ".join)
@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_bad_config_exits_2_with_one_clear_line_and_no_traceback(mm: MM, case: str,
                                                             command: tuple[str, ...]) -> None:
    text, named = BAD_CONFIGS[case]
    (mm.home / "config.json").write_text(text)
    run = mm(*command, check=2)
    assert named in one_error_line(run)
    error = json.loads(run.stdout)["error"]  # --json: the error as JSON on stdout too
    assert error["exit_code"] == 2 and named in error["message"] + error["fix"]
    (mm.home / "config.json").unlink()  # for the after-test doctor


def test_unknown_model_in_environment_exits_2_with_one_clear_line(mm: MM, notes: Path) -> None:
    run = mm("index", str(notes), env={"MM_EMBEDDING_MODEL": "no-such-model"}, check=2)
    line = one_error_line(run)
    assert "MM_EMBEDDING_MODEL" in line and "no-such-model" in line


def test_unknown_option_is_a_usage_error_without_traceback(mm: MM, notes: Path) -> None:
    run = mm("index", "--no-such-option", str(notes), check=None)
    assert "Traceback" not in run.stderr, str(run)
    assert run.code == 2 and "--no-such-option" in run.stderr, str(run)


# -- indexing without a worker -------------------------------------------------------------


def test_lone_index_on_a_fresh_home_commits_and_finds_an_exact_word_at_rank_1(mm: MM, notes: Path) -> None:
    report = indexed(mm, notes)
    assert (report["files"], report["new"], report["skipped"]) == (3, 3, 0)
    assert report["committed"] == report["records_enqueued"] and report["dead_lettered"] == 0
    assert queue_status(mm)["pending"] == 0
    assert hit_files(search(mm, "Ganymede"))[0] == "astronomy.md"
    assert hit_files(search(mm, "risotto"))[0] == "cooking.txt"
    assert hit_files(search(mm, "compost"))[0] == "gardening.md"


def test_second_run_reports_everything_unchanged_and_enqueues_nothing(mm: MM, notes: Path) -> None:
    indexed(mm, notes)
    batches = queue_status(mm)["ledger"]["batches"]
    again = index(mm, notes)
    assert (again["unchanged"], again["new"], again["deleted"]) == (3, 0, 0), again
    assert (again["records_enqueued"], again["batches"], again["committed"]) == (0, 0, 0), again
    assert queue_status(mm)["ledger"]["batches"] == batches


def test_editing_one_file_reindexes_only_that_file(mm: MM, notes: Path) -> None:
    indexed(mm, notes)
    garden = notes / "gardening.md"
    garden.write_text("# Gardening\n\nPlant garlic cloves pointy end up in October.\n")
    stat = garden.stat()
    os.utime(garden, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000_000))
    report = index(mm, notes)
    assert (report["new"], report["unchanged"], report["deleted"]) == (1, 2, 0), report
    assert report["committed"] > 0
    assert hit_files(search(mm, "garlic"))[0] == "gardening.md"
    assert not any("fortnight" in hit["content"] for hit in search(mm, "fortnight"))


def test_deleting_a_file_removes_its_chunks(mm: MM, notes: Path) -> None:
    indexed(mm, notes)
    (notes / "astronomy.md").unlink()
    report = index(mm, notes)
    assert (report["deleted"], report["unchanged"], report["new"]) == (1, 2, 0), report
    assert "astronomy.md" not in hit_files(search(mm, "Ganymede"))
    assert ok(mm("status", "--json")).json()["files"] == 2


# -- the worker ----------------------------------------------------------------------------


def test_index_waits_for_a_running_worker_which_stops_cleanly_on_sigterm(mm: MM, notes: Path) -> None:
    worker = start_worker(mm)
    try:
        report = index(mm, notes)
        assert report["committed"] > 0 and report["dead_lettered"] == 0, report
        status = queue_status(mm)
        assert status["pending"] == 0 and status["inflight"] == 0
        assert status["committer"]["running"] is True
        assert status["committer"]["pid"] == worker.pid
        assert hit_files(search(mm, "Ganymede"))[0] == "astronomy.md"
    finally:
        code = stop(worker)
    assert code == 0, worker.communicate()
    committer = queue_status(mm)["committer"]
    assert committer["running"] is False and committer["pid"] is None


def test_second_worker_exits_3_naming_the_first_ones_pid(mm: MM) -> None:
    first = start_worker(mm)
    try:
        second = mm("queue", "worker", check=3, timeout=60)
        line = one_error_line(second)
        assert f"pid {first.pid}" in line and "another committer" in line
        assert first.poll() is None
    finally:
        assert stop(first) == 0


def test_no_wait_enqueues_and_worker_once_drains_it(mm: MM, notes: Path) -> None:
    report = index(mm, "--no-wait", notes)
    assert report["batches"] >= 1 and report["records_enqueued"] > 0, report
    status = queue_status(mm)
    assert status["pending"] >= 1 and status["ledger"]["batches"] == 0
    assert status["active_model"] is None

    ok(mm("queue", "worker", "--once"))
    status = queue_status(mm)
    assert status["pending"] == 0 and status["inflight"] == 0
    assert status["ledger"]["batches"] >= report["batches"]
    assert status["ledger"]["committed"] == report["records_enqueued"]
    assert status["committer"]["running"] is False
    assert hit_files(search(mm, "Ganymede"))[0] == "astronomy.md"


def test_garbage_in_the_queue_becomes_a_raw_dead_letter_and_later_batches_commit(
        mm: MM, notes: Path, tmp_path: Path) -> None:
    index(mm, "--no-wait", notes)
    garbage = b"\xc1" + os.urandom(63)  # 0xc1 is never valid msgpack
    queue = producer_queue(mm.home)
    queue.put(garbage)
    queue.close()
    later = tmp_path / "later"
    later.mkdir()
    (later / "boats.md").write_text("# Boats\n\nThe catamaran capsized near the lighthouse.\n")
    index(mm, "--no-wait", later)

    ok(mm("queue", "worker", "--once"))
    status = queue_status(mm)
    assert status["pending"] == 0 and status["inflight"] == 0 and status["dead_letters"] == 1
    assert status["ledger"]["batches"] == 3 and status["ledger"]["dead_lettered"] == 1
    conn = sqlite3.connect(f"file:{mm.home / 'index.sqlite3'}?mode=ro", uri=True)
    try:
        letters = [(reason, bytes(raw)) for reason, raw in
                   conn.execute("select reason, raw from dead_letters")]
    finally:
        conn.close()
    assert letters == [("undecodable", garbage)]
    assert hit_files(search(mm, "catamaran"))[0] == "boats.md"


# -- the model gate ------------------------------------------------------------------------


def other_model(how: str, notes: Path) -> tuple[tuple[str, ...], dict[str, str] | None]:
    if how == "flag":
        return ("index", "--model", "hash-384-b", str(notes)), None
    return ("index", str(notes)), {"MM_EMBEDDING_MODEL": "hash-384-b"}


@pytest.mark.parametrize("how", ["flag", "env"])
def test_model_gate_exits_2_naming_both_models_and_enqueues_nothing(
        mm: MM, notes: Path, how: str) -> None:
    indexed(mm, notes)
    (notes / "new.md").write_text("# New\n\nSomething that would need embedding.\n")
    before = queue_status(mm)
    args, env = other_model(how, notes)
    run = mm(*args, env=env, check=2)
    line = one_error_line(run)
    assert "hash-384 " in line and "hash-384-b" in line and "mm embedding-reset" in line
    assert queue_rows(mm.home) == []
    assert queue_status(mm)["ledger"] == before["ledger"]


# -- files that cannot be indexed as they are ----------------------------------------------


def test_skipped_files_are_reported_with_reasons_not_failures(mm: MM, notes: Path) -> None:
    write_config(mm.home, {"embedding": {"model": "hash-384"}, "index": {"max_file_bytes": 2000}})
    (notes / "binary.md").write_bytes(b"# Looks like markdown\n\x00\x01\x02 but holds NULs\n")
    (notes / "huge.md").write_text("# Huge\n\n" + "a very long line of words\n" * 200)
    (notes / "latin1.md").write_bytes("# Caf\xe9\n\nThe xylophone caf\xe9 opens at nine.\n"
                                      .encode("latin-1"))
    run = ok(mm("index", "--json", str(notes)))
    report = run.json()
    assert report["skipped"] == 2, report
    assert report["committed"] > 0
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped_files"]}
    assert reasons == {"binary.md": "binary", "huge.md": "too_large"}
    assert [Path(p).name for p in report["replaced_invalid_utf8"]] == ["latin1.md"]
    lines = run.stderr.splitlines()
    assert any("binary.md" in line and "binary" in line.split("binary.md", 1)[1] for line in lines), run.stderr
    assert any("huge.md" in line and "too_large" in line for line in lines), run.stderr
    assert any("latin1.md" in line and "invalid UTF-8" in line for line in lines), run.stderr
    hits = search(mm, "xylophone")
    assert hit_files(hits)[0] == "latin1.md" and "\ufffd" in hits[0]["content"]


# -- interrupting ------------------------------------------------------------------------


def write_corpus(root: Path, files: int) -> Path:
    root.mkdir()
    for n in range(files):
        paragraphs = "\n\n".join(f"## Part {p}\n\nNote {n} paragraph {p} about topic {n * 7 + p} "
                                 f"with some filler words to embed." for p in range(6))
        (root / f"note-{n:04d}.md").write_text(f"# Note {n}\n\n{paragraphs}\n")
    return root


def pending_rows(home: Path) -> int:
    try:
        return len(queue_rows(home))
    except sqlite3.Error:  # the queue file or its table is not there yet
        return 0


def test_sigint_during_index_exits_130_leaving_only_whole_batches_in_the_queue(
        mm: MM, tmp_path: Path) -> None:
    write_config(mm.home, {"embedding": {"model": "hash-384"}, "queue": {"batch_records": 16}})
    corpus = write_corpus(tmp_path / "corpus", 300)
    process = mm.popen("index", "--no-wait", "--json", str(corpus))
    poll(lambda: pending_rows(mm.home) >= 1 or process.poll() is not None,
         "mm index to enqueue its first batch")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert "Traceback" not in err, err
    if process.returncode == 130:
        assert "interrupted" in err and out == "", err
    else:
        # It finished first. A SIGINT landing while the interpreter exits kills it by the signal
        # (a shell sees 130 all the same); either way its report is whole.
        assert process.returncode in (0, -signal.SIGINT), err
        assert json.loads(out)["files"] == 300
    rows = queue_rows(mm.home)
    for data in rows:
        decode_batch(data)  # raises on a partial batch
    assert queue_inflight(mm.home) == 0
    ok(mm("queue", "worker", "--once"))
    status = queue_status(mm)
    assert status["ledger"]["batches"] == len(rows) and status["ledger"]["dead_lettered"] == 0


def test_sigusr1_prints_every_threads_stack_and_the_command_goes_on(mm: MM, notes: Path) -> None:
    worker = start_worker(mm)
    try:
        worker.send_signal(signal.SIGUSR1)
        index(mm, notes)  # the worker still commits after printing its stacks
    finally:
        stop(worker)
    _, err = worker.communicate()
    assert "Current thread" in err or "Thread 0x" in err, err
    assert "memwal" in err, err  # the frames are ours: where it waited


# -- doctor on a damaged index -------------------------------------------------------------


def corrupt_fingerprint(home: Path) -> None:
    conn = vec_connect(home / "index.sqlite3")
    try:
        conn.execute("UPDATE chunks SET fingerprint = 'hash-384/not-the-active-model' "
                     "WHERE id = (SELECT min(id) FROM chunks)")
    finally:
        conn.close()


def drop_fts_row(home: Path) -> None:
    conn = vec_connect(home / "index.sqlite3")
    try:
        chunk_id, content, heading = conn.execute(
            "SELECT id, content, heading_path FROM chunks ORDER BY id LIMIT 1").fetchone()
        conn.execute("INSERT INTO chunks_fts(chunks_fts, rowid, content, heading_path) "
                     "VALUES('delete', ?, ?, ?)", (chunk_id, content, heading))
    finally:
        conn.close()


@pytest.mark.no_doctor
@pytest.mark.parametrize("damage, failing", [(corrupt_fingerprint, {"single_model"}),
                                             (drop_fts_row, {"counts_agree", "fts_integrity"})],
                         ids=["foreign fingerprint", "missing FTS row"])
def test_doctor_exits_1_on_a_damaged_index_naming_the_failed_check(
        mm: MM, notes: Path, damage: Callable[[Path], None], failing: set[str]) -> None:
    indexed(mm, notes)
    damage(mm.home)
    run = mm("doctor", "--json", check=1)
    report = run.json()
    assert report["ok"] is False
    failed = {check["name"] for check in report["checks"] if not check["ok"]}
    assert failed and failed <= failing | {"fts_integrity"}, report
    assert failed & failing, report


# -- search input --------------------------------------------------------------------------


@pytest.mark.no_doctor  # the index is damaged on purpose at the end
def test_a_plain_search_runs_in_process_without_the_full_command_line(mm: MM, notes: Path) -> None:
    indexed(mm, notes)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "memwal", "search", "Ganymede",
                           "--json", "--home", str(mm.home)],
                          capture_output=True, text=True, env=mm_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert hit_files(json.loads(proc.stdout))[0] == "astronomy.md"
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "memwal.cli.fast" in imported and "typer" not in imported
    # An error of the search itself is handed to the full command line, which reports it.
    (mm.home / "index.sqlite3").write_bytes(b"not a database" * 100)
    failed = mm("search", "Ganymede", check=None)
    assert failed.code != 0 and "Traceback" not in failed.stderr
    assert "index.sqlite3" in failed.stderr


def test_punctuation_only_query_returns_an_empty_list(mm: MM, notes: Path) -> None:
    indexed(mm, notes)
    assert search(mm, "?!... ,;: --- ()") == []


FTS_SYNTAX = ['"foo AND (bar OR', "NEAR(", "*", "Ganymede*", '"', "moons:", "^Jupiter",
              "AND OR NOT", "NEAR(Jupiter moons, 2)", "col:val*"]


def test_fts_syntax_in_a_query_never_errors(mm: MM, notes: Path) -> None:
    indexed(mm, notes)
    for query in FTS_SYNTAX:
        hits = search(mm, query)
        assert isinstance(hits, list), query
        if "Ganymede" in query or "Jupiter" in query:
            assert hit_files(hits)[0] == "astronomy.md", query
