"""axo and the Model Context Protocol, both ways.

- ``axo.mcp.client``: a workflow's ``mcp_servers`` connected for a run (``McpHub``), their
  tools offered to agents as ``mcp__<server>__<tool>``;
- ``axo.mcp.server``: axo itself as an MCP server — each agent and each workflow of a file a
  tool (``axo mcp serve``);
- ``axo.mcp.cli``: the ``axo mcp`` commands.

The server side is imported lazily (it pulls in Starlette and uvicorn).
"""

from __future__ import annotations

from axo.mcp.client import McpHub, ServerStatus, list_server_tools, tool_name

__all__ = ["McpHub", "ServerStatus", "list_server_tools", "tool_name"]
