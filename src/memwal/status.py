"""Read-only views of a home's state: the queue, the committer, the ledger, the active model."""

from __future__ import annotations

from typing import Any

from memwal import store
from memwal.config import Settings
from memwal.lock import committer_alive
from memwal.queue import queue_counts


def ledger_totals(conn: store.Connection | None) -> dict[str, int]:
    """Batches in the ledger and the item counts they add up to."""
    if conn is None:
        return {"batches": 0, "received": 0, "committed": 0, "dead_lettered": 0, "skipped": 0}
    row = conn.execute("SELECT count(*), coalesce(sum(received),0), coalesce(sum(committed),0), "
                       "coalesce(sum(dead_lettered),0), coalesce(sum(skipped),0) FROM ledger").fetchone()
    return dict(zip(("batches", "received", "committed", "dead_lettered", "skipped"), map(int, row)))


def queue_status(settings: Settings) -> dict[str, Any]:
    """The `mm queue status --json` document."""
    pending, inflight = queue_counts(settings.queue_path)
    running, pid = committer_alive(settings.lock_path)
    conn = store.open_for_read(settings.index_path)
    try:
        model = store.active_model(conn)
        dead = conn.execute("SELECT count(*) FROM dead_letters WHERE replayed_by IS NULL"
                            ).fetchone()[0] if conn else 0
        ledger = ledger_totals(conn)
    finally:
        if conn is not None:
            conn.close()
    return {
        "pending": pending,
        "inflight": inflight,
        "dead_letters": int(dead),
        "committer": {"running": running, "pid": pid},
        "active_model": model.as_dict() if model else None,
        "ledger": {k: ledger[k] for k in ("batches", "committed", "dead_lettered", "skipped")},
    }


def _size(path) -> int:  # type: ignore[no-untyped-def]
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def index_status(settings: Settings) -> dict[str, Any]:
    """The `mm status --json` document."""
    from memwal.embedders import configured_embedder

    embedder = configured_embedder(settings)
    conn = store.open_for_read(settings.index_path)
    try:
        if conn is None:
            chunks = files = 0
            namespaces: list[str] = []
            by_fingerprint: dict[str, int] = {}
            model = None
        else:
            chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
            files = conn.execute("SELECT count(*) FROM files").fetchone()[0]
            namespaces = [r[0] for r in conn.execute(
                "SELECT DISTINCT namespace FROM chunks ORDER BY namespace")]
            by_fingerprint = {fp: n for fp, n in conn.execute(
                "SELECT fingerprint, count(*) FROM chunks WHERE fingerprint IS NOT NULL "
                "GROUP BY fingerprint")}
            model = store.active_model(conn)
    finally:
        if conn is not None:
            conn.close()
    return {
        "home": str(settings.home),
        "chunks": chunks,
        "files": files,
        "namespaces": namespaces,
        "vectors_by_fingerprint": by_fingerprint,
        "active_model": model.as_dict() if model else None,
        "configured_model": embedder.info.as_dict(),
        "queue": queue_status(settings),
        "index_bytes": _size(settings.index_path) if settings.index_path.exists() else 0,
        "queue_bytes": _size(settings.queue_path) if settings.queue_path.exists() else 0,
    }
