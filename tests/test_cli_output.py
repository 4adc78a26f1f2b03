"""Output for the people at the keyboard (issue 27, items 1 and 5): tables that fit an 80-column
terminal without cutting what a reader needs (a hit's file name and lines, a dead letter's
reason and model), `--help` that shows flags as flags, one-line usage errors, unset values
shown alike, ISO 8601 times next to the epoch floats in `--json`, and a Ctrl-C that says
nothing was lost and how to go on.

Every run is the real `mm` in a subprocess with `COLUMNS=80` (rich sizes its tables by it, as a
terminal would).
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from helpers import (
    MM, Run, batch, mm_command, mm_env, ok, poll, producer_queue, queue_rows, upsert,
    write_small_corpus,
)
from memwal.localsearch import VERSION, ask
from memwal.records import encode_batch
from test_cli_e2e import communicate_or_dump, start_worker, stop
from test_mcp import HttpServer

NARROW = {"COLUMNS": "80"}
ROOT = Path(__file__).resolve().parent.parent


def deep_notes(tmp_path: Path) -> Path:
    """The test corpus four folders down a long path: the full `where` of a hit is far wider
    than its column at 80 columns."""
    return write_small_corpus(
        tmp_path / "a-folder-with-a-rather-long-name" / "projects" / "memwal-notes" / "notes")


def fits(run: Run, width: int = 80) -> str:
    """The run's stdout, once every line of it is known to fit `width` columns."""
    for line in run.stdout.splitlines():
        assert len(line) <= width, f"a line wider than {width} columns:\n{line}\n\n{run}"
    return run.stdout


def assert_every_hit_located(run: Run, hits: list[dict[str, Any]]) -> None:
    shown = fits(run)
    assert hits, str(run)
    for hit in hits:
        where = f"{Path(hit['source_file']).name}:{hit['start_line']}-{hit['end_line']}"
        assert where in shown, f"{where} is not shown whole:\n{shown}"
    assert "…" in shown, "the paths are long enough to be shortened at 80 columns"


def fingerprints_distinguishable(text: str, fingerprints: set[str]) -> None:
    """Each fingerprint is shown with its model name and at least 8 hex digits."""
    for fingerprint in fingerprints:
        model, _, digest = fingerprint.rpartition("/")
        assert re.search(re.escape(f"{model}/{digest[:8]}"), text), (
            f"{fingerprint} is not shown as {model}/{digest[:8]}…:\n{text}")


# -- 1. output that fits -------------------------------------------------------------------


def test_search_at_80_columns_shows_each_hits_file_name_and_lines_in_process_and_served(
        mm: MM, tmp_path: Path) -> None:
    notes = deep_notes(tmp_path)
    ok(mm("index", str(notes)))
    query = "moons tomatoes risotto compost"
    hits = ok(mm("search", query, "--json", env=NARROW)).json()
    assert len(hits) == 3  # one chunk a file
    assert_every_hit_located(ok(mm("search", query, env=NARROW)), hits)

    server = HttpServer(mm.home)  # the fast path: the running server answers, same output
    try:
        before = ask(mm.home, {"v": VERSION, "stats": True})["answered"]
        served = ok(mm("search", query, env=NARROW))
        assert ask(mm.home, {"v": VERSION, "stats": True})["answered"] == before + 1
    finally:
        server.stop()
    assert_every_hit_located(served, hits)
    assert served.stdout == mm("search", query, env=NARROW).stdout


def dead_letter_home(mm: MM, tmp_path: Path, count: int = 3) -> None:
    """An index of hash-384, and `count` chunks of hash-384-b from deep paths: dead letters."""
    ok(mm("index", str(deep_notes(tmp_path))))
    folder = tmp_path / "another-folder-with-a-long-name" / "exported" / "from" / "elsewhere"
    queue = producer_queue(mm.home)
    try:
        queue.put(encode_batch(batch(*(
            upsert(f"text {n}", model="hash-384-b", source=str(folder / f"letter-{n}.md"),
                   start=10 + n) for n in range(count)))))
    finally:
        queue.close()
    ok(mm("queue", "worker", "--once"))


def test_dead_letters_at_80_columns_keep_reason_model_and_file_name_whole(
        mm: MM, tmp_path: Path) -> None:
    dead_letter_home(mm, tmp_path)
    rows = ok(mm("queue", "dead-letters", "list", "--json")).json()
    assert len(rows) == 3
    shown = fits(ok(mm("queue", "dead-letters", "list", env=NARROW)))
    assert "fingerprin…" not in shown and "fingerprint_mismatch" in shown
    headers = shown.splitlines()[0].split()
    assert "fingerprint" in headers and "reason" in headers, shown
    for row in rows:
        assert f"{Path(row['source_file']).name}:{row['start_line']}" in shown, shown
    fingerprints_distinguishable(shown, {row["fingerprint"] for row in rows})
    summary = shown.split("summary", 1)[1]
    fingerprints_distinguishable(summary, {row["fingerprint"] for row in rows})
    assert "fingerprint_mismatch" in summary and " 3" in summary


def test_status_lines_at_80_columns_keep_paths_and_fingerprints_whole(mm: MM, tmp_path: Path) -> None:
    ok(mm("index", str(deep_notes(tmp_path))))
    state = ok(mm("status", "--json")).json()
    fingerprint = state["active_model"]["fingerprint"]
    for args in (("status",), ("queue", "status")):
        shown = ok(mm(*args, env=NARROW)).stdout
        assert fingerprint in shown, shown
    assert str(mm.home) in ok(mm("status", env=NARROW)).stdout


def test_config_show_at_80_columns_shows_every_value_whole(mm: MM) -> None:
    described = ok(mm("config", "show", "--json")).json()
    shown = fits(ok(mm("config", "show", env=NARROW)))
    for key, entry in described.items():
        value = entry["value"]
        if isinstance(value, str) and value and " " not in value and len(value) < 40:
            assert value in shown, (key, value, shown)


@pytest.mark.parametrize("model", ["hash-384", pytest.param("default", marks=pytest.mark.integration)])
def test_the_readme_quick_start_at_80_columns_shows_each_hits_file_name(
        tmp_path: Path, model: str) -> None:
    """The quick start's two `mm` commands, as the README writes them, run from a checkout (a
    copy of docs/ in a deep temporary folder) with the default model (and, quicker, hash-384)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("```", 2)[1]
    commands = [shlex.split(part.strip()) for part in quick.split("&&")
                if part.strip().startswith(".venv/bin/mm ")]
    assert [c[1] for c in commands] == ["index", "search"], quick
    checkout = tmp_path / "src" / "github.com" / "someone" / "memwal"
    checkout.mkdir(parents=True)
    subprocess.run(["cp", "-r", str(ROOT / "docs"), str(checkout / "docs")], check=True)
    env = mm_env({**NARROW, **({"MM_EMBEDDING_MODEL": model} if model != "default" else {})})
    runs = []
    for command in commands:
        proc = subprocess.run(mm_command(*command[1:]), cwd=checkout, env=env, text=True,
                              capture_output=True, timeout=900)
        runs.append(ok(Run(tuple(command[1:]), proc.returncode, proc.stdout, proc.stderr)))
    proc = subprocess.run(mm_command(*commands[1][1:], "--json"), cwd=checkout, env=env,
                          text=True, capture_output=True, timeout=300)
    hits = Run(("search", "--json"), proc.returncode, proc.stdout, proc.stderr).json()
    assert len(hits) == 10
    shown = fits(runs[1])
    for hit in hits:
        assert Path(hit["source_file"]).name in shown, (hit["source_file"], shown)
        assert f"{Path(hit['source_file']).name}:{hit['start_line']}-{hit['end_line']}" in shown


@pytest.mark.parametrize("width, shown", [
    (80, "/tmp/pytest-of-root/pytest-88/popen-gw0/notes/astronomy.md:1-3"),
    (40, "/tmp/…/popen-gw0/notes/astronomy.md:1-3"),
    (30, "/tmp/…/notes/astronomy.md:1-3"),
    (20, "/…/astronomy.md:1-3"),
    (12, "…nomy.md:1-3"),  # narrower than the file name: its end is kept, never cut off
])
def test_a_path_loses_its_middle_first_and_its_end_never(width: int, shown: str) -> None:
    from memwal.cli.output import shorten_path

    assert shorten_path("/tmp/pytest-of-root/pytest-88/popen-gw0/notes/astronomy.md:1-3",
                        width) == shown


def test_a_fingerprint_keeps_its_model_and_at_least_8_hex_digits() -> None:
    from memwal.cli.output import shorten_fingerprint

    fingerprint = "hash-384/6edaaed9962a5e471d3183cf"
    assert shorten_fingerprint(fingerprint, 40) == fingerprint
    assert shorten_fingerprint(fingerprint, 24) == "hash-384/6edaaed9962a5e…"
    assert shorten_fingerprint(fingerprint, 5) == "hash-384/6edaaed9…"


# -- 5. help and edges ---------------------------------------------------------------------


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of `mm`, as the words that name it."""
    import typer

    from memwal.cli.app import app

    found: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        found.append(path)
        for name, child in getattr(command, "commands", {}).items():
            walk(child, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def test_help_shows_boolean_flags_as_flags_for_every_command() -> None:
    for path in command_paths():
        proc = subprocess.run(mm_command(*path, "--help"), capture_output=True, text=True,
                              env=mm_env(NARROW), timeout=60)
        assert proc.returncode == 0, (path, proc.stderr)
        assert "<bool>" not in proc.stdout and "BOOLEAN" not in proc.stdout, (path, proc.stdout)
    index_help = subprocess.run(mm_command("index", "--help"), capture_output=True, text=True,
                                env=mm_env(NARROW), timeout=60).stdout
    assert re.search(r"^\s+--force\s+Re-read", index_help, re.MULTILINE), index_help
    assert re.search(r"^\s+--json\s+Print JSON", index_help, re.MULTILINE), index_help


@pytest.mark.parametrize("args, named", [
    (("search", "x", "-k", "0"), "--top-k"),
    (("search", "x", "--top-k", "many"), "--top-k"),
    (("index", "--no-such-option", "."), "--no-such-option"),
    (("search",), "query"),
    (("queue", "dead-letters", "show", "abc"), "letter_id"),
    (("no-such-command",), "no-such-command"),
], ids=lambda value: " ".join(value) if isinstance(value, tuple) else None)
def test_a_usage_error_is_one_line_on_stderr_with_exit_2(
        mm: MM, args: tuple[str, ...], named: str) -> None:
    run = mm(*args, check=None)
    assert run.code == 2 and run.stdout == "", str(run)
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), str(run)
    assert named in lines[0] and "--help" in lines[0], str(run)


def test_no_arguments_still_prints_the_help(mm: MM) -> None:
    for args in ((), ("queue",)):
        proc = subprocess.run(mm_command(*args), capture_output=True, text=True, env=mm_env(),
                              timeout=60)
        assert "Usage: mm" in proc.stdout + proc.stderr and "Commands" in proc.stdout + proc.stderr


def test_unset_values_are_blank_in_text_and_null_in_json(mm: MM) -> None:
    described = ok(mm("config", "show", "--json")).json()
    assert described["queue.url"]["value"] is None and described["embedding.url"]["value"] is None
    shown = ok(mm("config", "show", env=NARROW)).stdout
    assert "None" not in shown, shown
    row = next(line for line in shown.splitlines() if line.split()[:1] == ["queue.url"])
    assert row.split() == ["queue.url", "default"], row


def iso_matches(document: dict[str, Any], key: str) -> None:
    epoch, iso = document[key], document[f"{key}_iso"]
    assert isinstance(epoch, float) and isinstance(iso, str), (key, document)
    assert abs(datetime.fromisoformat(iso).timestamp() - epoch) < 0.001, (epoch, iso)
    assert iso.endswith("Z") or iso.endswith("+00:00"), iso


def test_json_times_carry_iso_8601_next_to_the_epoch_fields(mm: MM, tmp_path: Path) -> None:
    dead_letter_home(mm, tmp_path, count=1)
    queue = ok(mm("queue", "status", "--json")).json()
    iso_matches(queue, "last_commit_at")
    status = ok(mm("status", "--json")).json()
    iso_matches(status["queue"], "last_commit_at")
    keys = list(status["queue"])
    assert keys.index("last_commit_at_iso") == keys.index("last_commit_at") + 1
    (row,) = ok(mm("queue", "dead-letters", "list", "--json")).json()
    iso_matches(row, "enqueued_at")
    iso_matches(row, "dead_lettered_at")
    shown = ok(mm("queue", "dead-letters", "show", str(row["id"]), "--json")).json()
    iso_matches(shown, "dead_lettered_at")
    assert shown["replayed_at"] is None and shown["replayed_at_iso"] is None


def test_ctrl_c_says_nothing_was_lost_and_to_run_the_same_command_again(
        mm: MM, tmp_path: Path) -> None:
    notes = deep_notes(tmp_path)
    ok(mm("index", str(notes)))
    (notes / "new.md").write_text("# New\n\nA note written while the committer was stopped.\n")
    worker = start_worker(mm)
    worker.send_signal(signal.SIGSTOP)  # holds the role, commits nothing: mm index waits
    try:
        process = mm.popen("index", str(notes))
        poll(lambda: queue_rows(mm.home) or process.poll() is not None, "the batch to be enqueued")
        process.send_signal(signal.SIGINT)
        out, err = communicate_or_dump(process, timeout=60)
    finally:
        worker.send_signal(signal.SIGCONT)
        stop(worker)
    assert process.returncode == 130 and "Traceback" not in err, err
    (line,) = err.splitlines()[-1:]
    assert "nothing was lost" in line and "run the same command again" in line, err
    again = ok(mm("index", str(notes), "--json")).json()  # the same command: it finishes
    assert again["files"] == 4 and again["dead_lettered"] == 0
    assert ok(mm("search", "committer was stopped", "--json")).json()[0]["source_file"].endswith("new.md")

