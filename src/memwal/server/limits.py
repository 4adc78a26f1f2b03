"""The HTTP server's limits against floods and slow clients (docs/operations.md, "Exposing").

uvicorn bounds the size of a request's headers (h11's incomplete-event limit) and times out idle
keep-alive connections, but nothing else that a client which never finishes can hold:
`limit_concurrency` is looked at only once a request's headers are complete, a connection that
sends half its headers is never timed out, and an `accept()` that runs out of descriptors is
logged through whatever handler the root logger has (the MCP SDK's rich handler, whose lazy
import then fails too and ends the event loop). So:

- **a gate at `accept()`** (`Gate`, `GuardedListener`): at most `cap` connections are open; a new
  one past it evicts the oldest connection still waiting for a request's headers (a slow or idle
  client), else it is closed at once. The cap stays below the descriptor limit, raised to the
  hard limit at start, so connections can never take the descriptors the committer, the watcher
  and the index need.
- **deadlines per request** (`guarded_protocol`): its headers within `header_timeout` seconds of
  the connection (or of the previous response), its body within `body_timeout` seconds of its
  headers; else 408 and the connection is closed.
- **the event loop's errors are logged, once a minute at most, and never raise** (`loop_errors`),
  through a plain stderr handler installed before the MCP SDK can install its own (`plain_logging`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import memwal

log = logging.getLogger("memwal.serve")

# Descriptors kept for everything but connections: the index and queue files (SQLite with its WAL
# and shared memory, per connection), vector segments, the model, the watcher, serve.sock, logs.
RESERVED_DESCRIPTORS = 64
# Connections evicted but not yet closed by the event loop (their descriptor is freed a tick later).
EVICTING_SLACK = 16
MAX_HEADER_BYTES = 16 * 1024  # one request's headers (h11's default, made explicit)


@dataclass(frozen=True)
class Limits:
    """What one client may hold of the server; see docs/operations.md."""

    max_connections: int = 1000
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_body_bytes: int = 16 * 1024 * 1024

    @classmethod
    def of(cls, settings: memwal.Settings) -> "Limits":
        return cls(max_connections=settings["serve.max_connections"],
                   header_timeout=settings["serve.header_timeout"],
                   body_timeout=settings["serve.body_timeout"],
                   max_body_bytes=settings["serve.max_body_bytes"])


def raise_descriptor_limit() -> int:
    """Raise this process's descriptor limit to its hard limit; the soft limit now in force."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return 1 << 16
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # macOS refuses more than OPEN_MAX: keep what we have
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_cap(configured: int, descriptors: int) -> int:
    """The connections the server admits: as configured, but below the descriptor limit."""
    room = descriptors - max(RESERVED_DESCRIPTORS, descriptors // 8) - EVICTING_SLACK
    return max(1, min(configured, room))


class Throttled:
    """Logs one kind of event at most once a minute, with how many were not logged."""

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self.last: dict[str, float] = {}
        self.unsaid: dict[str, int] = {}

    def warn(self, kind: str, message: str) -> None:
        now = time.monotonic()
        if now - self.last.get(kind, -self.every) < self.every:
            self.unsaid[kind] = self.unsaid.get(kind, 0) + 1
            return
        more = self.unsaid.pop(kind, 0)
        self.last[kind] = now
        try:
            log.warning("%s%s", message, f" ({more} more since the last such message)" if more else "")
        except Exception:  # noqa: BLE001 - logging must never be what ends the server
            pass


class Gate:
    """Counts the open connections; admits, evicts the oldest waiting one, or refuses."""

    def __init__(self, cap: int, say: Throttled) -> None:
        self.cap = cap
        self.say = say
        self.accepted = 0  # accepted sockets whose protocol has not started yet
        self.live: set[Any] = set()
        self.waiting: OrderedDict[Any, None] = OrderedDict()  # no complete headers yet, oldest first
        self.evicting: set[Any] = set()

    def full(self) -> bool:
        return self.accepted + len(self.live) - len(self.evicting) >= self.cap

    def ready(self) -> bool:
        """False while the connections evicted to make room have not closed yet (a tick or
        two): the next connection waits in the kernel's queue instead of being refused."""
        return len(self.evicting) < EVICTING_SLACK or not self.full()

    def admit(self) -> bool:
        """Called for each accepted socket: True to keep it, False to close it now."""
        if self.full():
            if not self._evict_one():
                self.say.warn("full", f"{self.cap} connections are open and none can be closed yet "
                                      "(serve.max_connections): refusing new ones for now")
                return False
            self.say.warn("evict", f"{self.cap} connections open (serve.max_connections): "
                                   "closing the oldest that have not sent a request")
        self.accepted += 1
        return True

    def _evict_one(self) -> bool:
        if len(self.evicting) >= EVICTING_SLACK:
            return False
        while self.waiting:
            victim, _ = self.waiting.popitem(last=False)
            if not victim.transport.is_closing():
                self.evicting.add(victim)
                victim.transport.abort()  # at once: a client that reads nothing cannot hold it
                return True
        return False

    def started(self, protocol: Any) -> None:
        self.accepted = max(0, self.accepted - 1)
        self.live.add(protocol)

    def ended(self, protocol: Any) -> None:
        self.live.discard(protocol)
        self.waiting.pop(protocol, None)
        self.evicting.discard(protocol)


class GuardedListener(socket.socket):
    """A listening socket whose `accept()` asks the gate first (asyncio's selector loop calls it
    once per waiting connection); a refused connection is closed before any byte is read."""

    gate: Gate | None = None

    def accept(self) -> tuple[socket.socket, Any]:
        for _ in range(64):  # then let the loop run: it calls us again while more are waiting
            if self.gate is not None and not self.gate.ready():
                break
            conn, address = super().accept()
            if self.gate is None or self.gate.admit():
                return conn, address
            conn.close()
        raise BlockingIOError


REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\n"
                   b"content-length: 29\r\nconnection: close\r\n\r\nthe request took too long.\r\n")


def guarded_protocol(gate: Gate, limits: Limits) -> type:
    """uvicorn's h11 protocol with deadlines for a request's headers and body, reporting to the gate."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Guarded(H11Protocol):
        deadline: asyncio.TimerHandle | None = None
        partial = False  # some bytes of the next request arrived

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            gate.started(self)
            self._await_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel()
            gate.ended(self)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._progress(bool(data))

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.transport.is_closing():
                return
            if self.conn.their_state is h11.IDLE:
                self._await_headers()  # a keep-alive connection: the next request's clock starts
                self._progress(bool(self.conn.trailing_data[0]))
            elif self.conn.their_state is h11.SEND_BODY and self.deadline is None:
                self.deadline = self.loop.call_later(limits.body_timeout, self._late)

        def _await_headers(self) -> None:
            self._cancel()
            self.partial = False
            gate.waiting[self] = None
            self.deadline = self.loop.call_later(limits.header_timeout, self._late)

        def _progress(self, got_bytes: bool) -> None:
            state = self.conn.their_state
            if self in gate.waiting:
                if state is h11.IDLE:
                    self.partial = self.partial or got_bytes
                    return
                gate.waiting.pop(self, None)  # the headers are in
                self._cancel()
                if state is h11.SEND_BODY:
                    self.deadline = self.loop.call_later(limits.body_timeout, self._late)
            elif state is not h11.SEND_BODY and self.deadline is not None:
                self._cancel()  # the body is in

        def _late(self) -> None:
            self.deadline = None
            if self.transport.is_closing():
                return
            waiting = self in gate.waiting
            if self.transport.get_write_buffer_size():
                self.transport.abort()  # a client that does not read its answers either
                return
            if (self.partial if waiting else not (self.cycle and self.cycle.response_started)):
                self.transport.write(REQUEST_TIMEOUT)
            self.transport.close()

        def _cancel(self) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

    return Guarded


def loop_errors(say: Throttled) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """The event loop's exception handler: out of descriptors is one line a minute; nothing raises."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, OSError) and "accept" in str(context.get("message", "")):
            say.warn("accept", f"cannot accept connections: {error.strerror}; refusing them for "
                               "a second (raise the descriptor limit or lower serve.max_connections)")
            return
        try:
            loop.default_exception_handler(context)
        except Exception:  # noqa: BLE001 - a failing log handler must not end the loop
            pass

    return handle


def plain_logging() -> None:
    """Log to stderr through a plain handler, installed before the MCP SDK installs its rich one
    (`logging.basicConfig` does nothing once the root logger has a handler). The rich handler
    imports a module lazily while logging an error, which fails when descriptors have run out;
    the plain one needs no file to write a line."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="memwal serve: %(levelname)s %(name)s: %(message)s")
