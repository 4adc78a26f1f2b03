"""Named points where a test stops a real memwal process at a chosen moment.

`MM_FAULT=<name>` makes the process, on reaching `point(name)`, create the file named by
`MM_FAULT_MARKER` and wait there forever: the test sees the file appear (an event, not a
timer) and kills the process exactly at that point. Unset, a point costs one dictionary lookup.
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
