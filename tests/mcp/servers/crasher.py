"""An MCP server that dies (``os._exit``) in the middle of its ``crash`` call."""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("crasher")


@server.tool(description="Answer with the text and this process's id.")
def echo(text: str) -> str:
    return f"{text} (pid {os.getpid()})"


@server.tool(description="Exit the server process at once, without answering.")
def crash() -> str:
    sys.stderr.write("crasher: exiting on purpose\n")
    sys.stderr.flush()
    os._exit(3)


if __name__ == "__main__":
    server.run()
