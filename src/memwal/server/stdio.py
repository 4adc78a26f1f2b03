"""MCP over stdin/stdout, with an answer for every line.

The SDK's stdio transport drops a line it cannot parse (not JSON, a lone surrogate, a JSON
array): it hands the parse error to the session, which logs it and replies nothing, so the
client waits for its own timeout. Over HTTP the same input gets a 400. Here every such line is
answered with a JSON-RPC parse error (id null, as JSON-RPC 2.0 asks when the id cannot be read).
"""

from __future__ import annotations

from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types import PARSE_ERROR, ErrorData, JSONRPCError


def parse_error(exc: Exception) -> SessionMessage:
    """The reply to a line that is not a JSON-RPC message."""
    reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return SessionMessage(JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(
        code=PARSE_ERROR, message=f"Parse error: not a JSON-RPC message ({reason})")))


async def _serve(lowlevel: Any) -> None:
    async with stdio_server() as (read_stream, write_stream):
        send, receive = anyio.create_memory_object_stream[Any](0)

        async def answer_malformed_lines() -> None:
            async with send:
                async for message in read_stream:
                    if isinstance(message, Exception):
                        await write_stream.send(parse_error(message))
                    else:
                        await send.send(message)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(answer_malformed_lines)
            await lowlevel.run(receive, write_stream, lowlevel.create_initialization_options())
            tasks.cancel_scope.cancel()


def run_stdio(server: MCPServer) -> None:
    """Serve `server` on stdio until the client closes stdin."""
    lowlevel = getattr(server, "_lowlevel_server", None)
    if lowlevel is None:  # an SDK that moved it: serve as the SDK does, without the answers
        server.run()
        return
    anyio.run(_serve, lowlevel)
