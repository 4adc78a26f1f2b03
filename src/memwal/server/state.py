"""What one long-lived server process keeps for its whole life."""

from __future__ import annotations

from dataclasses import dataclass, field

import memwal
from memwal.migration import BackgroundMigration


@dataclass
class ServerState:
    """The home's settings, one warm Searcher (one read connection, one embedder), and the
    server's choices: whether destructive tools exist, and whether waiting for a commit may take
    the committer role (only a server started with `--worker` commits)."""

    settings: memwal.Settings
    allow_destructive: bool = False
    take_role: bool = False
    searcher: memwal.Searcher = field(init=False)
    local_searches: int = field(default=0, init=False)  # answered for `mm search` (local.py)
    migration: BackgroundMigration = field(init=False)  # one per server, started on request

    def __post_init__(self) -> None:
        self.searcher = memwal.Searcher(self.settings)
        self.migration = BackgroundMigration(self.settings)

    def close(self) -> None:
        self.migration.close()  # stopped between two batches: resumable
        self.searcher.close()
