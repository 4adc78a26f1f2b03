"""Helpers shared by the tests: the real `mm` in a subprocess, builders for batches and items, polling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from memwal.config import Settings, load_settings
from memwal.embedders import get_embedder
from memwal.queue import Role, WriteAheadQueue, open_queue
from memwal.records import Batch, ChunkKey, FileSnapshot, Producer, Reset, Upsert
from memwal.chunking import content_hash
from memwal.vectors import to_bytes

PRODUCER = Producer("test-host", 1, "pytest")


# -- the real `mm`, in a subprocess --------------------------------------------------------


@dataclass
class Run:
    """A finished `mm` invocation."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"mm {' '.join(self.args)} → {self.code}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def mm_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for `mm` subprocesses: no MM_* leaking from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MM_")}
    env.update(extra or {})
    return env


def mm_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "memwal", *args]


class MM:
    """Runs the real CLI against one home folder."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def __call__(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
                 check: int | None = 0) -> Run:
        proc = subprocess.run(mm_command(*args, "--home", str(self.home)), capture_output=True,
                              text=True, env=mm_env(env), timeout=timeout)
        run = Run(args, proc.returncode, proc.stdout, proc.stderr)
        if check is not None:
            assert run.code == check, str(run)
        return run

    def popen(self, *args: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen:
        return subprocess.Popen(mm_command(*args, "--home", str(self.home)), env=mm_env(env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def write_small_corpus(root: Path) -> Path:
    """The fast tests' small corpus of distinct topics (three files, one chunk each but the
    first), written into `root` (made if needed)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "gardening.md").write_text(
        "# Gardening\n\nTomatoes need full sun and deep watering twice a week.\n\n"
        "## Compost\n\nTurn the compost heap every fortnight so it stays aerobic.\n")
    (root / "astronomy.md").write_text(
        "# Astronomy\n\nJupiter has at least ninety-five moons; Ganymede is the largest.\n")
    (root / "cooking.txt").write_text(
        "Risotto wants warm stock added one ladle at a time while stirring.\n")
    return root


def write_config(home: Path, config: dict[str, Any]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps(config))


def assert_doctor_ok(home: Path) -> None:
    """Every invariant of docs/design.md holds on this home, as `mm doctor` checks it."""
    proc = subprocess.run(mm_command("doctor", "--json", "--home", str(home)), capture_output=True,
                          text=True, env=mm_env(), timeout=120)
    assert proc.returncode == 0, f"mm doctor failed:\n{proc.stdout}\n{proc.stderr}"




def upsert(text: str, *, model: str = "hash-384", source: str = "/notes/a.md", start: int = 1,
           namespace: str = "default", vector: bytes | None = None, dim: int | None = None) -> Upsert:
    embedder = get_embedder(model)
    return Upsert(
        key=ChunkKey(namespace, source, content_hash(text), start), end_line=start,
        heading_path=("Notes",), content=text, tags=(), fingerprint=embedder.fingerprint,
        dim=embedder.dim if dim is None else dim,
        vector=to_bytes(embedder.embed([text])[0]) if vector is None else vector)


def snapshot(source: str, keys: list[tuple[str, int]], mtime_ns: int, namespace: str = "default",
             digest: str = "digest", base: str | None = None) -> FileSnapshot:
    """A file snapshot; a vanished file is one with no keys and no digest."""
    return FileSnapshot(namespace, source, digest, 1, mtime_ns, tuple(keys), base)


def reset(model: str) -> Reset:
    embedder = get_embedder(model)
    return Reset(embedder.fingerprint, embedder.name, embedder.dim)


def batch(*items, batch_id: str | None = None) -> Batch:
    if batch_id is None:
        return Batch(items=tuple(items), producer=PRODUCER)
    return Batch(items=tuple(items), producer=PRODUCER, id=batch_id)


T = TypeVar("T")


def poll(condition: Callable[[], T], what: str, timeout: float = 60.0, every: float = 0.1) -> T:
    """Call `condition` until it returns something truthy; fail after `timeout` seconds.

    Waiting is bounded, never timed: these machines are shared and noisy.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def ok(run):  # type: ignore[no-untyped-def]
    """A `mm` run that succeeded: exit 0, no error line, no traceback."""
    assert run.code == 0 and "error:" not in run.stderr and "Traceback" not in run.stderr, str(run)
    return run


def home_settings(home: Path) -> Settings:
    """The settings of a test home, with nothing from the caller's environment."""
    return load_settings(home, environ={})


def producer_queue(home: Path) -> WriteAheadQueue:
    """The home's queue, opened as a producer opens it."""
    return open_queue(home_settings(home), Role.PRODUCER)


def queue_rows(home: Path) -> list[bytes]:
    """Every message still in the home's queue (pending and in flight), in queue order."""
    queue = open_queue(home_settings(home), Role.READER)
    try:
        return [delivery.data for delivery in queue.messages()]
    finally:
        queue.close()


def queue_inflight(home: Path) -> int:
    queue = open_queue(home_settings(home), Role.READER)
    try:
        return queue.counts().inflight
    finally:
        queue.close()


# -- the embedding server (tests/embedding_server.py), in a subprocess ---------------------


class EmbeddingServer:
    """A running tests/embedding_server.py: its base URL, its control endpoint, and stop()."""

    SCRIPT = Path(__file__).resolve().parent / "embedding_server.py"

    def __init__(self, folder: Path) -> None:
        port_file = folder / "embedding-server.port"
        self.proc = subprocess.Popen([sys.executable, str(self.SCRIPT), "--port-file",
                                      str(port_file)], env=mm_env(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port = poll(lambda: port_file.exists() and port_file.read_text().strip()
                    or self._died(), "the embedding server's port file")
        self.url = f"http://127.0.0.1:{port}"  # Ollama's base URL; OpenAI's is `openai_url`
        self.openai_url = f"{self.url}/v1"

    def _died(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the embedding server died: {self.proc.stderr.read()!r}")

    def control(self, **body: Any) -> dict[str, Any]:
        """POST /_control (faults, aliases, api_key, clear); the server's counters after it."""
        import httpx

        return httpx.post(f"{self.url}/_control", json=body, timeout=30).json()

    def stats(self) -> dict[str, Any]:
        import httpx

        return httpx.get(f"{self.url}/_control", timeout=30).json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        if self.proc.stderr:
            self.proc.stderr.close()
