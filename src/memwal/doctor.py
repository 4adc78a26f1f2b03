"""Invariant checks over a home (docs/architecture.md, "Invariants"): what `mm doctor` runs and every test can call.

Doctor reads only. The one exception is FTS5's integrity check, which SQLite spells as an INSERT
and so needs a writable connection: it runs in a transaction that is always rolled back, changes
nothing, and takes the index's write lock only for that moment (never the committer lock).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from memwal import store
from memwal.config import Settings
from memwal.lock import committer_alive
from memwal.status import queue_counts
from memwal.store import reads


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _integrity(conn: store.Connection) -> Check:
    rows = reads.integrity_problems(conn)
    return Check("sqlite_integrity", rows == ["ok"], "; ".join(rows[:5]))


def _counts(conn: store.Connection) -> Check:
    c = reads.row_counts(conn)
    return Check("counts_agree", c.agree,
                 f"chunks {c.chunks}, fts rows {c.fts_rows}, chunks with a vector "
                 f"{c.chunks_with_vector}, vectors {c.vectors}, orphan vectors {c.orphan_vectors}")


def _fingerprints(conn: store.Connection) -> Check:
    active = store.active_model(conn)
    stray = reads.stray_vectors(conn, active.fingerprint if active else None)
    return Check("single_model", stray == 0,
                 f"{stray} vectors not of the active model "
                 f"{active.fingerprint if active else '(none)'}")


def _ledger(conn: store.Connection) -> Check:
    bad = reads.unbalanced_batches(conn)
    detail = "every batch: received = committed + dead-lettered + skipped" if not bad else \
        "; ".join(f"{b[0]}: {b[1]} != {b[2]}+{b[3]}+{b[4]}" for b in bad)
    return Check("ledger_sums", not bad, detail)


def _inflight(settings: Settings) -> Check:
    inflight = queue_counts(settings).inflight
    running, pid = committer_alive(settings.lock_path)
    ok = inflight == 0 or running
    return Check("nothing_stuck_in_flight", ok,
                 f"{inflight} in flight, committer {'pid ' + str(pid) if running else 'not running'}"
                 + ("" if ok else "; run `mm queue worker --once` to put them back and commit them"))


CHECKS: tuple[Callable[[store.Connection], Check], ...] = (
    _integrity, _counts, _fingerprints, _ledger)


def run_doctor(settings: Settings) -> dict[str, Any]:
    """Check the invariants of docs/architecture.md: SQLite and FTS5 integrity, chunk/full-text/vector counts
    agree, every vector is of the active model, every ledger row sums up, nothing is stuck in
    flight without a committer.

    Returns {"ok", "checks": [{"name", "ok", "detail"}], "vectors_by_fingerprint"}: the
    `mm doctor --json` document; `ok` is true only if every check passes.
    """
    checks: list[Check] = []
    by_fingerprint: dict[str, int] = {}
    with store.reading(settings.index_path) as conn:
        if conn is None:
            checks.append(Check("index_exists", True, "no index yet: nothing committed"))
        else:
            checks.extend(check(conn) for check in CHECKS)
            fts_problem = reads.fts_integrity(settings.index_path)
            checks.insert(1, Check("fts_integrity", fts_problem is None, fts_problem or "ok"))
            by_fingerprint = reads.vectors_by_fingerprint(conn)
    checks.append(_inflight(settings))
    return {
        "ok": all(c.ok for c in checks),
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        "vectors_by_fingerprint": by_fingerprint,
    }
