"""Search latency through the public API with the default model (minilm): warm, cold, imports.

(a) `memwal.search(settings, query)` called --calls times in this one process, on a small index
    (the repository's docs/ folder, indexed first by `mm index` in a subprocess, so that this
    process loads the model on its first search): the first call apart, p50/p95 of the others.
(b) a cold `mm search QUERY --home HOME`, --cold times: wall time p50 and min, beside a bare
    `python -c "import memwal.cli.app"`.
(c) `python -X importtime -c "import memwal.cli.app"`: the top imports by cumulative time, and
    the same for a whole cold search (`python -X importtime -m memwal search …`).
(d) the same cold `mm search`, --cold times, while a `mm serve` runs on the home: the command asks
    the server over `<home>/serve.sock` (checked: the server's count of answered searches grows
    by exactly --cold), and what that fast path imports.

    .venv/bin/python benchmarks/search_api.py --quick       # 20 calls, 3 cold runs; prints only
    .venv/bin/python benchmarks/search_api.py --write-doc   # 200 calls, 10 cold runs; writes its section
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import memwal
from benchlib import (
    MM, PYTHON, REPO, add_run_options, load_average, machine, make_home, median,
    print_and_record, run_timed, shown, time_calls, work_folder,
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


@contextmanager
def serving(home: Path) -> Iterator[None]:
    """A `mm serve` on `home` (HTTP on a free loopback port, and the local socket), until exit."""
    server = subprocess.Popen([MM, "serve", "--port", "0", "--home", home], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        line = server.stderr.readline()  # printed once it serves, socket included
        if "serving http://" not in line:
            raise RuntimeError(f"mm serve did not start: {line!r} (exit {server.poll()})")
        yield
    finally:
        server.terminate()
        server.wait(timeout=60)


def answered(home: Path) -> int:
    """How many searches the running server answered over its local socket."""
    from memwal.localsearch import VERSION, ask

    answer = ask(home, {"v": VERSION, "stats": True})
    if answer is None:
        raise RuntimeError("no server answers on the home's socket")
    return int(answer["answered"])


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
        # An installed wheel's modules are compiled by pip; an editable install compiles them in
        # the first process that may write bytecode (not under PYTHONDONTWRITEBYTECODE).
        subprocess.run([PYTHON, "-m", "compileall", "-q", str(Path(memwal.__file__).parent)],
                       check=True)
        cli_s = [run_timed(cli)[0] for _ in range(cold)]
        floor_s = [run_timed([PYTHON, "-c", "import onnxruntime, tokenizers"])[0] for _ in range(cold)]
        bare_s = [run_timed([PYTHON, "-c", "pass"])[0] for _ in range(cold)]

        # (c) what a cold call imports
        app_total, app_rows = importtime(["-c", "import memwal.cli.app"])
        full_total, full_rows = importtime(["-m", "memwal", "search", QUERIES[0], "--home", home])

        # (d) cold processes answered by a running server
        with serving(home):
            run_timed(cli)  # the server's first search loads its model
            before = answered(home)
            served_s = [run_timed(cli)[0] for _ in range(cold)]
            if answered(home) != before + cold:
                raise RuntimeError("some searches were not answered by the server")
            fast_total, fast_rows = importtime(["-m", "memwal", "search", QUERIES[0],
                                                "--home", home])
        _, where = machine(work)

    def verdict(seconds: float, goal: float) -> str:
        return f"{'met' if seconds <= goal else '**not met**'} ({seconds * 1000:,.0f} ms)"

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
| of which at least: Python start + `import onnxruntime, tokenizers` (what embedding a query in process imports, numpy included) | {median(floor_s) * 1000:,.0f} | {min(floor_s) * 1000:,.0f} |
| of which: Python start (`python -c pass`) | {median(bare_s) * 1000:,.0f} | {min(bare_s) * 1000:,.0f} |

A plain `mm search` never imports the full command line (typer): with no server to ask,
`memwal.cli.fast` runs `memwal.search` in the process itself (any error hands over to the full
command line, which reports it). A process whose first embedding is one text runs it on an
unoptimised onnxruntime session (~30 ms to start instead of ~250 ms; the vectors agree to 1e-7);
see `OnnxSentenceEmbedder._session_for`. memwal's modules were compiled to bytecode first, as pip
does when it installs the wheel.

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

The same cold `mm search` while `mm serve` runs on the home ({cold} runs; each was answered by the
server over `<home>/serve.sock`, counted by the server):

| what | p50 ms | min ms |
|---|---:|---:|
| `mm search` wall time, served | {median(served_s) * 1000:,.0f} | {min(served_s) * 1000:,.0f} |
| `mm search` wall time, in process (from above) | {median(cli_s) * 1000:,.0f} | {min(cli_s) * 1000:,.0f} |

What that served call imports (`python -X importtime -m memwal search …`, server running):
{fast_total:,} µs in all; its top-level imports by cumulative time:

| depth | module | cumulative µs | self µs |
|---|---|---:|---:|
{imports([row for row in fast_rows if row[2] == 0])}

Goals (issue 13): a cold in-process `mm search` at most 400 ms wall: {verdict(median(cli_s), 0.4)};
served by a running `mm serve` at most 150 ms: {verdict(median(served_s), 0.15)}. Issue 10: warm
calls p50 under 30 ms: {verdict(warm.p50 / 1000, 0.03)}.
"""
    print_and_record(args, argv, "search_api.py", "search-api",
                     "Search through the public API (default model)", where, load_before, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
