"""Arguments declared once: `mm search`'s, and the two every command shares (--json, --home).

`mm search` is parsed twice over: by its fast path (cli/fast.py) before anything heavy is
imported, and by typer once the full command line is loaded (cli/app.py builds the command's
parameters from SEARCH with `common.takes`). Both read the declarations here, so a flag, a type,
a range or a help text is written once. Cheap to import: no typer, nothing of memwal's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple


class Arg(NamedTuple):
    """One argument: its keyword, its flags (none: a positional argument), its type and help.

    `name` is the command function's parameter (and `memwal.search`'s keyword for a search
    filter). `bounds` is the range of a number. `fallback` is what applies when the option is
    not given (the setting, or the environment variable, `memwal.load_settings` resolves);
    None when absence means no filter.
    """

    name: str
    flags: tuple[str, ...]
    kind: type
    help: str
    bounds: tuple[int, int] | None = None
    fallback: str | None = None

    @property
    def default(self) -> Any:
        return False if self.kind is bool else None

    def convert(self, text: str) -> Any:
        """`text` as typer reads it; ValueError for a value the fast path leaves to typer.

        A number is read only in its plain form (ASCII digits, in range), whose meaning is not
        in doubt: typer's own reading of others (" 3", "1_0", "+3", a full-width digit) is its
        own to say, and so is its message for a bad one.
        """
        if self.kind is bool:
            raise ValueError(f"{self.flags[0]} takes no value")
        if self.kind is int:
            if not (text.isascii() and text.isdigit()):
                raise ValueError(f"not a plain whole number: {text!r}")
            number = int(text)
            low, high = self.bounds or (number, number)
            if not low <= number <= high:
                raise ValueError(f"{number} is not within {low}-{high}")
            return number
        return self.kind(text)


JSON = Arg("json_out", ("--json",), bool, "Print JSON on stdout.")
HOME = Arg("home", ("--home",), Path, "Home folder (default: $MM_HOME, else ~/.memwal).",
           fallback="MM_HOME")

QUERY = Arg("query", (), str, "What to look for, in plain words.")
SEARCH: tuple[Arg, ...] = (
    QUERY,
    Arg("namespace", ("--namespace", "-n"), str, "Only this namespace."),
    Arg("source_glob", ("--source",), str, "Only files matching this glob."),
    Arg("top_k", ("--top-k", "-k"), int, "How many results (1-1000).", (1, 1000),
        fallback="search.top_k"),
    Arg("max_per_doc", ("--max-per-doc",), int, "At most this many results from one file "
        "(0: no cap; default search.max_per_doc).", (0, 1000), fallback="search.max_per_doc"),
    JSON,
    HOME,
)
