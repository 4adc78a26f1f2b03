"""Model fingerprints: an identity for the vectors a model produces, not just for its name.

A fingerprint digests everything that changes the vectors: provider, model id, dimension, dtype,
normalisation, pooling and truncation, and the weights (or, for models without weights, the
algorithm version). Two models of the same dimension never share one; one model on two machines
always does.

The weights' digest is cached on disk outside the home, in the user's cache folder (platformdirs'
`user_cache_dir("memwal")`: `$XDG_CACHE_HOME/memwal/`, by default `~/.cache/memwal/`, on Linux;
`~/Library/Caches/memwal/` on macOS), as `weights-digests.json`: one JSON map of
`"<weights path>|<size>|<mtime ns>"` to the file's sha256. It is outside the home because the
weights belong to the installation, not to a home: every home of the user shares them, and an
embedder is made without one. A changed file (a reinstalled or upgraded model) has another key,
and its older entries are dropped when the new digest is written. Safe to delete at any time:
the next process hashes the weights again. docs/operations.md says the same.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelSpec:
    """Everything about a model that determines its vectors."""

    provider: str
    model_id: str
    dim: int
    dtype: str
    normalize: bool
    pooling: str
    max_tokens: int
    weights_digest: str


@dataclass(frozen=True)
class ModelInfo:
    """What the index records about a model: the name users type, its dimension, its fingerprint."""

    name: str
    dim: int
    fingerprint: str

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "dim": self.dim, "fingerprint": self.fingerprint}


def fingerprint_of(spec: ModelSpec, name: str) -> str:
    """`<name>/<24 hex digits of the spec's digest>`.

    The name prefix (what users type: `minilm`, `hash-384-b`) lets the committer name the model
    when it adopts one from the first upsert; the digest is what makes two models differ.
    """
    canonical = json.dumps(asdict(spec), sort_keys=True, separators=(",", ":"))
    return f"{name}/{hashlib.sha256(canonical.encode()).hexdigest()[:24]}"


def name_of(fingerprint: str) -> str:
    """The model name a fingerprint carries: all before its last `/` (a remote model's name may
    hold `/` itself: `openai:BAAI/bge-m3/<digest>`)."""
    return fingerprint.rsplit("/", 1)[0]


def file_digest(path: Path) -> str:
    """sha256 of a weights file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_digest(path: Path) -> str:
    """`file_digest` of a weights file, cached by (path, size, mtime) in this process and on disk.

    Hashing the default model's 23 MB costs about 40 ms, paid by every cold `mm search`; the
    on-disk cache (`weights-digests.json` in the user's cache folder, see the module's docstring)
    is a plain JSON map and is only ever a shortcut: unreadable or missing, the digest is
    computed again.
    """
    st = os.stat(path)
    return _cached_digest(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _cached_digest(path: str, size: int, mtime_ns: int) -> str:
    key = f"{path}|{size}|{mtime_ns}"
    cache_file = _digest_cache_file()
    known = _read_digest_cache(cache_file)
    if isinstance(known.get(key), str) and len(known[key]) == 64:
        return known[key]
    digest = file_digest(Path(path))
    known = {k: v for k, v in known.items() if not k.startswith(path + "|")}
    known[key] = digest
    _write_digest_cache(cache_file, known)
    return digest


def _digest_cache_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("memwal")) / "weights-digests.json"


def _read_digest_cache(cache_file: Path) -> dict[str, str]:
    from memwal.safeio import read_regular

    try:
        data = json.loads(read_regular(cache_file, max_bytes=1 << 20))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_digest_cache(cache_file: Path, known: dict[str, str]) -> None:
    from memwal.safeio import write_atomically

    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(cache_file, json.dumps(known, sort_keys=True).encode())
    except OSError:
        pass  # a read-only or full cache folder only costs the next process the hashing
