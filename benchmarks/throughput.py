"""Write-path throughput: enqueue, the committer against a raw SQLite baseline, and a 1M backlog.

- `fill_queue`: records/s through `HueyQueue.put(encode_batch(...))` (durable: fsync per batch).
- `commit_race`: the real committer and a raw SQLite writer each apply the same N upserts to a
  fresh index. They run interleaved, a slice of batches each in turn, so a noisy neighbour on a
  shared machine slows both alike.
- `profile_committer`: where the real committer's time goes, per SQL statement and per function.
- `backlog_rss`: peak RSS and drain rate of `mm queue worker --once` on a large backlog.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import pstats
import random
import re
import resource
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from memwal import store
from memwal.committer import Committer, committer_session
from memwal.config import load_settings
from memwal.fingerprint import ModelInfo, name_of
from memwal.queue import open_queue
from memwal.records import Upsert, encode_batch

from benchlib import MM, Corpus, bench_batch, hash_vector_pool, make_home, upsert_batches

# -- enqueue -------------------------------------------------------------------------------


@dataclass
class Fill:
    """What filling a queue cost."""

    records: int = 0
    batches: int = 0
    put_s: float = 0.0  # encode_batch + put, the figure
    bytes: int = 0

    @property
    def rate(self) -> float:
        return self.records / self.put_s if self.put_s else 0.0


def fill_queue(queue_path: Path, batches: Iterable[tuple[Upsert, ...]],
               keep: list[tuple[Upsert, ...]] | None = None) -> Fill:
    """Enqueue every batch; time only `put(encode_batch(...))` (making the records is not timed)."""
    queue = open_queue(queue_path)
    fill = Fill()
    try:
        for items in batches:
            batch = bench_batch(items)
            started = time.perf_counter()
            data = encode_batch(batch)
            queue.put(data)
            fill.put_s += time.perf_counter() - started
            fill.records += len(items)
            fill.batches += 1
            fill.bytes += len(data)
            if keep is not None:
                keep.append(items)
    finally:
        queue.close()
    return fill


# -- the contenders ------------------------------------------------------------------------


class Contender:
    """Applies the next `n` batches of the shared workload when `step(n)` is called."""

    name = ""
    records = 0
    seconds = 0.0

    def step(self, n: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


class CommitterContender(Contender):
    """The real committer session draining its own pre-filled queue."""

    def __init__(self, name: str, home: Path) -> None:
        self.name = name
        self.stack = contextlib.ExitStack()
        self.committer = self.stack.enter_context(
            committer_session(load_settings(home, environ={})))

    def step(self, n: int) -> None:
        taken = [0]

        def count(outcome: Any) -> None:
            taken[0] += 1
            self.records += outcome.committed

        started = time.perf_counter()
        self.committer.drain(lambda: taken[0] >= n, count)
        self.seconds += time.perf_counter() - started

    def close(self) -> None:
        self.stack.close()


RAW_CHUNK = ("INSERT INTO chunks (id, namespace, source_file, content_hash, start_line, end_line, "
             "heading_path, content, tags, fingerprint, batch_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
RAW_VECTOR = f"INSERT INTO {store.VECTOR_TABLE} (chunk_id, embedding) VALUES (?, ?)"
RAW_LEDGER = ("INSERT INTO ledger (batch_id, position, producer, enqueued_at, committed_at, "
              "received, committed, dead_lettered, skipped) VALUES (?,?,?,?,?,?,?,?,?)")


class RawContender(Contender):
    """The same rows straight into the same schema: no queue, no checks, the fewest statements.

    One transaction per batch of 256 (BEGIN IMMEDIATE … COMMIT, synchronous=FULL as the index
    is opened by `store.open_for_write`, schema v2 with no FTS insert trigger), chunk ids
    computed (a fresh table and a single writer: 1, 2, …), chunks by one executemany, vectors by
    one executemany, the batch's FTS rows by one `store.insert_fts_rows`, and the batch's ledger
    row, so both sides write the same rows. `fts=False` leaves FTS out (for scale only: that
    index is not complete).
    """

    def __init__(self, name: str, index_path: Path, batches: list[tuple[Upsert, ...]],
                 fts: bool = True) -> None:
        self.name = name
        self.conn = store.open_for_write(index_path)
        first = batches[0][0]
        store.create_vector_table(self.conn, first.dim)
        store.set_active_model(self.conn, ModelInfo(name_of(first.fingerprint), first.dim,
                                                    first.fingerprint))
        self.fts = fts
        self.batches = iter(batches)
        self.next_id = 1
        self.position = 0

    def step(self, n: int) -> None:
        conn = self.conn
        for _ in range(n):
            items = next(self.batches, None)
            if items is None:
                return
            started = time.perf_counter()
            batch = bench_batch(items)
            ids = range(self.next_id, self.next_id + len(items))
            self.next_id += len(items)
            self.position += 1
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(RAW_CHUNK, [
                (chunk_id, u.key.namespace, u.key.source_file, u.key.content_hash,
                 u.key.start_line, u.end_line, json.dumps(list(u.heading_path), ensure_ascii=False),
                 u.content, json.dumps(list(u.tags), ensure_ascii=False), u.fingerprint, batch.id)
                for chunk_id, u in zip(ids, items)])
            conn.executemany(RAW_VECTOR, [(chunk_id, u.vector) for chunk_id, u in zip(ids, items)])
            if self.fts:
                store.insert_fts_rows(conn, ids[0], ids[-1])
            conn.execute(RAW_LEDGER, (batch.id, self.position, json.dumps({"host": "bench"}),
                                      batch.enqueued_at, time.time(), len(items), len(items), 0, 0))
            conn.execute("COMMIT")
            self.seconds += time.perf_counter() - started
            self.records += len(items)

    def close(self) -> None:
        self.conn.close()


def check_index(index_path: Path) -> dict[str, int]:
    """Row counts of chunks, FTS documents and vectors (they must agree)."""
    conn = store.connect(index_path, readonly=True)
    try:
        return {
            "chunks": conn.execute("SELECT count(*) FROM chunks").fetchone()[0],
            "fts": conn.execute("SELECT count(*) FROM chunks_fts_docsize").fetchone()[0],
            "vectors": conn.execute(f"SELECT count(*) FROM {store.VECTOR_TABLE}").fetchone()[0],
        }
    finally:
        conn.close()


# -- figure 1 (and 2): the race ------------------------------------------------------------


# The writers of figure 1, in table order.
COMMITTER = "committer (real)"
RAW = "raw SQLite"
RACE = (COMMITTER, RAW)


@dataclass
class Race:
    records: int
    batches: int
    slice_batches: int
    fill: Fill
    rates: dict[str, float]
    seconds: dict[str, float]
    queue_mb: float


def commit_race(workdir: Path, records: int, slice_batches: int = 8, seed: int = 7) -> Race:
    """Fill the committer's queue with N upserts, then race it against the raw writer."""
    corpus = Corpus(seed)
    fingerprint, vectors = hash_vector_pool(corpus)
    batches: list[tuple[Upsert, ...]] = []
    home = make_home(workdir / "commit-committer")
    settings = load_settings(home, environ={})
    print(f"  filling the committer's queue with {records:,} upserts ...", flush=True)
    fill = fill_queue(settings.queue_path, upsert_batches(records, corpus, fingerprint, vectors),
                      keep=batches)
    queue_mb = settings.queue_path.stat().st_size / 1e6

    contenders: list[Contender] = []
    indexes = {COMMITTER: settings.index_path, RAW: workdir / "commit-raw.sqlite3"}
    try:
        contenders.append(CommitterContender(COMMITTER, home))
        contenders.append(RawContender(RAW, indexes[RAW], batches))
        shuffle = random.Random(seed)
        print(f"  racing {len(contenders)} writers over {len(batches)} batches, "
              f"{slice_batches} batches each in turn ...", flush=True)
        for _ in range(0, len(batches), slice_batches):
            order = contenders[:]
            shuffle.shuffle(order)
            for contender in order:
                contender.step(slice_batches)
    finally:
        for contender in contenders:
            contender.close()
    for name, path in indexes.items():
        count = check_index(path)
        if not count["chunks"] == count["fts"] == count["vectors"] == records:
            raise RuntimeError(f"{name} left {count}, expected {records} of each")
    return Race(records, len(batches), slice_batches, fill, {c.name: c.rate for c in contenders},
                {c.name: c.seconds for c in contenders}, queue_mb)


# -- the committer's profile ---------------------------------------------------------------


def _label(sql: str) -> str:
    text = " ".join(sql.split())
    text = re.sub(r"\(\s*[^()]*\)\s*VALUES\s*\([?,\s]*\)", "(…) VALUES (…)", text)
    text = re.sub(r"ON CONFLICT .* RETURNING", "ON CONFLICT … DO UPDATE … RETURNING", text)
    text = re.sub(r"SET (\w+)=\?, .*? WHERE", r"SET \1=?, … WHERE", text)
    return text if len(text) <= 90 else text[:88] + " …"


class TimedConnection:
    """Delegates to a connection, timing execute/executemany per statement."""

    def __init__(self, conn: store.Connection) -> None:
        self._conn = conn
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def _timed(self, method: Callable[..., Any], sql: str, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(sql, *args)
        finally:
            label = _label(sql)
            self.seconds[label] += time.perf_counter() - started
            self.calls[label] += 1

    def execute(self, sql: str, *args: Any) -> Any:
        return self._timed(self._conn.execute, sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        return self._timed(self._conn.executemany, sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class TimedQueue:
    """Delegates to a queue, timing take and acknowledge."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def take(self) -> Any:
        return self._timed("queue.take() (row moved to in-flight, fsync)", self._queue.take)

    def acknowledge(self, position: int) -> None:
        self._timed("queue.acknowledge() (delete, fsync)", self._queue.acknowledge, position)

    def _timed(self, label: str, method: Callable[..., Any], *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args)
        finally:
            self.seconds[label] += time.perf_counter() - started
            self.calls[label] += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


@dataclass
class Profile:
    records: int
    seconds: float
    statements: list[tuple[str, int, float]]  # label, calls, seconds
    python_s: float
    functions: list[tuple[str, int, float, float]]  # name, calls, tottime, cumtime
    profiled_seconds: float
    raw_rate: float
    raw_no_fts_rate: float


def profile_committer(workdir: Path, records: int, seed: int = 11) -> Profile:
    """Drain N upserts with the real committer twice: statement timers, then cProfile."""
    corpus = Corpus(seed)
    fingerprint, vectors = hash_vector_pool(corpus, 1024)
    batches: list[tuple[Upsert, ...]] = []
    homes = [make_home(workdir / f"profile-{n}") for n in (1, 2)]
    fill_queue(load_settings(homes[0], environ={}).queue_path,
               upsert_batches(records, corpus, fingerprint, vectors), keep=batches)
    fill_queue(load_settings(homes[1], environ={}).queue_path, batches)

    with committer_session(load_settings(homes[0], environ={})) as session:
        conn, queue = TimedConnection(session.conn), TimedQueue(session.queue)
        timed = Committer(conn, queue)  # type: ignore[arg-type]
        started = time.perf_counter()
        stats = timed.drain()
        seconds = time.perf_counter() - started
    assert stats.committed == records, stats
    rows = [(label, conn.calls[label], s) for label, s in conn.seconds.items()]
    rows += [(label, queue.calls[label], s) for label, s in queue.seconds.items()]
    rows.sort(key=lambda row: -row[2])
    python_s = seconds - sum(s for _, _, s in rows)

    with committer_session(load_settings(homes[1], environ={})) as session:
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        session.drain()
        profiler.disable()
        profiled = time.perf_counter() - started
    functions = _top_functions(profiler, 14)

    # The raw writer without FTS: how much of the raw cost is FTS at all.
    bare = RawContender("raw, no FTS", workdir / "profile-raw-nofts.sqlite3", batches, fts=False)
    bare.step(len(batches))
    bare.close()
    raw = RawContender(RAW, workdir / "profile-raw.sqlite3", batches)
    raw.step(len(batches))
    raw.close()
    return Profile(records, seconds, rows, python_s, functions, profiled, raw.rate, bare.rate)


def _top_functions(profiler: cProfile.Profile, n: int) -> list[tuple[str, int, float, float]]:
    stats = pstats.Stats(profiler, stream=io.StringIO())
    out = []
    for (filename, line, name), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = name if filename == "~" else f"{Path(filename).name}:{line}({name})"
        out.append((where, calls, tottime, cumtime))
    out.sort(key=lambda row: -row[2])
    return out[:n]


# -- figure 5: the backlog -----------------------------------------------------------------


@dataclass
class Backlog:
    records: int
    batches: int
    queue_mb: float
    fill_rate: float
    fill_s: float
    wall_s: float
    peak_rss_mb: float
    committed: int
    how: str
    worker_argv: list[str]


def backlog_rss(workdir: Path, records: int, seed: int = 13) -> Backlog:
    """Fill a queue with `records` upserts, then drain it with `mm queue worker --once`."""
    corpus = Corpus(seed)
    fingerprint, vectors = hash_vector_pool(corpus)
    home = make_home(workdir / "backlog")
    settings = load_settings(home, environ={})
    print(f"  filling the queue with {records:,} upserts ...", flush=True)
    started = time.perf_counter()
    fill = fill_queue(settings.queue_path, upsert_batches(records, corpus, fingerprint, vectors))
    fill_s = time.perf_counter() - started
    queue_mb = settings.queue_path.stat().st_size / 1e6
    worker = [str(MM), "queue", "worker", "--once", "--home", str(home)]
    time_bin = Path("/usr/bin/time")
    print(f"  draining with {' '.join(worker)} ...", flush=True)
    if time_bin.exists():
        argv = [str(time_bin), "-v", *worker]
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        wall = time.perf_counter() - started
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
        peak_kb = int(match.group(1)) if match else 0
        how = "/usr/bin/time -v (Maximum resident set size)"
    else:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        done = subprocess.run(worker, capture_output=True, text=True)
        wall = time.perf_counter() - started
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        how = "ru_maxrss of the child (RUSAGE_CHILDREN)" + (
            " — may be an earlier child's peak" if peak_kb == before else "")
    if done.returncode != 0:
        raise RuntimeError(f"the worker exited {done.returncode}: {done.stderr[-2000:]}")
    committed = check_index(settings.index_path)["chunks"]
    if committed != records:
        raise RuntimeError(f"the worker committed {committed} of {records} records")
    return Backlog(records, fill.batches, queue_mb, fill.rate, fill_s, wall, peak_kb / 1024,
                   committed, how, worker)
