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
