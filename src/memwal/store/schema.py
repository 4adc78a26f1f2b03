"""The index's schema and its migrations: one versioned step at a time, each in one transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import sqlean

from memwal.errors import SchemaTooNew

SCHEMA_VERSION = 5
VECTOR_TABLE = "chunk_vectors"
SHADOW_TABLE = "migration_vectors"

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

def _run_script(conn: sqlean.Connection, script: str) -> None:
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

# v3: every batch the committer applies gets the next commit sequence number (meta
# `commit_seq`, and the ledger row's `seq`); a chunk remembers the sequence that last wrote it.
# The derived vector index is stamped with a sequence: what is newer than its stamp is found by
# `chunks_by_seq`, and searched exactly.
_V3 = """
ALTER TABLE chunks ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX chunks_by_seq ON chunks (seq);
ALTER TABLE ledger ADD COLUMN seq INTEGER;
INSERT OR IGNORE INTO meta (key, value) VALUES ('commit_seq', '0');
"""

# v4: the index has an id (meta `index_id`), made once: the committer stamps a shared queue with
# it, so a committer of another index is refused that queue. Its mark of the queue (meta
# `queue_mark`: epoch, highest position seen and committed) is written by the committer.
_V4 = """
INSERT OR IGNORE INTO meta (key, value) VALUES ('index_id', lower(hex(randomblob(16))));
"""

# v5: model migration without downtime. While a migration runs (meta `migration`: the model it
# moves to), the chunks' vectors of that model wait here, beside the active model's vec0 table
# that search keeps reading: a plain table (search never reads it; the migrator's anti-join with
# `chunks` and the cutover's copy are simple scans), each row stamped with the commit sequence
# that wrote it, so a derived index built from it before the cutover knows what it covers.
_V5 = """
CREATE TABLE migration_vectors (
    chunk_id INTEGER PRIMARY KEY,
    vector BLOB NOT NULL,
    seq INTEGER NOT NULL
);
"""

Migration = Callable[[sqlean.Connection], None]
MIGRATIONS: dict[int, Migration] = {
    1: lambda conn: _run_script(conn, _V1),
    2: lambda conn: _run_script(conn, _V2),
    3: lambda conn: _run_script(conn, _V3),
    4: lambda conn: _run_script(conn, _V4),
    5: lambda conn: _run_script(conn, _V5),
}



def schema_version(conn: sqlean.Connection) -> int:
    """The version recorded in `meta`; 0 for a file no migration has finished on."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    if not has_meta:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else 0


def too_new(path: Path, version: int) -> SchemaTooNew:
    return SchemaTooNew(f"the index {path} has schema version {version}, newer than this memwal "
                        f"knows ({SCHEMA_VERSION}).",
                        "Upgrade memwal (pip install -U memwal) or use another --home.")


def migrate(conn: sqlean.Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION, one versioned step at a time; refuse a newer one."""
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise too_new(path, version)
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
