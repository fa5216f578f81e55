"""Benchmark subject: what calling an MCP tool through axo costs over calling it directly.

Cases: one ``tools/call`` to a small stateful server (a counter) over stdio — the server in its
own process — and over streamable HTTP — a server process on loopback; and, in the full run,
connecting (start or reach the server, negotiate, list the tools). Over HTTP every client talks
to the same server process; a stdio server has a single client, so over stdio the SDK session
and axo's hub each start their own, and their difference includes the two processes' (where
the scheduler puts them). Rounds of sequential calls alternate between implementations; each
call row gives its best round and the spread (min–max) of its rounds, and says when that range
overlaps the baseline's, i.e. when the difference is within run-to-run noise. Implementations:

- ``SDK ClientSession`` (baseline): the SDK's session used directly, same protocol era
  (2026-07-28, negotiated by ``server/discover``) as axo's;
- ``McpHub Tool.call``: what an axo tool adds — the owner-task design, the state check, the
  result turned into text;
- ``ToolRegistry.execute``: the whole path of a model's tool call in a run — JSON arguments,
  the registry's timeout, the outcome.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from axo.config import McpServer
from axo.mcp.client import McpHub
from axo.tools.registry import ToolContext, ToolRegistry
from benches._harness import Measurement, main

DESCRIPTION = "MCP tools/call through axo (McpHub, ToolRegistry) vs the SDK ClientSession"

SERVER = """
import socket, sys
from mcp.server.mcpserver import MCPServer

server = MCPServer("counter", log_level="WARNING")
count = 0

@server.tool(description="Add `by` to the counter and return the new total.")
def increment(by: int = 1) -> int:
    global count
    count += by
    return count

if "--http" in sys.argv:
    import asyncio, uvicorn
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only when the proto says TCP
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(f"ready http://127.0.0.1:{sock.getsockname()[1]}/mcp", flush=True)
    web = uvicorn.Server(uvicorn.Config(server.streamable_http_app(host="127.0.0.1"),
                                        log_level="warning", log_config=None))
    asyncio.run(web.serve(sockets=[sock]))
else:
    server.run()
"""

CTX = ToolContext(run_id="bench", agent="bench", workspace=".")
Call = Callable[[], Awaitable[Any]]


async def _per_call(calls: dict[str, Call], n: int, rounds: int) -> dict[str, list[float]]:
    """µs per call of each implementation in each round; rounds interleave them to share any
    drift."""
    runs: dict[str, list[float]] = {impl: [] for impl in calls}
    for fn in calls.values():
        for _ in range(5):  # warm up: first calls pay for imports and schema compilation
            await fn()
    for _ in range(rounds):
        for impl, fn in calls.items():
            start = time.perf_counter()
            for _ in range(n):
                await fn()
            runs[impl].append((time.perf_counter() - start) / n * 1e6)
    return runs


async def _session(stack: AsyncExitStack, transport: Any) -> ClientSession:
    read, write = await stack.enter_async_context(transport)
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.discover()
    await session.list_tools()
    return session


BASE = "SDK ClientSession"


def _rows(case: str, best: dict[str, float], unit: str, notes: dict[str, str]) -> list[Measurement]:
    return [
        Measurement(
            case=case,
            impl=impl,
            value=v,
            unit=unit,
            baseline=impl == BASE,
            note=notes.get(impl, ""),
        )
        for impl, v in best.items()
    ]


def _spread_notes(runs: dict[str, list[float]], n: int, own_servers: bool) -> dict[str, str]:
    """Each implementation's spread over its runs, and whether its difference from the
    baseline is within the spread (the ranges overlap); one run has no spread to judge by."""
    lo, hi = min(runs[BASE]), max(runs[BASE])
    notes = {}
    for impl, values in runs.items():
        if len(values) > 1:
            note = f"runs of {n} calls: {min(values):.0f}–{max(values):.0f} µs/call"
        else:
            note = f"one run of {n} calls: no spread measured"
        if impl == BASE:
            note = f"best of {len(values)} {note}" if len(values) > 1 else note
            if own_servers:
                note += "; the SDK session and axo each talk to their own server process"
        elif len(values) > 1 and min(values) <= hi and max(values) >= lo:
            note += "; overlaps the baseline's: the difference is within noise"
        notes[impl] = note
    return notes


async def _calls(
    case: str, direct: Any, config: McpServer, n: int, rounds: int, *, own_servers: bool
) -> list[Measurement]:
    async with AsyncExitStack() as stack:
        session = await _session(stack, direct)
        hub = await stack.enter_async_context(await McpHub.open({"counter": config}))
        (tool,) = hub.tools()
        registry = ToolRegistry([tool])
        calls: dict[str, Call] = {
            "SDK ClientSession": lambda: session.call_tool("increment", {"by": 1}),
            "McpHub Tool.call": lambda: tool.call({"by": 1}, CTX),
            "ToolRegistry.execute": lambda: registry.execute(tool.name, "c", '{"by": 1}', CTX),
        }
        runs = await _per_call(calls, n, rounds)
        outcome = await registry.execute(tool.name, "c", '{"by": 0}', CTX)
        assert not outcome.is_error and int(outcome.content) > 0, outcome
    best = {impl: min(values) for impl, values in runs.items()}
    return _rows(case, best, "µs/call", _spread_notes(runs, n, own_servers))


async def _connects(
    case: str, direct: Callable[[], Any], config: McpServer, rounds: int
) -> list[Measurement]:
    best = {BASE: float("inf"), "McpHub.open": float("inf")}
    for _ in range(rounds):
        start = time.perf_counter()
        async with AsyncExitStack() as stack:
            await _session(stack, direct())
            best[BASE] = min(best[BASE], time.perf_counter() - start)
        start = time.perf_counter()
        async with await McpHub.open({"counter": config}) as hub:
            assert hub.tools()
            best["McpHub.open"] = min(best["McpHub.open"], time.perf_counter() - start)
    return _rows(
        case,
        {k: v * 1e3 for k, v in best.items()},
        "ms",
        {BASE: f"connect, negotiate, list tools; best of {rounds}"},
    )


def _http_server(script: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(script), "--http"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()  # the server prints its URL once it listens
    if len(line) != 2 or line[0] != "ready":
        proc.kill()
        raise RuntimeError(f"the benchmark's HTTP server did not start: {line}")
    return proc, line[1]


async def _measure(quick: bool, script: Path) -> list[Measurement]:
    n, rounds = (30, 1) if quick else (500, 5)
    stdio = StdioServerParameters(command=sys.executable, args=[str(script)])
    stdio_cfg = McpServer(command=sys.executable, args=[str(script)])
    # a stdio server has a single client: the SDK session and axo's hub each start their own
    rows = await _calls(
        "stdio call_tool", stdio_client(stdio), stdio_cfg, n, rounds, own_servers=True
    )
    proc, url = _http_server(script)
    try:
        http_cfg = McpServer(transport="streamable_http", url=url)
        rows += await _calls(
            "streamable_http call_tool",
            streamable_http_client(url),
            http_cfg,
            n,
            rounds,
            own_servers=False,
        )
        if not quick:
            rows += await _connects(
                "streamable_http connect", lambda: streamable_http_client(url), http_cfg, 5
            )
            rows += await _connects("stdio connect", lambda: stdio_client(stdio), stdio_cfg, 3)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    return rows


def run(quick: bool) -> list[Measurement]:
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "counter_server.py"
        script.write_text(SERVER)
        return asyncio.run(_measure(quick, script))


if __name__ == "__main__":
    main("mcp", run)
