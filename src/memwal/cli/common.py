"""Options every command shares, and the one place errors become exit codes."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Callable, Mapping, Optional, TypeVar

import typer

from memwal import Settings, as_memwal_error, load_settings
from memwal.cli import output

HomeOption = Annotated[Optional[Path], typer.Option(
    "--home", help="Home folder (default: $MM_HOME, else ~/.memwal).", show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]

F = TypeVar("F", bound=Callable[..., Any])


def load(home: Path | None, flags: Mapping[str, Any] | None = None) -> Settings:
    """Settings for a command; a ConfigError is turned into an exit 2 by `guarded`."""
    return load_settings(home, flags)


def _home_of(kwargs: Mapping[str, Any]) -> Path | None:
    """The home a command was run on, to tell a full disk from other write errors."""
    try:
        return load_settings(kwargs.get("home")).home
    except Exception:  # noqa: BLE001 - only a better message is at stake
        return None


def guarded(command: F) -> F:
    """Map the errors a user can cause to one line on stderr and the exit code the error carries."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            # Whatever was enqueued is whole (one transaction per batch); nothing else to undo.
            output.info("interrupted")
            raise typer.Exit(output.EXIT_INTERRUPTED) from None
        except Exception as exc:  # noqa: BLE001 - what is not a user error is re-raised
            error = as_memwal_error(exc, _home_of(kwargs))
            if error is None:
                raise
            if kwargs.get("json_out"):  # --json promises JSON on stdout, errors included
                output.print_json({"error": error.as_json()})
            output.fail(str(error), error.exit_code)

    return wrapper  # type: ignore[return-value]
