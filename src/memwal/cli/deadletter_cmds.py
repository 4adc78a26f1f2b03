"""`mm queue dead-letters …`: list, show, export, replay, purge."""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Annotated, Any, Optional

import typer

import memwal
from memwal.cli import output
from memwal.cli.common import HomeOption, JsonOption, guarded, load
from memwal.cli.output import FINGERPRINT, PATH, Column

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
    rows = [row.as_json() for row in memwal.list_dead_letters(load(home), memwal.Selection(
        reason=reason, fingerprint=fingerprint, source_glob=source,
        include_replayed=include_replayed))]
    if not json_out and not rows:
        output.info("no dead letters")
        return
    output.emit(rows, json_out, _letters_table)
    if not json_out:
        counts = Counter((r["reason"], r["fingerprint"]) for r in rows)
        output.stdout().print(output.table(
            (Column("reason"), Column("fingerprint", FINGERPRINT), Column("count")),
            [(reason, fingerprint or "-", n) for (reason, fingerprint), n in
             sorted(counts.items(), key=lambda item: (item[0][0], item[0][1] or ""))],
            title="summary"))


def _letters_table(rows: list[dict[str, Any]]) -> Any:
    """One row a letter; `where` is the source file and first line; ids are shortened to 8 hex
    (`show` and `--json` have them whole); `replayed by` only when a row was replayed."""
    replayed = any(row["replayed_by"] for row in rows)
    columns = [Column("id"), Column("reason"), Column("fingerprint", FINGERPRINT),
               Column("where", PATH), Column("batch"), Column("pos"),
               *([Column("replayed by")] if replayed else [])]
    return output.table(columns, [
        (row["id"], row["reason"], row["fingerprint"] or "-",
         (f"{row['source_file']}:{row['start_line']}" if row["start_line"] is not None
          else row["source_file"]) if row["source_file"] else "-",
         (row["batch_id"] or "-")[:8], row["position"],
         *([(row["replayed_by"] or "")[:8]] if replayed else []))
        for row in rows])


@dead_letters_app.command("show")
@guarded
def show_command(letter_id: Annotated[int, typer.Argument(help="Dead letter id.", min=1, max=2**63 - 1)],
                 json_out: JsonOption = False, home: HomeOption = None) -> None:
    """Everything about one dead letter, including its content and vector dimension and norm."""
    output.emit(memwal.show_dead_letter(load(home), letter_id).as_json(), json_out, _letter_text)


def _letter_text(record: dict[str, Any]) -> str:
    shown: list[str] = []
    for key, value in record.items():
        if key == "item" and isinstance(value, dict):
            shown.extend(f"item.{k:<16} {output.cell(v)}".rstrip()
                         for k, v in value.items() if k != "content")
        elif key != "content":
            shown.append(f"{key:<21} {output.cell(value)}".rstrip())
    return "\n".join(shown) + f"\ncontent:\n{record.get('content')}"


@dead_letters_app.command("export")
@guarded
def export_command(reason: ReasonOption = None, fingerprint: FingerprintOption = None,
                   source: SourceOption = None,
                   include_replayed: Annotated[bool, typer.Option("--include-replayed/--exclude-replayed", help="Export replayed ones too (default).")] = True,
                   home: HomeOption = None) -> None:
    """JSON Lines on stdout, lossless: whole items with base64 vectors, raw bytes of bad batches."""
    for record in memwal.export_dead_letters(load(home), memwal.Selection(
            reason=reason, fingerprint=fingerprint, source_glob=source, include_replayed=include_replayed)):
        sys.stdout.write(json.dumps(record.as_json()) + "\n")


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
    plan = memwal.replay_dead_letters(settings, memwal.Selection(ids=tuple(ids or ()), all=all_, reason=reason,
                                      fingerprint=fingerprint), reembed=reembed, again=again)
    for letter_id, why in plan.not_replayable:
        output.warn(f"dead letter {letter_id} not replayed: {why}")
    result: dict[str, object] = {"queued": plan.replayed, "batches": len(plan.batch_ids),
                                 "batch_ids": plan.batch_ids}
    done = memwal.replay_result(settings, plan) if wait else None
    if done is not None:
        result.update(done.as_json())
    if json_out:
        output.print_json(result)
    else:
        shown = ("replayed", "already_replayed", "batches", "committed", "dead_lettered") \
            if done is not None else ("queued", "batches")
        output.info(", ".join(f"{k.replace('_', '-')} {result[k]}" for k in shown))
        for letter_id, batch_id in sorted(done.claimed_by.items() if done else ()):
            output.info(f"dead letter {letter_id} was already replayed by batch {batch_id}")
    if done is not None and done.dead_lettered:
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
    """Delete dead letters for good (the only way one goes away). Needs --yes.

    The purge goes through the queue (so it works while `mm queue worker` runs) and this
    returns once it is committed, with how many were deleted."""
    if not yes:
        output.fail("purging dead letters cannot be undone: add --yes (export them first with "
                    "`mm queue dead-letters export > backup.jsonl`)")
    count = memwal.purge_dead_letters(load(home), memwal.Selection(ids=tuple(ids or ()), all=all_, replayed_only=replayed))
    if json_out:
        output.print_json({"purged": count})
    else:
        output.info(f"purged {count} dead letters")
