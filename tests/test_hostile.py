"""Hostile notes and agent input (issue 23): text from notes is inert on a terminal, and input that
cannot be stored is refused before anything is made on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import MM, ok
from memwal.config import load_settings
from memwal.errors import PathError, UsageError
from memwal.notes import write_note

# A clipboard write (OSC 52), a window title, a screen clear, a bell, a one-byte CSI, and a
# right-to-left override: what a note may hold and a terminal would obey.
HOSTILE = ("clip \x1b]52;c;ZWNobyBwd25lZA==\x07 title \x1b]0;owned\x07 clear \x1b[2J bell \x07 "
           "csi \x9b31m rtl \u202e end")
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def test_escape_sequences_in_a_note_reach_no_terminal_but_json_keeps_them(
        mm: MM, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "evil\x1b[2J.md").write_text(f"# Heading \x1b]0;x\x07\n\n{HOSTILE}\n")
    ok(mm("index", str(notes)))
    for args in (("search", "clip"), ("status",), ("queue", "status"),
                 ("queue", "dead-letters", "list")):
        run = ok(mm(*args))
        for raw in RAW:
            assert raw not in run.stdout and raw not in run.stderr, (args, raw, run)
    shown = ok(mm("search", "clip")).stdout
    assert "\\x1b]52;c;" in shown and "\\u202e" in shown  # visible, escaped
    (hit,) = ok(mm("search", "clip", "--json")).json()
    assert HOSTILE in hit["content"]  # --json stays exact


def test_an_error_naming_a_hostile_path_is_inert_too(mm: MM, tmp_path: Path) -> None:
    run = mm("index", str(tmp_path / "gone\x1b]0;owned\x07[bold]"), check=2)
    assert "\x1b" not in run.stderr and "\x07" not in run.stderr
    assert "\\x1b]0;owned\\x07[bold]" in run.stderr  # shown, and not taken as markup


@pytest.mark.parametrize("title", ["a\x00b", "tab\there", "esc\x1b[2J", "line\nbreak"])
def test_a_title_with_control_characters_is_refused_and_nothing_is_written(
        home: Path, title: str) -> None:
    settings = load_settings(home, environ={})
    with pytest.raises(UsageError):
        write_note(settings, "content", title=title)
    assert not settings.notes_folder.exists()


@pytest.mark.parametrize("name", ["sub/a\x00b.md", "a\x1b.md", "new\nline.md"])
def test_a_note_name_with_control_characters_is_refused(home: Path, name: str) -> None:
    settings = load_settings(home, environ={})
    with pytest.raises(PathError):
        write_note(settings, "content", file=name)
    assert not settings.notes_folder.exists()


def test_a_note_name_through_a_link_out_creates_nothing_outside(home: Path, tmp_path: Path) -> None:
    settings = load_settings(home, environ={})
    outside = tmp_path / "outside"
    outside.mkdir()
    settings.notes_folder.mkdir(parents=True)
    (settings.notes_folder / "link").symlink_to(outside)
    with pytest.raises(PathError):
        write_note(settings, "content", file="link/sub/x.md")
    assert list(outside.iterdir()) == []


def test_a_queue_row_with_a_priority_never_jumps_ahead_of_older_rows(home: Path) -> None:
    """huey's SQLite table has a priority column; a row written with one by another program is
    still taken in position order."""
    import sqlite3

    from helpers import producer_queue
    from memwal.queue import Role, open_queue

    settings = load_settings(home, environ={})
    queue = producer_queue(home)
    first, second = queue.put(b"first"), queue.put(b"second")
    queue.close()
    with sqlite3.connect(settings.queue_path) as conn:
        conn.execute("insert into task (queue, data, priority) values (?, ?, 100)",
                     (settings.queue_name, b"pushy"))
    committer = open_queue(settings, Role.COMMITTER)
    try:
        assert committer.oldest().position == first
        assert [d.data for d in committer.messages()] == [b"first", b"second", b"pushy"]
        assert [d.position for d in committer.take_many(2, 1 << 20)] == [first, second]
        assert [d.data for d in committer.take_many(5, 1 << 20)] == [b"pushy"]
    finally:
        committer.close()


def test_mcp_over_stdio_answers_every_malformed_line_with_a_parse_error(mm: MM) -> None:
    import json
    import select
    import subprocess

    from helpers import mm_command, mm_env

    server = subprocess.Popen(mm_command("mcp", "--home", str(mm.home)), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=mm_env())

    def exchange(line: bytes) -> dict:
        assert server.stdin is not None and server.stdout is not None
        server.stdin.write(line + b"\n")
        server.stdin.flush()
        ready, _, _ = select.select([server.stdout], [], [], 120)  # bounded: never a hang
        assert ready, f"no answer to {line!r}"
        return json.loads(server.stdout.readline())

    try:
        for line in (b"not json", b"[1, 2]", b"\xed\xa0\x80", b'{"jsonrpc": "2.0", "id": '):
            reply = exchange(line)
            assert reply["id"] is None and reply["error"]["code"] == -32700, (line, reply)
        hello = exchange(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}).encode())
        assert hello["id"] == 7 and hello["result"]["serverInfo"]["name"] == "memwal"
    finally:
        assert server.stdin is not None
        server.stdin.close()
        assert server.wait(timeout=60) == 0
