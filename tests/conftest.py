"""Shared fixtures: a temporary home with the hash embedder, and the real `mm` in a subprocess."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Iterator

import pytest

from helpers import MM, EmbeddingServer, assert_doctor_ok, write_config, write_small_corpus
from memwal.config import load_settings

# A test run started in the background by a non-interactive shell (`cmd &`) ignores SIGINT, and
# every process it starts inherits that: the tests that press Ctrl-C on `mm` could not. A
# handler of our own is reset to the default in the processes we start.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    """A small corpus of distinct topics."""
    return write_small_corpus(tmp_path / "notes")


@pytest.fixture
def embedding_server(tmp_path: Path) -> Iterator[EmbeddingServer]:
    """tests/embedding_server.py on a free loopback port, stopped after the test."""
    server = EmbeddingServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()
