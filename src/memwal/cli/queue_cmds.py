"""`mm queue …`: the committer process and the queue's state."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from memwal.cli import output
from memwal.cli.common import HomeOption, JsonOption, guarded, load
from memwal.committer import BatchOutcome, committer_session
from memwal.status import queue_status
from memwal.cli.deadletter_cmds import dead_letters_app

queue_app = typer.Typer(help="The write-ahead queue and its committer.", no_args_is_help=True)
queue_app.add_typer(dead_letters_app, name="dead-letters")


@queue_app.command("worker")
@guarded
def worker(
    once: Annotated[bool, typer.Option("--once", help="Drain the queue, then exit.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="A line per batch.")] = False,
    home: HomeOption = None,
) -> None:
    """Run the committer: apply queued batches in order until SIGTERM/SIGINT (or --once)."""
    settings = load(home)
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        # Finish the batch in hand, acknowledge it, then leave: nothing is half-applied.
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    def report(outcome: BatchOutcome) -> None:
        if verbose:
            output.info(f"batch {outcome.batch_id} @{outcome.position}: {outcome.committed} "
                        f"committed, {outcome.dead_lettered} dead-lettered, {outcome.skipped} "
                        f"skipped" + (" (already applied)" if outcome.duplicate else ""))

    with committer_session(settings) as committer:
        output.info(f"committer running on {settings.home} (pid {__import__('os').getpid()})")
        if once:
            stats = committer.drain(stop.is_set, report)
        else:
            stats = committer.run(stop, settings["queue.poll_interval"], report)
    output.info(f"committer stopped: {stats.batches} batches, {stats.committed} committed, "
                f"{stats.dead_lettered} dead-lettered, {stats.skipped} skipped")


@queue_app.command("status")
@guarded
def status(json_out: JsonOption = False, home: HomeOption = None) -> None:
    """Pending and in-flight batches, the committer, the active model and the ledger."""
    settings = load(home)
    state = queue_status(settings)
    if json_out:
        output.print_json(state)
        return
    committer = state["committer"]
    model = state["active_model"]
    ledger = state["ledger"]
    output.stdout.print(
        f"pending batches   {state['pending']}\n"
        f"in flight         {state['inflight']}\n"
        f"dead letters      {state['dead_letters']}\n"
        f"committer         {'running, pid ' + str(committer['pid']) if committer['running'] else 'not running'}\n"
        f"active model      {model['name'] + ' (' + str(model['dim']) + '-d, ' + model['fingerprint'] + ')' if model else 'none yet'}\n"
        f"ledger            {ledger['batches']} batches: {ledger['committed']} committed, "
        f"{ledger['dead_lettered']} dead-lettered, {ledger['skipped']} skipped",
        highlight=False, markup=False)
