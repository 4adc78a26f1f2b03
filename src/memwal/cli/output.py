"""Output shared by every command: JSON on stdout, text on stdout, messages on stderr.

rich is imported only when something is drawn: a command that prints JSON never pays for it.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, NoReturn, Sequence

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


class Column(NamedTuple):
    """A table column: its header, and how its cells give way when the table is too wide.

    WHOLE cells are never cut nor wrapped (ids, counts, reasons); WRAP cells wrap onto more
    lines (down to `least` columns); PATH cells lose the middle of the path, keeping the file
    name and line range whole; FINGERPRINT cells keep the model name and at least 8 hex digits.
    A header is never cut.
    """

    header: str
    fit: str = "whole"
    least: int = 0


WHOLE, WRAP, PATH, FINGERPRINT = "whole", "wrap", "path", "fingerprint"
_ELLIPSIS = "…"
_FINGERPRINT_HEX = 8  # the fewest hex digits of a fingerprint shown: still tells models apart


def cell(value: Any) -> str:
    """A value as text: None (an unset value) is blank, a list its items; the text made inert."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return inert(", ".join(str(item) for item in value))
    return inert(str(value))


def shorten_path(text: str, width: int) -> str:
    """`text` (a path, maybe ending in `:lines`) in `width` columns, its middle left out:
    `/tmp/…/notes/astronomy.md:1-3`. The last component (file name and line range) stays whole,
    then as many whole folders next to it as fit, and the first folder; below the last
    component's width (a very narrow terminal), the end of the text is kept."""
    from rich.cells import cell_len

    if cell_len(text) <= width:
        return text
    head, sep, name = text.rpartition("/")
    tail = sep + name
    room = width - cell_len(_ELLIPSIS) - cell_len(tail)
    if not sep or room < 0:
        return _ELLIPSIS + _last_cells(text, width - cell_len(_ELLIPSIS))
    parts = head.split("/")  # "/tmp/a/b": "", "tmp", "a", "b"

    def start(k: int) -> str:
        return "/".join(parts[:k]) + "/" if k else ""

    def near(m: int) -> str:
        return "/" + "/".join(parts[-m:]) if m else ""

    def fits(k: int, m: int) -> bool:
        return k + m < len(parts) and cell_len(start(k)) + cell_len(near(m)) <= room

    first = 2 if parts[0] == "" and len(parts) > 2 else 1  # "/tmp/", or "docs/"
    k = next((k for k in (first, 1) if fits(k, 0)), 0)
    m = 0
    while fits(k, m + 1):
        m += 1
    while fits(k + 1, m):
        k += 1
    return start(k) + _ELLIPSIS + near(m) + tail


def _path_floor(text: str) -> int:
    """The width under which `shorten_path` must cut into the file name: `…/name.md:1-3`."""
    from rich.cells import cell_len

    _, sep, name = text.rpartition("/")
    return cell_len(_ELLIPSIS + sep + name) if sep else cell_len(text)


def _last_cells(text: str, width: int) -> str:
    from rich.cells import cell_len

    while text and cell_len(text) > width:
        text = text[1:]
    return text


def shorten_fingerprint(text: str, width: int) -> str:
    """A model fingerprint (`model/hex`) in `width` columns: the model name and as many hex
    digits as fit, never fewer than 8."""
    if len(text) <= width:
        return text
    model, sep, digest = text.rpartition("/")
    keep = max(_FINGERPRINT_HEX, width - len(model) - len(sep) - len(_ELLIPSIS))
    return model + sep + digest[:keep] + (_ELLIPSIS if keep < len(digest) else "")


def _least(column: Column, cells: Sequence[str]) -> int:
    """The narrowest a column may be made before its cells lose what must stay whole."""
    from rich.cells import cell_len

    header = cell_len(column.header)
    if column.fit == WRAP:
        return max(header, min(column.least or 12, max(map(cell_len, cells), default=0)))
    if column.fit == PATH:
        return max([header, *(min(cell_len(c), _path_floor(c)) for c in cells)])
    if column.fit == FINGERPRINT:
        return max([header, *(cell_len(shorten_fingerprint(c, 1)) for c in cells)])
    return max([header, *map(cell_len, cells)])


def _narrow(widths: list[int], floors: list[int], which: list[int], excess: int) -> int:
    """Take up to `excess` columns from the columns `which`, the one with most to spare first,
    none below its floor; what is left to take."""
    while excess > 0:
        spare = [i for i in which if widths[i] > floors[i]]
        if not spare:
            break
        widest = max(spare, key=lambda i: widths[i] - floors[i])
        widths[widest] -= 1
        excess -= 1
    return excess


def _fit(columns: Sequence[Column], cells: list[list[str]], width: int) -> tuple[list[int], int]:
    """Each column's width and the gap between columns, for the table to fit `width`.

    What wraps gives way first (down to its `least`), then paths and fingerprints are
    shortened (down to their file name, or model and 8 hex digits), then the gap narrows to one
    space; only past that (a very narrow terminal) does a path lose part of its file name.
    """
    from rich.cells import cell_len

    natural = [max([cell_len(c.header), *map(cell_len, column)])
               for c, column in zip(columns, cells)]
    floors = [_least(c, column) for c, column in zip(columns, cells)]
    widths = list(natural)
    wrap = [i for i, c in enumerate(columns) if c.fit == WRAP]
    short = [i for i, c in enumerate(columns) if c.fit in (PATH, FINGERPRINT)]
    gap = 2
    excess = sum(widths) + gap * (len(widths) - 1) - width
    excess = _narrow(widths, floors, wrap, excess)
    excess = _narrow(widths, floors, short, excess)
    if excess > 0:
        gap = 1
        excess -= len(widths) - 1
    excess = _narrow(widths, [cell_len(columns[i].header) for i in range(len(columns))],
                     wrap, excess)
    _narrow(widths, [len(_ELLIPSIS) + 1] * len(widths), [i for i in short
                                                         if columns[i].fit == PATH], excess)
    return widths, gap


def table(columns: Sequence[Column | str], rows: Sequence[Sequence[Any]],
          title: str | None = None) -> Any:
    """A borderless rich table of plain-text cells that fits the terminal (stdout's width).

    How each column gives way when the table is too wide is its `Column.fit`; a bare string is
    a WRAP column. `--json` never goes through here: it is always whole.
    """
    from rich.table import Table

    specs = [Column(c, WRAP) if isinstance(c, str) else c for c in columns]
    cells = [[cell(value) for value in row] for row in rows]
    by_column = [[row[i] for row in cells] for i in range(len(specs))]
    widths, gap = _fit(specs, by_column, stdout().width)
    grid = Table(box=None, title=title, pad_edge=False, padding=(0, gap, 0, 0))
    for spec, size in zip(specs, widths):
        grid.add_column(spec.header, width=size, no_wrap=spec.fit != WRAP,
                        overflow="fold" if spec.fit == WRAP else "ellipsis")
    shorten = {PATH: shorten_path, FINGERPRINT: shorten_fingerprint}
    for row in cells:
        grid.add_row(*(shorten[spec.fit](text, size) if spec.fit in shorten else text
                       for spec, size, text in zip(specs, widths, row)))
    return grid


def search_hits(hits: list[dict[str, Any]], warnings: list[str], as_json: bool) -> None:
    """`mm search`'s output, whoever searched (this process, or a running `mm serve`)."""
    for message in warnings:
        warn(message)
    if not as_json and not hits:
        info("no results")
        return
    emit(hits, as_json, lambda _: table(
        (Column("#"), Column("where", PATH), Column("section", WRAP, 16),
         Column("text", WRAP, 28)),
        [(hit["rank"], f"{hit['source_file']}:{hit['start_line']}-{hit['end_line']}",
          " › ".join(hit["heading_path"]), _snippet(hit["content"])) for hit in hits]))


def _snippet(content: str, limit: int = 160) -> str:
    text = " ".join(content.split())
    return text[:limit] + ("…" if len(text) > limit else "")


def lines(pairs: Sequence[tuple[str, Any]], width: int = 18) -> str:
    """`label   value` lines, labels padded to one column; long values are not cut (the terminal
    wraps them), an unset one is blank."""
    return "\n".join(f"{label:<{width}}{cell(value)}".rstrip() for label, value in pairs)


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


# What a Ctrl-C says, whichever command it stops. Every write goes through the queue, a batch
# in one transaction, and what a command skips as done (unchanged files, replayed letters) is
# only what was committed: running it again finishes the work.
INTERRUPTED = ("interrupted: nothing was lost (every batch is queued whole or not at all); "
               "run the same command again to finish")


def error(message: str) -> None:
    """One clear line on stderr: `error: ...`."""
    stderr().print(f"[bold red]error:[/] {_plain(message)}", markup=True, highlight=False)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One clear line on stderr and a non-zero exit; never a traceback."""
    import typer  # only here: the fast path of `mm search` never pays for importing it

    error(message)
    raise typer.Exit(code)


def warn(message: str) -> None:
    stderr().print(f"[yellow]warning:[/] {_plain(message)}", markup=True, highlight=False)


def info(message: str) -> None:
    stderr().print(inert(message), markup=False, highlight=False)


def _plain(message: str) -> str:
    """A message shown after a markup prefix: inert, and its brackets not taken as markup."""
    from rich.markup import escape

    return escape(inert(message))
