"""What the host does for actors: LLM calls and tool calls, through budgets, hooks and policy.

This module runs in the host process on its event loop. It knows providers, the tool
registry, the policy and the run-level token budget; it records every decision through a
``record(kind, agent, detail)`` callback. It knows nothing about Thespian.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

import msgspec

from axo.agent.budget import estimate_request
from axo.errors import AxoError
from axo.llm.base import ChatRequest, ChatResponse, Usage
from axo.llm.providers import ProviderSet
from axo.messages import (
    AgentDone,
    LLMCall,
    LLMReply,
    RecallCall,
    RecallReply,
    ToolsCall,
    ToolsReply,
)
from axo.tools.policy import CallInfo, Policy, as_decision, call_hook, check_tool
from axo.tools.registry import ToolContext, ToolOutcome, ToolRegistry

Record = Callable[[str, str, dict[str, Any]], None]


MAX_TOOL_RESULT_CHARS = 100_000  # about 25k tokens: more is cut, and the model is told


class EffectRunner:
    """Performs one run's effects.

    Args:
        allowed: per agent, the tool names its allow-list grants (checked again here: the
            actor's check is not the only line of defence).
        run_budget: total tokens for the whole run across agents, or None.
    """

    def __init__(
        self,
        *,
        run_id: str,
        providers: ProviderSet,
        registry: ToolRegistry,
        allowed: dict[str, set[str]],
        policy: Policy,
        workspace: str,
        memory: Any,
        record: Record,
        redact: Callable[[str], str],
        run_budget: int | None = None,
        tool_extra: dict[str, Any] | None = None,
    ) -> None:
        self.run_id = run_id
        self.providers = providers
        self.registry = registry
        self.allowed = allowed
        self.policy = policy
        self.workspace = workspace
        self.memory = memory
        self.record = record
        self.redact = redact
        self.run_budget = run_budget
        self.tool_extra = tool_extra or {}
        self.used = Usage()
        self.reserved = 0
        self._workspace_ready = False

    # ------------------------------------------------------------------ LLM

    async def llm(self, call: LLMCall) -> LLMReply:
        request = call.request
        if self.policy.pre_llm is not None:
            value, failure = await call_hook(
                self.policy.pre_llm, call.agent, request, timeout=self.policy.hook_timeout
            )
            decision = as_decision(value, failure, modify_type=ChatRequest)
            self.record(
                "llm_decision", call.agent, {"action": decision.action, "reason": decision.reason}
            )
            if decision.action == "deny":
                return LLMReply(
                    corr=call.corr, kind="ToolDenied", error=f"LLM call denied: {decision.reason}"
                )
            if decision.action == "modify":
                request = decision.value
        estimate = estimate_request(request)
        if self.run_budget is not None:
            projected = self.used.total_tokens + self.reserved + estimate
            if projected > self.run_budget:
                self.record(
                    "budget_exceeded",
                    call.agent,
                    {"budget": "run", "estimate": projected, "limit": self.run_budget},
                )
                return LLMReply(
                    corr=call.corr,
                    kind="BudgetExceeded",
                    error=(
                        f"run budget exceeded: request needs ~{estimate} tokens, the run has "
                        f"used {self.used.total_tokens} (+{self.reserved} in flight) of "
                        f"{self.run_budget}"
                    ),
                )
        self.reserved += estimate
        try:
            response = await self.providers.get(call.provider).complete(request)
        except AxoError as exc:
            return LLMReply(corr=call.corr, error=self.redact(str(exc)), kind=type(exc).__name__)
        except Exception as exc:  # a provider bug fails the agent, not the host
            return LLMReply(
                corr=call.corr,
                kind=type(exc).__name__,
                error=self.redact(f"{type(exc).__name__}: {exc}"),
            )
        finally:
            self.reserved -= estimate
        self.used = self.used + response.usage
        if self.policy.post_llm is not None:
            value, failure = await call_hook(
                self.policy.post_llm, call.agent, response, timeout=self.policy.hook_timeout
            )
            if failure:
                self.record("llm_decision", call.agent, {"action": "deny", "reason": failure})
                return LLMReply(
                    corr=call.corr, kind="ToolDenied", error=f"LLM answer withheld: {failure}"
                )
            if isinstance(value, ChatResponse):
                response = value
        # a ${VAR} secret the model repeats reaches neither the agent nor, through its
        # output, a result or another agent's prompt (the log redacts it too: a resumed run
        # replays what a live one saw)
        return LLMReply(corr=call.corr, response=redacted_response(response, self.redact))

    # ------------------------------------------------------------------ memory

    def recall(self, call: RecallCall) -> RecallReply:
        facts = self.memory.recall(call.query, call.k) if self.memory is not None else []
        texts = tuple(self.redact(f.text) for f in facts)
        self.record("recalled", call.agent, {"facts": len(texts)})
        return RecallReply(corr=call.corr, facts=texts)

    # ------------------------------------------------------------------ tools

    async def tools(self, call: ToolsCall) -> ToolsReply:
        outcomes = await asyncio.gather(
            *(self._one(call.agent, c.id, c.name, c.arguments) for c in call.calls)
        )
        return ToolsReply(corr=call.corr, outcomes=tuple(outcomes))

    async def _one(self, agent: str, call_id: str, name: str, arguments: str) -> ToolOutcome:
        def denied(reason: str) -> ToolOutcome:
            self.record("tool_decision", agent, {"tool": name, "action": "deny", "reason": reason})
            return ToolOutcome(
                call_id=call_id,
                name=name,
                is_error=True,
                content=f"error: call to '{name}' refused: {reason}",
            )

        if name not in self.allowed.get(agent, set()):
            return denied("not in the agent's allow-list")
        try:
            args = json.loads(arguments or "{}")
        except ValueError:
            args = {}
        info = CallInfo(
            run_id=self.run_id,
            agent=agent,
            tool=name,
            arguments=args if isinstance(args, dict) else {},
        )
        decision = await check_tool(self.policy, info)
        if decision.action == "deny":
            return denied(decision.reason)
        if decision.action == "modify":
            arguments = json.dumps(decision.value)
        self.record(
            "tool_decision",
            agent,
            {"tool": name, "action": decision.action, "reason": decision.reason},
        )
        if not self._workspace_ready:  # created when first needed
            os.makedirs(self.workspace, exist_ok=True)
            self._workspace_ready = True
        ctx = ToolContext(
            run_id=self.run_id,
            agent=agent,
            workspace=self.workspace,
            memory=self.memory,
            extra=self.tool_extra,
        )
        outcome = await self.registry.execute(name, call_id, arguments, ctx)
        if self.policy.post_tool is not None:
            value, failure = await call_hook(
                self.policy.post_tool, info, outcome, timeout=self.policy.hook_timeout
            )
            if failure:
                return denied(f"result withheld: {failure}")
            if isinstance(value, ToolOutcome):
                outcome = value
        outcome = msgspec.structs.replace(outcome, content=self.redact(outcome.content))
        chars = len(outcome.content)
        if chars > MAX_TOOL_RESULT_CHARS:  # it would go whole into the next request, and the log
            kept = outcome.content[:MAX_TOOL_RESULT_CHARS]
            cut = (
                f"\n[… cut: the result has {chars:,} characters; the first {len(kept):,} are shown]"
            )
            outcome = msgspec.structs.replace(outcome, content=kept + cut, structured=None)
            self.record("tool_result_cut", agent, {"tool": name, "chars": chars, "kept": len(kept)})
        self.record(
            "tool_result",
            agent,
            {"tool": name, "is_error": outcome.is_error, "chars": chars},
        )
        return outcome


def failed_reply(
    call: LLMCall | ToolsCall | RecallCall, error: str
) -> LLMReply | ToolsReply | RecallReply:
    """The reply to ``call`` when performing it failed outside the provider or the tools (a
    result that cannot be stored or sent): an LLM call fails its agent; each tool call gets an
    error result the model reads; a recall finds nothing."""
    if isinstance(call, LLMCall):
        return LLMReply(corr=call.corr, error=error, kind="EffectFailed")
    if isinstance(call, ToolsCall):
        return ToolsReply(
            corr=call.corr,
            outcomes=tuple(
                ToolOutcome(call_id=c.id, name=c.name, is_error=True, content=f"error: {error}")
                for c in call.calls
            ),
        )
    return RecallReply(corr=call.corr, facts=())


def redacted_response(response: ChatResponse, redact: Callable[[str], str]) -> ChatResponse:
    """``response`` with every secret in its text and its tool calls' arguments shown as ***."""
    content = redact(response.content) if response.content else response.content
    calls = tuple(
        c
        if (args := redact(c.arguments)) == c.arguments
        else msgspec.structs.replace(c, arguments=args)
        for c in response.tool_calls
    )
    if content == response.content and calls == response.tool_calls:
        return response
    return msgspec.structs.replace(response, content=content, tool_calls=calls)


def redacted_done(event: AgentDone, redact: Callable[[str], str]) -> AgentDone:
    """An agent's end with every secret in its output and its reason shown as ***."""
    output = redact(event.output) if event.output else event.output
    reason = redact(event.reason) if event.reason else event.reason
    if output == event.output and reason == event.reason:
        return event
    return msgspec.structs.replace(event, output=output, reason=reason)
