"""Model migration without downtime (issue 26): retrieval quality, throughput and search latency.

On BEIR NFCorpus (retrieval_quality.py's data, documents-as-files layout and nDCG@10), the index
is built with `paraphrase-minilm` (A) by `memwal.index_paths`, as `mm index` does; then the
configuration is changed to `minilm` (B) (`MM_EMBEDDING_MODEL=minilm`) and the index migrated
(`memwal.migrate_model`), three figures:

1. Retrieval quality during the migration: the migration is stopped (its `stop` event, set from
   `on_progress` once covered ≥ the mark) at 25, 50 and 75% of the chunks covered; before it, at
   each mark and after the cutover every test query runs through `memwal.Searcher` configured
   with B (hybrid, default settings; during the migration it searches with the active model A),
   and nDCG@10 is computed. 0% is A's own figure, 100% B's.
2. Migration throughput: embedded chunks over the wall time of `migrate_model`, its four
   segments summed (the searches at the marks left out), against B's embedder alone
   (`get_embedder("minilm").embed`, batches of `queue.batch_records`) on the same chunk texts,
   timed in the same process right after each segment, on exactly the texts that segment embedded
   (passing load falls on both alike).
3. Search latency during a migration: `memwal.search` (warm, one process, configured with B) on
   a fresh copy of A's index before the migration, while `mm embedding-reset --mode migrate`
   runs in a subprocess (MM_EMBEDDING_MODEL=minilm), and after that subprocess is stopped
   (SIGINT), and beside the control: B's embedder alone looping over the chunk texts in a
   subprocess placed like the migrator (the same CPU work, no queue, no committer, no
   migration); once with both free to use every core ("shared"), once with the subprocess on
   core 0 and this process on core 1 (`taskset -c 0` / `sched_setaffinity({1})`, "pinned").

Homes are kept under --homes (default /work/bench-homes/migration-TAG, TAG "full", "quick" or
the subset's size): `docs/` (one markdown file per document), `A/` (indexed with A, never
migrated, reused by a rerun), and copies of A made fresh by each run (`quality/`,
`latency-shared/`, `latency-pinned/`).

    PYTHONPATH=src .venv/bin/python benchmarks/retrieval_quality.py --prepare nfcorpus.zip  # once
    PYTHONPATH=src .venv/bin/python benchmarks/migration.py --quick      # 400 docs, 30 queries
    PYTHONPATH=src .venv/bin/python benchmarks/migration.py --write-doc  # the whole set
    PYTHONPATH=src .venv/bin/python benchmarks/migration.py --limit-docs 1500 --write-doc
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import memwal
from benchlib import (
    MM, PYTHON, REPO, add_run_options, clean_env, header, load_average, machine, percentile,
    update_section, writes_doc,
)
from retrieval_quality import (
    DATA, SOURCE, Dataset, all_chunks, best_ranks, build, doc_id_of, load, ndcg_at,
)

HOMES = Path("/work/bench-homes")
MODEL_A, MODEL_B = "paraphrase-minilm", "minilm"
MARKS = (0.25, 0.50, 0.75)
RESULTS = 100  # results asked per query (nDCG@10 from the first 10 distinct documents)


# -- the data ------------------------------------------------------------------------------


def subset(data: Dataset, limit_docs: int | None, limit_queries: int | None) -> Dataset:
    """The documents indexed and the queries run.

    Whole set: every document and test query. With --limit-queries (and --quick): the first N
    test queries, their judged documents first, then others (seed 7), up to --limit-docs, as
    retrieval_quality.py's smoke run picks them. With --limit-docs alone: that many documents
    drawn at random (seed 7), and the test queries with a relevant (grade > 0) document among
    them. Judgments are kept for the indexed documents only (nDCG's ideal is what the index can
    return).
    """
    queries = list(data.queries)
    docs = list(data.docs)
    if limit_queries:
        queries = queries[:limit_queries]
        judged = [d for q in queries for d in data.qrels[q] if d in data.docs]
        others = sorted(set(docs) - set(judged))
        random.Random(7).shuffle(others)
        docs = list(dict.fromkeys(judged + others))[:limit_docs or len(docs)]
    elif limit_docs:
        shuffled = sorted(docs)
        random.Random(7).shuffle(shuffled)
        docs = shuffled[:limit_docs]
    kept = set(docs)
    qrels = {q: {d: g for d, g in data.qrels[q].items() if d in kept} for q in queries}
    qrels = {q: grades for q, grades in qrels.items() if any(g > 0 for g in grades.values())}
    return Dataset({d: data.docs[d] for d in docs}, {q: data.queries[q] for q in qrels}, qrels,
                   data.checked)


# -- the homes -----------------------------------------------------------------------------


def settle(settings: memwal.Settings, timeout: float = 600) -> None:
    """INTERNAL: wait until no process writes the derived vector files (the detached merge an
    ending committer may leave behind), so the home can be copied whole."""
    from memwal.vectorindex.writes import _WriterLock

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        vi = memwal.index_status(settings).get("vector_index") or {}
        if vi.get("tail", 0) <= vi.get("bound", 0):
            break
        time.sleep(1)
    with _WriterLock(settings, wait=True):
        pass


def build_a(root: Path, data: Dataset) -> tuple[memwal.Settings, dict[str, Any]]:
    """Index the documents with A into root/A (reused when it holds them); its build record."""
    home = root / "A"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(f'{{"embedding": {{"model": "{MODEL_A}"}}}}\n')
    settings = memwal.load_settings(home, environ={})
    record = build(settings, root / "docs", data.docs, reindex=False)
    settle(settings)
    return settings, record


def fresh_copy(root: Path, name: str) -> memwal.Settings:
    """A new copy of A's home (nothing runs on A then), configured with B by the environment."""
    target = root / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(root / "A", target, symlinks=True)
    return settings_b(target)


def settings_b(home: Path) -> memwal.Settings:
    return memwal.load_settings(home, environ={"MM_EMBEDDING_MODEL": MODEL_B})


def rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB (0 when it has gone)."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except (OSError, ValueError):
        return 0.0, 0.0
    return tuple(int(fields.get(k, "0 kB").split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))  # type: ignore[return-value]


# -- 1 and 2: quality at the marks, throughput ---------------------------------------------


@dataclass
class Point:
    """The searches at one point of the migration."""

    label: str
    covered: int
    total: int
    active: str
    ndcg10: float
    ms_per_query: float
    warnings: dict[str, int]
    rss: float
    pending: int  # batches in the queue, not yet committed, when the searches ran


def searched(settings: memwal.Settings, data: Dataset, label: str) -> Point:
    """Every query through one `memwal.Searcher` (hybrid, defaults): nDCG@10, and what it said."""
    state = memwal.reset_status(settings).as_json()
    migration = state["migration"] or {}
    counts = memwal.index_status(settings)
    total = migration.get("total", counts["chunks"])
    covered = migration.get("covered", total if state["active_model"]["name"] == MODEL_B else 0)
    warnings: dict[str, int] = {}
    scores, seconds = [], 0.0
    searcher = memwal.Searcher(settings)
    try:
        for query_id, text in data.queries.items():
            started = time.perf_counter()
            result = searcher.search(text, top_k=RESULTS)
            seconds += time.perf_counter() - started
            for warning in result.warnings:
                warnings[warning] = warnings.get(warning, 0) + 1
            ranked = best_ranks(doc_id_of(hit.source_file) for hit in result.hits)
            scores.append(ndcg_at(ranked, data.qrels[query_id]))
    finally:
        searcher.close()
    pending = memwal.queue_status(settings).get("pending", 0)
    point = Point(label, covered, total, state["active_model"]["name"], statistics.fmean(scores),
                  seconds / len(scores) * 1000, warnings, rss_mb()[0], pending)
    print(f"  {label}: covered {covered:,}/{total:,}, active {point.active}, nDCG@10 "
          f"{point.ndcg10:.4f} ({point.ms_per_query:.1f} ms/query; {pending} batches queued)"
          + (f"; warnings {warnings}" if warnings else ""), flush=True)
    return point


@dataclass
class Segment:
    mark: str
    seconds: float  # wall time of migrate_model
    embedded: int
    report: dict[str, Any]
    baseline_texts: int
    baseline_seconds: float
    callbacks: list[dict[str, Any]] = field(default_factory=list)


def embed_alone(texts: list[str], batch: int) -> float:
    """B's embedder alone over `texts` in batches of `batch`: wall seconds."""
    from memwal.embedders import get_embedder

    model = get_embedder(MODEL_B)
    started = time.perf_counter()
    for at in range(0, len(texts), batch):
        model.embed(texts[at:at + batch])
    return time.perf_counter() - started


def quality_and_throughput(root: Path, data: Dataset, resume: bool = False, baseline: bool = True
                           ) -> tuple[list[Point], list[Segment], dict[str, Any]]:
    settings = settings_b(root / "quality") if resume else fresh_copy(root, "quality")
    batch = settings["queue.batch_records"]
    texts = [content for _, _, content in sorted(all_chunks(settings))]
    total = len(texts)
    from memwal.embedders import get_embedder

    get_embedder(MODEL_B).embed(texts[:2])  # load the model before any timing: both paths share it
    at = (coverage(settings) or (0, total))[0] / total if resume else 0.0
    points = [searched(settings, data, f"{at:.0%} (resumed where an earlier run stopped)" if resume
                       else "0% (before the migration)")]
    segments: list[Segment] = []
    for mark in [*(m for m in MARKS if m > at), None]:
        # The migrator embeds, by chunk id, every chunk without a committed shadow vector: from
        # the first uncovered one on (what a stopped run queued but did not see committed is
        # embedded again).
        first = (coverage(settings) or (0, total))[0]
        stop = threading.Event()
        seen: list[dict[str, Any]] = []

        def on_progress(status: dict[str, Any], mark: float | None = mark) -> None:
            seen.append(dict(status, at=time.perf_counter()))
            if mark is not None and status["covered"] >= mark * status["total"]:
                stop.set()

        started = time.perf_counter()
        report = memwal.migrate_model(settings, on_progress=on_progress, stop=stop,
                                      command="benchmarks/migration.py")
        seconds = time.perf_counter() - started
        part = texts[first:first + report.embedded] if baseline else []
        alone = embed_alone(part, batch) if part else float("nan")
        name = f"{mark:.0%}" if mark is not None else "100% (cutover)"
        segments.append(Segment(name, seconds, report.embedded, report.as_json(), len(part), alone, seen))
        print(f"  segment to {name}: {report.embedded:,} embedded in {seconds:.1f} s "
              f"({report.embedded / seconds:.1f}/s); B alone on the same {len(part):,} texts after it: "
              f"{alone:.1f} s; report {report.as_json()}", flush=True)
        if mark is not None:
            points.append(searched(settings, data, f"{mark:.0%} (stopped there)"))
    points.append(searched(settings, data, "100% (after the cutover)"))
    doctor = memwal.run_doctor(settings).as_json()
    queue = memwal.queue_status(settings).as_json()
    end = {"doctor_ok": doctor["ok"], "failed": [c for c in doctor["checks"] if not c["ok"]],
           "vectors_by_fingerprint": doctor.get("vectors_by_fingerprint"),
           "reset_status": memwal.reset_status(settings).as_json(), "queue": queue,
           "chunks": total, "batch": batch, "rss_peak_mb": rss_mb()[1]}
    print(f"  after: doctor ok {end['doctor_ok']}, vectors {end['vectors_by_fingerprint']}, "
          f"migration {end['reset_status']['migration']}", flush=True)
    return points, segments, end


# -- 3: search latency while a migrator runs -----------------------------------------------


@dataclass
class Latency:
    variant: str
    phases: dict[str, list[float]] = field(default_factory=dict)  # phase -> ms per call
    notes: list[str] = field(default_factory=list)
    migrator_rss: float = 0.0
    covered_during: tuple[int, int] = (0, 0)


def timed_searches(settings: memwal.Settings, texts: list[str]) -> list[float]:
    ms = []
    for text in texts:
        started = time.perf_counter()
        memwal.search(settings, text)
        ms.append((time.perf_counter() - started) * 1000)
    return ms


def others_on(home: Path) -> list[str]:
    """Command lines of other processes that name `home` (a detached merge, a migrator left)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        line = " ".join(a.decode(errors="replace") for a in argv if a)
        if str(home) in line:
            found.append(f"{entry.name}: {line}")
    return found


def active_model(settings: memwal.Settings) -> str:
    return str(memwal.reset_status(settings).as_json()["active_model"]["name"])


def coverage(settings: memwal.Settings) -> tuple[int, int] | None:
    migration = memwal.reset_status(settings).as_json()["migration"]
    return None if migration is None else (migration["covered"], migration["total"])


def searched_through(settings: memwal.Settings, texts: list[str], proc: subprocess.Popen[bytes],
                     result: Latency) -> None:
    """Searches, cycling over `texts`, from now until the migrator exits (its cutover done): all
    of them in phase "during", and split by what the migrator was doing, read between searches
    (coverage is read every 10 searches, outside the timed calls)."""
    embedding: list[float] = []
    finishing: list[float] = []
    at = 0
    state = coverage(settings)
    while proc.poll() is None:
        ms = timed_searches(settings, [texts[at % len(texts)]])[0]
        at += 1
        (finishing if state is not None and state[0] >= state[1] else embedding).append(ms)
        if at % 10 == 0:
            state = coverage(settings)
            result.migrator_rss = max(result.migrator_rss, rss_mb(proc.pid)[0])
    result.phases["during"] = embedding + finishing
    result.phases["during: re-embedding"] = embedding
    if finishing:
        result.phases["during: all covered, graph and cutover"] = finishing


def beside_b_alone(root: Path, settings: memwal.Settings, texts: list[str], pinned: bool,
                   result: Latency) -> None:
    """The control: the same CPU work without the migration (B's embedder alone, batches of
    queue.batch_records, in a loop in a subprocess placed like the migrator)."""
    chunk_texts = [content for _, _, content in sorted(all_chunks(settings))]
    script = ("import json, sys\nfrom memwal.embedders import get_embedder\n"
              "texts = json.load(open(sys.argv[1]))\nmodel = get_embedder(sys.argv[2])\n"
              "while True:\n    for at in range(0, len(texts), int(sys.argv[3])):\n"
              "        model.embed(texts[at:at + int(sys.argv[3])])\n")
    source = root / "control-texts.json"
    source.write_text(json.dumps(chunk_texts[:2048]))
    control = [str(PYTHON), "-c", script, str(source), MODEL_B, str(settings["queue.batch_records"])]
    if pinned:
        control = ["taskset", "-c", "0", *control]
    proc = subprocess.Popen(control, env=clean_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(5.0)  # past the model's load: it embeds now
        result.phases["beside B alone"] = timed_searches(settings, texts)
        if proc.poll() is not None:
            result.notes.append(f"**the control embedder ended early** (exit {proc.returncode})")
    finally:
        proc.kill()
        proc.wait()


def latency(root: Path, data: Dataset, pinned: bool, calls: int, whole: bool = False) -> Latency:
    variant = ("pinned" if pinned else "shared") + (", whole migration" if whole else "")
    settings = fresh_copy(root, f"latency-{variant.replace(', whole migration', '-whole')}")
    result = Latency(variant)
    queries = list(data.queries.values())
    texts = [queries[i % len(queries)] for i in range(calls)]
    before_affinity = os.sched_getaffinity(0)
    if pinned:
        os.sched_setaffinity(0, {1})
    log = root / f"latency-{variant}.log"
    loads = [load_average().split()[0]]
    try:
        timed_searches(settings, texts)  # warm: the embedder, the view, every query word's postings
        result.phases["before"] = timed_searches(settings, texts)
        argv = [str(MM), "embedding-reset", "--mode", "migrate", "--home", str(settings.home), "--json"]
        if pinned:
            argv = ["taskset", "-c", "0", *argv]
        env = clean_env() | {"MM_EMBEDDING_MODEL": MODEL_B}
        with log.open("w") as out:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        started = time.monotonic()
        while coverage(settings) is None and proc.poll() is None and time.monotonic() - started < 300:
            time.sleep(0.2)
        time.sleep(2.0)  # past the start: the migrator embeds now
        before_cov = coverage(settings)
        result.notes.append(f"migration started {time.monotonic() - started:.1f} s after the "
                            f"subprocess (coverage then {before_cov})")
        if whole:
            searched_through(settings, texts, proc, result)
        else:
            result.phases["during"] = timed_searches(settings, texts)
            result.migrator_rss = rss_mb(proc.pid)[0]
        after_cov = coverage(settings)
        result.covered_during = (before_cov or (0, 0))[0], (after_cov or (0, 0))[0]
        if whole:
            result.notes.append(f"the migrator exited {proc.wait()} "
                                f"{time.monotonic() - started:.0f} s after it was started")
        elif proc.poll() is not None:
            result.notes.append(f"**the migrator had ended before the searches did** (exit "
                                f"{proc.returncode}): part of 'during' ran without it")
        else:
            proc.send_signal(signal.SIGINT)
            asked = time.monotonic()
            try:
                proc.wait(120)
                result.notes.append(f"it ended {time.monotonic() - asked:.1f} s after SIGINT")
            except subprocess.TimeoutExpired:
                result.notes.append("**the migrator did not stop within 120 s of SIGINT**: killed (SIGKILL)")
                proc.kill()
                proc.wait()
            result.notes.append(f"migrator exit {proc.returncode}")
        left = others_on(settings.home)
        if left:
            result.notes.append(f"processes still on the home after the stop: {left}")
        if whole:
            result.covered_during = result.covered_during[0], len(all_chunks(settings))
            result.phases["after the cutover (B active)"] = timed_searches(settings, texts)
            result.notes.append(f"active model after it {active_model(settings)}")
        else:
            result.phases["after"] = timed_searches(settings, texts)
            result.notes.append(f"coverage after the stop {coverage(settings)}")
        if not whole:  # the control's searches compare with A's: not this variant's
            beside_b_alone(root, settings, texts, pinned, result)
    finally:
        os.sched_setaffinity(0, before_affinity)
    result.notes.append(f"1-minute load {loads[0]} before, {load_average().split()[0]} at the end")
    for phase, ms in result.phases.items():
        print(f"  {variant} {phase}: p50 {percentile(ms, 50):.1f} ms, p95 {percentile(ms, 95):.1f} ms",
              flush=True)
    print("  " + "; ".join(result.notes), flush=True)
    return result


# -- the report ----------------------------------------------------------------------------


def head_commit() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "benchmarks"],
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + (" (with uncommitted changes in src/ or benchmarks/)" if dirty else "")


def report(args: argparse.Namespace, data: Dataset, full: Dataset, record: dict[str, Any],
           points: list[Point], segments: list[Segment], end: dict[str, Any],
           latencies: list[Latency]) -> str:
    lines: list[str] = []
    add = lines.append
    chunks = end.get("chunks", record["chunks"])
    what = ("the whole set" if len(data.docs) == len(full.docs) else
            f"**a subset**: {len(data.docs):,} of {len(full.docs):,} documents "
            + (f"(the first {args.limit_queries} test queries' judged documents, then others drawn "
               "with seed 7)" if args.limit_queries else "(drawn with seed 7)")
            + f", and the {len(data.queries)} test queries with a relevant document among them; "
            "judgments of documents left out dropped")
    add(f"Commit `{head_commit()}` (`git rev-parse HEAD` of the tree measured). Machine: 2 cores, "
        "shared with other work: timings are noisy, so each ratio below is of figures taken side "
        "by side in one run.")
    add("")
    add(f"Data: {SOURCE['set']} (`{SOURCE['repository']}`@`{SOURCE['commit'][:12]}` "
        f"`{SOURCE['path']}`, laid out by `retrieval_quality.py --prepare`; {data.checked}): {what}. "
        f"Index: {len(data.docs):,} documents, **{chunks:,} chunks**, {len(data.queries)} queries. "
        f"Built with `{MODEL_A}` (A) by `memwal.index_paths` "
        + (f"in {record['seconds']:,.0f} s" if not record.get("reused") else
           f"(reused from {args.root / 'A'}, built {record['date']} in {record['seconds']:,.0f} s)")
        + f"; then configured with `{MODEL_B}` (B) by `MM_EMBEDDING_MODEL` and migrated.")
    add("")
    if points:
        add("**1. Retrieval quality during the migration** (`memwal.Searcher` configured with B, "
            f"hybrid, default settings, {RESULTS} results per query; nDCG@10 as in "
            "retrieval_quality.py). The migration was stopped (its `stop` event, set from "
            "`on_progress`) once covered ≥ each mark; covered counts shadow vectors committed "
            "when the searches ran:")
        add("")
        add("| point | chunks covered by B | batches queued | active model (searched with) | nDCG@10 | "
            "ms per query | searcher warnings |")
        add("|---|---:|---:|---|---:|---:|---|")
        for p in points:
            warn = "; ".join(f"{w} (×{n})" for w, n in p.warnings.items()) or "none"
            add(f"| {p.label} | {p.covered:,} / {p.total:,} | {p.pending} | `{p.active}` | {p.ndcg10:.4f} | "
                f"{p.ms_per_query:.1f} | {warn} |")
        a, b = points[0].ndcg10, points[-1].ndcg10
        low = min(p.ndcg10 for p in points)
        add("")
        add(f"A's own nDCG@10 (searched with A at {points[0].label.split()[0]}) {a:.4f}, B's (100%) "
            f"{b:.4f}; the lowest at any point {low:.4f}: "
            + ("**never below the lower of the two models'** (claim holds)."
               if low >= min(a, b) - 1e-12 else "**below the lower of the two models'** (claim fails)."))
        add("")
        total_s = sum(s.seconds for s in segments)
        embedded = sum(s.embedded for s in segments)
        alone_s = sum(s.baseline_seconds for s in segments)
        alone_n = sum(s.baseline_texts for s in segments)
        mig_rate = embedded / total_s
        alone_rate = alone_n / alone_s if alone_n else float("nan")
        if not alone_n:
            add(f"**2. Throughput.** `memwal.migrate_model` embedded {embedded:,} chunks in "
                f"{total_s:,.1f} s of wall time over its {len(segments)} segments: **{mig_rate:.1f} "
                "chunks/s** (B alone was not timed in this run: `--no-baseline`).")
        else:
            add(f"**2. Throughput.** `memwal.migrate_model` embedded {embedded:,} chunks in {total_s:,.1f} s "
                f"of wall time over its {len(segments)} segments (the searches at the marks left out): "
                f"**{mig_rate:.1f} chunks/s**. B's embedder alone (`get_embedder(\"{MODEL_B}\").embed`, "
                f"batches of {end['batch']}) on the texts the migrator embedded ({alone_n:,}, repeats "
                f"included), each segment's "
                f"texts timed right after it: {alone_s:,.1f} s, **{alone_rate:.1f} "
                f"chunks/s**. Ratio **{mig_rate / alone_rate:.2f}** (goal ≥ 0.9: "
                f"{'met' if mig_rate / alone_rate >= 0.9 else 'not met'}). Counted as chunks "
                f"migrated ({chunks:,}) over the same wall time, since a stopped run's last batch is "
                f"embedded again by the next: {chunks / total_s:.1f} chunks/s, "
                f"{chunks / total_s / alone_rate:.2f} of B alone.")
            add("")
        add("")
        add("| segment | migrate_model s | chunks embedded | chunks/s | B alone: texts | s | chunks/s | "
            "ratio |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|")
        for s in segments:
            add(f"| to {s.mark} | {s.seconds:.1f} | {s.embedded:,} | {s.embedded / s.seconds:.1f} | "
                f"{s.baseline_texts:,} | {s.baseline_seconds:.1f} | "
                f"{s.baseline_texts / s.baseline_seconds if s.baseline_texts else float('nan'):.1f} | "
                f"{(s.embedded / s.seconds) / (s.baseline_texts / s.baseline_seconds) if s.baseline_texts else float('nan'):.2f} |")
        add("")
        rs = end["reset_status"]
        add(f"After the cutover: active model `{rs['active_model']['name']}`, migration "
            f"{rs['migration']}, `mm doctor` ok: {end['doctor_ok']}"
            + (f" (failed: {end['failed']})" if end["failed"] else "")
            + f"; vectors by fingerprint {end['vectors_by_fingerprint']}; chunks embedded in all "
            f"{embedded:,} for {chunks:,} chunks"
            + (f" ({embedded - chunks:+,}: re-embedded after a stop)" if embedded > chunks and not args.resume
               else " (this run only)" if args.resume else "")
            + f"; this process's peak RSS {end['rss_peak_mb']:.0f} MB (RSS at the points: "
            + ", ".join(f"{p.rss:.0f}" for p in points) + " MB).")
        add("")
    if latencies:
        add(f"**3. Search latency** (`memwal.search(settings, q)` with the settings of B, warm, one "
            f"process; {args.calls} calls per phase (except a whole migration's *during*) cycling "
            "over the test queries; each variant on "
            "a fresh copy of A's home). *Before*: no migration yet; *during*: while "
            "`mm embedding-reset --mode migrate --home H --json` runs in a subprocess with "
            f"`MM_EMBEDDING_MODEL={MODEL_B}`; *after*: once that subprocess was stopped by SIGINT "
            "(the same migration, left resumable: a check that the machine's load did not drift); "
            "*beside B alone*: while a subprocess placed like the migrator runs B's embedder alone "
            "in a loop over the chunk texts (the same CPU work without the migration: the control "
            "that tells CPU contention from the design's cost)."
            + (" *Whole migration* variants (`--whole`): the searches run from the migrator's start "
               "until it exits with the cutover done, however many that is; *during* is all of them, "
               "split by what the migrator was doing (coverage read every 10 searches); *after the "
               "cutover*: B active. No control there (its searches would use B, the before ones A)."
               if any(lat.variant.endswith("whole migration") for lat in latencies) else ""))
        add("")
        add("| variant | phase | searches | p50 ms | p95 ms | p50 / before | p95 / before |")
        add("|---|---|---:|---:|---:|---:|---:|")
        for lat in latencies:
            b50, b95 = percentile(lat.phases["before"], 50), percentile(lat.phases["before"], 95)
            name = ("shared: both free on the 2 cores (CPU contention included)"
                    if lat.variant.startswith("shared")
                    else "pinned: migrator `taskset -c 0`, searcher on core 1 (other jobs of the machine "
                    "still run on both)")
            if lat.variant.endswith("whole migration"):
                name += "; searched from the migrator's start to its exit (the cutover done)"
            for phase, ms in lat.phases.items():
                p50, p95 = percentile(ms, 50), percentile(ms, 95)
                add(f"| {name} | {phase} | {len(ms):,} | {p50:.1f} | {p95:.1f} | {p50 / b50:.2f}× | "
                    f"{p95 / b95:.2f}× |")
        add("")
        for lat in latencies:
            ratio = percentile(lat.phases["during"], 50) / percentile(lat.phases["before"], 50)
            control = lat.phases.get("beside B alone")
            if control:
                add(f"- {lat.variant}: beside B's embedder alone / before p50 "
                    f"**{percentile(control, 50) / percentile(lat.phases['before'], 50):.2f}×**; "
                    f"during the migration / beside B alone p50 "
                    f"**{percentile(lat.phases['during'], 50) / percentile(control, 50):.2f}×**.")
            add(f"- {lat.variant}: during / before p50 **{ratio:.2f}×** (goal ≤ 1.5×: "
                f"{'met' if ratio <= 1.5 else 'not met'}); the migrator covered "
                f"{lat.covered_during[0]:,} → {lat.covered_during[1]:,} chunks while the searches "
                f"ran, its RSS {lat.migrator_rss:.0f} MB; " + "; ".join(lat.notes) + ".")
        add("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_options(parser, doc_by_default=False)
    parser.add_argument("--data", type=Path, default=DATA, help=f"the set, BEIR layout (default {DATA})")
    parser.add_argument("--homes", type=Path, default=HOMES, help=f"where the kept homes go (default {HOMES})")
    parser.add_argument("--limit-docs", type=int, metavar="N", help="index N documents only (see subset())")
    parser.add_argument("--limit-queries", type=int, metavar="N", help="the first N test queries only")
    parser.add_argument("--calls", type=int, default=200, help="searches per latency phase (default 200)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the migration of the kept quality/ home from where an earlier "
                             "run stopped (the marks it passed are left out) instead of a fresh copy")
    parser.add_argument("--no-baseline", action="store_true",
                        help="leave out B alone (figure 2's denominator): halves a slow run")
    parser.add_argument("--whole", action="store_true",
                        help="figure 3 searches through the whole migration, to its cutover, "
                             "instead of --calls searches and a stop")
    parser.add_argument("--parts", default="quality,latency",
                        help="which to run: quality (figures 1 and 2), latency (figure 3)")
    args = parser.parse_args(argv)
    # A shell starts a background job with SIGINT ignored, and children inherit that: the
    # migrator stopped with SIGINT below must get Python's KeyboardInterrupt, as from a terminal.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.quick:
        args.limit_docs = args.limit_docs or 400
        args.limit_queries = args.limit_queries or 30
        args.calls = min(args.calls, 50)
    parts = set(args.parts.split(","))
    full = load(args.data)
    data = subset(full, args.limit_docs, args.limit_queries)
    tag = ("quick" if args.quick else "full" if not (args.limit_docs or args.limit_queries)
           else f"d{args.limit_docs or 'all'}-q{args.limit_queries or 'all'}")
    args.root = args.homes / f"migration-{tag}"
    print(f"{len(data.docs):,} documents, {len(data.queries)} queries; homes under {args.root}", flush=True)
    load_before = load_average()
    _, where = machine(args.root.parent if args.root.parent.exists() else REPO)
    settings_a, record = build_a(args.root, data)
    print(f"  A: {record['chunks']:,} chunks ({'reused' if record.get('reused') else 'built'})", flush=True)
    points: list[Point] = []
    segments: list[Segment] = []
    end: dict[str, Any] = {}
    latencies: list[Latency] = []
    if "quality" in parts:
        points, segments, end = quality_and_throughput(args.root, data, args.resume,
                                                       not args.no_baseline)
    if "latency" in parts:
        variants = [False] + ([True] if len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset")
                              else [])
        for pinned in variants:
            try:
                latencies.append(latency(args.root, data, pinned=pinned, calls=args.calls,
                                         whole=args.whole))
            except Exception as exc:  # the figures measured so far still get written
                print(f"  latency ({'pinned' if pinned else 'shared'}) failed: {exc!r}", flush=True)
    import dataclasses

    (args.root / "results.json").write_text(json.dumps(
        {"record": record, "points": [dataclasses.asdict(p) for p in points],
         "segments": [dataclasses.asdict(s) for s in segments], "end": end,
         "latencies": [dataclasses.asdict(lat) for lat in latencies]}, indent=1, default=str) + "\n")
    body = report(args, data, full, record, points, segments, end, latencies)
    print(body)
    if writes_doc(args):
        cmd = (f"PYTHONPATH=src {PYTHON} benchmarks/migration.py "
               + " ".join(sys.argv[1:] if argv is None else argv)).strip()
        name = "migration" + ("" if tag == "full" else f"-{tag}") + (
            "" if parts == {"quality", "latency"} else "-" + "-".join(sorted(parts))) + (
            "-whole" if args.whole and "latency" in parts else "")
        update_section(name, "Model migration without downtime (issue 26)"
                       + ("" if name == "migration" else f": {name.removeprefix('migration-')}"),
                       header(where, cmd, load_before) + body, args.doc)
        print(f"updated {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
