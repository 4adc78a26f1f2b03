"""Hybrid search over committed data: BM25 (FTS5) and KNN (sqlite-vec), fused by reciprocal rank.

Reads only; a WAL reader never blocks the committer and is never blocked by it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Sequence

from memwal import store
from memwal.config import Settings
from memwal.embedders import Embedder, configured_embedder
from memwal.vectors import to_bytes

_TOKEN = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    namespace: str
    source_file: str
    start_line: int
    end_line: int
    heading_path: list[str]
    content: str
    chunk_id: int


@dataclass
class SearchResult:
    hits: list[Hit] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> list[dict[str, object]]:
        return [asdict(hit) for hit in self.hits]


def fts_query(text: str) -> str | None:
    """User text as an FTS5 query of quoted tokens (OR): never raw FTS5 syntax."""
    tokens = _TOKEN.findall(text)
    if not tokens:
        return None
    return " OR ".join('"' + token.replace('"', '""') + '"' for token in dict.fromkeys(tokens))


def _filters(namespace: str | None, source_glob: str | None) -> tuple[str, list[object]]:
    clauses, params = [], []
    if namespace:
        clauses.append("c.namespace = ?")
        params.append(namespace)
    if source_glob:
        clauses.append("c.source_file GLOB ?")
        params.append(source_glob if any(ch in source_glob for ch in "*?[") else f"*{source_glob}*")
    return ("".join(f" AND {c}" for c in clauses), params)


def bm25_ranking(conn: store.Connection, query: str, depth: int, namespace: str | None = None,
                 source_glob: str | None = None) -> list[int]:
    """Chunk ids by BM25, best first."""
    match = fts_query(query)
    if match is None:
        return []
    where, params = _filters(namespace, source_glob)
    rows = conn.execute(
        "SELECT c.id FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid "
        f"WHERE chunks_fts MATCH ?{where} ORDER BY bm25(chunks_fts) LIMIT ?",
        (match, *params, depth)).fetchall()
    return [r[0] for r in rows]


VEC0_MAX_K = 4096  # sqlite-vec 0.1.9 refuses a larger k


def vector_ranking(conn: store.Connection, vector: bytes, depth: int, namespace: str | None = None,
                   source_glob: str | None = None) -> list[int]:
    """Chunk ids by cosine distance, best first (vec0 is brute force in 0.1.9)."""
    if not store.has_vector_table(conn):
        return []
    where, params = _filters(namespace, source_glob)
    if where:
        # A filter after a global KNN can miss every match; score the filtered rows instead.
        rows = conn.execute(
            f"SELECT c.id FROM chunks c JOIN {store.VECTOR_TABLE} v ON v.chunk_id = c.id "
            f"WHERE c.fingerprint IS NOT NULL{where} "
            "ORDER BY vec_distance_cosine(v.embedding, ?) LIMIT ?",
            (*params, vector, depth)).fetchall()
        return [r[0] for r in rows]
    rows = conn.execute(
        f"SELECT chunk_id FROM {store.VECTOR_TABLE} WHERE embedding MATCH ? AND k = ? "
        "ORDER BY distance", (vector, min(depth, VEC0_MAX_K))).fetchall()
    return [r[0] for r in rows]


def fuse(rankings: Sequence[tuple[Sequence[int], float]], rrf_k: int) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: score = Σ weight / (rrf_k + rank), rank from 1."""
    scores: dict[int, float] = {}
    for ranking, weight in rankings:
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (rrf_k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def search(settings: Settings, query: str, *, namespace: str | None = None,
           source_glob: str | None = None, top_k: int | None = None,
           embedder: Embedder | None = None) -> SearchResult:
    """The hybrid search `mm search` runs."""
    result = SearchResult()
    top_k = top_k or settings["search.top_k"]
    conn = store.open_for_read(settings.index_path)
    if conn is None:
        result.warnings.append("the index is empty: run `mm index PATH` first")
        return result
    try:
        # One read transaction: a commit landing mid-search cannot change what we see.
        conn.execute("BEGIN")
        depth = max(50, top_k * 5)
        rankings: list[tuple[Sequence[int], float]] = [
            (bm25_ranking(conn, query, depth, namespace, source_glob), settings["search.bm25_weight"])]
        active = store.active_model(conn)
        embedder = embedder or configured_embedder(settings)
        if active is None:
            pass
        elif active.fingerprint != embedder.fingerprint:
            result.warnings.append(
                f"keyword results only: the configured model {embedder.name} "
                f"({embedder.fingerprint}) is not the index's model {active.name} "
                f"({active.fingerprint}). Configure {active.name} (MM_EMBEDDING_MODEL="
                f"{active.name}) or run `mm embedding-reset --mode apply-current` and `mm index`.")
        elif fts_query(query) is not None:
            vector = to_bytes(embedder.embed([query])[0])
            rankings.append((vector_ranking(conn, vector, depth, namespace, source_glob),
                             settings["search.vector_weight"]))
        fused = fuse(rankings, settings["search.rrf_k"])[:top_k]
        if not fused:
            return result
        ids = [chunk_id for chunk_id, _ in fused]
        rows = {r[0]: r for r in conn.execute(
            "SELECT id, namespace, source_file, start_line, end_line, heading_path, content "
            f"FROM chunks WHERE id IN ({','.join('?' * len(ids))})", ids)}
        for rank, (chunk_id, score) in enumerate(fused, start=1):
            _, ns, source, start, end, heading, content = rows[chunk_id]
            result.hits.append(Hit(rank, round(score, 6), ns, source, start, end,
                                   json.loads(heading), content, chunk_id))
        return result
    finally:
        conn.close()
