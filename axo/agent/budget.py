"""Token budgets: a conservative estimate of every request, checked before it is sent.

Counted for a request: the system prompt and every message (tool calls and tool results
included), the tool schemas offered, and the completion limit (``max_tokens``, or a default
reserve when the request sets none). Recorded afterwards: what the provider reports.
This module is pure arithmetic; the turn decides what to do when a check fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from axo.agent.context import estimate_messages, estimate_tokens
from axo.llm.base import ChatRequest, Usage

DEFAULT_COMPLETION_RESERVE = 512
NO_USAGE = Usage()
TOOL_OVERHEAD = 8


def estimate_request(request: ChatRequest) -> int:
    """Tokens the request may use at most: prompt (with tools) plus its completion limit."""
    tools = sum(
        TOOL_OVERHEAD
        + estimate_tokens(t.name)
        + estimate_tokens(t.description)
        + estimate_tokens(json.dumps(t.parameters))
        for t in request.tools
    )
    schema = estimate_tokens(json.dumps(request.response_format)) if request.response_format else 0
    completion = request.max_tokens or DEFAULT_COMPLETION_RESERVE
    return estimate_messages(request.messages) + tools + schema + completion


@dataclass
class Verdict:
    """The outcome of a pre-flight check: ``ok``, or the budget that would be crossed."""

    ok: bool
    budget: str = ""
    estimate: int = 0
    limit: int = 0


@dataclass
class AgentBudget:
    """One agent's budgets for one activation (``per_execution`` resets with each)."""

    per_call: int | None = None
    per_execution: int | None = None
    used: Usage = NO_USAGE  # immutable, so one shared zero

    def check(self, estimate: int) -> Verdict:
        if self.per_call is not None and estimate > self.per_call:
            return Verdict(False, "per_call", estimate, self.per_call)
        if self.per_execution is not None:
            total = self.used.total_tokens + estimate
            if total > self.per_execution:
                return Verdict(False, "per_execution", total, self.per_execution)
        return Verdict(True, estimate=estimate)

    def record(self, usage: Usage) -> None:
        if usage.prompt_tokens or usage.completion_tokens:  # in-process answers count none
            self.used = self.used + usage

    @property
    def remaining(self) -> int | None:
        if self.per_execution is None:
            return None
        return max(0, self.per_execution - self.used.total_tokens)
