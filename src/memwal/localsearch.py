"""The local search protocol between `mm search` and a running `mm serve` (one JSON line each way).

Shared by the server's side (server/local.py) and the command line's fast path (cli/fast.py),
and cheap to import: the fast path must not pay for what it saves.
"""

from __future__ import annotations

import json
from typing import Any

SOCKET = "serve.sock"  # in the home (0700); the socket itself is 0600
VERSION = 1


def comparable(settings: Any) -> dict[str, Any]:
    """What must match between caller and server for the server to answer for the caller."""
    return json.loads(json.dumps({"home": str(settings.home), **settings.values}, default=list))
