"""`mm index` end to end: a first index against the model's own embedding time, and a re-index.

Both run the real `mm` in a subprocess on a generated corpus in a fresh home, as a user would.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

from memwal.chunking import chunk_text
from memwal.config import load_settings
from memwal.embedders import get_embedder

from benchlib import MM, PYTHON, make_home, median, run_timed

# Plain English words, so the WordPiece tokenizer sees text like real notes (made-up words would
# split into many more tokens per character and overstate the model's share).
WORDS = """
the of and to in is that for it as was with be by on not he this are or his from at which but
have an they you were her she there been one all we their has would when if so no what out up
said about into than them can only other time new some could these two may first then do any
like my now over such our man me even most made after also did many before must through back
years where much your way well down should because each just those people how too little state
good very make world still own see men work long get here between both life being under never
day same another know while last might us great old year off come since against go came right
used take three states himself few house use during without again place around however home
small found thought went say part once general high upon school every don does got united left
number course war until always away something fact though water less public put think almost
hand enough far took head yet government system better set told nothing night end why called
didn eyes find going look asked later knew point next program city business give group toward
young days let room president side social given present several order national possible rather
second face per among form important often things looked early white case john become large big
need four within felt along children saw best church ever least power development light seemed
family interest want members others mind country area done turned although open god service
certain kind problem began different door thus help sense means whole matter perhaps itself
york times law human line above name example action company hands local show whether five
history gave today either act feet across taken past quite anything seen having death week
experience body word half really field am car words already themselves information tell
together college shall money period held keep sure probably free seems real behind cannot miss
political air question making office brought whose special heard major problems ago became
federal moment study available known result street economic boy position reason change south
board individual job areas society west close turn love community true court force full
""".split()


@dataclass
class Corpus:
    files: int
    chunks: int
    chars: int
    path: Path


def _paragraph(rng: random.Random, sentences: int) -> str:
    out = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 20))]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def write_markdown_corpus(root: Path, files: int, sections: int = 6, seed: int = 3) -> Path:
    """`files` notes of about `sections` sections (2-3 paragraphs, ~400-1,100 chars) each."""
    rng = random.Random(seed)
    for n in range(files):
        folder = root / f"topic-{n // 50:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        if n % 3 == 0:
            lines += ["---", f"tags: [{rng.choice(WORDS)}, {rng.choice(WORDS)}]", "---", ""]
        lines += [f"# Note {n}: {' '.join(rng.choice(WORDS) for _ in range(3))}", ""]
        for s in range(rng.randint(sections - 1, sections + 1)):
            lines += [f"## {' '.join(rng.choice(WORDS) for _ in range(3)).capitalize()}", ""]
            for _ in range(rng.randint(2, 3)):
                lines += [_paragraph(rng, rng.randint(2, 4)), ""]
        (folder / f"note-{n:04d}.md").write_text("\n".join(lines))
    return root


def corpus_texts(root: Path) -> list[str]:
    """The chunk texts `mm index` embeds for this corpus (default chunking settings)."""
    texts: list[str] = []
    for path in sorted(root.rglob("*.md")):
        texts += [c.content for c in chunk_text(path.read_text(), markdown=True)]
    return texts


# -- figure 3 ------------------------------------------------------------------------------


@dataclass
class EndToEnd:
    files: int
    chunks: int
    chars: int
    index_s: list[float]  # wall time of each `mm index` subprocess
    embed_s: list[float]  # each model-alone run: load the model + embed, in one call
    report: dict[str, object]
    argv: list[str]
    embed_argv: list[str]

    @property
    def ratio(self) -> float:
        return sum(self.index_s) / sum(self.embed_s)


def embed_alone(corpus: Path) -> tuple[int, float]:
    """Chunks of `corpus` and the seconds of one cold `get_embedder("minilm").embed(texts)`."""
    texts = corpus_texts(corpus)
    embedder = get_embedder("minilm")
    started = time.perf_counter()
    embedder.embed(texts)
    return len(texts), time.perf_counter() - started


def end_to_end(workdir: Path, files: int, rounds: int = 2) -> EndToEnd:
    """Alternate `mm index CORPUS` (default model, fresh home) and the model alone, `rounds` times.

    Both run in fresh subprocesses, in alternating order, so a busy neighbour on a shared
    machine weighs on both sides alike.
    """
    corpus = write_markdown_corpus(workdir / "e2e-corpus", files)
    texts = corpus_texts(corpus)
    embed_argv = [str(PYTHON), str(Path(__file__).resolve()), "embed", str(corpus)]
    index_s: list[float] = []
    embed_s: list[float] = []
    report: dict[str, object] = {}
    argv: list[str] = []
    for n in range(rounds):
        home = make_home(workdir / f"e2e-home-{n}", model=None)  # no config: the default model
        assert load_settings(home, environ={}).model == "minilm"
        argv = [str(MM), "index", str(corpus), "--home", str(home), "--json"]
        for step in (("index", "embed") if n % 2 else ("embed", "index")):
            if step == "embed":
                print(f"  round {n + 1}: the model alone on {len(texts)} chunks ...", flush=True)
                _, done = run_timed(embed_argv)
                chunks, seconds = json.loads(done.stdout)
                assert chunks == len(texts)
                embed_s.append(seconds)
            else:
                print(f"  round {n + 1}: {' '.join(argv)}", flush=True)
                seconds, done = run_timed(argv)
                index_s.append(seconds)
                report = json.loads(done.stdout)
                if (report.get("committed") != report.get("records_enqueued")
                        or report.get("dead_lettered")):
                    raise RuntimeError(f"mm index did not commit everything: {report}")
                if report.get("chunks_embedded") != len(texts):
                    raise RuntimeError(f"mm index embedded {report.get('chunks_embedded')} "
                                       f"chunks, the benchmark chunked {len(texts)}")
    return EndToEnd(files, len(texts), sum(map(len, texts)), index_s, embed_s, report, argv,
                    embed_argv)


# -- figure 4 ------------------------------------------------------------------------------


@dataclass
class Reindex:
    files: int
    first_s: float
    second_s: float
    import_s: float
    report: dict[str, object]
    argv: list[str]
    import_argv: list[str]


def write_small_files(root: Path, files: int, seed: int = 5) -> Path:
    """`files` small notes (~200-600 bytes, one or two chunks) in folders of 100."""
    rng = random.Random(seed)
    for n in range(files):
        folder = root / f"f{n // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        body = f"# Small note {n}\n\n{_paragraph(rng, rng.randint(2, 6))}\n"
        (folder / f"n{n:05d}.md").write_text(body)
    return root


def reindex(workdir: Path, files: int) -> Reindex:
    """Index `files` small files with hash-384, then time a second, unchanged `mm index`."""
    corpus = write_small_files(workdir / "reindex-corpus", files)
    home = make_home(workdir / "reindex-home")  # config.json: hash-384
    argv = [str(MM), "index", str(corpus), "--home", str(home), "--json"]
    print(f"  first {' '.join(argv)}  ({files} files)", flush=True)
    first_s, _ = run_timed(argv)
    print("  second (unchanged) run ...", flush=True)
    second_s, done = run_timed(argv)
    report = json.loads(done.stdout)
    if report.get("unchanged") != files or report.get("records_enqueued"):
        raise RuntimeError(f"the second run was not a no-op: {report}")
    import_argv = [str(PYTHON), "-c", "import memwal.cli.app"]
    import_s = median([run_timed(import_argv)[0] for _ in range(5)])
    return Reindex(files, first_s, second_s, import_s, report, argv, import_argv)


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "embed":
        print(json.dumps(embed_alone(Path(sys.argv[2]))))
    else:
        sys.exit(f"usage: {sys.argv[0]} embed CORPUS   (used by run.py: the model alone)")
