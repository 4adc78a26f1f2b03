"""The index file: schema, migrations and connections (SQLite from the sqlean.py wheel + sqlite-vec).

Why sqlean.py: it is the stdlib `sqlite3` API (DB-API 2.0) over a bundled SQLite 3.50 with FTS5,
its wheels cover Linux, macOS and Windows, and it can load extensions — the stdlib build of the
Python here (pyenv 3.11.7) has no `enable_load_extension`. pysqlite3-binary has no macOS wheel;
apsw works too but has its own API.

Only the committer opens the index for writing. Producers, search and status open it read-only
(`mode=ro`), which never takes a write lock.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import sqlean
import sqlite_vec

from memwal.fingerprint import ModelInfo

SCHEMA_VERSION = 2
VECTOR_TABLE = "chunk_vectors"
Connection = sqlean.Connection
DatabaseError = sqlean.DatabaseError
OperationalError = sqlean.OperationalError
IntegrityError = sqlean.IntegrityError
DataError = sqlean.DataError
InterfaceError = sqlean.InterfaceError


class SchemaTooNew(Exception):
    """The index was written by a newer memwal."""


class IndexUnavailable(Exception):
    """The index file cannot be opened; the message says why and what to do."""


def _load_vec(conn: Connection) -> None:
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.enable_load_extension(False)


def connect(path: Path, *, readonly: bool = False, timeout: float = 10.0) -> Connection:
    """Open the index. Read-only opens never write and never take a write lock."""
    try:
        if readonly:
            conn = sqlean.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout,
                                  isolation_level=None, check_same_thread=False)
        else:
            conn = sqlean.connect(str(path), timeout=timeout, isolation_level=None,
                                  check_same_thread=False)
        _load_vec(conn)
        if not readonly:
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a batch is acknowledged in the queue right after this commit, so the
            # commit must survive a power cut, not only a process crash.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        conn.execute("PRAGMA cache_size=-32000")
    except DatabaseError as exc:
        raise IndexUnavailable(f"cannot open the index {path}: {exc}") from None
    return conn


def open_for_write(path: Path) -> Connection:
    """The committer's connection: created and migrated if needed."""
    conn = connect(path)
    migrate(conn, path)
    return conn


def open_for_read(path: Path) -> Connection | None:
    """A read-only connection, or None if no index exists yet (nothing committed)."""
    if not path.exists():
        return None
    conn = connect(path, readonly=True)
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        conn.close()
        raise SchemaTooNew(_too_new_message(path, version))
    if version == 0:
        # Created by a committer that has not finished its first migration: nothing committed.
        conn.close()
        return None
    return conn


def _too_new_message(path: Path, version: int) -> str:
    return (f"the index {path} has schema version {version}, newer than this memwal knows "
            f"({SCHEMA_VERSION}). Upgrade memwal (pip install -U memwal) or use another --home.")


def schema_version(conn: Connection) -> int:
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    if not has_meta:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else 0


_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    source_file TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    heading_path TEXT NOT NULL,
    content TEXT NOT NULL,
    tags TEXT NOT NULL,
    fingerprint TEXT,
    batch_id TEXT NOT NULL,
    UNIQUE (namespace, source_file, content_hash, start_line)
);
CREATE INDEX chunks_by_file ON chunks (namespace, source_file);
CREATE INDEX chunks_by_fingerprint ON chunks (fingerprint);
CREATE VIRTUAL TABLE chunks_fts USING fts5 (
    content, heading_path, content='chunks', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts (rowid, content, heading_path)
    VALUES (new.id, new.content, new.heading_path);
END;
CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, content, heading_path)
    VALUES ('delete', old.id, old.content, old.heading_path);
END;
CREATE TRIGGER chunks_fts_update AFTER UPDATE OF content, heading_path ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, content, heading_path)
    VALUES ('delete', old.id, old.content, old.heading_path);
    INSERT INTO chunks_fts (rowid, content, heading_path)
    VALUES (new.id, new.content, new.heading_path);
END;
CREATE TABLE files (
    namespace TEXT NOT NULL,
    source_file TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    batch_id TEXT NOT NULL,
    committed_at REAL NOT NULL,
    PRIMARY KEY (namespace, source_file)
);
CREATE TABLE ledger (
    batch_id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    producer TEXT NOT NULL,
    enqueued_at REAL,
    committed_at REAL NOT NULL,
    received INTEGER NOT NULL,
    committed INTEGER NOT NULL,
    dead_lettered INTEGER NOT NULL,
    skipped INTEGER NOT NULL
);
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    kind TEXT,
    fingerprint TEXT,
    active_fingerprint TEXT,
    namespace TEXT,
    source_file TEXT,
    content_hash TEXT,
    start_line INTEGER,
    batch_id TEXT,
    position INTEGER NOT NULL,
    item_index INTEGER,
    enqueued_at REAL,
    dead_lettered_at REAL NOT NULL,
    item BLOB,
    raw BLOB,
    replayed_by TEXT,
    replayed_at REAL
);
CREATE INDEX dead_letters_by_reason ON dead_letters (reason, fingerprint);
"""

def _run_script(conn: Connection, script: str) -> None:
    """Run a DDL script statement by statement: executescript() would commit our transaction."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlean.complete_statement(pending):
            conn.execute(pending)
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL at the end of a migration: {pending!r}")


# v2: the committer writes new chunks' FTS rows once per run of upserts (`insert_fts_rows`)
# instead of a per-row trigger: fired per row inside a statement savepoint, the trigger made FTS5
# flush a one-document segment per chunk (a third of the commit time, measured).
_V2 = "DROP TRIGGER chunks_fts_insert;\n"

Migration = Callable[[Connection], None]
MIGRATIONS: dict[int, Migration] = {
    1: lambda conn: _run_script(conn, _V1),
    2: lambda conn: _run_script(conn, _V2),
}


def insert_fts_rows(conn: Connection, first_id: int, last_id: int) -> None:
    """Index chunks first_id..last_id (just inserted, contiguous ids) in FTS, in one statement."""
    conn.execute("INSERT INTO chunks_fts (rowid, content, heading_path) SELECT id, content, "
                 "heading_path FROM chunks WHERE id BETWEEN ? AND ?", (first_id, last_id))


def migrate(conn: Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION, one versioned step at a time; refuse a newer one."""
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(_too_new_message(path, version))
    while version < SCHEMA_VERSION:
        target = version + 1
        conn.execute("BEGIN IMMEDIATE")
        try:
            if schema_version(conn) < target:  # another process may have migrated meanwhile
                MIGRATIONS[target](conn)
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                             (str(target),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = schema_version(conn)


def get_meta(conn: Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return row[0] if row else None


def set_meta(conn: Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value=excluded.value", (key, value))


def active_model(conn: Connection | None) -> ModelInfo | None:
    """The model every stored vector must come from, or None before the first commit."""
    if conn is None:
        return None
    raw = get_meta(conn, "active_model")
    if raw is None:
        return None
    data = json.loads(raw)
    return ModelInfo(data["name"], int(data["dim"]), data["fingerprint"])


def set_active_model(conn: Connection, model: ModelInfo) -> None:
    set_meta(conn, "active_model", json.dumps(model.as_dict(), sort_keys=True))


def has_vector_table(conn: Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name=?", (VECTOR_TABLE,)).fetchone() is not None


def create_vector_table(conn: Connection, dim: int) -> None:
    """(Re)create the vec0 table at `dim`; any vectors it held are gone."""
    conn.execute(f"DROP TABLE IF EXISTS {VECTOR_TABLE}")
    conn.execute(f"CREATE VIRTUAL TABLE {VECTOR_TABLE} USING vec0 ("
                 f"chunk_id INTEGER PRIMARY KEY, embedding float[{int(dim)}] distance_metric=cosine)")


@dataclass(frozen=True)
class DeadLetter:
    """One item (or one undecodable batch) that was not committed, and why."""

    reason: str
    detail: str
    position: int
    batch_id: str | None = None
    item_index: int | None = None
    enqueued_at: float | None = None
    kind: str | None = None
    fingerprint: str | None = None
    active_fingerprint: str | None = None
    namespace: str | None = None
    source_file: str | None = None
    content_hash: str | None = None
    start_line: int | None = None
    item: bytes | None = None
    raw: bytes | None = None


def add_dead_letter(conn: Connection, letter: DeadLetter) -> None:
    conn.execute(
        "INSERT INTO dead_letters (reason, detail, kind, fingerprint, active_fingerprint, "
        "namespace, source_file, content_hash, start_line, batch_id, position, item_index, "
        "enqueued_at, dead_lettered_at, item, raw) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (letter.reason, letter.detail, letter.kind, letter.fingerprint, letter.active_fingerprint,
         letter.namespace, letter.source_file, letter.content_hash, letter.start_line,
         letter.batch_id, letter.position, letter.item_index, letter.enqueued_at, time.time(),
         letter.item, letter.raw),
    )


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


def add_ledger_entry(conn: Connection, entry: LedgerEntry) -> None:
    conn.execute(
        "INSERT INTO ledger (batch_id, position, producer, enqueued_at, committed_at, received, "
        "committed, dead_lettered, skipped) VALUES (?,?,?,?,?,?,?,?,?)",
        (entry.batch_id, entry.position, json.dumps(entry.producer, sort_keys=True, default=repr),
         entry.enqueued_at, time.time(), entry.received, entry.committed, entry.dead_lettered,
         entry.skipped),
    )


def in_ledger(conn: Connection, batch_id: str) -> bool:
    return conn.execute("SELECT 1 FROM ledger WHERE batch_id=?", (batch_id,)).fetchone() is not None
