"""`mm`: argument parsing, output formatting and exit codes. The work lives in the library."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

import memwal
from memwal import Progress
from memwal.cli import output
from memwal.cli.common import HomeOption, JsonOption, guarded, load, takes
from memwal.cli.options import SEARCH
from memwal.cli.progress import QuietOption, StageDisplay, migration_step
from memwal.cli.queue_cmds import queue_app
from memwal.cli.server_cmds import register as register_servers

app = typer.Typer(
    name="mm",
    help="memwal: a local-first memory index whose every write goes through a durable queue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help, as docs/cli.md shows it: typer's rich help panel prints every option's type,
    # a boolean flag's too (`--force <bool>`, as if it took a value); its plain help leaves
    # flags bare. Set here, it holds for every command and sub-command.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(queue_app, name="queue")
register_servers(app)


@app.command("index")
@guarded
def index_command(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to index.")],
    namespace: Annotated[Optional[str], typer.Option("--namespace", "-n", help="Namespace for these chunks.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-read and re-embed every file.")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Return once committed (default), or once enqueued.")] = True,
    model: Annotated[Optional[str], typer.Option("--model", help="Embedding model for this run.")] = None,
    allow_empty_root: Annotated[bool, typer.Option(
        "--allow-empty-root", help="Remove what was indexed from a folder that now holds no "
        "indexable files (by default it is kept: the folder may be an unmounted drive).")] = False,
    quiet: QuietOption = False,
    json_out: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Chunk, embed and enqueue files; with --wait, return once they are committed.

    Progress (stages, chunks, rate, time left) and warnings go to stderr, the summary to stdout.
    """
    settings = load(home, {"embedding.model": model, "index.namespace": namespace})
    with StageDisplay(enabled=not quiet) as shown:
        report = memwal.index_paths(settings, paths, namespace=namespace, force=force, wait=wait,
                                    on_stage=shown.show, allow_empty_root=allow_empty_root,
                                    on_wait=shown.info)
    for skipped in report.skipped:
        output.warn(f"skipped {skipped.path}: {skipped.reason}"
                    + (f" ({skipped.detail})" if skipped.detail else ""))
    for path in report.replaced_utf8:
        output.warn(f"{path}: invalid UTF-8 replaced with U+FFFD")
    for source in report.not_applied:
        output.warn(f"{source}: not committed as this run read it: another producer committed a "
                    "newer read of it meanwhile (run `mm index` again if the file changed since)")
    for root, count in report.kept_roots:
        output.warn(f"kept the {count} indexed files of {root}: it holds no indexable files now "
                    "(an unmounted drive?). If they were really removed, run again with "
                    "--allow-empty-root.")
    note = report.not_committed_note()
    if note:
        output.warn(note)
    if report.dead_lettered:
        output.warn("some records were dead-lettered: see `mm queue dead-letters list`")
    ignored = report.ignored_note()
    if ignored:
        output.warn(ignored)
    # The report comes last: once it is out, the work is done, and nothing is left for a
    # Ctrl-C to interrupt.
    output.emit(report.as_json(), json_out, lambda _: _index_summary(report))
    if report.failed or (report.dead_lettered or 0) > 0:
        raise typer.Exit(output.EXIT_FAILED)


def _index_summary(report: Any) -> str:
    line = (f"{report.files} files: {report.new} new or changed, {report.unchanged} unchanged, "
            f"{report.deleted} deleted, {len(report.skipped)} skipped; "
            f"{report.records_enqueued} records in {len(report.batch_ids)} batches")
    if report.committed is not None:
        return line + f"; committed {report.committed}, dead-lettered {report.dead_lettered}"
    return line + " (enqueued; not waiting for the committer)"


@app.command("search")
@takes(SEARCH)  # the fast path (cli/fast.py) reads the same declarations
@guarded
def search_command(query: str, json_out: bool, home: Optional[Path], **filters: Any) -> None:
    """Hybrid search (BM25 + vectors, fused by reciprocal rank) over committed chunks."""
    result = memwal.search(load(home), query, **filters)
    output.search_hits(result.as_json(), result.warnings, json_out)


@app.command("status")
@guarded
def status_command(json_out: JsonOption = False, home: HomeOption = None) -> None:
    """What the index holds, the models, the queue and the file sizes."""
    output.emit(memwal.index_status(load(home)).as_json(), json_out, _status_text)


def _status_text(state: dict[str, Any]) -> str:
    queue = state["queue"]
    committer = queue["committer"]
    return output.lines([
        ("home", state["home"]),
        ("chunks", f"{state['chunks']} in {state['files']} files, namespaces: "
                   + (", ".join(state["namespaces"]) or "none")),
        ("active model", _model_text(state["active_model"])),
        ("configured model", _model_text(state["configured_model"])),
        *([("migration", _migration_text(state["migration"]))] if state.get("migration") else []),
        ("vectors", ", ".join(f"{fp}: {n}" for fp, n in state["vectors_by_fingerprint"].items())
         or "none"),
        ("queue", f"{queue['pending']} pending, {queue['inflight']} in flight, "
                  f"{queue['dead_letters']} dead letters; committer "
                  + output.committer_text(committer)),
        ("index", output.index_text(queue["index"])),
        *([("vector graph", _graph_text(state["vector_index"]))] if state["vector_index"] else []),
        ("files on disk", f"index {state['index_bytes']:,} bytes, queue {state['queue_bytes']:,} bytes"),
    ])


def _graph_text(graph: dict[str, int]) -> str:
    """How much of the vectors the derived graph holds; the rest is searched exactly."""
    within = "above" if graph["tail"] > graph["bound"] else "within"
    return (f"{graph['in_graph']:,} vectors in {graph['segments']} segments; {graph['tail']:,} "
            f"committed since, searched exactly ({within} its bound of {graph['bound']:,})")


def _differ_text(state: dict[str, Any]) -> str:
    if state["differ"] is None:
        return "unknown: the configured model does not answer"
    if not state["differ"]:
        return "no"
    if state["reset_to_configured_queued"]:
        return "yes, and a reset to the configured model is queued"
    migration = state.get("migration")
    if migration and migration["target"]["fingerprint"] == state["configured_model"]["fingerprint"]:
        return "yes, and a migration to the configured model is under way"
    return ("yes: run `mm embedding-reset --mode migrate` (search stays up) or "
            "`--mode apply-current`")


def _model_text(model: dict[str, Any] | None) -> str:
    if not model:
        return "none"
    if model.get("error"):
        return f"{model['name']} (not answering: {model['error']})"
    return f"{model['name']} ({model['dim']}-d, {model['fingerprint']})"


@app.command("doctor")
@guarded
def doctor_command(
    repair: Annotated[bool, typer.Option("--repair", help="First rebuild what is derived from the index (the vector index).")] = False,
    json_out: JsonOption = False, home: HomeOption = None,
) -> None:
    """Check the invariants (integrity, counts, one model, ledger sums, nothing stuck); exit 1 if any fails."""
    settings = load(home)
    repaired = memwal.repair(settings) if repair else None
    report = memwal.run_doctor(settings)
    if repaired is not None:
        report["repaired"] = repaired
    output.emit(report.as_json(), json_out, lambda report: "\n".join(
        [f"{'ok  ' if check['ok'] else 'FAIL'} {check['name']}: {check['detail']}"
         for check in report["checks"]] + [f"warn {w}" for w in report["warnings"]]))
    if not report["ok"]:
        raise typer.Exit(output.EXIT_FAILED)


@app.command("embedding-reset")
@guarded
def embedding_reset_command(
    mode: Annotated[str, typer.Option("--mode", help="status: show; migrate: move the index to the configured model without downtime (search keeps the active model until the cutover; resumable); cancel: drop a migration in progress; apply-current: switch at once (the vector leg is off until `mm index` re-embeds).")] = "status",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (apply-current).")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Return once the reset is committed (default).")] = True,
    model: Annotated[Optional[str], typer.Option("--model", help="Embedding model (instead of the configured one).")] = None,
    quiet: QuietOption = False,
    json_out: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Show, migrate to, or switch (through the queue, in order) the index's embedding model."""
    modes = ("status", "migrate", "cancel", "apply-current")
    if mode not in modes:
        output.fail(f"--mode must be one of {', '.join(modes)}, not {mode!r}")
    settings = load(home, {"embedding.model": model})
    if mode == "migrate":
        _migrate(settings, json_out, quiet)
        return
    if mode == "cancel":
        cancelled = memwal.cancel_migration(settings).as_json()
        output.emit(cancelled, json_out, lambda r: (
            f"migration to {r['target']['name']} cancelled: its shadow vectors are dropped"
            if r["cancelled"] else f"nothing to cancel: {r.get('why', 'the migration ended')}"))
        return
    state = memwal.reset_status(settings).as_json()
    if mode == "status":
        output.emit(state, json_out, lambda state: output.lines([
            ("active model", _model_text(state["active_model"])),
            ("configured model", _model_text(state["configured_model"])),
            ("differ", _differ_text(state)),
            ("migration", _migration_text(state["migration"])),
            ("queued resets", len(state["queued_resets"])),
            ("index", output.index_text(state["index"])),
        ]) + f"\nchunks without a vector of the active model  {state['chunks_without_active_vector']}")
        return
    target = state["configured_model"]
    if not yes:
        if not sys.stdin.isatty():
            output.fail("confirmation needed: add --yes to switch the index's model non-interactively")
        if not typer.confirm(f"Switch the index to {target['name']} ({target['fingerprint']})? "
                             "Vectors of other models will be removed (text stays); "
                             "`--mode migrate` switches without that gap.", default=False):
            raise typer.Exit(output.EXIT_FAILED)
    batch_id, _ = memwal.enqueue_reset(settings)
    result: dict[str, Any] = {"batch_id": batch_id, "model": target}
    if wait:
        memwal.wait_committed(settings, [batch_id], on_wait=output.info)
        result["committed"] = True
    if json_out:
        output.print_json(result)
    else:
        output.info(f"reset to {target['name']} ({target['fingerprint']}) "
                    + ("committed; run `mm index PATH` to re-embed" if wait else "enqueued"))


def _migrate(settings: Any, json_out: bool, quiet: bool = False) -> None:
    target = settings.endpoint.name
    with StageDisplay(enabled=not quiet) as shown:
        shown.show(Progress("start", f"starting the migration to {target}"))
        try:
            report = memwal.migrate_model(
                settings, on_progress=lambda status: shown.show(migration_step(status, target)),
                nice=settings["migration.nice"])
        except KeyboardInterrupt:
            output.info("migration stopped: what it did is kept (search still uses the active "
                        "model); run `mm embedding-reset --mode migrate` again to resume, or "
                        "`--mode cancel` to drop it")
            raise typer.Exit(output.EXIT_INTERRUPTED) from None  # said: no second message
    output.emit(report.as_json(), json_out, _migrated_text)


def _migrated_text(result: dict[str, Any]) -> str:
    target = result["target"]
    if result["already_active"]:
        return (f"the index already uses {target['name']} ({target['fingerprint']}): "
                "nothing to migrate")
    return (f"migrated to {target['name']} ({target['fingerprint']}): "
            f"{result['embedded']} chunks embedded in {result['seconds']:.1f} s; "
            "it is the active model now")


def _migration_text(migration: dict[str, Any] | None) -> str:
    if not migration:
        return "none"
    target = migration["target"]
    if "covered" not in migration:
        return f"to {target['name']} (on the committer's machine)"
    eta = migration.get("eta_seconds")
    return (f"to {target['name']}: {migration['covered']}/{migration['total']} chunks"
            + (f", {migration['rate_per_second']}/s" if migration.get("rate_per_second") else "")
            + (f", about {eta:.0f} s left" if eta else ""))


@config_app.command("show")
@guarded
def config_show(json_out: JsonOption = False, home: HomeOption = None) -> None:
    """Print the effective configuration and where each value came from."""
    output.emit(load(home).describe(), json_out, lambda described: output.table(
        (output.Column("key"), output.Column("value", output.WRAP, 24),
         output.Column("source", output.WRAP, 16)),
        [(key, entry["value"], entry["source"]) for key, entry in described.items()]))


def main(argv: list[str] | None = None) -> int:
    """Console entry point: map every outcome to an exit code, never a traceback for bad input.

    Not typer's standalone mode: it turns a Ctrl-C that lands outside a command body into
    "Aborted!" and exit 1, where scripts expect 130, and prints a usage error as a usage block,
    a hint and the error (three lines and a blank), where every other error is one line.
    typer vendors its own click, so its exceptions are recognised by shape (`exit_code`,
    `format_message`), not by class.
    """
    try:
        code = app(args=argv, prog_name="mm", standalone_mode=False)
    except KeyboardInterrupt:
        output.info(output.INTERRUPTED)
        return output.EXIT_INTERRUPTED
    except Exception as exc:
        if type(exc).__name__ == "Abort":  # raised for Ctrl-C / EOF at a prompt
            output.info(output.INTERRUPTED)
            return output.EXIT_INTERRUPTED
        if type(exc).__name__ == "NoArgsIsHelpError":  # `mm`, `mm queue`: the help is the answer
            exc.show()  # type: ignore[attr-defined]
            return int(exc.exit_code)  # type: ignore[attr-defined]
        if hasattr(exc, "exit_code") and hasattr(exc, "format_message"):  # click's UsageError and kin
            output.error(_usage_error(exc))
            return int(exc.exit_code)
        raise
    return code if isinstance(code, int) else output.EXIT_OK


def _usage_error(exc: Any) -> str:
    """A usage error in one line: what is wrong, and where the command's options are listed."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    message = message[:1].lower() + message[1:] if message[1:2].islower() else message
    ctx = getattr(exc, "ctx", None)
    return f"{message} (see `{ctx.command_path if ctx is not None else 'mm'} --help`)"


def run() -> Any:  # pragma: no cover - console script shim
    sys.exit(main())
