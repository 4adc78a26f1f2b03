"""Invariant checks over a home (DESIGN.md): what `mm doctor` runs and every test can call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from memwal import store
from memwal.config import Settings
from memwal.lock import committer_alive
from memwal.queue import queue_counts


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _integrity(conn: store.Connection) -> Check:
    rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    return Check("sqlite_integrity", rows == ["ok"], "; ".join(rows[:5]))


def _fts_integrity(path: Path) -> Check:
    # FTS5's integrity-check is spelled as an INSERT, which a read-only connection refuses; it
    # changes nothing, and the transaction around it is rolled back all the same.
    conn = store.connect(path)
    try:
        conn.execute("BEGIN")
        # rank=1 also compares the full-text index with its content table (chunks).
        conn.execute("INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('integrity-check', 1)")
    except store.DatabaseError as exc:
        return Check("fts_integrity", False, str(exc))
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
    return Check("fts_integrity", True, "ok")


def _counts(conn: store.Connection) -> Check:
    chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    fts = conn.execute("SELECT count(*) FROM chunks_fts_docsize").fetchone()[0]
    with_vector = conn.execute("SELECT count(*) FROM chunks WHERE fingerprint IS NOT NULL").fetchone()[0]
    vectors = orphans = 0
    if store.has_vector_table(conn):
        vectors = conn.execute(f"SELECT count(*) FROM {store.VECTOR_TABLE}").fetchone()[0]
        orphans = conn.execute(
            f"SELECT count(*) FROM {store.VECTOR_TABLE} v LEFT JOIN chunks c ON c.id = v.chunk_id "
            "WHERE c.id IS NULL OR c.fingerprint IS NULL").fetchone()[0]
    ok = chunks == fts and with_vector == vectors and orphans == 0
    return Check("counts_agree", ok, f"chunks {chunks}, fts rows {fts}, chunks with a vector "
                                     f"{with_vector}, vectors {vectors}, orphan vectors {orphans}")


def _fingerprints(conn: store.Connection) -> Check:
    active = store.active_model(conn)
    stray = conn.execute("SELECT count(*) FROM chunks WHERE fingerprint IS NOT NULL AND "
                         "fingerprint IS NOT ?", (active.fingerprint if active else None,)).fetchone()[0]
    return Check("single_model", stray == 0,
                 f"{stray} vectors not of the active model "
                 f"{active.fingerprint if active else '(none)'}")


def _ledger(conn: store.Connection) -> Check:
    bad = conn.execute("SELECT batch_id, received, committed, dead_lettered, skipped FROM ledger "
                       "WHERE received != committed + dead_lettered + skipped LIMIT 5").fetchall()
    detail = "every batch: received = committed + dead-lettered + skipped" if not bad else \
        "; ".join(f"{b[0]}: {b[1]} != {b[2]}+{b[3]}+{b[4]}" for b in bad)
    return Check("ledger_sums", not bad, detail)


def _inflight(settings: Settings) -> Check:
    _, inflight = queue_counts(settings.queue_path)
    running, pid = committer_alive(settings.lock_path)
    ok = inflight == 0 or running
    return Check("nothing_stuck_in_flight", ok,
                 f"{inflight} in flight, committer {'pid ' + str(pid) if running else 'not running'}"
                 + ("" if ok else "; run `mm queue worker --once` to put them back and commit them"))


CHECKS: tuple[Callable[[store.Connection], Check], ...] = (
    _integrity, _counts, _fingerprints, _ledger)


def run_doctor(settings: Settings) -> dict[str, Any]:
    """All checks; `ok` is true only if every one passes. Never writes."""
    checks: list[Check] = []
    by_fingerprint: dict[str, int] = {}
    conn = store.open_for_read(settings.index_path)
    if conn is None:
        checks.append(Check("index_exists", True, "no index yet: nothing committed"))
    else:
        try:
            checks.extend(check(conn) for check in CHECKS)
            checks.insert(1, _fts_integrity(settings.index_path))
            by_fingerprint = {fp: n for fp, n in conn.execute(
                "SELECT fingerprint, count(*) FROM chunks WHERE fingerprint IS NOT NULL "
                "GROUP BY fingerprint")}
        finally:
            conn.close()
    checks.append(_inflight(settings))
    return {
        "ok": all(c.ok for c in checks),
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        "vectors_by_fingerprint": by_fingerprint,
    }
