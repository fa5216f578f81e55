"""One agent turn with three tool calls, against a no-op in-process provider.

The provider asks for a tool call three times and then answers; the tool does nothing. What
is measured is what axo adds around them: packing the context, the budget pre-flight, the
allow-list, dedup, the effect hop to the host, policy checks, argument validation and the
tool-result messages. The baseline is the same loop written directly in Python.
"""

from __future__ import annotations

import json
import time
from typing import Any

import uvloop

import axo
from axo.llm.base import ChatRequest, ChatResponse, ToolCall
from axo.runtime.host import Host
from benches._harness import Measurement, main

DESCRIPTION = "overhead of one agent turn with three tool calls (no-op provider and tool)"


def noop_tool(n: int) -> str:
    """Do nothing.

    Args:
        n: which call this is.
    """
    return f"ok {n}"


def three_tools(request: ChatRequest) -> ChatResponse:
    done = sum(1 for m in request.messages if m.role == "tool")
    calls = sum(1 for m in request.messages if m.role == "assistant")
    if calls + done < 3 and not any("ok 2" in (m.content or "") for m in request.messages):
        n = (
            int(request.messages[-1].content.split()[-1]) + 1
            if request.messages[-1].role == "tool"
            else 0
        )
        return ChatResponse(
            content=None,
            tool_calls=(ToolCall(id=f"c{n}", name="noop_tool", arguments=json.dumps({"n": n})),),
        )
    return ChatResponse(content="done")


def plain(turns: int) -> float:
    start = time.perf_counter()
    for _ in range(turns):
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You are a."},
            {"role": "user", "content": "go"},
        ]
        for n in range(3):
            args = json.loads(json.dumps({"n": n}))
            messages.append({"role": "assistant", "tool_calls": [{"name": "noop_tool"}]})
            messages.append({"role": "tool", "content": noop_tool(**args)})
    return (time.perf_counter() - start) / turns


def axo_turns(turns: int) -> tuple[float, int]:
    wf = axo.load_workflow(
        "turn.yaml",
        text=(
            "providers:\n  p: {type: function, function: 'benches.bench_turn:three_tools'}\n"
            "agents:\n  - {id: a, tools: [noop_tool]}\n"
        ),
    )

    async def go() -> tuple[float, int]:
        with Host("local") as host:
            result = await host.run(wf, "go", tools=[noop_tool])
            calls = result.agent("a").tool_calls
            best = float("inf")
            for _ in range(turns):
                start = time.perf_counter()
                result = await host.run(wf, "go", tools=[noop_tool])
                best = min(best, time.perf_counter() - start)
                assert result.ok and result.agent("a").tool_calls == 3, result.failure
        return best, calls

    return uvloop.run(go())


def run(quick: bool) -> list[Measurement]:
    turns = 20 if quick else 200
    base = min(plain(turns) for _ in range(3))
    best, calls = axo_turns(turns)
    case = "turn with 3 tool calls"
    return [
        Measurement(
            case=case, impl="plain Python loop", value=base * 1e6, unit="µs/turn", baseline=True
        ),
        Measurement(
            case=case,
            impl="axo local (whole run of one agent)",
            value=best * 1e6,
            unit="µs/turn",
            note=f"{calls} tool calls through the host; best of "
            f"{turns}; includes starting and finishing the run",
        ),
        Measurement(
            case="per effect (4 model calls + 3 tool calls)",
            impl="axo local",
            value=best * 1e6 / 7,
            unit="µs",
            note="sync tools run in a worker thread so a blocking tool cannot stall the loop",
        ),
    ]


if __name__ == "__main__":
    main("turn", run)
