"""The docs say what is true: every page they cite is in the repository, and the home-folder
table of docs/operations.md lists exactly what a home holds after `mm index`, `mm serve` (a note
added through it) and `mm watch`, every file of it private (0600) and every folder 0700."""

from __future__ import annotations

import os
import re
import signal
import stat
from pathlib import Path

import anyio

from helpers import MM, poll, write_config
from test_mcp import HttpServer, call, http_session

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "docs" / "operations.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_every_page_the_docs_cite_is_in_the_repository() -> None:
    missing = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", text):  # links
            if not (page.parent / target).is_file():
                missing.append(f"{page.relative_to(ROOT)} links {target}")
        for name in re.findall(r"(?<![\w/.(-])([A-Z][A-Z_-]+\.md)\b", text):  # DESIGN.md
            if not (page.parent / name).is_file() and not (ROOT / name).is_file():
                missing.append(f"{page.relative_to(ROOT)} cites {name}")
    assert not missing, missing


def home_table() -> dict[str, bool]:
    """The names in the home-folder table of docs/operations.md, each with whether it is only
    there sometimes (`only ...`, `optional`, a database's `-wal` and `-shm` while it is open)."""
    section = OPERATIONS.read_text(encoding="utf-8").split("## The home folder", 1)[1]
    rows = [line for line in section.split("\n\n")[2].splitlines() if line.startswith("| `")]
    names: dict[str, bool] = {}
    for row in rows:
        first, what = row.split(" | ")[0].lstrip("| "), row.split(" | ")[1]
        main, *companions = re.findall(r"`([^`]+)`", first)
        names[main] = what.startswith(("only", "optional"))
        for suffix in companions:
            names[main + suffix] = True
    return names


def entries(home: Path) -> set[str]:
    """What the home holds at its top (folders with a trailing slash)."""
    return {p.name + "/" if p.is_dir() and not p.is_symlink() else p.name for p in home.iterdir()}


def modes(home: Path) -> dict[str, str]:
    """Every file and folder under the home whose mode is not private, with its mode."""
    wrong = {}
    for folder, dirs, files in os.walk(home):
        for name in dirs + files:
            path = Path(folder) / name
            st = path.lstat()
            if path == home / "config.json":
                continue  # the test wrote it, as a user would: its mode is the user's
            want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            if stat.S_IMODE(st.st_mode) != want:
                wrong[str(path.relative_to(home))] = f"{stat.S_IMODE(st.st_mode):04o}"
    return wrong


async def test_the_home_table_lists_what_a_home_holds_and_everything_in_it_is_private(
        mm: MM, notes: Path) -> None:
    # A small vectors.tail_bound: the derived vector graph is made with a few notes.
    write_config(mm.home, {"embedding": {"model": "hash-384"},
                           "vectors": {"merge_at": 1, "tail_bound": 1}})
    table, seen = home_table(), set()

    def look(when: str) -> None:
        held = entries(mm.home)
        assert held <= set(table), f"after {when}, the table lacks {held - set(table)}"
        assert not modes(mm.home), f"after {when}: {modes(mm.home)}"
        seen.update(held)

    umask = os.umask(0o022)  # the usual umask: what memwal makes must be private all the same
    try:
        mm("index", str(notes))
        look("mm index")
        server = HttpServer(mm.home, "--worker")
        try:
            poll(lambda: (mm.home / "serve.sock").exists(), "serve.sock")
            with anyio.fail_after(120):
                async with http_session(server.url) as session:
                    added = await call(session, "mem_add", content="Gulls at dawn.", wait=True)
            assert Path(added["file"]).parent == mm.home / "notes"
            look("mm serve and a mem_add")
        finally:
            server.stop()
        look("mm serve stopped")
        watcher = mm.popen("watch", str(notes))
        try:
            poll(lambda: list((mm.home / "watchers").glob("*.json")), "the watcher's status")
            look("mm watch")
        finally:
            watcher.send_signal(signal.SIGTERM)
            watcher.communicate(timeout=60)
        look("mm watch stopped")
    finally:
        os.umask(umask)
    assert {"serve.sock", "notes/", "notes.lock", "vectors/", "watchers/"} <= seen
    always = {name for name, sometimes in table.items() if not sometimes}
    assert always <= entries(mm.home), f"the table says the home holds {always - entries(mm.home)}"


def test_a_note_appended_to_keeps_its_owners_mode(mm: MM) -> None:
    import memwal

    settings = memwal.load_settings(mm.home, environ={})
    path = memwal.write_note(settings, "first", title="mine")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o640)  # the owner's choice
    memwal.write_note(settings, "second", file=path.name)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and "second" in path.read_text()
