"""A plain `mm search` without the full CLI: answered by a running `mm serve` over its local
socket (`localsearch.ask_search`), else run in this process (the public `memwal.search`).

Everything here stays cheap to import: no typer, and no model or numpy until a search needs
them. It accepts the plain forms of `mm search` (the query and the options below); anything else
(`--help`, an unknown option, a bad value) returns None and the full command line handles it,
with its usual messages. So does any error of the search itself (no index, a damaged file): the
full command line runs it again and reports it. A server whose settings are not the caller's is
not asked. The output is the same function's as the full command's (`output.search_hits`), so
the two cannot drift.
"""

from __future__ import annotations

from typing import Any

VALUED = {"--home": "home", "--top-k": "top_k", "-k": "top_k", "--namespace": "namespace",
          "-n": "namespace", "--source": "source_glob", "--max-per-doc": "max_per_doc"}
INTEGER = {"top_k": (1, 1000), "max_per_doc": (0, 1000)}


def _parse(argv: list[str]) -> dict[str, Any] | None:
    options: dict[str, Any] = {"json": False}
    words: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--":
            words.extend(args)
            break
        if arg == "--json":
            options["json"] = True
        elif arg in VALUED or arg.split("=", 1)[0] in VALUED:
            name, _, value = arg.partition("=")
            if not _:
                value = next(args, None)  # type: ignore[assignment]
                if value is None:
                    return None
            options[VALUED[name]] = value
        elif arg.startswith("-") and arg != "-":
            return None  # --help, an unknown option: the full CLI answers
        else:
            words.append(arg)
    if len(words) != 1:
        return None
    for name, (low, high) in INTEGER.items():
        if name in options:
            if not str(options[name]).isdigit() or not low <= int(options[name]) <= high:
                return None
            options[name] = int(options[name])
    options["query"] = words[0]
    return options


def search_fast(argv: list[str]) -> int | None:
    """Exit code of a plain `mm search`; None to run the command normally.

    A running server answers first; without one, the search runs in this process, still
    without typer (a third of a cold call's imports). Any error returns None, so the full
    command line runs the search again and reports it with its usual message and exit code.
    A socket that is not to be trusted, or an answer that is late, too long or not a search
    answer, is said once (a warning) and the search runs here: never a traceback or a hang.
    """
    options = _parse(argv)
    if options is None:
        return None
    import memwal
    from memwal.localsearch import SOCKET, ask_search

    try:
        settings = memwal.load_settings(options.get("home"))
    except memwal.MemwalError:
        return None
    filters = {k: options.get(k) for k in ("namespace", "source_glob", "top_k", "max_per_doc")}
    answer, problem = ask_search(settings, options["query"], filters)
    from memwal.cli import output

    if problem:
        output.warn(f"not asking the server on {settings.home / SOCKET}: {problem}; "
                    "searching here instead.")
    elif answer is not None:
        output.search_hits(answer["hits"], answer["warnings"], options["json"])
        return 0
    return _search_here(settings, options)


def _search_here(settings: Any, options: dict[str, Any]) -> int | None:
    import memwal
    from memwal.cli import output

    try:
        result = memwal.search(settings, options["query"], namespace=options.get("namespace"),
                               source_glob=options.get("source_glob"), top_k=options.get("top_k"),
                               max_per_doc=options.get("max_per_doc"))
    except KeyboardInterrupt:
        output.info("interrupted")
        return output.EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - what is not a user error is re-raised
        if memwal.as_memwal_error(exc) is None:
            raise
        return None
    output.search_hits(result.as_json(), result.warnings, options["json"])
    return 0
