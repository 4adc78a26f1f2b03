"""`mm queue dead-letters …`: list, show, export, replay, purge."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from memwal.cli import output
from memwal.cli.common import HomeOption, JsonOption, guarded, load
from memwal.deadletters import (
    Selection, export_dead_letters, list_dead_letters, purge, replay,
    show_dead_letter,
)
from memwal.producer import wait_committed

dead_letters_app = typer.Typer(help="Items the committer refused, kept until you purge them.",
                               no_args_is_help=True)

ReasonOption = Annotated[Optional[str], typer.Option("--reason", help="Only this reason (e.g. fingerprint_mismatch).")]
FingerprintOption = Annotated[Optional[str], typer.Option("--fingerprint", help="Only items of this model fingerprint.")]
SourceOption = Annotated[Optional[str], typer.Option("--source", help="Only items whose source file matches this glob.")]


@dead_letters_app.command("list")
@guarded
def list_command(reason: ReasonOption = None, fingerprint: FingerprintOption = None,
                 source: SourceOption = None,
                 include_replayed: Annotated[bool, typer.Option("--include-replayed", help="Also those already replayed.")] = False,
                 json_out: JsonOption = False, home: HomeOption = None) -> None:
    """One row per dead letter, in original order (and a summary by reason and model)."""
    rows = list_dead_letters(load(home), Selection(reason=reason, fingerprint=fingerprint,
                                                   source_glob=source, include_replayed=include_replayed))
    if json_out:
        output.print_json(rows)
        return
    if not rows:
        output.info("no dead letters")
        return
    from collections import Counter

    from rich.table import Table

    table = Table("id", "reason", "fingerprint", "source", "line", "batch", "pos", "replayed by", box=None)
    for row in rows:
        table.add_row(str(row["id"]), row["reason"], row["fingerprint"] or "-", row["source_file"] or "-",
                      str(row["start_line"] or "-"), (row["batch_id"] or "-")[:12], str(row["position"]),
                      (row["replayed_by"] or "")[:12])
    output.stdout.print(table)
    summary = Table("reason", "fingerprint", "count", box=None, title="summary")
    for (why, fp), count in sorted(Counter((r["reason"], r["fingerprint"] or "-") for r in rows).items()):
        summary.add_row(why, fp, str(count))
    output.stdout.print(summary)


@dead_letters_app.command("show")
@guarded
def show_command(letter_id: Annotated[int, typer.Argument(help="Dead letter id.")],
                 json_out: JsonOption = False, home: HomeOption = None) -> None:
    """Everything about one dead letter, including its content and vector dimension and norm."""
    record = show_dead_letter(load(home), letter_id)
    if json_out:
        output.print_json(record)
        return
    for key, value in record.items():
        if key == "item" and isinstance(value, dict):
            for k, v in value.items():
                if k != "content":
                    output.stdout.print(f"item.{k:<16} {v}", highlight=False, markup=False)
        elif key != "content":
            output.stdout.print(f"{key:<21} {value}", highlight=False, markup=False)
    output.stdout.print(f"content:\n{record.get('content')}", highlight=False, markup=False)


@dead_letters_app.command("export")
@guarded
def export_command(reason: ReasonOption = None, fingerprint: FingerprintOption = None,
                   source: SourceOption = None,
                   include_replayed: Annotated[bool, typer.Option("--include-replayed/--exclude-replayed", help="Export replayed ones too (default).")] = True,
                   home: HomeOption = None) -> None:
    """JSON Lines on stdout, lossless: whole items with base64 vectors, raw bytes of bad batches."""
    for record in export_dead_letters(load(home), Selection(
            reason=reason, fingerprint=fingerprint, source_glob=source, include_replayed=include_replayed)):
        sys.stdout.write(json.dumps(record, default=str) + "\n")


@dead_letters_app.command("replay")
@guarded
def replay_command(
    ids: Annotated[Optional[list[int]], typer.Argument(help="Dead letter ids.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter not yet replayed.")] = False,
    reason: ReasonOption = None, fingerprint: FingerprintOption = None,
    reembed: Annotated[bool, typer.Option("--reembed", help="Recompute vectors from the stored text with the configured model.")] = False,
    again: Annotated[bool, typer.Option("--again", help="Replay even those already replayed.")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Return once committed (default).")] = True,
    json_out: JsonOption = False, home: HomeOption = None,
) -> None:
    """Re-enqueue dead letters in their original order; each is marked with the replay's batch id."""
    settings = load(home)
    plan = replay(settings, Selection(ids=tuple(ids or ()), all=all_, reason=reason,
                                      fingerprint=fingerprint), reembed=reembed, again=again)
    for letter_id, why in plan.not_replayable:
        output.warn(f"dead letter {letter_id} not replayed: {why}")
    result: dict[str, object] = {"replayed": plan.replayed, "batches": len(plan.batch_ids)}
    if wait:
        result["committed"], result["dead_lettered"] = wait_committed(settings, plan.batch_ids)
    if json_out:
        output.print_json(result)
    else:
        output.info(", ".join(f"{k.replace('_', '-')} {v}" for k, v in result.items()))
    if wait and result["dead_lettered"]:
        raise typer.Exit(output.EXIT_FAILED)


@dead_letters_app.command("purge")
@guarded
def purge_command(
    ids: Annotated[Optional[list[int]], typer.Argument(help="Dead letter ids.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
    replayed: Annotated[bool, typer.Option("--replayed", help="Those already replayed.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Required: purging cannot be undone.")] = False,
    json_out: JsonOption = False, home: HomeOption = None,
) -> None:
    """Delete dead letters for good (the only way one goes away). Needs --yes."""
    if not yes:
        output.fail("purging dead letters cannot be undone: add --yes (export them first with "
                    "`mm queue dead-letters export > backup.jsonl`)")
    count = purge(load(home), Selection(ids=tuple(ids or ()), all=all_, replayed_only=replayed))
    if json_out:
        output.print_json({"purged": count})
    else:
        output.info(f"purged {count} dead letters")
