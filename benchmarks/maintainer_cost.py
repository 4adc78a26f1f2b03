"""What keeping the derived vector index current costs the committer.

The same upserts (clustered 384-d vectors, distinct per chunk: an HNSW graph of copies of a few
thousand vectors would be unlike a real one), in batches of 256, drained from a pre-filled queue
by the real committer (`memwal.worker.committer_session` + `drain()`) into a fresh home twice:
with the derived index kept current (`vectors.merge_at` 20,000, the default: a background thread
of the committer folds the new vectors into the graph and saves it, again and again while they
keep coming) and without (`merge_at` beyond the run: the graph is never touched). Two clocks:
until the last record is committed (what readers see: the committer's throughput, the goal), and
until the session has closed (it waits for the merge under way). Rounds alternate which goes
first.

    .venv/bin/python benchmarks/maintainer_cost.py --write-doc      # 100,000 records, 2 rounds
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchlib import (
    add_run_options, ClusteredVectors, committer, Corpus, load_average, machine, make_home,
    print_and_record, upserts, work_folder,
)
import memwal
from memwal import vectorindex

NEVER = 100_000_000  # the largest merge_at allowed: beyond any run here


def drain_once(work: Path, name: str, items: list[Any], merge_at: int) -> tuple[float, float, int]:
    """(seconds to the last commit, seconds to the session's close, vectors in the graph)."""
    settings = make_home(work / name, vectors={"merge_at": merge_at})
    memwal.enqueue_items(settings, items, "benchmarks/maintainer_cost.py")
    started = time.perf_counter()
    with committer(settings) as session:
        committed = session.drain().committed
        drained = time.perf_counter() - started
    if committed != len(items):
        raise RuntimeError(f"{name}: committed {committed} of {len(items)}")
    closed = time.perf_counter() - started
    stamp = vectorindex.Stamp.read(settings)
    return drained, closed, (stamp.count if stamp else 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_options(parser)
    parser.add_argument("--records", type=int, help="upserts (default 100,000; quick 25,000)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    args = parser.parse_args(argv)
    records = args.records or (25_000 if args.quick else 100_000)
    items = list(upserts(records, Corpus(7), pool=0, vectors=ClusteredVectors(7)))
    batches = -(-records // 256)
    kept: list[float] = []
    bare: list[float] = []
    kept_closed: list[float] = []
    graph: list[int] = []
    with work_folder(args.workdir, args.keep) as work:
        _, where = machine(work)
        load_before = load_average()
        for number in range(args.rounds):
            order = [("kept", vectorindex.MERGE_AT), ("bare", NEVER)]
            for name, merge_at in order if number % 2 == 0 else order[::-1]:
                seconds, closed, in_graph = drain_once(work, f"{name}-{number}", items, merge_at)
                (kept if name == "kept" else bare).append(seconds)
                if name == "kept":
                    graph.append(in_graph)
                    kept_closed.append(closed)
                print(f"  round {number + 1}, {name}: committed in {seconds:.1f} s "
                      f"({records / seconds:,.0f} records/s), closed at {closed:.1f} s; "
                      f"graph holds {in_graph:,}", flush=True)
    rate_kept, rate_bare = records / (sum(kept) / len(kept)), records / (sum(bare) / len(bare))
    drop = 1 - rate_kept / rate_bare
    per_batch = (sum(kept) - sum(bare)) / len(kept) / batches * 1000
    rows = "\n".join(f"| {n + 1} | {k:.1f} | {b:.1f} | {records / k:,.0f} | {records / b:,.0f} | "
                     f"{c:.1f} | {g:,} |"
                     for n, (k, b, c, g) in enumerate(zip(kept, bare, kept_closed, graph)))
    body = f"""
{records:,} upserts with distinct clustered 384-d vectors ({batches:,} batches of 256) drained
by the real committer from a pre-filled queue into a fresh home, with the derived vector index
kept current (`vectors.merge_at` {vectorindex.MERGE_AT:,}: a background thread folds the new
vectors into the graph and saves it, again while more keep coming) and without it. "Committed"
stops the clock at the last commit (readers see every record from then: the graph's lag is
scanned exactly); the kept run's "closed" adds the wait for the merge under way when the session
closes. Rounds alternate which goes first.

| round | kept: committed s | without s | kept records/s | without records/s | kept: closed s | vectors in the graph at the end |
|---|---:|---:|---:|---:|---:|---:|
{rows}

The committer's throughput with the index kept current: **{f"{drop:.1%} lower" if drop > 0 else
f"not lower ({-drop:.1%} higher, noise)"}** (goal: at most 10% lower:
{"met" if drop <= 0.10 else "**not met**"}); {per_batch:+.1f} ms per batch of 256 on average (the merge thread takes the machine's other core, and the GIL between usearch's calls).
A merge adds to a graph on one thread at roughly 1,000-2,000 vectors/s (docs/benchmarks.md,
"ANN choice"), slower than this committer drains a pre-filled queue ({rate_kept:,.0f} records/s here)
but far faster than records arrive when they are embedded (minilm: about 24 chunks/s,
"Embedding memory"), so in use the graph keeps up; a backlog like this one is folded over the
following merges, and searches meanwhile scan its tail exactly. The graph is cut into segments
of `vectors.segment_size` vectors; a merge loads only those it changes.
"""
    print_and_record(args, argv, "maintainer_cost.py", "maintainer-cost",
                     "What keeping the derived vector index current costs the committer", where, load_before, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
