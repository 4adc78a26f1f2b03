"""Why the derived vector index is usearch: usearch, hnswlib and faiss side by side, same vectors.

Each library builds an HNSW graph of the same N clustered 384-d unit vectors (benchlib's
ClusteredVectors: the structure of embedded notes, not uniform noise) with the same parameters
(M 16, expansion at build 128, at search 256: memwal's), on one thread (the committer's
maintainer builds on one), then answers the same queries one at a time for the top 100 (the
depth a Searcher asks for); recall@10 against an exact numpy search. Also: the file it saves,
how a reader opens it (memory-mapped or copied into the process), and whether a vector can be
removed (a changed or deleted chunk must leave the graph).

    .venv/bin/pip install hnswlib faiss-cpu      # not memwal dependencies: only for this script
    .venv/bin/python benchmarks/ann_choice.py --write-doc
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from benchlib import (
    DIM, add_run_options, ClusteredVectors, load_average, machine, percentile, print_and_record,
    work_folder,
)
from memwal import vectorindex

M, EF_ADD, EF_SEARCH = vectorindex.CONNECTIVITY, vectorindex.EXPANSION_ADD, vectorindex.EXPANSION_SEARCH
DEPTH, TOP = 100, 10


@dataclass
class Result:
    name: str
    build_s: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    recall: float = 0.0
    file_mb: float = 0.0
    open_ms: float = 0.0
    opened: str = ""
    removal: str = ""


def timed_queries(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray,
                  exact: np.ndarray) -> tuple[float, float, float]:
    for query in queries[:5]:
        search(query)
    times, found = [], []
    for query in queries:
        started = time.perf_counter()
        ids = search(query)
        times.append((time.perf_counter() - started) * 1000)
        found.append(ids[:TOP])
    recall = float(np.mean([len(set(map(int, f)) & set(map(int, e))) / TOP
                            for f, e in zip(found, exact)]))
    return percentile(times, 50), percentile(times, 95), recall


def run_usearch(data: np.ndarray, queries: np.ndarray, exact: np.ndarray, folder: Path) -> Result:
    Index = vectorindex.usearch_index()
    result = Result("usearch (f16)", opened="memory-mapped view (`restore(view=True)`)")
    index = Index(ndim=DIM, metric="cos", dtype="f16", connectivity=M, expansion_add=EF_ADD,
                  expansion_search=EF_SEARCH)
    started = time.perf_counter()
    index.add(np.arange(len(data), dtype=np.uint64), data, threads=1)
    result.build_s = time.perf_counter() - started
    removed = index.remove(np.array([len(data) - 1], dtype=np.uint64))
    result.removal = f"yes: `remove(keys)` took out {removed} of 1 and the graph holds {len(index):,}"
    path = folder / "graph.usearch"
    index.save(str(path))
    del index
    gc.collect()
    started = time.perf_counter()
    view = Index.restore(str(path), view=True)
    view.expansion_search = EF_SEARCH
    result.open_ms = (time.perf_counter() - started) * 1000
    result.p50_ms, result.p95_ms, result.recall = timed_queries(
        lambda q: view.search(q, DEPTH, threads=1).keys, queries, exact)
    result.file_mb = path.stat().st_size / 1e6
    return result


def run_hnswlib(data: np.ndarray, queries: np.ndarray, exact: np.ndarray, folder: Path) -> Result:
    import hnswlib

    result = Result("hnswlib (f32)", opened="copied into the process (`load_index`)")
    index = hnswlib.Index(space="cosine", dim=DIM)
    index.init_index(max_elements=len(data), M=M, ef_construction=EF_ADD)
    index.set_num_threads(1)
    started = time.perf_counter()
    index.add_items(data, np.arange(len(data)))
    result.build_s = time.perf_counter() - started
    index.mark_deleted(len(data) - 1)
    result.removal = (f"marks only: after `mark_deleted` the graph still holds "
                      f"{index.get_current_count():,} nodes (a later add may reuse the slot)")
    path = folder / "graph.hnswlib"
    index.save_index(str(path))
    del index
    gc.collect()
    started = time.perf_counter()
    loaded = hnswlib.Index(space="cosine", dim=DIM)
    loaded.load_index(str(path))
    loaded.set_ef(EF_SEARCH)
    loaded.set_num_threads(1)
    result.open_ms = (time.perf_counter() - started) * 1000
    result.p50_ms, result.p95_ms, result.recall = timed_queries(
        lambda q: loaded.knn_query(q, k=DEPTH)[0][0], queries, exact)
    result.file_mb = path.stat().st_size / 1e6
    return result


def run_faiss(data: np.ndarray, queries: np.ndarray, exact: np.ndarray, folder: Path, fp16: bool) -> Result:
    import faiss

    faiss.omp_set_num_threads(1)
    if fp16:
        index = faiss.IndexHNSWSQ(DIM, faiss.ScalarQuantizer.QT_fp16, M, faiss.METRIC_INNER_PRODUCT)
        name = "faiss IndexHNSWSQ (f16)"
    else:
        index = faiss.IndexHNSWFlat(DIM, M, faiss.METRIC_INNER_PRODUCT)
        name = "faiss IndexHNSWFlat (f32)"
    result = Result(name, opened="copied into the process (`read_index`)")
    index.hnsw.efConstruction = EF_ADD
    started = time.perf_counter()
    if fp16:
        index.train(data)
    index.add(data)  # unit vectors: inner product = cosine; ids are positions
    result.build_s = time.perf_counter() - started
    try:
        index.remove_ids(np.array([len(data) - 1], dtype=np.int64))
        result.removal = f"yes: `remove_ids` left {index.ntotal:,}"
    except RuntimeError as exc:
        said = str(exc)
        result.removal = "no: `remove_ids` raises" + (
            " \"not implemented for this type of index\"" if "not implemented" in said else f": {said[:80]!r}")
    path = folder / f"graph-{'sq' if fp16 else 'flat'}.faiss"
    faiss.write_index(index, str(path))
    del index
    gc.collect()
    started = time.perf_counter()
    loaded = faiss.read_index(str(path))
    loaded.hnsw.efSearch = EF_SEARCH
    result.open_ms = (time.perf_counter() - started) * 1000
    result.p50_ms, result.p95_ms, result.recall = timed_queries(
        lambda q: loaded.search(q[None, :], DEPTH)[1][0], queries, exact)
    result.file_mb = path.stat().st_size / 1e6
    return result


def exact_top(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    scores = queries @ data.T  # unit vectors: cosine
    part = np.argpartition(-scores, TOP, axis=1)[:, :TOP]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
    return np.take_along_axis(part, order, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_options(parser)
    parser.add_argument("--vectors", type=int, help="vectors in each graph (default 100,000; quick 10,000)")
    parser.add_argument("--queries", type=int, default=200, help="queries (default 200)")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)
    count = args.vectors or (10_000 if args.quick else 100_000)
    source = ClusteredVectors(args.seed)
    data = source([""] * count)
    queries = source.queries(args.queries)
    exact = exact_top(data, queries)
    runners: list[tuple[str, Callable[[Path], Result]]] = [
        ("usearch", lambda f: run_usearch(data, queries, exact, f)),
        ("hnswlib", lambda f: run_hnswlib(data, queries, exact, f)),
        ("faiss", lambda f: run_faiss(data, queries, exact, f, fp16=False)),
        ("faiss", lambda f: run_faiss(data, queries, exact, f, fp16=True)),
    ]
    results: list[Result] = []
    missing: list[str] = []
    with work_folder(args.workdir, args.keep) as work:
        _, where = machine(work)
        load_before = load_average()
        for module, run in runners:
            if importlib.util.find_spec(module) is None:  # (no import: usearch must come after
                missing.append(module)                    # onnxruntime, see usearch_index)
                continue
            print(f"  {module}: building {count:,} vectors ...", flush=True)
            results.append(run(work))
            r = results[-1]
            print(f"  {r.name}: build {r.build_s:.1f} s, p50 {r.p50_ms:.2f} ms, recall@10 "
                  f"{r.recall:.3f}, file {r.file_mb:.0f} MB", flush=True)
    raw = count * DIM * 4 / 1e6
    rows = "\n".join(
        f"| {r.name} | {r.build_s:,.1f} | {r.p50_ms:.2f} | {r.p95_ms:.2f} | {r.recall:.3f} | "
        f"{r.file_mb:,.0f} ({r.file_mb / raw:.2f}×) | {r.open_ms:,.1f} | "
        f"{r.opened} | {r.removal} |" for r in results)
    body = f"""
{count:,} vectors: {source.describe()}; {args.queries} queries, fresh draws from the same
clusters. Every library: HNSW, M {M}, expansion {EF_ADD} at build and {EF_SEARCH} at search
(memwal's settings), built and searched on one thread, top {DEPTH} per query (a Searcher's
depth), one query at a time after 5 warm-up queries; recall@10 against exact numpy cosine.
Raw float32 vectors: {raw:,.0f} MB. "Open ms" is what a reader pays before its first search of
a saved graph (page cache warm: the file was just written).

| library | build s | p50 ms | p95 ms | recall@10 | file MB | open ms | how a reader opens it | remove a vector |
|---|---:|---:|---:|---:|---:|---:|---|---|
{rows}
{"" if not missing else chr(10) + "Not installed, so not measured: " + ", ".join(missing) + "." + chr(10)}
**Why usearch.** Every reader process (a server, each served or one-off search) opens the
derived index: usearch maps the saved file (`restore(view=True)`: the page cache holds one copy
for all processes, opening costs milliseconds), where hnswlib and faiss read the whole graph into
each process. The committer must take changed and deleted chunks out of the graph: usearch
removes by key, hnswlib only marks (the node stays, and the graph grows with every update), faiss
HNSW cannot remove. usearch stores float16 (file at 0.6× the raw float32 vectors) at the recall
of the float32 libraries on these vectors.
"""
    print_and_record(args, argv, "ann_choice.py", "ann-choice",
                     "Choosing the vector index library", where, load_before, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
