"""Output shared by every command: JSON on stdout, text on stdout, messages on stderr.

rich is imported only when something is drawn: a command that prints JSON never pays for it.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Sequence

from memwal import (  # noqa: F401 - re-exported for the commands
    EXIT_BUSY, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE,
)

if TYPE_CHECKING:
    from rich.console import Console


@functools.cache
def _console(stream: str) -> "Console":
    from rich.console import Console

    return Console(stderr=stream == "stderr", soft_wrap=True)


def stdout() -> "Console":
    return _console("stdout")


def stderr() -> "Console":
    return _console("stderr")


# What a terminal acts on instead of showing: C0 controls but tab and newline (ESC starts every
# escape sequence: clipboard writes, titles, screen clears), DEL, C1 controls (0x9b is a one-byte
# CSI), and the bidirectional overrides that make text read otherwise than it is stored.
_ACTIVE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def inert(text: str) -> str:
    """`text` with every character a terminal would act on shown escaped (`\\x1b`, `\\u202e`).

    Every human output passes through it: an indexed note is the user's data, not the
    terminal's instructions. `--json` keeps the exact text (JSON escapes controls itself).
    """
    return _ACTIVE.sub(_escaped, text)


def _escaped(match: "re.Match[str]") -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def print_json(data: Any) -> None:
    """Stable, machine-readable output: one JSON document on stdout (a result's `as_json()`,
    or what a command builds of such values)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def emit(data: Any, as_json: bool, text: Callable[[Any], Any]) -> None:
    """Print `data` as JSON, or as what `text(data)` returns (a string or a rich renderable)."""
    if as_json:
        print_json(data)
        return
    rendered = text(data)
    if isinstance(rendered, str):
        rendered = inert(rendered)
    if rendered is not None:
        stdout().print(rendered, highlight=False, markup=False)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> Any:
    """A borderless rich table of plain-text cells."""
    from rich.table import Table

    grid = Table(*columns, box=None, title=title)
    for row in rows:
        grid.add_row(*(inert(str(cell)) for cell in row))
    return grid


def search_hits(hits: list[dict[str, Any]], warnings: list[str], as_json: bool) -> None:
    """`mm search`'s output, whoever searched (this process, or a running `mm serve`)."""
    for message in warnings:
        warn(message)
    if not as_json and not hits:
        info("no results")
        return
    emit(hits, as_json, lambda _: table(
        ("#", "where", "section", "text"),
        [(hit["rank"], f"{hit['source_file']}:{hit['start_line']}-{hit['end_line']}",
          " › ".join(hit["heading_path"]), _snippet(hit["content"])) for hit in hits]))


def _snippet(content: str, limit: int = 160) -> str:
    text = " ".join(content.split())
    return text[:limit] + ("…" if len(text) > limit else "")


def lines(pairs: Sequence[tuple[str, Any]], width: int = 18) -> str:
    """`label   value` lines, labels padded to one column."""
    return "\n".join(f"{label:<{width}}{value}" for label, value in pairs)


def committer_text(committer: dict[str, Any]) -> str:
    """`running on HOST, pid N` (where known), or `not running`."""
    if not committer["running"]:
        return "not running"
    where = [f"on {committer['host']}" if committer.get("host") else None,
             f"pid {committer['pid']}" if committer.get("pid") is not None else None]
    return "running" + (" " + ", ".join(w for w in where if w) if any(where) else "")


def index_text(index: dict[str, Any]) -> str:
    """Where the index is: this home, or the shared queue's committer's (as it published)."""
    if index["here"]:
        return "this home"
    if not index.get("host"):
        return "on the shared queue's committer's machine (nothing published yet)"
    import time

    when = index.get("published_at")
    return (f"on {index['host']}:{index['home']} (as its committer published it"
            + (f" at {time.strftime('%H:%M:%S', time.localtime(when))})" if when else ")"))


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One clear line on stderr and a non-zero exit; never a traceback."""
    import typer  # only here: the fast path of `mm search` never pays for importing it

    stderr().print(f"[bold red]error:[/] {_plain(message)}", markup=True, highlight=False)
    raise typer.Exit(code)


def warn(message: str) -> None:
    stderr().print(f"[yellow]warning:[/] {_plain(message)}", markup=True, highlight=False)


def info(message: str) -> None:
    stderr().print(inert(message), markup=False, highlight=False)


def _plain(message: str) -> str:
    """A message shown after a markup prefix: inert, and its brackets not taken as markup."""
    from rich.markup import escape

    return escape(inert(message))
