"""A cold `mm search` now against an earlier revision of memwal, side by side, on one index.

The earlier revision is checked out in a git worktree and put first on PYTHONPATH, so the same
interpreter, packages and index serve both; runs alternate between the two (the order flipped
each round), so load from other jobs falls on both alike. Both trees are compiled to bytecode
first, as pip does when it installs a wheel. The index (of docs/, the default model) is built
by the current code. No server runs: both search in their own process.

    .venv/bin/python benchmarks/cold_search_ab.py --against 19551e0 --write-doc
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

import memwal
from benchlib import (
    MM, PYTHON, REPO, add_run_options, clean_env, load_average, machine, make_home, median,
    print_and_record, work_folder,
)

QUERY = "committer lock held by another process"


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_options(parser, doc_by_default=False)
    parser.add_argument("--against", default="19551e0", help="the earlier revision (default 19551e0)")
    parser.add_argument("--runs", type=int, help="cold runs of each (default 15; quick 3)")
    args = parser.parse_args(argv)
    runs = args.runs or (3 if args.quick else 15)
    with work_folder(args.workdir, args.keep) as work:
        load_before = load_average()
        old_tree = work / "old"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(old_tree),
                        args.against], check=True)
        try:
            for tree in (old_tree / "src" / "memwal", Path(memwal.__file__).parent):
                subprocess.run([PYTHON, "-m", "compileall", "-q", str(tree)], check=True)
            settings = make_home(work / "home", model=None)  # no config: the default model
            print(f"indexing docs with the default model ({settings.model}) ...", flush=True)
            subprocess.run([str(MM), "index", str(REPO / "docs"), "--home", str(settings.home)],
                           env=clean_env(), check=True, capture_output=True)
            search = [str(MM), "search", QUERY, "--home", str(settings.home)]
            envs = {"earlier": {**clean_env(), "PYTHONPATH": str(old_tree / "src")}, "now": clean_env()}
            times: dict[str, list[float]] = {name: [] for name in envs}
            for round_no in range(runs):
                order = list(envs) if round_no % 2 else list(reversed(envs))
                for name in order:
                    times[name].append(timed(search, envs[name]))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old_tree)],
                           check=False)
        _, where = machine(work)
    earlier, now = (median(times[name]) * 1000 for name in ("earlier", "now"))
    body = f"""
A cold `mm search '{QUERY}' --home HOME` with no server running, {runs} runs of each, alternating,
on one index of `docs/` built with the default model (`minilm`): memwal at `{args.against}` (put
first on PYTHONPATH from a git worktree) against the current tree, with the same interpreter and
packages. Both trees compiled to bytecode first.

| memwal | p50 ms | min ms |
|---|---:|---:|
| `{args.against}` (the full command line, optimised session) | {earlier:,.0f} | {min(times['earlier']) * 1000:,.0f} |
| now (the fast path in process, unoptimised first session) | {now:,.0f} | {min(times['now']) * 1000:,.0f} |

Now / earlier = **{now / earlier:.2f}**.
"""
    print_and_record(args, argv, "cold_search_ab.py", "cold-search-ab",
                     "A cold `mm search`, before and after the in-process fast path", where, load_before, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
