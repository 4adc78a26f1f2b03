"""The MCP tools: a thin skin over the public API, written for the agent that reads them.

Every tool returns structured content (JSON: the results' `as_json()`, as `--json` and the web's
`/api/` return them) and a short text rendering. A bad argument, or an error a user could fix, is
an error result (`isError`) saying what was wrong and what to do; the server keeps serving.
Tools that write only ever enqueue: the index is written by the committer.

Errors, for an agent. A library error (`MemwalError`) has one meaning everywhere, and a fix
written for the command line, where most of them are met (`mm doctor`, `--again`). An agent
cannot run those: it can call a tool, change an argument, or ask for this server to be
restarted differently. So this module renders the fix for its world, and the library is left
alone (`mcp_fix`): by the error's kind, and where one kind has several causes, by the cause its
message names, each fix says which tool to call, which argument to pass, or how to restart this
server ("restart this MCP server with --worker"). A fix that names no command line is the
library's own. Whatever is not mapped, and still names a command, is said to be for an operator
at a shell rather than passed off as the agent's to do. `structured_content.error` is the
error's JSON with this fix. Search warnings are rendered the same way (`mcp_warning`).

Arguments the SDK's schema check refuses (pydantic's `ValidationError`, which the SDK would hand
back as a multi-line dump with a URL) become one `InvalidArgument` line: each argument named,
its rule in words read from the tool's input schema, and an example that keeps it (the schema's
`examples`, else its default, else one made from the rule): `top_k must be a whole number from
1 to 100, e.g. top_k=10`. An argument the tool does not have is refused the same way (the SDK
would drop it, and a typo would run with the default), and an unknown tool's error names the
tools there are.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import os
import re
from typing import Annotated, Any, Callable, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError

import memwal
from memwal.errors import (ConfigError, DeadLetterError, DeadLetterNotFound, InvalidArgument,
                           MigrationError, ModelChanged, ModelMismatch, NoCommitter, UsageError)
from memwal.server.state import ServerState

INSTRUCTIONS = """\
memwal is a local memory of markdown notes: chunked, embedded and searchable by meaning and by \
keyword. Writes go through a durable queue and are committed in order by one committer, so a \
memory never mixes vectors of two embedding models.

Use mem_search first, on every turn where past notes could help: it is fast and read-only. Use \
mem_add to remember something new (it writes a markdown note and queues it; pass wait=true when \
you will search for it right away). Use mem_index to (re)index files or folders that already \
exist inside the indexed roots. mem_status and mem_queue_status say what the memory holds and \
whether writes are flowing; mem_doctor checks its invariants. mem_dead_letters and \
mem_dead_letter show writes the committer refused (for example records of another embedding \
model after a model switch) and why."""

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)

TopK = Annotated[int, Field(ge=1, le=100, description="How many results, 1-100.")]
Timeout = Annotated[float, Field(ge=0, le=600, description="Seconds to wait for the commit (wait=true).")]
Query = Annotated[str, Field(min_length=1, max_length=1 << 20,
                            examples=["how the committer orders writes"])]
Content = Annotated[str, Field(min_length=1, max_length=1 << 20,
                              examples=["The lighthouse keeper feeds the gulls at dawn."])]
LetterId = Annotated[int, Field(ge=1, le=2**63 - 1, examples=[1])]
LetterIds = Annotated[list[LetterId] | None, Field(examples=[[1, 2]])]
# What a queued write says when nothing will commit it, in an agent's terms (the CLI's wording,
# memwal.errors.NO_COMMITTER_NOTE, names `mm queue worker`).
NO_COMMITTER_NOTE = ("queued, not yet committed: no committer is running, so search does not "
                     "see this yet. Restart this MCP server with --worker to have it commit (with "
                     "a shared queue: the committer runs on the machine that holds the index)")


def _result(data: dict[str, Any], text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def _error(error: memwal.MemwalError, state: ServerState) -> CallToolResult:
    """An error result: the error's one line, with its fix in MCP terms (`mcp_fix`)."""
    fix = mcp_fix(error, state)
    return CallToolResult(content=[TextContent(type="text", text=f"{error.message} {fix}".strip())],
                          structured_content={"error": {**error.as_json(), "fix": fix}},
                          is_error=True)


class _Server(MCPServer):
    """The SDK's server, with its argument errors and unknown tools answered in one line."""

    def __init__(self, state: ServerState, **options: Any) -> None:
        super().__init__(**options)
        self.state = state

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        schemas = {tool.name: tool.input_schema for tool in await self.list_tools()}
        schema = schemas.get(name)
        if schema is None:
            return _error(UsageError(f"there is no tool {name!r}.", "The tools are "
                                     f"{', '.join(schemas)}: call one of them."), self.state)
        unknown = [a for a in arguments or {} if a not in schema.get("properties", {})]
        if unknown:
            return _error(unknown_arguments(name, unknown, schema), self.state)
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if not isinstance(exc, UnexpectedToolError) and isinstance(exc.__cause__, ValidationError):
                return _error(invalid_arguments(exc.__cause__, schema), self.state)
            raise


def _tool(server: _Server, annotations: ToolAnnotations
          ) -> Callable[[Callable[..., CallToolResult]], Callable[..., CallToolResult]]:
    """Register a tool: its docstring (dedented) is what the agent reads; errors are guarded."""

    def register(tool: Callable[..., CallToolResult]) -> Callable[..., CallToolResult]:
        server.tool(annotations=annotations, description=inspect.cleandoc(tool.__doc__ or ""))(
            _guarded(tool, server.state))
        return tool

    return register


def _guarded(tool: Callable[..., CallToolResult], state: ServerState
             ) -> Callable[..., CallToolResult]:
    """Errors a user can act on become error results; anything else is the SDK's (and a bug)."""

    @functools.wraps(tool)
    def wrapper(*args: Any, **kwargs: Any) -> CallToolResult:
        try:
            return tool(*args, **kwargs)
        except Exception as exc:
            error = memwal.as_memwal_error(exc)
            if error is None:
                raise
            return _error(error, state)

    return wrapper


# -- arguments: the schema's rules in words -------------------------------------------------


def invalid_arguments(error: ValidationError, schema: dict[str, Any]) -> InvalidArgument:
    """The SDK's refusal of a tool's arguments as one line: each argument, its rule, an example."""
    properties, problems, seen = schema.get("properties", {}), [], set()
    for detail in error.errors():
        name = str(detail["loc"][0]) if detail["loc"] else "the arguments"
        if name in seen:  # tags.0 and tags.1: one problem, the argument's
            continue
        seen.add(name)
        rule = _rule(properties.get(name, {}))
        wrong = f"is required: {rule}" if detail["type"] == "missing" else f"must be {rule}"
        problems.append((name, wrong, _example(properties.get(name, {}))))
    return InvalidArgument(problems)


def unknown_arguments(tool: str, names: list[str], schema: dict[str, Any]) -> InvalidArgument:
    """Argument names the tool does not have, refused: the SDK would drop them, and a typo
    (`topk=3`) would run with the default without a word."""
    properties = schema.get("properties", {})
    problems, examples = [], []
    for name in names:
        close = difflib.get_close_matches(name, list(properties), n=1, cutoff=0.6)
        problems.append((name, f"is not an argument of {tool}"
                         + (f" (did you mean {close[0]}?)" if close else ""), ""))
        if close:
            examples.append(f"{close[0]}={_example(properties[close[0]])}")
    if not properties:
        return InvalidArgument(problems, f"Call {tool} without arguments.")
    return InvalidArgument(problems, f"Its arguments are {', '.join(properties)}"
                           + (f"; e.g. {' '.join(examples)}." if examples else "."))


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of an optional argument without its `null`."""
    choices = [s for s in schema.get("anyOf", ()) if s.get("type") != "null"]
    return {**schema, **choices[0]} if len(choices) == 1 else schema


def _rule(schema: dict[str, Any]) -> str:
    """What a value must be, in words (`a whole number from 1 to 100`)."""
    schema = _plain(schema)
    kind, low, high = schema.get("type"), schema.get("minimum"), schema.get("maximum")
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    if kind in ("integer", "number"):
        noun = "a whole number" if kind == "integer" else "a number"
        if low is not None and high is not None:
            return f"{noun} from {low:g} to {high:g}" if kind == "number" else \
                f"{noun} from {low} to {high}"
        return f"{noun} of at least {low}" if low is not None else noun
    if kind == "boolean":
        return "true or false"
    if kind == "string":
        size = schema.get("maxLength")
        return ("a non-empty text" if schema.get("minLength") else "a text") + (
            f" of at most {size:,} characters" if size else "")
    if kind == "array":
        items = _rule(schema.get("items", {}))
        for one, many in (("a whole number", "whole numbers"), ("a number", "numbers"),
                          ("a non-empty text", "non-empty texts"), ("a text", "texts")):
            if items.startswith(one):
                items = many + items[len(one):]
                break
        least, most = schema.get("minItems"), schema.get("maxItems")
        count = f"{least} to {most} " if least and most else f"at least {least} " if least else ""
        return f"a list of {count}{items}"
    return "as the tool's input schema says"


def _example(schema: dict[str, Any]) -> str:
    """A value that keeps the rule, as JSON: the schema's example, default, or one from the rule."""
    schema = _plain(schema)
    if schema.get("examples"):
        return json.dumps(schema["examples"][0])
    if schema.get("default") is not None:
        return json.dumps(schema["default"])
    if "enum" in schema:
        return json.dumps(schema["enum"][0])
    kind = schema.get("type")
    made: Any = {"integer": schema.get("minimum", 1), "number": schema.get("minimum", 1),
                 "boolean": True, "string": "text"}.get(str(kind))
    if kind == "array":
        return f"[{_example(schema.get('items', {}))}]"
    return json.dumps(made)


# -- errors and warnings: the fix in MCP terms ----------------------------------------------

# A fix meant for a shell: it names a `mm` command or a --flag.
_COMMAND_LINE = re.compile(r"`mm\b|(?<![\w-])--[a-z]")
_RESTART = "restart this MCP server"


def mcp_fix(error: memwal.MemwalError, state: ServerState) -> str:
    """What an agent can do about `error`: a tool, an argument, or how to restart this server."""
    message, fix, reset = error.message, error.fix, _reset_call(state)
    if isinstance(error, ModelMismatch):
        if "migrates from" in message:
            return ("Wait for the migration to end (mem_status shows its progress), or make the "
                    "index's model reachable from this server again.")
        return (f"Either {_RESTART} configured with {_index_model(state)}, or {reset} to move "
                "the index to this server's model (search stays up meanwhile).")
    if isinstance(error, ModelChanged):
        return (f"Either {reset} to move the index to the new weights, or serve the old ones "
                "again under that name.")
    if isinstance(error, DeadLetterNotFound):
        return "mem_dead_letters lists the ids (include_replayed=true lists replayed ones too)."
    if isinstance(error, DeadLetterError):
        if "replay" in message and "say which" in message:
            return 'Pass ids=[...], all=true or reason="..." (mem_dead_letters lists them).'
        if "say which" in message:
            return "Pass ids=[...], all=true or replayed=true (mem_dead_letters lists them)."
        if "already replayed" in message:
            return "Pass again=true to replay them once more."
    if isinstance(error, MigrationError):
        if "holds no model" in message:
            return "Call mem_index or mem_add: the first write uses the configured model."
        if "shared with a committer on another machine" in message:
            return ("Call mem_embedding_reset on an MCP server on the machine that holds the "
                    "index (where the queue's committer runs).")
        if "dead-lettered" in message:
            return "mem_dead_letters shows why; then " + reset + " again."
        return "mem_status shows the active model and any migration."
    if isinstance(error, NoCommitter):
        return (f"The batches are durable: {_RESTART} with --worker to have it commit (with a "
                "shared queue: start the committer on the machine that holds the index), or "
                "pass wait=false.")
    fix = _tools_for_commands(fix)
    if not _COMMAND_LINE.search(fix):
        if isinstance(error, ConfigError) and fix:
            return f"{fix} Then {_RESTART} (it reads its configuration when it starts)."
        return fix
    if "--home" in fix or "MM_HOME" in fix:
        return "Restart this MCP server with a home folder it can write (--home DIR or env " \
               "MM_HOME)."
    return _for_a_shell(fix)


def _tools_for_commands(text: str) -> str:
    """`text` with the commands that have a tool named as the tool."""
    for command, tool in (("mm doctor", "mem_doctor"), ("mm status", "mem_status"),
                          ("mm queue status", "mem_queue_status")):
        text = text.replace(f"Run `{command}`", f"Call {tool}")
        text = text.replace(f"run `{command}`", f"call {tool}").replace(f"`{command}`", tool)
    return text


def _reset_call(state: ServerState) -> str:
    """How an agent moves the index to this server's model."""
    return 'call mem_embedding_reset with mode="migrate" and confirm=true' + (
        "" if state.allow_destructive else f" (offered once you {_RESTART} with "
        "--allow-destructive)")


def _for_a_shell(fix: str) -> str:
    """A fix no tool can apply, said to be for whoever runs this server."""
    return f"From a shell on this server's machine (not a tool call): {fix}"


def _index_model(state: ServerState) -> str:
    """How to configure the index's model, as the server's environment or config.json says it."""
    from memwal.committed import _how_to_configure

    try:
        model = memwal.index_status(state.settings).get("active_model")
    except memwal.MemwalError:
        model = None
    if not model:
        return "the index's model (mem_status names it; MM_EMBEDDING_MODEL in its environment)"
    return f"the index's model, {_how_to_configure(model['name'])}"


def mcp_warning(warning: str, state: ServerState) -> str:
    """A search warning with its advice in MCP terms (the library's names `mm` commands)."""
    if warning.startswith("the index is empty"):
        return "the index is empty: call mem_index with paths=[...] or mem_add first"
    if "no committer is running" in warning:
        return warning.split(". Start one", 1)[0] + ". Restart this MCP server with --worker " \
            "to have it commit"
    if warning.startswith("the configured model") and "the query was embedded with" in warning:
        return (warning.split(". Configure", 1)[0] + f". Either {_RESTART} configured with "
                f"{_index_model(state)}, or {_reset_call(state)} to move the index to this "
                "server's model")
    if warning.startswith("keyword results only") and "not the index's model" in warning:
        return (warning.split(". Configure", 1)[0] + f". Either {_RESTART} configured with "
                f"{_index_model(state)}, or {_reset_call(state)} to move the index to this "
                "server's model")
    return _for_a_shell(warning) if _COMMAND_LINE.search(warning) else warning


def _committed(state: ServerState, batch_ids: list[str], wait: bool, timeout: float) -> dict[str, Any]:
    """Whether the batches are committed yet (waiting up to `timeout` if asked to)."""
    if not batch_ids:
        return {"state": "committed", "committed": 0, "dead_lettered": 0}
    if not wait:
        return {"state": "queued", "committer_running": _running(state)}
    counts = memwal.wait_committed(state.settings, batch_ids, timeout=timeout,
                                   take_role=state.take_role)
    if counts is None:
        return _still_queued(state, True)
    return {"state": "committed", **counts.as_json()}


def _still_queued(state: ServerState, timed_out: bool) -> dict[str, Any]:
    """The result of writes queued but not committed (not waited for, or the wait timed out)."""
    running = _running(state)
    if not timed_out:
        return {"state": "queued", "committer_running": running}
    return {"state": "queued", "timed_out": True, "committer_running": running,
            "note": "still queued: it is durable and will be committed"
                    + ("" if running else f"; no committer is running ({_RESTART} with "
                                          "--worker to have it commit)")}


def _committer_text(committer: dict[str, Any]) -> str:
    """Who commits, for an agent: several servers may share a home, and any of them may be it."""
    if not committer["running"]:
        return "not running"
    this = ", this server" if committer["pid"] == os.getpid() else ""
    return f"running (pid {committer['pid']}{this})"


def _running(state: ServerState) -> bool:
    return bool(memwal.queue_status(state.settings)["committer"]["running"])


def _state_text(data: dict[str, Any]) -> str:
    """The outcome in words: an agent reading only the text learns why it cannot search it yet."""
    if data["state"] == "queued" and data.get("committer_running") is False:
        return NO_COMMITTER_NOTE
    if data.get("timed_out"):
        return "queued, not yet committed: still waiting for the committer (it is durable)"
    return str(data["state"])


def build_server(state: ServerState) -> MCPServer:
    """The MCP server of one home, with its tools; destructive ones only if the state allows."""
    server = _Server(state, name="memwal", version=memwal.__version__,
                     instructions=INSTRUCTIONS, log_level="WARNING")
    settings = state.settings

    @_tool(server, READ_ONLY)
    def mem_search(query: Query, top_k: TopK = 10, namespace: str | None = None,
                   source_filter: str | None = None,
                   max_per_doc: Annotated[int | None, Field(ge=0, le=100)] = None
                   ) -> CallToolResult:
        """Search the memory by meaning and keywords (hybrid: BM25 + vectors, fused by rank).

        Returns the best chunks first: source file, line range, heading path, text and score.
        `source_filter` keeps files whose path matches a glob (or contains the text);
        `namespace` keeps one namespace; at most `max_per_doc` hits come from one file (0: no
        cap; default: the server's setting). Read-only and fast: call it whenever past notes
        could help.
        """
        result = state.searcher.search(query, top_k=top_k, namespace=namespace,
                                       source_glob=source_filter, max_per_doc=max_per_doc)
        hits = result.as_json()
        lines = [f"{h.rank}. {h.source_file}:{h.start_line}-{h.end_line} "
                 f"{' > '.join(h.heading_path)}: {' '.join(h.content.split())[:200]}"
                 for h in result.hits]
        warnings = [mcp_warning(w, state) for w in result.warnings]
        text = "\n".join(lines + [f"warning: {w}" for w in warnings]) or "no results"
        return _result({"query": query, "hits": hits, "warnings": warnings}, text)

    @_tool(server, WRITES)
    def mem_add(content: Content, title: str | None = None,
                tags: Annotated[list[str] | None, Field(examples=[["birds"]])] = None,
                file: str | None = None, wait: bool = False, timeout: Timeout = 30.0
                ) -> CallToolResult:
        """Remember something: write it as a markdown note and queue it for the index.

        The note goes to the notes folder (a new file, or appended to `file` if that note exists;
        `file` is a name relative to the notes folder, ending in .md). Returns once the note's
        records are durable in the queue, with their queue positions. With wait=true, returns
        once they are committed (so mem_search finds them), or says it timed out and that the
        note is still queued.
        """
        path, report = memwal.add_note(settings, content, title=title, tags=tags or (), file=file,
                                       command="mcp mem_add")
        data = {"file": str(path), "batch_ids": report.batch_ids, "positions": report.positions,
                "records": report.records_enqueued,
                **_committed(state, report.batch_ids, wait, timeout)}
        return _result(data, f"wrote {path}; {report.records_enqueued} records queued at "
                             f"{report.positions}; {_state_text(data)}")

    @_tool(server, WRITES)
    def mem_index(paths: Annotated[list[str], Field(min_length=1, max_length=100,
                                                   examples=[["notes"]])],
                  force: bool = False, wait: bool = False, timeout: Timeout = 30.0
                  ) -> CallToolResult:
        """Index files or folders that are inside the indexed roots (changed files only).

        Relative paths are taken from the notes folder. Paths outside the roots are refused.
        Returns what was found, changed, deleted and queued; with wait=true, also whether it
        is committed.
        """
        checked = memwal.inside_roots(settings, paths)
        report = memwal.index_paths(settings, checked, force=force, wait=False,
                                    command="mcp mem_index")
        data = {**report.as_json(), "positions": report.positions,
                **_committed(state, report.batch_ids, wait, timeout)}
        return _result(data, f"{report.files} files: {report.new} new or changed, "
                             f"{report.unchanged} unchanged, {report.deleted} deleted; "
                             f"{report.records_enqueued} records queued; {_state_text(data)}")

    @_tool(server, READ_ONLY)
    def mem_status() -> CallToolResult:
        """What the memory holds: chunks, files, namespaces, the active and configured embedding
        models, the queue and the committer (as `mm status --json`)."""
        status = memwal.index_status(settings)
        model, migration = status["active_model"], status.get("migration")
        data = status.as_json()
        moving = ""
        if migration:
            moving = f"; migrating to {migration['target']['name']}" + (
                f": {migration['covered']}/{migration['total']} chunks"
                if "covered" in migration else "")
        if state.migration.state()["error"]:
            moving += f"; this server's migrator stopped: {state.migration.state()['error']}"
        return _result(data, f"{status['chunks']} chunks in {status['files']} files; "
                             f"model {model['name'] if model else 'none yet'}{moving}; "
                             f"{status['queue']['pending']} batches pending")

    @_tool(server, READ_ONLY)
    def mem_queue_status() -> CallToolResult:
        """The write-ahead queue: pending and in-flight batches, dead letters, whether the
        committer runs, and the ledger's totals (as `mm queue status --json`)."""
        status = memwal.queue_status(settings)
        return _result(status.as_json(), f"{status['pending']} pending, {status['inflight']} in "
                                         f"flight, {status['dead_letters']} dead letters; "
                                         f"committer {_committer_text(status['committer'])}")

    @_tool(server, READ_ONLY)
    def mem_doctor() -> CallToolResult:
        """Check the memory's invariants (integrity, one model only, counts agree, ledger sums,
        nothing stuck); `ok` is false if any check fails, each check says why."""
        report = memwal.run_doctor(settings)
        failed = [c for c in report["checks"] if not c["ok"]]
        text = "all checks pass" if not failed else "; ".join(
            f"{c['name']}: {c['detail']}" for c in failed)
        return _result(report.as_json(), text)

    @_tool(server, READ_ONLY)
    def mem_dead_letters(reason: str | None = None, fingerprint: str | None = None,
                         source_filter: str | None = None, include_replayed: bool = False,
                         limit: Annotated[int, Field(ge=1, le=1000)] = 100) -> CallToolResult:
        """Writes the committer refused, oldest first: the reason (e.g. fingerprint_mismatch
        after a model switch), the record's and the active model's fingerprints, the source
        file. Replayed ones only with include_replayed=true."""
        rows = memwal.list_dead_letters(settings, memwal.Selection(
            reason=reason, fingerprint=fingerprint, source_glob=source_filter,
            include_replayed=include_replayed))
        shown = rows[:limit]
        text = "\n".join(f"{r['id']}: {r['reason']} {r['source_file'] or ''}" for r in shown)
        return _result({"dead_letters": [row.as_json() for row in shown], "total": len(rows)},
                       text or "no dead letters")

    @_tool(server, READ_ONLY)
    def mem_dead_letter(id: LetterId) -> CallToolResult:
        """One refused write in full: its reason and detail, both fingerprints, the record with
        its text, its batch and queue position, and whether it was replayed."""
        record = memwal.show_dead_letter(settings, id)
        return _result(record.as_json(),
                       f"{record['id']}: {record['reason']}: {record.get('detail')}")

    if state.allow_destructive:
        _destructive_tools(server, state)
    return server


def _destructive_tools(server: _Server, state: ServerState) -> None:
    settings = state.settings

    @_tool(server, DESTRUCTIVE)
    def mem_embedding_reset(confirm: bool,
                            mode: Literal["migrate", "cancel", "apply-current"] = "apply-current"
                            ) -> CallToolResult:
        """Move the memory to the server's configured embedding model. Needs confirm=true.

        mode="migrate" (recommended): search keeps the current model while every chunk is
        re-embedded with the new one in the background (mem_status shows covered/total and the
        ETA); one cutover then switches at once; resumable, and cancelled with mode="cancel".
        mode="apply-current": switch now; vectors of other models are removed (the text stays)
        and search is keyword-only until the memory is re-indexed. Either way, records of the
        old model queued after the switch are refused (dead letters).
        """
        if not confirm:
            raise memwal.UsageError("a model switch needs confirm=true.",
                                    "Check mem_status's models first.")
        if mode == "migrate":
            started = state.migration.start()
            if started.get("already_active"):
                return _result(started, "the memory already uses the configured model")
            return _result(started, "migration started: search keeps the current model until "
                                    "the cutover; mem_status shows its progress")
        if mode == "cancel":
            state.migration.close()
            cancelled = memwal.cancel_migration(settings).as_json()
            return _result(cancelled, "migration cancelled" if cancelled["cancelled"]
                           else "no migration to cancel")
        batch_id, reset = memwal.enqueue_reset(settings)
        return _result({"batch_id": batch_id, "model": {"name": reset.name, "dim": reset.dim,
                                                       "fingerprint": reset.fingerprint}},
                       f"reset to {reset.name} queued as batch {batch_id}")

    @_tool(server, DESTRUCTIVE)
    def mem_replay_dead_letters(ids: LetterIds = None,
                                all: bool = False, reason: str | None = None,
                                reembed: bool = False, again: bool = False, wait: bool = True,
                                timeout: Timeout = 30.0) -> CallToolResult:
        """Queue dead letters again, in their original order (after a model switch back, or
        with reembed=true to recompute vectors with the current model). Each is claimed once:
        once committed (wait=true, the default) the result says how many this call replayed and
        which were already replayed by another replay (and its batch)."""
        plan = memwal.replay_dead_letters(settings, memwal.Selection(
            ids=tuple(ids or ()), all=all, reason=reason), reembed=reembed, again=again)
        # The plan's `replayed` is named `queued` here: `replayed` is what the commit did (below).
        planned = plan.as_json()
        data: dict[str, Any] = {"batch_ids": planned["batch_ids"], "queued": planned["replayed"],
                                "not_replayable": planned["not_replayable"]}
        done = memwal.replay_result(settings, plan, timeout=timeout, take_role=state.take_role) \
            if wait and plan.batch_ids else None
        if done is not None:
            data.update(state="committed", **done.as_json())
            claims = "".join(f"; {c['id']} already replayed by batch {c['batch_id']}"
                             for c in data["claimed_by"])
            return _result(data, f"{done.replayed} dead letters replayed, {done.dead_lettered} "
                                 f"refused again{claims}")
        data.update(_still_queued(state, wait and bool(plan.batch_ids)))
        return _result(data, f"{plan.replayed} dead letters queued again in "
                             f"{len(plan.batch_ids)} batches; {_state_text(data)}")

    @_tool(server, DESTRUCTIVE)
    def mem_purge_dead_letters(ids: LetterIds = None,
                               replayed: bool = False, all: bool = False,
                               confirm: bool = False, timeout: Timeout = 30.0) -> CallToolResult:
        """Delete dead letters for good (cannot be undone). Needs confirm=true. The purge goes
        through the queue; the result comes once it is committed, with how many were deleted."""
        if not confirm:
            raise memwal.UsageError("purging dead letters needs confirm=true.",
                                    "It cannot be undone.")
        count = memwal.purge_dead_letters(settings, memwal.Selection(
            ids=tuple(ids or ()), all=all, replayed_only=replayed), timeout=timeout,
            take_role=state.take_role)
        if count is None:
            data = _still_queued(state, True)
            return _result(data, f"purge {_state_text(data)}: {data['note']}")
        return _result({"state": "committed", "purged": count}, f"purged {count} dead letters")
