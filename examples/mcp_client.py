"""The official MCP client talking to ``axo mcp serve`` over stdio.

It starts ``axo mcp serve WORKFLOW`` as a subprocess, lists the tools axo offers, then runs a
workflow tool and prints its progress and answer::

    python examples/mcp_client.py                        # workflows/review.yaml, local model
    python examples/mcp_client.py --workflow my.yaml --input "..." --tool workflow_main

The LLM is whatever the workflow file's provider says (the tests point it at a fake server).
The server process gets this process's environment, so ``${OPENAI_API_KEY}`` in the file works.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]


async def main(workflow: str, text: str, tool: str | None = None) -> int:
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "axo.mcp.cli", "serve", workflow], env=dict(os.environ)
    )
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
        for t in tools:
            print(f"tool {t.name}: {t.description}")
        name = tool or next(t.name for t in tools if t.name.startswith("workflow_"))

        async def progress(done: float, total: float | None, message: str | None) -> None:
            print(f"progress {done:g}/{total or 0:g} {message or ''}")

        result = await client.call_tool(name, {"input": text}, progress_callback=progress)
        print(f"{name} ->")
        print("\n".join(getattr(block, "text", "") for block in result.content))
        return 1 if result.is_error else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflow", default=str(ROOT / "workflows" / "review.yaml"))
    parser.add_argument("--input", help="the run's input (default: the sample pull request)")
    parser.add_argument("--tool", help="which workflow tool to call (default: the first)")
    args = parser.parse_args()
    text = args.input
    if text is None:
        text = (ROOT / "examples" / "inputs" / "pull_request.txt").read_text(encoding="utf-8")
    sys.exit(asyncio.run(main(args.workflow, text, args.tool)))
