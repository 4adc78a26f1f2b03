"""`mm search` answered by a running `mm serve` over its local socket, without the full CLI.

Everything here stays cheap to import: no typer, no model, no numpy. It accepts the plain forms
of `mm search` (the query and the options below); anything else (`--help`, an unknown option, a
bad value) returns None and the full command line handles it, with its usual messages. So does
a home with no server, or a server whose settings are not the caller's. The output is the same
function's as the full command's (`output.search_hits`), so the two cannot drift.
"""

from __future__ import annotations

import json
import os
import socket
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


def search_via_server(argv: list[str]) -> int | None:
    """Exit code of a search a running server answered; None to run the command normally."""
    options = _parse(argv)
    if options is None:
        return None
    import memwal
    from memwal.localsearch import SOCKET, VERSION, comparable

    try:
        settings = memwal.load_settings(options.get("home"))
    except memwal.MemwalError:
        return None
    request = {"v": VERSION, "settings": comparable(settings),
               **{k: options.get(k) for k in ("query", "top_k", "namespace", "source_glob",
                                                "max_per_doc")}}
    answer = _ask(str(settings.home), SOCKET, request)
    if answer is None or "hits" not in answer:
        return None
    from memwal.cli import output

    output.search_hits(answer["hits"], answer["warnings"], options["json"])
    return 0


def _ask(home: str, name: str, request: dict[str, Any]) -> dict[str, Any] | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(30)
    before = os.getcwd()
    try:
        os.chdir(home)  # the socket is reached by its short name (unix paths are ~100 bytes)
        connection.connect(name)
    except OSError:
        return None
    finally:
        os.chdir(before)
    try:
        connection.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            block = connection.recv(1 << 16)
            if not block:
                return None
            data += block
        return json.loads(data)
    except (OSError, ValueError):
        return None
    finally:
        connection.close()
