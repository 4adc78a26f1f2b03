"""`mm search` trusts `<home>/serve.sock` only when it should (issue 23, item 3).

A fake server in the test plays the hostile or broken `mm serve`: it answers garbage, trickles,
never ends its line, belongs to another user, or only listens to what it is sent. Whatever it
does, `mm search` says so in one warning and prints the hits of its own, in-process search.
Each test failed on the code before this change (a traceback, a hang, fake hits or a leak).
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from helpers import MM, Run, mm_command, mm_env, write_config
from memwal.localsearch import address

QUERY = ("search", "--json", "moons")
SHORT = {"MM_LOCAL_SEARCH_DEADLINE": "2"}  # the client's total deadline, short for the tests


class FakeServer:
    """A unix socket server at `<home>/serve.sock` (0600, this user's) that records what it
    is sent and answers as `behaviour` says: bytes to send, "trickle" or "endless"."""

    def __init__(self, home: Path, behaviour: bytes | str) -> None:
        self.behaviour = behaviour
        self.received = b""
        self.connected = threading.Event()  # set when a caller connected and sent its line
        self.stop = threading.Event()
        self.listener = bind(home)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                continue
            with connection:
                self._answer(connection)

    def _answer(self, connection: socket.socket) -> None:
        connection.settimeout(30)
        try:
            while not self.received.endswith(b"\n"):
                block = connection.recv(1 << 16)
                if not block:
                    break
                self.received += block
            self.connected.set()
            if self.behaviour == "trickle":  # one byte a second: the client must not wait
                while not self.stop.wait(1.0):
                    connection.sendall(b" ")
            elif self.behaviour == "endless":  # a line that never ends
                block = b"x" * (1 << 16)
                while not self.stop.is_set():
                    connection.sendall(block)
            else:
                connection.sendall(self.behaviour)  # type: ignore[arg-type]
        except OSError:
            pass  # the client hung up: what it should do

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        self.listener.close()


def bind(home: Path) -> socket.socket:
    """A listening socket at `<home>/serve.sock`, mode 0600 (bound as `mm serve` binds it:
    unix socket paths are limited to 108 bytes, and pytest's are long)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with address(home) as path:
        listener.bind(path)
    os.chmod(home / "serve.sock", 0o600)
    listener.listen(8)
    return listener


@pytest.fixture
def direct(mm: MM, notes: Path) -> Run:
    """The indexed corpus, and `mm search` on it with no server: the expected output."""
    mm("index", str(notes))
    run = mm(*QUERY)
    assert run.json() and "warning" not in run.stderr, str(run)
    return run


@pytest.fixture
def fake(mm: MM) -> Iterator[list[FakeServer]]:
    servers: list[FakeServer] = []
    yield servers
    for server in servers:
        server.close()
    (mm.home / "serve.sock").unlink(missing_ok=True)


def fell_back(run: Run, direct: Run, *words: str) -> str:
    """The run printed the in-process hits and one warning (naming serve.sock and `words`)."""
    assert run.code == 0 and "Traceback" not in run.stderr, str(run)
    assert run.stdout == direct.stdout, str(run)
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, str(run)
    text = " ".join(run.stderr.split())  # the console may wrap a long line
    assert "serve.sock" in text and "searching here instead" in text, str(run)
    for word in words:
        assert word in text, (word, str(run))
    return text


MALFORMED = {
    "hits-not-a-list": b'{"hits": 5, "warnings": []}\n',
    "no-warnings": b'{"hits": []}\n',
    "hit-without-keys": b'{"hits": [{"rank": 1}], "warnings": []}\n',
    "hit-of-wrong-types": b'{"hits": [{"rank": "1", "score": 1, "namespace": "d", '
                          b'"source_file": "x", "start_line": 1, "end_line": 1, '
                          b'"heading_path": [], "content": "x", "chunk_id": 1}], '
                          b'"warnings": []}\n',
    "not-json": b"this is not json\n",
    "a-list": b"[1, 2]\n",
    "closed-mid-line": b'{"hits": [',
}


@pytest.mark.parametrize("reply", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_malformed_answer_falls_back_with_one_warning(mm: MM, direct: Run, fake: list,
                                                        reply: bytes) -> None:
    server = FakeServer(mm.home, reply)
    fake.append(server)
    run = mm(*QUERY, env=SHORT, timeout=60)
    assert server.connected.is_set(), "the fake server was never asked"
    fell_back(run, direct)


@pytest.mark.parametrize("behaviour", ["trickle", "endless"])
def test_a_slow_or_endless_answer_is_cut_and_the_search_runs_here(
        mm: MM, direct: Run, fake: list, behaviour: str) -> None:
    server = FakeServer(mm.home, behaviour)
    fake.append(server)
    started = time.monotonic()
    run = mm(*QUERY, env=SHORT, timeout=90)  # the old code waited for ever
    assert server.connected.is_set()
    fell_back(run, direct, "deadline" if behaviour == "trickle" else "longer than")
    assert time.monotonic() - started < 60  # generous: the deadline is 2 s


def as_root() -> bool:
    return os.geteuid() == 0


def nobody() -> int:
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        return 65534


@pytest.mark.parametrize("case", ["another user's socket", "a socket others can use",
                                  "a symlink to a socket"])
def test_a_socket_that_is_not_private_and_ours_is_not_asked(
        mm: MM, direct: Run, fake: list, tmp_path: Path, case: str) -> None:
    # Its answer would be accepted if it were asked: made-up hits of the right shape.
    fake_hits = json.dumps({"hits": [{"rank": 1, "score": 1.0, "namespace": "default",
                                      "source_file": "/planted.md", "start_line": 1,
                                      "end_line": 1, "heading_path": ["Planted"],
                                      "content": "planted", "chunk_id": 1}],
                            "warnings": []}).encode() + b"\n"
    server = FakeServer(mm.home, fake_hits)
    fake.append(server)
    sock = mm.home / "serve.sock"
    if case == "another user's socket" and not as_root():
        print("not root: cannot give the socket to another user; checking the mode rule")
        case = "a socket others can use"
    if case == "another user's socket":
        os.chown(sock, nobody(), -1)
        words = ["another user"]
    elif case == "a socket others can use":
        os.chmod(sock, 0o666)
        words = ["0666"]
    else:
        real = tmp_path / "elsewhere.sock"
        os.rename(sock, real)
        sock.symlink_to(real)
        words = ["symlink"]
    run = mm(*QUERY, env=SHORT, timeout=60)
    fell_back(run, direct, *words)
    assert not server.connected.is_set(), "the untrusted socket was asked"


@pytest.mark.skipif(not as_root(), reason="needs root to run a server as another user; "
                    "the socket's owner and mode rules are tested above without it")
def test_a_server_running_as_another_user_behind_our_socket_is_not_trusted(
        mm: MM, direct: Run) -> None:
    """The socket file is ours and 0600 (as if swapped after the check): the kernel still
    says who listens on it (SO_PEERCRED), and that is another user."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with address(mm.home) as path:
        listener.bind(path)
    os.chmod(mm.home / "serve.sock", 0o600)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: becomes nobody, then listens (the credentials SO_PEERCRED gives)
        try:
            os.setuid(nobody())
            listener.listen(8)
            os.write(ready_w, b"1")
            while True:
                connection, _ = listener.accept()
                connection.recv(1 << 16)
                connection.sendall(b'{"hits": [], "warnings": ["planted"]}\n')
                connection.close()
        finally:
            os._exit(0)
    try:
        listener.close()
        os.close(ready_w)
        assert os.read(ready_r, 1) == b"1"  # the child listens
        run = mm(*QUERY, env=SHORT, timeout=60)
        fell_back(run, direct, "runs as another user")
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r)
        (mm.home / "serve.sock").unlink(missing_ok=True)


def test_the_request_carries_no_secret(mm: MM, notes: Path, fake: list) -> None:
    write_config(mm.home, {"embedding": {"model": "hash-384"},
                           "queue": {"url": "redis://:secret@127.0.0.1:1/0"}})
    mm("index", str(notes))  # the sqlite queue: the redis URL is not used
    expected = mm(*QUERY)
    server = FakeServer(mm.home, b'{"decline": "not this caller"}\n')
    fake.append(server)
    run = mm(*QUERY, env=SHORT, timeout=60)
    assert server.connected.is_set()
    assert (run.code, run.stdout) == (0, expected.stdout) and "warning" not in run.stderr, str(run)
    assert b"secret" not in server.received and b"redis://" not in server.received
    request = json.loads(server.received)
    assert request["query"] == "moons" and "queue.url" not in request["settings"]


def test_a_home_others_can_write_is_refused_for_writes_and_its_socket_ignored(
        mm: MM, direct: Run, notes: Path, fake: list) -> None:
    os.chmod(mm.home, 0o777)
    try:
        run = mm("index", str(notes), check=2)
        assert "writable by other users" in run.stderr and "chmod go-w" in run.stderr, str(run)
        assert "Traceback" not in run.stderr
        searched = mm(*QUERY)  # reading it still works, in process
        assert searched.stdout == direct.stdout and "warning" not in searched.stderr
        server = FakeServer(mm.home, b'{"hits": [], "warnings": []}\n')
        fake.append(server)
        fell_back(mm(*QUERY, env=SHORT, timeout=60), direct, "writable by other users",
                  "chmod go-w")
        assert not server.connected.is_set()
    finally:
        os.chmod(mm.home, 0o755)


def test_a_read_only_home_can_still_be_searched(mm: MM, direct: Run) -> None:
    os.chmod(mm.home, 0o500)
    try:
        run = mm(*QUERY)
        assert run.stdout == direct.stdout and "warning" not in run.stderr, str(run)
    finally:
        os.chmod(mm.home, 0o755)


# -- the limits themselves, and the server's side ----------------------------------------------


def test_receive_line_keeps_its_deadline_and_its_cap() -> None:
    from memwal.localsearch import MAX_REPLY, ExchangeError, receive_line

    here, there = socket.socketpair()
    with here, there:
        there.sendall(b"x" * 100)
        with pytest.raises(ExchangeError, match="longer than 50"):
            receive_line(here, 50, time.monotonic() + 30)
    here, there = socket.socketpair()
    with here, there:
        there.sendall(b"partial")
        started = time.monotonic()
        with pytest.raises(ExchangeError, match="deadline"):
            receive_line(here, MAX_REPLY, time.monotonic() + 0.5)
        assert time.monotonic() - started < 30
    here, there = socket.socketpair()
    with here, there:
        there.sendall(b'{"a": 1}\nmore')
        assert receive_line(here, 50, time.monotonic() + 30) == b'{"a": 1}\n'


def test_the_server_cuts_a_slow_or_oversized_request_and_keeps_answering(mm: MM,
                                                                          direct: Run) -> None:
    from test_mcp import HttpServer, local_stats

    server = HttpServer(mm.home, env=SHORT)
    try:
        before = local_stats(mm.home)
        slow = connect(mm.home)
        slow.sendall(b'{"v": 1')  # and nothing more: the server hangs up after its deadline
        slow.settimeout(60)
        assert slow.recv(1) == b""
        big = connect(mm.home)
        try:
            big.sendall(b"x" * (4 << 20))  # no newline: cut at the server's cap
        except OSError:
            pass  # the server hung up while we sent: what it should do
        big.settimeout(60)
        try:
            assert big.recv(1) == b""
        except ConnectionResetError:
            pass
        assert local_stats(mm.home) == before  # still answering, nothing searched
        run = mm(*QUERY, env=SHORT)
        assert run.stdout == direct.stdout and local_stats(mm.home) == before + 1
    finally:
        server.stop()


def connect(home: Path) -> socket.socket:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with address(home) as path:
        connection.connect(path)
    return connection


def test_mm_serve_makes_no_socket_in_a_home_others_can_write(mm: MM, direct: Run) -> None:
    os.chmod(mm.home, 0o777)
    server = subprocess.Popen(mm_command("serve", "--port", "0", "--home", str(mm.home)),
                              env=mm_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert server.stderr is not None
        warning = server.stderr.readline()  # printed before the server is ready, or it exits
        assert "writable by other users" in warning and "chmod go-w" in warning, warning
        assert "serving http://" in server.stderr.readline()
        assert not (mm.home / "serve.sock").exists()
    finally:
        server.terminate()
        server.wait(timeout=60)
        os.chmod(mm.home, 0o755)
