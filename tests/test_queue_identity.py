"""A queue belongs to one memory, and losing it is loud (issue 22, item 7).

Two machines whose homes have the same path, two indexes on one named Redis queue, a FLUSHDB with
batches pending, a SQLite queue file deleted and re-created, and homes from before home ids: real
`mm` processes against a real redis-server.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from helpers import MM, Run, assert_doctor_ok, mm_command, mm_env, ok, poll, producer_queue, write_config
from memwal.config import path_queue_name
from memwal.queue.redis import redis_queue
from redis_server import RedisServer

GARBAGE = b"\xc1 this is not a batch"  # 0xc1 is never valid msgpack: an undecodable batch


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


def notes(root: Path, word: str, files: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        (root / f"{word}-{n}.md").write_text(f"# {word} {n}\n\nThe {word} number {n} waits here.\n")
    return root


def redis_home(tmp_path: Path, name: str, redis: RedisServer, queue_name: str | None = None) -> MM:
    queue: dict = {"backend": "redis", "url": redis.url}
    if queue_name:
        queue["name"] = queue_name
    write_config(tmp_path / name, {"embedding": {"model": "hash-384"}, "queue": queue})
    return MM(tmp_path / name)


def sources(index: Path) -> set[str]:
    """The names of the files an index holds chunks of (read from outside, read-only)."""
    conn = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
    try:
        return {Path(row[0]).name for row in conn.execute("SELECT DISTINCT source_file FROM chunks")}
    finally:
        conn.close()


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=60)[1]


# -- two machines, one home path ----------------------------------------------------------------


class Machine:
    """A "machine" of its own: a mount namespace (and hostname) in which its own folder is mounted
    over one shared home path, so every `mm` it runs sees a home at exactly the same path as the
    other machine's. Needs root and unshare(1)."""

    def __init__(self, name: str, private: Path, home: Path) -> None:
        self.name, self.private, self.home = name, private, home

    def command(self, *args: str) -> list[str]:
        script = 'hostname "$0" && mount --bind "$1" "$2" && shift 2 && exec "$@"'
        return ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script,
                self.name, str(self.private), str(self.home),
                *mm_command(*args, "--home", str(self.home))]

    def __call__(self, *args: str, check: int | None = 0, timeout: float = 120) -> Run:
        proc = subprocess.run(self.command(*args), capture_output=True, text=True, env=mm_env(),
                              timeout=timeout)
        run = Run(args, proc.returncode, proc.stdout, proc.stderr)
        if check is not None:
            assert run.code == check, str(run)
        return run

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), env=mm_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)


def two_machines(tmp_path: Path, redis: RedisServer) -> tuple[Machine, Machine]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("two machines are simulated with mount namespaces: needs root and unshare")
    probe = subprocess.run(["unshare", "--mount", "--uts", "--propagation", "private", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare is not allowed here: {probe.stderr.decode(errors='replace')}")
    home = tmp_path / "home"  # the one path both machines' homes have
    home.mkdir()
    machines = []
    for name in ("machine-a", "machine-b"):
        private = tmp_path / name
        write_config(private, {"embedding": {"model": "hash-384"},
                               "queue": {"backend": "redis", "url": redis.url}})
        machines.append(Machine(name, private, home))
    return machines[0], machines[1]


def test_two_machines_whose_homes_have_one_path_never_share_a_queue(
        tmp_path: Path, redis: RedisServer) -> None:
    """Before home ids, the default queue name came from the home's path: machine B's records
    were committed into machine A's index, and B's own worker could not even start."""
    a, b = two_machines(tmp_path, redis)
    workers = [a.popen("queue", "worker")]
    try:
        poll(lambda: a("queue", "status", "--json").json()["committer"]["running"],
             "machine A's worker to claim its queue")
        workers.append(b.popen("queue", "worker"))
        poll(lambda: b("queue", "status", "--json").json()["committer"]["running"] or
             workers[1].poll() is not None, "machine B's worker to claim its queue")
        assert workers[1].poll() is None, stop(workers[1])  # B's worker runs: its own queue
        a_report = a("index", "--json", str(notes(tmp_path / "notes-a", "albatross"))).json()
        b_report = b("index", "--json", str(notes(tmp_path / "notes-b", "bittern"))).json()
        assert a_report["committed"] == b_report["committed"] == 4
    finally:
        logs = [stop(worker) for worker in workers]
    assert sources(tmp_path / "machine-a" / "index.sqlite3") == {"albatross-0.md", "albatross-1.md"}, logs
    assert sources(tmp_path / "machine-b" / "index.sqlite3") == {"bittern-0.md", "bittern-1.md"}, logs
    names = [m("config", "show", "--json").json()["queue.name"]["value"] for m in (a, b)]
    assert names[0] != names[1]
    for machine in (a, b):
        machine("doctor")


# -- one named queue, two indexes ----------------------------------------------------------------


def test_a_committer_of_another_index_is_refused_a_stamped_queue(
        tmp_path: Path, redis: RedisServer) -> None:
    first = redis_home(tmp_path, "server", redis, "team-memory")
    second = redis_home(tmp_path, "other-server", redis, "team-memory")
    first("index", "--no-wait", str(notes(tmp_path / "notes", "heron")))
    worker = first.popen("queue", "worker")  # stamps the queue with its index's id
    try:
        poll(lambda: second("queue", "status", "--json").json()["committer"]["running"],
             "the first worker to claim the queue")
        runs = [second("queue", "worker", "--once", check=2)]  # refused, not merely busy
    finally:
        stop(worker)
    runs.append(second("queue", "worker", "--once", check=2))  # and still once it has stopped
    for run in runs:
        error = [line for line in run.stderr.splitlines() if "error:" in line][0]
        assert "team-memory" in error and "another index" in error and str(first.home) in error
        assert "queue.name" in run.stderr
    # The refused committer took nothing: the queue is still the first index's.
    second("index", "--no-wait", str(notes(tmp_path / "more", "egret")))
    ok(first("queue", "worker", "--once"))
    assert sources(first.home / "index.sqlite3") >= {"egret-0.md", "egret-1.md"}
    assert not (second.home / "index.sqlite3").exists() or not sources(second.home / "index.sqlite3")
    assert_doctor_ok(first.home)


# -- a lost Redis queue ----------------------------------------------------------------------------


def test_a_flushdb_with_batches_pending_is_reported_and_fails_doctor_until_resent(
        tmp_path: Path, redis: RedisServer) -> None:
    import redis as redis_client

    committer = redis_home(tmp_path, "server", redis, "team-memory")
    producer = redis_home(tmp_path, "laptop", redis, "team-memory")
    committer("index", "--no-wait", str(notes(tmp_path / "first", "otter")))
    ok(committer("queue", "worker", "--once"))  # position 1 committed
    # No worker runs: the producer's batches are durable in Redis, at positions 2 and 3.
    for word in ("badger", "marten"):
        report = producer("index", "--no-wait", "--json", str(notes(tmp_path / word, word))).json()
        assert report["batches"] == 1, report
    assert committer("queue", "status", "--json").json()["pending"] == 2
    redis_client.Redis(unix_socket_path=str(redis.socket)).flushdb()

    # Before any committer looks, a reading of the queue against the index's mark says so.
    seen = committer("queue", "status", "--json").json()
    assert seen["pending"] == 0 and [i["loud"] for i in seen["lost"]] == [True], seen

    run = ok(committer("queue", "worker", "--once"))  # finds the queue re-created, records it
    assert "warning:" in run.stderr and "positions 2" in run.stderr, run
    status = committer("queue", "status", "--json").json()
    (incident,) = status["lost"]
    assert incident["recorded"] and incident["lost_positions"]["first"] == 2, incident
    text = committer("queue", "status").stdout
    assert "LOST" in text and "positions 2" in text and "mm index" in text, text
    doctor = committer("doctor", "--json", check=1).json()
    (check,) = [c for c in doctor["checks"] if c["name"] == "queue_kept"]
    assert not check["ok"] and "positions 2" in check["detail"] and "mm index" in check["detail"]

    # The fix it names: re-run `mm index` on the producer, then dismiss.
    worker = committer.popen("queue", "worker")
    try:
        for word in ("badger", "marten"):
            assert producer("index", "--json", str(tmp_path / word)).json()["committed"] == 4
    finally:
        stop(worker)
    assert sources(committer.home / "index.sqlite3") >= {"badger-0.md", "marten-1.md"}
    assert committer("queue", "lost", "--dismiss", "--json").json() == {"dismissed": 1}
    assert committer("queue", "status", "--json").json()["lost"] == []
    assert_doctor_ok(committer.home)


# -- a re-created SQLite queue file ------------------------------------------------------------


def test_an_undecodable_batch_on_a_re_created_queue_file_still_becomes_a_dead_letter(
        mm: MM, tmp_path: Path) -> None:
    """Positions restart at 1 in a new queue file; `undecodable@2` of the old file must not make
    the new file's undecodable batch at position 2 look already applied."""
    mm("index", "--no-wait", str(notes(tmp_path / "first", "plover")))
    queue = producer_queue(mm.home)
    try:
        assert queue.put(GARBAGE) == 2
    finally:
        queue.close()
    ok(mm("queue", "worker", "--once"))
    assert mm("queue", "status", "--json").json()["dead_letters"] == 1
    for path in mm.home.glob("queue.sqlite3*"):  # empty: docs/operations.md says this is safe
        path.unlink()

    mm("index", "--no-wait", str(notes(tmp_path / "second", "curlew")))
    queue = producer_queue(mm.home)
    try:
        assert queue.put(GARBAGE) == 2  # the same position as the first undecodable batch
    finally:
        queue.close()
    before = mm("queue", "status", "--json").json()
    ok(mm("queue", "worker", "--once"))
    status = mm("queue", "status", "--json").json()
    assert status["dead_letters"] == 2 and status["ledger"]["dead_lettered"] == 2, status
    letters = mm("queue", "dead-letters", "list", "--json").json()
    assert [letter["position"] for letter in letters] == [2, 2]
    # Before the committer looked, status said the queue was re-created (nothing lost).
    assert [(i["loud"], i["recorded"]) for i in before["lost"]] == [(False, False)], before
    # Nothing the committer had seen was lost: recorded, not open; doctor passes (fixture).
    assert status["lost"] == [] and mm("queue", "lost", "--json").json() == []


# -- homes from before home ids -----------------------------------------------------------------


def test_a_sqlite_queue_named_from_the_home_path_is_committed_after_the_upgrade(
        mm: MM, tmp_path: Path) -> None:
    """A home written before home ids: its queue file holds batches under the path-derived name
    and the home has no id. The first writer gives it an id and takes those batches over."""
    mm("index", "--no-wait", str(notes(tmp_path / "old", "grebe")))
    legacy = path_queue_name(mm.home)
    conn = sqlite3.connect(mm.home / "queue.sqlite3")
    with conn:  # as an older memwal left it: rows under the path-derived name, no home id
        conn.execute("UPDATE task SET queue = ?", (legacy,))
    conn.close()
    (mm.home / "home-id").unlink()
    assert mm("queue", "status", "--json").json()["pending"] == 1  # a reader finds them as they are
    ok(mm("queue", "worker", "--once"))
    assert (mm.home / "home-id").exists()
    status = mm("queue", "status", "--json").json()
    assert (status["pending"], status["ledger"]["committed"]) == (0, 4), status
    assert mm("config", "show", "--json").json()["queue.name"]["value"] != legacy


def test_a_redis_queue_named_from_the_home_path_with_batches_is_never_abandoned_silently(
        tmp_path: Path, redis: RedisServer) -> None:
    home = redis_home(tmp_path, "server", redis)
    legacy = path_queue_name(home.home)
    old = redis_queue(redis.url, legacy)  # what an older memwal on this home queued
    try:
        old.put(GARBAGE)
    finally:
        old.close()
    run = home("queue", "worker", "--once", check=2)
    assert legacy in run.stderr and "queue.name" in run.stderr, run
    doctor = home("doctor", "--json", check=1).json()
    (check,) = [c for c in doctor["checks"] if c["name"] == "queue_kept"]
    assert legacy in check["detail"], check
    # The fix it names: keep using the old name explicitly.
    write_config(home.home, {"embedding": {"model": "hash-384"},
                             "queue": {"backend": "redis", "url": redis.url, "name": legacy}})
    ok(home("queue", "worker", "--once"))
    assert home("queue", "status", "--json").json()["dead_letters"] == 1
    assert_doctor_ok(home.home)


# -- the rule, without processes ----------------------------------------------------------------


def test_the_committer_judges_a_queue_by_its_epoch_and_counter() -> None:
    from memwal.queue import QueueGeneration
    from memwal.queuewatch import QueueMark, judge

    mark = QueueMark("q", "e1", seen=9, committed=7)
    # Adopted as it is: no mark yet (positions up to what the ledger holds count as committed).
    assert judge(None, "q", QueueGeneration("e1", 5), False, 3) == (QueueMark("q", "e1", 5, 3), None)
    # The same epoch, the counter on or past the mark: all is well, and the mark follows.
    assert judge(mark, "q", QueueGeneration("e1", 12), False) == (QueueMark("q", "e1", 12, 7), None)
    # A new epoch (a new file): positions 8-9 were seen and never committed: loud.
    after, incident = judge(mark, "q", QueueGeneration("e2", 1), False)
    assert after == QueueMark("q", "e2", 1, 0) and incident is not None
    assert incident.loud and incident.lost == (8, 9) and "positions 8 to 9" in incident.describe()
    # The counter back within one epoch (a Redis seq key lost alone): a re-creation too.
    assert judge(mark, "q", QueueGeneration("e1", 2), True)[1] is not None
    # A file deleted when empty: recorded, not loud. A shared queue's loss always is.
    quiet = judge(QueueMark("q", "e1", 9, 9), "q", QueueGeneration("e2", 0), False)[1]
    assert quiet is not None and not quiet.loud and "Nothing" in quiet.describe()
    shared = judge(QueueMark("q", "e1", 9, 9), "q", QueueGeneration(None, 0), True)[1]
    assert shared is not None and shared.loud and "positions 10 on" in shared.describe()
    # A queue that lives only as long as its process, or another queue: adopted, never judged.
    assert judge(mark, "q", QueueGeneration("e9", 0, persistent=False), False)[1] is None
    assert judge(mark, "other", QueueGeneration("e9", 0), True)[1] is None
