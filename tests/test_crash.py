"""Durability, order and exactly-once effect under real SIGKILLs of the committer and producers."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_doctor_ok, mm_command, mm_env
from memwal import store
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


class Logged:
    """One batch as its producer logged it once the enqueue returned."""

    def __init__(self, parts: list[str]) -> None:
        self.id, self.position, self.items, self.bad = parts[1], int(parts[2]), int(parts[3]), int(parts[4])
        self.seed, self.batch_no = int(parts[5]), int(parts[6])
        self.last_good = {} if parts[7] == "-" else {
            int(k): int(i) for k, i in (pair.split("=") for pair in parts[7].split(","))}


def read_log(log: Path) -> tuple[dict[str, Logged], set[str]]:
    """The batches whose enqueue returned, by id; and the ids of every batch attempted."""
    done, intents = {}, set()
    if not log.exists():
        return done, intents
    for line in log.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "intent" and len(parts) == 3:
            intents.add(parts[1])
        elif parts and parts[0] == "done" and len(parts) == 8:
            done[parts[1]] = Logged(parts)
    return done, intents


def kill_storm(home: Path, producers: list[subprocess.Popen], kills: int, rng: random.Random) -> int:
    """SIGKILL the committer at random moments while producers run; return the kills made."""
    made = 0
    while made < kills or any(p.poll() is None for p in producers):
        worker = start_worker(home)
        time.sleep(rng.uniform(0.05, 0.6))
        if made < kills:
            worker.send_signal(signal.SIGKILL)
            made += 1
        else:
            worker.terminate()
        worker.wait(timeout=30)
    return made


def final_drain(home: Path) -> None:
    proc = subprocess.run(mm_command("queue", "worker", "--once", "--home", str(home)), env=mm_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def check_committed_exactly_once(home: Path, logs: list[Path], seed: int) -> None:
    """Every logged batch is in the ledger once, with counts that add up; order held per key."""
    done: dict[str, Logged] = {}
    for log in logs:
        done.update(read_log(log)[0])
    assert done, f"seed {seed}: the producers enqueued nothing"
    conn = store.open_for_read(home / "index.sqlite3")
    try:
        ledger = {row[0]: row[1:] for row in conn.execute(
            "SELECT batch_id, received, committed, dead_lettered, skipped, position FROM ledger")}
        missing = set(done) - set(ledger)
        assert not missing, f"seed {seed}: {len(missing)} enqueued batches never committed"
        for batch in done.values():
            assert ledger[batch.id] == (batch.items, batch.items - batch.bad, batch.bad, 0,
                                        batch.position), f"seed {seed}: batch {batch.id}"
        letters = conn.execute("SELECT batch_id, item_index FROM dead_letters").fetchall()
        twice = [k for k, n in Counter(letters).items() if n > 1]
        assert not twice, f"seed {seed}: dead-lettered twice: {twice[:5]}"
        assert len(letters) == sum(b.bad for b in done.values()), f"seed {seed}"
        check_last_enqueued_version_wins(conn, done, seed)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    assert_doctor_ok(home)


def check_last_enqueued_version_wins(conn, done: dict[str, Logged], seed: int) -> None:
    winner: dict[int, tuple[int, Logged]] = {}
    for batch in done.values():
        for key, _ in batch.last_good.items():
            if key not in winner or winner[key][0] < batch.position:
                winner[key] = (batch.position, batch)
    stored = {int(Path(source).stem): (batch_id, bytes(vector)) for source, batch_id, vector in conn.execute(
        f"SELECT c.source_file, c.batch_id, v.embedding FROM chunks c JOIN {store.VECTOR_TABLE} v "
        "ON v.chunk_id = c.id WHERE c.namespace = 'crash'")}
    assert set(stored) == set(winner), f"seed {seed}: keys stored {sorted(stored)} vs written {sorted(winner)}"
    for key, (_, batch) in winner.items():
        batch_id, vector = stored[key]
        assert batch_id == batch.id, f"seed {seed}: key {key} holds batch {batch_id}, last was {batch.id}"
        expected = vector_for(batch.seed, batch.batch_no + 1, batch.last_good[key] + 1)
        assert np.allclose(np.frombuffer(vector, "<f4"), expected), f"seed {seed}: key {key} vector"


def run_storm(tmp_path: Path, seed: int, kills: int, batches: int) -> None:
    rng = random.Random(seed)
    home = tmp_path / "home"
    home.mkdir()
    logs = [tmp_path / f"producer-{n}.log" for n in range(4)]
    producers = [start_producer(home, log, seed * 10 + n, batches, pause=0.05)
                 for n, log in enumerate(logs)]
    try:
        made = kill_storm(home, producers, kills, rng)
        assert made == kills
        for producer in producers:
            assert producer.wait(timeout=120) == 0
        final_drain(home)
        check_committed_exactly_once(home, logs, seed)
    finally:
        for producer in producers:
            if producer.poll() is None:
                producer.kill()


def test_sigkilled_committer_loses_nothing_and_applies_everything_once(tmp_path: Path) -> None:
    seed = int(os.environ.get("MM_TEST_SEED", random.randrange(1 << 30)))
    print(f"seed {seed} (rerun with MM_TEST_SEED={seed})")
    run_storm(tmp_path, seed, kills=20, batches=40)


@pytest.mark.torture
def test_sigkill_storm_of_the_committer(tmp_path: Path) -> None:
    seed = int(os.environ.get("MM_TEST_SEED", random.randrange(1 << 30)))
    print(f"seed {seed} (rerun with MM_TEST_SEED={seed})")
    run_storm(tmp_path, seed, kills=int(os.environ.get("MM_TORTURE_KILLS", "60")), batches=120)


def test_sigkilled_producer_leaves_whole_batches_or_none(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    rng = random.Random(os.environ.get("MM_TEST_SEED", "producer-kill"))
    logs = []
    for round_no in range(5):
        log = tmp_path / f"p{round_no}.log"
        logs.append(log)
        producer = start_producer(home, log, 1000 + round_no, 10_000, pause=0.0)
        # Kill once it has enqueued something, at a random moment inside the enqueue loop.
        deadline = time.monotonic() + 60
        while not read_log(log)[0] and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.2))
        producer.send_signal(signal.SIGKILL)
        producer.wait()
    queue = open_queue(home / "queue.sqlite3")
    rows = list(queue.pending_rows())
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
        assert set(queued) & intents >= set(done)
    assert set(queued) <= set().union(*(read_log(log)[1] for log in logs))
    final_drain(home)
    assert_doctor_ok(home)
