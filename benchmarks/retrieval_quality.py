"""Retrieval quality on a public labeled set (BEIR NFCorpus): nDCG@10 and recall@100 per leg and fused.

Every document of the set becomes one markdown file (`# title`, a blank line, the text; named by
its id, percent-encoded) and is indexed into a memwal home with the default model (minilm) by
`memwal.index_paths`. Every test query then runs through

  (a) the keyword leg alone and (b) the vector leg alone, each two ways: through the public API
      (`memwal.Searcher` with `search.vector_weight` = 0, resp. `search.bm25_weight` = 0) and
      directly (the leg's own ranking, benchlib's `index_reader`: no fusion at all; the public
      runs keep the zero-weight leg's hits at a zero score, a known defect);
  (c) the hybrid, default settings (`memwal.Searcher`),

asking for 100 results, mapped back to document ids (a document can yield several chunks: each
keeps its best rank, the others are dropped). nDCG@10 uses the graded judgments as gains with a
log2 discount, as trec_eval / pytrec_eval (and so BEIR and MTEB) compute it; recall@100 is the
share of a query's relevant documents among its results. Both are averaged over all test queries.

Also reported, for the hybrid: the share of queries whose top 10 results hold 3 or more chunks of
one document, and how many documents got a chunk that is only their `# title` line.

The data: BEIR's NFCorpus (corpus.jsonl, queries.jsonl, qrels/test.tsv) under --data. A copy
sits in the public repository KID-22/Cocktail (dataset/nfcorpus.zip, whose corpus/human.jsonl is
BEIR's corpus.jsonl); `--prepare ZIP` lays that zip out under --data.

    .venv/bin/python benchmarks/retrieval_quality.py --prepare nfcorpus.zip    # once: the data
    .venv/bin/python benchmarks/retrieval_quality.py --home /work/corpus/nfcorpus-home  # build, keep
    .venv/bin/python benchmarks/retrieval_quality.py --home /work/corpus/nfcorpus-home --write-doc --label after
    .venv/bin/python benchmarks/retrieval_quality.py --quick   # 20 queries, 400 documents; prints only

A --home is built on the first run (about 25 minutes on 2 busy cores) and reused afterwards:
files unchanged since are skipped, so chunks stay as they were built. After a change to chunking
or embedding, measure on a fresh --home (or pass --reindex). `--label` names the doc section
(retrieval-quality-LABEL), so a "before" and an "after" can stand side by side. To measure
another copy of memwal (e.g. a commit's src/ from `git archive`, with its hash in a COMMIT file
beside src/), put its src/ first on PYTHONPATH: the section records which copy it was.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import quote, unquote

import memwal
from benchlib import (
    REPO, add_run_options, command, embedder, header, index_reader, load_average, machine, make_home,
    shown, update_section, work_folder, writes_doc,
)

DATA = Path("/work/corpus/nfcorpus")
RESULTS = 100  # results asked for per query: recall@100, and nDCG@10 from their first 10 documents
DEEP = 400  # results asked for when filling 100 distinct documents (the "docs" recall column)

# Where the data comes from: BEIR's NFCorpus as the Cocktail benchmark republished it (its
# corpus/human.jsonl is BEIR's corpus.jsonl: 3,633 documents; 323 test queries, 12,334 graded
# judgments). sha256 of the files laid out by --prepare.
SOURCE = {
    "set": "NFCorpus (BEIR v1.0.0 test split; Boteva et al., ECIR 2016)",
    "repository": "KID-22/Cocktail",
    "commit": "d070bccd55e643c8c9d018ef65e5825099e97550",
    "path": "dataset/nfcorpus.zip",
    "zip_sha256": "4af0c2c3c8e52b603a8173f2e01da92342fdf6b74432b5a3d798d74534f02ad5",
    "files": {
        "corpus.jsonl": "9127e0e7f4f89587540be1f1f350eec2a5bc203253f70517b8f34557a71e24ba",
        "queries.jsonl": "d024e6621b84925d485ae473d316a0c3af31c62c8068a59fb29d22f7613aef2a",
        "qrels/test.tsv": "f8fba6ef3d4dd9c3a242a8ba4ae38276fc3622fce7dcbae764766d564542fd2a",
    },
}

# Published figures for this set (test split, nDCG@10, recall@100), each with where it is written.
ANSERINI_FLAT = ("castorini/anserini", "6c648f7de287705d00a6378397e173989a26e9e9",
                 "docs/regressions/regressions-beir-v1.0.0-nfcorpus.flat.md")
ANSERINI_MULTI = ("castorini/anserini", "4c248722d6cc143bf40295a97af8dae2a43d2b39",
                  "docs/regressions/regressions-beir-v1.0.0-nfcorpus.multifield.md")
MTEB_MINILM = ("embeddings-benchmark/results", "f4cc6c8b365a3c779dbc708d6affe0b0355b2ddf",
               "results/sentence-transformers__all-MiniLM-L6-v2/"
               "8b3219a92973c328a8e22fadcfa821b5dc75636a/NFCorpus.json")
MTEB_BM25S = ("embeddings-benchmark/results", "f4cc6c8b365a3c779dbc708d6affe0b0355b2ddf",
              "results/mteb__baseline-bm25s/0_1_10/NFCorpus.json")


@dataclass(frozen=True)
class Published:
    what: str
    ndcg10: float
    recall100: float
    source: tuple[str, str, str]  # repository, commit, path

    def cite(self) -> str:
        repo, commit, path = self.source
        return f"{repo}@{commit[:8]} `{path}`"


PUBLISHED = {
    "keyword": [
        Published("BM25, title + text as one field (Anserini \"flat\")", 0.3218, 0.2457, ANSERINI_FLAT),
        Published("BM25, title and text as two fields (Anserini \"multifield\")",
                  0.3254, 0.2500, ANSERINI_MULTI),
        Published("BM25 (bm25s, MTEB baseline)", 0.32082, 0.25808, MTEB_BM25S),
    ],
    "vector": [
        Published("all-MiniLM-L6-v2, fp32, whole documents (MTEB)", 0.31594, 0.31151, MTEB_MINILM),
    ],
    "hybrid": [],
}


# -- the data ------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare(zip_path: Path, data: Path) -> None:
    """Lay out a BEIR-style NFCorpus zip under `data`: corpus.jsonl, queries.jsonl, qrels/test.tsv.

    Takes BEIR's own layout (nfcorpus/corpus.jsonl) or Cocktail's (corpus/human.jsonl).
    """
    wanted = {"corpus.jsonl": ("corpus/human.jsonl", "corpus.jsonl"), "queries.jsonl": ("queries.jsonl",),
              "qrels/test.tsv": ("qrels/test.tsv",)}
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        for target, candidates in wanted.items():
            member = next((n for c in candidates for n in names if n == c or n.endswith("/" + c)), None)
            if member is None:
                sys.exit(f"{zip_path} has none of {candidates}")
            out = data / target
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            print(f"  {member} -> {out}")
    (data / "SOURCE.json").write_text(json.dumps(SOURCE | {"prepared_from": str(zip_path)}, indent=2) + "\n")


@dataclass
class Dataset:
    docs: dict[str, tuple[str, str]]  # id -> (title, text)
    queries: dict[str, str]  # test queries only, in qrels order
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> grade
    checked: str  # what the sha256 check found


def load(data: Path) -> Dataset:
    for name in SOURCE["files"]:
        if not (data / name).exists():
            sys.exit(f"{data / name} is missing: lay the set out first with --prepare ZIP (see --help)")
    mismatched = [n for n, h in SOURCE["files"].items() if sha256(data / n) != h]
    checked = ("sha256 of corpus, queries and qrels as published" if not mismatched
               else f"**sha256 differs** from the recorded copy for {', '.join(mismatched)}")
    docs = {}
    for line in (data / "corpus.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        docs[row["_id"]] = (row.get("title") or "", row.get("text") or "")
    qrels: dict[str, dict[str, int]] = {}
    with (data / "qrels/test.tsv").open(encoding="utf-8") as f:
        for n, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if n == 0 and not parts[-1].lstrip("-").isdigit():
                continue  # the header
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    with (data / "queries.jsonl").open(encoding="utf-8") as f:
        texts = {row["_id"]: row["text"] for row in map(json.loads, f)}
    return Dataset(docs, {q: texts[q] for q in qrels}, qrels, checked)


def file_name(doc_id: str) -> str:
    """A document id as a file name: percent-encoded (no '/', no leading '.'), plus `.md`."""
    name = quote(doc_id, safe="")
    return ("%2E" + name[1:] if name.startswith(".") else name) + ".md"


def doc_id_of(source_file: str) -> str:
    return unquote(Path(source_file).name.removesuffix(".md"))


def markdown(title: str, text: str) -> str:
    title = " ".join(title.split())
    return (f"# {title}\n\n{text.strip()}\n" if title else f"{text.strip()}\n")


def write_docs(docs: dict[str, tuple[str, str]], folder: Path) -> int:
    """One markdown file per document; a file already holding the same text is left alone.

    Returns how many files were written (an unchanged file keeps its mtime, so a re-index skips it).
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for doc_id, (title, text) in docs.items():
        path, content = folder / file_name(doc_id), markdown(title, text)
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
            written += 1
    return written


# -- the metrics ---------------------------------------------------------------------------


def ndcg_at(ranked: Sequence[str], grades: dict[str, int], k: int = 10) -> float:
    """trec_eval's ndcg_cut.k: gain = grade, discount log2(rank + 1), ideal from all judgments."""
    dcg = sum(grades.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(grades.values(), reverse=True)[:k]))
    return dcg / ideal if ideal > 0 else 0.0


def recall_at(ranked: Sequence[str], grades: dict[str, int], k: int = 100) -> float:
    relevant = {d for d, g in grades.items() if g > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def best_ranks(doc_ids: Iterable[str]) -> list[str]:
    """Document ids in order of their first (best) chunk; later chunks of a document dropped."""
    return list(dict.fromkeys(doc_ids))


def crowded(doc_ids: Sequence[str], top: int = 10, at_least: int = 3) -> bool:
    """Whether one document fills `at_least` of the first `top` results."""
    counts = Counter(doc_ids[:top])
    return bool(counts) and max(counts.values()) >= at_least


TITLE_ONLY = re.compile(r"#{1,6}[ \t][^\n]*")


def title_only(content: str) -> bool:
    """A chunk that is nothing but one heading line (here: the document's `# title`)."""
    return TITLE_ONLY.fullmatch(content.strip()) is not None


@dataclass
class Run:
    """One method over the queries: per query its result documents (chunk order) and counts."""

    label: str
    kind: str  # keyword / vector / hybrid
    results: dict[str, list[str]] = field(default_factory=dict)  # query -> doc id per result (chunks)
    deep: dict[str, list[str]] = field(default_factory=dict)  # query -> doc id per result, DEEP asked
    chunk_ids: dict[str, list[int]] = field(default_factory=dict)  # query -> chunk id per result
    deep_ids: dict[str, list[int]] = field(default_factory=dict)  # the same, DEEP asked
    title_hits: int = 0  # queries with a title-only chunk in their top 10
    seconds: float = 0.0  # in the timed call per query (public: the RESULTS one; direct: the DEEP one)

    def scores(self, data: Dataset) -> dict[str, float]:
        queries = list(self.results)
        docs = {q: best_ranks(self.results[q]) for q in queries}
        deep = {q: best_ranks(self.deep[q])[:RESULTS] for q in queries if q in self.deep}
        n = len(queries)
        return {
            "ndcg10": sum(ndcg_at(docs[q], data.qrels[q]) for q in queries) / n,
            "recall100": sum(recall_at(docs[q], data.qrels[q], RESULTS) for q in queries) / n,
            "distinct": sum(len(docs[q]) for q in queries) / n,
            "recall100_docs": (sum(recall_at(deep[q], data.qrels[q], RESULTS) for q in deep) / len(deep)
                               if len(deep) == n else float("nan")),
            "crowded": sum(crowded(self.results[q]) for q in queries) / n,
            "title_top10": self.title_hits / n,
            "ms_per_query": self.seconds / max(1, n) * 1000,
        }


def pytrec_check(runs: Sequence[Run], data: Dataset, scored: dict[str, dict[str, float]]) -> str:
    """The same two metrics by pytrec_eval when it is importable (optional, not a dependency)."""
    try:
        import pytrec_eval  # type: ignore[import-not-found]
    except ImportError:
        return "pytrec_eval not installed: the metrics are this script's own (a few lines above)"
    worst = 0.0
    for run in runs:
        queries = list(run.results)
        evaluator = pytrec_eval.RelevanceEvaluator({q: data.qrels[q] for q in queries},
                                                   {"ndcg_cut.10", "recall.100"})
        ranked = {q: best_ranks(run.results[q]) for q in queries}
        measured = evaluator.evaluate({q: {d: float(len(docs) - i) for i, d in enumerate(docs)}
                                       for q, docs in ranked.items() if docs})
        for ours, theirs in (("ndcg10", "ndcg_cut_10"), ("recall100", "recall_100")):
            mean = sum(measured.get(q, {}).get(theirs, 0.0) for q in queries) / len(queries)
            worst = max(worst, abs(mean - scored[run.label][ours]))
    return f"pytrec_eval agrees with this script's metrics to within {worst:.1e}"


# == memwal internals (benchlib style: each named for what a figure needs) ===================


def all_chunks(settings: memwal.Settings) -> list[tuple[int, str, str]]:
    """INTERNAL: every stored chunk as (id, source_file, content), read from the index file."""
    from memwal import store

    with store.reading(settings.index_path) as conn:
        return [] if conn is None else conn.execute(
            "SELECT id, source_file, content FROM chunks").fetchall()


def direct_legs(settings: memwal.Settings, queries: dict[str, str], chunk_doc: dict[int, str],
                chunk_text: dict[int, str], depth: int) -> tuple[Run, Run]:
    """INTERNAL: each leg's own ranking, no fusion: `memwal.retrieval.bm25_ranking` and
    `memwal.store.reads.vector_ranking` on one read connection (benchlib's `index_reader`), the
    query embedded by the default model (`get_embedder("minilm").embed([q])[0]`).
    """
    reader = index_reader(settings)
    model = embedder("minilm")
    runs = (Run("keyword leg, direct (`bm25_ranking`)", "keyword"),
            Run("vector leg, direct (`vector_ranking`)", "vector"))
    try:
        for query_id, text in queries.items():
            for run, rank in ((runs[0], lambda: reader.bm25(text, depth)),
                              (runs[1], lambda: reader.knn(model.embed([text])[0], depth))):
                started = time.perf_counter()
                ids = rank()
                run.seconds += time.perf_counter() - started
                run.deep[query_id] = [chunk_doc[i] for i in ids]
                run.results[query_id] = run.deep[query_id][:RESULTS]
                run.deep_ids[query_id], run.chunk_ids[query_id] = ids, ids[:RESULTS]
                run.title_hits += any(title_only(chunk_text[i]) for i in ids[:10])
    finally:
        reader.close()
    return runs


# -- the public API ------------------------------------------------------------------------


def public_run(settings: memwal.Settings, label: str, kind: str, queries: dict[str, str]) -> Run:
    """`memwal.Searcher(settings).search(q, top_k=…)`: RESULTS results, then DEEP results."""
    run = Run(label, kind)
    searcher = memwal.Searcher(settings)
    try:
        for query_id, text in queries.items():
            started = time.perf_counter()
            hits = searcher.search(text, top_k=RESULTS).hits
            run.seconds += time.perf_counter() - started
            deep = searcher.search(text, top_k=DEEP).hits
            run.results[query_id] = [doc_id_of(h.source_file) for h in hits]
            run.deep[query_id] = [doc_id_of(h.source_file) for h in deep]
            run.chunk_ids[query_id] = [h.chunk_id for h in hits]
            run.deep_ids[query_id] = [h.chunk_id for h in deep]
            run.title_hits += any(title_only(h.content) for h in hits[:10])
    finally:
        searcher.close()
    return run


# -- the index -----------------------------------------------------------------------------


def memwal_state() -> str:
    """Which memwal was measured: this repository's src/ (its commit, and whether src/ differs
    from it), or another copy on PYTHONPATH (with the commit in a COMMIT file beside its src/).
    """
    src = Path(memwal.__file__).resolve().parents[1]
    if src != REPO / "src":
        marker = src.parent / "COMMIT"
        commit = marker.read_text().strip()[:7] if marker.exists() else "unknown commit"
        return f"{commit} (a copy at {src})"
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes in src/" if dirty else "")


def build(settings: memwal.Settings, folder: Path, docs: dict[str, tuple[str, str]],
          reindex: bool) -> dict[str, Any]:
    """Write the documents and index them (`memwal.index_paths`, default model); what was done.

    In a home that already holds them, unchanged files are skipped and the record of the first
    build (its time, the memwal commit) is kept.
    """
    record_path = settings.home / "retrieval-quality-build.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else None
    written = write_docs(docs, folder)
    print(f"  {len(docs):,} documents in {folder} ({written:,} written now); indexing with "
          f"{settings.model} ...", flush=True)
    total, done, last = [0], [0], [0.0]

    def on_progress(n: int) -> None:
        done[0] += n
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            print(f"    {done[0]:,} / {total[0]:,} files", flush=True)

    started = time.perf_counter()
    report = memwal.index_paths(settings, [folder], force=reindex, command="benchmarks/retrieval_quality.py",
                                on_start=lambda n: total.__setitem__(0, n), on_progress=on_progress)
    seconds = time.perf_counter() - started
    if report.dead_lettered or report.skipped:
        sys.exit(f"indexing went wrong: {report.dead_lettered} dead-lettered, skipped {report.skipped[:3]}")
    status = memwal.index_status(settings)
    fresh = report.chunks_embedded > 0 or record is None
    if fresh:
        record = {"seconds": round(seconds, 1), "files": report.files, "new": report.new,
                  "chunks_embedded": report.chunks_embedded, "chunks": status["chunks"],
                  "memwal": memwal_state(), "date": time.strftime("%Y-%m-%d %H:%M %Z"),
                  "reindex": reindex}
        record_path.write_text(json.dumps(record, indent=2) + "\n")
    assert record is not None
    record = dict(record, reused=not fresh, chunks=status["chunks"], this_run_seconds=round(seconds, 1))
    print(f"  index: {status['chunks']:,} chunks; "
          + (f"built now in {seconds:,.0f} s ({report.chunks_embedded:,} chunks embedded)" if fresh else
             f"reused (built {record['date']} in {record['seconds']:,.0f} s at memwal {record['memwal']}; "
             f"checked in {seconds:.1f} s)"), flush=True)
    return record


# -- the report ----------------------------------------------------------------------------


def table(runs: Sequence[Run], data: Dataset) -> tuple[str, dict[str, dict[str, float]]]:
    """The results and the published figures as one markdown table, the sources listed below it."""
    scored = {run.label: run.scores(data) for run in runs}
    lines = ["| method | nDCG@10 | recall@100 | distinct docs in the 100 results (mean) | recall@100 over "
             f"100 distinct docs (from {DEEP} results) | top 10 with ≥3 chunks of one doc | ms per call |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        s = scored[run.label]
        lines.append(f"| {run.label} | {s['ndcg10']:.4f} | {s['recall100']:.4f} | {s['distinct']:.1f} | "
                     f"{s['recall100_docs']:.4f} | {s['crowded']:.1%} | {s['ms_per_query']:.1f} |")
    sources = []
    for kind in ("keyword", "vector"):
        for pub in PUBLISHED[kind]:
            sources.append(f"[{len(sources) + 1}] {pub.cite()}")
            lines.append(f"| published, {kind}: {pub.what} [{len(sources)}] | {pub.ndcg10:.4f} | "
                         f"{pub.recall100:.4f} | – | – | – | – |")
    lines.append("| published, hybrid of these two | none found | | | | | |")
    return "\n".join(lines) + "\n\nSources: " + "; ".join(sources) + ".", scored


CAPS = (0, 1, 2, 3, 5)


def per_document_caps(home: Path, queries: dict[str, str], data: Dataset,
                      args: argparse.Namespace, record: dict[str, Any]) -> int:
    """The hybrid at each per-document cap, side by side: what chose `search.max_per_doc`."""
    rows = []
    for cap in CAPS:
        settings = memwal.load_settings(home, flags={"search.max_per_doc": cap}, environ={})
        run = public_run(settings, f"max_per_doc {cap}", "hybrid", queries)
        scores = run.scores(data)
        rows.append(f"| {cap if cap else 'no cap'} | {scores['ndcg10']:.4f} | "
                    f"{scores['recall100']:.4f} | {scores['crowded']:.1%} |")
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    body = f"""
The hybrid search on NFCorpus ({len(queries)} test queries; the index of {record["chunks"]:,} chunks
built at memwal {record["memwal"].split()[0]} with the default model) at each value of
`search.max_per_doc`, side by side in one run. Recall@100 counts the documents in the 100
results (a capped run holds more distinct documents):

| max_per_doc | nDCG@10 | recall@100 | queries with 3+ chunks of one document in the top 10 |
|---|---:|---:|---:|
{table}

Document-level nDCG@10 is the same at every cap (these documents are short: 1.6 chunks each), and
with a cap of 1 or 2 no query's top 10 holds 3 or more chunks of one document (before the fixes,
27% of queries did). A cap of 1 adds distinct documents to the 100 results; 2 keeps a note's
second most relevant section in the results, which a document-level judgment cannot value but a
memory of long notes does. The default is 2.
"""
    print(body)
    if writes_doc(args):
        update_section("retrieval-quality-caps", "Retrieval quality: the per-document cap",
                       header(machine(home)[1], command("retrieval_quality.py", "--home",
                                                        "<kept home>", "--caps"),
                              load_average()) + body, args.doc)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_options(parser, doc_by_default=False)
    parser.add_argument("--data", type=Path, default=DATA, help=f"the set, BEIR layout (default {DATA})")
    parser.add_argument("--prepare", type=Path, metavar="ZIP",
                        help="lay out a BEIR or Cocktail nfcorpus zip under --data, then stop")
    parser.add_argument("--home", type=Path,
                        help="memwal home to build the index in and keep (reused when it holds it)")
    parser.add_argument("--reindex", action="store_true",
                        help="re-chunk and re-embed every document (index_paths force)")
    parser.add_argument("--limit-queries", type=int, metavar="N",
                        help="the first N test queries only (smoke run)")
    parser.add_argument("--limit-docs", type=int, metavar="N",
                        help="index N documents only: those judged for the queries run, then others "
                             "(smoke run; figures not comparable)")
    parser.add_argument("--label", help="names the doc section retrieval-quality-LABEL (e.g. before, after)")
    parser.add_argument("--caps", action="store_true",
                        help="instead: the hybrid with search.max_per_doc = 0 (no cap), 1, 2, 3, 5, "
                             "to choose its default (section retrieval-quality-caps)")
    args = parser.parse_args(argv)
    if args.prepare:
        prepare(args.prepare, args.data)
        return 0
    if args.quick:
        args.limit_queries = args.limit_queries or 20
        args.limit_docs = args.limit_docs or 400
    if args.limit_docs and args.write_doc:
        sys.exit("--write-doc with --limit-docs: figures on part of the corpus are not comparable")
    if args.limit_docs and args.home:
        sys.exit("--limit-docs with --home: a kept home should hold the whole corpus; use a temp home")

    data = load(args.data)
    queries = dict(list(data.queries.items())[:args.limit_queries] if args.limit_queries else data.queries)
    docs = data.docs
    if args.limit_docs:
        judged = [d for q in queries for d in data.qrels[q] if d in docs]
        others = sorted(set(docs) - set(judged))
        random.Random(7).shuffle(others)
        keep = list(dict.fromkeys(judged + others))[:args.limit_docs]
        docs = {d: docs[d] for d in keep}
    print(f"{SOURCE['set']}: {len(data.docs):,} documents, {len(data.queries)} test queries, "
          f"{sum(map(len, data.qrels.values())):,} judgments ({data.checked})")

    load_before = load_average()
    with work_folder(args.workdir, args.keep) as work:
        home = args.home or work / "home"
        settings = make_home(home, model=None)  # no config: the default model
        folder = home / "nfcorpus-md"
        record = build(settings, folder, docs, args.reindex)
        if args.caps:
            return per_document_caps(home, queries, data, args, record)

        chunks = all_chunks(settings)
        chunk_doc = {i: doc_id_of(source) for i, source, _ in chunks}
        chunk_text = {i: content for i, _, content in chunks}
        titled = {chunk_doc[i] for i, _, content in chunks if title_only(content)}
        per_doc = Counter(chunk_doc.values())

        print(f"  running {len(queries)} queries: hybrid, keyword-only and vector-only (public API), "
              "each leg directly ...", flush=True)
        started = time.perf_counter()

        def only(weight: str) -> memwal.Settings:
            return memwal.load_settings(home, flags={weight: 0.0}, environ={})

        hybrid = public_run(settings, "hybrid, default settings (`Searcher.search`)", "hybrid", queries)
        keyword = public_run(only("search.vector_weight"), "keyword only: `search.vector_weight` = 0 "
                             "(public API)", "keyword", queries)
        vector = public_run(only("search.bm25_weight"), "vector only: `search.bm25_weight` = 0 (public API)",
                            "vector", queries)
        keyword_leg, vector_leg = direct_legs(settings, queries, chunk_doc, chunk_text, DEEP)
        runs = [hybrid, keyword_leg, keyword, vector_leg, vector]
        query_s = time.perf_counter() - started
        _, where = machine(home)

    rows, scored = table(runs, data)
    print("  " + pytrec_check(runs, data, scored))
    fused = scored[hybrid.label]

    def differ(public: Run, direct: Run) -> int:
        return sum(public.chunk_ids[q] != direct.chunk_ids[q] for q in queries)

    def padded(public: Run, direct: Run) -> int:
        """Queries whose public results hold chunks the leg itself does not return (at DEEP)."""
        return sum(not set(public.chunk_ids[q]) <= set(direct.deep_ids[q]) for q in queries)

    zero_note = (f"; {padded(keyword, keyword_leg)} resp. {padded(vector, vector_leg)} of them hold "
                 "chunks the leg itself does not return: the zero-weight leg's hits, added at a zero "
                 "score after the weighted leg's" if padded(keyword, keyword_leg) or padded(vector, vector_leg)
                 else "; none holds a chunk the leg itself does not return (a weight of 0 leaves the "
                 "other leg out)")
    zero_note += (". The other differences are in order or in what the per-document cap "
                  f"(`search.max_per_doc` = {settings.values['search.max_per_doc']}) drops."
                  if "search.max_per_doc" in settings.values and any(
                      differ(public, direct) > padded(public, direct)
                      for public, direct in ((keyword, keyword_leg), (vector, vector_leg))) else ".")
    pad_note = (" Those lists are where zero-score vector hits pad the public keyword-only run."
                if padded(keyword, keyword_leg) else "")
    search_settings = ", ".join(f"`{k}` = {v}" for k, v in settings.values.items() if k.startswith("search."))

    def short(n: int) -> int:
        return sum(len(keyword_leg.deep[q]) < n for q in queries)
    multi = sum(1 for n in per_doc.values() if n > 1)
    partial = ""
    if args.limit_queries or args.limit_docs:
        partial = f" **Smoke run: {len(queries)} of {len(data.queries)} queries"
        if args.limit_docs:
            partial += f", {len(docs):,} of {len(data.docs):,} documents (figures not comparable)"
        partial += ".**"
    built = (f"built by this run in {record['seconds']:,.0f} s" if not record["reused"] else
             f"reused from --home, built {record['date']} in {record['seconds']:,.0f} s"
             + ("" if record["memwal"] == memwal_state() else f" by memwal {record['memwal']}"))
    summary = f"""
Data: {SOURCE['set']}, from the public repository `{SOURCE['repository']}` at commit
`{SOURCE['commit']}`, file `{SOURCE['path']}` (its `corpus/human.jsonl` is BEIR's `corpus.jsonl`),
laid out by `--prepare`; {data.checked}. {len(data.docs):,} documents, {len(data.queries)} test
queries, {sum(map(len, data.qrels.values())):,} graded judgments (grades 1-2).{partial}

Index: memwal {memwal_state()}; the default model (`minilm`: all-MiniLM-L6-v2, int8 ONNX,
256-token window) and chunking; one markdown file per document (`# title`, blank line, text).
{len(docs):,} files, {record['chunks']:,} chunks ({multi:,} documents have more than one); {built}.
Search settings (defaults): {search_settings}. All the runs below took {query_s:,.0f} s.

Each method asked for {RESULTS} results per query, mapped to documents (best rank kept, later
chunks of a document dropped); nDCG@10 from the first 10 documents (gain = grade, log2 discount,
as trec_eval/pytrec_eval), recall@100 over the documents among the {RESULTS} results, averaged over
{len(queries)} queries. Since a document can fill several of the {RESULTS} results, a further column
asks for {DEEP} and keeps the first {RESULTS} distinct documents, as the published recall@100 counts.

{rows}

Two ranking defects, measured on the hybrid:

- a top 10 holding 3 or more chunks of one document: **{fused['crowded']:.1%}** of queries
  ({round(fused['crowded'] * len(queries))} of {len(queries)});
- documents with a title-only chunk (a chunk that is just the `# title` line): **{len(titled):,}**
  of {len(docs):,} ({len(titled) / max(1, len(docs)):.1%}); one is in the top 10 for
  {fused['title_top10']:.1%} of queries.

Notes:

- The public keyword-only and vector-only runs (`memwal.Searcher`, the other leg's weight at 0)
  differ from the leg's own ranking (the direct rows) for {differ(keyword, keyword_leg)} resp.
  {differ(vector, vector_leg)} of {len(queries)} queries{zero_note}
- The keyword leg matches fewer than {RESULTS} chunks for {short(RESULTS)} queries, fewer than 10
  for {short(10)}: many test queries are one or two words (e.g. "avocados") and FTS5 here does
  not stem.{pad_note}
- The published rows are not the same system. memwal ranks chunks of at most 1,500 characters
  with FTS5's BM25 (unicode61 tokens OR-ed, no stemming, no stop words; the title also indexed
  as every chunk's heading path), where Anserini ranks whole documents with Lucene (Porter
  stemming, stop words); its vectors are int8 minilm over each chunk, where MTEB embeds each
  whole document with fp32 all-MiniLM-L6-v2 (also cut at 256 tokens).
"""
    print(summary)
    if writes_doc(args):
        cmd = command("retrieval_quality.py", *(sys.argv[1:] if argv is None else argv))
        src = Path(memwal.__file__).resolve().parents[1]
        if src != REPO / "src":
            cmd = f"PYTHONPATH={src} {cmd}"
        name = f"retrieval-quality-{args.label}" if args.label else "retrieval-quality"
        title = "Retrieval quality: NFCorpus (BEIR)" + (f", {args.label}" if args.label else "")
        update_section(name, title, header(where, cmd, load_before) + summary, args.doc)
        print(f"updated the '{name}' section of {shown(args.doc)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
