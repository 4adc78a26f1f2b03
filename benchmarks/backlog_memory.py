"""Where a draining committer's memory goes: commit groups, and the derived vector index's merges.

One queue filled with RECORDS upserts is copied to four homes, and each is drained by
`mm queue worker --once` under `/usr/bin/time -v`, with `queue.commit_group` 1 or 64 and
`vectors.merge_at` 20,000 (as shipped: the committer folds new vectors into the derived vector
index) or 100,000,000 (no merge during the drain). Figure 5 of benchmarks/run.py is the shipped
configuration at 1,000,000 records.

    .venv/bin/python benchmarks/backlog_memory.py --records 200000 --write-doc
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import time

import memwal
from benchlib import (
    MM, add_run_options, clean_env, Corpus, load_average, machine, make_home, print_and_record,
    upserts, work_folder,
)

NO_MERGE = 100_000_000


def drain(home: str) -> tuple[float, float]:
    """Peak RSS (MB) and wall seconds of `mm queue worker --once` on `home`."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", str(MM), "queue", "worker", "--once", "--home", home],
                          capture_output=True, text=True, env=clean_env(), check=True)
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    assert found, done.stderr
    return int(found.group(1)) / 1024, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_options(parser, doc_by_default=False)
    parser.add_argument("--records", type=int, help="upserts in the queue (default 200,000; quick 20,000)")
    parser.add_argument("--segment-size", type=int, default=None,
                        help="vectors.segment_size of every home (default: as shipped)")
    parser.add_argument("--groups", default="1,64", help="queue.commit_group values (default 1,64)")
    args = parser.parse_args(argv)
    records = args.records or (20_000 if args.quick else 200_000)
    rows = []
    with work_folder(args.workdir, args.keep) as work:
        load_before = load_average()
        base = make_home(work / "base")
        print(f"filling a queue with {records:,} upserts ...", flush=True)
        memwal.enqueue_items(base, upserts(records, Corpus(13)), "benchmarks/backlog_memory.py")
        for group in map(int, args.groups.split(",")):
            for merge_at in (20_000, NO_MERGE):
                home = work / f"group-{group}-merge-{merge_at}"
                shutil.copytree(base.home, home)
                config_file = home / "config.json"
                config = json.loads(config_file.read_text()) if config_file.exists() else {}
                # The copy keeps the base's queue name: a name is derived from the home's path.
                config.setdefault("queue", {}).update(commit_group=group, name=base.queue_name)
                config.setdefault("vectors", {})["merge_at"] = merge_at
                if args.segment_size:
                    config["vectors"]["segment_size"] = args.segment_size
                config_file.write_text(json.dumps(config))
                peak, wall = drain(str(home))
                print(f"  commit_group {group}, merge_at {merge_at:,}: {peak:,.0f} MB, {wall:.0f} s", flush=True)
                rows.append((group, merge_at, peak, wall))
                shutil.rmtree(home)
        _, where = machine(work)
    table = "\n".join(f"| {group} | {'as shipped (20,000)' if merge_at != NO_MERGE else 'none during the drain'} "
                      f"| {peak:,.0f} | {wall:,.0f} | {records / wall:,.0f} |"
                      for group, merge_at, peak, wall in rows)
    body = f"""
One queue of {records:,} upserts (384-d vectors, batches of 256), copied to four homes, each
drained into a fresh index by `mm queue worker --once` under `/usr/bin/time -v`:

| `queue.commit_group` | derived vector index merges | peak RSS MB | wall s | records/s |
|---|---|---:|---:|---:|
{table}

A commit group holds up to 64 batches (at most 16 MB of queued bytes, ~27 batches of 256
records) and their decoded items at once. A merge of the derived vector index holds at most one
segment (`vectors.segment_size`, 100,000 vectors, ~100 MB as f16 with its links) plus a slice of
4,096 vectors read from the table, whatever the size of the index: the committer's memory
depends on neither the backlog nor the index.
"""
    print_and_record(args, argv, "backlog_memory.py", "backlog-memory",
                     "Where a draining committer's memory goes", where, load_before, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
