"""Named points where a test stops a real memwal process at a chosen moment.

A point fires only when both `MM_FAULT=<name>` and `MM_FAULT_MARKER=<file>` are set: a stray
`MM_FAULT` in a user's environment does nothing. On reaching `point(name)`, the process creates
the marker file and waits there forever: the test sees the file appear (an event, not a timer)
and kills the process exactly at that point. Unarmed, a point costs a set and a dictionary lookup.
`pause(name)` is the same point without the kill: the process goes on once the file named by
`MM_FAULT_RESUME` exists, so a test can act while it is held there.

Every point is named in `POINTS`; `point` and `pause` refuse any other name, and a test checks
that the names the source passes and the names listed here are the same.
"""

from __future__ import annotations

import os
import threading

POINTS = frozenset({
    "batch-enqueued",       # producer: a batch is durable in the queue (a pause)
    "group-before-commit",  # committer: a group of batches applied, its transaction not committed
    "group-committed",      # committer: a group committed, not yet acknowledged to the queue
    "ann-before-rename",    # vector index merge: a segment file written and fsynced, not renamed
    "ann-before-stamp",     # vector index merge: every new segment file in place, not yet in current.json
    "migration-batch",      # migrator: a batch of shadow vectors is durable in the queue (a pause)
    "migration-before-cutover",  # migrator: every chunk covered, the new graph built, no cutover queued
    "migration-cut-over",   # migrator: the cutover committed, the new graph not yet current
})


def _marker(name: str) -> str | None:
    """The marker file if the point `name` is armed in this process, else None."""
    if name not in POINTS:
        raise ValueError(f"{name!r} is not a fault point (faults.POINTS)")
    if os.environ.get("MM_FAULT") != name:
        return None
    return os.environ.get("MM_FAULT_MARKER") or None


def point(name: str) -> None:
    """Armed: write the marker file and wait until the test kills the process."""
    marker = _marker(name)
    if marker is None:
        return
    with open(marker, "w") as handle:
        handle.write(f"{os.getpid()}\n")
    threading.Event().wait()  # until the test kills us


def pause(name: str) -> None:
    """Armed: write the marker file and wait until the file `MM_FAULT_RESUME` names exists."""
    marker = _marker(name)
    if marker is None:
        return
    resume = os.environ.get("MM_FAULT_RESUME", "")
    if not os.path.exists(resume):
        with open(marker, "w") as handle:
            handle.write(f"{os.getpid()}\n")
    while not os.path.exists(resume):  # a file the test writes: an event, not a timer
        threading.Event().wait(0.01)
