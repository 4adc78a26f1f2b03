"""`mm queue …`: the committer process and the queue's state."""

from __future__ import annotations

from typing import Annotated, Any

import typer

import memwal
from memwal.cli import output
from memwal.cli.common import HomeOption, JsonOption, guarded, load
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

    def report(outcome: Any) -> None:
        if verbose:
            output.info(f"batch {outcome.batch_id} @{outcome.position}: {outcome.committed} "
                        f"committed, {outcome.dead_lettered} dead-lettered, {outcome.skipped} "
                        f"skipped" + (" (already applied)" if outcome.duplicate else ""))

    stats = memwal.run_worker(
        settings, once=once, on_batch=report, on_wait=output.warn,
        on_start=lambda pid: output.info(f"committer running on {settings.home} (pid {pid})"))
    output.info(f"committer stopped: {stats.batches} batches, {stats.committed} committed, "
                f"{stats.dead_lettered} dead-lettered, {stats.skipped} skipped")


@queue_app.command("status")
@guarded
def status(json_out: JsonOption = False, home: HomeOption = None) -> None:
    """Pending and in-flight batches, the committer, the active model and the ledger."""
    output.emit(memwal.queue_status(load(home)).as_json(), json_out, _queue_text)


def _queue_text(state: dict[str, Any]) -> str:
    committer, model, ledger = state["committer"], state["active_model"], state["ledger"]
    return output.lines([
        ("pending batches", state["pending"]),
        ("in flight", state["inflight"]),
        ("dead letters", state["dead_letters"]),
        ("committer", output.committer_text(committer)),
        ("active model", f"{model['name']} ({model['dim']}-d, {model['fingerprint']})"
         if model else "none yet"),
        ("ledger", f"{ledger['batches']} batches: {ledger['committed']} committed, "
                   f"{ledger['dead_lettered']} dead-lettered, {ledger['skipped']} skipped"),
        ("index", output.index_text(state["index"])),
        *(("LOST" if incident["loud"] else "re-created", incident["detail"])
          for incident in state.get("lost", [])),
    ])


@queue_app.command("lost")
@guarded
def lost(
    dismiss: Annotated[bool, typer.Option(
        "--dismiss", help="Mark the recorded incidents dealt with (after re-sending what was "
                          "lost): mm doctor passes again.")] = False,
    json_out: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Queues lost or re-created under their committer: what may be lost, and how to re-send it."""
    settings = load(home)
    if dismiss:
        count = memwal.dismiss_queue_losses(settings)
        output.emit({"dismissed": count}, json_out,
                    lambda data: f"{data['dismissed']} queue incident(s) dismissed")
        return
    output.emit([incident.as_json() for incident in memwal.queue_losses(settings)], json_out,
                _lost_text)


def _lost_text(incidents: list[dict[str, Any]]) -> str:
    if not incidents:
        return "no queue was lost or re-created under its committer"
    return "\n".join(("LOST: " if incident["loud"] else "re-created: ") + incident["detail"]
                     for incident in incidents)
