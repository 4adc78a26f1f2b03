"""Shared fixtures: a temporary home with the hash embedder, and the real `mm` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from memwal.config import load_settings


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


def write_config(home: Path, config: dict[str, Any]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps(config))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh home configured with the fast hash embedder."""
    path = tmp_path / "home"
    write_config(path, {"embedding": {"model": "hash-384"}})
    return path


@pytest.fixture
def settings(home: Path):
    return load_settings(home, environ={})


@pytest.fixture
def mm(home: Path, request: pytest.FixtureRequest) -> Iterator[MM]:
    """The CLI on `home`; after the test, `mm doctor` must pass on it (unless marked no_doctor)."""
    runner = MM(home)
    yield runner
    if request.node.get_closest_marker("no_doctor") is None:
        assert_doctor_ok(home)


def assert_doctor_ok(home: Path) -> None:
    """Every invariant of DESIGN.md holds on this home, as `mm doctor` checks it."""
    proc = subprocess.run(mm_command("doctor", "--json", "--home", str(home)), capture_output=True,
                          text=True, env=mm_env(), timeout=120)
    assert proc.returncode == 0, f"mm doctor failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    """A small corpus of distinct topics."""
    root = tmp_path / "notes"
    root.mkdir()
    (root / "gardening.md").write_text(
        "# Gardening\n\nTomatoes need full sun and deep watering twice a week.\n\n"
        "## Compost\n\nTurn the compost heap every fortnight so it stays aerobic.\n")
    (root / "astronomy.md").write_text(
        "# Astronomy\n\nJupiter has at least ninety-five moons; Ganymede is the largest.\n")
    (root / "cooking.txt").write_text(
        "Risotto wants warm stock added one ladle at a time while stirring.\n")
    return root
