"""How far a model migration is (memwal.migration): what `mm status`, `mm embedding-reset`,
`mem_status` and the web page show. Read-only, and light to import (no producer, no model)."""

from __future__ import annotations

import time
from typing import Any

from memwal import store
from memwal.progress import eta
from memwal.store import reads


def progress(covered: int, total: int, per_second: float | None) -> dict[str, Any]:
    """Covered/total, the rate (chunks per second) and the seconds left at that rate."""
    seconds = eta(total - covered, per_second)
    return {"covered": covered, "total": total,
            "rate_per_second": None if per_second is None else round(per_second, 1),
            "eta_seconds": None if seconds is None else round(seconds, 1)}


def status_of(conn: store.Connection | None) -> dict[str, Any] | None:
    """The migration in progress as `mm status`, `mem_status` and the web page show it: its
    model, covered/total, the average rate since it started and the ETA; None if none runs."""
    state = store.migration(conn)
    if state is None or conn is None:
        return None
    covered, total = reads.migration_coverage(conn)
    elapsed = max(time.time() - state.started_at, 1e-6)
    per_second = covered / elapsed if covered else None
    return {"target": state.target.as_dict(), "started_at": state.started_at,
            **progress(covered, total, per_second)}


def published_status(state: dict[str, Any]) -> dict[str, Any] | None:
    """The migration as a shared queue's committer published it (a home without the index):
    its model and start only, coverage being counted on the committer's machine."""
    published = state.get("migration")
    return {"target": published["target"], "started_at": published["started_at"]} \
        if published else None
