"""Fault points: only named ones exist, and only a test (which sets the marker) can arm one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import MM
from memwal import faults

SRC = Path(__file__).resolve().parent.parent / "src" / "memwal"
CALL = re.compile(r"faults\.(?:point|pause)\(([^)]*)\)")


def test_every_fault_point_in_the_source_is_listed_and_every_listed_one_is_used() -> None:
    used: set[str] = set()
    for path in SRC.rglob("*.py"):
        for argument in CALL.findall(path.read_text(encoding="utf-8")):
            literal = re.fullmatch(r'\s*"([^"]+)"\s*', argument)
            assert literal, f"{path.name}: faults called with {argument!r}, not a literal name"
            assert literal.group(1) in faults.POINTS, f"{path.name}: {literal.group(1)} is not listed"
            used.add(literal.group(1))
    assert used == faults.POINTS


@pytest.mark.parametrize("call", [faults.point, faults.pause])
def test_an_unlisted_fault_point_is_refused(call, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MM_FAULT", raising=False)
    with pytest.raises(ValueError, match="not a fault point"):
        call("no-such-point")


@pytest.mark.parametrize("point", ["batch-enqueued", "group-committed"])
def test_mm_fault_without_the_marker_does_not_hold_mm_index(mm: MM, notes: Path, point: str) -> None:
    """A stray MM_FAULT in a user's environment: `mm index` passes the point and finishes."""
    mm("index", str(notes), env={"MM_FAULT": point})
    assert mm("status", "--json").json()["chunks"] > 0
