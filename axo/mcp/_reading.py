"""What an MCP server sent, read for axo: a tool's result as the text a model reads, and a
failure — the SDK's or the server's — as one line (``axo.mcp.client`` decides what it means).
"""

from __future__ import annotations

import contextlib
import json

from mcp import types as mcp_types
from mcp.shared.exceptions import MCPError


def leaf(exc: BaseException) -> BaseException:
    """The first exception inside task-group exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def unreadable(exc: Exception) -> str:
    """What was wrong with a line the SDK could not read, with the line's start."""
    errors = getattr(exc, "errors", None)  # pydantic's ValidationError
    if callable(errors):
        with contextlib.suppress(Exception):
            first = errors()[0]
            return f"{first['msg']}: {str(first.get('input'))[:120]!r}"
    return describe(exc)[:300]


def closed_here(exc: MCPError) -> bool:
    """The SDK's own "Connection closed" (the transport ended), not a server's error that
    happens to use its code."""
    return exc.message == "Connection closed" and exc.data is None


def describe(exc: BaseException) -> str:
    """One line for an exception."""
    exc = leaf(exc)
    if isinstance(exc, MCPError):
        return exc.message
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def answer(result: mcp_types.CallToolResult) -> str:
    """A tool result as the text a model reads."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        elif isinstance(block, mcp_types.ImageContent | mcp_types.AudioContent):
            parts.append(f"[{block.type}: {block.mime_type}]")
        elif isinstance(block, mcp_types.ResourceLink):
            parts.append(f"[resource: {block.uri}]")
        elif isinstance(block, mcp_types.EmbeddedResource):
            res = block.resource
            parts.append(
                res.text
                if isinstance(res, mcp_types.TextResourceContents)
                else f"[resource: {res.uri}]"
            )
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)
