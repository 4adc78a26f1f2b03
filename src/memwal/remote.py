"""A home whose index lives on another machine: a producer of a shared (Redis) queue.

Such a home has no index of its own. What it shows about the index (`mm status`, `mm queue
status`, `mm embedding-reset`, the web page) is what the queue's committer published with its
last commit (memwal.committed.Publisher: who commits and where, the active model, the ledger's
and the index's totals); what it searches is the committer's index, through a `mm serve` there
(`search.url`), or nothing, saying so (NoIndexHere). Never "the index is empty".

Cheap to import (the fast path of `mm search` may need it): no model, no numpy, no Redis until
a shared queue is opened.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from memwal.config import Settings
from memwal.errors import NoIndexHere, SearchUnavailable

TOKEN_ENV = "MM_SEARCH_TOKEN"  # the bearer token of the server `search.url` names
FORWARDED = "X-Memwal-Forwarded"  # a search asked by another home: answer it, never pass it on


@dataclass(frozen=True)
class Elsewhere:
    """The index is on another home: what its committer last published, and who holds the
    queue now (`holder`: "host pid N", None when no committer runs)."""

    state: dict[str, Any]
    holder: str | None

    @property
    def committer(self) -> dict[str, Any]:
        return self.state.get("committer") or {}

    @property
    def summary(self) -> dict[str, Any]:
        return self.state.get("summary") or {}

    def where(self) -> str:
        """`host:home` of the index, as its committer published it (or why it is unknown)."""
        committer = self.committer
        if committer.get("host"):
            return f"{committer['host']}:{committer.get('home') or '?'}"
        return "the machine of the shared queue's committer (none has published yet)"


def elsewhere(settings: Settings) -> Elsewhere | None:
    """The published state when this home's queue is shared and its index is another home's."""
    if settings["queue.backend"] != "redis":
        return None
    from memwal.queue import Role, open_queue

    queue = open_queue(settings, Role.READER)
    try:
        return elsewhere_of(settings, queue)
    finally:
        queue.close()


def elsewhere_of(settings: Settings, queue: Any) -> Elsewhere | None:
    """`elsewhere` with the home's queue already open."""
    if queue.publication is None:
        return None
    state = queue.publication.published_state() or {}
    committer = state.get("committer") or {}
    if committer.get("host"):  # the committer says where its index is: is that this home?
        if (committer["host"], committer.get("home")) == (socket.gethostname(), str(settings.home)):
            return None
    elif settings.index_path.exists():
        return None  # nothing published yet, and an index here: this is the committer's home
    return Elsewhere(state, queue.holder())


# -- status, as the committer published it -------------------------------------------------


def committer_status(place: Elsewhere) -> dict[str, Any]:
    """The committer: running or not (from the queue's claim, live), its host and pid."""
    holder = place.holder
    host, pid = None, None
    if holder is not None:
        host, _, number = holder.rpartition(" pid ")
        pid = int(number) if number.isdigit() else None
    return {"running": holder is not None, "pid": pid, "host": host or None,
            **({"holder": holder} if holder is not None else {}),
            "home": place.committer.get("home")}


def index_location(place: Elsewhere | None, settings: Settings) -> dict[str, Any]:
    """Where the index is: this home, or the committer's (with when it last published)."""
    if place is None:
        return {"here": True, "host": socket.gethostname(), "home": str(settings.home)}
    return {"here": False, "host": place.committer.get("host"),
            "home": place.committer.get("home"), "published_at": place.state.get("published_at")}


def queue_status(place: Elsewhere, counts: Any, oldest_age: float | None,
                 settings: Settings) -> dict[str, Any]:
    """`mm queue status --json` on a home whose index is elsewhere (same keys as at home)."""
    summary = place.summary
    return {
        "pending": counts.pending,
        "inflight": counts.inflight,
        "dead_letters": int(summary.get("dead_letters", 0)),
        "committer": committer_status(place),
        "oldest_pending_age": oldest_age,
        "last_commit_at": summary.get("last_commit_at"),
        "active_model": place.state.get("active"),
        "ledger": summary.get("ledger") or dict.fromkeys(
            ("batches", "committed", "dead_lettered", "skipped"), 0),
        "index": index_location(place, settings),
    }


def index_counts(place: Elsewhere) -> dict[str, Any]:
    """The index's counts for `mm status`, as published."""
    summary = place.summary
    return {"chunks": summary.get("chunks", 0), "files": summary.get("files", 0),
            "namespaces": summary.get("namespaces", []),
            "vectors_by_fingerprint": summary.get("vectors_by_fingerprint", {}),
            "active_model": place.state.get("active")}


# -- search through the committer's `mm serve` ---------------------------------------------


def no_index_here(settings: Settings, place: Elsewhere | None) -> NoIndexHere:
    where = place.where() if place is not None else "another machine"
    return NoIndexHere(
        f"this home ({settings.home}) has no index to search: its queue is shared, and the index "
        f"is on {where}.",
        "Point this home at a `mm serve` running there: set search.url (config.json, or env "
        "MM_SEARCH_URL=http://HOST:PORT; its --token in env MM_SEARCH_TOKEN), or search on "
        "that machine.")


def search(url: str, query: str, *, namespace: str | None, source_glob: str | None,
           top_k: int, max_per_doc: int | None, timeout: float = 60.0) -> dict[str, Any]:
    """Ask the `mm serve` at `url` (its /api/search); its JSON: {"hits": [...], "warnings": [...]}.

    Raises SearchUnavailable when it cannot be reached or answers with an error (its message).
    """
    from urllib.error import HTTPError, URLError
    from urllib.parse import urlencode
    from urllib.request import Request, urlopen

    params = {"q": query, "k": top_k, "namespace": namespace, "source": source_glob,
              "max_per_doc": max_per_doc}
    address = f"{url}/api/search?" + urlencode({k: v for k, v in params.items() if v is not None})
    headers = {FORWARDED: "1", "Accept": "application/json"}
    if os.environ.get(TOKEN_ENV):
        headers["Authorization"] = f"Bearer {os.environ[TOKEN_ENV]}"
    fix = f"Check that `mm serve` runs at {url} (search.url), and its token (env {TOKEN_ENV})."
    started = time.monotonic()
    try:
        with urlopen(Request(address, headers=headers), timeout=timeout) as answer:
            data = json.loads(answer.read())
    except HTTPError as exc:
        raise SearchUnavailable(f"the search server at {url} answered {exc.code}: "
                                f"{_error_text(exc)}.", fix) from None
    except (URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SearchUnavailable(f"the search server at {url} cannot be reached ({reason}, after "
                                f"{time.monotonic() - started:.1f} s).", fix) from None
    if not isinstance(data, dict) or not isinstance(data.get("hits"), list):
        raise SearchUnavailable(f"{url} did not answer as `mm serve` does (no hits).", fix)
    return data


def _error_text(exc: Any) -> str:
    """The message of a `mm serve` error answer ({"error": {"message": ...}})."""
    try:
        error = json.loads(exc.read()).get("error", {})
        return " ".join(str(error.get(k, "")) for k in ("message", "fix")).strip() or str(exc.reason)
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)
