"""The committer lock: an OS file lock beside the index. Whoever holds it is the only writer.

flock is released by the kernel when its holder dies, even by SIGKILL, so a crashed committer
never leaves a stale lock behind. The holder writes its pid into the file so others can name it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from memwal.errors import CommitterBusy, UsageError
from memwal.safeio import NotRegularFile, open_regular

__all__ = ["CommitterBusy", "CommitterLock", "committer_alive", "holder_pid"]


class CommitterLock:
    """A non-blocking, process-exclusive lock on `<home>/committer.lock`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never blocks."""
        if self._fd is not None:
            return True
        fd = _open_lock_file(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def acquire(self, patience: float = 1.0) -> None:
        """Take the lock or raise CommitterBusy naming the holder.

        A short patience absorbs the moment in which a status probe holds the lock shared.
        """
        deadline = time.monotonic() + patience
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise CommitterBusy(holder_pid(self.path))
            time.sleep(0.05)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "CommitterLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _open_lock_file(path: Path, flags: int) -> int:
    try:
        return open_regular(path, flags)
    except NotRegularFile as exc:
        # Never follow it: a link planted here would have us truncate whatever it points to.
        raise UsageError(f"the committer lock {path} is {exc.kind}, not a file memwal made.",
                         "Remove it (and find out who put it there); memwal recreates it.") from None


def holder_pid(path: Path) -> int | None:
    """The pid written by the last holder, if any (only meaningful while the lock is held)."""
    try:
        fd = _open_lock_file(path, os.O_RDONLY)
    except (OSError, UsageError):
        return None
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    finally:
        os.close(fd)
    return int(text) if text.isdigit() else None


def committer_alive(path: Path) -> tuple[bool, int | None]:
    """(whether a committer holds the lock, its pid). Probes without ever blocking a holder."""
    try:
        fd = _open_lock_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return False, None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True, holder_pid(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False, None
    finally:
        os.close(fd)
