"""The long-lived servers: MCP over stdio (`mm mcp`) and over HTTP (`mm serve`).

Both keep one `ServerState` for their life (a warm Searcher: one read connection, one
embedder), never write the index themselves (their tools enqueue), and host the committer role
only when started with `worker=True`: whenever it is free (a RoleSeeker), so any number of
servers can share a home with each other and with a `mm queue worker`.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import memwal
from memwal.server.security import Doors, is_loopback
from memwal.server.state import ServerState


@dataclass(frozen=True)
class ServerOptions:
    """How a server runs: which tools, whether it commits, where it listens (HTTP)."""

    allow_destructive: bool = False
    worker: bool = False
    watch: bool = False
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    allow_origins: tuple[str, ...] = ()
    on_ready: Callable[[str], None] | None = field(default=None, compare=False)


@contextlib.contextmanager
def _running(settings: memwal.Settings, options: ServerOptions) -> Iterator[ServerState]:
    """The server's state, with its committer (--worker) and watcher (--watch) for its life."""
    from memwal.worker import hosting

    state = ServerState(settings, allow_destructive=options.allow_destructive,
                        take_role=options.worker)
    with contextlib.ExitStack() as stack:
        stack.callback(state.close)
        # With --worker: the committer when the role is free, a producer that takes it over
        # otherwise.
        stack.enter_context(hosting(settings, seek=options.worker))
        if options.watch:
            stop = threading.Event()
            thread = threading.Thread(target=memwal.watch, args=(settings,), kwargs={"stop": stop},
                                      name="memwal-watcher", daemon=True)
            thread.start()
            stack.callback(thread.join)
            stack.callback(stop.set)
        yield state


def serve_stdio(settings: memwal.Settings, options: ServerOptions = ServerOptions()) -> None:
    """Serve MCP over stdin/stdout until the client closes stdin (what `mm mcp` runs).

    Nothing but the protocol is ever written to stdout: memwal prints nothing there, and
    anything a library prints while serving goes to stderr.
    """
    from memwal.server.stdio import run_stdio
    from memwal.server.tools import build_server

    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    with _running(settings, options) as state:
        server = build_server(state)
        if options.on_ready:
            options.on_ready("stdio")
        run_stdio(server)


def check_bind(options: ServerOptions) -> None:
    """A non-loopback address needs a token, and a token must be one a header can carry:
    UsageError (exit 2) otherwise."""
    token = options.token
    if token is not None and not token.strip():
        raise memwal.UsageError("the token (--token or MM_SERVE_TOKEN) is blank: anyone could send it.",
                                "Pass a real one, e.g. --token \"$(python3 -c 'import secrets; "
                                "print(secrets.token_urlsafe(32))')\".")
    if token is not None and (token != token.strip() or not token.isprintable()
                              or not token.isascii()):
        raise memwal.UsageError("the token (--token or MM_SERVE_TOKEN) has spaces around it, control or non-ASCII characters: "
                                "no HTTP header can carry it as it is.",
                                "Use printable ASCII characters, e.g. from "
                                "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`.")
    if not is_loopback(options.host) and not token:
        raise memwal.UsageError(
            f"binding {options.host} exposes the memory beyond this machine without a token.",
            "Pass --token TOKEN (or set MM_SERVE_TOKEN), or bind 127.0.0.1.")


def build_app(state: ServerState, options: ServerOptions, port: int,
              max_body_bytes: int = 16 * 1024 * 1024) -> Any:
    """The ASGI app: MCP (streamable HTTP) at /mcp, the JSON API at /api, the web page at /,
    all behind the token and Host/Origin doors."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from memwal.server.tools import build_server
    from memwal.server.web import Web

    server = build_server(state)
    mcp_app = server.streamable_http_app(streamable_http_path="/mcp", stateless_http=True,
                                         json_response=True, transport_security=None,
                                         host="0.0.0.0")  # our Doors check hosts, for every path

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        async with server.session_manager.run():
            yield

    async def no_stream(request: Any) -> Any:
        # A stateless server has no stream of its own to offer: without this, GET /mcp opened
        # an event stream that never ended (the spec's answer is 405).
        return JSONResponse({"error": {"message": "this server sends no event stream",
                                       "fix": "POST JSON-RPC requests to /mcp."}},
                            status_code=405, headers={"Allow": "POST"})

    web = Web(state, options.token)
    routes = [*web.routes(), Route("/mcp", no_stream, methods=["GET"]), *mcp_app.routes]
    app = Starlette(routes=routes, lifespan=lifespan)
    return Doors(app, port=port, token=options.token, check_host=is_loopback(options.host),
                 origins=options.allow_origins, bound=options.host, max_body_bytes=max_body_bytes)


def tcp_listener(host: str, port: int) -> Any:
    """A bound TCP socket for uvicorn; StorageError when the address cannot be had.

    Made with protocol IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on the connections a
    listener accepts only when the listener says it is TCP. Without it every response (headers
    and body in two writes) waited ~40 ms for the client's delayed ACK.
    """
    from memwal.server.limits import GuardedListener

    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    listener = GuardedListener(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host.strip("[]"), port))
    except OSError as exc:
        listener.close()
        raise memwal.StorageError(f"cannot listen on {host}:{port}: {exc.strerror}.",
                                  "Pick another --port, or stop what uses it.") from None
    return listener


def serve_http(settings: memwal.Settings, options: ServerOptions = ServerOptions()) -> None:
    """Serve MCP over HTTP at http://host:port/mcp until SIGINT/SIGTERM (what `mm serve` runs).

    Raises UsageError (exit 2) for a non-loopback bind without a token, StorageError when the
    port is taken. With `worker`, it commits whenever no other committer holds the role.
    """
    import uvicorn

    from memwal.server import limits as lim

    check_bind(options)
    lim.plain_logging()  # before the MCP SDK installs its rich handler (see limits.py)
    limits = lim.Limits.of(settings)
    say = lim.Throttled()
    gate = lim.Gate(lim.connection_cap(limits.max_connections, lim.raise_descriptor_limit()), say)
    listener = tcp_listener(options.host, options.port)
    listener.gate = gate
    family = listener.family
    port = listener.getsockname()[1]
    from memwal.server.local import listening

    with _running(settings, options) as state, listening(state):
        app = build_app(state, options, port, limits.max_body_bytes)
        # Our own accept gate and h11 protocol with deadlines (limits.py); the selector loop,
        # which calls the listener's accept(); no websockets; in-flight requests get 10 s to
        # finish on SIGTERM. limit_concurrency is left off: it counts idle connections too, and
        # only once headers are complete; the gate bounds connections before that.
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                                http=lim.guarded_protocol(gate, limits), loop="asyncio", ws="none",
                                h11_max_incomplete_event_size=lim.MAX_HEADER_BYTES,
                                timeout_graceful_shutdown=10)
        server = uvicorn.Server(config)
        host = f"[{options.host}]" if family == socket.AF_INET6 else options.host
        ready = options.on_ready
        original = server.startup

        async def startup(sockets: Any = None) -> None:
            import asyncio

            asyncio.get_running_loop().set_exception_handler(lim.loop_errors(say))
            await original(sockets=sockets)
            if ready:
                ready(f"http://{host}:{port}/mcp")

        server.startup = startup  # type: ignore[method-assign]
        # uvicorn re-raises SIGINT/SIGTERM once it has shut down, which would end the process
        # before the committer, the watcher and the local socket are closed: stop it ourselves.
        server.capture_signals = _stop_on_signals(server)  # type: ignore[method-assign]
        server.run(sockets=[listener])


def _stop_on_signals(server: Any) -> Callable[[], Any]:
    @contextlib.contextmanager
    def capture() -> Iterator[None]:
        import signal

        def stop(signum: int, frame: Any) -> None:
            server.force_exit = server.should_exit  # a second Ctrl-C: do not wait for requests
            server.should_exit = True

        restore = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in restore.items():
                signal.signal(signum, handler)

    return capture


__all__ = ["ServerOptions", "serve_http", "serve_stdio"]
