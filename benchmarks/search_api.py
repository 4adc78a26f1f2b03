"""Search latency through the public API with the default model (minilm): warm, cold, imports.

(a) `memwal.search(settings, query)` called --calls times in this one process, on a small index
    (the repository's docs/ folder, indexed first by `mm index` in a subprocess, so that this
    process loads the model on its first search): the first call apart, p50/p95 of the others.
(b) a cold `mm search QUERY --home HOME`, --cold times: wall time p50 and min, beside a bare
    `python -c "import memwal.cli.app"`.
(c) `python -X importtime -c "import memwal.cli.app"`: the top imports by cumulative time, and
    the same for a whole cold search (`python -X importtime -m memwal search …`).

    .venv/bin/python benchmarks/search_api.py --quick       # 20 calls, 3 cold runs; prints only
    .venv/bin/python benchmarks/search_api.py --write-doc   # 200 calls, 10 cold runs; writes its section
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from pathlib import Path

import memwal
from benchlib import (
    MM, PYTHON, REPO, add_run_options, command, header, load_average, machine, make_home,
    median, run_timed, shown, time_calls, update_section, work_folder, writes_doc,
)

QUERIES = ("committer lock held by another process", "replay dead letters", "embedding model reset",
           "queue worker once", "search latency goal", "wire format of a batch", "doctor checks",
           "namespace filter", "crash while committing", "records per batch")


def importtime(argv: list[str | Path]) -> tuple[int, list[tuple[int, int, int, str]]]:
    """Total µs of imports, and every import as (cumulative µs, self µs, depth, module), largest first."""
    _, done = run_timed([PYTHON, "-X", "importtime", *argv])
    line = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")
    rows = [(int(m[2]), int(m[1]), len(m[3]) // 2, m[4]) for m in map(line.match, done.stderr.splitlines()) if m]
    return sum(own for _, own, _, _ in rows), sorted(rows, reverse=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_options(parser, doc_by_default=False)
    parser.add_argument("--calls", type=int, help="in-process searches (default 200; quick 20)")
    parser.add_argument("--cold", type=int, help="cold `mm search` runs (default 10; quick 3)")
    parser.add_argument("--corpus", type=Path, default=REPO / "docs", help="folder to index (default docs/)")
    parser.add_argument("--top", type=int, default=12, help="import-time rows to show")
    args = parser.parse_args(argv)
    calls = args.calls or (20 if args.quick else 200)
    cold = args.cold or (3 if args.quick else 10)
    with work_folder(args.workdir, args.keep) as work:
        load_before = load_average()
        settings = make_home(work / "home", model=None)  # no config: the default model
        print(f"indexing {shown(args.corpus)} with the default model ({settings.model}) ...", flush=True)
        index_s, done = run_timed([MM, "index", args.corpus, "--home", settings.home, "--json"])
        chunks = json.loads(done.stdout)["chunks_embedded"]  # nothing else of memwal imported yet

        # (a) one process: the first call loads the model (and memwal.retrieval's imports before it)
        started = time.perf_counter()
        search = memwal.search
        import_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        first = search(settings, QUERIES[0])
        first_ms = (time.perf_counter() - started) * 1000
        if first.warnings or not first.hits:
            raise RuntimeError(f"the first search did not run both legs: {first.warnings}")
        queries = [QUERIES[n % len(QUERIES)] for n in range(1, calls)]
        warm = time_calls([("warm", queries, lambda query: search(settings, query))], warmup=0)[0]

        # (b) cold processes
        home = settings.home
        cli = [MM, "search", QUERIES[0], "--home", home]
        cli_s = [run_timed(cli)[0] for _ in range(cold)]
        bare_s = [run_timed([PYTHON, "-c", "import memwal.cli.app"])[0] for _ in range(cold)]

        # (c) what a cold call imports
        app_total, app_rows = importtime(["-c", "import memwal.cli.app"])
        full_total, full_rows = importtime(["-m", "memwal", "search", QUERIES[0], "--home", home])
        _, where = machine(work)

    def hide(argv: list[str | Path]) -> str:
        return shlex.join(map(str, argv)).replace(str(home), "$HOME_DIR").replace(str(REPO) + "/", "")

    def imports(rows: list[tuple[int, int, int, str]]) -> str:
        return "\n".join(f"| {depth} | `{name}` | {cum:,} | {own:,} |"
                         for cum, own, depth, name in rows[:args.top])

    summary = f"""
An index of `{shown(args.corpus)}` ({chunks} chunks) built with the default model (`{settings.model}`) by
`mm index` in a subprocess ({index_s:.1f} s), then, in this one process:

| what | ms |
|---|---:|
| `memwal.search` attribute (imports `memwal.retrieval`) | {import_ms:,.1f} |
| first `memwal.search(settings, query)` (builds the embedder, loads the model) | {first_ms:,.1f} |
| warm calls: p50 / p95 / min ({len(warm.ms)} calls, {len(QUERIES)} queries in turn) | {warm.p50:,.1f} / {warm.p95:,.1f} / {min(warm.ms):,.1f} |

A cold search, a new process each time ({cold} runs, `{hide(cli)}`):

| what | p50 ms | min ms |
|---|---:|---:|
| `mm search` wall time | {median(cli_s) * 1000:,.0f} | {min(cli_s) * 1000:,.0f} |
| of which at least: Python start + `import memwal.cli.app` | {median(bare_s) * 1000:,.0f} | {min(bare_s) * 1000:,.0f} |

What `python -X importtime -c "import memwal.cli.app"` imports: {app_total:,} µs in all; the top
{args.top} by cumulative time (depth 0: imported by the command itself):

| depth | module | cumulative µs | self µs |
|---|---|---:|---:|
{imports(app_rows)}

A whole cold search, `python -X importtime -m memwal search …`, imports for {full_total:,} µs; its
top-level imports (which add up to that) by cumulative time:

| depth | module | cumulative µs | self µs |
|---|---|---:|---:|
{imports([row for row in full_rows if row[2] == 0])}
"""
    print(summary)
    if writes_doc(args):
        cmd = command("search_api.py", *(sys.argv[1:] if argv is None else argv))
        update_section("search-api", "Search through the public API (default model)",
                       header(where, cmd, load_before) + summary, args.doc)
        print(f"updated the 'search-api' section of {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
