"""How a long command shows where it is (a `memwal.Progress`), on stderr.

On a terminal: a rich display (the stage, a bar, done of total, the rate, the time left), gone
once the work is done. Off a terminal (a log, a pipe, a CI job): one plain line, the same words,
at most every MM_PROGRESS_INTERVAL seconds (default 5), the first only once the work has taken
that long, so a quick run prints none. MM_PROGRESS_INTERVAL=0 prints (or redraws) every step:
what tests read. `--quiet`: nothing at all.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from memwal import Progress
from memwal.cli import output

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress, TaskID

INTERVAL_ENV = "MM_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 5.0

QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No progress and no info lines on stderr (warnings, errors and the "
                          "result stay).")]


def interval() -> float:
    """Seconds between two plain progress lines: MM_PROGRESS_INTERVAL, else 5."""
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


class StageDisplay:
    """Shows the `Progress` steps it is given (`show`, a callback for `on_stage`), until
    `close`; shown again after `close`, it starts anew (a watcher's next pass)."""

    def __init__(self, enabled: bool = True, every: float | None = None) -> None:
        self.enabled = enabled
        self.live = enabled and sys.stderr.isatty()
        self.every = interval() if every is None else every
        self._rich: RichProgress | None = None
        self._task: TaskID | None = None
        self._stage = ""
        self._started: float | None = None  # when the first step of this run was shown
        self._said: float | None = None  # when the last plain line was printed

    def __enter__(self) -> "StageDisplay":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def show(self, step: Progress) -> None:
        if not self.enabled:
            return
        if self.live:
            self._draw(step)
            return
        now = time.monotonic()
        if self._started is None:
            self._started = now
        if now - (self._said if self._said is not None else self._started) >= self.every:
            self._said = now
            output.info(step.text())

    def info(self, message: str) -> None:
        """An info line (what a wait is for), unless quiet."""
        if self.enabled:
            output.info(message)

    def close(self) -> None:
        """The work is done: the display goes (a terminal's is cleared)."""
        if self._rich is not None:
            self._rich.stop()
        self._rich, self._task, self._started, self._said = None, None, None, None

    def _draw(self, step: Progress) -> None:
        count = output.inert(step.counted())
        rate, eta = step.rate_text(), step.eta_text()
        if self._rich is None:
            from rich.progress import BarColumn, Progress as Rich, TextColumn, TimeElapsedColumn

            self._rich = Rich(TextColumn("{task.description}", markup=False), BarColumn(),
                              TextColumn("{task.fields[count]}", markup=False),
                              TextColumn("{task.fields[rate]}", markup=False),
                              TextColumn("{task.fields[eta]}", markup=False),
                              TimeElapsedColumn(), console=output.stderr(), transient=True)
            self._rich.start()
        if self._task is None or step.stage != self._stage:
            # A task per stage: a stage without a total shows a moving bar, not the last one's.
            if self._task is not None:
                self._rich.remove_task(self._task)
            self._task = self._rich.add_task(step.label, total=step.total, count=count,
                                             rate=rate, eta=eta)
            self._stage = step.stage
        # Redrawn ten times a second; with an interval of 0, at every step (what tests read).
        self._rich.update(self._task, description=step.label, total=step.total,
                          completed=step.done, count=count, rate=rate, eta=eta,
                          refresh=self.every == 0)


def migration_step(status: dict[str, Any], target: str) -> Progress:
    """A migration's `on_progress(status)` as a step: chunks covered of the total."""
    return Progress("migrate", f"migrating to {target}", done=status["covered"],
                    total=status["total"], unit="chunks", rate=status.get("rate_per_second"),
                    eta_seconds=status.get("eta_seconds"))
