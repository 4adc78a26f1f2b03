"""A plain `mm search` without the full CLI: answered by a running `mm serve` over its local
socket (`localsearch.ask_search`), else run in this process (the public `memwal.search`).

Everything here stays cheap to import: no typer, and no model or numpy until a search needs
them. It reads the command line by the same declarations as the full command
(`options.SEARCH`), and only what it reads exactly as typer does: anything else (`--help`, an
unknown option, a bad value, a number written otherwise than in plain digits) returns None and
the full command line handles it, with its usual messages. So does any error of the search
itself (no index, a damaged file): the full command line runs it again and reports it. A server
whose settings are not the caller's is not asked. The output is the same function's as the full
command's (`output.search_hits`), so the two cannot drift (tests/test_search_forms.py).
"""

from __future__ import annotations

from typing import Any

from memwal.cli.options import SEARCH, Arg

_FLAGS: dict[str, Arg] = {flag: arg for arg in SEARCH for flag in arg.flags}
_POSITIONAL = [arg for arg in SEARCH if not arg.flags]


def parse(argv: list[str]) -> dict[str, Any] | None:
    """`mm search`'s arguments by name, read as typer (click) reads them; None when not sure.

    Options and words may come in any order; `--` ends the options; a long option's value
    follows it or an `=`, a short option's follows it or is stuck to it (`-k5`; `-k=5` is the
    value "=5"). The last of a repeated option wins.
    """
    values: dict[str, Any] = {arg.name: arg.default for arg in SEARCH if arg.flags}
    words: list[str] = []
    args = iter(argv)
    for word in args:
        if word == "--":
            words.extend(args)
            break
        if not word.startswith("-") or word == "-":
            words.append(word)
            continue
        if word.startswith("--"):
            flag, equals, value = word.partition("=")
            attached = bool(equals)
        else:
            flag, value = word[:2], word[2:]
            attached = bool(value)
        arg = _FLAGS.get(flag)
        if arg is None:
            return None  # -h, --help, an unknown option: the full CLI answers
        if arg.kind is bool and not attached:
            values[arg.name] = True
            continue
        if not attached:
            value = next(args, None)  # type: ignore[assignment]
            if value is None:
                return None
        try:
            values[arg.name] = arg.convert(value)
        except ValueError:
            return None
    if len(words) != len(_POSITIONAL):
        return None
    for arg, word in zip(_POSITIONAL, words):
        values[arg.name] = arg.convert(word)
    return values


def search_fast(argv: list[str]) -> int | None:
    """Exit code of a plain `mm search`; None to run the command normally.

    A running server answers first; without one, the search runs in this process, still
    without typer (a third of a cold call's imports). Any error returns None, so the full
    command line runs the search again and reports it with its usual message and exit code.
    A socket that is not to be trusted, or an answer that is late, too long or not a search
    answer, is said once (a warning) and the search runs here: never a traceback or a hang.
    """
    arguments = parse(argv)
    if arguments is None:
        return None
    import memwal
    from memwal.localsearch import SOCKET, ask_search

    query, as_json = arguments.pop("query"), arguments.pop("json_out")
    try:
        settings = memwal.load_settings(arguments.pop("home"))
    except memwal.MemwalError:
        return None
    answer, problem = ask_search(settings, query, arguments)
    from memwal.cli import output

    if problem:
        output.warn(f"not asking the server on {settings.home / SOCKET}: {problem}; "
                    "searching here instead.")
    elif answer is not None:
        output.search_hits(answer["hits"], answer["warnings"], as_json)
        return 0
    return _search_here(settings, query, arguments, as_json)


def _search_here(settings: Any, query: str, filters: dict[str, Any], as_json: bool) -> int | None:
    import memwal
    from memwal.cli import output

    try:
        result = memwal.search(settings, query, **filters)
    except KeyboardInterrupt:
        output.info(output.INTERRUPTED)
        return output.EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - what is not a user error is re-raised
        if memwal.as_memwal_error(exc) is None:
            raise
        return None
    output.search_hits(result.as_json(), result.warnings, as_json)
    return 0
