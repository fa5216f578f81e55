"""The built-in tools: files in the workspace, sandboxed Python, and memory.

``read_file`` and ``list_files`` and ``recall`` only read; ``write_file``, ``run_python`` and
``remember`` change something and are granted only when an allow-list names them.
"""

from __future__ import annotations

import functools

from axo.tools.registry import Tool, ToolContext, make_tool
from axo.tools.sandbox import run_python as _run_python
from axo.tools.workspace import confine, relative

MAX_READ = 100_000


async def read_file(path: str, ctx: ToolContext) -> str:
    """Read a UTF-8 text file from the workspace.

    Args:
        path: the file's path, relative to the workspace.
    """
    real = confine(ctx.workspace, path)
    if not real.is_file():
        return f"error: no file '{path}' in the workspace"
    data = real.read_bytes()[:MAX_READ]
    text = data.decode("utf-8", errors="replace")
    return text if len(data) < MAX_READ else text + "\n[…truncated]"


async def list_files(path: str = ".", ctx: ToolContext | None = None) -> str:
    """List the files and folders under a folder of the workspace.

    Args:
        path: a folder relative to the workspace ("." for its top).
    """
    assert ctx is not None
    real = confine(ctx.workspace, path)
    if not real.is_dir():
        return f"error: no folder '{path}' in the workspace"
    entries = []
    for p in sorted(real.rglob("*"))[:500]:
        rel = relative(ctx.workspace, p)
        entries.append(rel + ("/" if p.is_dir() else ""))
    return "\n".join(entries) or "(empty)"


async def write_file(path: str, content: str, ctx: ToolContext) -> str:
    """Write a UTF-8 text file in the workspace, creating folders as needed.

    Args:
        path: the file's path, relative to the workspace.
        content: the whole new content of the file.
    """
    real = confine(ctx.workspace, path)
    real.parent.mkdir(parents=True, exist_ok=True)
    tmp = real.with_name(f".{real.name}.axo-tmp")
    tmp.write_text(content, encoding="utf-8")
    tmp.replace(real)
    return f"wrote {len(content.encode())} bytes to {relative(ctx.workspace, real)}"


async def run_python(code: str, ctx: ToolContext, timeout: float = 10.0) -> str:
    """Run Python code in a sandboxed subprocess (workspace as cwd, no secrets, limits).

    Args:
        code: the program to run; print what you want to see.
        timeout: seconds before it is killed (at most 60).
    """
    limit = ctx.extra.get("python_timeout", 60.0)
    memory = int(ctx.extra.get("python_memory_mb", 256))
    result = await _run_python(
        code, workspace=ctx.workspace, timeout=min(timeout, limit), memory_mb=memory
    )
    return result.render()


async def remember(text: str, ctx: ToolContext, tags: list[str] | None = None) -> str:
    """Store a fact in long-term memory for later recall.

    Args:
        text: the fact, in one or two sentences.
        tags: a few words to find it by.
    """
    if ctx.memory is None:
        return "error: this agent has no memory configured"
    ctx.memory.remember(text, tuple(tags or ()), agent=ctx.agent)
    return "remembered"


async def recall(query: str, ctx: ToolContext, k: int = 5) -> str:
    """Find stored facts that match a query.

    Args:
        query: what you are looking for.
        k: how many facts at most.
    """
    if ctx.memory is None:
        return "error: this agent has no memory configured"
    facts = ctx.memory.recall(query, k)
    return "\n".join(f"- {f.text}" for f in facts) or "(nothing found)"


@functools.cache
def _builtins() -> tuple[Tool, ...]:
    return (
        make_tool(read_file),
        make_tool(list_files),
        make_tool(write_file, writes=True),
        make_tool(run_python, writes=True, timeout=75.0),
        make_tool(remember, writes=True),
        make_tool(recall),
    )


def builtin_tools() -> list[Tool]:
    """The built-in tools (built once: their schemas come from pydantic, which is not free)."""
    return list(_builtins())
