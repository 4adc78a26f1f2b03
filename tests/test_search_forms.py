"""Every form of `mm search` answers the same through its two parsers (issue "The house in
order", item 4).

`mm search` is read by its fast path (cli/fast.py: a running `mm serve` answers, no typer
loaded) and by the full command line (typer, cli/app.py); both read cli/options.py. Each form
below runs both ways, as real processes: `python -m memwal search ...` with a real `mm serve`
on the home (the console script, fast path first), and the typer command alone (`main()` of
cli/app.py, which the console script reaches when the fast path declines). Their exit codes,
stdout and stderr must be equal, and the forms the fast path should answer must have been
answered by the server.

The fast path answers only what it reads exactly as typer does (plain forms, numbers in plain
digits); for anything else it declines and typer answers in the same process: a bad value or an
unknown option gets typer's own message, whichever way it came in. Before cli/options.py, the
fast path read five forms otherwise: `-k ²` (a traceback), `-k ３` and `-k=2` (answered, where
typer refuses them), `-n=x` (the namespace "x", typer's is "=x") and `--home=` (the default
home, typer's is the working folder).

The home's path is longer than a unix socket's address may be (108 bytes): the server binds it,
and the fast path reaches it, through `/proc/self/fd/<fd>/serve.sock` (localsearch.address).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from helpers import MM, Run, assert_doctor_ok, mm_env, write_config
from memwal.cli.options import SEARCH
from memwal.localsearch import FILTERS, SEARCH_KEYS, VERSION, address, ask
from test_mcp import HttpServer

TYPER = ["-c", "import sys; from memwal.cli.app import main; sys.exit(main())"]

# Answered by the server through the fast path: (the arguments after `search`).
SERVED = [
    ("moons",),
    ("--json", "moons"),
    ("moons", "--json"),
    ("-k", "1", "--json", "moons"),
    ("-k1", "--json", "moons"),
    ("-k", "007", "--json", "Jupiter tomatoes risotto"),
    ("--top-k", "2", "Jupiter tomatoes risotto"),
    ("--top-k=1000", "--json", "moons"),
    ("-k", "1", "-k", "3", "--json", "Jupiter tomatoes risotto"),  # the last one wins
    ("-n", "default", "--json", "moons"),
    ("-ndefault", "--json", "moons"),
    ("--namespace=elsewhere", "--json", "moons"),
    ("--namespace", "elsewhere", "moons"),  # no results: said on stderr
    ("-n=default", "--json", "moons"),  # the namespace "=default", as click reads it
    ("-n", "--", "moons"),  # the namespace "--": an option's value comes first
    ("--source", "*astronomy.md", "--json", "moons"),
    ("--source=*.txt", "--json", "risotto stock"),
    ("--max-per-doc", "0", "--json", "compost tomatoes sun"),
    ("--max-per-doc=1", "compost tomatoes sun"),
    ("--home", "{home}", "--json", "moons"),
    ("--home={home}", "moons"),
    ("-k", "3", "-n", "default", "--source", "*.md", "--max-per-doc", "1", "--json",
     "Jupiter tomatoes"),
    ("--json", "--json", "moons"),
    ("--", "--json"),  # the query "--json", printed as text
    ("--json", "--", "-k"),
    ("-",),
    ("",),
    ("Jupiter's moons: Ganymede* AND (NEAR",),
    ("--json", "Юпитер 木星 \u202e"),
]

# Not answered by the server: typer reads them (the fast path declines), or the server declines
# (other settings than its own). (environment, arguments after `search`).
NOT_SERVED = [
    ({}, ("-k", "0", "moons")),
    ({}, ("-k", "1001", "moons")),
    ({}, ("--top-k", "99999999999999999999999", "moons")),
    ({}, ("-k", "x", "moons")),
    ({}, ("-k", "", "moons")),
    ({}, ("-k", "-1", "moons")),
    ({}, ("--top-k=", "moons")),
    ({}, ("-k=2", "moons")),  # the value "=2"
    ({}, ("-k", "²", "moons")),
    ({}, ("-k", "３", "moons")),
    ({}, ("-k", " 3", "--json", "moons")),  # typer's to read (it accepts these three)
    ({}, ("-k", "+3", "--json", "moons")),
    ({}, ("-k", "1_0", "--json", "moons")),
    ({}, ("--max-per-doc", "-1", "moons")),
    ({}, ("--max-per-doc", "1001", "--json", "moons")),
    ({}, ("--bogus", "moons")),
    ({}, ("-x", "moons")),
    ({}, ("--jso", "moons")),
    ({}, ("--json=yes", "moons")),
    ({}, ("moons", "-k")),
    ({}, ("moons", "--source")),
    ({}, ()),
    ({}, ("--json",)),
    ({}, ("--",)),
    ({}, ("Jupiter", "moons")),
    ({}, ("-h",)),
    ({}, ("--help",)),
    ({}, ("--home=", "--json", "moons")),  # the working folder, a home with no index
    ({}, ("--home", "{home}/missing", "--json", "moons")),
    ({"MM_SEARCH_TOP_K": "1"}, ("--json", "moons")),  # the server declines: not its settings
    ({"MM_SEARCH_TOP_K": "0"}, ("moons",)),
]


class Served:
    """A home whose path is too long for a unix socket address, indexed, with `mm serve` on it."""

    def __init__(self, root: Path) -> None:
        self.home = root / ("a-home-whose-path-is-longer-than-a-unix-socket-address-may-be-"
                            + "x" * 40)
        self.cwd = root / "elsewhere"  # the working folder of every run (`--home=` is it)
        self.cwd.mkdir()
        assert len(os.fsencode(self.home / "serve.sock")) > 108
        write_config(self.home, {"embedding": {"model": "hash-384"}})
        notes = root / "notes"
        notes.mkdir()
        (notes / "astronomy.md").write_text(
            "# Astronomy\n\nJupiter has at least ninety-five moons; Ganymede is the largest.\n")
        (notes / "gardening.md").write_text(
            "# Gardening\n\nTomatoes need full sun.\n\n## Compost\n\nTurn the compost heap.\n")
        (notes / "cooking.txt").write_text("Risotto wants warm stock added one ladle at a time.\n")
        MM(self.home)("index", str(notes))
        self.server = HttpServer(self.home)

    def answered(self) -> int:
        """How many searches the server answered over its socket."""
        answer = ask(self.home, {"v": VERSION, "stats": True})
        assert answer is not None, "no server answers on the home's socket"
        return answer["answered"]

    def run(self, how: list[str], args: tuple[str, ...], env: dict[str, str]) -> Run:
        args = tuple(arg.replace("{home}", str(self.home)) for arg in args)
        proc = subprocess.run([sys.executable, *how, "search", *args], capture_output=True,
                              text=True, env=mm_env({"MM_HOME": str(self.home), **env}),
                              cwd=self.cwd, timeout=120)
        return Run(("search", *args), proc.returncode, proc.stdout, proc.stderr)

    def both(self, args: tuple[str, ...], env: dict[str, str] | None = None) -> tuple[Run, int]:
        """(the run through the typer command alone, the searches the server answered for the
        same run through the console script), once both are known to agree."""
        typer_run = self.run(TYPER, args, env or {})
        before = self.answered()
        fast_run = self.run(["-m", "memwal"], args, env or {})
        answered = self.answered() - before
        assert "Traceback" not in fast_run.stderr + typer_run.stderr, f"{fast_run}\n{typer_run}"
        assert (fast_run.code, fast_run.stdout, fast_run.stderr) == (
            typer_run.code, typer_run.stdout, typer_run.stderr), f"{fast_run}\n{typer_run}"
        return typer_run, answered


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = Served(tmp_path_factory.mktemp("forms"))
    try:
        yield served
    finally:
        served.server.stop()
    assert not (served.home / "serve.sock").exists()
    assert_doctor_ok(served.home)


@pytest.mark.parametrize("args", SERVED, ids=[" ".join(form) or "''" for form in SERVED])
def test_a_plain_form_is_answered_by_the_server_as_the_typer_command_answers_it(
        served: Served, args: tuple[str, ...]) -> None:
    run, answered = served.both(args)
    assert run.code == 0 and answered == 1, str(run)


@pytest.mark.parametrize("env, args", NOT_SERVED,
                         ids=[" ".join([*(f"{k}={v}" for k, v in env.items()), *form]) or "''"
                              for env, form in NOT_SERVED])
def test_any_other_form_is_answered_as_the_typer_command_answers_it(
        served: Served, env: dict[str, str], args: tuple[str, ...]) -> None:
    run, answered = served.both(args, env)
    assert answered == 0, str(run)


def test_the_forms_cover_every_flag_of_the_declarations() -> None:
    used = {arg.split("=", 1)[0] if arg.startswith("--") else arg[:2]
            for form in [*SERVED, *(form for _, form in NOT_SERVED)] for arg in form
            if arg.startswith("-")}
    assert {flag for arg in SEARCH for flag in arg.flags} <= used


def test_what_an_absent_option_falls_back_to_is_a_setting_the_server_must_share() -> None:
    """The server answers only a caller whose settings that shape a search are its own
    (localsearch.SEARCH_KEYS): those include every setting an absent option falls back to."""
    filters = [arg for arg in SEARCH if arg.flags and arg.name not in ("json_out", "home")]
    assert tuple(arg.name for arg in filters) == FILTERS
    fallbacks = {arg.fallback for arg in SEARCH if arg.fallback} - {"MM_HOME"}
    assert fallbacks and fallbacks <= set(SEARCH_KEYS)


def test_a_served_search_loads_neither_typer_nor_numpy(served: Served) -> None:
    before = served.answered()
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "memwal", "search", "--json",
                           "moons"], capture_output=True, text=True, cwd=served.cwd,
                          env=mm_env({"MM_HOME": str(served.home)}), timeout=120)
    assert proc.returncode == 0 and served.answered() == before + 1, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "memwal.cli.options" in imported and "memwal.localsearch" in imported
    assert not imported & {"typer", "numpy", "rich", "pydantic"}, sorted(imported)


def test_a_long_socket_path_is_bound_and_reached_without_changing_the_working_folder(
        tmp_path: Path) -> None:
    import socket

    cwd = os.getcwd()
    for home in (tmp_path / "short", tmp_path / ("long-" + "y" * 120)):
        home.mkdir()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        caller = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with listener, caller:
            plain = str(home / "serve.sock")
            with address(home) as path:
                assert (path == plain) == (len(plain) <= 107), path
                listener.bind(path)
            listener.listen(1)
            assert (home / "serve.sock").exists() and os.getcwd() == cwd
            with address(home) as path:
                caller.connect(path)
            connection, _ = listener.accept()
            with connection:
                caller.sendall(b"ping\n")
                assert connection.recv(5) == b"ping\n"
        assert os.getcwd() == cwd
