"""Search on the user's path (issue 25): `mm index` alone, then search right away and later.

No repair step, no hand-built graph: a fresh home (model hash-384, so the model's cost is out of
the picture) is filled by `mm index DIR` in a subprocess with nothing else running, timed. When it
exits, its committer has left the tail of vectors committed after the derived graph's stamp to
a detached merge (`python -m memwal.vectorindex.writes HOME`); this script samples that tail
(`vector_index` of `memwal.index_status`, what `mm status --json` prints) every ~2 s until it is
under its bound (`vectors.tail_bound` or 5%) or --tail-timeout passes.

Search is timed twice, each time in a fresh child process (so a first call is a first call):

- *right after `mm index`*: started as soon as `mm index` exits, while the detached merge still
  folds (the tail before and after the timed loop is recorded);
- *after the fold*: once the tail is under its bound, `mm queue worker` is started (a lasting
  committer: it would fold a tail above the bound when idle) and left idle 30 s, then timed.

In each, the same queries (2-5 words drawn like the indexed text, common words included) go,
one query at a time, through every method in turn: `memwal.search(settings, q)` (its first call
reported apart), a warm `memwal.Searcher` (hybrid), the Searcher's vector leg alone
(benchlib.search_legs: the derived graph plus the exact tail scan), a numpy exact scan of the
same stored vectors (read from the index once, before the timing), a served `mm search Q --json`
(a new process each time, answered by `mm serve` over `<home>/serve.sock`), and `mem_search`
over MCP (HTTP) on that same server. recall@10 of the vector leg against the exact scan.

    PYTHONPATH=src .venv/bin/python benchmarks/user_path.py --chunks 100000 --write-doc
    PYTHONPATH=src .venv/bin/python benchmarks/user_path.py --quick      # 5k chunks, 30 queries

The 1M vector-leg goal, on search_bench's clustered vectors with the graph fully built (no doc
written; JSON on stdout, a line per figure on stderr):

    # build 1M chunks in HOME (reused if there), rebuild the graph per segment size, time the leg
    ... user_path.py --clustered HOME --chunks 1000000 --segment-sizes 100000,250000 --expansions 128,64
    # homes holding that index (hard-linked) with graphs of different segment sizes, interleaved
    ... user_path.py --compare HOME_A,HOME_B --expansions 128,64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

import memwal
from benchlib import (
    HASH_MODEL, PYTHON, REPO, Corpus, add_run_options, clean_env, command, embedder, header,
    load_average, machine, make_home, percentile, search_legs, update_section, work_folder,
    writes_doc,
)

TOP = 10
WARMUP = 5
SECTION, TITLE = "user-path", "Search on the user's path (issue 25)"
SEED = 20240601


def mm(*args: str | Path) -> list[str]:
    """`mm ARGS` as this checkout runs it: `python -m memwal` (PYTHONPATH carries src/)."""
    return [str(PYTHON), "-m", "memwal", *map(str, args)]


def env() -> dict[str, str]:
    values = clean_env()
    values["PYTHONPATH"] = str(REPO / "src") + (os.pathsep + values["PYTHONPATH"]
                                                if values.get("PYTHONPATH") else "")
    return values


# -- the corpus ------------------------------------------------------------------------------


def write_corpus(root: Path, chunks: int, seed: int) -> int:
    """Markdown files of 100 `## Part k` sections, each one chunk of 60-160 words drawn from a
    fixed-seed Zipf vocabulary of made-up words (benchlib.Corpus, as search_bench's text)."""
    corpus = Corpus(seed)
    files = 0
    for first in range(0, chunks, 100):
        number = first // 100
        lines = [f"# Note {number}", ""]
        for part in range(min(100, chunks - first)):
            lines += [f"## Part {part}", "", corpus.chunk(), ""]
        path = root / f"d{number // 100:04d}" / f"n{number:06d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines))
        files += 1
    return files


def make_queries(seed: int, count: int) -> list[str]:
    """2-5 words each, drawn like the indexed text (frequent words included), as mcp_bench does."""
    words = Corpus(seed)
    words.rng = np.random.default_rng(seed + 1)
    return [words.phrase(2, 5) for _ in range(count)]


# -- the tail --------------------------------------------------------------------------------


def graph_state(home: Path) -> dict[str, int]:
    return dict(memwal.index_status(memwal.load_settings(home, environ={}))["vector_index"] or {})


class TailSampler(threading.Thread):
    """Samples the tail every `every` s from `since` until it is under its bound or `limit` s."""

    def __init__(self, home: Path, since: float, every: float = 2.0, limit: float = 600) -> None:
        super().__init__(daemon=True)
        self.home, self.since, self.every, self.limit = home, since, every, limit
        self.series: list[tuple[float, int, int]] = []  # (s after mm index ended, tail, in graph)
        self.under_at: float | None = None
        self.under_wall: float | None = None  # time.time() of the first sample under the bound
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            state = graph_state(self.home)
            at = time.perf_counter() - self.since
            self.series.append((round(at, 1), state.get("tail", -1), state.get("in_graph", -1)))
            if state and state["tail"] <= state["bound"]:
                self.under_at, self.under_wall = at, time.time()
                return
            if at > self.limit:
                return
            self.stop.wait(self.every)


# -- the server ------------------------------------------------------------------------------


class Server:
    """`mm serve --port 0 --home HOME` (loopback, no worker), until stop()."""

    def __init__(self, home: Path) -> None:
        self.process = subprocess.Popen(mm("serve", "--port", "0", "--home", home), env=env(),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.process.stderr is not None
        line = self.process.stderr.readline()
        if "serving http://" not in line:
            self.process.kill()
            raise RuntimeError(f"mm serve did not start (exit {self.process.wait()}): {line!r}")
        self.url = line.split("serving ", 1)[1].split()[0]
        threading.Thread(target=lambda: [None for _ in self.process.stderr or ()], daemon=True).start()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def answered(home: Path) -> int:
    from memwal.localsearch import VERSION, ask

    answer = ask(home, {"v": VERSION, "stats": True})
    return -1 if answer is None else int(answer["answered"])


# -- one phase, in a child process -----------------------------------------------------------


def exact_matrix(legs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Every stored vector of the active model, read as search_bench reads them, rows normalised."""
    ids, blocks = [], []
    for block_ids, matrix in legs.stored_vectors(65_536):
        ids.append(block_ids)
        blocks.append(matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12))
    return np.concatenate(ids), np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)


def score_recall(found: list[int], ids: np.ndarray, order: np.ndarray, matrix: np.ndarray,
                 q: np.ndarray, kth: float) -> float:
    """Of `found`'s first TOP, the share scoring at least the exact TOP-th cosine `kth` (ties
    counted: hash vectors of a few words tie often, and which tied id an exact top-k keeps is
    arbitrary)."""
    want = np.asarray(found[:TOP], dtype=np.int64)
    rows = order[np.searchsorted(ids, want, sorter=order)]
    scores = matrix[rows] @ (q / max(float(np.linalg.norm(q)), 1e-12))
    return float(np.sum(scores >= kth - 1e-5)) / TOP


def measure_phase(home: Path, n: int, seed: int, served: int) -> dict[str, Any]:
    """Everything one phase times (run in a fresh process). Returns a JSON-able dict."""
    out: dict[str, Any] = {"tail_start": graph_state(home), "load_start": load_average(), "wall": []}
    started = time.perf_counter()
    search = memwal.search  # imports memwal.retrieval
    out["import_ms"] = (time.perf_counter() - started) * 1000
    settings = memwal.load_settings(home, environ={})
    queries = make_queries(seed, n + WARMUP + 1)
    started = time.perf_counter()
    first = search(settings, queries[0])
    out["first_ms"] = (time.perf_counter() - started) * 1000
    out["first_hits"] = len(first.hits)
    out["first_warnings"] = list(first.warnings)
    queries = queries[1:]

    from memwal.retrieval import TIER_DEPTHS

    depth = TIER_DEPTHS[0]
    model = embedder(HASH_MODEL)
    vectors = model.embed(queries)
    legs = search_legs(settings)
    started = time.perf_counter()
    ids, matrix = exact_matrix(legs)
    out["exact_read_s"] = time.perf_counter() - started
    out["vectors"] = len(ids)
    searcher = memwal.Searcher(settings)
    server = Server(home)
    found: dict[int, list[int]] = {}
    exact: dict[int, list[int]] = {}
    kth: dict[int, float] = {}
    order = np.argsort(ids, kind="stable")

    def vector_leg(i: int) -> None:
        found[i] = legs.vector(vectors[i], depth)[:TOP]

    def exact_scan(i: int) -> None:
        q = vectors[i] / max(float(np.linalg.norm(vectors[i])), 1e-12)
        scores = matrix @ q
        part = np.argpartition(-scores, TOP - 1)[:TOP]
        best = part[np.argsort(-scores[part], kind="stable")]
        exact[i] = ids[best].tolist()
        kth[i] = float(scores[best[-1]])

    def served_search(i: int) -> None:
        done = subprocess.run(mm("search", queries[i], "--json", "--home", home), env=env(),
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"mm search exited {done.returncode}: {done.stderr[-1000:]}")

    async def run() -> dict[str, list[float]]:
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        ms: dict[str, list[float]] = {k: [] for k in (
            "memwal.search", "Searcher", "vector", "exact", "exact-alone", "served", "mcp")}
        async with streamable_http_client(server.url) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()

            async def over_mcp(i: int) -> None:
                result = await session.call_tool("mem_search", {"query": queries[i]},
                                                 read_timeout_seconds=120)
                if result.is_error:
                    raise RuntimeError(f"mem_search failed: {result.content}")

            sync = {"memwal.search": lambda i: search(settings, queries[i]),
                    "Searcher": lambda i: searcher.search(queries[i]),
                    "vector": vector_leg, "exact": exact_scan, "served": served_search}
            for i in range(WARMUP):
                for call in sync.values():
                    call(i)
                await over_mcp(i)
            served_before = answered(home)
            for i in range(WARMUP, WARMUP + n):
                out["wall"].append(time.time())
                for name, call in sync.items():
                    if name == "served" and i >= WARMUP + served:
                        continue
                    t = time.perf_counter()
                    call(i)
                    ms[name].append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                await over_mcp(i)
                ms["mcp"].append((time.perf_counter() - t) * 1000)
            out["served_answered"] = answered(home) - served_before
            # The exact scan again, back to back (BLAS's threads kept awake between calls): its floor.
            for i in range(WARMUP, WARMUP + n):
                t = time.perf_counter()
                exact_scan(i)
                ms["exact-alone"].append((time.perf_counter() - t) * 1000)
        return ms

    try:
        loop_started = time.perf_counter()
        ms = asyncio.run(run())
        out["loop_s"] = time.perf_counter() - loop_started
    finally:
        out["serve_exit"] = server.stop()
        searcher.close()
    out["ms"] = ms
    out["recall"] = float(np.mean([len(set(found[i]) & set(exact[i])) / TOP for i in exact
                                   if i >= WARMUP]))
    out["recall_ties"] = float(np.mean([score_recall(found[i], ids, order, matrix, vectors[i], kth[i])
                                        for i in exact if i >= WARMUP]))
    out["tail_end"] = graph_state(home)
    out["load_end"] = load_average()
    return out


def run_phase(home: Path, name: str, args: argparse.Namespace, n: int, served: int) -> dict[str, Any]:
    print(f"[{time.strftime('%H:%M:%S')}] timing '{name}' in a child process ...", flush=True)
    started = time.perf_counter()
    done = subprocess.run([str(PYTHON), __file__, "--measure", str(home), "--queries", str(n),
                           "--served", str(served), "--seed", str(args.seed)],
                          env=env(), capture_output=True, text=True, cwd=REPO / "benchmarks")
    if done.returncode != 0:
        raise RuntimeError(f"phase {name} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - started
    summary = {k: f"{percentile(v, 50):.1f}/{percentile(v, 95):.1f}" for k, v in result["ms"].items()}
    print(f"  {name}: first {result['first_ms']:.0f} ms; p50/p95 {summary}; recall "
          f"{result['recall']:.3f}; tail {result['tail_start'].get('tail')} -> "
          f"{result['tail_end'].get('tail')}", flush=True)
    return result


# -- the vector leg alone, with the graph fully built (the 1M goal) ---------------------------


def timed_vector_leg(settings: Any, expansion: int, vectors: Any, depth: int
                     ) -> tuple[list[list[int]], list[float]]:
    """The vector leg's top ids for every query vector, and the ms of each after the first
    WARMUP (untimed), with `SEGMENTS_EXPANSION` set to `expansion` in this process."""
    from memwal.vectorindex import reads as vreads

    vreads.SEGMENTS_EXPANSION = expansion
    legs = search_legs(settings)
    found = [legs.vector(v, depth)[:TOP] for v in vectors[:WARMUP]]
    ms = []
    for v in vectors[WARMUP:]:
        t = time.perf_counter()
        found.append(legs.vector(v, depth)[:TOP])
        ms.append((time.perf_counter() - t) * 1000)
    legs.close()
    return found, ms


def vector_leg_variants(home: Path, n: int, seed: int, expansions: list[int],
                        segment_size: int | None) -> dict[str, Any]:
    """p50/p95 and recall@10 of the vector leg with the graph folded to the last commit, for each
    SEGMENTS_EXPANSION in `expansions` (patched for this process only). With `segment_size`, the
    home's `vectors.segment_size` is set and the graph rebuilt first (`memwal.repair`, timed)."""
    from memwal.retrieval import TIER_DEPTHS
    from memwal.vectorindex import writes as vwrites

    out: dict[str, Any] = {"load_start": load_average()}
    settings = memwal.load_settings(home, environ={})
    if segment_size:
        config = json.loads((home / "config.json").read_text())
        config.setdefault("vectors", {})["segment_size"] = segment_size
        (home / "config.json").write_text(json.dumps(config) + "\n")
        settings = memwal.load_settings(home, environ={})
        started = time.perf_counter()
        out["rebuild"] = memwal.repair(settings)["vector_index"]
        out["rebuild_s"] = time.perf_counter() - started
    else:
        started = time.perf_counter()
        vwrites.merge(settings)  # what is left of the tail (a detached merge's work, done now)
        out["merge_s"] = time.perf_counter() - started
    out["graph"] = graph_state(home)
    queries = make_queries(seed, n + WARMUP + 1)[1:]
    vectors = embedder(HASH_MODEL).embed(queries)
    depth = TIER_DEPTHS[0]
    base = search_legs(settings)
    ids, matrix = exact_matrix(base)
    base.close()
    exact, kths = [], []
    order = np.argsort(ids, kind="stable")
    for v in vectors:
        scores = matrix @ (v / max(float(np.linalg.norm(v)), 1e-12))
        part = np.argpartition(-scores, TOP - 1)[:TOP]
        exact.append(set(ids[part].tolist()))
        kths.append(float(scores[part].min()))
    out["variants"] = {}
    for expansion in expansions:
        found, ms = timed_vector_leg(settings, expansion, vectors, depth)
        recall = float(np.mean([len(set(f) & e) / TOP for f, e in zip(found, exact)]))
        ties = float(np.mean([score_recall(f, ids, order, matrix, v, k)
                              for f, v, k in zip(found, vectors, kths)]))
        out["variants"][expansion] = {"p50": percentile(ms, 50), "p95": percentile(ms, 95),
                                      "recall": recall, "recall_ties": ties}
        print(f"  segment_size {segment_size or 'default'}, SEGMENTS_EXPANSION {expansion}: p50 "
              f"{percentile(ms, 50):.1f} ms, p95 {percentile(ms, 95):.1f} ms, recall@10 "
              f"{recall:.3f} (ties counted {ties:.3f})", file=sys.stderr, flush=True)
    out["load_end"] = load_average()
    return out


def clustered_vector_leg(home: Path, chunks: int, n: int, seed: int, expansions: list[int],
                         segment_sizes: list[int]) -> dict[str, Any]:
    """The 1M goal on search_bench's data: clustered synthetic vectors (benchlib.ClusteredVectors,
    search_bench's seed and build), the graph rebuilt by `memwal.repair` for each
    `vectors.segment_size` in `segment_sizes`, then the vector leg's p50/p95 and recall@10
    against search_bench's exact numpy top-10, for each SEGMENTS_EXPANSION in `expansions`."""
    from search_bench import MERGE_NEVER, build_index, exact_top

    from benchlib import ClusteredVectors
    from memwal.retrieval import TIER_DEPTHS

    # No merge while building and no detached fold after it (tail_bound above the size): the
    # repair below alone builds the graph, as search_bench's does.
    settings = make_home(home, HASH_MODEL, queue={"batch_records": 1010},
                         vectors={"merge_at": MERGE_NEVER, "tail_bound": MERGE_NEVER})
    vectors = ClusteredVectors(seed)
    record, reused = build_index(settings, chunks, seed, vectors)
    out: dict[str, Any] = {"how": record["how"], "reused": reused, "sizes": {}}
    queries = vectors.queries(n + WARMUP)
    depth = TIER_DEPTHS[0]
    exact: Any = None
    for size in segment_sizes:
        config = json.loads((home / "config.json").read_text())
        config["vectors"]["segment_size"] = size
        (home / "config.json").write_text(json.dumps(config) + "\n")
        settings = memwal.load_settings(home, environ={})
        print(f"[{time.strftime('%H:%M:%S')}] rebuilding with segment_size {size:,} ...",
              file=sys.stderr, flush=True)
        started = time.perf_counter()
        rebuilt = memwal.repair(settings)["vector_index"]
        entry: dict[str, Any] = {"rebuild_s": time.perf_counter() - started, "rebuild": rebuilt,
                                 "graph": graph_state(home), "load": load_average(), "variants": {}}
        if exact is None:
            legs = search_legs(settings)
            exact, _ = exact_top(legs, queries, TOP)
            legs.close()
        for expansion in expansions:
            found, ms = timed_vector_leg(settings, expansion, queries, depth)
            recall = float(np.mean([len(set(f) & set(e)) / TOP for f, e in zip(found, exact.tolist())]))
            entry["variants"][expansion] = {"p50": percentile(ms, 50), "p95": percentile(ms, 95),
                                            "recall": recall}
            print(f"  segment_size {size:,} ({rebuilt.get('segments')} segments, rebuilt in "
                  f"{entry['rebuild_s']:.0f} s), SEGMENTS_EXPANSION {expansion}: p50 "
                  f"{percentile(ms, 50):.1f} ms, p95 {percentile(ms, 95):.1f} ms, recall@10 "
                  f"{recall:.3f}", file=sys.stderr, flush=True)
        out["sizes"][size] = entry
    return out


def interleaved_vector_legs(homes: list[Path], n: int, seed: int, expansions: list[int]) -> dict[str, Any]:
    """The vector leg of each home (the same index, graphs of different segment sizes) at each
    SEGMENTS_EXPANSION, every query through every (home, expansion) in turn: p50/p95, recall@10
    against search_bench's exact top-10 (clustered query vectors, as --clustered)."""
    from search_bench import exact_top

    from benchlib import ClusteredVectors
    from memwal.retrieval import TIER_DEPTHS
    from memwal.vectorindex import reads as vreads

    queries = ClusteredVectors(seed).queries(n + WARMUP)
    depth = TIER_DEPTHS[0]
    legs: dict[str, Any] = {}
    for home in homes:
        settings = memwal.load_settings(home, environ={})
        for expansion in expansions:
            vreads.SEGMENTS_EXPANSION = expansion  # read when the leg opens its view: now
            leg = search_legs(settings)
            leg.vector(queries[0], depth)
            legs[f"{home.name} {graph_state(home)['segments']} segments, expansion {expansion}"] = leg
    exact, _ = exact_top(next(iter(legs.values())), queries, TOP)
    ms: dict[str, list[float]] = {k: [] for k in legs}
    found: dict[str, list[list[int]]] = {k: [] for k in legs}
    load = [load_average()]
    for i, v in enumerate(queries):
        for key, leg in legs.items():
            t = time.perf_counter()
            got = leg.vector(v, depth)[:TOP]
            if i >= WARMUP:
                ms[key].append((time.perf_counter() - t) * 1000)
            found[key].append(got)
    load.append(load_average())
    out = {"load": load, "n": n, "legs": {}}
    for key in legs:
        recall = float(np.mean([len(set(f) & set(e)) / TOP for f, e in zip(found[key], exact.tolist())]))
        out["legs"][key] = {"p50": percentile(ms[key], 50), "p95": percentile(ms[key], 95),
                            "recall": recall}
        print(f"  {key}: p50 {percentile(ms[key], 50):.1f} ms, p95 {percentile(ms[key], 95):.1f} "
              f"ms, recall@10 {recall:.3f}", file=sys.stderr, flush=True)
    return out


# -- the run ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_options(parser, doc_by_default=False)
    parser.add_argument("--chunks", type=int, help="chunks to index (default 100,000; quick 5,000)")
    parser.add_argument("--queries", type=int, help="timed queries per phase (default 200; quick 30)")
    parser.add_argument("--served", type=int, help="of those, how many also as a served `mm "
                        "search` subprocess (default: all)")
    parser.add_argument("--tail-timeout", type=float, default=600, help="seconds to sample the tail")
    parser.add_argument("--idle", type=float, default=30, help="seconds the worker idles before phase 2")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child's mode
    parser.add_argument("--render", type=Path, metavar="JSON", help="only: re-write the doc "
                        "section from a run's saved JSON (its header kept)")
    parser.add_argument("--vector-leg", type=Path, metavar="HOME", help="only: the vector leg of "
                        "HOME's index with its graph folded to the last commit, p50 and recall@10")
    parser.add_argument("--expansions", default="128", help="with --vector-leg: SEGMENTS_EXPANSION "
                        "values to try (comma-separated; patched in this process only)")
    parser.add_argument("--segment-size", type=int, help="with --vector-leg: set HOME's "
                        "vectors.segment_size and rebuild its graph (memwal.repair) first")
    parser.add_argument("--clustered", type=Path, metavar="HOME", help="only: search_bench's "
                        "clustered vectors (--chunks of them) built in HOME (reused if there), the "
                        "graph rebuilt per --segment-sizes, the vector leg per --expansions")
    parser.add_argument("--segment-sizes", default="100000", help="with --clustered (comma-separated)")
    parser.add_argument("--compare", metavar="HOMES", help="only: homes (comma-separated) holding "
                        "--clustered's index with graphs of different segment sizes: their vector "
                        "legs per --expansions, interleaved query by query")
    args = parser.parse_args(argv)
    n = args.queries or (30 if args.quick else 200)
    served = min(n, args.served or n)
    if args.render:  # re-render a run's saved JSON under the doc section's existing header
        result = json.loads(args.render.read_text())
        some = next(iter(result["phases"].values()))["ms"]
        body = render(result, args, len(some["Searcher"]), len(some["served"]))
        name = f"{SECTION}-{result['chunks']}"
        text = args.doc.read_text()
        start = text.index(f"<!-- {name}:start -->")
        fence = text.index("```\n", text.index("```", start) + 3) + 4
        head = text[text.index("\n", start) + 1:fence]
        update_section(name, f"{TITLE}: {result['chunks']:,} chunks", head + body, args.doc)
        print(body)
        return 0
    if args.compare:
        print(json.dumps(interleaved_vector_legs([Path(h).absolute() for h in args.compare.split(",")],
                                                 n, args.seed, [int(x) for x in args.expansions.split(",")])))
        return 0
    if args.clustered:
        print(json.dumps(clustered_vector_leg(
            args.clustered.absolute(), args.chunks or 5_000, n, args.seed,
            [int(x) for x in args.expansions.split(",")],
            [int(x) for x in args.segment_sizes.split(",")])))
        return 0
    if args.vector_leg:
        print(json.dumps(vector_leg_variants(args.vector_leg, n, args.seed, [
            int(x) for x in args.expansions.split(",")], args.segment_size)))
        return 0
    if args.measure:
        print(json.dumps(measure_phase(args.measure, n, args.seed, served)))
        return 0
    assert Path(memwal.__file__).is_relative_to(REPO), f"memwal from {memwal.__file__}, not {REPO}"
    chunks = args.chunks or (5_000 if args.quick else 100_000)
    with work_folder(args.workdir, args.keep) as work:
        _, where = machine(work)
        load_before = load_average()
        corpus = work / "corpus"
        print(f"writing {chunks:,} chunks of markdown ...", flush=True)
        files = write_corpus(corpus, chunks, args.seed)
        settings = make_home(work / "home")
        home = settings.home
        print(f"[{time.strftime('%H:%M:%S')}] mm index ...", flush=True)
        started = time.perf_counter()
        done = subprocess.run(mm("index", corpus, "--home", home, "--json"), env=env(),
                              capture_output=True, text=True)
        ended = time.perf_counter()
        index_s = ended - started
        if done.returncode != 0:
            sys.exit(f"mm index failed: {done.stderr[-2000:]}")
        report = json.loads(done.stdout)
        status = subprocess.run(mm("status", "--json", "--home", home), env=env(),
                                capture_output=True, text=True, check=True)
        at_exit = json.loads(status.stdout)["vector_index"]
        at_exit_s = time.perf_counter() - ended
        print(f"  mm index {index_s:.1f} s: {report.get('chunks_embedded')} chunks embedded; "
              f"vector_index {at_exit} ({at_exit_s:.1f} s after it ended)", flush=True)
        sampler = TailSampler(home, ended, limit=args.tail_timeout)
        sampler.start()
        right_after = run_phase(home, "right after mm index", args, n, served)
        sampler.join()
        print(f"  tail under its bound {sampler.under_at and round(sampler.under_at, 1)} s after "
              f"mm index ended; series {sampler.series}", flush=True)
        # A lasting committer, idle: it folds a tail above the bound (none left, if the merge
        # above finished), then waits for work.
        worker = subprocess.Popen(mm("queue", "worker", "--home", home), env=env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            waited = time.perf_counter()
            while (state := graph_state(home)) and state["tail"] > state["bound"]:
                if time.perf_counter() - waited > args.tail_timeout:
                    break
                time.sleep(2)
            under_worker_s = time.perf_counter() - waited
            time.sleep(args.idle)
            folded = run_phase(home, "after the fold", args, n, served)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker_exit = worker.wait(timeout=120)
        final_state = graph_state(home)

    result = {"chunks": chunks, "files": files, "index_s": index_s, "report": report,
              "at_exit": at_exit, "at_exit_s": at_exit_s, "series": sampler.series,
              "under_at": sampler.under_at, "under_wall": sampler.under_wall, "under_worker_s": under_worker_s,
              "worker_exit": worker_exit, "final": final_state, "phases": {
                  "right after `mm index`": right_after, "after the fold, worker idle": folded}}
    out = Path(args.workdir or "/tmp") / f"user_path-{chunks}.json"
    out.write_text(json.dumps(result))
    print(f"wrote {out}")
    body = render(result, args, n, served)
    print(body)
    if writes_doc(args):
        cmd = command("user_path.py", *(sys.argv[1:] if argv is None else argv))
        update_section(f"{SECTION}-{chunks}", f"{TITLE}: {chunks:,} chunks",
                       header(where, "PYTHONPATH=src " + cmd, load_before) + body, args.doc)
        print(f"updated {args.doc}")
    return 0


LABELS = {
    "memwal.search": "`memwal.search(settings, q)`, calls 2…, one process",
    "Searcher": "warm `memwal.Searcher(settings).search(q)` (hybrid)",
    "vector": "its vector leg alone (graph + exact tail scan), depth 100",
    "exact": "numpy exact scan of the same vectors (in memory), interleaved",
    "exact-alone": "the same exact scan, its calls back to back (after the loop)",
    "served": "`mm search Q --json` subprocess, served by `mm serve` (serve.sock)",
    "mcp": "`mem_search` over MCP (HTTP), same `mm serve`",
}


def render(result: dict[str, Any], args: argparse.Namespace, n: int, served: int) -> str:
    phases = dict(result["phases"])
    first_name = next(iter(phases))
    right = phases[first_name]
    if result.get("under_wall") and right.get("wall"):
        # The same queries split at the first tail sample under its bound: which searched the tail.
        before = [w < result["under_wall"] for w in right["wall"]]
        if 0 < sum(before) < len(before):
            split = dict(right)
            split["ms"] = {k: [x for x, b in zip(v, before) if b] if len(v) == len(before) else v
                           for k, v in right["ms"].items()}
            phases = {first_name: right,
                      f"of which the {sum(before)} before the fold": split,
                      **{k: v for k, v in phases.items() if k != first_name}}
    names = list(phases)
    rows = []
    for key, label in LABELS.items():
        cells = []
        for name in names:
            values = phases[name]["ms"][key]
            cells.append(f"{percentile(values, 50):.1f} | {percentile(values, 95):.1f}")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    imports = ", ".join(f"{phases[p]['import_ms']:.0f}" for p in names)
    first = " | ".join(f"{phases[p]['first_ms']:.0f} | –" for p in names)
    rows.insert(0, f"| first `memwal.search` call in a fresh process (the import of "
                   f"memwal.retrieval apart: {imports} ms) | {first} |")
    recall = " | ".join(f"{phases[p]['recall']:.3f} | –" for p in names)
    rows.append(f"| recall@10, vector leg vs exact scan | {recall} |")
    if all("recall_ties" in phases[p] for p in names):
        ties = " | ".join(f"{phases[p]['recall_ties']:.3f} | –" for p in names)
        rows.append(f"| recall@10 with ties counted (a hit scoring ≥ the exact 10th cosine) | {ties} |")

    def tail(state: dict[str, int]) -> str:
        return f"{state.get('tail', 0):,} in the tail, {state.get('in_graph', 0):,} in the graph"

    phase_lines = "\n".join(
        f"- *{p}*: {tail(phases[p]['tail_start'])} when the child started, "
        f"{tail(phases[p]['tail_end'])} when it ended ({phases[p]['wall_s']:.0f} s; 1-minute load "
        f"{phases[p]['load_start'].split()[0]} → {phases[p]['load_end'].split()[0]}); the served "
        f"searches answered over serve.sock: {phases[p]['served_answered']}/{served}"
        for p in names)
    points = result["series"]
    kept = [k for k, (_, tl, _) in enumerate(points)  # the first, each change (and the sample
            if k in (0, len(points) - 1)                # before it), the last
            or tl != points[k - 1][1] or tl != points[k + 1][1]]
    series = ", ".join(f"{points[k][0]:.0f} s → {points[k][1]:,}" for k in kept) + \
        f" ({len(points)} samples; the ones left out repeat their neighbours)"
    under = result["under_at"]
    under_text = (f"**{under:.0f} s** after `mm index` ended" if under is not None else
                  f"**not within {args.tail_timeout:.0f} s** of sampling")
    folded_by = ("" if result["at_exit"]["tail"] <= result["at_exit"]["bound"] else
                 ", folded by the detached merge `mm index`'s committer left behind"
                 if under is not None else ": the tail never moved while sampled")
    ph = [phases[p] for p in names]
    ratio = [percentile(x["ms"]["Searcher"], 50) / percentile(x["ms"]["exact"], 50) for x in ph]
    ratio2 = [percentile(x["ms"]["memwal.search"], 50) / percentile(x["ms"]["exact"], 50) for x in ph]
    return f"""
A fresh home (`embedding.model` hash-384: the model's cost is out of the picture), filled by
`mm index DIR --home H --json` in a subprocess with nothing else running: {result['chunks']:,}
chunks in {result['files']:,} markdown files (100 `## Part k` sections each, 60-160 words of a
fixed-seed Zipf vocabulary of made-up words, seed {args.seed}). `mm index` took
**{result['index_s']:.1f} s** ({result['chunks'] / result['index_s']:,.0f} chunks/s, embedding
included). No `mm doctor --repair`, no `memwal.repair`: the derived graph is whatever the path
leaves.

**The tail** (`vector_index` of `mm status --json`, {result['at_exit_s']:.1f} s after `mm index`
exited): {tail(result['at_exit'])} ({result['at_exit']['segments']} segment(s)), bound
{result['at_exit']['bound']:,}; then sampled every ~2 s plus the time a count takes (seconds after `mm index` ended → tail):
{series}. Under its bound {under_text}{folded_by}. Then `mm queue worker` was started (a lasting
committer, which folds a tail above its bound when idle): the tail was under its bound
{result['under_worker_s']:.0f} s after it started; it was then left idle {args.idle:.0f} s;
state after the last phase: {tail(result['final'])}; worker exit {result['worker_exit']} on SIGTERM.

**Timed**, each phase in a fresh child process: {n} queries of 2-5 words drawn like the text
(common words included), after {WARMUP} warm-up queries through every method; each query goes
through every method in turn before the next (passing load, and the changing tail, fall on all
alike); {served} of them also as a served `mm search` subprocess. The exact scan's matrix was
read from the index (`stored_vectors`, as search_bench reads it) before the timing; the vector
leg is a kept `retrieval._VectorLeg` (benchlib.search_legs), the query vector given. The p95 of
the searchers include each query word's first postings read (0.1-0.3 s a common word, once).

| ms | {' | '.join(f'{p}: p50 | p95' for p in names)} |
|---|{'---:|---:|' * len(names)}
{chr(10).join(rows)}

{phase_lines}

**Acceptance (issue 25, {result['chunks']:,} chunks)**: warm hybrid search p50 against the
exact numpy scan p50 in the same run: {', '.join(f'{p}: `Searcher` {r:.2f}×, `memwal.search` {r2:.2f}×' for p, r, r2 in zip(names, ratio, ratio2))}
the exact scan's; tail under its bound {under_text}.
"""


if __name__ == "__main__":
    raise SystemExit(main())
