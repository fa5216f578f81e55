"""An MCP server whose ``wait`` tool never answers (``echo`` does, at once)."""

from __future__ import annotations

import anyio
from mcp.server.mcpserver import MCPServer

server = MCPServer("silent")


@server.tool(description="Answer with the text.")
def echo(text: str) -> str:
    return text


@server.tool(description="Never answer.")
async def wait() -> str:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


if __name__ == "__main__":
    server.run()
