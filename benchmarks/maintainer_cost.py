"""What keeping the derived vector index current costs the committer.

The same upserts (clustered 384-d vectors, distinct per chunk: an HNSW graph of copies of a few
thousand vectors would be unlike a real one), in batches of 256, drained from a pre-filled queue
by the real committer (`memwal.worker.committer_session` + `drain()`) into a fresh home twice:
with the derived index kept current (`vectors.merge_at` 20,000, the default: a background thread
of the committer folds each 20,000 new vectors into the graph and saves it) and without
(`merge_at` beyond the run: the graph is never touched). The clock stops when the session has
closed, which waits for a merge still running. Rounds alternate which goes first.

    .venv/bin/python benchmarks/maintainer_cost.py --write-doc      # 100,000 records, 2 rounds
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import (
    ClusteredVectors, Corpus, add_run_options, command, committer, header, load_average, machine,
    make_home, update_section, upserts, work_folder, writes_doc,
)
import memwal
from memwal import vectorindex

NEVER = 100_000_000  # the largest merge_at allowed: beyond any run here


def drain_once(work: Path, name: str, items: list[Any], merge_at: int) -> tuple[float, int]:
    settings = make_home(work / name, vectors={"merge_at": merge_at})
    memwal.enqueue_items(settings, items, "benchmarks/maintainer_cost.py")
    started = time.perf_counter()
    with committer(settings) as session:
        committed = session.drain().committed
    if committed != len(items):
        raise RuntimeError(f"{name}: committed {committed} of {len(items)}")
    seconds = time.perf_counter() - started
    stamp = vectorindex.Stamp.read(settings)
    return seconds, (stamp.count if stamp else 0)


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
    graph: list[int] = []
    with work_folder(args.workdir, args.keep) as work:
        _, where = machine(work)
        load_before = load_average()
        for number in range(args.rounds):
            order = [("kept", vectorindex.MERGE_AT), ("bare", NEVER)]
            for name, merge_at in order if number % 2 == 0 else order[::-1]:
                seconds, in_graph = drain_once(work, f"{name}-{number}", items, merge_at)
                (kept if name == "kept" else bare).append(seconds)
                if name == "kept":
                    graph.append(in_graph)
                print(f"  round {number + 1}, {name}: {seconds:.1f} s "
                      f"({records / seconds:,.0f} records/s; graph holds {in_graph:,})", flush=True)
    rate_kept, rate_bare = records / (sum(kept) / len(kept)), records / (sum(bare) / len(bare))
    drop = 1 - rate_kept / rate_bare
    per_batch = (sum(kept) - sum(bare)) / len(kept) / batches * 1000
    rows = "\n".join(f"| {n + 1} | {k:.1f} | {b:.1f} | {records / k:,.0f} | {records / b:,.0f} | {g:,} |"
                     for n, (k, b, g) in enumerate(zip(kept, bare, graph)))
    body = f"""
{records:,} upserts with distinct clustered 384-d vectors ({batches:,} batches of 256) drained
by the real committer from a pre-filled queue into a fresh home, with the derived vector index
kept current (`vectors.merge_at` {vectorindex.MERGE_AT:,}: a background thread folds each
{vectorindex.MERGE_AT:,} new vectors into the graph and saves it) and without it; the clock
stops once the session has closed (it waits for a merge still running). Rounds alternate which
goes first.

| round | kept current s | without s | kept records/s | without records/s | vectors in the graph at the end |
|---|---:|---:|---:|---:|---:|
{rows}

Throughput with the index kept current: **{drop:.1%} lower** (goal: at most 10%:
{"met" if drop <= 0.10 else "**not met**"}); {per_batch:.1f} ms more per batch of 256 on average
(most of it the merge thread's work on the machine's other core, and the last merge the session
waits for at its close).
"""
    print(body)
    if writes_doc(args):
        cmd = command("maintainer_cost.py", *(sys.argv[1:] if argv is None else argv))
        update_section("maintainer-cost", "What keeping the derived vector index current costs the committer",
                       header(where, cmd, load_before) + body, args.doc)
        print(f"updated the 'maintainer-cost' section of {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
