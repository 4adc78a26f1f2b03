"""`mm serve` exposed (issue 23, items 1 and 5): it outlives a flood of connections, half-sent
and oversized requests, and it works from another machine when asked to, with its doors shut to
everything else. Every test runs the real `mm serve` in a subprocess."""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import anyio
import httpx2
import pytest

from helpers import MM, mm_command, mm_env
from test_mcp import HttpServer, call, http_session

DESCRIPTORS = 256  # soft = hard: raising the limit to the hard one at start changes nothing
FLOOD = 320        # more connections than the server has descriptors


class LimitedServer:
    """`mm serve --worker` with only DESCRIPTORS file descriptors."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS, DESCRIPTORS))

        self.process = subprocess.Popen(
            mm_command("serve", "--port", "0", "--worker", "--home", str(home)),
            env=mm_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            preexec_fn=limit)
        assert self.process.stderr is not None
        line = self.process.stderr.readline()
        assert "serving http://" in line, (line, self.process.poll())
        self.base = line.split("serving ", 1)[1].split()[0].rsplit("/mcp", 1)[0]
        self.port = int(self.base.rsplit(":", 1)[1])

    def status(self) -> int:
        """A well-behaved client's request on a fresh connection."""
        with httpx2.Client(timeout=60) as client:
            return client.get(self.base + "/api/status").status_code


def half_sent(port: int) -> socket.socket | None:
    """A connection that sends half a request's headers and nothing more (None: refused)."""
    sock = socket.socket()
    sock.settimeout(60)
    try:
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    except OSError:
        sock.close()
        return None
    return sock


def closed_by_server(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sent before closing the connection; fails past the deadline."""
    got = b""
    while True:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return got
        except socket.timeout:
            raise AssertionError(f"the server kept a connection open: {got[:200]!r}") from None
        if not data:
            return got
        got += data


def raw(port: int, head: bytes, body: bytes = b"", within: float = 60) -> bytes:
    """One raw request on its own connection; the answer, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head + body)
        return closed_by_server(sock, time.monotonic() + within)


async def test_a_flood_of_half_sent_and_oversized_requests_leaves_the_server_answering(
        mm: MM) -> None:
    env = {"MM_SERVE_HEADER_TIMEOUT": "2", "MM_SERVE_BODY_TIMEOUT": "2",
           "MM_SERVE_MAX_BODY_BYTES": "100000"}
    server = LimitedServer(mm.home, env)
    flood: list[socket.socket] = []
    try:
        for _ in range(FLOOD):
            sock = half_sent(server.port)
            if sock is not None:
                flood.append(sock)
        assert server.status() == 200  # answered while the flood holds its connections
        with anyio.fail_after(180):
            async with http_session(server.base + "/mcp") as session:
                added = await call(session, "mem_add", content="The heron waits in the reeds.",
                                   title="Heron", wait=True)
                assert added["state"] == "committed"  # the --worker commits throughout
        # An oversized body, and one of unknown length, are refused before they are read.
        host = b"Host: 127.0.0.1:%d\r\n" % server.port
        big = raw(server.port, b"POST /mcp HTTP/1.1\r\n" + host +
                               b"Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n",
                  b"x" * 65536)
        assert big.startswith(b"HTTP/1.1 413"), big[:200]
        chunked = raw(server.port, b"POST /mcp HTTP/1.1\r\n" + host +
                                   b"Transfer-Encoding: chunked\r\n\r\n", b"10\r\n" + b"x" * 16)
        assert chunked.startswith(b"HTTP/1.1 411"), chunked[:200]
        # A body that never completes, and the half-sent headers: the server closes them.
        slow = raw(server.port, b"POST /login HTTP/1.1\r\n" + host +
                                b"Content-Type: application/x-www-form-urlencoded\r\n"
                                b"Content-Length: 1000\r\n\r\n", b"token=")
        assert b"HTTP/1.1 408" in slow or slow == b"", slow[:200]
        deadline = time.monotonic() + 120  # generous: the header timeout is 2 s
        for sock in flood:
            closed_by_server(sock, deadline)
        assert server.status() == 200
        assert server.process.poll() is None
        with anyio.fail_after(180):
            async with http_session(server.base + "/mcp") as session:
                again = await call(session, "mem_add", content="The kingfisher dives at noon.",
                                   title="Kingfisher", wait=True)
                assert again["state"] == "committed"
        assert len(mm("search", "kingfisher heron", "--json").json()) >= 2
    finally:
        for sock in flood:
            sock.close()
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
        _, err = server.process.communicate(timeout=60)
    assert server.process.returncode == 0, err
    assert "Traceback" not in err, err


# -- item 5: remote access when asked for, and the smaller doors ---------------------------


TOKEN = "remote-token-3f9a"


@pytest.fixture
def remote(mm: MM) -> Iterator[HttpServer]:
    """`mm serve --host 0.0.0.0 --token`: reached as another machine would (a Host that is not
    loopback), over 127.0.0.1."""
    server = HttpServer(mm.home, "--host", "0.0.0.0", "--token", TOKEN)
    server.base = server.base.replace("0.0.0.0", "127.0.0.1")
    server.url = server.base + "/mcp"
    yield server
    server.stop()


def as_remote(server: HttpServer) -> tuple[str, str]:
    port = server.base.rsplit(":", 1)[1]
    return f"memory.lan:{port}", f"http://memory.lan:{port}"


def test_from_another_machine_login_and_mcp_pass_the_origin_check_with_the_token(
        remote: HttpServer) -> None:
    host, origin = as_remote(remote)
    mcp = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    accept = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    with httpx2.Client(timeout=60, base_url=remote.base, headers={"Host": host}) as client:
        login = client.post("/login", data={"token": TOKEN}, headers={"Origin": origin})
        cookie = login.headers["set-cookie"]  # a signed session, never the token itself
        assert login.status_code == 303 and "memwal_session=" in cookie and TOKEN not in cookie
        page = client.get("/", headers={"Cookie": cookie.split(";")[0]})
        assert page.status_code == 200
        listed = client.post("/mcp", json=mcp, headers={**accept, "Origin": origin,
                                                        "Authorization": f"Bearer {TOKEN}"})
        assert listed.status_code == 200 and listed.json()["result"]["tools"]
        # Without the token the same origin is a DNS-rebinding page: still refused.
        client.cookies.clear()
        rebinding = client.post("/mcp", json=mcp, headers={**accept, "Origin": origin})
        assert rebinding.status_code == 403
        other = client.post("/mcp", json=mcp, headers={**accept, "Origin": "http://evil.example",
                                                       "Authorization": f"Bearer {TOKEN}"})
        assert other.status_code == 403


def test_get_mcp_ends_at_once_and_every_answer_forbids_framing(remote: HttpServer) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    port = int(remote.base.rsplit(":", 1)[1])
    stream = raw(port, b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n"
                       b"Authorization: Bearer %s\r\nConnection: close\r\n\r\n" % (port, TOKEN.encode()),
                 within=30)  # the old server's stream never ended
    assert stream.startswith(b"HTTP/1.1 405"), stream[:200]
    with httpx2.Client(timeout=30, base_url=remote.base) as client:
        for response in (client.get("/api/status", headers=auth), client.get("/login"),
                         client.get("/api/status")):
            assert response.headers["x-frame-options"] == "DENY", response
            assert response.headers["x-content-type-options"] == "nosniff", response
        assert "frame-ancestors 'none'" in client.get("/login").headers["content-security-policy"]


def test_login_attempts_are_rate_limited(remote: HttpServer) -> None:
    with httpx2.Client(timeout=30, base_url=remote.base) as client:
        codes = [client.post("/login", data={"token": f"guess-{n}"}) for n in range(12)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited and int(limited[0].headers["retry-after"]) >= 1
    assert codes[0].status_code == 401  # the first wrong guess is refused: the login page again
    assert 'name="token"' in codes[0].text


def test_two_origin_or_host_headers_are_refused(remote: HttpServer) -> None:
    port = int(remote.base.rsplit(":", 1)[1])
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    origins = raw(port, b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
                  b"Origin: http://evil.example\r\nOrigin: http://127.0.0.1:%d\r\n"
                  b"Connection: close\r\n\r\n" % port)
    hosts = raw(port, b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n" +
                auth + b"Connection: close\r\n\r\n")
    assert origins.startswith(b"HTTP/1.1 400"), origins[:200]
    assert hosts.startswith(b"HTTP/1.1 400"), hosts[:200]


def test_a_blank_token_is_refused_with_the_fix(mm: MM) -> None:
    run = mm("serve", "--port", "0", "--token", "   ", check=2)
    assert "blank" in run.stderr and "--token" in run.stderr and "secrets" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_the_web_replay_needs_allow_destructive_like_mcp(mm: MM) -> None:
    server = HttpServer(mm.home)
    try:
        with httpx2.Client(timeout=30, base_url=server.base) as client:
            csrf = client.get("/api/csrf").json()["csrf"]
            api = client.post("/api/dead-letters/replay", json={"ids": [1]},
                              headers={"X-CSRF-Token": csrf})
            form = client.post("/dead-letters/replay", data={"ids": "1", "csrf": csrf})
            page = client.get("/dead-letters/replay", params={"ids": "1"})
        assert (api.status_code, form.status_code, page.status_code) == (403, 403, 403)
        assert "--allow-destructive" in api.json()["error"]["fix"]
    finally:
        server.stop()


def test_the_web_answers_an_error_with_the_status_its_kind_carries(mm: MM, notes: Path) -> None:
    mm("index", str(notes))
    server = HttpServer(mm.home, "--allow-destructive")
    try:
        with httpx2.Client(timeout=30, base_url=server.base) as client:
            csrf = {"X-CSRF-Token": client.get("/api/csrf").json()["csrf"]}
            no_such = client.get("/api/dead-letters/99")
            not_an_id = client.get("/dead-letters/abc")
            replay_no_such = client.post("/api/dead-letters/replay", json={"ids": [99]},
                                         headers=csrf)
            none_chosen = client.post("/api/dead-letters/replay", json={"ids": []}, headers=csrf)
        assert (no_such.status_code, not_an_id.status_code, replay_no_such.status_code,
                none_chosen.status_code) == (404, 404, 404, 400)
        assert no_such.json()["error"]["error"] == "DeadLetterError"
        assert none_chosen.json()["error"]["error"] == "DeadLetterError"
    finally:
        server.stop()


def test_a_server_bound_to_127_0_0_2_answers_its_own_address(mm: MM) -> None:
    server = HttpServer(mm.home, "--host", "127.0.0.2")
    try:
        assert "127.0.0.2" in server.base
        with httpx2.Client(timeout=30) as client:
            assert client.get(server.base + "/api/status").status_code == 200
    finally:
        server.stop()


def test_a_browser_on_another_machine_signs_in_and_uses_the_page(
        remote: HttpServer) -> None:
    """Chromium reaching the server by a name that is not loopback (its resolver maps it to
    127.0.0.1): the login form and the page work without --allow-origin."""
    from test_web import CHROMIUM, FLAGS

    if CHROMIUM is None:
        pytest.skip("no chromium here (apt-get install chromium, or set MM_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    host, origin = as_remote(remote)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=[*FLAGS, "--host-resolver-rules=MAP memory.lan 127.0.0.1"])
        try:
            page = browser.new_page()
            page.goto(origin + "/")
            assert page.url == origin + "/login"
            page.fill("input[name=token]", TOKEN)
            page.click("button[type=submit]")
            page.wait_for_url(origin + "/")
            assert page.get_by_test_id("chunks").inner_text().strip() == "0"
            page.goto(origin + "/dead-letters")
            assert page.get_by_test_id("no-letters").is_visible()
        finally:
            browser.close()


def test_running_out_of_descriptors_at_accept_is_one_line_and_never_raises(
        caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import errno

    from memwal.server.limits import Throttled, loop_errors

    handle = loop_errors(Throttled())
    loop = asyncio.new_event_loop()
    try:
        for _ in range(100):
            handle(loop, {"message": "socket.accept() out of system resource",
                          "exception": OSError(errno.EMFILE, "Too many open files")})
    finally:
        loop.close()
    said = [r for r in caplog.records if "cannot accept" in r.getMessage()]
    assert len(said) == 1 and "Too many open files" in said[0].getMessage()
