"""Opening files that someone else may have swapped: never follow a final symlink, never block.

Notes change between the walk and the read, and the home may hold a planted link or FIFO. Every
file memwal reads or creates itself goes through here: opened with O_NOFOLLOW (a link is refused,
not followed to its target) and O_NONBLOCK (a FIFO or device cannot hang the process), then
checked to be a regular file on the opened descriptor, so no check-then-open race remains.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from urllib.parse import quote

_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class NotRegularFile(OSError):
    """The path is a symlink, FIFO, socket, device or folder; `kind` says which."""

    def __init__(self, path: str | Path, kind: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file ({kind})", str(path))
        self.kind = kind


class TooLarge(OSError):
    """The file is larger than the caller accepts."""

    def __init__(self, path: str | Path, detail: str) -> None:
        super().__init__(errno.EFBIG, detail, str(path))
        self.detail = detail


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | Path, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """A descriptor of the regular file at `path` (created with `mode` if O_CREAT is in `flags`).

    Raises NotRegularFile if the final component is a symlink or anything but a regular file,
    and OSError as os.open does otherwise.
    """
    try:
        fd = os.open(path, flags | _FLAGS, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):  # O_NOFOLLOW met a symlink
            raise NotRegularFile(path, "a symlink") from None
        if exc.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise NotRegularFile(path, "a FIFO") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularFile(path, kind_of(st.st_mode))
    return fd


def read_regular(path: str | Path, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file, at most `max_bytes` (TooLarge past that, even if it grows)."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if max_bytes is not None and size > max_bytes:
            raise TooLarge(path, f"{size} bytes > limit {max_bytes}")
        limit = None if max_bytes is None else max_bytes + 1
        blocks, total = [], 0
        while block := os.read(fd, 1 << 20 if limit is None else min(1 << 20, limit - total)):
            blocks.append(block)
            total += len(block)
            if limit is not None and total >= limit:
                raise TooLarge(path, f"grew past the limit {max_bytes}")
        return b"".join(blocks)
    finally:
        os.close(fd)


def refuse_links(*paths: Path) -> None:
    """NotRegularFile if any of `paths` is a symlink (paths that do not exist are fine).

    For files opened by SQLite, which cannot be told not to follow links.
    """
    for path in paths:
        if os.path.islink(path):
            raise NotRegularFile(path, "a symlink")


def create_private(path: Path) -> None:
    """Make `path` an empty file of mode 0600 if nothing is there yet.

    For files another library creates with the umask's mode (0644 under the usual 022): SQLite
    gives a database's `-wal` and `-shm` files the mode the database file has when it makes
    them, so a database made 0644 and changed to 0600 afterwards can keep a 0644 `-shm` for as
    long as it is open. Made private first, every companion is private too. A symlink planted
    at `path` is left alone (O_EXCL does not follow it): the caller refuses links.
    """
    try:
        fd = open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)  # whatever the umask took away
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` whole: a reader sees the old file or the new one, never a part.
    The new file has `mode` (private unless asked otherwise).

    The rename replaces a symlink planted at `path` itself, never its target.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = open_regular(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # exactly `mode`, whatever the umask took away
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)  # a full disk must not also leave litter behind
        raise


def home_problem(home: str | Path) -> str | None:
    """Why another user could replace the files of the home `home`; None when it is private
    enough (a folder owned by this user or root, that no other user can write). A home that
    does not exist (yet) or cannot be looked at has no such problem: its callers say so.

    Like ssh for its keys: a folder that others can write lets them swap the index, the queue
    or `serve.sock` for their own (the sticky bit does not help: they can still plant a file
    that is not there yet). Being readable by others is the owner's choice: memwal makes its
    own files private (0600).
    """
    try:
        st = os.stat(home)
    except OSError:
        return None
    if st.st_uid not in (os.geteuid(), 0):
        return f"belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"is writable by other users (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def sqlite_companions(path: Path) -> tuple[Path, Path, Path]:
    """A SQLite file and its write-ahead log and shared-memory files."""
    return path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def readonly_uri(path: Path) -> str:
    """A `mode=ro` URI for a SQLite file; `immutable` when nothing can ever write it here.

    A WAL file in a folder we cannot write (a backup, a mounted snapshot) cannot be opened the
    usual way when its -shm file is absent, because SQLite would have to create it. If no -wal
    file holds pending commits either, the database file alone is the whole truth, and SQLite
    may read it as immutable: without locks or the -shm file.
    """
    uri = f"file:{quote(str(path))}?mode=ro"  # SQLite URIs escape ? # % like URLs
    _, wal, shm = sqlite_companions(path)
    if not os.access(path.parent, os.W_OK) and not shm.exists() and not (
            wal.exists() and wal.stat().st_size > 0):
        uri += "&immutable=1"
    return uri
