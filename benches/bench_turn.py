"""One agent turn with three tool calls, against a no-op in-process provider.

The provider (the model function ``three_tools``) asks for a tool call three times and then
answers; the tool does nothing. What is measured is what axo adds around them: packing the
context, the budget pre-flight, the allow-list, dedup, the effect hop to the host, policy
checks, argument validation, the tool-result messages, and starting and finishing the run.

The baseline is the same loop written directly in Python: it calls the same model function
four times with the same requests axo sends (system and user messages plus the latest round,
as axo's default memory-first context does; checked once, outside the timing), looks each tool
up by name, decodes its JSON arguments, calls it and builds the tool-result message.

Both sides are timed the same way: single turns, alternating plain/axo, ``turns`` of each, the
fastest counting; the collector stays on for both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import uvloop

import axo
from axo.llm.base import ChatMessage, ChatRequest, ChatResponse, ToolCall, ToolSpec
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


# the schema a user of the plain loop writes once (axo derives the same from the docstring)
NOOP_SPEC = ToolSpec(
    name="noop_tool",
    description="Do nothing.",
    parameters={
        "additionalProperties": False,
        "properties": {"n": {"description": "which call this is.", "type": "integer"}},
        "required": ["n"],
        "type": "object",
    },
)
TOOLS: dict[str, Callable[..., str]] = {"noop_tool": noop_tool}
HEAD = (ChatMessage(role="system", content="You are a."), ChatMessage(role="user", content="go"))


def plain_turn(model: Callable[[ChatRequest], ChatResponse] = three_tools) -> tuple[str, int]:
    """The agent loop without a runtime: (final answer, tool calls made)."""
    latest: tuple[ChatMessage, ...] = ()
    calls = 0
    while True:
        request = ChatRequest(
            model="function", messages=HEAD + latest, tools=(NOOP_SPEC,), tool_choice="auto"
        )
        reply = model(request)
        if not reply.tool_calls:
            return reply.content or "", calls
        results = []
        for call in reply.tool_calls:
            tool = TOOLS[call.name]
            content = tool(**json.loads(call.arguments))
            results.append(
                ChatMessage(role="tool", content=content, tool_call_id=call.id, name=call.name)
            )
            calls += 1
        latest = (ChatMessage(role="assistant", tool_calls=reply.tool_calls), *results)


WORKFLOW = (
    "providers:\n  p: {{type: function, function: 'benches.bench_turn:{model}'}}\n"
    "agents:\n  - {{id: a, tools: [noop_tool]}}\n"
)
RECORDED: list[ChatRequest] = []


def recorded_three_tools(request: ChatRequest) -> ChatResponse:
    """``three_tools``, keeping the requests (for the check that both sides send the same)."""
    RECORDED.append(request)
    return three_tools(request)


def measure(turns: int) -> tuple[float, float, int]:
    """Best seconds of one plain turn and of one axo run, alternating; axo's tool calls."""
    wf = axo.load_workflow("turn.yaml", text=WORKFLOW.format(model="three_tools"))
    recording = axo.load_workflow("turn.yaml", text=WORKFLOW.format(model="recorded_three_tools"))

    async def go() -> tuple[float, float, int]:
        with Host("local") as host:
            # validation, untimed: both sides send the model the same 4 requests
            import benches.bench_turn as this  # the module axo's provider imports

            this.RECORDED.clear()
            result = await host.run(recording, "go", tools=[noop_tool])
            assert result.ok, result.failure
            calls = result.agent("a").tool_calls
            axo_requests = list(this.RECORDED)
            this.RECORDED.clear()
            answer, plain_calls = plain_turn(this.recorded_three_tools)
            assert len(axo_requests) == 4 and axo_requests == this.RECORDED, this.RECORDED
            assert calls == plain_calls == 3 and answer == "done", (calls, plain_calls, answer)
            plain_turn()  # warm-up of both, untimed
            await host.run(wf, "go", tools=[noop_tool])  # its actors now exist, as for a run
            base = best = float("inf")
            for _ in range(turns):
                start = time.perf_counter()
                answer, plain_calls = plain_turn()
                base = min(base, time.perf_counter() - start)
                assert plain_calls == 3 and answer == "done"
                start = time.perf_counter()
                result = await host.run(wf, "go", tools=[noop_tool])
                best = min(best, time.perf_counter() - start)
                assert result.ok and result.agent("a").tool_calls == 3, result.failure
        return base, best, calls

    return uvloop.run(go())


def run(quick: bool) -> list[Measurement]:
    turns = 20 if quick else 200
    base, best, calls = measure(turns)
    case = "turn with 3 tool calls"
    return [
        Measurement(
            case=case,
            impl="plain Python loop",
            value=base * 1e6,
            unit="µs/turn",
            baseline=True,
            note=f"same model function, 4 model calls and {calls} tool calls; best of {turns} "
            "single turns, alternating with axo's",
        ),
        Measurement(
            case=case,
            impl="axo local (whole run of one agent)",
            value=best * 1e6,
            unit="µs/turn",
            note=f"{calls} tool calls through the host; best of {turns} single runs; includes "
            "starting and finishing the run; sync tools run in a worker thread",
        ),
    ]


if __name__ == "__main__":
    main("turn", run)
