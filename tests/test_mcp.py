"""The MCP server, driven by the official SDK's real clients: `mm mcp` over stdio, `mm serve` over
HTTP. Every write goes through the queue; the seed scenario holds through MCP too."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from helpers import MM, assert_doctor_ok, mm_command, mm_env, poll, write_config
from test_model_swap import four_dead_letters_replayable
from test_model_swap import worker_holding_the_role

A, B = "hash-384", "hash-384-b"


# -- real clients on real servers ----------------------------------------------------------


@asynccontextmanager
async def stdio_session(home: Path, *args: str, env: dict[str, str] | None = None
                        ) -> AsyncIterator[ClientSession]:
    """`mm mcp` as a subprocess, and the SDK's stdio client talking to it."""
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "memwal", "mcp", "--home", str(home), *args],
                                   env=mm_env(env))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


class HttpServer:
    """`mm serve --port 0` as a subprocess; its URL is read from the line it prints when ready."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(mm_command("serve", "--port", "0", "--home", str(home), *args),
                                        env=mm_env(env), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        assert self.process.stderr is not None
        line = self.process.stderr.readline()  # bounded: the server prints this, or exits
        assert "serving http://" in line, (line, self.process.poll())
        self.url = line.split("serving ", 1)[1].split()[0]
        self.base = self.url.rsplit("/mcp", 1)[0]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=60)


@asynccontextmanager
async def http_session(url: str, token: str | None = None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60, read=300)) as client:
        async with streamable_http_client(url, http_client=client) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """A tool call that must succeed; its structured content."""
    result = await session.call_tool(tool, arguments, read_timeout_seconds=120)
    assert not result.is_error, (tool, arguments, result.content)
    assert result.content and result.content[0].text  # a short text rendering too
    return result.structured_content


async def refused(session: ClientSession, tool: str, **arguments: Any) -> str:
    """A tool call that must be an error result (not a protocol error); its text."""
    result = await session.call_tool(tool, arguments, read_timeout_seconds=120)
    assert result.is_error, (tool, arguments, result.structured_content)
    return result.content[0].text


def start_worker(mm: MM, env: dict[str, str] | None = None) -> subprocess.Popen:
    return mm.popen("queue", "worker", env=env)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)


async def add_then_search(session: ClientSession, mm: MM) -> None:
    tools = {t.name for t in (await session.list_tools()).tools}
    assert {"mem_search", "mem_add", "mem_index", "mem_status", "mem_queue_status", "mem_doctor",
            "mem_dead_letters", "mem_dead_letter"} <= tools
    assert not tools & {"mem_embedding_reset", "mem_replay_dead_letters", "mem_purge_dead_letters"}
    added = await call(session, "mem_add", content="The lighthouse keeper feeds the gulls at dawn.",
                       title="Gulls", tags=["birds"], wait=True)
    assert added["state"] == "committed" and added["committed"] == added["records"] > 0
    assert added["positions"] and Path(added["file"]).is_file()
    found = await call(session, "mem_search", query="lighthouse gulls dawn")
    assert found["hits"][0]["source_file"] == added["file"]
    status = await call(session, "mem_status")
    assert status == mm("status", "--json").json()


# -- both transports -----------------------------------------------------------------------


async def test_stdio_server_adds_then_finds_the_note_first_and_status_matches_the_cli(mm: MM) -> None:
    with anyio.fail_after(180):
        async with stdio_session(mm.home, "--worker") as session:
            await add_then_search(session, mm)


async def test_http_server_adds_then_finds_the_note_first_and_status_matches_the_cli(mm: MM) -> None:
    worker = start_worker(mm)
    server = HttpServer(mm.home)
    try:
        with anyio.fail_after(180):
            async with http_session(server.url) as session:
                await add_then_search(session, mm)
    finally:
        server.stop()
        stop(worker)


async def test_the_server_names_itself_says_when_to_use_which_tool_and_its_version(mm: MM) -> None:
    import memwal

    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "memwal", "mcp", "--home", str(mm.home)], env=mm_env())
    with anyio.fail_after(120):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            init = await session.initialize()
    assert (init.server_info.name, init.server_info.version) == ("memwal", memwal.__version__)
    assert "mem_search" in init.instructions and "mem_add" in init.instructions


# -- bad arguments -------------------------------------------------------------------------

BAD_CALLS = [
    ("mem_search", {"query": 42}),
    ("mem_search", {"query": ""}),
    ("mem_search", {"query": "x", "top_k": 10**20}),
    ("mem_search", {"query": "x", "top_k": 0}),
    ("mem_search", {}),
    ("mem_add", {"content": ""}),
    ("mem_add", {"content": "x", "file": "../../outside.md"}),
    ("mem_add", {"content": "x", "file": "/etc/evil.md"}),
    ("mem_add", {"content": "x", "file": "notes.pdf"}),
    ("mem_add", {"content": "x", "tags": "not-a-list"}),
    ("mem_add", {"content": "x", "title": "two\nlines"}),
    ("mem_add", {"content": "x", "timeout": -1}),
    ("mem_index", {"paths": ["/etc"]}),
    ("mem_index", {"paths": ["../../.."]}),
    ("mem_index", {"paths": []}),
    ("mem_index", {"paths": "/tmp"}),
    ("mem_dead_letter", {"id": 10**20}),
    ("mem_dead_letter", {"id": 12345}),
    ("mem_dead_letters", {"limit": -5}),
    ("mem_embedding_reset", {"confirm": True}),  # not offered without --allow-destructive
    ("no_such_tool", {}),
]


async def test_every_bad_argument_is_an_error_result_and_the_server_keeps_serving(
        mm: MM, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (mm.home / "notes").mkdir(parents=True)
    (mm.home / "notes" / "escape").symlink_to(outside)  # a symlink out of the roots
    with anyio.fail_after(240):
        async with stdio_session(mm.home, "--worker") as session:
            for tool, arguments in BAD_CALLS + [("mem_index", {"paths": ["escape"]}),
                                                ("mem_add", {"content": "x", "file": "escape/a.md"})]:
                text = await refused(session, tool, **arguments)
                assert text, (tool, arguments)
                assert (await call(session, "mem_queue_status"))["pending"] == 0  # still serving
    assert list(outside.iterdir()) == []
    assert mm("status", "--json").json()["chunks"] == 0


# -- durability ----------------------------------------------------------------------------


async def test_a_note_is_durable_before_mem_add_answers_even_if_the_server_is_killed(mm: MM) -> None:
    server = HttpServer(mm.home)  # no worker: nothing commits while the server lives
    try:
        with anyio.fail_after(120):
            async with http_session(server.url) as session:
                added = await call(session, "mem_add", content="The heron stood in the reeds.",
                                   title="Heron")
        assert added["state"] == "queued"
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
    finally:
        server.stop()
    run = mm("queue", "worker", "--once")
    assert run.code == 0
    hits = mm("search", "--json", "heron reeds").json()
    assert hits and hits[0]["source_file"] == added["file"]


async def test_wait_that_times_out_says_the_note_is_still_queued(mm: MM) -> None:
    with anyio.fail_after(120):
        async with stdio_session(mm.home) as session:  # no --worker and no worker process
            added = await call(session, "mem_add", content="Otters hold hands while they sleep.",
                               wait=True, timeout=0.2)
    assert added["state"] == "queued" and added["timed_out"] is True
    assert "no committer is running" in added["note"]
    mm("queue", "worker", "--once")


# -- HTTP doors ----------------------------------------------------------------------------


async def test_connections_the_http_listener_accepts_send_without_delay() -> None:
    """TCP_NODELAY on every accepted connection: without it each answer waited ~40 ms for the
    client's delayed ACK (headers and body go out in two writes). Checked the way uvicorn
    serves the listener: an asyncio server on that socket."""
    import socket

    from memwal.server import tcp_listener

    listener = tcp_listener("127.0.0.1", 0)
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(handle, sock=listener)
    async with server:
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        assert await asyncio.wait_for(accepted, 60) != 0
        writer.close()


def test_a_non_loopback_bind_without_a_token_is_refused(mm: MM) -> None:
    run = mm("serve", "--host", "0.0.0.0", "--port", "0", check=2)
    assert "--token" in run.stderr and "Traceback" not in run.stderr


async def test_http_doors_token_host_and_origin(mm: MM) -> None:
    token = "correct horse battery staple"
    server = HttpServer(mm.home, "--token", token)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-11-25"}
    try:
        async with httpx2.AsyncClient(timeout=60) as client:
            missing = await client.post(server.url, json=body, headers=headers)
            wrong = await client.post(server.url, json=body,
                                      headers={**headers, "Authorization": "Bearer nope"})
            auth = {**headers, "Authorization": f"Bearer {token}"}
            rebinding = await client.post(server.url, json=body,
                                          headers={**auth, "Host": "evil.example:80"})
            cross_site = await client.post(server.url, json=body,
                                           headers={**auth, "Origin": "http://evil.example"})
        assert (missing.status_code, wrong.status_code) == (401, 401)
        assert missing.headers["www-authenticate"] == "Bearer"
        assert rebinding.status_code == 421 and cross_site.status_code == 403
        with anyio.fail_after(120):
            async with http_session(server.url, token) as session:
                assert (await call(session, "mem_queue_status"))["pending"] == 0
    finally:
        server.stop()


# -- the seed scenario, through MCP --------------------------------------------------------


def write_folder(root: Path, files: int, word: str) -> Path:
    root.mkdir(parents=True)
    for n in range(files):
        (root / f"{word}-{n:04d}.md").write_text(f"# {word} {n}\n\nNote {n} about {word} number {n}.\n")
    return root


async def test_two_mcp_servers_with_two_models_never_mix_and_replay_commits_the_mismatches(
        mm: MM, tmp_path: Path) -> None:
    roots = tmp_path / "roots"
    write_config(mm.home, {"embedding": {"model": A}, "queue": {"batch_records": 4},
                           "index": {"roots": [str(roots)]}})
    big = write_folder(roots / "big", 1500, "alder")
    small = write_folder(roots / "small", 3, "birch")
    mm("index", str(small))  # the index starts on model A
    worker = start_worker(mm)
    try:
        with anyio.fail_after(600):
            # Writer A stops after its first batch until B's reset is queued: an event, so A's
            # later batches land behind the reset however fast A runs.
            held, resume = tmp_path / "a-held", tmp_path / "a-resume"
            async with stdio_session(mm.home, env={
                    "MM_EMBEDDING_MODEL": A, "MM_FAULT": "batch-enqueued",
                    "MM_FAULT_MARKER": str(held), "MM_FAULT_RESUME": str(resume)}) as writer_a, \
                    stdio_session(mm.home, "--allow-destructive",
                                  env={"MM_EMBEDDING_MODEL": B}) as writer_b:
                # B cannot write while A is the index's model: the gate says so, nothing is queued.
                gate = await refused(writer_b, "mem_add", content="Beeches keep their leaves.")
                assert A in gate and B in gate and "mem_embedding_reset" in gate
                # Writer A indexes a big folder; once its first batch is queued, B switches the
                # index to B, so A's later batches land behind the reset.
                indexing = asyncio.create_task(call(writer_a, "mem_index", paths=[str(big)]))
                await asyncio.to_thread(poll, lambda: held.exists() or indexing.done(),
                                        "writer A's first batch", 120)
                assert not indexing.done(), indexing.result()
                reset = await call(writer_b, "mem_embedding_reset", confirm=True)
                resume.write_text("go")
                report = await indexing
                assert report["records_enqueued"] > 0 and reset["batch_id"]
                added_b = await call(writer_b, "mem_add", content="Beeches keep their leaves.",
                                     wait=True)
                assert added_b["state"] == "committed" and added_b["dead_lettered"] == 0
                # Every mismatch is a dead letter of model A; no A vector is left anywhere.
                listed = await call(writer_b, "mem_dead_letters", limit=1000)
                letters = listed["dead_letters"]
                doctor = await call(writer_b, "mem_doctor")
                assert doctor["ok"], doctor
                assert set(doctor["vectors_by_fingerprint"]) <= {reset["model"]["fingerprint"]}
                assert {(d["reason"], d["fingerprint"].split("/")[0]) for d in letters} <= \
                    {("fingerprint_mismatch", A)}
                # Replay after the reset, re-embedded with B: every mismatch commits.
                replay = await call(writer_b, "mem_replay_dead_letters", all=True, reembed=True)
                assert replay["replayed"] == listed["total"] >= len(letters)
    finally:
        stop(worker)
    mm("queue", "worker", "--once")
    assert mm("queue", "dead-letters", "list", "--json").json() == []
    status = mm("status", "--json").json()
    assert list(status["vectors_by_fingerprint"]) == [status["active_model"]["fingerprint"]]
    assert status["active_model"]["name"] == B
    assert letters, "writer A finished before the reset: no batch landed behind it"


# -- the README's client configuration, pasted as is ---------------------------------------


def readme_servers() -> list[dict[str, Any]]:
    import json
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", readme, re.S)]
    return [b["mcpServers"]["memwal"] for b in blocks if "mcpServers" in b]


async def test_the_readme_stdio_snippet_starts_a_working_server(tmp_path: Path) -> None:
    (entry,) = [e for e in readme_servers() if "command" in e]
    home = tmp_path / "user"  # the snippet's home is ~/.memwal of whoever launches it
    write_config(home / ".memwal", {"embedding": {"model": A}})
    env = mm_env({"HOME": str(home), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env)
    with anyio.fail_after(180):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            added = await call(session, "mem_add", content="Snippets should work as pasted.",
                               wait=True)
            assert added["state"] == "committed"
            assert (await call(session, "mem_search", query="snippets pasted"))["hits"]
    assert (home / ".memwal" / "index.sqlite3").exists()


async def test_the_readme_http_snippet_names_the_default_address_of_mm_serve(mm: MM) -> None:
    (entry,) = [e for e in readme_servers() if "url" in e]
    assert entry["type"] == "http" and entry["url"] == "http://127.0.0.1:8765/mcp"
    assert "[default: 8765;" in " ".join(mm("serve", "--help").stdout.split())  # plain help
    server = HttpServer(mm.home, "--worker")  # the same server on a free port: tests run in parallel
    try:
        assert server.url.endswith("/mcp") and server.url.startswith("http://127.0.0.1:")
        with anyio.fail_after(120):
            async with http_session(server.url) as session:
                assert (await call(session, "mem_queue_status"))["committer"]["running"]
    finally:
        server.stop()


# -- `mm search` asks a running `mm serve` -------------------------------------------------


def local_stats(home: Path) -> int:
    """How many searches the home's running server answered over its local socket."""
    from memwal.localsearch import VERSION, ask

    answer = ask(home, {"v": VERSION, "stats": True})
    assert answer is not None, "no server answers on the home's socket"
    return answer["answered"]


SEARCHES = [("--json", "lighthouse gulls"), ("lighthouse",), ("-k", "2", "--json", "gulls"),
            ("--top-k=1", "--json", "dawn"), ("--max-per-doc", "1", "--source", "n/",
                                                     "--json", "keeper")]


def test_mm_search_is_answered_by_a_running_server_with_the_same_output(mm: MM) -> None:
    mm("index", "--no-wait", str(write_notes(mm.home.parent / "n", {
        "gulls.md": "# Gulls\n\nThe lighthouse keeper feeds the gulls at dawn.\n",
        "otters.md": "# Otters\n\nOtters hold hands while they sleep.\n"})))
    mm("queue", "worker", "--once")
    direct = [mm("search", *args) for args in SEARCHES]
    server = HttpServer(mm.home)
    try:
        before = local_stats(mm.home)
        served = [mm("search", *args) for args in SEARCHES]
        assert local_stats(mm.home) == before + len(SEARCHES)
        for one, other in zip(direct, served):
            assert (one.code, one.stdout, one.stderr) == (other.code, other.stdout, other.stderr)
        # Other settings than the server's, or a form the fast path does not read: in-process.
        mm("search", "--json", "gulls", env={"MM_SEARCH_TOP_K": "1"})
        mm("search", "--help")
        assert local_stats(mm.home) == before + len(SEARCHES)
        assert oct((mm.home / "serve.sock").stat().st_mode & 0o777) == "0o600"
    finally:
        server.stop()
    assert not (mm.home / "serve.sock").exists()


def write_notes(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


# -- many agents on one home ---------------------------------------------------------------


def committer_pid(mm: MM) -> int | None:
    committer = mm("queue", "status", "--json").json()["committer"]
    return committer["pid"] if committer["running"] else None


def is_stdio_worker_server(pid: int) -> bool:
    """Whether `pid` is a `mm mcp --worker` (read from its command line)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"mcp" in args and b"--worker" in args


async def test_the_readme_snippet_works_for_three_agents_next_to_a_worker_and_one_takes_over(
        tmp_path: Path) -> None:
    (entry,) = [e for e in readme_servers() if "command" in e]
    user = tmp_path / "user"  # the snippet's home is ~/.memwal of whoever launches it
    mm = MM(user / ".memwal")
    write_config(mm.home, {"embedding": {"model": A}})
    env = mm_env({"HOME": str(user), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    worker = start_worker(mm)
    poll(lambda: committer_pid(mm) == worker.pid, "the worker to take the committer role")
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env)
    try:
        with anyio.fail_after(300):
            async with stdio_client(params) as (r1, w1), stdio_client(params) as (r2, w2), \
                    stdio_client(params) as (r3, w3), ClientSession(r1, w1) as one, \
                    ClientSession(r2, w2) as two, ClientSession(r3, w3) as three:
                agents = [one, two, three]  # the three processes are started at once
                await asyncio.gather(*(agent.initialize() for agent in agents))
                added = await asyncio.gather(*(
                    call(agent, "mem_add", content=f"Agent {n} keeps the {word} ledger.", wait=True)
                    for n, (agent, word) in enumerate(zip(agents, ["amber", "cobalt", "saffron"]))))
                assert all(a["state"] == "committed" and a["committed"] > 0 for a in added), added
                await found_by_all(agents, {"amber": added[0], "cobalt": added[1],
                                            "saffron": added[2]})
                assert committer_pid(mm) == worker.pid  # the agents were producers meanwhile
                worker.kill()  # SIGKILL: no goodbye; the kernel frees the lock
                worker.wait(timeout=60)
                heir = poll(lambda: committer_pid(mm), "an agent to take the committer role")
                assert heir != worker.pid and is_stdio_worker_server(heir), heir
                says = [(await agent.call_tool("mem_queue_status", {})).content[0].text
                        for agent in agents]
                assert sum("this server" in text for text in says) == 1, says
                later = await call(two, "mem_add", content="After the worker, the heron ledger.",
                                   wait=True)
                assert later["state"] == "committed" and later["committed"] > 0
                await found_by_all(agents, {"heron": later})
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.communicate(timeout=60)
    assert_doctor_ok(mm.home)


async def test_an_http_server_with_worker_starts_beside_a_worker_and_takes_over_when_it_stops(
        mm: MM) -> None:
    worker = worker_holding_the_role(mm)
    server = HttpServer(mm.home, "--worker")  # it used to exit 3 here
    try:
        with anyio.fail_after(180):
            async with http_session(server.url) as session:
                added = await call(session, "mem_add", content="Swifts sleep on the wing.",
                                   wait=True)
                assert added["state"] == "committed" and committer_pid(mm) == worker.pid
                stop(worker)  # SIGTERM: the worker ends cleanly, the server takes over
                poll(lambda: committer_pid(mm) == server.process.pid, "the server to take the role")
                # `mm queue worker` keeps its contract: exit 3 while another committer runs.
                busy = mm("queue", "worker", "--once", check=3)
                assert str(server.process.pid) in busy.stderr
                later = await call(session, "mem_add", content="Swallows skim the pond.", wait=True)
                assert later["state"] == "committed"
                found = await call(session, "mem_search", query="swallows skim pond")
                assert found["hits"][0]["source_file"] == later["file"]
    finally:
        server.stop()
        stop(worker)
    assert committer_pid(mm) is None  # the server gave the role up when it stopped


async def found_by_all(agents: list[ClientSession], notes: dict[str, dict[str, Any]]) -> None:
    """Every agent's mem_search finds every note (by its distinct word) first."""
    for agent in agents:
        for word, added in notes.items():
            found = await call(agent, "mem_search", query=f"{word} ledger")
            assert found["hits"] and found["hits"][0]["source_file"] == added["file"], (word, found)


async def test_purge_and_replay_through_mcp_while_another_worker_holds_the_role(
        mm: MM, notes: Path) -> None:
    four_dead_letters_replayable(mm, mm.home, notes)
    ids = [r["id"] for r in mm("queue", "dead-letters", "list", "--json").json()]
    worker = worker_holding_the_role(mm)
    try:
        with anyio.fail_after(180):
            async with stdio_session(mm.home, "--worker", "--allow-destructive") as session:
                replay = await call(session, "mem_replay_dead_letters", ids=ids[:2])
                assert (replay["state"], replay["replayed"], replay["already_replayed"],
                        replay["committed"]) == ("committed", 2, 0, 2), replay
                purged = await call(session, "mem_purge_dead_letters", replayed=True, confirm=True)
                assert purged == {"state": "committed", "purged": 2}
                purged = await call(session, "mem_purge_dead_letters", ids=[ids[2]], confirm=True)
                assert purged["purged"] == 1
                left = await call(session, "mem_dead_letters", include_replayed=True)
                assert [r["id"] for r in left["dead_letters"]] == ids[3:]
                assert committer_pid(mm) == worker.pid  # the worker committed all of it
    finally:
        stop(worker)


async def test_an_agent_migrates_the_memory_and_follows_it_in_mem_status(
        mm: MM, tmp_path: Path) -> None:
    """mem_embedding_reset mode=migrate over real MCP (HTTP): the server migrates in the
    background while mem_search keeps answering with its vector leg; mem_status follows it."""
    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(10):
        (notes / f"{i}.md").write_text(f"# Note {i}\n\nJupiter moon number {i}.\n")
    mm("index", str(notes))
    server = HttpServer(mm.home, "--worker", "--allow-destructive",
                        env={"MM_EMBEDDING_MODEL": "hash-384-b", "MM_SEARCH_BM25_WEIGHT": "0"})
    try:
        async with http_session(server.url) as session:
            started = await call(session, "mem_embedding_reset", confirm=True, mode="migrate")
            assert started["running"] or started["report"]
            deadline = time.monotonic() + 120  # bounded waiting, not a timing assert
            while time.monotonic() < deadline:
                hits = await call(session, "mem_search", query="Jupiter moon")
                assert hits["hits"] and not any("keyword results only" in w
                                                for w in hits.get("warnings", [])), hits
                # Before the migration is committed, the query is embedded with the index's
                # model, and the warning says what to do in MCP terms.
                assert all("mem_embedding_reset" in w and "mm " not in w
                           for w in hits.get("warnings", [])), hits
                status = await call(session, "mem_status")
                if status["active_model"]["name"] == "hash-384-b":
                    break
            assert status["active_model"]["name"] == "hash-384-b", status["migration"]
            assert status["migration"] is None
            assert set(status["vectors_by_fingerprint"]) == {status["active_model"]["fingerprint"]}
    finally:
        server.stop()
