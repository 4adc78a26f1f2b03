"""Find the files to index under the given roots, and read one found file's text.

Discovery never opens a file: it decides from names, ignore patterns, symlink targets and one
stat per file. Reading is `load_text`, called later per file, because only the bytes tell text
from binary and a file may change or vanish between the walk and the read.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pathspec

from memwal.safeio import NotRegularFile, TooLarge, kind_of, read_regular

SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt")


@dataclass(frozen=True)
class FoundFile:
    """A file to index, as the walk saw it."""

    path: Path  # absolute, resolved
    source_file: str  # str(path): how the index identifies the file
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Skipped:
    """A path not indexed, and why.

    reason is one of "too_large", "binary", "symlink_outside_root", "symlink_loop",
    "unreadable", "not_found", "not_a_regular_file" (a FIFO, socket or device, or a file that
    became a link or one of those since the walk), "unsupported_type" (a file named on the
    command line whose suffix memwal does not index).
    """

    path: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class IgnoredBy:
    """What one rule left out of a walk: files, and folders not walked (their files uncounted).

    `rule` is "suffix" (not a .md, .markdown or .txt file), "index.ignore" or a root's
    ".gitignore" (then `pattern` is the deciding line), or "not_a_regular_file" (a FIFO or
    device named like text).
    """

    rule: str
    pattern: str = ""
    files: int = 0
    folders: int = 0

    def as_json(self) -> dict[str, object]:
        return {"rule": self.rule, "pattern": self.pattern, "files": self.files,
                "folders": self.folders}

    def describe(self) -> str:
        """`3 files by the index.ignore pattern '*.md'`, `2 files by their suffix`."""
        counts = " and ".join(f"{n} {what}{'s' if n != 1 else ''}" for n, what in
                              ((self.files, "file"), (self.folders, "folder")) if n)
        if self.rule == "suffix":
            return f"{counts} by suffix (memwal indexes {', '.join(SUPPORTED_SUFFIXES)} files)"
        if self.rule == "not_a_regular_file":
            return f"{counts} that are not regular files"
        return f"{counts} by the {self.rule} pattern '{self.pattern}'"


@dataclass(frozen=True)
class Discovery:
    """The outcome of one walk over all roots."""

    files: tuple[FoundFile, ...]  # sorted by source_file, each file once
    skipped: tuple[Skipped, ...]  # sorted by path
    ignored: int  # files left out by an ignore pattern or an unsupported suffix
    ignored_by: tuple[IgnoredBy, ...] = ()  # per rule, most first: what `ignored` is made of


@dataclass(frozen=True)
class LoadedText:
    """A file's text, ready to chunk."""

    text: str
    digest: str  # sha256 hex of the raw bytes, BOM included
    replaced: bool  # invalid UTF-8 was decoded to U+FFFD


def discover(roots: Sequence[Path], *, ignore: Sequence[str] = (),
             max_file_bytes: int = 5 * 1024 * 1024) -> Discovery:
    """Walk `roots` (directories or single files) and list the files to index.

    `ignore` holds gitignore-style patterns matched against paths relative to each root, after
    the root's own top-level `.gitignore` (so they can override it); `.git` is never entered and
    ignored directories are not walked (their files are not counted in `ignored`). A root that
    is a file is taken if its suffix is supported, whatever the patterns say. Symlinks are
    followed only to targets inside the (resolved) root; a directory link back to one of its own
    ancestors is a loop, and an alias of a directory already walked is passed over silently
    (its files are already listed).
    """
    walk = _Walk(tuple(ignore), max_file_bytes)
    for root in roots:
        walk.add_root(Path(root))
    return Discovery(
        files=tuple(sorted(walk.found.values(), key=lambda f: f.source_file)),
        skipped=tuple(sorted(set(walk.skipped), key=lambda s: (s.path, s.reason, s.detail))),
        ignored=walk.ignored,
        ignored_by=walk.ignored_by(),
    )


def load_text(found: FoundFile, max_bytes: int | None = None) -> LoadedText | Skipped:
    """Read a found file once: its text (UTF-8, BOM stripped) and digest, or why it can't be indexed.

    The file may have changed since the walk. It is opened without following a final symlink and
    without blocking (a FIFO swapped in would otherwise hang the run), and read only if the
    opened descriptor is a regular file no larger than `max_bytes`.
    """
    data = _read_regular_file(found, max_bytes)
    if isinstance(data, Skipped):
        return data
    digest = hashlib.sha256(data).hexdigest()
    nul = data.find(b"\x00")
    if nul >= 0:
        # Text in any encoding we accept never holds a NUL; UTF-16 and binaries do.
        return Skipped(found.source_file, "binary", f"NUL byte at offset {nul}")
    body = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    try:
        return LoadedText(body.decode("utf-8"), digest, replaced=False)
    except UnicodeDecodeError:
        return LoadedText(body.decode("utf-8", errors="replace"), digest, replaced=True)


def _read_regular_file(found: FoundFile, max_bytes: int | None) -> bytes | Skipped:
    try:
        return read_regular(found.path, max_bytes)
    except NotRegularFile as exc:
        detail = "replaced by a symlink" if exc.kind == "a symlink" else exc.kind
        return Skipped(found.source_file, "not_a_regular_file", detail)
    except TooLarge as exc:
        return Skipped(found.source_file, "too_large", exc.detail)
    except OSError as exc:
        return Skipped(found.source_file, _os_error_reason(exc), str(exc))


def _os_error_reason(exc: OSError) -> str:
    # A path that is gone (or whose parent became a file) is a deletion, not a failure.
    return "not_found" if isinstance(exc, (FileNotFoundError, NotADirectoryError)) else "unreadable"


def _supported(name: str) -> bool:
    return name.lower().endswith(SUPPORTED_SUFFIXES)


class _Walk:
    """Accumulates what the walks over all roots find; a file reached twice is kept once."""

    def __init__(self, ignore: tuple[str, ...], max_file_bytes: int) -> None:
        self.ignore = ignore
        self.max_file_bytes = max_file_bytes
        self.found: dict[str, FoundFile] = {}
        self.skipped: list[Skipped] = []
        self.ignored = 0
        # (rule, pattern) -> [files, folders] it left out
        self.by_rule: dict[tuple[str, str], list[int]] = {}

    def _ignore(self, rule: tuple[str, str], folder: bool = False) -> None:
        if not folder:
            self.ignored += 1
        self.by_rule.setdefault(rule, [0, 0])[folder] += 1

    def ignored_by(self) -> tuple[IgnoredBy, ...]:
        rules = [IgnoredBy(rule, pattern, files, folders)
                 for (rule, pattern), (files, folders) in self.by_rule.items()]
        return tuple(sorted(rules, key=lambda r: (-r.files, -r.folders, r.rule, r.pattern)))

    def add_root(self, root: Path) -> None:
        given = os.path.abspath(root)
        try:
            st = os.stat(given)  # follows a root that is a link: the user named its target
        except OSError as exc:
            self._skip_stat_error(given, exc)
            return
        real = os.path.realpath(given)
        if stat.S_ISDIR(st.st_mode):
            self._walk_dir(real)
        elif not stat.S_ISREG(st.st_mode):
            self.skipped.append(Skipped(given, "not_a_regular_file", kind_of(st.st_mode)))
        elif _supported(given) and _supported(real):
            self._add_file(real, st)
        else:
            # Named on the command line, so the user expects it indexed: say why it is not.
            self.skipped.append(Skipped(given, "unsupported_type",
                                        f"memwal indexes {', '.join(SUPPORTED_SUFFIXES)} files"))

    def _walk_dir(self, root: str) -> None:
        spec = self._spec(root)
        prefix = root if root.endswith(os.sep) else root + os.sep
        visited = {root}
        # Depth-first with an explicit stack: (real directory, path relative to root ending in
        # "/", real paths of the directories above it, itself included).
        stack: list[tuple[str, str, frozenset[str]]] = [(root, "", frozenset({root}))]
        while stack:
            directory, rel_dir, ancestors = stack.pop()
            try:
                with os.scandir(directory) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                self.skipped.append(Skipped(directory, _os_error_reason(exc), str(exc)))
                continue
            subdirs: list[tuple[str, str, frozenset[str]]] = []
            for entry in entries:
                if entry.name == ".git":
                    continue
                rel = rel_dir + entry.name
                if entry.is_symlink():
                    target = self._follow(entry, rel, spec, root, prefix)
                    if target is None:
                        continue
                    real = target
                elif entry.is_dir(follow_symlinks=False):
                    rule = _matched(spec, rel + "/")
                    if rule is not None:
                        self._ignore(rule, folder=True)
                        continue
                    real = entry.path
                else:
                    self._regular_file(entry, rel, spec)
                    continue
                if real in ancestors:
                    self.skipped.append(Skipped(entry.path, "symlink_loop", f"-> {real}"))
                elif real not in visited:  # else an alias of a walked directory: files known
                    visited.add(real)
                    subdirs.append((real, rel + "/", ancestors | {real}))
            # Reversed so the stack pops them in name order: a deterministic walk.
            stack.extend(reversed(subdirs))

    def _regular_file(self, entry: os.DirEntry[str], rel: str, spec: _Rules | None) -> None:
        rule = _SUFFIX if not _supported(entry.name) else _matched(spec, rel)
        if rule is not None:
            self._ignore(rule)
            return
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            self.skipped.append(Skipped(entry.path, _os_error_reason(exc), str(exc)))
            return
        if stat.S_ISREG(st.st_mode):
            self._add_file(entry.path, st)
        else:
            self._ignore(_IRREGULAR)  # a FIFO or device named like text: opening it could block

    def _follow(self, entry: os.DirEntry[str], rel: str, spec: _Rules | None,
                root: str, prefix: str) -> str | None:
        """The real path of a directory link to walk; files behind links are handled here."""
        try:
            st = entry.stat()  # follows the link
        except OSError as exc:
            rule = _matched(spec, rel)
            if rule is not None:
                self._ignore(rule)
            else:
                self._skip_stat_error(entry.path, exc)
            return None
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_dir:
            rule = _matched(spec, rel + "/")
            if rule is not None:
                self._ignore(rule, folder=True)
                return None
        else:
            rule = _SUFFIX if not _supported(entry.name) else _matched(spec, rel)
            if rule is not None:
                self._ignore(rule)
                return None
        target = os.path.realpath(entry.path)
        if target != root and not target.startswith(prefix):
            self.skipped.append(Skipped(entry.path, "symlink_outside_root", f"-> {target}"))
            return None
        if is_dir:
            return target
        if stat.S_ISREG(st.st_mode) and _supported(target):
            self._add_file(target, st)
        else:
            self._ignore(_SUFFIX if stat.S_ISREG(st.st_mode) else _IRREGULAR)
        return None

    def _skip_stat_error(self, path: str, exc: OSError) -> None:
        if exc.errno == errno.ELOOP:
            self.skipped.append(Skipped(path, "symlink_loop", str(exc)))
        elif isinstance(exc, FileNotFoundError) and os.path.islink(path):
            self.skipped.append(Skipped(path, "not_found", f"dangling symlink -> {os.readlink(path)}"))
        else:
            self.skipped.append(Skipped(path, _os_error_reason(exc), str(exc)))

    def _add_file(self, real: str, st: os.stat_result) -> None:
        if real in self.found:
            return
        if st.st_size > self.max_file_bytes:
            self.skipped.append(Skipped(real, "too_large",
                                        f"{st.st_size} bytes > limit {self.max_file_bytes}"))
            return
        self.found[real] = FoundFile(Path(real), real, st.st_size, st.st_mtime_ns)

    def _spec(self, root: str) -> _Rules | None:
        """The root's `.gitignore` then the configured patterns (later lines win); None if none."""
        lines: list[str] = []
        try:
            data = read_regular(os.path.join(root, ".gitignore"), max_bytes=1 << 20)
            lines.extend(data.decode("utf-8", errors="replace").splitlines())
        except OSError:
            pass  # no .gitignore (or unreadable): only the configured patterns apply
        from_gitignore = len(pathspec.GitIgnoreSpec.from_lines(lines).patterns)
        lines.extend(self.ignore)
        if not any(line.strip() and not line.lstrip().startswith("#") for line in lines):
            return None
        return _Rules(pathspec.GitIgnoreSpec.from_lines(lines), from_gitignore)


_SUFFIX = ("suffix", "")
_IRREGULAR = ("not_a_regular_file", "")


class _Rules:
    """One root's ignore patterns, telling which line (of its .gitignore or index.ignore)
    left a path out."""

    def __init__(self, spec: pathspec.PathSpec, from_gitignore: int) -> None:
        self.spec = spec
        self.from_gitignore = from_gitignore  # the first patterns are the .gitignore's

    def match(self, rel: str) -> tuple[str, str] | None:
        """(rule, pattern) that ignores `rel`, or None if it is not ignored."""
        result = self.spec.check_file(rel)
        if not result.include or result.index is None:
            return None
        rule = ".gitignore" if result.index < self.from_gitignore else "index.ignore"
        return rule, str(getattr(self.spec.patterns[result.index], "pattern", ""))


def _matched(rules: _Rules | None, rel: str) -> tuple[str, str] | None:
    return None if rules is None else rules.match(rel)
