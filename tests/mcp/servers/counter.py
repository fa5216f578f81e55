"""A stateful MCP server: a counter that lives as long as the process.

stdio by default; ``--http`` serves streamable HTTP on 127.0.0.1 (a free port) and prints
``ready <url>`` on stdout once it listens.
"""

from __future__ import annotations

import os
import sys

import anyio
from mcp import MCPError
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("counter")
_WIRE = os.dup(1)  # the channel itself: serving over stdio, the SDK diverts fd 1 to stderr
_count = 0


@server.tool(description="Add `by` to the counter and return the new total.")
def increment(by: int = 1) -> int:
    global _count
    _count += by
    return _count


@server.tool(
    description="The counter's value and the server's process id.",
    annotations=ToolAnnotations(read_only_hint=True),
)
def state() -> dict[str, int]:
    return {"count": _count, "pid": os.getpid()}


if os.environ.get("CLASH"):  # two tools whose axo names are the same

    @server.tool(name="peek.count", description="The counter's value.")
    def peek_dot() -> int:
        return _count

    @server.tool(name="peek_count", description="The counter's value, under a name like that.")
    def peek_underscore() -> int:
        return _count


@server.tool(description="Answer with a line that is not JSON-RPC, then nothing.")
async def garble() -> None:
    os.write(_WIRE, b"this is not JSON-RPC\n")
    await anyio.sleep_forever()  # the answer never comes


@server.tool(description="Answer with a JSON-RPC error of the given code (the server lives on).")
def refuse(code: int) -> None:
    raise MCPError(code=code, message=f"refused with code {code}")


if __name__ == "__main__":
    if "--http" in sys.argv:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from http_recorder import serve_forever

        serve_forever(server)
    else:
        if os.environ.get("BANNER"):  # a line that is not JSON-RPC, as some servers print
            print(os.environ["BANNER"], flush=True)
        server.run()
