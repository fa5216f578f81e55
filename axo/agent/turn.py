"""One activation of one agent, written as a generator of effects.

The turn yields the LLM requests it needs and receives their responses; whoever drives it
(an actor, a test) performs them. It therefore has no I/O and no knowledge of actors,
providers or HTTP, and reads top to bottom like the agent's reasoning.
"""

from __future__ import annotations

from collections.abc import Generator

import msgspec

from axo.agent.context import pack
from axo.llm.base import ChatRequest, ChatResponse, Usage
from axo.messages import AgentSpec, Upstream


class TurnResult(msgspec.Struct, frozen=True, kw_only=True):
    output: str
    usage: Usage
    llm_calls: int


Turn = Generator[ChatRequest, ChatResponse, TurnResult]


def run_turn(spec: AgentSpec, run_input: str, upstream: tuple[Upstream, ...]) -> Turn:
    """Answer the task from the packed context (tools arrive with the agent-turn issue)."""
    reserve = spec.max_tokens or 0
    messages, _report = pack(spec, run_input, upstream, reserve=reserve)
    request = ChatRequest(
        model=spec.model,
        messages=messages,
        max_tokens=spec.max_tokens,
        temperature=spec.temperature,
        top_p=spec.top_p,
        seed=spec.seed,
        stop=spec.stop,
    )
    response = yield request
    return TurnResult(output=response.content or "", usage=response.usage, llm_calls=1)
