"""Options every command shares, and the one place errors become exit codes."""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path
from typing import Annotated, Any, Callable, Mapping, Optional, TypeVar

import typer

from memwal.cli import output
from memwal.config import ConfigError, Settings, load_settings
from memwal.deadletters import DeadLetterError
from memwal.embedders import UnknownModel
from memwal.lock import CommitterBusy
from memwal.producer import ModelMismatch
from memwal.store import IndexUnavailable, OperationalError, SchemaTooNew

HomeOption = Annotated[Optional[Path], typer.Option(
    "--home", help="Home folder (default: $MM_HOME, else ~/.memwal).", show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]

F = TypeVar("F", bound=Callable[..., Any])


def load(home: Path | None, flags: Mapping[str, Any] | None = None) -> Settings:
    """Settings for a command; ConfigError is turned into an exit 2 by `guarded`."""
    return load_settings(home, flags)


def guarded(command: F) -> F:
    """Map the errors a user can cause to one line on stderr and a documented exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            # Whatever was enqueued is whole (one transaction per batch); nothing else to undo.
            output.info("interrupted")
            raise typer.Exit(output.EXIT_INTERRUPTED) from None
        except (ConfigError, UnknownModel, ModelMismatch, SchemaTooNew, IndexUnavailable,
                DeadLetterError) as exc:
            output.fail(str(exc), output.EXIT_USAGE)
        except CommitterBusy as exc:
            output.fail(f"{exc}; stop it first, or let it do the work", output.EXIT_BUSY)
        except (OperationalError, sqlite3.OperationalError) as exc:
            output.fail(f"SQLite: {exc}. Is another program holding the index or queue file "
                        "locked, or is the disk full or read-only?", output.EXIT_FAILED)
        except PermissionError as exc:
            output.fail(f"permission denied: {exc.filename or exc}. Use a home folder you can "
                        "write (--home DIR or MM_HOME).", output.EXIT_USAGE)
        except OSError as exc:
            output.fail(f"{exc.strerror or exc}: {exc.filename or ''}".strip(), output.EXIT_FAILED)

    return wrapper  # type: ignore[return-value]
