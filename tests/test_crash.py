"""Durability, order and exactly-once effect under real SIGKILLs of the committer and producers."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from helpers import (assert_doctor_ok, mm_command, mm_env, poll, queue_inflight, queue_rows,
                     write_config)
from memwal import store
from memwal.config import load_settings
from memwal.queue import open_queue
from memwal.records import decode_batch, parse_item
from crash_producer import vector_for

PRODUCER = Path(__file__).parent / "crash_producer.py"


def start_producer(home: Path, log: Path, seed: int, batches: int, pause: float = 0.01,
                   bad_ratio: float = 0.1) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(PRODUCER), str(home), str(log), str(seed),
                             str(batches), str(pause), str(bad_ratio)], env=mm_env())


def start_worker(home: Path) -> subprocess.Popen:
    return subprocess.Popen(mm_command("queue", "worker", "--home", str(home)), env=mm_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _pairs(text: str) -> dict[int, int]:
    return {} if text == "-" else {int(k): int(i) for k, i in (p.split("=") for p in text.split(","))}


class Logged:
    """One batch as its producer logged it: the recipe before the enqueue, the position after."""

    def __init__(self, parts: list[str]) -> None:
        self.id, self.items, self.bad = parts[1], int(parts[2]), int(parts[3])
        self.seed, self.batch_no = int(parts[4]), int(parts[5])
        self.last_good, self.last_bad = _pairs(parts[6]), _pairs(parts[7])
        self.position: int | None = None


def read_log(log: Path) -> tuple[dict[str, Logged], dict[str, Logged]]:
    """(batches whose enqueue returned, every batch attempted), by id."""
    intents: dict[str, Logged] = {}
    done: dict[str, Logged] = {}
    if not log.exists():
        return done, intents
    for line in log.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "intent" and len(parts) == 8:
            intents[parts[1]] = Logged(parts)
        elif parts and parts[0] == "done" and len(parts) == 3 and parts[1] in intents:
            batch = intents[parts[1]]
            batch.position = int(parts[2])
            done[batch.id] = batch
    return done, intents


def final_drain(home: Path) -> None:
    proc = subprocess.run(mm_command("queue", "worker", "--once", "--home", str(home)), env=mm_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def check_committed_exactly_once(home: Path, logs: list[Path], seed: int,
                                 reset_position: int | None = None) -> None:
    """The producers' own logs against the ledger: every item once, counts exact, order kept.

    Before the reset (or with none) model A (hash-384) is active and B items are dead letters;
    after it, the reverse.
    """
    done: dict[str, Logged] = {}
    intents: dict[str, Logged] = {}
    for log in logs:
        log_done, log_intents = read_log(log)
        done.update(log_done)
        intents.update(log_intents)
    assert done, f"seed {seed}: the producers enqueued nothing"
    conn = store.open_for_read(home / "index.sqlite3")
    try:
        ledger = {row[0]: row[1:] for row in conn.execute(
            "SELECT batch_id, received, committed, dead_lettered, skipped, position FROM ledger")}
        missing = set(done) - set(ledger)
        assert not missing, f"seed {seed}: {len(missing)} acknowledged enqueues never committed"
        # A batch killed between its enqueue and its `done` line may be committed: count it too.
        applied = {batch_id: batch for batch_id, batch in intents.items() if batch_id in ledger}
        unknown = set(ledger) - set(intents)
        # The initial reset to A, and the reset to B midway if any.
        assert len(unknown) <= (2 if reset_position is not None else 1), \
            f"seed {seed}: batches in the ledger that no producer logged: {sorted(unknown)[:3]}"
        for batch in applied.values():
            received, committed, dead, skipped, position = ledger[batch.id]
            if batch.position is not None:
                assert position == batch.position, f"seed {seed}: batch {batch.id} moved"
            batch.position = position
            after_reset = reset_position is not None and position > reset_position
            good = batch.items - batch.bad
            expected = (batch.items, batch.bad, good, 0) if after_reset else (batch.items, good, batch.bad, 0)
            assert (received, committed, dead, skipped) == expected, \
                f"seed {seed}: batch {batch.id} @{position} counts {ledger[batch.id]}, expected {expected}"
        letters = conn.execute("SELECT batch_id, item_index FROM dead_letters").fetchall()
        twice = [k for k, n in Counter(letters).items() if n > 1]
        assert not twice, f"seed {seed}: dead-lettered twice: {twice[:5]}"
        assert len(letters) == sum(ledger[b][2] for b in applied), f"seed {seed}"
        check_last_enqueued_version_wins(conn, applied, seed, reset_position)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    assert_doctor_ok(home)


def check_last_enqueued_version_wins(conn, applied: dict[str, Logged], seed: int,
                                     reset_position: int | None) -> None:
    """For every key, the stored vector is the last version enqueued with the active model."""
    winner: dict[int, tuple[int, Logged, int]] = {}
    for batch in applied.values():
        assert batch.position is not None
        if reset_position is None or batch.position < reset_position:
            versions = batch.last_good
        else:
            versions = batch.last_bad
        if reset_position is not None and batch.position < reset_position:
            continue  # vectors of the old model were removed by the reset
        for key, item_no in versions.items():
            if key not in winner or winner[key][0] < batch.position:
                winner[key] = (batch.position, batch, item_no)
    stored = {int(Path(source).stem): (batch_id, bytes(vector)) for source, batch_id, vector in conn.execute(
        f"SELECT c.source_file, c.batch_id, v.embedding FROM chunks c JOIN {store.VECTOR_TABLE} v "
        "ON v.chunk_id = c.id WHERE c.namespace = 'crash'")}
    assert set(stored) == set(winner), f"seed {seed}: keys with vectors {sorted(stored)} vs {sorted(winner)}"
    for key, (_, batch, item_no) in winner.items():
        batch_id, vector = stored[key]
        assert batch_id == batch.id, f"seed {seed}: key {key} holds batch {batch_id}, last was {batch.id}"
        expected = vector_for(batch.seed, batch.batch_no + 1, item_no + 1)
        assert np.allclose(np.frombuffer(vector, "<f4"), expected), f"seed {seed}: key {key} vector"


def ledger_batches(home: Path) -> int:
    """Batches committed so far: the progress signal the storm kills on."""
    with store.reading(home / "index.sqlite3") as conn:
        return 0 if conn is None else conn.execute("SELECT count(*) FROM ledger").fetchone()[0]


def enqueued(log: Path) -> int:
    """Batches a producer has logged as enqueued: its own progress signal."""
    return len(read_log(log)[0])


def run_storm(tmp_path: Path, seed: int, kills: int, batches: int, producer_kills: int = 0,
              reset: bool = False, config: dict | None = None,
              after_kill: Callable[[int], None] | None = None) -> None:
    """4 producers, one committer SIGKILLed `kills` times and restarted; optionally producers
    SIGKILLed mid-stream (and replaced) and a reset to model B halfway.

    Nothing here waits on the clock. A worker is killed once the ledger has grown by a random
    1-4 batches since it started (or, when nothing is left to commit, at once). A producer
    chosen to be killed enqueues without end and is killed once its own log shows a random
    number of enqueued batches, so it can never finish before its kill, however the machine
    schedules it.
    """
    rng = random.Random(seed)
    home = tmp_path / "home"
    home.mkdir()
    if config:
        write_config(home, config)
    logs: list[Path] = []
    producers: list[subprocess.Popen] = []
    victims: dict[int, int] = {}  # producer index → kill once it has enqueued this many batches

    def spawn(victim: bool = False) -> None:
        log = tmp_path / f"producer-{len(logs)}.log"
        logs.append(log)
        if victim:
            victims[len(producers)] = rng.randint(2, max(2, batches // 3))
        producers.append(start_producer(home, log, seed * 100 + len(logs),
                                        10**9 if victim else batches, pause=0.05))

    def alive() -> list[subprocess.Popen]:
        return [p for p in producers if p.poll() is None]

    killed: list[int] = []

    def kill_due_victims() -> None:
        for index, kill_at in list(victims.items()):
            if enqueued(logs[index]) >= kill_at:
                producers[index].send_signal(signal.SIGKILL)
                producers[index].wait(timeout=30)
                del victims[index]
                killed.append(index)
                spawn()

    def worker_may_stop(worker: subprocess.Popen, target: int) -> bool:
        kill_due_victims()
        if worker.poll() is not None or ledger_batches(home) >= target:
            return True
        return not alive() and queue_rows(home) == []

    # The index starts on model A. Without this, an empty index would adopt the model of whichever
    # upsert commits first, and one producer item in ten is model B.
    subprocess.run(mm_command("embedding-reset", "--mode", "apply-current", "--yes", "--no-wait",
                              "--home", str(home)), env=mm_env({"MM_EMBEDDING_MODEL": "hash-384"}),
                   check=True, capture_output=True, timeout=60)
    for number in range(4):
        spawn(victim=number < producer_kills)
    reset_id = None
    made = 0
    try:
        while made < kills or alive():
            target = ledger_batches(home) + rng.randint(1, 4)
            worker = start_worker(home)
            poll(lambda: worker_may_stop(worker, target), "the committer to make progress",
                 timeout=300, every=0.01)
            if made < kills:
                worker.send_signal(signal.SIGKILL)
                made += 1
            else:
                worker.terminate()
            worker.wait(timeout=60)
            if after_kill and made <= kills:
                after_kill(made)
            if reset and reset_id is None and made >= kills // 2:
                proc = subprocess.run(
                    mm_command("embedding-reset", "--mode", "apply-current", "--yes", "--no-wait",
                               "--json", "--home", str(home)),
                    env=mm_env({"MM_EMBEDDING_MODEL": "hash-384-b"}), capture_output=True, text=True,
                    timeout=60)
                assert proc.returncode == 0, proc.stderr
                reset_id = json.loads(proc.stdout)["batch_id"]
        for producer in producers:
            producer.wait(timeout=120)
        final_drain(home)
        reset_position = None
        if reset_id is not None:
            with store.reading(home / "index.sqlite3") as conn:
                reset_position = conn.execute("SELECT position FROM ledger WHERE batch_id=?",
                                              (reset_id,)).fetchone()[0]
        assert len(killed) == producer_kills, f"seed {seed}: {len(killed)} producer kills"
        check_committed_exactly_once(home, logs, seed, reset_position)
    finally:
        for producer in producers:
            if producer.poll() is None:
                producer.kill()


def _seed() -> int:
    seed = int(os.environ.get("MM_TEST_SEED", random.randrange(1 << 30)))
    print(f"seed {seed} (rerun with MM_TEST_SEED={seed})")
    return seed


def test_sigkilled_committer_loses_nothing_and_applies_everything_once(tmp_path: Path) -> None:
    run_storm(tmp_path, _seed(), kills=20, batches=40)


def test_storm_with_producer_kills_and_a_reset_midway(tmp_path: Path) -> None:
    run_storm(tmp_path, _seed(), kills=10, batches=60, producer_kills=2, reset=True)


@pytest.mark.torture
def test_torture_committer_and_producer_kills_with_a_reset(tmp_path: Path) -> None:
    kills = int(os.environ.get("MM_TORTURE_KILLS", "30"))
    run_storm(tmp_path, _seed(), kills=kills, batches=150, producer_kills=4, reset=True)


@pytest.mark.parametrize("point, in_ledger", [("group-before-commit", 0), ("group-committed", 4)])
def test_a_committer_killed_inside_a_commit_group_leaves_every_batch_applied_once(
        tmp_path: Path, point: str, in_ledger: int) -> None:
    """A backlog is committed 4 batches to a transaction: killed before that COMMIT, none of the
    4 is in the ledger; killed after it but before the one acknowledge, all 4 are, and all 4 are
    still in flight. Either way the next committer applies each batch exactly once."""
    home = tmp_path / "home"
    write_config(home, {"queue": {"commit_group": 4}})
    subprocess.run(mm_command("embedding-reset", "--mode", "apply-current", "--yes", "--no-wait",
                              "--home", str(home)), env=mm_env({"MM_EMBEDDING_MODEL": "hash-384"}),
                   check=True, capture_output=True, timeout=60)
    log = tmp_path / "producer.log"
    assert start_producer(home, log, 7, batches=10, pause=0.0).wait(timeout=120) == 0
    marker = tmp_path / "at-the-fault"
    worker = subprocess.Popen(mm_command("queue", "worker", "--home", str(home)),
                              env=mm_env({"MM_FAULT": point, "MM_FAULT_MARKER": str(marker)}),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll(marker.exists, f"the committer to reach {point}", timeout=120)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert ledger_batches(home) == in_ledger
    assert queue_inflight(home) == 4 and len(queue_rows(home)) == 11  # the reset + 10 batches
    final_drain(home)
    assert ledger_batches(home) == 11 and queue_rows(home) == []
    check_committed_exactly_once(home, [log], 7)


def test_sigkilled_producer_leaves_whole_batches_or_none(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    rng = random.Random(os.environ.get("MM_TEST_SEED", "producer-kill"))
    logs = []
    for round_no in range(5):
        log = tmp_path / f"p{round_no}.log"
        logs.append(log)
        producer = start_producer(home, log, 1000 + round_no, 10_000, pause=0.0)
        # Kill once it has enqueued a random number of batches: it enqueues without pause, so
        # the kill lands inside its enqueue loop, often mid-batch.
        kill_at = rng.randint(1, 30)
        poll(lambda: enqueued(log) >= kill_at, f"the producer to enqueue {kill_at} batches",
             timeout=120, every=0.001)
        producer.send_signal(signal.SIGKILL)
        producer.wait()
    queue = open_queue(load_settings(home, environ={}))
    rows = [(delivery.position, delivery.data) for delivery in queue.messages()]
    queue.close()
    queued = {}
    for _, data in rows:
        batch = decode_batch(data)  # a partial batch would not decode
        for raw in batch.raw_items:
            parse_item(raw)
        queued[batch.id] = len(batch.raw_items)
    for log in logs:
        done, intents = read_log(log)
        for batch_id, batch in done.items():
            assert queued.get(batch_id) == batch.items, "an acknowledged enqueue is missing or partial"
        # The batch being enqueued when the kill came is either wholly there or absent.
        for batch_id, batch in intents.items():
            assert queued.get(batch_id, batch.items) == batch.items
    assert set(queued) <= set().union(*(set(read_log(log)[1]) for log in logs))
    final_drain(home)
    assert_doctor_ok(home)
