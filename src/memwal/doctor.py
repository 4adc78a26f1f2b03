"""Invariant checks over a home (docs/architecture.md, "Invariants"): what `mm doctor` runs and
every test can call.

Doctor reads only. The one exception is FTS5's integrity check, which SQLite spells as an INSERT
and so needs a writable connection: it runs in a transaction that is always rolled back, changes
nothing, and takes the index's write lock only for that moment (never the committer lock); on a
read-only home it is skipped and says so. A damaged file never stops doctor: it is a failed check
that names the file and the way to recover, and the other checks still run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from memwal import store
from memwal.config import Settings
from memwal.errors import as_memwal_error, is_damage
from memwal.lock import committer_alive
from memwal.queue import Role, open_queue
from memwal.results import JsonResult
from memwal.store import reads
from memwal.worker import read_failure


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _integrity(conn: store.Connection, settings: Settings) -> Check:
    rows = reads.integrity_problems(conn)
    return Check("sqlite_integrity", rows == ["ok"], "; ".join(rows[:5]))


def _fts(conn: store.Connection, settings: Settings) -> Check:
    if not os.access(settings.home, os.W_OK):
        return Check("fts_integrity", True, "skipped: the home is read-only (the check needs a "
                                            "writable connection; counts_agree still runs)")
    problem = reads.fts_integrity(settings.index_path)
    return Check("fts_integrity", problem is None, problem or "ok")


def _counts(conn: store.Connection, settings: Settings) -> Check:
    c = reads.row_counts(conn)
    return Check("counts_agree", c.agree,
                 f"chunks {c.chunks}, fts rows {c.fts_rows}, chunks with a vector "
                 f"{c.chunks_with_vector}, vectors {c.vectors}, orphan vectors {c.orphan_vectors}")


def _fingerprints(conn: store.Connection, settings: Settings) -> Check:
    active = store.active_model(conn)
    stray = reads.stray_vectors(conn, active.fingerprint if active else None)
    return Check("single_model", stray == 0,
                 f"{stray} vectors not of the active model "
                 f"{active.fingerprint if active else '(none)'}")


def _vectors(conn: store.Connection, settings: Settings) -> Check:
    active = store.active_model(conn)
    if active is None or not store.has_vector_table(conn):
        return Check("vectors_sound", True, "no vectors yet")
    bad, described = reads.bad_vectors(conn, active.dim)
    return Check("vectors_sound", bad == 0,
                 f"every vector holds {active.dim} finite float32 values" if not bad else
                 f"{bad} vectors are not {active.dim} finite float32 values: {'; '.join(described)}")


def _migration(conn: store.Connection, settings: Settings) -> Check:
    """A migration's shadow vectors: each of a stored chunk, each of the target's dimension."""
    state = store.migration(conn)
    if state is None:
        return Check("migration_sound", True, "no migration in progress")
    orphans, wrong = reads.unsound_shadow_vectors(conn, state.target.dim)
    covered, total = reads.migration_coverage(conn)
    return Check("migration_sound", orphans == 0 and wrong == 0,
                 f"migrating to {state.target.name}: {covered}/{total} chunks covered; "
                 f"{orphans} shadow vectors of no chunk, {wrong} not of {state.target.dim} values")


def _ledger(conn: store.Connection, settings: Settings) -> Check:
    bad = reads.unbalanced_batches(conn)
    detail = "every batch: received = committed + dead-lettered + skipped" if not bad else \
        "; ".join(f"{b[0]}: {b[1]} != {b[2]}+{b[3]}+{b[4]}" for b in bad)
    return Check("ledger_sums", not bad, detail)


def _inflight(settings: Settings) -> Check:
    """Nothing in flight without a committer, and nothing leased longer than
    `queue.lease_timeout` while one runs: a live committer holds a lease for one group commit
    (seconds), so a lease that old is one it lost track of, and order waits on it."""
    timeout = settings["queue.lease_timeout"]
    queue = open_queue(settings, Role.READER)
    try:
        inflight, holder = queue.counts().inflight, queue.holder()
        stuck = queue.stuck(timeout) if inflight else []
    finally:
        queue.close()
    running, pid = committer_alive(settings.lock_path)
    who = f"pid {pid}" if running else holder if holder is not None else "not running"
    detail = f"{inflight} in flight, committer {who}"
    if not running and holder is None:
        ok = inflight == 0
        return Check("nothing_stuck_in_flight", ok, detail + (
            "" if ok else "; run `mm queue worker --once` to put them back and commit them"))
    if not stuck:
        return Check("nothing_stuck_in_flight", True, detail)
    oldest = min(stuck, key=lambda lease: lease.since)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(oldest.since))
    return Check("nothing_stuck_in_flight", False,
                 f"{detail}; {len(stuck)} leased longer than queue.lease_timeout ({timeout:g} s): "
                 f"positions {_spans([lease.position for lease in stuck])}, since {when} (held "
                 f"{oldest.held_for:.0f} s). Nothing after them is committed in order until they "
                 "are put back: restart the committer (`mm queue worker`), which puts them back at "
                 "their place; see docs/operations.md ('A stuck committer')")


def _spans(positions: list[int], most: int = 10) -> str:
    """Positions as runs ("222-226, 230"), the first `most` runs, then how many more."""
    runs: list[list[int]] = []
    for position in sorted(positions):
        if runs and position == runs[-1][1] + 1:
            runs[-1][1] = position
        else:
            runs.append([position, position])
    shown = [f"{a}-{b}" if b > a else str(a) for a, b in runs[:most]]
    return ", ".join(shown) + (f" and {len(runs) - most} more runs" if len(runs) > most else "")


def _last_index_applied(settings: Settings) -> Check:
    from memwal import notapplied
    from memwal.committed import Committed

    with open_queue(settings, Role.READER) as queue:
        committed = Committed(settings, queue)
        try:
            def digest(namespace: str, source: str) -> str | None:
                found = committed.view(namespace, "").file(source)
                return None if found is None else found.digest

            differ = notapplied.disagreements(settings, digest)
        finally:
            committed.close()
    if not differ:
        return Check("last_index_applied", True, "what the last mm index read is committed")
    shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
    return Check("last_index_applied", False,
                 f"{len(differ)} files hold other content than what is committed for them: a "
                 f"newer read by another producer was committed after the last mm index read "
                 f"them ({shown}); run `mm index` on them again")


def _queue_kept(settings: Settings) -> Check:
    """No queue was lost or re-created with batches in it (memwal.queuewatch), and no Redis
    queue of an older memwal still holds this home's batches."""
    from memwal.queue import legacy_backlog
    from memwal.status import queue_status

    lost = queue_status(settings)["lost"]
    loud = [incident for incident in lost if incident["loud"]]
    backlog = legacy_backlog(settings)
    problems = [incident["detail"] for incident in loud]
    if backlog is not None:
        problems.append(f"the Redis queue {backlog[0]} (this home's queue before home ids) still "
                        f"holds {backlog[1]} batches that no committer takes: set queue.name to "
                        f"{backlog[0]} on the home whose batches they are and the homes that write "
                        "to it, or drain it with the memwal that queued them")
    quiet = [incident["detail"] for incident in lost if not incident["loud"]]
    return Check("queue_kept", not problems,
                 " | ".join(problems) if problems else
                 "; ".join(quiet) or "the queue is the one the committer has been reading")


def _vector_index(settings: Settings) -> Check:
    from memwal.vectorindex.reads import check

    ok, detail = check(settings)
    return Check("vector_index", ok, detail)


def _progress(settings: Settings) -> Check:
    failure = read_failure(settings)
    if failure is None:
        return Check("committer_progress", True, "no committer has stopped on an error since the "
                                                 "last commit")
    at = failure.get("at")  # a time.time(), unless someone edited the file
    when = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if isinstance(at, (int, float))
            else "an unknown time")
    return Check("committer_progress", False,
                 f"the committer stopped at queue position {failure.get('position')} at {when} "
                 f"(pid {failure.get('pid')}): {failure.get('error')}. Every committer stops there "
                 "until the cause is fixed; see docs/operations.md ('A stuck committer')")


INDEX_CHECKS: dict[str, Callable[[store.Connection, Settings], Check]] = {
    "sqlite_integrity": _integrity, "fts_integrity": _fts, "counts_agree": _counts,
    "single_model": _fingerprints, "vectors_sound": _vectors, "ledger_sums": _ledger,
    "migration_sound": _migration}


def _guarded(name: str, check: Callable[[], Check],
             damaged: Callable[[BaseException], Any] | None = None) -> Check:
    """A check; a damaged or unreadable file is this check failing, with the error's fix."""
    try:
        return check()
    except Exception as exc:
        error = (damaged(exc) if damaged and is_damage(exc) else None) or as_memwal_error(exc)
        if error is None:
            raise
        return Check(name, False, str(error))


def run_doctor(settings: Settings) -> JsonResult:
    """Check the invariants of docs/architecture.md: SQLite and FTS5 integrity, chunk/full-text/
    vector counts agree, every vector is of the active model and holds finite values of its
    dimension, every ledger row sums up, nothing is in flight without a committer nor leased
    longer than `queue.lease_timeout` while one runs, no committer has stopped on an error it
    will meet again, and no queue was lost under its committer with batches in it (until the
    loss is dismissed with `mm queue lost --dismiss`).

    Returns {"ok", "checks": [{"name", "ok", "detail"}], "vectors_by_fingerprint", "warnings"}
    (a JsonResult): the `mm doctor --json` document; `ok` is true only if every check passes.
    A damaged index or queue is a failed check naming the file and the way to recover, never
    an exception.
    """
    checks: list[Check] = []
    by_fingerprint: dict[str, int] = {}

    def damaged(exc: BaseException) -> Any:
        return store.damaged(settings.index_path, exc)

    def index_checks() -> Check:
        with store.reading(settings.index_path) as conn:
            if conn is None:
                return Check("index_readable", True, "no index yet: nothing committed")
            for name, check in INDEX_CHECKS.items():
                checks.append(_guarded(name, lambda: check(conn, settings), damaged))
            by_fingerprint.update(_guarded_value(lambda: reads.vectors_by_fingerprint(conn), {}))
        return Check("index_readable", True, "ok")

    checks.insert(0, _guarded("index_readable", index_checks))
    checks.append(_guarded("nothing_stuck_in_flight", lambda: _inflight(settings)))
    checks.append(_guarded("committer_progress", lambda: _progress(settings)))
    checks.append(_guarded("queue_kept", lambda: _queue_kept(settings)))
    checks.append(_guarded("vector_index", lambda: _vector_index(settings)))
    checks.append(_guarded("last_index_applied", lambda: _last_index_applied(settings)))
    return JsonResult({
        "ok": all(c.ok for c in checks),
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        "vectors_by_fingerprint": by_fingerprint,
        "warnings": _warnings(settings),
    })


def _warnings(settings: Settings) -> list[str]:
    """What does not break an invariant but can lose data: the queue's persistence settings."""
    try:
        queue = open_queue(settings, Role.READER)
        try:
            warning = queue.durability()
        finally:
            queue.close()
    except Exception as exc:
        if as_memwal_error(exc) is None:
            raise
        return []  # an unreachable or damaged queue is a failed check already
    return [warning] if warning else []


def repair(settings: Settings) -> JsonResult:
    """Rebuild what is derived from the index (the vector index) from the index itself.

    Never touches the index, the queue or the dead letters; safe while a committer runs.
    """
    from memwal.vectorindex.writes import rebuild

    return JsonResult(vector_index=rebuild(settings))


def _guarded_value(read: Callable[[], dict[str, int]], fallback: dict[str, int]) -> dict[str, int]:
    try:
        return read()
    except Exception as exc:
        if as_memwal_error(exc) is None:
            raise
        return fallback
