"""Hybrid search over committed data: BM25 (FTS5) and KNN (sqlite-vec), fused by reciprocal rank.

Reads only; a WAL reader never blocks the committer and is never blocked by it.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from memwal import store
from memwal.config import MAX_TOP_K, Settings
from memwal.errors import MemwalError, UsageError, is_damage
from memwal.embedders import Embedder, configured_embedder
from memwal.embedders.indexed import embedder_of
from memwal.keywordindex import KeywordIndex
from memwal.store import reads
from memwal.vectors import to_bytes

_TOKEN = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Hit:
    """One search result: where the chunk is, its text, its fused score and rank (from 1)."""

    rank: int
    score: float
    namespace: str
    source_file: str
    start_line: int
    end_line: int
    heading_path: list[str]
    content: str
    chunk_id: int

    def as_json(self) -> dict[str, object]:
        """The hit as `mm search --json`, the web's `/api/search` and `mem_search` return it."""
        return asdict(self)


@dataclass
class SearchResult:
    """The hits, best first, and warnings (an empty index, a keyword-only search and why).

    `as_json()` is the hits (each `Hit.as_json()`): what `mm search --json` prints."""

    hits: list[Hit] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> list[dict[str, object]]:
        """The hits, best first: the `mm search --json` document (warnings go to stderr)."""
        return [hit.as_json() for hit in self.hits]


def _query_tokens(text: str) -> list[str]:
    return list(dict.fromkeys(_TOKEN.findall(text)))


def fts_query(text: str) -> str | None:
    """User text as an FTS5 query of quoted tokens (OR): never raw FTS5 syntax."""
    tokens = _query_tokens(text)
    if not tokens:
        return None
    return " OR ".join('"' + token.replace('"', '""') + '"' for token in tokens)


def bm25_ranking(conn: store.Connection, query: str, depth: int, namespace: str | None = None,
                 source_glob: str | None = None,
                 keywords: KeywordIndex | None = None) -> list[int]:
    """Chunk ids by BM25, best first (ties by id); from `keywords` when it can answer."""
    match = fts_query(query)
    if match is None:
        return []
    if keywords is not None and not namespace and not source_glob:
        terms = KeywordIndex.terms_of(_query_tokens(query))
        ranked = None if terms is None else keywords.ranking(conn, terms, match, depth)
        if ranked is not None:
            return ranked
    return reads.bm25_ranking(conn, match, depth, namespace, source_glob)


vector_ranking = reads.vector_ranking
VEC0_MAX_K = reads.VEC0_MAX_K


# Candidates each leg contributes: a constant, so the first results never depend on top_k. A
# request that needs more (a large top_k, or a tight per-document cap) extends the list with a
# second, deeper tier, appended after the first: results are a prefix of one fixed sequence.
TIER_DEPTHS = (100, VEC0_MAX_K)


def _ranked(legs: Sequence[tuple[Callable[[int], list[int]], float]], rrf_k: int, top_k: int,
            max_per_doc: int, rows_of: Callable[[list[int]], dict[int, Any]]) -> list[tuple[Any, float]]:
    """The top_k (row, score) by fused rank, at most `max_per_doc` per file (0: no cap)."""
    chosen: list[tuple[Any, float]] = []
    seen: set[int] = set()
    per_doc: dict[tuple[str, str], int] = {}
    for depth in TIER_DEPTHS:
        fused = [(cid, score) for cid, score in fuse([(leg(depth), w) for leg, w in legs], rrf_k)
                 if cid not in seen]
        rows = rows_of([cid for cid, _ in fused])
        for chunk_id, score in fused:
            seen.add(chunk_id)
            row = rows.get(chunk_id)
            if row is None:
                continue
            doc = (row.namespace, row.source_file)
            if max_per_doc and per_doc.get(doc, 0) >= max_per_doc:
                continue
            per_doc[doc] = per_doc.get(doc, 0) + 1
            chosen.append((row, score))
            if len(chosen) == top_k:
                return chosen
    return chosen


def fuse(rankings: Sequence[tuple[Sequence[int], float]], rrf_k: int) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: score = Σ weight / (rrf_k + rank), rank from 1."""
    scores: dict[int, float] = {}
    for ranking, weight in rankings:
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (rrf_k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


class _VectorLeg:
    """The vector leg: the derived index for what it covers, an exact scan of the rest.

    Without a usable derived index (none yet, another model's, damaged), or with a namespace or
    source filter, it is sqlite-vec's exact search, as before.
    """

    def __init__(self, settings: Settings, verify: bool) -> None:
        self.settings, self.verify = settings, verify
        self._derived: Any = None
        self._derived_key: tuple[Any, ...] | None = None
        self._tail: dict[int, Any] = {}
        self._tail_key: tuple[str, int] | None = None  # (fingerprint, stamp) the tail belongs to
        self._tail_seq = -1
        self._tail_ids: Any = None
        self._tail_matrix: Any = None

    def ranking(self, conn: store.Connection, active: Any, vector: bytes, depth: int,
                namespace: str | None, source_glob: str | None) -> list[int]:
        derived = None if namespace or source_glob else self._open(active)
        if derived is None:
            return vector_ranking(conn, vector, depth, namespace, source_glob)
        import numpy as np

        query = np.frombuffer(vector, dtype="<f4")
        ids, dists = derived.search(query, depth + 32)
        tail_ids, tail = self._tail_of(conn, active, derived.stamp.seq)
        if len(tail_ids):
            # A chunk written after the stamp is judged by its current vector only.
            fresh = ~np.isin(ids, tail_ids)
            norms = np.linalg.norm(tail, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
            exact = 1.0 - (tail @ query) / np.maximum(norms, 1e-12)
            nearest = np.argpartition(exact, min(depth, len(exact) - 1))[:depth]
            ids = np.concatenate([ids[fresh], tail_ids[nearest]])
            dists = np.concatenate([dists[fresh], exact[nearest]])
        distance = dict(zip(ids.tolist(), dists.tolist()))
        live = reads.live_among(conn, list(distance), active.fingerprint)
        return [cid for cid, _ in sorted(((c, d) for c, d in distance.items() if c in live),
                                         key=lambda pair: (pair[1], pair[0]))][:depth]

    def _open(self, active: Any) -> Any:
        from memwal.vectorindex import folder
        from memwal.vectorindex.reads import open_view

        pointer = folder(self.settings) / "current.json"
        try:
            st = os.stat(pointer)
            key: tuple[Any, ...] = (active.fingerprint, st.st_ino, st.st_mtime_ns)
        except OSError:
            key = (active.fingerprint, None)
        if key != self._derived_key:
            self._derived_key = key
            self._derived = open_view(self.settings, active, self.verify) \
                if key[1] is not None else None
        return self._derived

    def _tail_of(self, conn: store.Connection, active: Any, stamp: int) -> tuple[Any, Any]:
        """Ids and vectors committed after `stamp` (kept, and refreshed by what is newer)."""
        import numpy as np

        if self._tail_key != (active.fingerprint, stamp):
            self._tail, self._tail_key, self._tail_seq = {}, (active.fingerprint, stamp), stamp
            self._tail_ids = None
        now = reads.commit_seq(conn)
        if now != self._tail_seq or self._tail_ids is None:
            fresh = reads.ids_with_vectors(conn, active.fingerprint, after_seq=self._tail_seq)
            if fresh:
                ids, matrix = reads.vectors_of(conn, fresh, active.dim)
                self._tail.update(zip(ids.tolist(), matrix))
            # Chunks deleted or emptied since are dropped from the tail (and by `live_among`).
            keep = set(reads.ids_with_vectors(conn, active.fingerprint, after_seq=stamp))
            self._tail = {k: v for k, v in self._tail.items() if k in keep}
            self._tail_seq = now
            self._tail_ids = np.fromiter(self._tail, dtype=np.int64, count=len(self._tail))
            self._tail_matrix = (np.stack(list(self._tail.values())) if self._tail
                                 else np.empty((0, active.dim), dtype=np.float32))
        return self._tail_ids, self._tail_matrix


class Searcher:
    """Searches one home for a long-lived process: one read connection and one embedder, reused.

    Each search reads one consistent snapshot (a read transaction on the kept connection: WAL
    shows every commit made before it starts). The connection is reopened when the index file
    is replaced (a rebuild after damage) or first appears. Safe to share between threads: one
    search at a time runs on the connection. With `keep_postings` (the default) the keyword leg
    keeps the postings of the words it was asked for (memwal.keywordindex): the same ranking as
    FTS5's, without scoring every matching row again on each search.
    """

    def __init__(self, settings: Settings, embedder: Embedder | None = None,
                 verify_derived: bool = False, keep_postings: bool = True) -> None:
        self.settings = settings
        self.embedder = embedder
        self._conn: store.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._vectors = _VectorLeg(settings, verify_derived)
        self._keep_postings = keep_postings
        self._keywords: KeywordIndex | None = None

    def _connection(self) -> store.Connection | None:
        path = self.settings.index_path
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self.close()
            return None
        if self._conn is None or self._identity != (st.st_dev, st.st_ino):
            self.close()
            self._conn = store.open_for_read(path)
            self._identity = (st.st_dev, st.st_ino) if self._conn is not None else None
            self._keywords = KeywordIndex() if self._keep_postings else None
            # What the vector leg kept (the tail) belongs to the file it was read from.
            self._vectors = _VectorLeg(self.settings, self._vectors.verify)
        return self._conn

    def search(self, query: str, *, namespace: str | None = None, source_glob: str | None = None,
               top_k: int | None = None, max_per_doc: int | None = None,
               forward: bool = True) -> SearchResult:
        """What `search` returns, from the kept connection. Without `forward`, a home with no
        index never asks `search.url` (a server answering another home: no loops)."""
        settings = self.settings
        max_per_doc = settings["search.max_per_doc"] if max_per_doc is None else max_per_doc
        if isinstance(max_per_doc, bool) or not isinstance(max_per_doc, int) or \
                not 0 <= max_per_doc <= MAX_TOP_K:
            raise UsageError(f"max_per_doc must be a whole number from 0 (no cap) to {MAX_TOP_K}, "
                             f"not {max_per_doc!r}.")
        top_k = settings["search.top_k"] if top_k is None else top_k
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise UsageError(f"top_k must be a whole number from 1 to {MAX_TOP_K}, not {top_k!r}.")
        if not isinstance(query, str):
            raise UsageError(f"the query must be text, not {type(query).__name__}.")
        with self._lock:
            conn = self._connection()
            if conn is None:
                return self._without_index(query, namespace, source_glob, top_k, max_per_doc,
                                           forward)
            try:
                conn.execute("BEGIN")  # one read snapshot: a commit landing meanwhile is not seen
                try:
                    return self._hybrid(conn, query, namespace, source_glob, top_k, max_per_doc)
                finally:
                    conn.execute("ROLLBACK")
            except store.DatabaseError as exc:
                self.close()  # the next search opens afresh
                if is_damage(exc):
                    raise store.damaged(settings.index_path, exc) from None
                raise

    def _without_index(self, query: str, namespace: str | None, source_glob: str | None,
                       top_k: int, max_per_doc: int, forward: bool) -> SearchResult:
        """No index file here: the committer's index through `search.url`, when this home's
        queue is shared and its index is on another machine; else an empty index."""
        from memwal import remote

        settings = self.settings
        if settings["search.url"] and forward and settings["queue.backend"] == "redis":
            answer = remote.search(settings["search.url"], query, namespace=namespace,
                                   source_glob=source_glob, top_k=top_k, max_per_doc=max_per_doc)
            fields = set(Hit.__dataclass_fields__)
            return SearchResult(
                hits=[Hit(**{k: v for k, v in hit.items() if k in fields}) for hit in answer["hits"]],
                warnings=[str(w) for w in answer.get("warnings", [])])
        place = remote.elsewhere(settings)
        if place is not None:
            raise remote.no_index_here(settings, place)
        return SearchResult(warnings=[_empty_index_warning(settings)])

    def _hybrid(self, conn: store.Connection, query: str, namespace: str | None,
                source_glob: str | None, top_k: int, max_per_doc: int) -> SearchResult:
        settings, result = self.settings, SearchResult()
        legs: list[tuple[Callable[[int], list[int]], float]] = []
        if settings["search.bm25_weight"] > 0:
            legs.append((lambda depth: bm25_ranking(conn, query, depth, namespace, source_glob,
                                                    self._keywords),
                         settings["search.bm25_weight"]))
        vector = self._query_vector(conn, query, result) if settings["search.vector_weight"] > 0 \
            else None
        if vector is not None:
            active = store.active_model(conn)
            assert active is not None
            legs.append((lambda depth: self._vectors.ranking(conn, active, vector, depth, namespace,
                                                             source_glob),
                         settings["search.vector_weight"]))
        if not legs:
            result.warnings.append("both legs have weight 0 (search.bm25_weight and "
                                   "search.vector_weight): nothing can match")
            return result
        chosen = _ranked(legs, settings["search.rrf_k"], top_k, max_per_doc,
                         lambda ids: reads.chunk_rows(conn, ids))
        for rank, (row, score) in enumerate(chosen, start=1):
            result.hits.append(Hit(rank, round(score, 6), row.namespace, row.source_file,
                                   row.start_line, row.end_line, json.loads(row.heading_path),
                                   row.content, row.id))
        return result

    def _query_vector(self, conn: store.Connection, query: str, result: SearchResult) -> bytes | None:
        """The query's vector, if the vector leg can run (else why not, in the warnings)."""
        active = store.active_model(conn)
        embedder = self.embedder or configured_embedder(self.settings)
        if active is None or fts_query(query) is None:
            return None
        configured = embedder
        try:
            _ = configured.fingerprint  # a remote model's first use probes its server
        except MemwalError:
            if configured.name == active.name:
                raise  # the index's own model does not answer: say so, as any embedding does
        if not _same_model(embedder, active):
            # The configured model is not the index's (during a migration to it, or a server
            # started before a cutover): queries are embedded with the active model, reached as
            # the index recorded it, so the vector leg never stops because of a model swap.
            embedder = embedder_of(self.settings, active, store.endpoint_of(conn, active.fingerprint),
                                   configured=embedder) or embedder
            migration = store.migration(conn)
            moving_to_it = migration is not None and _same_model(configured, migration.target)
            if _same_model(embedder, active) and not moving_to_it:
                result.warnings.append(
                    f"the configured model {_described(configured)} is not the index's model "
                    f"{active.name} ({active.fingerprint}): the query was embedded with "
                    f"{active.name}. Configure {active.name} again, or move the index to the "
                    "configured model with `mm embedding-reset --mode migrate`.")
        if not _same_model(embedder, active):
            result.warnings.append(
                f"keyword results only: the configured model {_described(configured)} "
                f"is not the index's model {active.name} ({active.fingerprint}), which this "
                f"process cannot build. Configure {active.name} (MM_EMBEDDING_MODEL="
                f"{active.name}) or move the index with `mm embedding-reset --mode migrate`.")
            return None
        return to_bytes(embedder.embed([query])[0])

    def keep_postings(self) -> None:
        """Keep the postings of the words asked for from now on: a Searcher made for one search
        that is searched again (they pay off from the second search)."""
        with self._lock:
            if not self._keep_postings:
                self._keep_postings = True
                self._keywords = KeywordIndex() if self._conn is not None else None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn, self._identity, self._keywords = None, None, None


def _described(embedder: Embedder) -> str:
    try:
        return f"{embedder.name} ({embedder.fingerprint})"
    except MemwalError as exc:
        return f"{embedder.name} (not answering: {exc.message})"


def _same_model(embedder: Embedder, active: Any) -> bool:
    try:
        return bool(embedder.fingerprint == active.fingerprint)
    except MemwalError:
        return False  # a remote model that does not answer: the active one may still


def _empty_index_warning(settings: Settings) -> str:
    """Why there is nothing to search: nothing indexed, or queued work not committed yet (and
    whether anything will commit it)."""
    from memwal.lock import committer_alive
    from memwal.status import queue_counts

    counts = queue_counts(settings)
    queued = counts.pending + counts.inflight
    if not queued:
        return "the index is empty: run `mm index PATH` first"
    if committer_alive(settings.lock_path)[0]:
        return f"nothing is committed yet: the committer is committing the {queued} queued batches"
    return (f"nothing is committed yet: {queued} batches are queued but no committer is running. "
            "Start one with `mm queue worker`")


class KeptSearchers:
    """The Searchers `search` and `search_async` keep, one per home and configuration, for the
    life of the process (as it keeps one embedder per model): a script or an async app that
    searches in a loop gets a warm Searcher's latency (its connection, derived vector index,
    kept postings and embedder) from the second call. A replaced index file is reopened by the
    Searcher itself; at most LIMIT are kept, the least recently used closed first."""

    LIMIT = 8

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, Searcher] = OrderedDict()

    def get(self, settings: Settings) -> Searcher:
        key = json.dumps([str(settings.home), dict(settings.values)], sort_keys=True, default=str)
        with self._lock:
            kept = self._kept.pop(key, None)
            # A process may search once (`mm search`): FTS5 ranks that one search.
            searcher = kept or Searcher(settings, keep_postings=False)
            self._kept[key] = searcher
            while len(self._kept) > self.LIMIT:
                self._kept.popitem(last=False)[1].close()
        if kept is not None:
            searcher.keep_postings()
        return searcher


KEPT = KeptSearchers()


def search(settings: Settings, query: str, *, namespace: str | None = None,
           source_glob: str | None = None, top_k: int | None = None,
           max_per_doc: int | None = None, embedder: Embedder | None = None) -> SearchResult:
    """Hybrid search over committed chunks: BM25 and vector KNN, fused by reciprocal rank.

    Reads one consistent snapshot of the index; never blocks the committer. `namespace` and
    `source_glob` (a glob, or a substring of the source path) filter both legs; `top_k` defaults
    to `search.top_k` (1 to 1000; UsageError otherwise); at most `max_per_doc` hits come from one
    file (default `search.max_per_doc`; 0: no cap). The first k results are the same whatever
    top_k >= k is asked for. A leg whose weight is 0 is not run. The vector leg embeds the query
    with the index's active model: the configured one, or, when that is another (a migration to
    it in progress, a process started before a cutover), the active model as the index recorded
    it, with a warning outside a migration; only if this process cannot build the active model
    is the result keyword-only, saying why in `warnings`. An empty index gives no hits and a warning. On a home whose index is on
    another machine (a shared queue's producer), the search is asked of the `mm serve` that
    `search.url` names (SearchUnavailable if it does not answer), or NoIndexHere (exit 2) says
    how to configure it. The embedder is the process's one embedder for the configured model,
    built on first use (`embedder` overrides it for this call alone). The process keeps one
    `Searcher` per home and configuration (`KeptSearchers`): from the second call on, a search
    costs what a warm Searcher's does.

    Raises SchemaTooNew, IndexUnavailable or NoIndexHere (exit 2) when the index cannot be read, DamagedFile
    (exit 1) when it is damaged.
    """
    options: dict[str, Any] = {"namespace": namespace, "source_glob": source_glob,
                               "top_k": top_k, "max_per_doc": max_per_doc}
    if embedder is not None:  # another model than the configured one: not the kept Searcher's
        searcher = Searcher(settings, embedder, keep_postings=False)
        try:
            return searcher.search(query, **options)
        finally:
            searcher.close()
    return KEPT.get(settings).search(query, **options)


async def search_async(settings: Settings, query: str, **options: Any) -> SearchResult:
    """`search` for an event loop: the work runs in a worker thread, the loop stays free.

    Same options, result and errors as `search`.
    """
    import asyncio

    return await asyncio.to_thread(search, settings, query, **options)
