"""Notes written for an agent (the MCP tool `mem_add`), and paths an agent may name.

A note goes to the notes folder (`notes.folder`, default `<home>/notes`), which is always one of
the indexed roots, by an atomic write: a reader (or an indexer) sees the old file or the new one,
never a part. Nothing is ever written or indexed outside the roots: names with `..`, absolute
names, and symlinks that lead out are refused before anything is touched.
"""

from __future__ import annotations

import fcntl
import os
import stat
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from memwal.config import Settings
from memwal.errors import PathError, UsageError
from memwal.safeio import NotRegularFile, open_regular, read_regular, write_atomically

MAX_NOTE_BYTES = 1 << 20
MAX_TITLE_CHARS = 200
MAX_TAGS = 32
_TAG = re.compile(r"^[\w][\w./-]{0,63}$", re.UNICODE)
_SLUG = re.compile(r"[^\w]+", re.UNICODE)
# Characters no title, note name or path may hold: a file system stores most of them, but a note
# would be lost (a NUL makes the file binary to the indexer) or unreadable on a terminal.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def inside_roots(settings: Settings, paths: Iterable[str | Path]) -> list[Path]:
    """The given paths, each resolved (symlinks followed) and checked to lie inside a root.

    A relative path is taken relative to the notes folder. Raises PathError naming the first
    path that is outside every root, or does not exist.
    """
    roots = [root.resolve() for root in settings.roots]
    checked = []
    for given in paths:
        text = str(given)
        if not text.strip() or _CONTROL.search(text):
            raise PathError(f"{given!r} is not a path: it is blank or holds control characters.",
                            "Give a file or folder inside the roots.")
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = settings.notes_folder / path
        real = path.resolve()
        if not any(real == root or root in real.parents for root in roots):
            raise PathError(f"{given} is outside the indexed roots.",
                            f"Give a path inside {', '.join(map(str, settings.roots))} "
                            "(index.roots and the notes folder).")
        if not real.exists():
            raise PathError(f"{given} does not exist.", "Give a file or folder inside the roots.")
        checked.append(real)
    return checked


def note_text(content: str, title: str | None, tags: Sequence[str]) -> str:
    """The markdown of a new note: front-matter tags, a title heading, the content."""
    lines = []
    if tags:
        lines += ["---", f"tags: [{', '.join(tags)}]", "---", ""]
    if title:
        lines += [f"# {title}", ""]
    lines.append(content.strip("\n"))
    return "\n".join(lines) + "\n"


def _checked(content: str, title: str | None, tags: Sequence[str]) -> None:
    if not isinstance(content, str) or not content.strip():
        raise UsageError("the note's content is empty.", "Give the text to remember.")
    if len(content.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
        raise UsageError(f"the note is larger than {MAX_NOTE_BYTES:,} bytes.",
                         "Split it into several notes.")
    if "\x00" in content:
        raise UsageError("the note's content holds a NUL character.", "Remove it.")
    if title is not None and (not title.strip() or _CONTROL.search(title)
                              or len(title) > MAX_TITLE_CHARS):
        raise UsageError(f"the title must be one non-empty line of at most {MAX_TITLE_CHARS} "
                         "characters, without control characters (NUL, tab, escape...).",
                         "Shorten it or remove them, or leave the title out.")
    if len(tags) > MAX_TAGS or not all(isinstance(t, str) and _TAG.match(t) for t in tags):
        raise UsageError(f"tags are at most {MAX_TAGS} words of letters, digits, '.', '/', '_' "
                         "or '-' (up to 64 characters each).", "Fix or drop the tags.")


def _target(settings: Settings, file: str | None, title: str | None) -> tuple[Path, tuple[Path, ...]]:
    """The note's path, and the folders made for it (innermost first)."""
    folder = settings.notes_folder
    if file is None:
        slug = _SLUG.sub("-", (title or "note").lower()).strip("-")[:60] or "note"
        file = f"{time.strftime('%Y-%m-%d')}-{slug}-{time.time_ns() % 10**9:09d}.md"
    relative = Path(file)
    if relative.is_absolute() or ".." in relative.parts or _CONTROL.search(file) \
            or not relative.parts:
        raise PathError(f"{file!r} is not a name inside the notes folder.",
                        "Give a relative name such as 'projects/ideas.md', without '..' or "
                        "control characters.")
    if relative.suffix.lower() not in (".md", ".markdown"):
        raise PathError(f"{file!r} is not a markdown file name.", "End it with .md.")
    target = folder / relative
    # Checked before anything is made: the deepest folder on the way that exists must be inside
    # the notes folder (a symlink out is refused, not followed), or above a notes folder that
    # does not exist yet (then everything below it is ours to make).
    existing = target.parent
    while not os.path.lexists(existing):
        existing = existing.parent
    real_folder = folder.resolve()
    if not (existing.resolve().is_relative_to(real_folder) or
            (not folder.exists() and folder.is_relative_to(existing))):
        raise PathError(f"{file!r} leads out of the notes folder {folder}.",
                        "Give a name inside it; symlinks out are not followed.")
    missing = [p for p in (target.parent, *target.parent.parents) if not os.path.lexists(p)]
    for made in reversed(missing):  # private, as everything memwal makes (0700)
        made.mkdir(mode=0o700, exist_ok=True)
    if not target.parent.resolve().is_relative_to(folder.resolve()):  # changed meanwhile
        raise PathError(f"{file!r} leads out of the notes folder {folder}.",
                        "Give a name inside it; symlinks out are not followed.")
    return target, tuple(missing)


@dataclass(frozen=True)
class WrittenNote:
    """A note just written, with what it replaced, so that refused work can be taken back."""

    path: Path
    previous: bytes | None  # the file's bytes before (None: the file is new)
    written: bytes
    created_folders: tuple[Path, ...]  # folders made for it, innermost first


def write_note(settings: Settings, content: str, *, title: str | None = None,
               tags: Sequence[str] = (), file: str | None = None) -> Path:
    """Write a note into the notes folder, atomically; return its path.

    A new file holds front-matter tags, a `# title` heading and the content. If `file` names an
    existing note, the content is appended to it as a new `## title` section. Raises UsageError
    (exit 2) for empty or oversized content, a bad title or tags, and PathError for a file name
    that would lead outside the notes folder or is not markdown.
    """
    return write_note_undoably(settings, content, title=title, tags=tags, file=file).path


def write_note_undoably(settings: Settings, content: str, *, title: str | None = None,
                        tags: Sequence[str] = (), file: str | None = None) -> WrittenNote:
    """`write_note`, returning what `undo_note` needs to take the write back."""
    tags = tuple(tags)
    _checked(content, title, tags)
    with _folder_lock(settings):
        target, created = _target(settings, file, title)
        try:
            previous = read_regular(target, MAX_NOTE_BYTES * 8)
        except FileNotFoundError:
            previous = None
        except NotRegularFile as exc:
            raise PathError(f"{target} is {exc.kind}.", "Give another file name.") from None
        if previous is None:
            text = note_text(content, title, tags)
        else:
            section = f"## {title}\n\n" if title else ""
            text = previous.decode("utf-8", "replace").rstrip("\n") + \
                f"\n\n{section}{content.strip(chr(10))}\n"
        written = text.encode("utf-8", "surrogatepass")
        write_atomically(target, written, mode=_mode(target))
    return WrittenNote(target, previous, written, created)


def undo_note(settings: Settings, note: WrittenNote) -> None:
    """Take a note's write back (work refused before it was queued must leave no file): the
    previous content returns, a new file and the folders made for it go. A file changed by
    someone else since is left alone."""
    with _folder_lock(settings):
        try:
            if read_regular(note.path, MAX_NOTE_BYTES * 8) != note.written:
                return
        except (OSError, NotRegularFile):
            return
        if note.previous is None:
            note.path.unlink(missing_ok=True)
        else:
            write_atomically(note.path, note.previous, mode=_mode(note.path))
        for folder in note.created_folders:
            try:
                folder.rmdir()
            except OSError:
                break  # not empty (someone else's note arrived): keep it and its parents


def _mode(note: Path) -> int:
    """The mode a note is written with: a new one private (0600), as every file memwal makes; an
    existing one keeps its own (the user's choice)."""
    try:
        return stat.S_IMODE(os.lstat(note).st_mode)
    except OSError:
        return 0o600


class _folder_lock:
    """One writer of the notes folder at a time, across processes (an flock in the home)."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.home / "notes.lock"

    def __enter__(self) -> "_folder_lock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = open_regular(self.path, os.O_RDWR | os.O_CREAT)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
