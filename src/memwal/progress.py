"""Where a long piece of work is, as every front end shows it: a stage, counts, a rate, an ETA.

`index_paths(on_stage=...)` hands a `Progress` to its caller at each stage and each step of it:
loading the model, discovering the files, embedding the chunks (done of total, chunks per second,
seconds left), enqueueing, and waiting for the committer (batches committed of this run's, batches
per second). The CLI draws it (memwal.cli.progress); a server can publish it. A `Progress` is a
snapshot: keep it as long as you like, it never changes.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable

# stage → what it is called where it is shown
STAGES = {
    "model": "loading the model",
    "discover": "discovering files",
    "embed": "embedding",
    "enqueue": "enqueueing",
    "commit": "waiting for the committer",
}
RATE_WINDOW = 30.0  # seconds of progress a rate (and so an ETA) is measured over


class Rate:
    """Units per second over the last RATE_WINDOW seconds."""

    def __init__(self) -> None:
        self.marks: deque[tuple[float, int]] = deque()

    def add(self, count: int) -> None:
        """Record that `count` units are done by now (a running total)."""
        now = time.monotonic()
        self.marks.append((now, count))
        while len(self.marks) > 2 and now - self.marks[1][0] > RATE_WINDOW:
            self.marks.popleft()

    def per_second(self) -> float | None:
        if len(self.marks) < 2 or self.marks[-1][0] <= self.marks[0][0]:
            return None
        (t0, c0), (t1, c1) = self.marks[0], self.marks[-1]
        return max(0.0, (c1 - c0) / (t1 - t0))


@dataclass(frozen=True)
class Progress:
    """One step of a long piece of work: `done` of `total` `unit`s (the total an estimate while
    `estimated`), at `rate` units per second, `eta_seconds` left; `details` are the stage's
    other counts (files found, batches enqueued...)."""

    stage: str
    label: str
    done: int = 0
    total: int | None = None
    unit: str = ""
    estimated: bool = False
    rate: float | None = None
    eta_seconds: float | None = None
    details: dict[str, int] = field(default_factory=dict)
    note: str = ""  # e.g. "310 of 639 files"

    def count_text(self) -> str:
        """`1,234 of about 5,600 chunks`, `12 files`, or "" when nothing is counted."""
        if not self.unit:
            return ""
        if self.total is None:
            return f"{self.done:,} {self.unit}"
        return f"{self.done:,} of {'about ' if self.estimated else ''}{self.total:,} {self.unit}"

    def counted(self) -> str:
        """The count with its note (`1,234 of 5,600 chunks (310 of 639 files)`), or the note
        alone when nothing is counted."""
        if not self.unit:
            return self.note
        return self.count_text() + (f" ({self.note})" if self.note else "")

    def rate_text(self) -> str:
        """`85.2 chunks/s`, or "" before a rate is known."""
        if self.rate is None or not self.unit:
            return ""
        return f"{self.rate:,.1f} {self.unit}/s"

    def eta_text(self) -> str:
        """`about 52 s left`, `about 3 min left`, or "" when not known (or nothing is left)."""
        if not self.eta_seconds or round(self.eta_seconds) == 0:
            return ""
        return f"about {duration(self.eta_seconds)} left"

    def text(self) -> str:
        """The whole step as one line: `embedding: 1,234 of about 5,600 chunks (310 of 639
        files), 85.2 chunks/s, about 52 s left`."""
        parts = [part for part in (self.counted().strip(), self.rate_text(), self.eta_text())
                 if part]
        return self.label + (": " + ", ".join(parts) if parts else "")

    def as_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "label": self.label, "done": self.done, "total": self.total,
                "unit": self.unit, "estimated": self.estimated,
                "rate_per_second": None if self.rate is None else round(self.rate, 1),
                "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
                "details": dict(self.details), "text": self.text()}


def duration(seconds: float) -> str:
    """`52 s`, `3 min`, `2 h 5 min`: a rough duration for people."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes} min"


def eta(left: float, rate: float | None) -> float | None:
    """Seconds to do `left` more units at `rate` per second (0 when nothing is left)."""
    if left <= 0:
        return 0.0
    return left / rate if rate else None


class IndexProgress:
    """What `index_paths` has done so far, told to `on_stage(Progress)` at each stage and step.

    The number of chunks to embed is known only once every file is read (files are read while
    the earlier ones are embedded); until then the total is estimated from the bytes still to
    read, at the chunks per byte of the files read so far.
    """

    def __init__(self, on_stage: Callable[[Progress], None] | None) -> None:
        self.on_stage = on_stage
        self.stage = "model"
        self.model = ""
        self.files = self.to_read = self.looked_at = self.unchanged = self.ignored = 0
        self.unchanged_by_stat = 0  # files discovery found unchanged (size and mtime)
        self.bytes_to_read = self.bytes_read = 0
        self.chunks_known = self.chunks_embedded = 0
        self.all_read = False
        self.batches = self.records = 0
        self.to_commit = self.committed = 0
        self.rate = Rate()

    # -- what the producer tells it --------------------------------------------------------

    def begin(self, stage: str, **values: Any) -> None:
        """Enter `stage` (see STAGES); `values` set counts (model, files...) as it starts."""
        self.stage = stage
        for name, value in values.items():
            setattr(self, name, value)
        self.rate = Rate()
        self.rate.add(self.chunks_embedded if stage == "embed" else self.committed)
        self._tell()

    def found(self, files: int, to_read: int, bytes_to_read: int, ignored: int) -> None:
        """What discovery found: `files` to index, of which `to_read` (`bytes_to_read` bytes)
        are not unchanged by size and mtime; `ignored` left out by a pattern or suffix."""
        self.files, self.to_read, self.bytes_to_read = files, to_read, bytes_to_read
        self.unchanged_by_stat, self.ignored = files - to_read, ignored
        self._tell()

    def file_done(self, *, read_bytes: int = 0, chunks: int = 0, unchanged: bool = False) -> None:
        """One file looked at: unchanged, or read (`read_bytes`) with `chunks` to embed."""
        self.looked_at += 1
        self.unchanged += unchanged
        self.bytes_read += read_bytes
        self.chunks_known += chunks
        self.all_read = self.looked_at >= self.files
        self._tell()

    def embedded(self, count: int) -> None:
        self.chunks_embedded += count
        self.rate.add(self.chunks_embedded)
        self._tell()

    def enqueued(self, batches: int, records: int) -> None:
        self.batches, self.records = batches, records
        self._tell()

    def remaining(self, batches: int) -> None:
        """How many of this run's batches the committer has still to commit."""
        self.committed = self.to_commit - batches
        self.rate.add(self.committed)
        self._tell()

    # -- what it tells -------------------------------------------------------------------

    def chunks_total(self) -> tuple[int | None, bool]:
        """(chunks to embed in all, whether that is an estimate)."""
        if self.all_read:
            return self.chunks_known, False
        if not self.bytes_read:
            return None, True
        left = max(0, self.bytes_to_read - self.bytes_read)
        return self.chunks_known + round(left * self.chunks_known / self.bytes_read), True

    def snapshot(self) -> Progress:
        stage, rate = self.stage, self.rate.per_second()
        base = Progress(stage, STAGES[stage], details={
            "files": self.files, "files_to_read": self.to_read, "files_looked_at": self.looked_at,
            "unchanged": self.unchanged, "ignored": self.ignored,
            "chunks_embedded": self.chunks_embedded, "batches_enqueued": self.batches,
            "records_enqueued": self.records, "batches_committed": self.committed,
            "batches_to_commit": self.to_commit})
        if stage == "model":
            return replace(base, note=self.model)
        if stage == "discover":
            if not self.files and not self.ignored:
                return base
            return replace(base, done=self.files, unit="files found", note=", ".join(
                [f"{self.unchanged_by_stat:,} unchanged", f"{self.to_read:,} to read"]
                + ([f"{self.ignored:,} ignored"] if self.ignored else [])))
        if stage == "embed":
            total, estimated = self.chunks_total()
            left = None if total is None else total - self.chunks_embedded
            return replace(base, done=self.chunks_embedded, total=total, unit="chunks",
                           estimated=estimated, rate=rate,
                           eta_seconds=None if left is None else eta(left, rate),
                           note=f"{self.looked_at:,} of {self.files:,} files")
        if stage == "enqueue":
            return replace(base, done=self.batches, unit="batches",
                           note=f"{self.records:,} records")
        left = self.to_commit - self.committed  # the committer's lag behind this run
        return replace(base, done=self.committed, total=self.to_commit, unit="batches", rate=rate,
                       eta_seconds=eta(left, rate), note=f"{left:,} to go" if left else "")

    def _tell(self) -> None:
        if self.on_stage is not None:
            self.on_stage(self.snapshot())
