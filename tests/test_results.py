"""One result shape: a result's `as_json()` is the JSON `--json`, the web's `/api/` and the MCP
tools return, and it writes what `json.dumps(result, default=str)` wrote before it existed."""

from __future__ import annotations

import json

import numpy as np

from memwal.results import JsonResult, to_json
from memwal.retrieval import Hit, SearchResult


def test_to_json_writes_what_json_dumps_with_default_str_writes() -> None:
    hit = Hit(1, 0.5, "default", "/notes/a.md", 3, 4, ["A", "B"], "text", 7)
    samples = [None, 3, True, 1.5, float("nan"), float("inf"), "x", b"\x00raw", (1, (2, 3)),
               {1: "int key", None: "null key", 2.5: "float key"}, {False: "bool key"},
               {"item": {"content": b"bytes", "tags": (1, 2), "seen": {3}}},
               np.float64(1.25), np.float32(2.5), np.int64(3)]
    for value in samples:
        assert json.dumps(to_json(value)) == json.dumps(value, default=str), value
    assert to_json({"hits": SearchResult([hit]).hits}) == {"hits": [hit.as_json()]}


def test_a_json_result_is_a_dict_whose_as_json_is_plain_json_values() -> None:
    result = JsonResult(item={"content": b"\x00", "tags": (1,)}, ok=True)
    assert result["ok"] is True  # read by key, as the dicts it replaced
    assert result.as_json() == {"item": {"content": "b'\\x00'", "tags": [1]}, "ok": True}
    assert type(result.as_json()) is dict and type(result.as_json()["item"]) is dict
    assert to_json({b"key": 1}) == {"b'key'": 1}  # json.dumps refuses bytes keys outright
