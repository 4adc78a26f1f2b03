"""The Redis queue backend against a real redis-server: writers on other machines, one committer
per queue, faults, a kill storm with the server itself killed, and the seed scenario."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from helpers import (MM, assert_doctor_ok, batch, home_settings, mm_env, poll, producer_queue,
                     upsert, write_config)
from memwal import store
from memwal.config import load_settings
from memwal.errors import QueueError
from memwal.producer import enqueue_items
from memwal.queue import QueueCounts, Role, open_queue
from memwal.queue import redis as redis_backend
from memwal.records import encode_batch
from memwal.worker import committer_session
from redis_server import LosingProxy, RedisServer
from test_crash import run_storm

A, B = "hash-384", "hash-384-b"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


def machine(tmp_path: Path, name: str, redis: RedisServer, model: str = A, **config: dict) -> MM:
    """A home on "another machine": its own folder, the shared queue on the Redis server."""
    home = tmp_path / name
    write_config(home, {"embedding": {"model": model},
                        "queue": {"backend": "redis", "url": redis.url, "name": "team-memory"},
                        **config})
    return MM(home)


def notes(root: Path, files: int, word: str = "heron") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        (root / f"{word}-{n}.md").write_text(f"# {word} {n}\n\nThe {word} number {n} waits.\n")
    return root


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=60)[1]


def test_a_writer_on_another_machine_indexes_through_redis_and_an_unchanged_rerun_sends_nothing(
        tmp_path: Path, redis: RedisServer) -> None:
    committer, writer = machine(tmp_path, "server", redis), machine(tmp_path, "laptop", redis)
    worker = committer.popen("queue", "worker")
    try:
        folder = notes(tmp_path / "notes", 12)
        first = writer("index", "--json", str(folder)).json()  # waits: the server commits
        assert (first["new"], first["committed"], first["dead_lettered"]) == (12, 24, 0)
        assert not (writer.home / "index.sqlite3").exists()  # the laptop holds no index
        again = writer("index", "--json", str(folder)).json()
        assert (again["unchanged"], again["records_enqueued"]) == (12, 0)  # diffed remotely
        (folder / "heron-3.md").write_text("# heron 3\n\nThe heron number 3 flew off.\n")
        (folder / "heron-4.md").unlink()
        changed = writer("index", "--json", str(folder)).json()
        assert (changed["new"], changed["unchanged"], changed["deleted"]) == (1, 10, 1)
        hits = committer("search", "--json", "heron flew").json()
        assert Path(hits[0]["source_file"]).name == "heron-3.md"
        status = writer("queue", "status", "--json").json()
        assert status["committer"]["running"] and "pid" in status["committer"]["holder"]
    finally:
        stop(worker)
    assert_doctor_ok(committer.home)


def test_a_writer_with_another_model_is_told_before_it_embeds_anything(
        tmp_path: Path, redis: RedisServer) -> None:
    committer, writer = machine(tmp_path, "server", redis), machine(tmp_path, "laptop", redis, B)
    folder = notes(tmp_path / "notes", 3)
    committer("index", "--no-wait", str(folder))
    committer("queue", "worker", "--once")
    run = writer("index", str(folder), check=2)
    assert A in run.stderr and B in run.stderr and "embedding-reset" in run.stderr
    assert writer("queue", "status", "--json").json()["pending"] == 0


def test_waiting_for_a_shared_queue_without_a_committer_says_so_and_keeps_the_batches(
        tmp_path: Path, redis: RedisServer) -> None:
    writer = machine(tmp_path, "laptop", redis)
    run = writer("index", str(notes(tmp_path / "notes", 2)), check=1)
    assert "no committer is running" in run.stderr and "--no-wait" in run.stderr
    assert writer("queue", "status", "--json").json()["pending"] == 1


def test_a_batch_redelivered_after_a_kill_between_commit_and_acknowledge_reports_its_counts(
        tmp_path: Path, redis: RedisServer) -> None:
    """The writer waits on counts the committer publishes. Killed after the commit, before the
    acknowledge and the publication, the committer's successor meets the batch again as a
    duplicate: it publishes the ledger's counts, not the nothing the redelivery did."""
    committer, writer = machine(tmp_path, "server", redis), machine(tmp_path, "laptop", redis)
    marker = tmp_path / "at-the-fault"
    worker = committer.popen("queue", "worker", env={"MM_FAULT": "group-committed",
                                                     "MM_FAULT_MARKER": str(marker)})
    waiting = writer.popen("index", "--json", str(notes(tmp_path / "notes", 12)))
    try:
        poll(marker.exists, "the committer to commit the batch", timeout=120)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=60)
        worker = committer.popen("queue", "worker")
        out, err = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, err
        report = json.loads(out)
        assert (report["new"], report["committed"], report["dead_lettered"]) == (12, 24, 0)
    finally:
        stop(worker)
        if waiting.poll() is None:
            waiting.kill()
    assert_doctor_ok(committer.home)


def test_exactly_one_committer_per_queue_across_machines(tmp_path: Path, redis: RedisServer) -> None:
    """Two machines with the same index (a copy, e.g. a standby): one committer at a time. (A
    committer of another index is refused the queue outright: test_queue_identity.py.)"""
    first, second = machine(tmp_path, "server", redis), machine(tmp_path, "other-server", redis)
    first("index", "--no-wait", str(notes(tmp_path / "notes", 1)))
    first("queue", "worker", "--once")
    shutil.copy(first.home / "index.sqlite3", second.home / "index.sqlite3")  # nothing runs
    worker = first.popen("queue", "worker")
    try:
        poll(lambda: second("queue", "status", "--json").json()["committer"]["running"],
             "the first worker to claim the queue", 60)
        run = second("queue", "worker", "--once", check=3)
        assert "through the Redis queue" in run.stderr and "pid" in run.stderr
    finally:
        stop(worker)
    second("queue", "worker", "--once")  # the claim is free once the first stops
    assert_doctor_ok(second.home)


def test_an_unreachable_server_fails_clearly_and_the_worker_resumes_after_a_restart(
        tmp_path: Path, redis: RedisServer) -> None:
    committer, writer = machine(tmp_path, "server", redis), machine(tmp_path, "laptop", redis)
    worker = committer.popen("queue", "worker")
    try:
        writer("index", str(notes(tmp_path / "before", 2, "otter")))
        redis.kill()
        run = writer("index", "--no-wait", str(notes(tmp_path / "during", 2, "badger")), check=1)
        line = [x for x in run.stderr.splitlines() if x.startswith("error:")][0]
        assert "cannot be reached" in line and "nothing was enqueued" in line, line
        redis.start()
        later = writer("index", "--json", str(tmp_path / "during")).json()  # waits for a commit
        assert later["committed"] == 4
    finally:
        log = stop(worker)
    assert "cannot be reached" in log and "Retrying" in log  # it waited, it did not die
    assert len(committer("search", "--json", "badger").json()) > 0
    assert_doctor_ok(committer.home)


def test_doctor_warns_when_the_server_can_lose_acknowledged_writes(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", appendfsync="everysec")
    try:
        home = machine(tmp_path, "server", server)
        home("index", "--no-wait", str(notes(tmp_path / "notes", 1)))
        home("queue", "worker", "--once")
        report = home("doctor", "--json").json()
        assert report["ok"] and any("appendfsync always" in w for w in report["warnings"])
    finally:
        server.stop()


def test_the_password_in_the_url_is_never_shown(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(home, {"queue": {"backend": "redis",
                                  "url": "redis://memwal:s3cret-pw@127.0.0.1:1/0"}})
    mm = MM(home)
    shown = mm("config", "show", "--json").json()["queue.url"]["value"]
    assert "s3cret-pw" not in shown and "***" in shown
    run = mm("queue", "status", check=None)
    assert run.code != 0 and "s3cret-pw" not in run.stdout + run.stderr
    bad = mm("status", env={"MM_QUEUE_URL": "http://user:s3cret-pw@host/"}, check=2)
    assert "s3cret-pw" not in bad.stdout + bad.stderr


@pytest.mark.no_doctor
def test_storm_with_the_worker_and_redis_server_killed_commits_everything_once(
        tmp_path: Path) -> None:
    seed = int(os.environ.get("MM_TEST_SEED", random.randrange(1 << 30)))
    print(f"seed {seed} (rerun with MM_TEST_SEED={seed})")
    server = RedisServer(tmp_path / "redis")
    restarts: list[int] = []

    def kill_redis(kill_number: int) -> None:
        if kill_number in (3, 7):  # at least twice, between committer kills
            server.kill()
            server.start()  # the append-only file (appendfsync always) brings everything back
            restarts.append(kill_number)

    try:
        run_storm(tmp_path, seed, kills=10, batches=30, producer_kills=1,
                  config={"queue": {"backend": "redis", "url": server.url}}, after_kill=kill_redis)
    finally:
        server.stop()
    assert restarts == [3, 7]


def test_the_seed_scenario_on_redis_never_mixes_and_replay_commits_the_mismatches(
        tmp_path: Path, redis: RedisServer) -> None:
    committer = machine(tmp_path, "server", redis)
    writer_a = machine(tmp_path, "laptop-a", redis, A)
    committer("index", "--no-wait", str(notes(tmp_path / "seed", 2)))  # the index starts on A
    committer("queue", "worker", "--once")
    settings_a = load_settings(writer_a.home, environ={})
    # Writer A (old model) keeps writing: some before the reset to B, some after it.
    enqueue_items(settings_a, [upsert(f"before {i}", source=f"/a/{i}.md") for i in range(5)])
    committer("embedding-reset", "--mode", "apply-current", "--yes", "--no-wait",
              env={"MM_EMBEDDING_MODEL": B})
    enqueue_items(settings_a, [upsert(f"after {i}", source=f"/a/late-{i}.md") for i in range(7)])
    committer("queue", "worker", "--once")
    status = committer("status", "--json", env={"MM_EMBEDDING_MODEL": B}).json()
    assert status["active_model"]["name"] == B
    assert set(status["vectors_by_fingerprint"]) <= {status["active_model"]["fingerprint"]}
    letters = committer("queue", "dead-letters", "list", "--json").json()
    assert len(letters) == 7 and {letter["reason"] for letter in letters} == {"fingerprint_mismatch"}
    replay = committer("queue", "dead-letters", "replay", "--all", "--reembed", "--no-wait",
                       "--json", env={"MM_EMBEDDING_MODEL": B}).json()
    assert replay["queued"] == 7  # queued, not yet replayed: --no-wait
    committer("queue", "worker", "--once")
    status = committer("queue", "status", "--json").json()
    assert (status["dead_letters"], status["ledger"]["dead_lettered"]) == (0, 7)
    assert committer("status", "--json", env={"MM_EMBEDDING_MODEL": B}).json()["chunks"] == 2 + 12
    assert_doctor_ok(committer.home)


async def test_an_agent_server_beside_another_machines_worker_stays_up_as_a_producer(
        tmp_path: Path, redis: RedisServer) -> None:
    """`mm mcp --worker` on a home whose shared queue is claimed by a worker elsewhere: the
    claim refuses it (CommitterBusy), and it stays a producer instead of dying."""
    first, agent_home = machine(tmp_path, "server", redis), machine(tmp_path, "laptop", redis)
    worker = first.popen("queue", "worker")
    try:
        poll(lambda: agent_home("queue", "status", "--json").json()["committer"]["running"],
             "the worker to claim the queue", 60)
        params = StdioServerParameters(command=sys.executable, env=mm_env(), args=[
            "-m", "memwal", "mcp", "--worker", "--home", str(agent_home.home)])
        with anyio.fail_after(180):
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                added = await session.call_tool("mem_add", {"content": "Terns nest on shingle.",
                                                            "wait": True}, read_timeout_seconds=120)
                assert not added.is_error, added.content
                assert added.structured_content["state"] == "committed"
                hits = first("search", "--json", "terns shingle").json()
                assert hits and hits[0]["source_file"] == added.structured_content["file"]
                # Still a producer after several tries at the claim: the worker commits.
                status = first("queue", "status", "--json").json()["committer"]
                assert status["pid"] == worker.pid, status
    finally:
        stop(worker)
    assert not (agent_home.home / "index.sqlite3").exists()  # a producer home grows no index


# -- leases never outlive their holder (issue 22, item 1) ----------------------------------


def script_marker(script: str) -> bytes:
    """What identifies one of the backend's Lua scripts on the wire: its SHA1 (EVALSHA)."""
    return hashlib.sha1(script.encode()).hexdigest().encode()


def ledger_positions(home: Path) -> list[int]:
    """Queue positions of the committed batches, in commit order."""
    with store.reading(home / "index.sqlite3") as conn:
        return [] if conn is None else [
            row[0] for row in conn.execute("SELECT position FROM ledger ORDER BY seq")]


@pytest.fixture
def proxy(tmp_path: Path, redis: RedisServer) -> Iterator[LosingProxy]:
    """A relay to the server that loses what a test plans, with the backend's scripts already
    loaded: the first call of a script otherwise fails NOSCRIPT and is sent again."""
    relay = LosingProxy(redis, tmp_path / "proxy.sock")
    warm = redis_backend.redis_queue(redis.url, "warm-up")
    try:
        assert warm.take_many(1, 1) == [] and warm.recover() == 0
    finally:
        warm.close()
    yield relay
    relay.close()


def test_a_take_whose_reply_is_lost_and_retried_hands_out_its_first_leases(
        tmp_path: Path, proxy: LosingProxy) -> None:
    """redis-py retries a command after a dropped connection. A take that ran on the server and
    lost its reply runs again: the retry must hand out the messages the first run leased, not
    lease the next ones and leave those stranded ahead of everything."""
    home = machine(tmp_path, "server", proxy)  # type: ignore[arg-type]
    queue = open_queue(home_settings(home.home), Role.COMMITTER)
    try:
        positions = [queue.put(b"m%d" % i) for i in range(5)]
        proxy.plan(script_marker(redis_backend._TAKE), "lose")
        taken = queue.take_many(2, 1 << 20)
        assert proxy.met == ["lose"]
        assert [d.position for d in taken] == positions[:2]
        assert queue.counts() == QueueCounts(pending=3, inflight=2)
        queue.acknowledge_many([d.position for d in taken])
        assert [d.position for d in queue.take_many(10, 1 << 20)] == positions[2:]
    finally:
        queue.close()


def test_a_committer_whose_recover_fails_after_an_outage_never_commits_past_what_it_held(
        tmp_path: Path, redis: RedisServer, proxy: LosingProxy) -> None:
    """The defect of issue 22: the committer's take runs on the server but the connection dies
    with its reply (and stays down through redis-py's retries); its recover then fails too; the
    next drain reaches the server. The leases of that first take must go back before anything is
    taken: positions 1-2 are committed first, not stranded while 3-6 are committed past them."""
    home = machine(tmp_path, "server", proxy, queue={  # type: ignore[arg-type]
        "backend": "redis", "url": proxy.url, "name": "team-memory", "commit_group": 2})
    settings = home_settings(home.home)
    queue = producer_queue(home.home)
    try:
        for i in range(6):
            queue.put(encode_batch(batch(upsert(f"note {i}", source=f"/n/{i}.md"))))
    finally:
        queue.close()
    stop, waits = threading.Event(), []
    with committer_session(settings) as committer:
        proxy.plan(script_marker(redis_backend._TAKE), "lose", *["refuse"] * len(redis_backend.RETRIES))
        proxy.plan(script_marker(redis_backend._RECOVER), *["refuse"] * (len(redis_backend.RETRIES) + 1))
        runner = threading.Thread(target=committer.run, args=(stop, 0.05),
                                  kwargs={"on_wait": waits.append})
        runner.start()
        try:
            poll(lambda: 6 in ledger_positions(home.home), "the last batch to be committed", 120)
        finally:
            stop.set()
            runner.join()
    assert proxy.planned() == 0 and waits, "the outage did not happen as planned"
    assert ledger_positions(home.home) == [1, 2, 3, 4, 5, 6]
    assert queue_counts(home) == QueueCounts(0, 0)
    assert_doctor_ok(home.home)


def queue_counts(home: MM) -> QueueCounts:
    queue = open_queue(home_settings(home.home), Role.READER)
    try:
        return queue.counts()
    finally:
        queue.close()


def failing_doctor(mm: MM) -> dict | None:
    run = mm("doctor", "--json", check=None)
    return run.json() if run.code != 0 else None


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_doctor_fails_on_leases_older_than_the_lease_timeout_while_a_committer_runs(
        tmp_path: Path, redis: RedisServer, backend: str) -> None:
    """A live committer holds a lease for one group commit. One that holds leases longer than
    `queue.lease_timeout` has lost track of them (and order waits on them): doctor fails and
    says which positions, since when. Here the committer is held after its commit, before the
    acknowledge, and keeps running (its lock, its claim, its heartbeat)."""
    queue: dict = {"backend": backend, "lease_timeout": 1, "batch_records": 2}
    if backend == "redis":
        queue.update(url=redis.url, name="team-memory")
    mm = machine(tmp_path, "server", redis, queue=queue)
    mm("index", "--no-wait", str(notes(tmp_path / "notes", 3)))  # a file a batch: positions 1-3
    marker = tmp_path / "at-the-fault"
    worker = mm.popen("queue", "worker", env={"MM_FAULT": "group-committed",
                                              "MM_FAULT_MARKER": str(marker)})
    try:
        poll(marker.exists, "the committer to commit its group and stop before acknowledging", 120)
        report = poll(lambda: failing_doctor(mm), "doctor to see the leases outlive the timeout")
        check = next(c for c in report["checks"] if c["name"] == "nothing_stuck_in_flight")
        assert not check["ok"], report
        assert "positions 1-3, since " in check["detail"] and "lease_timeout (1 s)" in check["detail"]
        assert f"pid {worker.pid}" in check["detail"], check["detail"]
    finally:
        worker.kill()
        worker.wait(timeout=60)
    mm("queue", "worker", "--once")  # puts them back; the ledger skips what was committed
    assert ledger_positions(mm.home) == [1, 2, 3]
    assert_doctor_ok(mm.home)


def test_a_committer_keeps_its_leases_while_it_heartbeats_and_loses_them_once_it_stops(
        tmp_path: Path, redis: RedisServer) -> None:
    """Leases last `queue.lease_timeout` unless their committer renews them (with its claim).
    A committer held for longer keeps them; once it stops heartbeating (SIGSTOP: alive, silent)
    the next take puts them back and hands out the first, without any restart."""
    mm = machine(tmp_path, "server", redis, queue={
        "backend": "redis", "url": redis.url, "name": "team-memory", "lease_timeout": 6,
        "batch_records": 2})  # renewed every 2 s: a loaded machine may stall the worker a while
    mm("index", "--no-wait", str(notes(tmp_path / "notes", 3)))
    marker = tmp_path / "at-the-fault"
    worker = mm.popen("queue", "worker", env={"MM_FAULT": "group-committed",
                                              "MM_FAULT_MARKER": str(marker)})
    other = open_queue(home_settings(mm.home), Role.COMMITTER)  # a second session, no claim
    try:
        poll(marker.exists, "the committer to commit its group and stop before acknowledging", 120)
        poll(lambda: len(other.stuck(6)) == 3, "the leases to outlive the lease timeout")
        assert other.take() is None  # renewed: still the live committer's
        os.kill(worker.pid, signal.SIGSTOP)
        first = poll(other.take, "the silent committer's leases to lapse and be put back")
        assert first.position == 1 and other.counts() == QueueCounts(pending=2, inflight=1)
        other.recover()
    finally:
        other.close()
        worker.kill()  # SIGKILL ends a stopped process too
        worker.wait(timeout=60)
    mm("queue", "worker", "--once")
    assert ledger_positions(mm.home) == [1, 2, 3] and queue_counts(mm) == QueueCounts(0, 0)
    assert_doctor_ok(mm.home)


# -- the outage storm ---------------------------------------------------------------------

# How long a long outage lasts past the worker's first "Retrying" line: the fault's length, not a
# wait for anything. The worker's recover then fails too (redis-py retries ~9 s), and the server
# is back before its next take gives up: the moment the committer of issue 22 stranded its leases.
OUTAGE_PAST_RETRY = 12.0


class Lines:
    """The lines a process writes to a pipe, collected by a thread as they come."""

    def __init__(self, pipe) -> None:  # type: ignore[no-untyped-def]
        self.lines: list[str] = []
        self.thread = threading.Thread(target=lambda: self.lines.extend(pipe), daemon=True)
        self.thread.start()

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))


class Probe:
    """The test's own reads of the shared queue on the server (None while it is down)."""

    def __init__(self, server: RedisServer, name: str) -> None:
        import redis as redis_py

        self.client = redis_py.Redis(unix_socket_path=str(server.socket), socket_timeout=5)
        self.errors = (redis_py.ConnectionError, redis_py.TimeoutError, FileNotFoundError)
        self.prefix = f"memwal:{name}"

    def _read(self, read):  # type: ignore[no-untyped-def]
        try:
            return read()
        except self.errors:
            return None

    def enqueued(self) -> int:
        return int(self._read(lambda: self.client.get(f"{self.prefix}:seq")) or 0)

    def counts(self) -> tuple[int, int] | None:
        return self._read(lambda: (self.client.zcard(f"{self.prefix}:pending"),
                                   self.client.zcard(f"{self.prefix}:inflight")))


def write_round(folder: Path, producer: int, round_no: int, files: int = 4) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for k in range(files):
        path = folder / f"note-{k}.md"
        path.write_text(f"# Producer {producer} round {round_no} note {k}\n\n"
                        f"Marker p{producer}r{round_no}n{k}: written during the outage storm.\n")
        paths.append(path)
    return paths


@pytest.mark.torture
@pytest.mark.no_doctor
def test_redis_outage_storm_keeps_commit_order_and_loses_nothing(tmp_path: Path) -> None:
    """redis-server (appendonly, fsync always) killed by SIGKILL and SIGTERM in turn and started
    again, while two producer homes enqueue with `mm index --no-wait` and one `mm queue worker`
    commits on a third. Outages strike while work flows (and the long ones while the worker
    holds leases); short ones end at once (redis-py's retries ride through them), long ones
    outlast the worker's retries and its recover. Afterwards nothing is in flight, every batch a
    producer reported durable is committed once, the ledger's commit order is the queue's
    order, and doctor passes."""
    outages = int(os.environ.get("MM_TORTURE_OUTAGES", "6"))
    server = RedisServer(tmp_path / "redis")
    queue = {"backend": "redis", "url": server.url, "name": "shared"}

    def home(name: str, **extra: object) -> MM:
        write_config(tmp_path / name, {"queue": {**queue, **extra},
                                       "embedding": {"model": "hash-384"}})
        return MM(tmp_path / name)

    committer = home("committer")
    producers = [home(f"producer-{n}", batch_records=2) for n in range(2)]  # a batch a file
    probe = Probe(server, "shared")
    worker = committer.popen("queue", "worker")
    assert worker.stderr is not None and worker.stdout is not None
    said, _ = Lines(worker.stderr), Lines(worker.stdout)
    enough = threading.Event()  # the producers finish their round and stop once it is set
    abandoned = threading.Event()  # the test failed: the producers stop at once
    reported: list[str] = []  # batch ids the producers reported durable
    written: list[Path] = []
    failures: list[str] = []

    def produce(number: int, mm: MM) -> None:
        round_no = 0
        try:
            while not enough.is_set():
                written.extend(write_round(tmp_path / f"p{number}" / f"r{round_no}", number,
                                           round_no))
                # A run the outage stopped is run again, as a user would: what it enqueued
                # before the error is durable, and the diff re-sends what is not committed yet.
                while (run := mm("index", "--no-wait", "--json", str(tmp_path / f"p{number}" /
                                 f"r{round_no}"), check=None, timeout=300)).code != 0:
                    assert run.code == 1 and "cannot be reached" in run.stderr, str(run)
                    if abandoned.is_set():
                        return
                reported.extend(run.json()["batch_ids"])
                round_no += 1
        except BaseException as exc:  # surfaced by the main thread
            failures.append(f"producer {number}: {exc}")

    poll(lambda: said.count("committer running") or worker.poll() is not None,
         "the worker to take the role (its index is created then)", 120)
    threads = [threading.Thread(target=produce, args=(n, mm), daemon=True)
               for n, mm in enumerate(producers)]
    for thread in threads:
        thread.start()

    def committed() -> int:
        return len(ledger_positions(committer.home))

    def worker_alive() -> bool:
        assert worker.poll() is None, "the worker died:\n" + "".join(said.lines[-30:])
        assert not failures, failures
        return True

    try:
        long_outages = 0
        for number in range(outages):
            kill = number % 2 == 0          # SIGKILL and SIGTERM in turn
            long = number % 4 in (0, 3)     # each signal gets long and short outages
            past_retry = OUTAGE_PAST_RETRY if number % 4 == 0 else 0.0
            enqueued, done = probe.enqueued(), committed()
            poll(lambda: worker_alive() and probe.enqueued() >= enqueued + 2 and
                 committed() > done and (not long or (probe.counts() or (0, 0))[1] > 0),
                 f"outage {number}: work flowing (and leases held) to strike on", 300, every=0.005)
            retries = said.count("Retrying")
            server.kill() if kill else server.stop()
            if long:
                long_outages += 1
                poll(lambda: worker_alive() and said.count("Retrying") > retries,
                     f"outage {number}: the worker to give up retrying and say so", 120)
                time.sleep(past_retry)  # the fault's length (see OUTAGE_PAST_RETRY)
            server.start()
        enough.set()
        for thread in threads:
            thread.join(timeout=600)
        assert not failures, failures
        poll(lambda: worker_alive() and probe.counts() == (0, 0),
             "the worker to commit everything and hold nothing in flight", 180)
        assert said.count("Retrying") >= long_outages
        print(f"{outages} outages ({long_outages} long): the worker retried "
              f"{said.count('Retrying')} times; {len(reported)} batches reported durable, "
              f"{committed()} committed, queue position {probe.enqueued()}")
    finally:
        enough.set()
        abandoned.set()
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=120)
        said.thread.join(timeout=60)
        server.stop()
    log = "".join(said.lines)
    assert "Traceback" not in log and worker.returncode == 0, log[-3000:]
    check_storm_outcome(committer.home, reported, written)
    server.start()  # for doctor, which reads the queue too
    try:
        assert_doctor_ok(committer.home)
    finally:
        server.stop()


def check_storm_outcome(home: Path, reported: list[str], written: list[Path]) -> None:
    assert reported, "the producers reported nothing durable"
    with store.reading(home / "index.sqlite3") as conn:
        assert conn is not None
        ledger = conn.execute("SELECT batch_id, position FROM ledger ORDER BY seq").fetchall()
        sources = [row[0] for row in conn.execute("SELECT source_file FROM chunks")]
        letters = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    ids = [batch_id for batch_id, _ in ledger]
    positions = [position for _, position in ledger]
    lost = set(reported) - set(ids)
    assert not lost, f"{len(lost)} batches reported durable were never committed"
    assert len(ids) == len(set(ids)), "a batch committed twice"
    assert positions == sorted(positions) and len(set(positions)) == len(positions), \
        f"commit order is not queue order: {[p for a, p in zip(positions, positions[1:]) if p < a][:10]}"
    assert sorted(sources) == sorted(str(path.resolve()) for path in written), \
        "a file is missing from the index or indexed twice"
    assert letters == 0


def test_a_committer_whose_claim_was_taken_over_takes_nothing(tmp_path: Path, redis: RedisServer) -> None:
    """Its claim expired while the server was away and another committer holds the queue now:
    it must not lease past the new holder, even before its renewal thread notices."""
    mm = machine(tmp_path, "server", redis)
    queue = open_queue(home_settings(mm.home), Role.COMMITTER)
    try:
        queue.put(b"first")
        with queue.claim():
            probe = redis_backend.redis_queue(redis.url, "team-memory")
            probe.storage.conn.set(probe.storage.claim_key, "other-host pid 1 cafe")  # taken over
            probe.close()
            with pytest.raises(QueueError, match="lost its claim"):
                queue.take()
        assert queue.counts() == QueueCounts(pending=1, inflight=0)
    finally:
        queue.close()


def test_a_migration_on_the_committers_machine_while_writers_elsewhere_keep_writing(
        tmp_path: Path, redis: RedisServer) -> None:
    """The migrator runs where the index is; writers on other machines learn of it from what
    the committer published and send both vectors; after the cutover one model remains."""
    server = machine(tmp_path, "server", redis)
    old_laptop, new_laptop = machine(tmp_path, "old", redis, A), machine(tmp_path, "new", redis, B)
    worker = server.popen("queue", "worker")
    try:
        server("index", str(notes(tmp_path / "notes", 6)))
        refused = new_laptop("embedding-reset", "--mode", "migrate", check=2)
        assert "machine of `mm queue worker`" in refused.stderr
        marker, resume = tmp_path / "held", tmp_path / "resume"
        migrator = server.popen("embedding-reset", "--mode", "migrate", "--json", env={
            "MM_EMBEDDING_MODEL": B, "MM_FAULT": "migration-batch",
            "MM_FAULT_MARKER": str(marker), "MM_FAULT_RESUME": str(resume)})
        poll(marker.exists, "the migrator to hold after its first batch")
        old_laptop("index", str(notes(tmp_path / "old-notes", 3, "egret")))
        new_laptop("index", str(notes(tmp_path / "new-notes", 3, "ibis")))
        resume.write_text("go")
        out, err = migrator.communicate(timeout=120)
        assert migrator.returncode == 0 and json.loads(out)["cut_over"], err
        gate = old_laptop("index", str(tmp_path / "old-notes"), check=2)
        assert B in gate.stderr
        status = server("status", "--json", env={"MM_EMBEDDING_MODEL": B}).json()
        assert status["chunks"] == 12 and list(status["vectors_by_fingerprint"]) == [
            status["active_model"]["fingerprint"]] and status["active_model"]["name"] == B
    finally:
        stop(worker)
    assert_doctor_ok(server.home)
