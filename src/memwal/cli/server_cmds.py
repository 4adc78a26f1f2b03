"""`mm mcp` and `mm serve`: the MCP server over stdio and over HTTP."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

import memwal
from memwal.cli import output
from memwal.cli.common import HomeOption, guarded, load
from memwal.cli.progress import QuietOption, StageDisplay

WorkerOption = Annotated[bool, typer.Option(
    "--worker", help="Also be the committer whenever the role is free (another committer, e.g. "
                     "`mm queue worker`, may hold it: this one takes over when it ends). Without "
                     "it, a `mm queue worker` commits.")]
DestructiveOption = Annotated[bool, typer.Option(
    "--allow-destructive", help="Also offer the tools that switch the model, replay and purge "
                                "dead letters.")]
WatchOption = Annotated[bool, typer.Option(
    "--watch", help="Also watch the roots (index.roots and the notes folder) and index changes.")]


def mcp_command(worker: WorkerOption = False, allow_destructive: DestructiveOption = False,
                watch: WatchOption = False, home: HomeOption = None) -> None:
    """Serve MCP over stdin/stdout, for a desktop or IDE agent to launch."""
    settings = load(home)
    memwal.serve_stdio(settings, memwal.ServerOptions(
        allow_destructive=allow_destructive, worker=worker, watch=watch,
        on_ready=lambda where: output.info(f"memwal MCP server on {where} for {settings.home}")))


def serve_command(
    host: Annotated[str, typer.Option("--host", help="Address to bind (non-loopback needs --token).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")] = 8765,
    token: Annotated[Optional[str], typer.Option("--token", help="Bearer token every request must carry (env MM_SERVE_TOKEN).", show_default=False)] = None,
    allow_origin: Annotated[Optional[list[str]], typer.Option("--allow-origin", help="A browser origin allowed besides the server's own (repeatable).")] = None,
    worker: WorkerOption = False, allow_destructive: DestructiveOption = False,
    watch: WatchOption = False, home: HomeOption = None,
) -> None:
    """Serve MCP over HTTP (streamable HTTP at /mcp) and the web page at / (live status, dead letters, search) until SIGINT/SIGTERM."""
    settings = load(home)
    memwal.serve_http(settings, memwal.ServerOptions(
        allow_destructive=allow_destructive, worker=worker, watch=watch, host=host, port=port,
        token=token or os.environ.get("MM_SERVE_TOKEN") or None,
        allow_origins=tuple(allow_origin or ()),
        on_ready=lambda url: output.info(f"memwal serving {url} for {settings.home}")))


def watch_command(
    roots: Annotated[Optional[list[Path]], typer.Argument(help="Folders to watch (default: index.roots and the notes folder).", show_default=False)] = None,
    quiet: QuietOption = False,
    home: HomeOption = None,
) -> None:
    """Keep folders indexed as their files change, until SIGINT/SIGTERM (enqueues only).

    A pass that takes a while shows its progress on stderr, like `mm index`."""
    settings = load(home)
    chosen = [p.expanduser().absolute() for p in roots] if roots else list(settings.roots)
    shown = StageDisplay(enabled=not quiet)
    shown.info(f"watching {', '.join(map(str, chosen))} for {settings.home}")

    said = False  # the no-committer warning is said once, again only after a committer ran
    noted: str | None = None  # the last note on ignored files: said again only once it changed

    def report(done: Any) -> None:
        nonlocal said, noted
        shown.close()  # this pass is done: its display goes
        if done.records_enqueued:
            shown.info(f"{done.new} new or changed, {done.deleted} deleted: "
                       f"{done.records_enqueued} records queued")
        note = done.ignored_note()
        if note and note != noted:
            output.warn(note)
        noted = note
        if done.committer_running:
            said = False
        elif done.not_committed_note() and not said:
            output.warn(done.not_committed_note())
            said = True

    with shown:
        memwal.watch(settings, chosen, on_pass=report, on_stage=shown.show)


def register(app: typer.Typer) -> None:
    app.command("mcp")(guarded(mcp_command))
    app.command("serve")(guarded(serve_command))
    app.command("watch")(guarded(watch_command))
