"""The `mm` console script: the fast path of `mm search` first, then the full command line."""

from __future__ import annotations

import faulthandler
import signal
import sys
from typing import Any


def run() -> Any:  # pragma: no cover - console script shim
    # `kill -USR1 <pid>` prints where every thread of a running mm is, without stopping it:
    # how an operator (or a test that timed out) learns what a stuck command waits for.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    argv = sys.argv[1:]
    if argv[:1] == ["search"]:
        from memwal.cli.fast import search_fast

        code = search_fast(argv[1:])
        if code is not None:
            sys.exit(code)
    from memwal.cli.app import run as full

    return full()
