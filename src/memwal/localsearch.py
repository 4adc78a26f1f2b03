"""The local search protocol between `mm search` and a running `mm serve` (one JSON line each way).

The caller's side is here whole (`ask_search`, `ask`); the server's side is server/local.py.
Cheap to import: the command line's fast path (cli/fast.py) must not pay for what it saves.

Neither side trusts the other more than it must. The caller asks only a socket that is its
own (`socket_problem`), reads the answer within a total deadline and a size cap
(`receive_line`), and accepts only an answer of the right shape (`reply_problem`); the server
reads a request under the same kind of limits. The request carries the query, the search
options and the settings that shape a search's answer (`comparable`), never a secret.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

SOCKET = "serve.sock"  # in the home (0700); the socket itself is 0600
VERSION = 1
MAX_REPLY = 16 << 20  # bytes: 1,000 hits of 10 kB each fit; an endless reply is cut here
MAX_REQUEST = 1 << 20  # bytes the server reads of one request
DEADLINE = 10.0  # seconds for a whole exchange: connect, send, and the last byte of the reply
DEADLINE_ENV = "MM_LOCAL_SEARCH_DEADLINE"  # another deadline in seconds (tests use a short one)

# The settings that shape what a search answers: the caller's must be the server's for the
# server to answer for it. Nothing else is sent: `queue.url` may hold a password.
SEARCH_KEYS = ("embedding.provider", "embedding.model", "embedding.url", "embedding.dim",
               "index.namespace", "queue.backend", "queue.name",
               "search.top_k", "search.rrf_k", "search.max_per_doc", "search.bm25_weight",
               "search.vector_weight", "search.url")

# The keywords of a search a request carries beside its query (those of `memwal.search`).
FILTERS = ("namespace", "source_glob", "top_k", "max_per_doc")

# The longest path bind and connect take (sun_path, 108 bytes on Linux, with room for its NUL).
MAX_SOCKET_PATH = 107

# A hit as `mm search` prints it: every field and its type (bool is not a number here).
HIT_FIELDS: dict[str, tuple[type, ...]] = {
    "rank": (int,), "score": (int, float), "namespace": (str,), "source_file": (str,),
    "start_line": (int,), "end_line": (int,), "heading_path": (list,), "content": (str,),
    "chunk_id": (int,)}


class ExchangeError(Exception):
    """The other side did not send one line within the limits; the message says what."""


def comparable(settings: Any) -> dict[str, Any]:
    """What must match between caller and server for the server to answer for the caller."""
    # Every value is a str, a number or None: equal to what the server decodes from JSON.
    return {"home": str(settings.home), **{key: settings.values.get(key) for key in SEARCH_KEYS}}


def ask_search(settings: Any, query: str, filters: Mapping[str, Any]
               ) -> tuple[dict[str, Any] | None, str]:
    """The home's running server's answer to this search, and why it was not asked or not used.

    (answer, "") when it answered: {"hits": [...], "warnings": [...]}, checked by
    `reply_problem`. (None, "") when there is nothing to say: no server, or one that declines
    (other settings than the caller's). (None, why) when the socket is not to be trusted
    (`socket_problem`, `peer_problem`) or the exchange or answer is not usable.
    """
    home = str(settings.home)
    problem = socket_problem(home)
    if problem is not None:
        return None, problem  # "" when there is no socket: nothing to say
    request = {"v": VERSION, "settings": comparable(settings), "query": query,
               **{key: filters.get(key) for key in FILTERS}}
    try:
        answer = ask(home, request)
    except ExchangeError as exc:
        return None, str(exc)
    if answer is None or (isinstance(answer, dict) and "hits" not in answer and (
            "decline" in answer or "error" in answer)):
        return None, ""  # no server (any more), or one that declines to answer for us
    problem = reply_problem(answer)
    return (None, f"its answer is not a search answer: {problem}") if problem else (answer, "")


def ask(home: str | Path, request: dict[str, Any]) -> Any:
    """The JSON answer of the server on `<home>/serve.sock` to `request`; None when none answers.

    ExchangeError when one answers but not as a server of this user does: it runs as another
    user, or its answer is not one JSON line within the deadline and MAX_REPLY bytes.
    """
    until = time.monotonic() + deadline()
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(max(until - time.monotonic(), 0.001))
    try:
        try:
            with address(home) as path:
                connection.connect(path)
        except OSError:
            return None
        problem = peer_problem(connection)
        if problem:
            raise ExchangeError(problem)
        try:
            connection.sendall(json.dumps(request).encode() + b"\n")
            data = receive_line(connection, MAX_REPLY, until)
        except ExchangeError as exc:
            raise ExchangeError(f"its answer was not usable: {exc}") from None
        except OSError as exc:
            raise ExchangeError(f"the exchange failed ({exc.strerror or exc})") from None
        try:
            return json.loads(data)
        except ValueError:
            raise ExchangeError("its answer is not JSON") from None
    finally:
        connection.close()


@contextmanager
def address(home: str | Path) -> Iterator[str]:
    """A path to `<home>/serve.sock` that bind and connect take, for the block.

    A unix socket's path is at most MAX_SOCKET_PATH bytes, and a home's can be longer (pytest's
    are). Then, where /proc is, the home is opened (O_PATH) and its socket named through the
    descriptor, `/proc/self/fd/<fd>/serve.sock`, which path lookup follows to the home; never
    by changing the working directory, which every thread of a process shares. Elsewhere a long
    path is given as it is, and bind or connect raise OSError ("AF_UNIX path too long").
    """
    path = os.path.join(home, SOCKET)
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH or not os.path.isdir("/proc/self/fd"):
        yield path
        return
    folder = os.open(home, getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{folder}/{SOCKET}"
    finally:
        os.close(folder)


def deadline(environ: Any = os.environ) -> float:
    """The seconds a whole exchange may take: DEADLINE, or env MM_LOCAL_SEARCH_DEADLINE."""
    try:
        seconds = float(environ.get(DEADLINE_ENV) or DEADLINE)
    except ValueError:
        return DEADLINE
    if seconds != seconds:  # NaN
        return DEADLINE
    return min(max(seconds, 0.1), 600.0)


def socket_problem(home: str) -> str | None:
    """Why `<home>/serve.sock` must not be asked; None when it may; "" when there is none.

    The socket must be a socket (not a link to one), this user's, and private (no group or
    other permission): anything else may be another user's server, fed the query and feeding
    made-up hits. Its folder, the home, must be this user's (or root's) and not writable by
    others, who could otherwise swap the socket between this check and the connection.
    """
    from memwal.safeio import home_problem, kind_of

    path = os.path.join(home, SOCKET)
    try:
        st = os.lstat(path)
    except OSError:
        return ""
    if not stat.S_ISSOCK(st.st_mode):
        return f"{path} is {kind_of(st.st_mode)}, not a socket"
    if st.st_uid != os.geteuid():
        return f"{path} belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o077:
        return (f"{path} can be used by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
                f"a server of yours makes it 0600")
    problem = home_problem(home)
    if problem:
        fix = f"run `chmod go-w {home}`" if "writable" in problem else "use a home of your own"
        return f"the home {home} {problem}; {fix}"
    return None


def peer_problem(connection: socket.socket) -> str | None:
    """Why the process at the other end of a connected unix socket is not to be trusted: it
    runs as another user. Asked of the kernel (SO_PEERCRED, Linux), so it holds even if the
    socket file was swapped after `socket_problem` looked at it; None where it cannot be asked."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        _pid, uid, _gid = struct.unpack(
            "3i", connection.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    except OSError:
        return None
    if uid != os.geteuid():
        return f"the server on it runs as another user (uid {uid})"
    return None


def receive_line(connection: socket.socket, limit: int, until: float) -> bytes:
    """One line from `connection`, ending in a newline, received by `until` (time.monotonic).

    ExchangeError if it is longer than `limit` bytes, not complete by then, or the other side
    closes first: a slow or endless sender costs at most the deadline and `limit` bytes.
    """
    data = bytearray()
    late = "no complete line within the deadline ({} bytes received)"
    while True:
        remaining = until - time.monotonic()
        if remaining <= 0:
            raise ExchangeError(late.format(len(data)))
        connection.settimeout(remaining)
        try:
            block = connection.recv(min(1 << 16, limit + 1 - len(data)))
        except socket.timeout:
            raise ExchangeError(late.format(len(data))) from None
        if not block:
            raise ExchangeError("the connection closed before the end of the line")
        data += block
        end = data.find(b"\n", len(data) - len(block))
        if end >= 0:
            return bytes(data[:end + 1])
        if len(data) > limit:
            raise ExchangeError(f"a line longer than {limit:,} bytes")


def reply_problem(answer: Any) -> str | None:
    """Why `answer` is not a search answer `mm search` can print; None when it is.

    A search answer is {"hits": [hit, ...], "warnings": [text, ...]}, each hit with every
    field of HIT_FIELDS, of its type.
    """
    if not isinstance(answer, dict):
        return f"it is {type(answer).__name__}, not an object"
    hits, warnings = answer.get("hits"), answer.get("warnings")
    if not isinstance(hits, list):
        return "its hits are not a list"
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        return "its warnings are not a list of text"
    for number, hit in enumerate(hits, 1):
        problem = _hit_problem(hit)
        if problem:
            return f"hit {number} {problem}"
    return None


def _hit_problem(hit: Any) -> str | None:
    if not isinstance(hit, dict):
        return "is not an object"
    for name, types in HIT_FIELDS.items():
        value = hit.get(name)
        if isinstance(value, bool) or not isinstance(value, types):
            return f"has no {name} of the right type"
    if not all(isinstance(part, str) for part in hit["heading_path"]):
        return "has a heading_path that is not text"
    return None
