"""Progress that means something (issue 27, item 2): the stages `index_paths` reports, how `mm
index`, `mm embedding-reset --mode migrate` and `mm watch` show them (a rich display on a terminal,
plain lines off one, none with --quiet), the summary on stdout, and the note when ignore rules or
suffixes left out every file.

Off a terminal a line is printed at most every MM_PROGRESS_INTERVAL seconds; these tests set it
to 0 (every step) and never look at timing.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import threading
from pathlib import Path

from helpers import MM, mm_command, mm_env, ok, poll, write_config
from memwal import index_paths
from memwal.producer import EMBED_GROUP

EVERY_STEP = {"MM_PROGRESS_INTERVAL": "0"}
STAGE_LINE = re.compile(r"^(loading the model|discovering files|embedding|enqueueing|"
                        r"waiting for the committer)\b")


def long_notes(root: Path, files: int = 3, sections: int = 200) -> Path:
    """Files of `sections` chunks each: more than one embedding call per file."""
    root.mkdir(exist_ok=True)
    for number in range(files):
        (root / f"long-{number}.md").write_text("\n\n".join(
            f"# Section {number}.{part}\n\n" + f"word{part} " * 60 for part in range(sections)))
    return root


def progress_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if STAGE_LINE.match(line)]


# -- the library -------------------------------------------------------------------------------


def test_index_paths_reports_each_stage_and_chunks_within_one_large_file(settings, tmp_path: Path) -> None:
    notes = long_notes(tmp_path / "notes", files=1, sections=3 * EMBED_GROUP)
    steps = []
    report = index_paths(settings, [notes], on_stage=steps.append)
    stages = [step.stage for step in steps]
    order = [stage for number, stage in enumerate(stages) if stage not in stages[:number]]
    assert order == ["model", "discover", "embed", "enqueue", "commit"]
    embedding = [step for step in steps if step.stage == "embed" and step.done]
    # One file of 768 chunks: the count moves three times while that file is embedded.
    assert [step.done for step in embedding][:3] == [EMBED_GROUP, 2 * EMBED_GROUP, 3 * EMBED_GROUP]
    assert all(step.unit == "chunks" and step.rate is not None for step in embedding)
    assert embedding[-1].total == report.chunks_embedded == 3 * EMBED_GROUP
    assert not embedding[-1].estimated
    last = steps[-1]
    assert last.stage == "commit" and last.done == last.total == len(report.batch_ids)
    assert "waiting for the committer" in last.text() and "batches" in last.text()


# -- mm index off a terminal -------------------------------------------------------------------


def test_off_a_terminal_mm_index_prints_a_line_per_stage_with_chunk_counts(
        mm: MM, tmp_path: Path) -> None:
    notes = long_notes(tmp_path / "notes")
    run = ok(mm("index", str(notes), env=EVERY_STEP))
    lines = progress_lines(run.stderr)
    assert any(line.startswith("loading the model: hash-384") for line in lines), run.stderr
    assert any(line.startswith("discovering files: 3 files found") for line in lines), run.stderr
    assert any(re.match(r"embedding: [\d,]+ of (about )?[\d,]+ chunks \(\d of 3 files\), "
                        r"[\d.,]+ chunks/s", line) for line in lines), run.stderr
    assert "embedding: 600 of 600 chunks (3 of 3 files)" in run.stderr
    assert any(line.startswith("enqueueing: ") and "batches" in line for line in lines)
    assert any(re.match(r"waiting for the committer: \d+ of \d+ batches", line)
               for line in lines), run.stderr
    assert not progress_lines(run.stdout), "progress goes to stderr"


def test_the_summary_of_mm_index_goes_to_stdout_so_a_redirect_keeps_it(
        home: Path, notes: Path, tmp_path: Path) -> None:
    log = tmp_path / "log"
    with log.open("w") as out:
        proc = subprocess.run(mm_command("index", str(notes), "--home", str(home)), stdout=out,
                              stderr=subprocess.PIPE, text=True, env=mm_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().startswith("3 files: 3 new or changed"), log.read_text()
    assert "new or changed" not in proc.stderr


def test_quiet_prints_no_progress_and_no_info_lines(mm: MM, tmp_path: Path) -> None:
    notes = long_notes(tmp_path / "notes")
    run = ok(mm("index", "--quiet", str(notes), env=EVERY_STEP))
    assert run.stderr == "", run.stderr
    assert run.stdout.startswith("3 files: 3 new or changed")
    run = ok(mm("index", "-q", "--json", "--force", str(notes), env=EVERY_STEP))
    assert run.stderr == "" and run.json()["chunks_embedded"] == 600


def test_json_keeps_stdout_pure_while_progress_goes_to_stderr(mm: MM, tmp_path: Path) -> None:
    notes = long_notes(tmp_path / "notes")
    run = ok(mm("index", "--json", str(notes), env=EVERY_STEP))
    report = json.loads(run.stdout)  # the whole of stdout is one JSON document
    assert report["chunks_embedded"] == 600 and report["ignored_note"] is None
    assert progress_lines(run.stderr), "progress is still shown, on stderr"


def test_a_folder_whose_files_are_all_ignored_says_why_and_how_to_change_it(
        mm: MM, home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "drafts").mkdir(parents=True)
    (folder / "a.md").write_text("# A\n\ntext\n")
    (folder / "b.md").write_text("# B\n\ntext\n")
    (folder / "drafts" / "c.md").write_text("# C\n\ntext\n")
    (folder / "notes.rst").write_text("Title\n=====\n")
    write_config(home, {"embedding": {"model": "hash-384"},
                        "index": {"ignore": ["*.md", "drafts/"]}})
    run = ok(mm("index", str(folder)))
    (note,) = [line for line in run.stderr.splitlines() if "nothing to index" in line]
    assert note.startswith("warning: nothing to index under " + str(folder.resolve()))
    assert "2 files by the index.ignore pattern '*.md'" in note
    assert "1 folder by the index.ignore pattern 'drafts/'" in note
    assert "1 file by suffix" in note and "index.ignore" in note.split("To index them")[1]
    report = ok(mm("index", "--json", str(folder))).json()
    assert report["files"] == 0 and "index.ignore pattern '*.md'" in report["ignored_note"]
    assert {"rule": "index.ignore", "pattern": "*.md", "files": 2, "folders": 0} in report["ignored"]
    assert {"rule": "suffix", "pattern": "", "files": 1, "folders": 0} in report["ignored"]
    # A folder with something to index gets no note, whatever was ignored beside it.
    (folder / "c.txt").write_text("indexable\n")
    report = ok(mm("index", "--json", str(folder))).json()
    assert report["files"] == 1 and report["ignored_note"] is None


def test_a_gitignore_that_leaves_out_everything_is_named(mm: MM, tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / ".gitignore").write_text("*.txt\n")
    (folder / "a.txt").write_text("text\n")
    report = ok(mm("index", "--json", str(folder))).json()
    assert "the .gitignore pattern '*.txt'" in report["ignored_note"]
    assert "change the folder's .gitignore" in report["ignored_note"]


# -- on a terminal -------------------------------------------------------------------------


def test_on_a_terminal_mm_index_draws_chunks_and_a_rate(home: Path, tmp_path: Path) -> None:
    notes = long_notes(tmp_path / "notes")
    leader, follower = pty.openpty()
    env = mm_env({**EVERY_STEP, "COLUMNS": "160", "LINES": "40", "TERM": "xterm"})
    proc = subprocess.Popen(mm_command("index", str(notes), "--home", str(home)),
                            stdin=follower, stdout=subprocess.PIPE, stderr=follower, env=env)
    os.close(follower)
    drawn = b""
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        drawn += data
    os.close(leader)
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert proc.wait(timeout=120) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn.decode(errors="replace"))
    frames = text.replace("\r\n", "\r").split("\r")
    assert any(re.search(r"embedding .* [\d,]+ of (about )?[\d,]+ chunks .* [\d.,]+ chunks/s",
                         frame) for frame in frames), text[-2000:]
    assert "━" in text  # the bar
    assert out.startswith("3 files: 3 new or changed")  # the summary, on stdout


# -- the migration and the watcher -------------------------------------------------------------


def test_migrate_shows_its_progress_off_a_terminal_and_its_result_on_stdout(
        mm: MM, home: Path, tmp_path: Path) -> None:
    notes = long_notes(tmp_path / "notes", files=2, sections=20)
    ok(mm("index", str(notes)))
    run = ok(mm("embedding-reset", "--mode", "migrate", env={
        **EVERY_STEP, "MM_EMBEDDING_MODEL": "hash-384-b"}))
    assert "starting the migration to hash-384-b" in run.stderr
    assert re.search(r"^migrating to hash-384-b: \d+ of 40 chunks", run.stderr, re.M), run.stderr
    assert run.stdout.startswith("migrated to hash-384-b"), run
    quiet = ok(mm("embedding-reset", "--mode", "migrate", "--quiet",
                  env={**EVERY_STEP, "MM_EMBEDDING_MODEL": "hash-384-b"}))
    assert quiet.stderr == "" and "nothing to migrate" in quiet.stdout


def test_watch_shows_the_progress_of_its_passes(mm: MM, tmp_path: Path) -> None:
    notes = long_notes(tmp_path / "notes", files=1, sections=20)
    proc = mm.popen("watch", str(notes), env=EVERY_STEP)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")),
                              daemon=True)
    reader.start()
    try:
        poll(lambda: any(line.startswith("embedding: 20 of 20 chunks") for line in list(lines)),
             "the watcher's first pass to show its embedding")
        assert any(line.startswith("loading the model: hash-384") for line in list(lines))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        reader.join(timeout=60)
