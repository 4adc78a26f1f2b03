"""Named points where a test stops a real memwal process at a chosen moment.

`MM_FAULT=<name>` makes the process, on reaching `point(name)`, create the file named by
`MM_FAULT_MARKER` and wait there forever: the test sees the file appear (an event, not a
timer) and kills the process exactly at that point. Unset, a point costs one dictionary lookup.
`pause(name)` is the same point without the kill: the process goes on once the file named by
`MM_FAULT_RESUME` exists, so a test can act while it is held there.
"""

from __future__ import annotations

import os
import threading


def point(name: str) -> None:
    if os.environ.get("MM_FAULT") != name:
        return
    marker = os.environ.get("MM_FAULT_MARKER")
    if marker:
        with open(marker, "w") as handle:
            handle.write(f"{os.getpid()}\n")
    threading.Event().wait()  # until the test kills us


def pause(name: str) -> None:
    if os.environ.get("MM_FAULT") != name:
        return
    resume = os.environ.get("MM_FAULT_RESUME", "")
    marker = os.environ.get("MM_FAULT_MARKER")
    if marker and not os.path.exists(resume):
        with open(marker, "w") as handle:
            handle.write(f"{os.getpid()}\n")
    while not os.path.exists(resume):  # a file the test writes: an event, not a timer
        threading.Event().wait(0.01)
