"""The local door of `mm serve`: a unix socket in the home that `mm search` asks first.

A cold `mm search` pays for Python, its imports and the model's load; a running server has all
of it warm. So `mm serve` listens on `<home>/serve.sock` (the home is 0700 and the socket 0600:
only the home's owner can open it), and `mm search` sends it its query, one JSON line, and
prints the answer, as dmypy and eslint_d do for their tools. The server answers only when the
caller's effective settings are its own (same home, same model, same search settings);
otherwise, or when no server answers, `mm search` searches in its own process, as before.
In a home other users could write (`safeio.home_problem`) there is no socket: they could
swap it for their own, and `mm search` would not trust it anyway (`localsearch`).
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import memwal
from memwal.localsearch import (
    FILTERS, MAX_REQUEST, SOCKET, VERSION, ExchangeError, address, comparable, deadline,
    receive_line,
)
from memwal.safeio import home_problem
from memwal.server.state import ServerState


class _Handler(socketserver.BaseRequestHandler):
    """One caller: one request line in, one answer line out, within `localsearch.deadline()`.

    Only this user can connect (the socket is 0600 in a private home), but a stuck or buggy
    caller must not hold a thread, or the server's memory, for ever: the request is cut at
    MAX_REQUEST bytes and the whole exchange at the deadline.
    """

    def handle(self) -> None:
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        connection: socket.socket = self.request
        until = time.monotonic() + deadline()
        try:
            request = json.loads(receive_line(connection, MAX_REQUEST, until))
            answer = _answer(state, request)
        except ExchangeError:
            return  # a caller that did not send one line in time: nothing to answer
        except Exception as exc:  # never lets a caller crash the server
            error = memwal.as_memwal_error(exc)
            answer = {"error": error.as_json()} if error else {"decline": f"server error: {exc}"}
        try:
            connection.settimeout(max(until - time.monotonic(), 1.0))  # for the whole sendall
            connection.sendall(json.dumps(answer, default=str).encode() + b"\n")
        except OSError:
            pass  # the caller went away or stopped reading: its loss


def _answer(state: ServerState, request: dict[str, Any]) -> dict[str, Any]:
    if request.get("v") != VERSION:
        return {"decline": "another protocol version"}
    if request.get("stats"):
        return {"answered": state.local_searches}
    if request.get("settings") != comparable(state.settings):
        return {"decline": "the caller's settings are not the server's"}
    filters: dict[str, Any] = {key: request.get(key) for key in FILTERS}
    result = state.searcher.search(request["query"], **filters)
    state.local_searches += 1
    return {"hits": result.as_json(), "warnings": result.warnings}


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@contextmanager
def listening(state: ServerState) -> Iterator[Path | None]:
    """Serve the local socket for the block; yields its path (None if it could not be made)."""
    home = state.settings.home
    path = home / SOCKET
    problem = home_problem(home)
    if problem is not None:  # others could swap the socket: `mm search` would ignore it anyway
        fix = f"Run `chmod go-w {home}`." if "writable" in problem else "Use a home of your own."
        sys.stderr.write(f"warning: the home {home} {problem}: no {SOCKET} for `mm search`, "
                         f"which searches in its own process. {fix}\n")
        yield None
        return
    if _answers(path):
        yield None  # another server of this home already answers there
        return
    try:
        path.unlink(missing_ok=True)  # a stale socket of a server that died
        with address(home) as where:
            server = _Server(where, _Handler)
        os.chmod(path, 0o600)
    except OSError:
        yield None
        return
    server.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, name="memwal-local", daemon=True)
    thread.start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        path.unlink(missing_ok=True)


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        with address(path.parent) as where:
            probe.connect(where)
        return True
    except OSError:
        return False
    finally:
        probe.close()
