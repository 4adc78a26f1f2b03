"""Errors an agent can act on, through the official MCP client: a bad argument is one line naming
the argument, its rule and an example; every tool error and search warning says what to do in
MCP terms (a tool, an argument, or how to restart this server), never a `mm` command."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession

from helpers import MM
from test_mcp import A, B, call, stdio_session
from test_model_swap import four_dead_letters_replayable

# A command line an agent cannot run: a `mm` command, or a flag other than the server's own
# (--worker, --allow-destructive, --home: how this server is restarted).
COMMAND_LINE = re.compile(r"`mm\b|(?<![\w-])--(?!worker\b|allow-destructive\b|home\b)[a-z]")


async def error(session: ClientSession, tool: str, **arguments: Any) -> tuple[str, dict[str, Any]]:
    """A call that must be an error result: its one line of text and its JSON error."""
    result = await session.call_tool(tool, arguments, read_timeout_seconds=120)
    assert result.is_error, (tool, arguments, result.structured_content)
    text = result.content[0].text
    assert "\n" not in text and "pydantic" not in text and "http" not in text, text
    assert not COMMAND_LINE.search(text), text
    assert result.structured_content is not None, text
    json_error = result.structured_content["error"]
    assert text == f"{json_error['message']} {json_error['fix']}", (text, json_error)
    return text, json_error


# (tool, arguments, the one line it answers): one per kind of rule.
BAD_ARGUMENTS = [
    # range
    ("mem_search", {"query": "x", "top_k": 0},
     "top_k must be a whole number from 1 to 100, e.g. top_k=10"),
    ("mem_add", {"content": "x", "timeout": -1}, "timeout must be a number from 0 to 600, e.g. "
                                                "timeout=30.0"),
    ("mem_index", {"paths": []}, 'paths must be a list of 1 to 100 texts, e.g. paths=["notes"]'),
    ("mem_dead_letters", {"limit": 5000},
     "limit must be a whole number from 1 to 1000, e.g. limit=100"),
    # type
    ("mem_search", {"query": "x", "top_k": "ten"},
     "top_k must be a whole number from 1 to 100, e.g. top_k=10"),
    ("mem_add", {"content": "x", "tags": "birds"}, 'tags must be a list of texts, e.g. '
                                                   'tags=["birds"]'),
    ("mem_add", {"content": "x", "wait": "maybe"}, "wait must be true or false, e.g. wait=false"),
    ("mem_dead_letter", {"id": "seven"}, "id must be a whole number from 1 to "
                                         "9223372036854775807, e.g. id=1"),
    # enum
    ("mem_embedding_reset", {"confirm": True, "mode": "fast"},
     'mode must be one of "migrate", "cancel", "apply-current", e.g. mode="apply-current"'),
    # missing
    ("mem_search", {}, 'query is required: a non-empty text of at most 1,048,576 characters, '
                       'e.g. query="how the committer orders writes"'),
    ("mem_embedding_reset", {}, "confirm is required: true or false, e.g. confirm=true"),
    # two at once: one line still
    ("mem_search", {"top_k": 0}, 'query is required: a non-empty text of at most 1,048,576 '
                                 'characters; top_k must be a whole number from 1 to 100, e.g. '
                                 'query="how the committer orders writes" top_k=10'),
]


async def test_a_bad_argument_is_one_line_naming_the_argument_its_rule_and_an_example(
        mm: MM) -> None:
    with anyio.fail_after(180):
        async with stdio_session(mm.home, "--allow-destructive") as session:
            for tool, arguments, expected in BAD_ARGUMENTS:
                text, json_error = await error(session, tool, **arguments)
                assert text == expected, (tool, arguments, text)
                assert json_error["error"] == "InvalidArgument" and json_error["exit_code"] == 2
                assert set(json_error["arguments"]) <= set(arguments) | {"query", "confirm"}
            text, _ = await error(session, "mem_serch", query="x")
            assert text.startswith("there is no tool 'mem_serch'.") and "mem_search" in text
            assert (await call(session, "mem_queue_status"))["pending"] == 0  # still serving


async def test_an_argument_the_tool_does_not_have_is_refused_not_dropped(mm: MM) -> None:
    """The SDK drops unknown arguments: a typo would run with the default without a word."""
    with anyio.fail_after(180):
        async with stdio_session(mm.home) as session:
            text, json_error = await error(session, "mem_search", query="x", topk=3)
            assert text.startswith("topk is not an argument of mem_search (did you mean top_k?). "
                                   "Its arguments are query, top_k, "), text
            assert text.endswith("; e.g. top_k=10."), text
            assert json_error["error"] == "InvalidArgument" and json_error["arguments"] == ["topk"]
            text, json_error = await error(session, "mem_add", content="x", wiat=True, colour=1)
            assert text.startswith("wiat is not an argument of mem_add (did you mean wait?); "
                                   "colour is not an argument of mem_add. Its arguments are "
                                   "content, "), text
            assert text.endswith("; e.g. wait=false."), text
            assert json_error["arguments"] == ["wiat", "colour"]
            text, _ = await error(session, "mem_status", verbose=True)
            assert text == "verbose is not an argument of mem_status. Call mem_status without arguments."
            # Refused before it ran: nothing was written.
            assert (await call(session, "mem_queue_status"))["pending"] == 0
            assert not list((mm.home).rglob("*.md"))


async def test_each_tools_usual_mistakes_say_what_to_do_in_mcp_terms(
        mm: MM, tmp_path: Path) -> None:
    with anyio.fail_after(240):
        async with stdio_session(mm.home, "--allow-destructive") as session:
            # Nothing indexed yet: search says which tool fills the memory.
            found = await call(session, "mem_search", query="gulls")
            assert found["warnings"] == ["the index is empty: call mem_index with paths=[...] or "
                                         "mem_add first"]
            text, _ = await error(session, "mem_embedding_reset", confirm=True, mode="migrate")
            assert "Call mem_index or mem_add" in text
            text, _ = await error(session, "mem_add", content="x", file="notes.pdf")
            assert text.endswith("End it with .md.")
            text, _ = await error(session, "mem_index", paths=[str(tmp_path)])
            assert "is outside the indexed roots" in text
            text, _ = await error(session, "mem_dead_letter", id=12345)
            assert text.endswith("mem_dead_letters lists the ids (include_replayed=true lists "
                                 "replayed ones too).")
            text, _ = await error(session, "mem_replay_dead_letters")
            assert text.endswith('Pass ids=[...], all=true or reason="..." (mem_dead_letters '
                                 "lists them).")
            text, _ = await error(session, "mem_purge_dead_letters", confirm=True)
            assert text.endswith("Pass ids=[...], all=true or replayed=true (mem_dead_letters "
                                 "lists them).")
            text, _ = await error(session, "mem_purge_dead_letters", all=True)
            assert "confirm=true" in text


async def test_replaying_twice_says_to_pass_again(mm: MM, home: Path, notes: Path) -> None:
    four_dead_letters_replayable(mm, home, notes)
    with anyio.fail_after(180):
        async with stdio_session(mm.home, "--allow-destructive", "--worker") as session:
            assert (await call(session, "mem_replay_dead_letters", all=True))["replayed"] == 4
            ids = [row["id"] for row in (await call(session, "mem_dead_letters",
                                                    include_replayed=True))["dead_letters"]]
            text, _ = await error(session, "mem_replay_dead_letters", ids=ids)
            assert text.endswith("Pass again=true to replay them once more."), text


async def test_a_model_mismatch_says_restart_this_server_with_the_index_model_or_migrate(
        mm: MM, notes: Path) -> None:
    mm("index", str(notes))  # the index is on model A
    with anyio.fail_after(180):
        for args, offered in ((("--allow-destructive",), ""),
                              ((), " (offered once you restart this MCP server with "
                                   "--allow-destructive)")):
            async with stdio_session(mm.home, *args, env={"MM_EMBEDDING_MODEL": B}) as session:
                text, json_error = await error(session, "mem_add", content="Beeches keep leaves.")
                assert json_error["error"] == "ModelMismatch"
                assert f"the index uses {A}" in text and f"the configured model is {B}" in text
                assert json_error["fix"] == (
                    f"Either restart this MCP server configured with the index's model, {A} "
                    f"(MM_EMBEDDING_MODEL={A} or embedding.model in config.json), or call "
                    "mem_embedding_reset with "
                    f'mode="migrate" and confirm=true{offered} to move the index to this '
                    "server's model (search stays up meanwhile).")


async def test_a_search_with_another_model_embeds_with_the_index_model_and_says_how_to_move(
        mm: MM, notes: Path) -> None:
    mm("index", str(notes))  # the index is on model A; the server is configured with B
    with anyio.fail_after(120):
        async with stdio_session(mm.home, env={"MM_EMBEDDING_MODEL": B}) as session:
            found = await call(session, "mem_search", query="Ganymede")
    (warning,) = found["warnings"]
    assert found["hits"] and f"the query was embedded with {A}" in warning
    assert "restart this MCP server configured with the index's model" in warning
    assert 'mem_embedding_reset with mode="migrate"' in warning
    assert not COMMAND_LINE.search(warning), warning


async def test_a_write_with_no_committer_says_restart_this_server_with_worker(mm: MM) -> None:
    with anyio.fail_after(120):
        async with stdio_session(mm.home) as session:  # no --worker, no worker process
            result = await session.call_tool("mem_add", {"content": "Puffins nest in burrows.",
                                                         "wait": True, "timeout": 0.2},
                                             read_timeout_seconds=120)
    text = result.content[0].text
    assert "restart this mcp server with --worker" in text.lower(), text
    assert not COMMAND_LINE.search(text) and "mm queue worker" not in text, text
    assert not COMMAND_LINE.search(result.structured_content["note"])
    mm("queue", "worker", "--once")


def test_the_environments_failures_say_what_to_do_without_a_command_line(home: Path) -> None:
    """SQLite's and the OS's failures, as the library words them for the CLI, rendered for MCP."""
    import errno
    import sqlite3

    import memwal
    from memwal.errors import DAMAGED_INDEX_FIX, DamagedFile
    from memwal.server.state import ServerState
    from memwal.server.tools import mcp_fix

    state = ServerState(memwal.load_settings(home, environ={}))
    try:
        failures = [memwal.as_memwal_error(exc, home) for exc in (
            sqlite3.OperationalError("attempt to write a readonly database"),
            sqlite3.OperationalError("disk I/O error"),
            sqlite3.DatabaseError("file is not a database"),
            PermissionError(errno.EACCES, "Permission denied", str(home / "index.sqlite3")))]
        failures.append(DamagedFile("the index is damaged.", DAMAGED_INDEX_FIX))
        for error in failures:
            assert error is not None
            fix = mcp_fix(error, state)
            assert fix and not COMMAND_LINE.search(fix), (error, fix)
        assert mcp_fix(failures[-1], state).startswith("Call mem_doctor to see what is wrong")
        assert mcp_fix(failures[0], state).startswith("Restart this MCP server with a home")
    finally:
        state.close()
