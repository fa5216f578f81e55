"""The agent actor: one agent's turns, each a generator of effects (``axo.agent.turn``).

Actors do no I/O. The agent actor sends each LLM, tool or recall request of a turn to the host
process (``LLMCall``, ``ToolsCall``, ``RecallCall``) and resumes the turn when the reply
arrives, so a waiting agent never blocks another. Agents whose provider is an in-process
function (no I/O) are answered inside the actor (``call_function``).

Handlers match on the closed unions of ``axo.messages`` and end in ``assert_never``.
"""

from __future__ import annotations

import importlib
import os
import time
import traceback
from typing import Any, assert_never

from axo.agent.turn import AgentTurn, CallLLM, CallTools, Emit, Recall, Turn, TurnResult
from axo.errors import RuntimeFault
from axo.llm.base import ChatRequest, ChatResponse, Usage
from axo.messages import (
    Activate,
    ActorProcess,
    AgentFailed,
    AgentSpec,
    Configure,
    LLMCall,
    LLMReply,
    RecallCall,
    RecallReply,
    TaskCompleted,
    ToAgentActor,
    ToolsCall,
    ToolsReply,
    TurnEvent,
)
from axo.runtime.system import Actor, follow_parent

_functions: dict[str, Any] = {}


def resolve_function(path: str) -> Any:
    """Import ``module:callable`` once per process."""
    fn = _functions.get(path)
    if fn is None:
        module, _, name = path.partition(":")
        fn = getattr(importlib.import_module(module), name)
        _functions[path] = fn
    return fn


def call_function(path: str, request: ChatRequest) -> ChatResponse:
    """Run an in-process provider; it returns text or a ChatResponse."""
    out = resolve_function(path)(request)
    if type(out) is not str and isinstance(out, ChatResponse):  # text is the common answer
        return out
    return ChatResponse(content=str(out), model="function")


class HostFault(RuntimeFault):
    """A failure the host reported for an effect (its kind names the original error)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class AgentActor(Actor):  # type: ignore[misc]
    """One agent: runs a turn per activation, asking the host for each LLM and tool call."""

    def __init__(self) -> None:
        super().__init__()
        self.spec: AgentSpec | None = None
        self.run: Any = None
        self.host: Any = None
        self.run_id = ""
        self.turn: Turn | None = None
        self.state: AgentTurn | None = None
        self.index = -1
        self.effects = 0
        self.started = 0.0
        self.pending: str | None = None

    def receiveMessage(self, msg: object, sender: Any) -> None:
        if not isinstance(msg, ToAgentActor):
            return  # Thespian's own messages (exit requests, child notices)
        match msg:
            case Activate():
                self._activate(msg)
            case Configure():
                self.spec, self.run, self.host = msg.spec, msg.run, msg.host
                self.send(msg.run, ActorProcess(pid=os.getpid()))
                follow_parent()  # multiproc: gone with the run actor's process
            case LLMReply():
                if msg.response is None:
                    self._resume(
                        msg.corr, error=HostFault(msg.error or "LLM call failed", msg.kind)
                    )
                else:
                    self._resume(msg.corr, value=msg.response)
            case ToolsReply():
                self._resume(msg.corr, value=msg.outcomes)
            case RecallReply():
                self._resume(msg.corr, value=msg.facts)
            case _:
                assert_never(msg)

    def _activate(self, msg: Activate) -> None:
        assert self.spec is not None, "Activate before Configure"
        self.index = msg.agent
        self.run_id = msg.run_id
        self.started = time.time()
        self.effects = 0
        self.pending = None
        if self.spec.role == "coordinator" and self.spec.plan is not None:
            from axo.coordination.coordinator import coordinate

            self.state = None
            self.turn = coordinate(self.spec, self.spec.plan, msg.input, msg.upstream)
        else:
            self.state = AgentTurn(self.spec)
            self.turn = self.state.run(msg.input, msg.upstream)
        self._step(None, None)

    def _resume(self, corr: str, *, value: Any = None, error: BaseException | None = None) -> None:
        if corr != self.pending or self.turn is None:
            return  # a late reply to a turn that already ended
        self.pending = None
        self._step(value, error)

    def _step(self, value: Any, error: BaseException | None) -> None:
        """Advance the turn, performing effects, until it waits for the host or ends."""
        turn, spec = self.turn, self.spec
        assert turn is not None and spec is not None
        try:
            effect = turn.throw(error) if error is not None else turn.send(value)
            while True:
                match effect:
                    case Emit():
                        self.send(
                            self.host,
                            TurnEvent(
                                run_id=self.run_id,
                                agent=spec.id,
                                kind=effect.kind,
                                detail=effect.detail,
                            ),
                        )
                        effect = turn.send(None)
                    case CallLLM() if spec.function is not None:
                        effect = turn.send(call_function(spec.function, effect.request))
                    case CallLLM() | CallTools() | Recall():
                        self.pending = self._corr()
                        self.send(self.host, self._effect_request(effect, spec, self.pending))
                        return
                    case _:
                        assert_never(effect)
        except StopIteration as stop:
            self._done(stop.value)
        except Exception as exc:  # a fault in a turn must become a status, not a dead actor
            self._fail(exc)

    def _effect_request(
        self, effect: CallLLM | CallTools | Recall, spec: AgentSpec, corr: str
    ) -> LLMCall | ToolsCall | RecallCall:
        """The message asking the host to perform ``effect`` and reply to this actor."""
        me, run_id = self.myAddress, self.run_id
        match effect:
            case CallLLM():
                return LLMCall(
                    corr=corr,
                    run_id=run_id,
                    agent=spec.id,
                    provider=spec.provider,
                    request=effect.request,
                    reply_to=me,
                    purpose=effect.purpose,
                )
            case CallTools():
                return ToolsCall(
                    corr=corr, run_id=run_id, agent=spec.id, calls=effect.calls, reply_to=me
                )
            case Recall():
                return RecallCall(
                    corr=corr,
                    run_id=run_id,
                    agent=spec.id,
                    query=effect.query,
                    k=effect.k,
                    reply_to=me,
                )
            case _:
                assert_never(effect)

    def _corr(self) -> str:
        self.effects += 1
        assert self.spec is not None
        return f"{self.run_id}:{self.spec.id}:{self.effects}"

    def _done(self, result: TurnResult) -> None:
        self.turn = None
        self.send(
            self.run,
            TaskCompleted(
                run_id=self.run_id,
                agent=self.index,
                output=result.output,
                usage=result.usage,
                llm_calls=result.llm_calls,
                started_at=self.started,
                finished_at=time.time(),
                tool_calls=result.tool_calls,
                stop_reason=result.stop_reason,
            ),
        )

    def _fail(self, exc: BaseException) -> None:
        self.pending = None
        kind = getattr(exc, "kind", None) or type(exc).__name__
        reason = str(exc) or kind
        if not isinstance(exc, RuntimeFault):
            reason = f"{kind}: {reason}\n{''.join(traceback.format_exception(exc)[-3:])}"
        usage = self.state.budget.used if self.state is not None else Usage()
        calls = self.state.llm_calls if self.state is not None else 0
        self.turn = None
        self.send(
            self.run,
            AgentFailed(
                run_id=self.run_id,
                agent=self.index,
                reason=reason,
                kind=kind,
                usage=usage,
                llm_calls=calls,
                started_at=self.started,
                finished_at=time.time(),
            ),
        )
