"""The errors memwal raises for things a user can cause or fix, and the exit codes they map to.

Every such error is a `MemwalError`: it carries the exit code a command ends with, the HTTP
status the web API answers with and a one-line fix, so each front end (CLI, MCP tools, JSON API)
renders it the same way without a table of types. The status follows the exit code's split:
a usage error (exit 2) is the request's fault (4xx: 400, 404 for a `NotFound`), a failure
(exit 1) the server's (5xx), another committer (exit 3) a 409. An exception that is not a
`MemwalError` is a bug or an environment failure.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

# Exit codes scripts can rely on (docs/operations.md).
EXIT_OK = 0
EXIT_FAILED = 1        # some records dead-lettered, files failed, a check failed, a damaged file
EXIT_USAGE = 2         # bad arguments or configuration
EXIT_BUSY = 3          # another committer is running on this home
EXIT_INTERRUPTED = 130
# What each code means, for scripts: README.md's and docs/operations.md's tables are rendered
# from this (docs/gen_tables.py).
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_FAILED: "something failed: records dead-lettered or files unreadable (`mm index`), a "
                 "check failed (`mm doctor`), a damaged index or queue, a queue, search or "
                 "embedding server that did not answer (or answered nonsense), a SQLite or OS "
                 "error",
    EXIT_USAGE: "bad arguments or configuration: unknown key or model, bad value, a shared queue "
                "stamped with another index, a path to index that does not exist or cannot be "
                "read, the configured model is not the index's, a remote embedding model the "
                "server does not have, a missing or refused API key, a remote model whose weights "
                "changed behind its name, an index written by a newer memwal, a home that is not "
                "a folder or cannot be created, a home other users could write, a symlink in the "
                "home",
    EXIT_BUSY: "another committer is running on this home (`mm queue worker` only; servers with "
               "`--worker` wait for the role)",
    EXIT_INTERRUPTED: "interrupted",
}


class MemwalError(Exception):
    """An error with a one-line message, the fix the user can apply, a command exit code and
    an HTTP status (`http_status`): 500 unless a kind says otherwise (the server failed)."""

    exit_code: int = EXIT_FAILED
    http_status: int = 500
    # The kind's name in JSON, where a newer, narrower kind must keep the name scripts match.
    json_name: str | None = None

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} {self.fix}" if self.fix else self.message

    def as_json(self) -> dict[str, Any]:
        """The error as front ends return it in JSON (under "error")."""
        return {"error": self.json_name or type(self).__name__, "message": self.message, "fix": self.fix,
                "exit_code": self.exit_code}



class UsageError(MemwalError):
    """Bad arguments, configuration or a request that cannot be carried out as asked (exit 2,
    HTTP 400)."""

    exit_code = EXIT_USAGE
    http_status = 400


class InvalidArgument(UsageError):
    """Arguments that break their rules, one line for all of them: each named with its rule, and
    an example that keeps it (`top_k must be a whole number from 1 to 100, e.g. top_k=10`).
    `arguments` names them, for JSON. The MCP tools raise it for what the SDK's schema check
    refuses (server/tools.py)."""

    def __init__(self, problems: list[tuple[str, str, str]], fix: str | None = None) -> None:
        """`problems`: (argument, what is wrong with it, an example value), in the order found;
        `fix` instead of the examples (an argument that does not exist has none)."""
        said = "; ".join(f"{name} {wrong}" for name, wrong, _ in problems)
        if fix is None:
            super().__init__(said + ",", "e.g. " + " ".join(
                f"{name}={example}" for name, _, example in problems))
        else:
            super().__init__(said + ".", fix)
        self.arguments = [name for name, _, _ in problems]

    def as_json(self) -> dict[str, Any]:
        return {**super().as_json(), "arguments": self.arguments}


class NotFound(UsageError):
    """What a request names does not exist, such as a dead letter id (exit 2, HTTP 404)."""

    http_status = 404


class ConfigError(UsageError):
    """Bad configuration a user can fix; the message says how."""


class HomeNotPrivate(ConfigError):
    """The home folder is writable by other users, or theirs: memwal does not write there."""


class UnknownModel(UsageError, ValueError):
    """A model name we cannot build, or a model package that is missing."""


class ModelMismatch(UsageError):
    """The configured model is not the one the index (or its queued reset) uses."""


class SchemaTooNew(UsageError):
    """The index was written by a newer memwal."""


class IndexUnavailable(UsageError):
    """The index file cannot be opened; the message says why and what to do."""


class MigrationError(UsageError):
    """A model migration that cannot be started or go on here; the message says why."""


class DeadLetterError(UsageError):
    """A request about dead letters that cannot be carried out."""


class DeadLetterNotFound(DeadLetterError, NotFound):
    """No dead letter has that id (any more): a DeadLetterError and a NotFound (HTTP 404)."""

    json_name = "DeadLetterError"  # what `--json`, the web and MCP said before NotFound existed


class PathError(UsageError):
    """A path given to index does not exist, or cannot be read."""


class QueueError(UsageError):
    """The queue cannot be opened as configured (unknown backend, bad URL, unreachable server)."""


class QueueOwned(ConfigError):
    """A shared queue is stamped with another index: its committer must not commit into ours."""

    def __init__(self, queue: str, holder: dict[str, Any], index_id: str) -> None:
        where = ", ".join(f"{key} {holder[key]}" for key in ("host", "home") if holder.get(key))
        super().__init__(
            f"the queue {queue} belongs to another index (id {str(holder.get('index'))[:12]}"
            + (f", committed on {where}" if where else "") + f"); this home's index is "
            f"{index_id[:12]}: its committer would put that index's batches in this one.",
            "Give this home its own queue (remove queue.name: each home then has its own), or "
            f"run its committer where that index lives; if that index is gone for good, delete "
            f"the stamp (redis-cli DEL memwal:{queue}:index).")
        self.holder = holder


class QueueUnavailable(QueueError):
    """The queue's server did not answer, after retries: nothing more could be enqueued or taken
    (exit 1, HTTP 503: try again once it answers)."""

    exit_code = EXIT_FAILED  # the environment failed, not the user
    http_status = 503


class NoCommitter(MemwalError):
    """Waiting for a commit that no committer will make (a shared queue's worker is not running;
    HTTP 503)."""

    http_status = 503


# What a producer that does not wait says when nothing will commit its work (`mm index
# --no-wait`, `mm watch`, the MCP tools: one wording).
NO_COMMITTER_NOTE = ("queued, not yet committed: no committer is running, so search does not "
                     "see this yet. Start one with `mm queue worker` (with a shared queue: on the "
                     "machine that holds the index)")


class NoIndexHere(UsageError):
    """This home holds no index: its queue is shared and the index lives with the committer on
    another machine (exit 2). The fix says how to search it there (`search.url`)."""


class SearchUnavailable(MemwalError):
    """The search server named by `search.url` did not answer, or answered with an error (HTTP
    502: a server that passes a search on is a gateway)."""

    http_status = 502


class CommitterBusy(MemwalError):
    """Another process holds the committer role for this home (exit 3, HTTP 409)."""

    exit_code = EXIT_BUSY
    http_status = 409

    def __init__(self, pid: int | None, holder: str | None = None) -> None:
        who = holder or (f"pid {pid}" if pid else "a process that is starting")
        super().__init__(f"another committer is running on this home ({who}).",
                         "Stop it first, or let it do the work.")
        self.pid = pid


class EmbeddingServerError(MemwalError):
    """The embedding server (`embedding.url`) did not answer, after retries, or answered with
    an error or with something that is not embeddings (exit 1, HTTP 502: a gateway's failure)."""

    http_status = 502


class EmbeddingConfigError(ConfigError):
    """The embedding server refused what the configuration asks for: a model it does not have,
    a missing or wrong API key, a dimension other than `embedding.dim` (exit 2)."""


class ModelChanged(UsageError):
    """The weights behind a remote model's name changed: its vectors are another model's
    (exit 2). The vectors of the request that found out are never returned."""


class StorageError(MemwalError):
    """SQLite or the file system refused an operation (locked, full, read-only, I/O): exit 1,
    HTTP 503 (nothing was lost; it can work again once the cause is gone)."""

    http_status = 503


class DiskFull(StorageError):
    """The file system holding the home has no room left: nothing was lost, nothing more written."""


class DamagedFile(MemwalError):
    """A file in the home is not what memwal wrote (corrupt, truncated, not a database): exit 1,
    HTTP 500."""


DAMAGED_INDEX_FIX = ("Run `mm doctor` to see what is wrong; to recover, move the index aside and "
                     "re-index from your notes (docs/operations.md, 'A damaged index'): the queue "
                     "and the dead letters are kept.")
DAMAGED_QUEUE_FIX = ("Stop every memwal process on this home and follow docs/operations.md "
                     "('A damaged queue'): move the queue aside; the index is kept.")


def _sqlite_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(database errors, operational errors) of the stdlib sqlite3 and of sqlean if loaded."""
    import sqlite3
    import sys

    modules = [sqlite3] + ([sys.modules["sqlean"]] if "sqlean" in sys.modules else [])
    return (tuple(m.DatabaseError for m in modules), tuple(m.OperationalError for m in modules))


def is_damage(exc: BaseException) -> bool:
    """Whether a SQLite error says the file itself is bad (not locked, full or read-only)."""
    database, operational = _sqlite_errors()
    if isinstance(exc, operational):
        # The last three are sqlite-vec's words for a vector blob that is not what it wrote.
        return any(word in str(exc) for word in ("malformed", "not a database", "corrupt",
                                                 "blob size", "reading from blob",
                                                 "Internal sqlite-vec error"))
    return isinstance(exc, database) and not any(
        type(exc).__name__ == name for name in ("IntegrityError", "InterfaceError", "DataError"))


def _operational_fix(text: str) -> str:
    if "locked" in text or "busy" in text:
        return "Is another program holding the index or queue file? Try again when it is done."
    if "full" in text:
        return "The disk is full: free some space and run the command again."
    if "readonly" in text or "read-only" in text:
        return "The home is read-only; use a writable --home for anything that writes."
    if "I/O" in text or "disk" in text:
        return "The disk reported an error: check it, then run `mm doctor`."
    return "Run `mm doctor` to check the home's files."


# Below this, a write that failed with an I/O error most likely failed for want of room: SQLite
# reports some ENOSPC (a WAL that cannot grow, an -shm it cannot map) as "disk I/O error".
NEARLY_FULL = 1 << 20


def free_space(path: Path) -> tuple[int, Path] | None:
    """(bytes free to an unprivileged writer, the mount point) of the file system holding
    `path` (or its nearest existing parent); None if it cannot be read."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        stat = os.statvfs(path)
        device = path.stat().st_dev
        mount = path
        while mount != mount.parent and mount.parent.stat().st_dev == device:
            mount = mount.parent
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize, mount


def disk_full(path: Path, cause: str) -> MemwalError:
    """The error for a write refused for want of room on the file system holding `path`."""
    found = free_space(path)
    if found is None:
        return DiskFull(f"the disk is full ({cause}).", "Free some space; nothing was lost.")
    free, mount = found
    if free >= NEARLY_FULL:
        return StorageError(f"a file in {path} could not grow ({cause}) although {free:,} bytes "
                            f"are free on {mount}.", "Is a file size limit (ulimit -f) or a quota "
                            "in the way? Nothing was lost.")
    return DiskFull(f"the disk is full ({free:,} bytes free on {mount}).",
                    "Free some space and run the command again; nothing was lost.")


def as_memwal_error(exc: BaseException, home: Path | None = None) -> MemwalError | None:
    """A foreign exception a user can act on, as a MemwalError; None for anything else (a bug).

    `home`, where the caller knows it, lets a failed write be told apart: a full disk is named
    as such, with the room left, whatever words SQLite or the OS used.
    """
    if isinstance(exc, MemwalError):
        return exc
    if is_damage(exc):
        return DamagedFile(f"SQLite: {exc}: a file in the home is damaged.",
                           "Run `mm doctor`, and see docs/operations.md ('When things go wrong').")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return disk_full(Path(exc.filename).parent if exc.filename else home or Path.cwd(),
                         exc.strerror or "no space left")
    _, operational = _sqlite_errors()
    if isinstance(exc, operational):
        text = str(exc)
        if home is not None and ("full" in text or ("I/O" in text and _nearly_full(home))):
            return disk_full(home, f"SQLite: {text}")
        return StorageError(f"SQLite: {exc}.", _operational_fix(text))
    if isinstance(exc, PermissionError):
        error = UsageError(f"permission denied: {exc.filename or exc}.",
                           "Use a home folder you can write (--home DIR or MM_HOME).")
        return error
    if isinstance(exc, OSError):
        return StorageError(f"{exc.strerror or exc}: {exc.filename or ''}".strip())
    return None


def _nearly_full(path: Path) -> bool:
    found = free_space(path)
    return found is not None and found[0] < NEARLY_FULL
