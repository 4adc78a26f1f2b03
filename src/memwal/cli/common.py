"""Options every command shares, and the one place errors become exit codes."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Annotated, Any, Callable, Mapping, Optional, Sequence, TypeVar

import typer

from memwal import Settings, as_memwal_error, load_settings
from memwal.cli import output
from memwal.cli.options import HOME, JSON, Arg

F = TypeVar("F", bound=Callable[..., Any])


def typer_info(arg: Arg) -> Any:
    """The typer parameter an argument declared in `options` is: an Argument or an Option."""
    if not arg.flags:
        return typer.Argument(help=arg.help)
    low, high = arg.bounds or (None, None)
    return typer.Option(*arg.flags, help=arg.help, min=low, max=high, show_default=False)


def takes(arguments: Sequence[Arg]) -> Callable[[F], F]:
    """Give a command exactly the parameters `arguments` declares, for typer to read.

    The command's own signature only has to accept them (by name, `**rest` for the others).
    """

    def decorate(command: F) -> F:
        parameters = [inspect.Parameter(
            arg.name, inspect.Parameter.KEYWORD_ONLY,
            default=arg.default if arg.flags else inspect.Parameter.empty,
            annotation=Annotated[arg.kind if arg.kind is bool or not arg.flags
                                 else Optional[arg.kind], typer_info(arg)])
            for arg in arguments]
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        return command

    return decorate


HomeOption = Annotated[Optional[Path], typer_info(HOME)]
JsonOption = Annotated[bool, typer_info(JSON)]


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
            output.info(output.INTERRUPTED)
            raise typer.Exit(output.EXIT_INTERRUPTED) from None
        except Exception as exc:  # noqa: BLE001 - what is not a user error is re-raised
            error = as_memwal_error(exc, _home_of(kwargs))
            if error is None:
                raise
            if kwargs.get("json_out"):  # --json promises JSON on stdout, errors included
                output.print_json({"error": error.as_json()})
            output.fail(str(error), error.exit_code)

    return wrapper  # type: ignore[return-value]
