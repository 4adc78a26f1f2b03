"""The MCP tools: a thin skin over the public API, written for the agent that reads them.

Every tool returns structured content (JSON: the results' `as_json()`, as `--json` and the web's
`/api/` return them) and a short text rendering. A bad argument, or an error a user could fix, is
an error result (`isError`) saying what was wrong and what to do; the server keeps serving.
Tools that write only ever enqueue: the index is written by the committer.
"""

from __future__ import annotations

import functools
import inspect
import os
from typing import Annotated, Any, Callable, Literal

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

import memwal
from memwal.errors import NO_COMMITTER_NOTE
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
Text = Annotated[str, Field(min_length=1, max_length=1 << 20)]


def _result(data: dict[str, Any], text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def _error(error: memwal.MemwalError) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=str(error))],
                          structured_content={"error": error.as_json()}, is_error=True)


def _tool(server: MCPServer, annotations: ToolAnnotations
          ) -> Callable[[Callable[..., CallToolResult]], Callable[..., CallToolResult]]:
    """Register a tool: its docstring (dedented) is what the agent reads; errors are guarded."""

    def register(tool: Callable[..., CallToolResult]) -> Callable[..., CallToolResult]:
        server.tool(annotations=annotations, description=inspect.cleandoc(tool.__doc__ or ""))(
            _guarded(tool))
        return tool

    return register


def _guarded(tool: Callable[..., CallToolResult]) -> Callable[..., CallToolResult]:
    """Errors a user can act on become error results; anything else is the SDK's (and a bug)."""

    @functools.wraps(tool)
    def wrapper(*args: Any, **kwargs: Any) -> CallToolResult:
        try:
            return tool(*args, **kwargs)
        except Exception as exc:
            error = memwal.as_memwal_error(exc)
            if error is None:
                raise
            return _error(error)

    return wrapper


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
                    + ("" if running else "; no committer is running (start `mm queue "
                                          "worker`, or the server with --worker)")}


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
    server = MCPServer("memwal", version=memwal.__version__, instructions=INSTRUCTIONS,
                       log_level="WARNING")
    settings = state.settings

    @_tool(server, READ_ONLY)
    def mem_search(query: Text, top_k: TopK = 10, namespace: str | None = None,
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
        text = "\n".join(lines + [f"warning: {w}" for w in result.warnings]) or "no results"
        return _result({"query": query, "hits": hits, "warnings": result.warnings}, text)

    @_tool(server, WRITES)
    def mem_add(content: Text, title: str | None = None, tags: list[str] | None = None,
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
    def mem_index(paths: Annotated[list[str], Field(min_length=1, max_length=100)],
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
    def mem_dead_letter(id: Annotated[int, Field(ge=1, le=2**63 - 1)]) -> CallToolResult:
        """One refused write in full: its reason and detail, both fingerprints, the record with
        its text, its batch and queue position, and whether it was replayed."""
        record = memwal.show_dead_letter(settings, id)
        return _result(record.as_json(),
                       f"{record['id']}: {record['reason']}: {record.get('detail')}")

    if state.allow_destructive:
        _destructive_tools(server, state)
    return server


def _destructive_tools(server: MCPServer, state: ServerState) -> None:
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
    def mem_replay_dead_letters(ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None = None,
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
    def mem_purge_dead_letters(ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None = None,
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
