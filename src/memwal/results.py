"""The one shape every public result leaves in: its `as_json()`, JSON-ready values.

`mm … --json`, the web's `/api/` and the MCP tools return the same values for one result: its
`as_json()`. A typed result (a dataclass: `IndexReport`, `Hit`, `ReplayResult`…) says how it
is written in its own `as_json`. A result that is a JSON document already (a status view,
doctor's report, a dead letter) is a `JsonResult`: a dict, read by key as ever, whose
`as_json()` is `to_json` of it.
"""

from __future__ import annotations

import json
from typing import Any


def to_json(value: Any) -> Any:
    """`value` as JSON-ready values, as `json.dumps(value, default=str)` would write them.

    Containers are copied (tuples become lists, keys are written as JSON writes them), a value
    with an `as_json()` is that, any other value that JSON has no type for is its `str` (the
    bytes of a malformed item: `b'…'`).
    """
    if value is None or isinstance(value, (str, int, float)):  # bool is an int
        return value
    if isinstance(value, dict):
        return {_key(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    as_json = getattr(value, "as_json", None)
    return to_json(as_json()) if callable(as_json) else str(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (int, float)):
        return json.dumps(key)  # what JSON writes: 1 -> "1", True -> "true", None -> "null"
    return str(key)  # (json.dumps refuses other keys, such as a malformed item's bytes)


class JsonResult(dict[str, Any]):
    """A result that is a JSON document: a dict (`status["chunks"]`), and `as_json()` like
    every result type (a JSON-ready copy, for `--json`, the web's `/api/` and MCP tools)."""

    def as_json(self) -> dict[str, Any]:
        """The document as JSON-ready values (`to_json`): what `--json` prints."""
        return to_json(self)


# Fields that hold a time as seconds since the epoch (besides every `..._at`): a queue
# incident's `at`, a watcher's `last_pass`.
EPOCH_FIELDS = frozenset({"at", "last_pass"})


def with_iso_times(value: Any) -> Any:
    """`value` with an ISO 8601 twin (UTC) next to every epoch-seconds field, at any depth:
    `last_commit_at: 1796591671.29` gains `last_commit_at_iso: "2026-12-05T10:34:31.286Z"`
    right after it (None for None). The epoch field stays as it was: scripts read it.

    An epoch field is a key ending in `_at`, or one of EPOCH_FIELDS, whose value is a number
    or None. A dict keeps its type (a JsonResult stays one).
    """
    if isinstance(value, list):
        return [with_iso_times(item) for item in value]
    if not isinstance(value, dict):
        return value
    shown = type(value)() if isinstance(value, JsonResult) else {}
    for key, item in value.items():
        shown[key] = with_iso_times(item)
        if (isinstance(key, str) and (key.endswith("_at") or key in EPOCH_FIELDS)
                and f"{key}_iso" not in value and _is_time(item)):
            shown[f"{key}_iso"] = iso_time(item)
    return shown


def _is_time(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def iso_time(seconds: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 in UTC, to the millisecond (`...T10:34:31.286Z`);
    None for None or a value no date has."""
    from datetime import datetime, timezone

    if seconds is None:
        return None
    try:
        moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
