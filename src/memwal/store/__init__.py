"""The index file: the one owner of its SQL (SQLite from the sqlean.py wheel + sqlite-vec).

Why sqlean.py: it is the stdlib `sqlite3` API (DB-API 2.0) over a bundled SQLite 3.50 with FTS5,
its wheels cover Linux, macOS and Windows, and it can load extensions — the stdlib build of the
Python here (pyenv 3.11.7) has no `enable_load_extension`. pysqlite3-binary has no macOS wheel;
apsw works too but has its own API.

Only the committer opens the index for writing (`open_for_write`); its statements are in
`store.writes`. Producers, search, status and doctor read through `reading()` (`mode=ro`, which
never takes a write lock); their queries are in `store.reads`. No other module writes SQL.
"""

from __future__ import annotations

import json
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import sqlean
import sqlite_vec

from memwal.errors import DAMAGED_INDEX_FIX, DamagedFile, IndexUnavailable, SchemaTooNew, is_damage
from memwal.fingerprint import ModelInfo
from memwal.safeio import (NotRegularFile, create_private, readonly_uri, refuse_links,
                           sqlite_companions)
from memwal.store.schema import (
    SCHEMA_VERSION, SHADOW_TABLE, VECTOR_TABLE, migrate, schema_version, too_new,
)

if TYPE_CHECKING:
    # sqlean ships no types, and its Connection is the stdlib sqlite3 API: typed as that one.
    from sqlite3 import Connection
else:
    Connection = sqlean.Connection
DatabaseError = sqlean.DatabaseError
OperationalError = sqlean.OperationalError
IntegrityError = sqlean.IntegrityError
DataError = sqlean.DataError
InterfaceError = sqlean.InterfaceError

__all__ = [
    "SCHEMA_VERSION", "SHADOW_TABLE", "VECTOR_TABLE", "Connection", "MigrationState", "endpoint_of",
    "migration", "DataError", "DatabaseError", "IndexUnavailable",
    "IntegrityError", "InterfaceError", "OperationalError", "SchemaTooNew", "active_model",
    "connect", "has_vector_table", "open_for_read", "open_for_write", "reading", "schema_version",
]


def _load_vec(conn: Connection) -> None:
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.enable_load_extension(False)


def damaged(path: Path, exc: BaseException) -> DamagedFile:
    return DamagedFile(f"the index {path} is damaged ({exc}).", DAMAGED_INDEX_FIX)


def connect(path: Path, *, readonly: bool = False, timeout: float = 10.0) -> Connection:
    """Open the index. Read-only opens never write and never take a write lock.

    The index and its companions are refused if they are symlinks: memwal never follows links in
    its home. A new index file is made private (0600) before SQLite opens it: SQLite gives its
    companions the same mode.
    """
    try:
        refuse_links(*sqlite_companions(path))
    except NotRegularFile as exc:
        raise IndexUnavailable(f"{exc.filename} is a symlink: memwal never follows links in its "
                               "home.", "Remove the link (and find out who put it there).") from None
    if not readonly:
        # Before SQLite makes it, so that its -wal and -shm are private too. A folder we cannot
        # write fails here as it fails in SQLite, which says so in its own words below.
        with suppress(OSError):
            create_private(path)
    try:
        if readonly:
            conn = sqlean.connect(readonly_uri(path), uri=True, timeout=timeout,
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
        if is_damage(exc):
            raise damaged(path, exc) from None
        raise IndexUnavailable(f"cannot open the index {path}: {exc}.",
                               "Check the file and its folder, or see `mm doctor`.") from None
    return conn


def open_for_write(path: Path) -> Connection:
    """The committer's connection: created and migrated if needed."""
    conn = connect(path)
    try:
        migrate(conn, path)
    except DatabaseError as exc:
        conn.close()
        if is_damage(exc):
            raise damaged(path, exc) from None
        raise
    return conn


def open_for_read(path: Path) -> Connection | None:
    """A read-only connection, or None if no index exists yet (nothing committed)."""
    if not path.exists():
        return None
    conn = connect(path, readonly=True)
    try:
        version = schema_version(conn)
    except DatabaseError as exc:
        conn.close()
        if is_damage(exc):
            raise damaged(path, exc) from None
        raise
    if version > SCHEMA_VERSION:
        conn.close()
        raise too_new(path, version)
    if version == 0:
        # Created by a committer that has not finished its first migration: nothing committed.
        conn.close()
        return None
    return conn


@contextmanager
def reading(path: Path, *, snapshot: bool = False) -> Iterator[Connection | None]:
    """A read-only connection for the block (None if nothing is committed yet), then closed.

    With `snapshot`, every query of the block reads one consistent state: a commit landing
    meanwhile is not seen.
    """
    conn = open_for_read(path)
    try:
        if conn is not None and snapshot:
            conn.execute("BEGIN")
        yield conn
    except DatabaseError as exc:
        if is_damage(exc):
            raise damaged(path, exc) from None
        raise
    finally:
        if conn is not None:
            conn.close()


def get_meta(conn: Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return row[0] if row else None


def active_model(conn: Connection | None) -> ModelInfo | None:
    """The model every stored vector must come from, or None before the first commit."""
    if conn is None:
        return None
    raw = get_meta(conn, "active_model")
    if raw is None:
        return None
    data = json.loads(raw)
    return ModelInfo(data["name"], int(data["dim"]), data["fingerprint"])


def has_vector_table(conn: Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name=?",
                        (VECTOR_TABLE,)).fetchone() is not None


@dataclass(frozen=True)
class MigrationState:
    """A migration in progress (meta `migration`): the model it moves to, how to reach it, and
    when it started (seconds since the epoch, and the commit sequence of its `migrate` item)."""

    target: ModelInfo
    endpoint: dict[str, Any] | None
    started_at: float
    started_seq: int

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target.as_dict(), "endpoint": self.endpoint,
                "started_at": self.started_at, "started_seq": self.started_seq}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MigrationState":
        """The inverse of `as_dict` (the index's meta, or a shared queue's publication)."""
        target = data["target"]
        return cls(ModelInfo(target["name"], int(target["dim"]), target["fingerprint"]),
                   data.get("endpoint"), float(data["started_at"]), int(data["started_seq"]))


def migration(conn: Connection | None) -> MigrationState | None:
    """The migration in progress, or None."""
    raw = None if conn is None else get_meta(conn, "migration")
    if raw is None:
        return None
    return MigrationState.from_dict(json.loads(raw))


def endpoint_of(conn: Connection | None, fingerprint: str) -> dict[str, Any] | None:
    """How to reach the model of this fingerprint (provider, model, url), as the index recorded
    it from the batches that carried its vectors; None if it never did."""
    raw = None if conn is None else get_meta(conn, "endpoints")
    endpoint = json.loads(raw).get(fingerprint) if raw else None
    return endpoint if isinstance(endpoint, dict) else None
