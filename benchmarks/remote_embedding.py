"""`mm index` through a remote embedding provider, against the server's own throughput.

    .venv/bin/python benchmarks/remote_embedding.py [--files 300] [--batch-size 32] [--concurrency 4]

Serves `minilm` over HTTP (tests/embedding_server.py, the OpenAI wire format), writes a folder
of generated notes (~2,000 chunks at the default size), and measures in one run:

- the server's own throughput: the same chunk texts posted straight to `POST /v1/embeddings`
  with the same batch size and concurrency (httpx, a thread pool), before and after `mm index`;
- `mm index` with `embedding.provider = openai` on a fresh home: chunks embedded per second of
  its whole wall time (start-up, probe, discovery, chunking, enqueue and commit included).

The ratio of the two is what memwal's client, its sentinel (one more text per request) and the
rest of `mm index` cost on top of the server. The server and `mm` share this machine's cores.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import benchlib  # noqa: E402
from helpers import EmbeddingServer  # noqa: E402

SECTION, TITLE = "remote-embedding", "Remote embedding providers (issue 26)"


def post_directly(url: str, model: str, texts: list[str], batch_size: int,
                  concurrency: int) -> float:
    """Seconds to embed `texts` by posting them straight to the server, as `mm` batches them."""
    import httpx

    batches = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(timeout=300, limits=limits) as client:
        def post(batch: list[str]) -> int:
            reply = client.post(f"{url}/embeddings", json={
                "model": model, "input": batch, "encoding_format": "float"})
            reply.raise_for_status()
            return len(reply.json()["data"])

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            done = sum(pool.map(post, batches))
        elapsed = time.perf_counter() - started
    assert done == len(texts)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--model", default="minilm")
    benchlib.add_run_options(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.files = 30
    load_before = benchlib.load_average()
    with benchlib.work_folder(args.workdir, args.keep) as work:
        server = EmbeddingServer(work)
        try:
            root = benchlib.write_notes(work / "notes", args.files)
            texts = benchlib.chunk_texts(root)
            post_directly(server.openai_url, args.model, texts[:64], args.batch_size, 1)  # warm
            direct_before = post_directly(server.openai_url, args.model, texts, args.batch_size,
                                          args.concurrency)
            home = work / "home"
            benchlib.make_home(home, model=None, embedding={
                "provider": "openai", "model": args.model, "url": server.openai_url,
                "batch_size": args.batch_size, "concurrency": args.concurrency})
            served_before = server.stats()
            elapsed, done = benchlib.run_timed(
                [benchlib.PYTHON, "-m", "memwal", "index", "--json", "--home", home, root])
            served = server.stats()
            report = __import__("json").loads(done.stdout)
            direct_after = post_directly(server.openai_url, args.model, texts, args.batch_size,
                                         args.concurrency)
        finally:
            server.stop()
    chunks = report["chunks_embedded"]
    direct = len(texts) / ((direct_before + direct_after) / 2)
    through_mm = chunks / elapsed
    requests = served["ok_requests"] - served_before["ok_requests"]
    sent = served["texts"] - served_before["texts"]
    where, _ = benchlib.machine()
    body = "\n".join([
        f"`{args.model}` served over HTTP by tests/embedding_server.py (OpenAI wire format), "
        f"{args.files} generated notes, {len(texts):,} chunks; batch size {args.batch_size}, "
        f"concurrency {args.concurrency}; the server and `mm` share the machine's cores.",
        "",
        "| path | chunks | seconds | chunks/s |",
        "| --- | ---: | ---: | ---: |",
        f"| the server alone (same texts posted straight, before `mm index`) | {len(texts):,} | "
        f"{direct_before:.2f} | {len(texts) / direct_before:,.0f} |",
        f"| the server alone (after `mm index`) | {len(texts):,} | {direct_after:.2f} | "
        f"{len(texts) / direct_after:,.0f} |",
        f"| `mm index` (wall time: start-up, probe, chunking, enqueue, commit) | {chunks:,} | "
        f"{elapsed:.2f} | {through_mm:,.0f} |",
        "",
        f"`mm index` ran at **{through_mm / direct:.0%}** of the server's own throughput (the mean "
        f"of its two direct runs, {direct:,.0f} chunks/s). The server answered {requests} "
        f"requests holding {sent:,} texts during `mm index`: the probe's 4, and one sentinel per "
        "request beside the chunks.",
    ])
    benchlib.print_and_record(args, argv, "remote_embedding.py", SECTION, TITLE, where,
                              load_before, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
