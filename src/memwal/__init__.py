"""memwal: a local-first memory index whose every write goes through a durable queue.

Data flows one way: discover → chunk → diff → embed → enqueue → commit → search.

`__all__` is the public API: what the CLI, an MCP server, a web app or a script imports. Every
function takes the `Settings` of one home (`load_settings`) first; every result type has `as_json()`
(what `--json`, the web's `/api/` and the MCP tools return); every error a user can cause is a
`MemwalError` carrying its exit code, HTTP status and a one-line fix. docs/api.md describes
each name (generated from these docstrings by docs/gen_api.py; a test keeps it current).

Names are imported on first use, so `import memwal` stays cheap for a command that needs only a
part of it (a cold `mm search` must not pay for the indexer's imports).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from memwal.errors import (
    EXIT_BUSY, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CommitterBusy, ConfigError,
    DeadLetterError, DeadLetterNotFound, IndexUnavailable, MemwalError, MigrationError,
    ModelMismatch, NoIndexHere,
    NotFound, PathError,
    QueueError, QueueOwned, QueueUnavailable, SchemaTooNew, SearchUnavailable,
    StorageError, UnknownModel, UsageError, as_memwal_error,
)

__version__ = "0.1.0"

# name → the module that defines it (imported when the name is first used).
_LAZY: dict[str, str] = {
    # configuration
    "Settings": "memwal.config",
    "load_settings": "memwal.config",
    # results: every one has as_json(); those that are JSON documents already are JsonResults
    "JsonResult": "memwal.results",
    # writing: everything goes through the queue
    "index_paths": "memwal.producer",
    "index_paths_async": "memwal.producer",
    "enqueue_items": "memwal.producer",
    "add_note": "memwal.producer",
    "IndexReport": "memwal.producer",
    "Progress": "memwal.progress",
    "wait_committed": "memwal.worker",
    "run_worker": "memwal.worker",
    # reading
    "search": "memwal.retrieval",
    "search_async": "memwal.retrieval",
    "Searcher": "memwal.retrieval",
    "SearchResult": "memwal.retrieval",
    "Hit": "memwal.retrieval",
    "index_status": "memwal.status",
    "queue_status": "memwal.status",
    "throughput": "memwal.status",
    "queue_losses": "memwal.status",
    "dismiss_queue_losses": "memwal.queuewatch",
    "run_doctor": "memwal.doctor",
    "repair": "memwal.doctor",
    # dead letters
    "Selection": "memwal.deadletters",
    "ReplayPlan": "memwal.deadletters",
    "list_dead_letters": "memwal.deadletters",
    "show_dead_letter": "memwal.deadletters",
    "export_dead_letters": "memwal.deadletters",
    "replay_dead_letters": "memwal.deadletters",
    "ReplayResult": "memwal.deadletters",
    "replay_result": "memwal.deadletters",
    "purge_dead_letters": "memwal.deadletters",
    # the model
    "reset_status": "memwal.reset",
    # notes written for agents, and the roots they may name
    "write_note": "memwal.notes",
    "inside_roots": "memwal.notes",
    "watch": "memwal.watcher",
    # the long-lived servers
    "ServerOptions": "memwal.server",
    "serve_stdio": "memwal.server",
    "serve_http": "memwal.server",
    "enqueue_reset": "memwal.reset",
    # a model swap without downtime
    "migrate_model": "memwal.migration",
    "cancel_migration": "memwal.migration",
    "MigrationReport": "memwal.migration",
}

__all__ = [
    "__version__",
    *_LAZY,
    "MemwalError", "UsageError", "ConfigError", "UnknownModel", "ModelMismatch", "SchemaTooNew",
    "IndexUnavailable", "NotFound", "DeadLetterError", "DeadLetterNotFound", "PathError",
    "QueueError", "QueueOwned", "QueueUnavailable", "StorageError", "CommitterBusy",
    "NoIndexHere", "SearchUnavailable", "MigrationError",
    "as_memwal_error",
    "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_BUSY", "EXIT_INTERRUPTED",
]

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from memwal.config import Settings, load_settings
    from memwal.deadletters import (
        ReplayPlan, ReplayResult, Selection, export_dead_letters, list_dead_letters,
        purge_dead_letters, replay_dead_letters, replay_result, show_dead_letter,
    )
    from memwal.doctor import repair, run_doctor
    from memwal.producer import IndexReport, add_note, enqueue_items, index_paths, index_paths_async
    from memwal.notes import inside_roots, write_note
    from memwal.progress import Progress
    from memwal.reset import enqueue_reset, reset_status
    from memwal.migration import MigrationReport, cancel_migration, migrate_model
    from memwal.server import ServerOptions, serve_http, serve_stdio
    from memwal.watcher import watch
    from memwal.retrieval import Hit, Searcher, SearchResult, search, search_async
    from memwal.queuewatch import dismiss_queue_losses
    from memwal.results import JsonResult
    from memwal.status import index_status, queue_losses, queue_status, throughput
    from memwal.worker import run_worker, wait_committed


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memwal' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
