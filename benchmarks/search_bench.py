"""Search latency at scale, on the current search code: each leg, the hybrid Searcher, the derived index.

For each size, builds an index of N synthetic chunks through the real write path
(`memwal.enqueue_items`, then `memwal.run_worker(once=True)`), rebuilds the derived vector index
as `mm doctor --repair` does (timed, in a child process), then, in this one long-lived process:

- the keyword leg (`retrieval.bm25_ranking` with the postings a `Searcher` keeps, and by FTS5
  alone as a one-off search runs it) on queries of common words and on queries of rare words,
  both drawn from the index's own vocabulary (FTS5's), with the rows each query's FTS
  expression matches;
- the vector leg as a long-lived `Searcher` runs it (the derived index memory-mapped and current),
  on 384-d clustered vectors, with recall@10 against an exact numpy search of the same vectors;
- `memwal.Searcher(settings).search(text)` end to end, the query embedding left out (the
  searcher's embedder hands back the query's precomputed vector); the embedding alone apart;
- the derived index's size and the memory its view adds, against the raw float32 vectors.

Prints a table per size and a met/not met line per goal, and writes the "Search latency" section
of docs/benchmarks.md.

    .venv/bin/python benchmarks/search_bench.py --home /var/tmp/sb            # 100k; re-runs reuse it
    .venv/bin/python benchmarks/search_bench.py --home /var/tmp/sb --million  # 100k and 1M
    .venv/bin/python benchmarks/search_bench.py --quick                       # 5k, 20 queries; prints only
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import memwal
from benchlib import (
    DIM, HASH_MODEL, PYTHON, ClusteredVectors, Corpus, Timing, add_run_options,
    build_synthetic, command, derived_index_state, embedder, header, load_average, machine,
    make_home, median, run_timed, search_legs, time_calls, update_section, work_folder, writes_doc,
)
from memwal.retrieval import TIER_DEPTHS

TOP = 10  # results a search returns by default (search.top_k), and the k of recall@k
FORMAT = 2  # of the home's build record: a home built by another version is not reused
MERGE_NEVER = 100_000_000  # vectors.merge_at while building: the rebuild alone makes the graph


# -- the vectors -----------------------------------------------------------------------------


def exact_top(legs: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, cosines) of each query's exact top k over every stored vector: numpy brute force,
    block by block (a million float32 vectors are 1.5 GB: never held at once)."""
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), k), dtype=np.int64)
    for ids, matrix in legs.stored_vectors(65_536):
        scores = (queries @ matrix.T) / np.maximum(np.linalg.norm(matrix, axis=1), 1e-12)
        kk = min(k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(scores, part, 1)], axis=1)
        cand_i = np.concatenate([best_i, ids[part]], axis=1)
        order = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
    return best_i, best_s


class QueryVector:
    """An embedder for `memwal.Searcher` that hands back the vector set for the next query.

    It carries hash-384's name and fingerprint (the index's active model, so the vector leg runs);
    the timed search then leaves the embedding out, and the query's vector is a clustered one,
    near the data, like the stored vectors.
    """

    def __init__(self) -> None:
        model = embedder(HASH_MODEL)
        self.name, self.dim = model.name, model.dim
        self.fingerprint, self.info = model.fingerprint, model.info
        self.vector = np.zeros(model.dim, dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.repeat(self.vector[None, :], len(texts), axis=0)


# -- the index -------------------------------------------------------------------------------


def build_index(settings: memwal.Settings, chunks: int, seed: int,
                vectors: ClusteredVectors) -> tuple[dict[str, Any], bool]:
    """The home's build record, and whether the index was there already (else it is built now).

    Chunks come 100 per file, each file's snapshot first, as `mm index` sends them, with
    `vectors`' vectors stamped as hash-384's. An index already in the home that this script built
    with the same parameters is reused.
    """
    record_path = settings.home / "search-bench.json"
    spec = {"format": FORMAT, "chunks": chunks, "seed": seed, "vectors": vectors.describe()}
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    existing = memwal.index_status(settings)["chunks"]
    if existing and record.get("spec") == spec:
        return record, True
    if existing:
        sys.exit(f"{settings.home} holds an index this script did not build with these parameters "
                 f"({existing:,} chunks): give another --home, or empty this one")
    print(f"  building an index of {chunks:,} chunks in {settings.home} ...", flush=True)
    enqueue_s, commit_s = build_synthetic(settings, chunks, seed, vectors, HASH_MODEL,
                                          "benchmarks/search_bench.py")
    record = {"spec": spec, "how": (
        f"built in {enqueue_s + commit_s:,.0f} s: making the chunks and vectors and enqueueing them "
        f"{enqueue_s:,.0f} s, `run_worker` {commit_s:,.0f} s ({chunks / commit_s:,.0f} chunks/s "
        f"through the committer)")}
    record_path.write_text(json.dumps(record))
    return record, False


def current_vector_index(settings: memwal.Settings, record: dict[str, Any], rebuild: bool) -> dict[str, Any]:
    """The timed rebuild of the derived vector index (run now, or by the run that built it).

    Rebuilt when the home has none that reflects its last commit, or with `rebuild`: in a child
    process, with `memwal.repair` (what `mm doctor --repair` runs), so its time and peak RSS are
    the rebuild's own.
    """
    count, seq, last = derived_index_state(settings)
    if count and seq == last and "vector_index" in record and not rebuild:
        return record["vector_index"] | {"reused": True}
    print("  rebuilding the derived vector index (`memwal.repair`) ...", flush=True)
    wall, done = run_timed([PYTHON, "-c", _REPAIR, settings.home])
    built = json.loads(done.stdout.strip().splitlines()[-1])
    count, seq, last = derived_index_state(settings)
    if not count or seq != last:
        sys.exit(f"the derived vector index is not current after the rebuild: {built}")
    record["vector_index"] = built | {"wall_seconds": round(wall, 1)}
    (settings.home / "search-bench.json").write_text(json.dumps(record))
    return record["vector_index"]


# A fresh process, so that its peak RSS is the rebuild's (plus an interpreter's, ~60 MB).
_REPAIR = """
import json, resource, sys
import memwal
done = memwal.repair(memwal.load_settings(sys.argv[1], environ={}))["vector_index"]
done["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(done))
"""


# -- queries ---------------------------------------------------------------------------------


def keyword_queries(legs: Any, words: set[str], count: int, seed: int) -> dict[str, list[str]]:
    """`count` queries of 2-4 words per class, drawn from the terms the full-text index holds.

    common: the 50 words of the text in the most chunks; rare: words in 0.01%-0.1% of the chunks
    (at least 2, at most 10 chunks below 10,000 chunks). Words of the headings ("note", "part",
    numbers) are left out: they are in every chunk because of how this corpus names them.
    """
    terms = sorted(((chunks, term) for term, chunks in legs.vocabulary() if term in words), reverse=True)
    total = legs.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    low, high = max(2, total // 10_000), max(10, total // 1_000)
    pools = {"common": [t for _, t in terms[:50]],
             "rare": [t for n, t in terms if low <= n <= high]}
    rng = np.random.default_rng([seed, 4])
    return {name: [" ".join(rng.choice(pool, size=int(rng.integers(2, 5)), replace=False))
                   for _ in range(count)] for name, pool in pools.items()}


# -- memory ----------------------------------------------------------------------------------


def rss_mb() -> float:
    """This process's resident set size (VmRSS), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def mapped_mb(path: Path) -> float:
    """Resident MB of this process's mappings of `path` (its pages touched so far), by smaps."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if head and "-" in head[0] and not head[0].endswith(":"):  # a mapping's first line
            inside = len(head) == 6 and head[5] == str(path)
        elif inside and head[0] == "Rss:":
            total += int(head[1])
    return total / 1024


# -- one size --------------------------------------------------------------------------------


@dataclass
class SizeResult:
    chunks: int
    how: str
    index_mb: float
    rebuild: dict[str, Any]
    queries: int  # per class
    timings: dict[str, Timing] = field(default_factory=dict)
    matched: dict[str, float] = field(default_factory=dict)  # median rows matched, per class
    recall: float = math.nan
    cosines: tuple[float, float] = (math.nan, math.nan)  # mean exact top-1 and top-10 cosine
    first_vector_ms: float = math.nan
    file_mb: float = math.nan
    raw_mb: float = math.nan
    searched: int = 0  # vector searches before the memory was read
    view_rss_mb: float = math.nan
    process_rss_mb: float = math.nan
    kept_same: tuple[int, int] = (0, 0)  # queries where the kept postings' ids = FTS5's
    plan: list[str] = field(default_factory=list)
    statement: str = ""
    loads: list[str] = field(default_factory=list)


LABELS = {
    "keyword-common": "keyword leg (kept postings), common-word queries",
    "keyword-rare": "keyword leg (kept postings), rare-word queries",
    "fts5-common": "keyword leg by FTS5 alone (a one-off search), common-word queries",
    "fts5-rare": "keyword leg by FTS5 alone (a one-off search), rare-word queries",
    "match-common": "FTS5 matching alone, common-word queries (count(*): no BM25, no sort)",
    "vector": "vector leg (derived index current)",
    "hybrid-common": "hybrid `Searcher.search`, common-word text",
    "hybrid-rare": "hybrid `Searcher.search`, rare-word text",
}


def measure(settings: memwal.Settings, chunks: int, args: argparse.Namespace, n_queries: int,
            rounds: int) -> tuple[SizeResult, dict[str, list[str]]]:
    depth = TIER_DEPTHS[0]  # what a Searcher asks of each leg first
    vectors = ClusteredVectors(args.seed)
    record, reused = build_index(settings, chunks, args.seed, vectors)
    rebuild = current_vector_index(settings, record, args.rebuild)
    how = record["how"] + ("; this run reused that index from the same --home" if reused else "")
    result = SizeResult(chunks, how, settings.index_path.stat().st_size / 1e6, rebuild, n_queries)
    legs = search_legs(settings)
    try:
        texts = keyword_queries(legs, set(Corpus(args.seed).words), n_queries, args.seed)
        for name, queries in texts.items():
            result.matched[name] = median(legs.matches(q) for q in queries)
        every = texts["common"] + texts["rare"]
        # (this also reads the kept postings of every query word: they are what later searches use)
        result.kept_same = (sum(legs.keyword(q, depth) == legs.keyword_fts5(q, depth) for q in every),
                            len(every))
        result.statement = legs.keyword_statement(texts["common"][0], depth)
        result.plan = legs.explain(result.statement)
        query_vectors = vectors.queries(n_queries)

        # The vector leg's first search maps the derived index; then every query once, for
        # recall: the memory the view adds is what those searches touched.
        before = rss_mb()
        started = time.perf_counter()
        legs.vector(query_vectors[0], depth)
        result.first_vector_ms = (time.perf_counter() - started) * 1000
        views = legs.view_paths()
        if views is None:
            sys.exit("the vector leg did not use the derived index")
        found = [legs.vector(v, depth)[:TOP] for v in query_vectors]
        result.searched = 1 + len(found)
        result.process_rss_mb = rss_mb() - before
        result.view_rss_mb = sum(mapped_mb(view) for view in views)
        result.file_mb = sum(view.stat().st_size for view in views) / 1e6
        result.raw_mb = chunks * DIM * 4 / 1e6
        exact, cosines = exact_top(legs, query_vectors, TOP)
        result.recall = float(np.mean([len(set(f) & set(e)) / TOP for f, e in zip(found, exact.tolist())]))
        result.cosines = float(cosines[:, 0].mean()), float(cosines[:, TOP - 1].mean())

        query_vector = QueryVector()
        searcher = memwal.Searcher(settings, embedder=query_vector)  # type: ignore[arg-type]

        def hybrid(text: str, vector: np.ndarray) -> object:
            query_vector.vector = vector
            return searcher.search(text)

        positions = list(range(n_queries))
        for i in positions:  # warm, as a server is: the searcher reads each query word's postings once
            hybrid(texts["common"][i], query_vectors[i])
            hybrid(texts["rare"][i], query_vectors[i])
        methods: list[tuple[str, Sequence[Any], Callable[[Any], object]]] = [
            ("keyword-common", texts["common"], lambda q: legs.keyword(q, depth)),
            ("keyword-rare", texts["rare"], lambda q: legs.keyword(q, depth)),
            ("fts5-common", texts["common"], lambda q: legs.keyword_fts5(q, depth)),
            ("fts5-rare", texts["rare"], lambda q: legs.keyword_fts5(q, depth)),
            ("match-common", texts["common"], legs.matches),
            ("vector", positions, lambda i: legs.vector(query_vectors[i], depth)),
            ("hybrid-common", positions, lambda i: hybrid(texts["common"][i], query_vectors[i])),
            ("hybrid-rare", positions, lambda i: hybrid(texts["rare"][i], query_vectors[i])),
        ]
        result.timings = {name: Timing(LABELS[name]) for name, _, _ in methods}
        result.loads = [load_average().split()[0]]
        for number in range(rounds):
            # Interleaved: each query through every method in turn, so passing load on a shared
            # machine hits them alike.
            for timing, this_round in zip(result.timings.values(),
                                          time_calls(methods, warmup=5 if number == 0 else 0)):
                timing.add_round(this_round.ms)
            result.loads.append(load_average().split()[0])
            print(f"  {chunks:,} chunks, round {number + 1}/{rounds}: " + ", ".join(
                f"{name} {t.round_p50s[-1]:.1f}" for name, t in result.timings.items()) +
                f" ms p50; load {result.loads[-1]}", flush=True)
        searcher.close()
    finally:
        legs.close()
    return result, texts


# Run in a fresh process: onnxruntime's threads spin after each run (they would slow whatever
# this process timed next), and a crash in a native library there does not lose the run's figures.
_EMBED = """
import json, sys
sys.path.insert(0, sys.argv[1])
from benchlib import embedder, time_calls
name, texts, rounds = json.load(sys.stdin)
model = embedder(name)
print(json.dumps([time_calls([("", texts, lambda q: model.embed([q]))], 5 if n == 0 else 0)[0].ms
                  for n in range(rounds)]))
"""


def embedding_timings(texts: list[str], rounds: int, minilm: bool) -> tuple[list[Timing], list[str]]:
    """One query's embedding alone, with hash-384 and (unless told not to) minilm, the default,
    each in a child process; and what failed, if anything did."""
    models = [(HASH_MODEL, "query embedding alone, hash-384")]
    if minilm:
        models.append(("minilm", "query embedding alone, minilm (the default model)"))
    timings, failed = [], []
    for name, label in models:
        try:
            _, done = run_timed([PYTHON, "-c", _EMBED, Path(__file__).parent],
                                input=json.dumps([name, texts, rounds]))
        except RuntimeError as exc:
            failed.append(f"{label}: the child process failed ({str(exc).splitlines()[0]})")
            continue
        timing = Timing(label)
        for ms in json.loads(done.stdout.strip().splitlines()[-1]):
            timing.add_round(ms)
        timings.append(timing)
    return timings, failed


# -- goals -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    what: str
    value: Callable[[SizeResult], float]
    limit: float
    unit: str
    at: int | None = None  # the size the goal is set at (None: every size)
    at_least: bool = False

    def verdict(self, result: SizeResult) -> str:
        value = self.value(result)
        met = value >= self.limit if self.at_least else value <= self.limit
        sign = "≥" if self.at_least else "≤"
        shown = f"{value:.3f}" if self.unit == "" else f"{value:.2f}{self.unit}"
        return (f"{self.what} at {result.chunks:,} chunks: {shown} (goal {sign} "
                f"{self.limit:g}{self.unit}): {'met' if met else '**not met**'}")


def p50(name: str) -> Callable[[SizeResult], float]:
    return lambda result: result.timings[name].p50


GOALS = [
    Goal("keyword leg p50, common-word queries", p50("keyword-common"), 5, " ms", 100_000),
    Goal("vector leg p50", p50("vector"), 5, " ms", 100_000),
    Goal("vector leg p50", p50("vector"), 20, " ms", 1_000_000),
    Goal("vector leg recall@10 against exact search", lambda r: r.recall, 0.95, "", at_least=True),
    Goal("hybrid `Searcher.search` p50, common-word text", p50("hybrid-common"), 10, " ms", 100_000),
    Goal("hybrid `Searcher.search` p50, rare-word text", p50("hybrid-rare"), 10, " ms", 100_000),
    Goal("derived index file / raw float32 vectors", lambda r: r.file_mb / r.raw_mb, 1.5, "×"),
]


def verdicts(results: list[SizeResult]) -> list[str]:
    lines = []
    for goal in GOALS:
        hits = [r for r in results if goal.at in (None, r.chunks)]
        lines += [goal.verdict(r) for r in hits] or [
            f"{goal.what} at {goal.at:,} chunks: not measured by this run"]
    built = {r.chunks: r.rebuild for r in results}
    for chunks in sorted(set(built) | {1_000_000}):
        lines.append(f"derived index build (`memwal.repair`) at {chunks:,} chunks: " + (
            f"{built[chunks]['seconds']:,.1f} s, peak RSS {built[chunks]['peak_rss_mb']:,} MB "
            "(reported; no goal set)" if chunks in built else "not measured by this run"))
    return lines


# -- output ----------------------------------------------------------------------------------


def notes(result: SizeResult) -> dict[str, str]:
    """What each timed row's last column says."""
    return {
        "keyword-common": f"{result.matched['common']:,.0f} rows matched (median)",
        "keyword-rare": f"{result.matched['rare']:,.0f} rows matched (median)",
        "fts5-common": f"same ids, same order as the kept postings on "
                       f"{result.kept_same[0]}/{result.kept_same[1]} queries",
        "fts5-rare": "",
        "match-common": "",
        "vector": f"recall@10 {result.recall:.3f}",
        "hybrid-common": "embedding left out",
        "hybrid-rare": "embedding left out",
    }


def spread(timing: Timing) -> str:
    """The lowest and highest p50 of the rounds (how much passing load moved the figure)."""
    p50s = timing.round_p50s
    return f"{min(p50s):.2f}–{max(p50s):.2f}" if len(p50s) > 1 else "–"


def keyword_cost(result: SizeResult) -> str:
    """Where the keyword leg's time goes on common words, from the measured rows."""
    fts5, alone = result.timings["fts5-common"].p50, result.timings["match-common"].p50
    kept = result.timings["keyword-common"].p50
    return (f"at {result.chunks:,} chunks FTS5 finds the common-word matches (median "
            f"{result.matched['common']:,.0f} rows) in {alone:.2f} ms p50; scoring every one of "
            f"them with bm25() and sorting is the rest of its {fts5:.2f} ms (about "
            f"{bm25_us_per_row(result):.2f} µs per matched row): the cost follows the rows "
            f"matched, not the {TIER_DEPTHS[0]} returned. The kept postings take {kept:.2f} ms "
            f"({fts5 / kept:.0f}× less) for the same ids")


def bm25_us_per_row(result: SizeResult) -> float:
    """µs per matched row of what FTS5's leg spends beyond its matching (bm25() and the sort)."""
    rest = result.timings["fts5-common"].p50 - result.timings["match-common"].p50
    return rest * 1000 / max(1.0, result.matched["common"])


def table(result: SizeResult) -> str:
    rows = [f"| what ({result.chunks:,} chunks) | p50 ms | p95 ms | mean ms | p50 per round, ms | |",
            "|---|---:|---:|---:|---:|---|"]
    rows += [f"| {t.label} | {t.p50:.2f} | {t.p95:.2f} | {t.mean:.2f} | {spread(t)} | "
             f"{notes(result)[name]} |" for name, t in result.timings.items()]
    return "\n".join(rows)


def memory_lines(result: SizeResult) -> list[str]:
    r, b = result, result.rebuild
    return [
        f"derived index file {r.file_mb:,.0f} MB = {r.file_mb / r.raw_mb:.2f}× the raw float32 "
        f"vectors ({r.chunks:,} × {DIM} × 4 B = {r.raw_mb:,.0f} MB)",
        f"memory the view added after {r.searched} searches: {r.view_rss_mb:,.0f} MB resident in "
        f"its mapping, process RSS +{r.process_rss_mb:,.0f} MB; first search (maps the file) "
        f"{r.first_vector_ms:,.1f} ms",
        f"rebuild (`memwal.repair`, child process): {b['seconds']:,.1f} s for {b['vectors']:,} vectors "
        f"(process {b['wall_seconds']:,.1f} s), peak RSS {b['peak_rss_mb']:,} MB"
        + (" (timed by the run that built this home)" if b.get("reused") else ""),
        f"exact top-10 cosine: top-1 {r.cosines[0]:.3f}, 10th {r.cosines[1]:.3f} (mean over the queries)",
    ]


def print_size(result: SizeResult) -> None:
    width = max(len(t.label) for t in result.timings.values())
    print(f"\n{result.chunks:,} chunks ({result.how})")
    print(f"{'':<{width}}  {'p50 ms':>8}  {'p95 ms':>8}  {'mean ms':>8}  {'p50/round':>12}")
    for name, t in result.timings.items():
        print(f"{t.label:<{width}}  {t.p50:8.2f}  {t.p95:8.2f}  {t.mean:8.2f}  {spread(t):>12}  "
              f"{notes(result)[name]}")
    for line in memory_lines(result):
        print(f"  {line}")
    print(f"  {keyword_cost(result)}")
    print(f"  FTS5's keyword SQL: {result.statement}")
    print("  its plan: " + "; ".join(result.plan))


def queries_at(chunks: int, args: argparse.Namespace) -> int:
    """Queries per class: fewer above 100k chunks, where a common-word keyword query takes
    seconds and each is timed through ten rows, three rounds."""
    return args.queries or (20 if args.quick else 200 if chunks <= 100_000 else 50)


def parse_sizes(args: argparse.Namespace) -> list[int]:
    if args.sizes:
        return [int(s.replace("_", "")) for s in args.sizes.split(",")]
    if args.million:
        return [100_000, 1_000_000]
    return [args.chunks or (5_000 if args.quick else 100_000)]


def main(argv: list[str] | None = None) -> int:
    faulthandler.enable()  # a long run that dies in a native library says where
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_options(parser)
    parser.add_argument("--home", type=Path,
                        help="folder of the homes, one per size (DIR/chunks-N), kept and reused "
                             "(default: a temp dir)")
    parser.add_argument("--chunks", type=int, help="chunks in the index (default 100,000; quick 5,000)")
    parser.add_argument("--sizes", help="several sizes, e.g. 100000,1000000 (overrides --chunks)")
    parser.add_argument("--million", action="store_true", help="sizes 100,000 and 1,000,000")
    parser.add_argument("--queries", type=int,
                        help="queries per class (default 200, 50 above 100,000 chunks; quick 20)")
    parser.add_argument("--rounds", type=int, help="timed passes over the queries (default 3; quick 1)")
    parser.add_argument("--seed", type=int, default=20240601, help="text, vector and query seed")
    parser.add_argument("--rebuild", action="store_true",
                        help="rebuild (and time) the derived vector index even if it is current")
    parser.add_argument("--no-minilm", action="store_true", help="skip timing minilm's query embedding")
    args = parser.parse_args(argv)
    sizes = parse_sizes(args)
    rounds = args.rounds or (1 if args.quick else 3)

    results: list[SizeResult] = []
    with work_folder(args.workdir, args.keep) as work:
        _, where = machine(work)
        load_before = load_average()
        base = (args.home or work).expanduser().absolute()
        for chunks in sizes:
            settings = make_home(base / f"chunks-{chunks}", HASH_MODEL, queue={"batch_records": 1010},
                                 vectors={"merge_at": MERGE_NEVER})
            result, texts = measure(settings, chunks, args, queries_at(chunks, args), rounds)
            print_size(result)
            results.append(result)
        embedding, failed = embedding_timings(texts["common"], rounds, not args.no_minilm)

    print()
    for t in embedding:
        print(f"{t.label}: p50 {t.p50:.2f} ms, p95 {t.p95:.2f} ms")
    for line in failed:
        print(line)
    print()
    goals = verdicts(results)
    for line in goals:
        print(line)
    if not writes_doc(args):
        return 0
    cmd = command("search_bench.py", *(sys.argv[1:] if argv is None else argv))
    write_doc(args, cmd, results, embedding, failed, goals, where, load_before, rounds)
    print(f"updated the 'Search latency' section of {args.doc}")
    return 0


def write_doc(args: argparse.Namespace, cmd: str, results: list[SizeResult], embedding: list[Timing],
              failed: list[str], goals: list[str], where: str, load_before: str, rounds: int) -> None:
    first = results[0]
    queries = ", ".join(f"{r.queries} per class at {r.chunks:,} chunks" for r in results)
    sizes = "\n\n".join(
        f"**{r.chunks:,} chunks** ({r.how}; index file {r.index_mb:,.0f} MB; 1-minute load "
        f"before and after each round: {' → '.join(r.loads)}):\n\n{table(r)}\n\n"
        + "\n".join(f"- {line}" for line in memory_lines(r)) for r in results)
    embed_rows = "\n".join([f"  - {t.label}: {t.p50:.2f} ms p50, {t.p95:.2f} ms p95 (in a child "
                            "process)" for t in embedding] + [f"  - {line}" for line in failed])
    body = header(where, cmd, load_before) + f"""
**Data.** Chunks of 60-160 words from a fixed-seed Zipf vocabulary of made-up words (seed
{args.seed}), 100 per file, written through the real queue and committer (`memwal.enqueue_items`,
`memwal.run_worker(once=True)`). **Vectors are synthetic**: {ClusteredVectors(args.seed).describe()},
stamped with hash-384's fingerprint (the committer checks the fingerprint and the dimension,
not where a vector came from). The derived vector index was rebuilt after the build as
`mm doctor --repair` does (`memwal.repair`, timed in a child process), so it reflects the last
commit: the vector leg searches the graph alone, as a long-lived server's does once its
committer has caught up.

**Queries.** {queries}, 2-4 words each, drawn from the index's own vocabulary (FTS5's
`fts5vocab`): *common-word* from the 50 words of the text found in the most chunks, *rare-word*
from the words found in 0.01%-0.1% of the chunks; the last column gives the median number of
rows each class's FTS expression (quoted tokens OR-ed) matched. The vector queries are fresh
draws from the same clusters (near the data, not in it); recall@10 compares the vector leg's
first 10 with an exact numpy search (cosine, float32) over the same stored vectors.

**What is timed**, in one long-lived process, {rounds} round(s) of those queries per row after
5 warm-up queries, each query through every row in turn (passing load hits them alike), warm
page cache:

- *keyword leg (kept postings)*: `retrieval.bm25_ranking` on one kept read connection with the
  `KeywordIndex` a `Searcher` keeps (memwal.keywordindex: each query word's rows and counts,
  read once from FTS5's own postings), depth {TIER_DEPTHS[0]} (what a `Searcher` asks of each leg
  first); before timing, every query was run once both ways and the ids compared (that also
  read the postings of every query word: the timed searches are warm, as in a server).
- *keyword leg by FTS5 alone*: the same ranking as a one-off `memwal.search` runs it
  (`ORDER BY bm25(chunks_fts), rowid LIMIT {TIER_DEPTHS[0]}` on FTS5, no join before the LIMIT).
- *vector leg*: the `Searcher`'s own vector leg object (`retrieval._VectorLeg`), kept across
  queries: the memory-mapped usearch view, the (empty) tail check, the live-chunk filter; the
  query vector given, depth {TIER_DEPTHS[0]}.
- *hybrid*: `memwal.Searcher(settings, embedder=…).search(text)`, the public long-lived path, end
  to end (read snapshot, both legs, fusion, the per-file cap, rows, hits); its embedder hands
  back the query's precomputed clustered vector, so the embedding is left out; every query
  was searched once before the timing (warm, as in a server). The embedding
  alone, on the common-word texts:
{embed_rows}

{sizes}

**Goals.**

{chr(10).join(f"- {line}" for line in goals)}

**Where the keyword leg's time goes**: {"; ".join(keyword_cost(r) for r in results)}. FTS5's
SQL at {first.chunks:,} chunks (a common-word query, as SQLite ran it): `{first.statement}`; its
plan: {'; '.join(f'`{step}`' for step in first.plan)}.
"""
    update_section("search-latency", "Search latency", body, args.doc)


if __name__ == "__main__":
    raise SystemExit(main())
