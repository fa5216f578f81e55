"""One activation of one agent, written as a generator of effects.

The turn yields what it needs done — ``CallLLM``, ``CallTools``, ``Emit`` — and receives the
results; whoever drives it (an agent actor, a test) performs them. It therefore has no I/O and
no knowledge of actors, providers or HTTP, and reads top to bottom like the agent's loop:

    pack context → [pre-flight budget → LLM → tool calls (allow-list, dedup)] × iterations
    → final answer (without tools once ``max_iterations`` is reached)

Budgets are checked before every LLM request of the turn, with a conservative estimate;
``abort`` raises ``BudgetExceeded`` before anything is sent, ``warn`` emits an event and goes
on, ``summarize`` compacts the conversation with LLM calls (which count too) until it fits.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NoReturn

import msgspec

from axo.agent.budget import AgentBudget, Verdict, estimate_request
from axo.agent.context import estimate_tokens, pack
from axo.agent.output import checked
from axo.errors import BudgetExceeded, NoAnswer, OutputInvalid
from axo.llm.base import ChatMessage, ChatRequest, ChatResponse, ToolCall, Usage
from axo.messages import AgentSpec, Upstream
from axo.tools.registry import ToolOutcome, canonical_args


class CallLLM(msgspec.Struct, frozen=True, kw_only=True):
    request: ChatRequest
    purpose: str = "turn"


class CallTools(msgspec.Struct, frozen=True, kw_only=True):
    calls: tuple[ToolCall, ...]


class Recall(msgspec.Struct, frozen=True, kw_only=True):
    query: str
    k: int


class Emit(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    detail: dict[str, Any]


Effect = CallLLM | CallTools | Recall | Emit


class TurnResult(msgspec.Struct, frozen=True, kw_only=True):
    output: str
    usage: Usage
    llm_calls: int
    tool_calls: int = 0
    stop_reason: str = "answered"


Turn = Generator[Effect, Any, TurnResult]

SCHEMA_NOTE = (
    "Your answer does not follow the required JSON schema: {problem}. Answer again with only "
    "a JSON value that follows the schema."
)
REPEAT_NOTE = (
    "You already called {name} with these arguments in this task; its result was:\n{result}"
)
ALL_REPEATS = (
    "Every tool call you just made repeats an earlier one. Do not call tools "
    "again: answer now from what you already have."
)
FINAL_NOTE = (
    "You have used all {n} tool rounds allowed. Give your final answer now, without calling tools."
)
TEXT_NOTE = (
    "Tools are not available now, so your tool calls were not run. Give your final answer as text."
)
SUMMARY_SYSTEM = (
    "You compress the working notes of an AI agent so they fit its memory. Keep "
    "every fact, number, name, decision and tool result that matters; drop "
    "repetition and chatter. Answer with the compressed notes only."
)
RECALLED = "## What you remember (recalled from long-term memory)\n"
SUMMARY_HEAD = "Summary of earlier work (compacted to fit the token budget):\n"
LONG_RESULT = 200  # tokens above which a tool result is worth summarizing


def run_turn(spec: AgentSpec, run_input: str, upstream: tuple[Upstream, ...]) -> Turn:
    """Drive one activation of ``spec`` on the run's input and its upstream outputs."""
    return AgentTurn(spec).run(run_input, upstream)


class AgentTurn:
    """The state of one activation; ``run`` is the generator that drives it."""

    __slots__ = (
        "budget",
        "llm_calls",
        "messages",
        "plain",
        "recalled",
        "round_start",
        "spec",
        "tool_calls",
    )

    def __init__(self, spec: AgentSpec) -> None:
        self.spec = spec
        self.budget = AgentBudget(spec.per_call, spec.per_execution)
        # nothing to do around a request but send it: no recall, no budget to check
        self.plain = not spec.recall_k and spec.per_call is None and spec.per_execution is None
        self.llm_calls = 0
        self.tool_calls = 0
        self.messages: list[ChatMessage] = []  # the session: every round of this turn
        self.round_start = 0  # where the latest round begins in ``messages``
        self.recalled: tuple[str, ...] = ()

    # ------------------------------------------------------------------ the loop

    def run(self, run_input: str, upstream: tuple[Upstream, ...]) -> Turn:
        spec = self.spec
        reserve = spec.max_tokens or 0
        packed, report = pack(spec, run_input, upstream, reserve=reserve)
        self.messages = list(packed)
        if report is not None and (report.truncated or report.dropped):
            yield Emit(kind="context_packed", detail=msgspec.to_builtins(report))
        allowed = {t.name for t in spec.tool_specs}
        seen: dict[str, str] = {}
        rounds = 0
        final = not spec.tool_specs
        while True:
            if self.plain:  # the common case, without a nested generator per request
                response = yield CallLLM(request=self._request(final=final))
                self._answered(response)
            else:
                response = yield from self._ask(final=final)
            if not response.tool_calls or final:
                if response.tool_calls:
                    response = yield from self._text_instead(response)
                output = response.content or ""
                if spec.output_schema is not None and not final:
                    response = yield from self._ask(final=True)
                    output = response.content or ""
                if spec.output_schema is not None:
                    output = yield from self._follow_schema(output, spec.output_schema)
                stop = "max_iterations" if rounds >= spec.max_iterations else "answered"
                return TurnResult(
                    output=output,
                    usage=self.budget.used,
                    llm_calls=self.llm_calls,
                    tool_calls=self.tool_calls,
                    stop_reason=stop,
                )
            rounds += 1
            self.round_start = len(self.messages)
            self.messages.append(
                ChatMessage(
                    role="assistant", content=response.content, tool_calls=response.tool_calls
                )
            )
            outcomes, repeats = yield from self._tools(response.tool_calls, allowed, seen)
            for call in response.tool_calls:
                o = outcomes[call.id]
                self.messages.append(
                    ChatMessage(
                        role="tool", content=o.content, tool_call_id=call.id, name=call.name
                    )
                )
            if repeats == len(response.tool_calls):
                yield Emit(
                    kind="loop_guard", detail={"reason": "all_calls_repeated", "round": rounds}
                )
                self.messages.append(ChatMessage(role="user", content=ALL_REPEATS))
                final = True
            elif rounds >= spec.max_iterations:
                yield Emit(
                    kind="turn_stopping",
                    detail={"reason": "max_iterations", "max_iterations": spec.max_iterations},
                )
                self.messages.append(
                    ChatMessage(role="user", content=FINAL_NOTE.format(n=spec.max_iterations))
                )
                final = True

    def _text_instead(self, response: ChatResponse) -> Generator[Effect, Any, ChatResponse]:
        """A final answer that calls tools where none were offered: the calls are not run
        (noted); with no text beside them the model is told so and asked once more, and a
        second answer without text fails the turn."""
        names = [c.name for c in response.tool_calls]
        yield Emit(kind="tool_calls_ignored", detail={"tools": names, "reason": "no tools now"})
        if (response.content or "").strip():
            return response
        self.messages.append(ChatMessage(role="user", content=TEXT_NOTE))
        response = yield from self._ask(final=True)
        if response.tool_calls:
            names = [c.name for c in response.tool_calls]
            yield Emit(kind="tool_calls_ignored", detail={"tools": names, "reason": "no tools now"})
        if not (response.content or "").strip() and response.tool_calls:
            raise NoAnswer(
                "the model answered with tool calls and no text twice, where no tools were "
                "offered (after its tool rounds, or for its final answer)"
            )
        return response

    def _follow_schema(self, output: str, schema: dict[str, Any]) -> Generator[Effect, Any, str]:
        """The answer, checked against the schema; when it does not follow it, the model is
        told what is wrong and asked once more, and a second miss fails the turn."""
        output, problem = checked(output, schema)
        if problem is None:
            return output
        yield Emit(kind="output_invalid", detail={"problem": problem, "action": "ask again"})
        self.messages.append(ChatMessage(role="assistant", content=output))
        self.messages.append(ChatMessage(role="user", content=SCHEMA_NOTE.format(problem=problem)))
        response = yield from self._ask(final=True)
        output, problem = checked(response.content or "", schema)
        if problem is not None:
            raise OutputInvalid(problem)
        return output

    def context(self) -> tuple[ChatMessage, ...]:
        """What a request shows the model: identity and task, recalled facts, and — memory
        first — only the latest round (``context: full`` shows every round)."""
        msgs = self.messages
        whole = self.spec.context == "full" or self.round_start == 0
        if whole and not self.recalled:
            return tuple(msgs)
        head = msgs[:2]
        if self.recalled:
            facts = "\n".join(f"- {f}" for f in self.recalled)
            head.append(ChatMessage(role="user", content=RECALLED + facts))
        return (*head, *(msgs[2:] if whole else msgs[self.round_start :]))

    def _request(self, *, final: bool) -> ChatRequest:
        spec = self.spec
        tools = () if final or spec.tool_choice == "none" else spec.tool_specs
        # a forced choice (a tool's name, or "required") applies to the turn's first request;
        # later rounds may answer freely (a round starts only once tools were called)
        choice = spec.tool_choice if self.round_start == 0 else "auto"
        return ChatRequest(
            model=spec.model,
            messages=self.context(),
            tools=tools,
            tool_choice=(choice if tools else None),
            max_tokens=spec.max_tokens,
            temperature=spec.temperature,
            top_p=spec.top_p,
            seed=spec.seed,
            stop=spec.stop,
            response_format=spec.output_schema if final else None,
        )

    def _ask(self, *, final: bool) -> Generator[Effect, Any, ChatResponse]:
        if self.spec.recall_k:
            self.recalled = yield Recall(query=self._recall_query(), k=self.spec.recall_k)
        request = self._request(final=final)
        if self.budget.per_call is not None or self.budget.per_execution is not None:
            request = yield from self._preflight(request, final=final)
        response: ChatResponse = yield CallLLM(request=request)
        self._answered(response)
        return response

    def _answered(self, response: ChatResponse) -> None:
        self.llm_calls += 1
        self.budget.record(response.usage)

    def _recall_query(self) -> str:
        task = self.messages[1].content or "" if len(self.messages) > 1 else ""
        latest = (
            " ".join(m.content or "" for m in self.messages[self.round_start :])
            if self.round_start
            else ""
        )
        return f"{task[:1000]} {latest[-1000:]}"

    # ------------------------------------------------------------------ tools

    def _tools(
        self, calls: tuple[ToolCall, ...], allowed: set[str], seen: dict[str, str]
    ) -> Generator[Effect, Any, tuple[dict[str, ToolOutcome], int]]:
        outcomes: dict[str, ToolOutcome] = {}
        fresh: list[ToolCall] = []
        keys: dict[str, str] = {}
        repeats = 0
        for call in calls:
            key = f"{call.name}\x00{canonical_args(call.arguments)}"
            if call.name not in allowed:
                outcomes[call.id] = ToolOutcome(
                    call_id=call.id,
                    name=call.name,
                    is_error=True,
                    content=f"error: tool '{call.name}' is not allowed for this agent "
                    f"(allowed: {', '.join(sorted(allowed)) or 'none'})",
                )
                yield Emit(
                    kind="tool_denied",
                    detail={"tool": call.name, "reason": "not in the agent's allow-list"},
                )
            elif key in seen or key in keys.values():
                repeats += 1
                prior = seen.get(key, "(the result of the identical call above)")
                outcomes[call.id] = ToolOutcome(
                    call_id=call.id,
                    name=call.name,
                    content=REPEAT_NOTE.format(name=call.name, result=prior),
                )
                yield Emit(
                    kind="tool_deduplicated",
                    detail={"tool": call.name, "arguments": call.arguments},
                )
            else:
                keys[call.id] = key
                fresh.append(call)
        if fresh:
            results: tuple[ToolOutcome, ...] = yield CallTools(calls=tuple(fresh))
            self.tool_calls += len(fresh)
            for o in results:
                outcomes[o.call_id] = o
                seen[keys[o.call_id]] = o.content
        return outcomes, repeats

    # ------------------------------------------------------------------ budgets

    def _preflight(
        self, request: ChatRequest, *, final: bool
    ) -> Generator[Effect, Any, ChatRequest]:
        if self.budget.per_call is None and self.budget.per_execution is None:
            return request  # nothing to check (the run-wide budget is the host's)
        estimate = estimate_request(request)
        verdict = self.budget.check(estimate)
        if verdict.ok:
            return request
        policy = self.spec.overflow_policy
        detail = overflow_detail(verdict, policy)
        if policy == "warn":
            yield Emit(kind="budget_warning", detail=detail)
            return request
        if policy == "summarize":
            for phase in ("older_turns", "long_tool_results"):
                compacted = yield from self._compact(phase)
                if not compacted:
                    continue
                request = self._request(final=final)
                verdict = self.budget.check(estimate_request(request))
                if verdict.ok:
                    yield Emit(
                        kind="context_summarized",
                        detail={**detail, "phase": phase, "new_estimate": verdict.estimate},
                    )
                    return request
        yield from refuse(verdict, detail)

    def _compact(self, phase: str) -> Generator[Effect, Any, bool]:
        """Summarize part of the conversation with an LLM call; True when it shrank."""
        msgs = self.messages
        head, body = msgs[:2], msgs[2:]
        last = max((i for i, m in enumerate(body) if m.role == "assistant"), default=None)
        if phase == "older_turns":
            if self.spec.context != "full" or last is None or last == 0:
                return False  # memory-first requests never carry older rounds
            older, tail = body[:last], body[last:]
            summary = yield from self._summarize(older)
            if summary is None:
                return False
            self.messages = [*head, ChatMessage(role="user", content=SUMMARY_HEAD + summary), *tail]
            self.round_start = len(head) + 1
            return True
        # only what the request carries: memory first, the latest round
        sent = 0 if self.spec.context == "full" else self.round_start
        long = [
            i
            for i, m in enumerate(msgs)
            if i >= sent and m.role == "tool" and estimate_tokens(m.content) > LONG_RESULT
        ]
        if not long:
            return False
        for i in long:
            summary = yield from self._summarize([msgs[i]])
            if summary is None:
                return False
            msgs[i] = msgspec.structs.replace(msgs[i], content="(summarized) " + summary)
        return True

    def _summarize(self, part: list[ChatMessage]) -> Generator[Effect, Any, str | None]:
        text = "\n\n".join(_render(m) for m in part)
        limit = self.spec.per_call or 4096
        remaining = self.budget.remaining
        if remaining is not None:
            limit = min(limit, remaining)
        out_tokens = max(32, min(256, limit // 4))
        room = limit - out_tokens - estimate_tokens(SUMMARY_SYSTEM) - 16
        if room <= 32:
            return None
        keep = int(room * 3)  # characters that fit the room (3 chars per token, estimated)
        if len(text) > keep:
            text = text[:keep]
        request = ChatRequest(
            model=self.spec.model,
            max_tokens=out_tokens,
            temperature=0.0,
            messages=(
                ChatMessage(role="system", content=SUMMARY_SYSTEM),
                ChatMessage(role="user", content=text),
            ),
        )
        if not self.budget.check(estimate_request(request)).ok:
            return None
        response: ChatResponse = yield CallLLM(request=request, purpose="summarize")
        self.llm_calls += 1
        self.budget.record(response.usage)
        return (response.content or "").strip() or None


def overflow_detail(verdict: Verdict, policy: str) -> dict[str, Any]:
    """What a note about a request over an agent's budget says."""
    return {
        "budget": verdict.budget,
        "estimate": verdict.estimate,
        "limit": verdict.limit,
        "policy": policy,
    }


def refuse(verdict: Verdict, detail: dict[str, Any]) -> Generator[Effect, Any, NoReturn]:
    """Note a request over budget (with the estimate that last failed), then fail the turn
    without sending it."""
    yield Emit(
        kind="budget_exceeded",
        detail={**detail, "estimate": verdict.estimate, "limit": verdict.limit},
    )
    raise BudgetExceeded(verdict.budget, verdict.estimate, verdict.limit)


def _render(m: ChatMessage) -> str:
    if m.role == "assistant" and m.tool_calls:
        calls = "; ".join(f"{c.name}({c.arguments})" for c in m.tool_calls)
        return f"assistant called: {calls}" + (f"\n{m.content}" if m.content else "")
    label = f"tool {m.name}" if m.role == "tool" else m.role
    return f"{label}: {m.content or ''}"
