"""Every query that reads the index, for producers (the diff), search, status, doctor, dead letters.

All of them run on a read-only connection (`store.reading`), except FTS5's integrity check,
which SQLite spells as an INSERT (see `fts_integrity`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from memwal.store import Connection, DatabaseError, connect, has_vector_table
from memwal.store.schema import SHADOW_TABLE, VECTOR_TABLE

if TYPE_CHECKING:
    import numpy as np

# -- the ledger ----------------------------------------------------------------------------

LEDGER_TOTALS = ("batches", "received", "committed", "dead_lettered", "skipped")


def ledger_totals(conn: Connection | None) -> dict[str, int]:
    """Batches in the ledger and the item counts they add up to."""
    if conn is None:
        return dict.fromkeys(LEDGER_TOTALS, 0)
    row = conn.execute("SELECT count(*), coalesce(sum(received),0), coalesce(sum(committed),0), "
                       "coalesce(sum(dead_lettered),0), coalesce(sum(skipped),0) FROM ledger").fetchone()
    return dict(zip(LEDGER_TOTALS, map(int, row)))


def last_commit_at(conn: Connection) -> float | None:
    return conn.execute("SELECT max(committed_at) FROM ledger").fetchone()[0]


def commits_since(conn: Connection, since: float) -> list[tuple[float, int]]:
    """(committed_at, records committed) of every batch committed after `since`, in time order."""
    return conn.execute("SELECT committed_at, committed FROM ledger WHERE committed_at > ? "
                        "ORDER BY committed_at", (since,)).fetchall()


def ledger_counts(conn: Connection, batch_ids: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """(committed, dead_lettered, skipped) of those batches that are in the ledger."""
    found: dict[str, tuple[int, int, int]] = {}
    ids = list(batch_ids)
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        for batch_id, committed, dead, skipped in conn.execute(
                "SELECT batch_id, committed, dead_lettered, skipped FROM ledger WHERE batch_id "
                f"IN ({','.join('?' * len(part))})", part):
            found[batch_id] = (committed, dead, skipped)
    return found


def index_id(conn: Connection) -> str | None:
    """The index's id (made by the schema's v4 step); what a shared queue is stamped with."""
    row = conn.execute("SELECT value FROM meta WHERE key='index_id'").fetchone()
    return row[0] if row else None


def queue_mark(conn: Connection | None) -> str | None:
    """The committer's mark of its queue (JSON: queue, epoch, seen, committed), if any."""
    if conn is None:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key='queue_mark'").fetchone()
    return row[0] if row else None


def last_ledger_position(conn: Connection) -> int:
    """The highest queue position the ledger records."""
    return int(conn.execute("SELECT coalesce(max(position), 0) FROM ledger").fetchone()[0])


def unbalanced_batches(conn: Connection, limit: int = 5) -> list[tuple[str, int, int, int, int]]:
    """Ledger rows where received != committed + dead-lettered + skipped."""
    return conn.execute("SELECT batch_id, received, committed, dead_lettered, skipped FROM ledger "
                        "WHERE received != committed + dead_lettered + skipped LIMIT ?",
                        (limit,)).fetchall()


# -- what the index holds ------------------------------------------------------------------


def vectors_by_fingerprint(conn: Connection) -> dict[str, int]:
    return {fp: n for fp, n in conn.execute(
        "SELECT fingerprint, count(*) FROM chunks WHERE fingerprint IS NOT NULL GROUP BY fingerprint")}


@dataclass(frozen=True)
class IndexCounts:
    chunks: int
    files: int
    namespaces: list[str]


# The distinct namespaces by a skip-scan of chunks_by_file: one index seek per namespace, where
# DISTINCT reads the whole index (0.1 ms instead of 110 ms for a million chunks).
_NAMESPACES = """
WITH RECURSIVE ns(n) AS (
    SELECT min(namespace) FROM chunks
    UNION ALL SELECT (SELECT min(namespace) FROM chunks WHERE namespace > n) FROM ns WHERE n IS NOT NULL)
SELECT n FROM ns WHERE n IS NOT NULL"""


def index_counts(conn: Connection) -> IndexCounts:
    return IndexCounts(
        chunks=conn.execute("SELECT count(*) FROM chunks").fetchone()[0],
        files=conn.execute("SELECT count(*) FROM files").fetchone()[0],
        namespaces=[r[0] for r in conn.execute(_NAMESPACES)])


def chunks_without_vector_of(conn: Connection, fingerprint: str | None) -> int:
    """Chunks whose vector is not of `fingerprint` (or that have none)."""
    return conn.execute("SELECT count(*) FROM chunks WHERE fingerprint IS NOT ?",
                        (fingerprint,)).fetchone()[0]


def stray_vectors(conn: Connection, fingerprint: str | None) -> int:
    """Stored vectors whose fingerprint is not `fingerprint`."""
    return conn.execute("SELECT count(*) FROM chunks WHERE fingerprint IS NOT NULL AND "
                        "fingerprint IS NOT ?", (fingerprint,)).fetchone()[0]


# -- the producer's diff -------------------------------------------------------------------


@dataclass(frozen=True)
class CommittedFile:
    """What is committed of one file: its last snapshot and how many of its chunks are current."""

    digest: str
    size: int
    mtime_ns: int
    chunk_count: int
    chunks_present: int
    chunks_current: int  # chunks whose vector is of the fingerprint asked about
    batch_id: str | None = None  # the batch that committed this snapshot (a producer's `base`)


def committed_file(conn: Connection, namespace: str, source_file: str,
                   fingerprint: str) -> CommittedFile | None:
    """What is committed of one file, by two indexed lookups (whatever the index's size)."""
    row = conn.execute("SELECT digest, size, mtime_ns, chunk_count, batch_id FROM files WHERE "
                       "namespace=? AND source_file=?", (namespace, source_file)).fetchone()
    if row is None:
        return None
    present, current = conn.execute(FILE_CHUNK_COUNTS, (fingerprint, namespace, source_file)).fetchone()
    return CommittedFile(row[0], row[1], row[2], row[3], present, current, row[4])


# INDEXED BY: left to itself, the planner picks the fingerprint index for these, and then every
# chunk of the model is scanned for every file (indexing N files cost N x the index).
FILE_CHUNK_COUNTS = ("SELECT count(*), coalesce(sum(fingerprint IS ?), 0) FROM chunks "
                     "INDEXED BY chunks_by_file WHERE namespace=? AND source_file=?")
CURRENT_KEYS = ("SELECT content_hash, start_line FROM chunks INDEXED BY chunks_by_file "
                "WHERE namespace=? AND source_file=? AND fingerprint IS ?")


def committed_sources_under(conn: Connection, namespace: str, root: str) -> list[str]:
    """Committed files that are `root` or lie under it, by a range scan of the files' key."""
    prefix = root.rstrip("/") + "/"
    # "0" sorts right after "/": [prefix, prefix with "/" raised to "0") is everything below.
    return [r[0] for r in conn.execute(
        "SELECT source_file FROM files WHERE namespace=? AND (source_file=? OR "
        "(source_file >= ? AND source_file < ?)) ORDER BY source_file",
        (namespace, root, prefix, prefix[:-1] + "0"))]


def current_keys(conn: Connection, namespace: str, source_file: str,
                 fingerprint: str) -> set[tuple[str, int]]:
    """Keys of a file's chunks that already have a vector of `fingerprint`."""
    return {(h, s) for h, s in conn.execute(CURRENT_KEYS, (namespace, source_file, fingerprint))}


# -- search --------------------------------------------------------------------------------


def _filters(namespace: str | None, source_glob: str | None) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if namespace:
        clauses.append("c.namespace = ?")
        params.append(namespace)
    if source_glob:
        clauses.append("c.source_file GLOB ?")
        params.append(source_glob if any(ch in source_glob for ch in "*?[") else f"*{source_glob}*")
    return ("".join(f" AND {c}" for c in clauses), params)


def bm25_ranking(conn: Connection, match: str, depth: int, namespace: str | None = None,
                 source_glob: str | None = None) -> list[int]:
    """Chunk ids matching an FTS5 query, by BM25, best first."""
    where, params = _filters(namespace, source_glob)
    if not where:
        # A query of common words matches most rows: joining each to `chunks` before the sort
        # costs ~40% of the leg. Every FTS row is a chunk's (doctor checks it): rank alone, and
        # let the caller fetch the few rows it returns.
        rows = conn.execute("SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? "
                            "ORDER BY bm25(chunks_fts), rowid LIMIT ?", (match, depth)).fetchall()
        return [r[0] for r in rows]
    rows = conn.execute(
        "SELECT c.id FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid "
        f"WHERE chunks_fts MATCH ?{where} ORDER BY bm25(chunks_fts), c.id LIMIT ?",
        (match, *params, depth)).fetchall()
    return [r[0] for r in rows]


def bm25_scores_from(conn: Connection, match: str, first_id: int) -> list[tuple[int, float]]:
    """(chunk id, FTS5 bm25) of every row matching `match` whose id is at least `first_id`."""
    return conn.execute("SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? "
                        "AND rowid >= ?", (match, first_id)).fetchall()


# -- FTS5's own postings, for the derived keyword index ------------------------------------
#
# fts5vocab tables (in the connection's temp schema: a read-only connection may create them)
# read FTS5's postings as FTS5 tokenized them; `chunks_fts_docsize` holds each row's token count
# per column and the `chunks_fts_data` record 1 the row count and token totals (SQLite varints,
# FTS5's documented file format). Nothing here is a second tokenizer.

def _vocabulary(conn: Connection) -> None:
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.memwal_fts_instances "
                 "USING fts5vocab(main, chunks_fts, instance)")
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.memwal_fts_rows "
                 "USING fts5vocab(main, chunks_fts, row)")


def fts_term_counts(conn: Connection, term: str) -> list[tuple[int, int]]:
    """(chunk id, occurrences in all columns) of every row holding the FTS5 token `term`."""
    _vocabulary(conn)
    return conn.execute("SELECT doc, count(*) FROM temp.memwal_fts_instances WHERE term = ? "
                        "GROUP BY doc", (term,)).fetchall()


def fts_term_rows(conn: Connection, term: str) -> int:
    """How many rows hold the FTS5 token `term` now."""
    _vocabulary(conn)
    row = conn.execute("SELECT doc FROM temp.memwal_fts_rows WHERE term = ?", (term,)).fetchone()
    return int(row[0]) if row else 0


def fts_row_sizes(conn: Connection) -> list[tuple[int, bytes]]:
    """(chunk id, token counts per column as SQLite varints) of every FTS row."""
    return conn.execute("SELECT id, sz FROM chunks_fts_docsize").fetchall()


def fts_totals_record(conn: Connection) -> bytes | None:
    """FTS5's totals record: row count, then the token count of each column (varints)."""
    row = conn.execute("SELECT block FROM chunks_fts_data WHERE id = 1").fetchone()
    return bytes(row[0]) if row else None


def ids_written_after(conn: Connection, seq: int) -> list[int]:
    """Chunk ids written (inserted or changed) by a commit after sequence `seq`."""
    return [r[0] for r in conn.execute(
        "SELECT id FROM chunks INDEXED BY chunks_by_seq WHERE seq > ?", (seq,))]


def existing_ids(conn: Connection, ids: Sequence[int]) -> set[int]:
    """Those of `ids` that are chunks now."""
    if not ids:
        return set()
    return {r[0] for r in conn.execute(
        f"SELECT id FROM chunks WHERE id IN ({','.join('?' * len(ids))})", list(map(int, ids)))}


VEC0_MAX_K = 4096  # sqlite-vec 0.1.9 refuses a larger k


def vector_ranking(conn: Connection, vector: bytes, depth: int, namespace: str | None = None,
                   source_glob: str | None = None) -> list[int]:
    """Chunk ids by cosine distance to `vector`, best first (vec0 is brute force in 0.1.9)."""
    if not has_vector_table(conn):
        return []
    where, params = _filters(namespace, source_glob)
    if where:
        # A filter after a global KNN can miss every match; score the filtered rows instead.
        rows = conn.execute(
            f"SELECT c.id FROM chunks c JOIN {VECTOR_TABLE} v ON v.chunk_id = c.id "
            f"WHERE c.fingerprint IS NOT NULL{where} "
            "ORDER BY vec_distance_cosine(v.embedding, ?) LIMIT ?",
            (*params, vector, depth)).fetchall()
        return [r[0] for r in rows]
    rows = conn.execute(
        f"SELECT chunk_id FROM {VECTOR_TABLE} WHERE embedding MATCH ? AND k = ? "
        "ORDER BY distance", (vector, min(depth, VEC0_MAX_K))).fetchall()
    return [r[0] for r in rows]


# -- vectors in bulk -------------------------------------------------------------------------
#
# Reading vectors through vec0 costs ~30 us a row (each is fetched from its storage blob on its
# own): 30 s for a million. sqlite-vec 0.1.9 (pinned in pyproject.toml) keeps them in plain
# shadow tables: `<table>_rowids` maps a chunk id to (storage chunk, offset), and
# `<table>_vector_chunks00` holds each storage chunk's vectors as one float32 blob. Reading those
# directly is what the derived index and the exact tail need; `vectors_of` checks one vector
# against vec0's own answer on every call, so a changed layout is an error, never wrong data.


class VectorLayoutChanged(RuntimeError):
    """sqlite-vec's storage is not the layout this memwal reads (a different sqlite-vec)."""


def vectors_of(conn: Connection, chunk_ids: Sequence[int] | None, dim: int
               ) -> tuple["np.ndarray", "np.ndarray"]:
    """(ids, float32 matrix) of the stored vectors of `chunk_ids` (None: every stored vector).

    Ids without a stored vector are left out; the order is by storage position.
    """
    import numpy as np

    query = f"SELECT rowid, chunk_id, chunk_offset FROM {VECTOR_TABLE}_rowids"
    places: list[tuple[int, int, int]] = []
    if chunk_ids is None:
        places = conn.execute(query + " WHERE chunk_id IS NOT NULL").fetchall()
    else:
        ids = [int(i) for i in chunk_ids]  # numpy integers would bind as blobs
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            places += conn.execute(query + f" WHERE rowid IN ({','.join('?' * len(part))})",
                                   part).fetchall()
    places.sort(key=lambda place: (place[1], place[2]))
    out_ids = np.fromiter((p[0] for p in places), dtype=np.int64, count=len(places))
    matrix = np.empty((len(places), dim), dtype=np.float32)
    row, blob_id, blob = 0, None, None
    for _, storage, offset in places:
        if storage != blob_id:
            found = conn.execute(f"SELECT vectors FROM {VECTOR_TABLE}_vector_chunks00 WHERE rowid=?",
                                 (storage,)).fetchone()
            blob_id = storage
            blob = np.frombuffer(found[0], dtype="<f4").reshape(-1, dim) if found else None
        if blob is None or offset >= len(blob):
            raise VectorLayoutChanged(f"no storage for vector slot {storage}/{offset}")
        matrix[row] = blob[offset]
        row += 1
    if len(out_ids):
        (expected,) = conn.execute(f"SELECT embedding FROM {VECTOR_TABLE} WHERE chunk_id=?",
                                   (int(out_ids[0]),)).fetchone()
        if bytes(expected) != matrix[0].astype("<f4").tobytes():
            raise VectorLayoutChanged("sqlite-vec's storage layout is not the one memwal reads")
    return out_ids, matrix


def ids_with_vectors(conn: Connection, fingerprint: str, after_seq: int | None = None) -> list[int]:
    """Chunk ids that hold a vector of `fingerprint` (written after `after_seq`, if given)."""
    return list(each_id_with_vector(conn, fingerprint, after_seq))


def each_id_with_vector(conn: Connection, fingerprint: str, after_seq: int | None = None
                        ) -> Iterator[int]:
    """`ids_with_vectors` one at a time (a million ids in a list take ~36 MB)."""
    if after_seq is None:
        rows = conn.execute("SELECT id FROM chunks WHERE fingerprint=?", (fingerprint,))
    else:
        rows = conn.execute(
            "SELECT id FROM chunks INDEXED BY chunks_by_seq WHERE seq > ? AND fingerprint=?",
            (after_seq, fingerprint))
    return (row[0] for row in rows)


def count_vectors(conn: Connection, fingerprint: str, after_seq: int | None = None) -> int:
    """How many chunks `each_id_with_vector` yields, counted by SQLite (no id leaves it)."""
    if after_seq is None:
        row = conn.execute("SELECT count(*) FROM chunks WHERE fingerprint=?", (fingerprint,))
    else:
        row = conn.execute(
            "SELECT count(*) FROM chunks INDEXED BY chunks_by_seq WHERE seq > ? AND fingerprint=?",
            (after_seq, fingerprint))
    return int(row.fetchone()[0])


# -- a migration's shadow vectors ------------------------------------------------------------


def migration_coverage(conn: Connection) -> tuple[int, int]:
    """(chunks that hold a shadow vector, all chunks)."""
    covered = conn.execute(f"SELECT count(*) FROM {SHADOW_TABLE}").fetchone()[0]
    return int(covered), int(conn.execute("SELECT count(*) FROM chunks").fetchone()[0])


@dataclass(frozen=True)
class StoredChunk:
    """A stored chunk's key and text: what the migrator re-embeds."""

    id: int
    namespace: str
    source_file: str
    content_hash: str
    start_line: int
    content: str


def chunks_lacking_shadow(conn: Connection, after_id: int, limit: int) -> list[StoredChunk]:
    """Up to `limit` chunks with an id above `after_id` and no shadow vector, by id."""
    return [StoredChunk(*row) for row in conn.execute(
        f"SELECT id, namespace, source_file, content_hash, start_line, content FROM chunks "
        f"WHERE id > ? AND NOT EXISTS (SELECT 1 FROM {SHADOW_TABLE} WHERE chunk_id=chunks.id) "
        "ORDER BY id LIMIT ?", (after_id, limit))]


def each_shadow_vector(conn: Connection, upto_seq: int, after_id: int = 0, limit: int = 4096
                       ) -> list[tuple[int, bytes]]:
    """(chunk id, vector bytes) of shadow vectors written at or before `upto_seq`, by id."""
    return conn.execute(f"SELECT chunk_id, vector FROM {SHADOW_TABLE} WHERE chunk_id > ? AND "
                        "seq <= ? ORDER BY chunk_id LIMIT ?", (after_id, upto_seq, limit)).fetchall()


def unsound_shadow_vectors(conn: Connection, dim: int) -> tuple[int, int]:
    """(shadow vectors whose chunk is gone, shadow vectors not `dim` float32 values)."""
    orphans = conn.execute(f"SELECT count(*) FROM {SHADOW_TABLE} WHERE NOT EXISTS "
                           f"(SELECT 1 FROM chunks WHERE id={SHADOW_TABLE}.chunk_id)").fetchone()[0]
    wrong = conn.execute(f"SELECT count(*) FROM {SHADOW_TABLE} WHERE length(vector) != ?",
                         (4 * dim,)).fetchone()[0]
    return int(orphans), int(wrong)


def shadow_seq(conn: Connection) -> int:
    """The newest sequence that wrote a shadow vector (0 if none)."""
    return int(conn.execute(f"SELECT coalesce(max(seq), 0) FROM {SHADOW_TABLE}").fetchone()[0])


def commit_seq(conn: Connection) -> int:
    """The sequence number of the last committed batch."""
    row = conn.execute("SELECT value FROM meta WHERE key='commit_seq'").fetchone()
    return int(row[0]) if row else 0


def live_among(conn: Connection, ids: Sequence[int], fingerprint: str) -> set[int]:
    """Those of `ids` that still hold a vector of `fingerprint`."""
    if not ids:
        return set()
    return {r[0] for r in conn.execute(
        f"SELECT id FROM chunks WHERE id IN ({','.join('?' * len(ids))}) AND fingerprint=?",
        (*map(int, ids), fingerprint))}


@dataclass(frozen=True)
class ChunkRow:
    id: int
    namespace: str
    source_file: str
    start_line: int
    end_line: int
    heading_path: str  # JSON list
    content: str


def chunk_rows(conn: Connection, ids: Sequence[int]) -> dict[int, ChunkRow]:
    """The stored rows of those chunk ids, by id."""
    if not ids:
        return {}
    return {row[0]: ChunkRow(*row) for row in conn.execute(
        "SELECT id, namespace, source_file, start_line, end_line, heading_path, content "
        f"FROM chunks WHERE id IN ({','.join('?' * len(ids))})", list(ids))}


# -- dead letters --------------------------------------------------------------------------

DEAD_LETTER_COLUMNS = ("id", "reason", "fingerprint", "active_fingerprint", "namespace",
                       "source_file", "content_hash", "start_line", "batch_id", "position",
                       "enqueued_at", "dead_lettered_at", "replayed_by")
DEAD_LETTER_DETAIL_COLUMNS = DEAD_LETTER_COLUMNS + ("detail", "kind", "item_index", "replayed_at",
                                                    "item", "raw")


def dead_letter_rows(conn: Connection, columns: Sequence[str], *, ids: Sequence[int] = (),
                     reason: str | None = None, fingerprint: str | None = None,
                     replayed: str = "exclude") -> Iterator[dict[str, Any]]:
    """Dead letters in their original order (queue position, then place in the batch).

    `replayed` is "exclude", "include" or "only"; given ids are returned whatever it says,
    unless it is "only".
    """
    clauses: list[str] = []
    params: list[object] = []
    if ids:
        clauses.append(f"id IN ({','.join('?' * len(ids))})")
        params.extend(ids)
    if reason:
        clauses.append("reason = ?")
        params.append(reason)
    if fingerprint:
        clauses.append("fingerprint = ?")
        params.append(fingerprint)
    if replayed == "only":
        clauses.append("replayed_by IS NOT NULL")
    elif replayed == "exclude" and not ids:
        clauses.append("replayed_by IS NULL")
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    for row in conn.execute(f"SELECT {', '.join(columns)} FROM dead_letters{where} "
                            "ORDER BY position, coalesce(item_index, -1), id", params):
        yield dict(zip(columns, row))


def unreplayed_dead_letters(conn: Connection | None) -> int:
    if conn is None:
        return 0
    return conn.execute("SELECT count(*) FROM dead_letters WHERE replayed_by IS NULL").fetchone()[0]


# -- doctor's checks -----------------------------------------------------------------------


def integrity_problems(conn: Connection) -> list[str]:
    """SQLite's integrity check: ["ok"] when the file is sound."""
    return [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]


def fts_integrity(path: Path) -> str | None:
    """FTS5's own check against its content table; None if it passes, else what failed.

    FTS5 spells it as an INSERT, which a read-only connection refuses; it changes nothing, and
    the transaction around it is rolled back all the same.
    """
    conn = connect(path)
    try:
        conn.execute("BEGIN")
        # rank=1 also compares the full-text index with its content table (chunks).
        conn.execute("INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('integrity-check', 1)")
    except DatabaseError as exc:
        return str(exc)
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
    return None


def bad_vectors(conn: Connection, dim: int, limit: int = 5) -> tuple[int, list[str]]:
    """Vectors that are not `dim` finite float32 values: (how many, a few described).

    Reads every vector once, in batches; sqlite-vec's own error for a damaged vector blob
    propagates (it names the chunk).
    """
    import numpy as np

    bad = 0
    described: list[str] = []
    cursor = conn.execute(f"SELECT chunk_id, embedding FROM {VECTOR_TABLE}")
    while rows := cursor.fetchmany(4096):
        for chunk_id, blob in rows:
            problem = None
            if not isinstance(blob, bytes) or len(blob) != dim * 4:
                problem = f"{len(blob) if isinstance(blob, bytes) else type(blob).__name__} bytes"
            elif not np.isfinite(np.frombuffer(blob, dtype="<f4")).all():
                problem = "NaN or infinity"
            if problem:
                bad += 1
                if len(described) < limit:
                    described.append(f"chunk {chunk_id}: {problem}")
    return bad, described


@dataclass(frozen=True)
class RowCounts:
    chunks: int
    fts_rows: int
    chunks_with_vector: int
    vectors: int
    orphan_vectors: int

    @property
    def agree(self) -> bool:
        return (self.chunks == self.fts_rows and self.chunks_with_vector == self.vectors
                and self.orphan_vectors == 0)


def row_counts(conn: Connection) -> RowCounts:
    """Chunks, full-text rows, vectors, and vectors whose chunk is gone or vectorless."""
    vectors = orphans = 0
    if has_vector_table(conn):
        vectors = conn.execute(f"SELECT count(*) FROM {VECTOR_TABLE}").fetchone()[0]
        orphans = conn.execute(
            f"SELECT count(*) FROM {VECTOR_TABLE} v LEFT JOIN chunks c ON c.id = v.chunk_id "
            "WHERE c.id IS NULL OR c.fingerprint IS NULL").fetchone()[0]
    return RowCounts(
        chunks=conn.execute("SELECT count(*) FROM chunks").fetchone()[0],
        fts_rows=conn.execute("SELECT count(*) FROM chunks_fts_docsize").fetchone()[0],
        chunks_with_vector=conn.execute(
            "SELECT count(*) FROM chunks WHERE fingerprint IS NOT NULL").fetchone()[0],
        vectors=vectors, orphan_vectors=orphans)

