"""axo and the Model Context Protocol, both ways.

- ``axo.mcp.client``: a workflow's ``mcp_servers`` connected for a run (``McpHub``), their
  tools offered to agents as ``mcp__<server>__<tool>``;
- ``axo.mcp.server``: axo itself as an MCP server — each agent and each workflow of a file a
  tool (``axo mcp serve``);
- ``axo.mcp.cli``: the ``axo mcp`` commands.

Both sides are imported when first used: the ``mcp`` SDK takes most of a second to import,
and ``axo`` commands that do not speak MCP should not pay for it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["McpHub", "ServerStatus", "list_server_tools", "tool_name"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from axo.mcp import client

        return getattr(client, name)
    raise AttributeError(f"module 'axo.mcp' has no attribute {name!r}")
