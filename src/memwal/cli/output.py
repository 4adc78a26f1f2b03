"""Output and exit codes shared by every command: JSON on stdout, messages on stderr."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# Exit codes scripts can rely on (docs/operations.md).
EXIT_OK = 0
EXIT_FAILED = 1        # some records dead-lettered, files failed, or a check failed
EXIT_USAGE = 2         # bad arguments or configuration
EXIT_BUSY = 3          # another committer is running on this home
EXIT_INTERRUPTED = 130

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


def print_json(data: Any) -> None:
    """Stable, machine-readable output: one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One clear line on stderr and a non-zero exit; never a traceback."""
    stderr.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/] {message}", markup=True, highlight=False)


def info(message: str) -> None:
    stderr.print(message, markup=False, highlight=False)


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """(on_start(total), on_advance(n)) callbacks drawing a bar on a terminal's stderr."""
    if not enabled or not sys.stderr.isatty():
        yield (lambda total: None), (lambda n: None)
        return
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=stderr, transient=True) as progress:
        task = progress.add_task(label, total=None)
        yield (lambda total: progress.update(task, total=total)), (lambda n: progress.advance(task, n))
