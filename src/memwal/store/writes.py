"""Every statement that changes the index. Only the committer (who holds the lock) calls these.

The committer decides what to do with each item; these functions only run the statements.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

from memwal.fingerprint import ModelInfo
from memwal.records import ChunkKey, FileSnapshot, Upsert
from memwal.store import Connection, MigrationState, get_meta, has_vector_table
from memwal.store.schema import SHADOW_TABLE, VECTOR_TABLE


@contextmanager
def transaction(conn: Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (KeyboardInterrupt included)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def savepoint(conn: Connection, on_error: type[BaseException] | tuple[type[BaseException], ...]
              ) -> Iterator[list[BaseException]]:
    """A savepoint; an `on_error` exception rolls back to it and is handed to the caller.

    The yielded list receives the exception, if any (the block's work is then undone).
    """
    caught: list[BaseException] = []
    conn.execute("SAVEPOINT item")
    try:
        yield caught
    except on_error as exc:  # type: ignore[misc]
        conn.execute("ROLLBACK TO item")
        caught.append(exc)
    conn.execute("RELEASE item")


def set_meta(conn: Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value=excluded.value", (key, value))


def set_queue_mark(conn: Connection, mark: str) -> None:
    """The committer's mark of its queue (see memwal.queuewatch), in the caller's transaction."""
    set_meta(conn, "queue_mark", mark)


def set_active_model(conn: Connection, model: ModelInfo) -> None:
    set_meta(conn, "active_model", json.dumps(model.as_dict(), sort_keys=True))


def create_vector_table(conn: Connection, dim: int) -> None:
    """(Re)create the vec0 table at `dim`; any vectors it held are gone."""
    conn.execute(f"DROP TABLE IF EXISTS {VECTOR_TABLE}")
    conn.execute(f"CREATE VIRTUAL TABLE {VECTOR_TABLE} USING vec0 ("
                 f"chunk_id INTEGER PRIMARY KEY, embedding float[{int(dim)}] distance_metric=cosine)")


def adopt_model(conn: Connection, model: ModelInfo) -> None:
    """Make the first model an empty index meets its active one."""
    set_active_model(conn, model)
    if not has_vector_table(conn):
        create_vector_table(conn, model.dim)


def switch_model(conn: Connection, model: ModelInfo, active: ModelInfo | None) -> None:
    """Apply a reset: vectors of every other model go; chunks and their text stay, vectorless.
    A migration in progress ends with it (its shadow vectors go)."""
    end_migration(conn)
    if active is None or active.dim != model.dim or not has_vector_table(conn):
        create_vector_table(conn, model.dim)
    else:
        conn.execute(
            f"DELETE FROM {VECTOR_TABLE} WHERE chunk_id IN (SELECT id FROM chunks "
            "WHERE fingerprint IS NOT NULL AND fingerprint != ?)", (model.fingerprint,))
    conn.execute("UPDATE chunks SET fingerprint=NULL WHERE fingerprint IS NOT NULL "
                 "AND fingerprint != ?", (model.fingerprint,))
    set_active_model(conn, model)


def record_endpoints(conn: Connection, endpoints: Mapping[str, Mapping[str, Any]],
                     keep: set[str]) -> None:
    """Remember how to reach the models in `endpoints` whose fingerprints are in `keep` (the
    active model and a migration's target); forget every other model's."""
    raw = get_meta(conn, "endpoints")
    known: dict[str, Any] = json.loads(raw) if raw else {}
    merged = {fp: dict(ep) for fp, ep in {**known, **endpoints}.items() if fp in keep}
    if merged != known:
        set_meta(conn, "endpoints", json.dumps(merged, sort_keys=True))


# -- migrations: shadow vectors of the model a migration moves to --------------------------


def start_migration(conn: Connection, target: ModelInfo, endpoint: Mapping[str, Any] | None,
                    seq: int) -> None:
    """Begin (or restart, for another model) a migration: no shadow vectors yet."""
    conn.execute(f"DELETE FROM {SHADOW_TABLE}")
    state = MigrationState(target, dict(endpoint) if endpoint else None, time.time(), seq)
    set_meta(conn, "migration", json.dumps(state.as_dict(), sort_keys=True))


def end_migration(conn: Connection) -> None:
    """Drop the shadow vectors and the migration (a cancel, a reset, or after a cutover)."""
    conn.execute(f"DELETE FROM {SHADOW_TABLE}")
    conn.execute("DELETE FROM meta WHERE key='migration'")


def put_shadow_vectors(conn: Connection, rows: Sequence[tuple[int, bytes]], seq: int) -> None:
    """Store (or replace) shadow vectors by chunk id."""
    conn.executemany(f"INSERT INTO {SHADOW_TABLE} (chunk_id, vector, seq) VALUES (?, ?, ?) "
                     "ON CONFLICT (chunk_id) DO UPDATE SET vector=excluded.vector, seq=excluded.seq",
                     [(chunk_id, vector, seq) for chunk_id, vector in rows])


def set_vector(conn: Connection, chunk_id: int, vector: bytes, fingerprint: str) -> None:
    """Give a stored chunk its vector of the active model (a re-embedding of its stored text)."""
    conn.execute("UPDATE chunks SET fingerprint=? WHERE id=?", (fingerprint, chunk_id))
    updated = conn.execute(f"UPDATE {VECTOR_TABLE} SET embedding=? WHERE chunk_id=?",
                           (vector, chunk_id))
    if updated.rowcount == 0:
        conn.execute(f"INSERT INTO {VECTOR_TABLE} (chunk_id, embedding) VALUES (?, ?)",
                     (chunk_id, vector))


def cut_over(conn: Connection, model: ModelInfo, active: ModelInfo | None) -> None:
    """Make the migration's model the active one: its shadow vectors become the vectors, in the
    caller's transaction (readers see the old model or the new one, never a mix).

    A chunk's `seq` becomes the sequence that wrote its shadow vector where that is later (a
    vector was written then): a derived index built from the shadow vectors up to some sequence
    then covers the chunks at or below it, and the rest are its tail. It never goes back: what
    readers kept (postings, a tail) stamped with a sequence stays right."""
    create_vector_table(conn, model.dim)
    conn.execute(f"INSERT INTO {VECTOR_TABLE} (chunk_id, embedding) "
                 f"SELECT chunk_id, vector FROM {SHADOW_TABLE} ORDER BY chunk_id")
    conn.execute(f"UPDATE chunks SET fingerprint=?, seq=max(seq, (SELECT seq FROM {SHADOW_TABLE} "
                 "WHERE chunk_id=chunks.id))", (model.fingerprint,))
    end_migration(conn)
    set_active_model(conn, model)


# -- the ledger and the dead letters -------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    """One item (or one undecodable batch) that was not committed, and why."""

    reason: str
    detail: str
    position: int
    batch_id: str | None = None
    item_index: int | None = None
    enqueued_at: float | None = None
    active_fingerprint: str | None = None
    # What could be read of the item (`records.describe_item`): kind, fingerprint, namespace,
    # source_file, content_hash, start_line, each where present and of the right type.
    described: Mapping[str, Any] = field(default_factory=dict)
    item: bytes | None = None
    raw: bytes | None = None


# A dead letter's columns that say what the item was, where it could be read.
DESCRIBED = ("kind", "fingerprint", "namespace", "source_file", "content_hash", "start_line")


def add_dead_letter(conn: Connection, letter: DeadLetter) -> None:
    conn.execute(
        f"INSERT INTO dead_letters (reason, detail, active_fingerprint, {', '.join(DESCRIBED)}, "
        "batch_id, position, item_index, enqueued_at, dead_lettered_at, item, raw) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (letter.reason, letter.detail, letter.active_fingerprint,
         *(letter.described.get(name) for name in DESCRIBED), letter.batch_id, letter.position, letter.item_index, letter.enqueued_at, time.time(),
         letter.item, letter.raw),
    )


def mark_replayed(conn: Connection, batch_id: str, letter_ids: Sequence[int]) -> None:
    """The audit trail of a replay: these dead letters were replayed by this batch."""
    now = time.time()
    conn.executemany("UPDATE dead_letters SET replayed_by=?, replayed_at=? WHERE id=?",
                     [(batch_id, now, letter_id) for letter_id in letter_ids])


def replayed_letters(conn: Connection, letter_ids: Sequence[int]) -> set[int]:
    """Those of the dead letters that a replay has already claimed."""
    claimed: set[int] = set()
    ids = list(letter_ids)
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        claimed.update(r[0] for r in conn.execute(
            f"SELECT id FROM dead_letters WHERE replayed_by IS NOT NULL AND id IN "
            f"({','.join('?' * len(part))})", part))
    return claimed


def purge_dead_letters(conn: Connection, letter_ids: Sequence[int]) -> int:
    """Delete these dead letters; return how many existed (an id purged meanwhile is not counted)."""
    deleted = 0
    for letter_id in dict.fromkeys(letter_ids):  # a repeated id is deleted (and counted) once
        deleted += conn.execute("DELETE FROM dead_letters WHERE id=?", (letter_id,)).rowcount
    return deleted


@dataclass(frozen=True)
class LedgerEntry:
    """The committer's record of one applied batch."""

    batch_id: str
    position: int
    producer: dict[str, Any]
    enqueued_at: float | None
    received: int
    committed: int
    dead_lettered: int
    skipped: int
    seq: int | None = None


def add_ledger_entry(conn: Connection, entry: LedgerEntry) -> None:
    conn.execute(
        "INSERT INTO ledger (batch_id, position, producer, enqueued_at, committed_at, received, "
        "committed, dead_lettered, skipped, seq) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (entry.batch_id, entry.position, json.dumps(entry.producer, sort_keys=True, default=repr),
         entry.enqueued_at, time.time(), entry.received, entry.committed, entry.dead_lettered,
         entry.skipped, entry.seq),
    )


def in_ledger(conn: Connection, batch_id: str) -> bool:
    return conn.execute("SELECT 1 FROM ledger WHERE batch_id=?", (batch_id,)).fetchone() is not None


# -- chunks and files ----------------------------------------------------------------------


def chunk_ids(conn: Connection, keys: Iterable[ChunkKey]) -> dict[ChunkKey, int]:
    """The stored ids of those keys that are stored; one indexed lookup per file."""
    wanted = set(keys)
    found: dict[ChunkKey, int] = {}
    for namespace, source_file in {(k.namespace, k.source_file) for k in wanted}:
        for chunk_id, content_hash, start_line in file_chunks(conn, namespace, source_file):
            key = ChunkKey(namespace, source_file, content_hash, start_line)
            if key in wanted:
                found[key] = chunk_id
    return found


def chunk_id(conn: Connection, key: ChunkKey) -> int | None:
    """The stored id of one key, or None."""
    row = conn.execute("SELECT id FROM chunks WHERE namespace=? AND source_file=? AND "
                       "content_hash=? AND start_line=?", tuple(key)).fetchone()
    return None if row is None else int(row[0])


def file_chunks(conn: Connection, namespace: str, source_file: str) -> list[tuple[int, str, int]]:
    """(id, content_hash, start_line) of every stored chunk of one file."""
    return conn.execute("SELECT id, content_hash, start_line FROM chunks WHERE namespace=? AND "
                        "source_file=?", (namespace, source_file)).fetchall()


def _json_list(values: Sequence[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False)


def next_seq(conn: Connection) -> int:
    """Take the next commit sequence number (inside the batch's transaction)."""
    seq = int(conn.execute("SELECT value FROM meta WHERE key='commit_seq'").fetchone()[0]) + 1
    set_meta(conn, "commit_seq", str(seq))
    return seq


def insert_chunks(conn: Connection, items: Sequence[Upsert], batch_id: str, seq: int) -> None:
    """Insert new chunks with their vectors and full-text rows, in bulk."""
    if not items:
        return
    # The committer is the only writer and holds BEGIN IMMEDIATE: max(id)+1… are the ids
    # SQLite would pick, and knowing them lets vectors and FTS rows go in by executemany.
    first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM chunks").fetchone()[0]
    ids = range(first, first + len(items))
    conn.executemany(
        "INSERT INTO chunks (id, namespace, source_file, content_hash, start_line, end_line, "
        "heading_path, content, tags, fingerprint, batch_id, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        [(chunk_id, item.key.namespace, item.key.source_file, item.key.content_hash,
          item.key.start_line, item.end_line, _json_list(item.heading_path), item.content,
          _json_list(item.tags), item.fingerprint, batch_id, seq)
         for chunk_id, item in zip(ids, items)])
    conn.executemany(f"INSERT INTO {VECTOR_TABLE} (chunk_id, embedding) VALUES (?, ?)",
                     [(chunk_id, item.vector) for chunk_id, item in zip(ids, items)])
    # v2 schema: new chunks' FTS rows are written once per run, not by a per-row trigger.
    conn.execute("INSERT INTO chunks_fts (rowid, content, heading_path) SELECT id, content, "
                 "heading_path FROM chunks WHERE id BETWEEN ? AND ?", (ids[0], ids[-1]))


def update_chunk(conn: Connection, chunk_id: int, item: Upsert, batch_id: str, seq: int) -> None:
    """A new version of a stored chunk: its row (FTS by trigger) and its vector."""
    conn.execute(
        "UPDATE chunks SET end_line=?, heading_path=?, content=?, tags=?, fingerprint=?, "
        "batch_id=?, seq=? WHERE id=?",
        (item.end_line, _json_list(item.heading_path), item.content, _json_list(item.tags),
         item.fingerprint, batch_id, seq, chunk_id))
    # vec0 rejects INSERT OR REPLACE and ON CONFLICT: update, then insert if nothing changed
    # (the vector was removed by a reset).
    updated = conn.execute(f"UPDATE {VECTOR_TABLE} SET embedding=? WHERE chunk_id=?",
                           (item.vector, chunk_id))
    if updated.rowcount == 0:
        conn.execute(f"INSERT INTO {VECTOR_TABLE} (chunk_id, embedding) VALUES (?, ?)",
                     (chunk_id, item.vector))


def delete_chunks(conn: Connection, ids: Sequence[int]) -> None:
    if not ids:
        return
    rows = [(chunk_id,) for chunk_id in ids]
    if has_vector_table(conn):
        conn.executemany(f"DELETE FROM {VECTOR_TABLE} WHERE chunk_id=?", rows)
    conn.executemany(f"DELETE FROM {SHADOW_TABLE} WHERE chunk_id=?", rows)
    conn.executemany("DELETE FROM chunks WHERE id=?", rows)


def committed_snapshot(conn: Connection, namespace: str, source_file: str
                       ) -> tuple[int, str] | None:
    """(mtime_ns, batch id) of the file's committed snapshot, if one is committed."""
    row = conn.execute("SELECT mtime_ns, batch_id FROM files WHERE namespace=? AND source_file=?",
                       (namespace, source_file)).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def record_file(conn: Connection, item: FileSnapshot, batch_id: str) -> None:
    """Remember a file's committed snapshot (or forget the file, if it vanished: no digest).

    An empty file (a digest, no keys) is remembered with no chunks, so that a producer finds it
    unchanged next time instead of sending it again and again.
    """
    if not item.digest:
        conn.execute("DELETE FROM files WHERE namespace=? AND source_file=?",
                     (item.namespace, item.source_file))
        return
    conn.execute(
        "INSERT INTO files (namespace, source_file, digest, size, mtime_ns, chunk_count, "
        "batch_id, committed_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (namespace, "
        "source_file) DO UPDATE SET digest=excluded.digest, size=excluded.size, "
        "mtime_ns=excluded.mtime_ns, chunk_count=excluded.chunk_count, "
        "batch_id=excluded.batch_id, committed_at=excluded.committed_at",
        (item.namespace, item.source_file, item.digest, item.size, item.mtime_ns, len(item.keys),
         batch_id, time.time()))
