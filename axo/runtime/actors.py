"""The two actors of a run: ``RunActor`` (owns the run's EventLattice) and ``AgentActor``.

Actors do no I/O. An agent's turn is a generator of LLM requests (``axo.agent.turn``); the
agent actor sends each request to the host process as an ``LLMCall`` and resumes the turn when
the ``LLMReply`` arrives, so a waiting agent never blocks another. Agents whose provider is an
in-process function (no I/O) are answered inside the actor.

Handlers match on the closed unions of ``axo.messages`` and end in ``assert_never``.
"""

from __future__ import annotations

import importlib
import time
import traceback
from typing import Any, assert_never

from axo.agent.turn import Turn, TurnResult, run_turn
from axo.errors import ProviderError
from axo.lattice import EventLattice, LatticeError, State
from axo.llm.base import ChatRequest, ChatResponse, Usage
from axo.messages import (
    Activate,
    AgentDone,
    AgentFailed,
    AgentSkipped,
    AgentSpec,
    AgentStarted,
    CancelRun,
    Configure,
    Events,
    LLMCall,
    LLMReply,
    RunEvent,
    RunFinished,
    StartRun,
    TaskCompleted,
    ToAgentActor,
    ToRunActor,
    Upstream,
)
from axo.runtime.system import Actor, SystemMessages

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
    if isinstance(out, ChatResponse):
        return out
    return ChatResponse(content=str(out), model="function")


class AgentActor(Actor):  # type: ignore[misc]
    """One agent: runs a turn per activation, asking the host for each LLM call."""

    def __init__(self) -> None:
        super().__init__()
        self.spec: AgentSpec | None = None
        self.run: Any = None
        self.host: Any = None
        self.run_id = ""
        self.turn: Turn | None = None
        self.index = -1
        self.calls = 0
        self.usage = Usage()
        self.started = 0.0
        self.pending: str | None = None

    def receiveMessage(self, msg: object, sender: Any) -> None:
        if isinstance(msg, SystemMessages) or not isinstance(msg, ToAgentActor):
            return
        match msg:
            case Configure():
                self.spec, self.run, self.host = msg.spec, msg.run, msg.host
            case Activate():
                self._activate(msg)
            case LLMReply():
                self._reply(msg)
            case _:
                assert_never(msg)

    def _activate(self, msg: Activate) -> None:
        assert self.spec is not None, "Activate before Configure"
        self.index = msg.agent
        self.run_id = msg.run_id
        self.started = time.time()
        self.calls = 0
        self.usage = Usage()
        try:
            self.turn = run_turn(self.spec, msg.input, msg.upstream)
            self._advance(next(self.turn))
        except StopIteration as stop:
            self._done(stop.value)
        except Exception as exc:  # a bug in a turn must become a status, not a dead actor
            self._fail(exc)

    def _advance(self, request: ChatRequest) -> None:
        """Perform requests until one must wait for the host."""
        spec = self.spec
        assert spec is not None and self.turn is not None
        while spec.function is not None:
            response = call_function(spec.function, request)
            self.calls += 1
            self.usage = self.usage + response.usage
            request = self.turn.send(response)
        self.calls += 1
        self.pending = f"{self.run_id}:{spec.id}:{self.calls}"
        self.send(self.host, LLMCall(corr=self.pending, run_id=self.run_id, agent=spec.id,
                                     provider=spec.provider, request=request,
                                     reply_to=self.myAddress))

    def _reply(self, msg: LLMReply) -> None:
        if msg.corr != self.pending or self.turn is None:
            return  # a late reply to a turn that already ended
        self.pending = None
        try:
            if msg.response is None:
                self.turn.throw(ProviderError(msg.error or "LLM call failed"))
            else:
                self.usage = self.usage + msg.response.usage
                self._advance(self.turn.send(msg.response))
        except StopIteration as stop:
            self._done(stop.value)
        except Exception as exc:
            self._fail(exc)

    def _done(self, result: TurnResult) -> None:
        self.turn = None
        self.send(self.run, TaskCompleted(
            run_id=self.run_id, agent=self.index, output=result.output, usage=self.usage,
            llm_calls=self.calls, started_at=self.started, finished_at=time.time()))

    def _fail(self, exc: BaseException) -> None:
        self.turn = None
        self.pending = None
        kind = type(exc).__name__
        reason = str(exc) or kind
        if not isinstance(exc, ProviderError):
            reason = f"{kind}: {reason}\n{''.join(traceback.format_exception(exc)[-3:])}"
        self.send(self.run, AgentFailed(
            run_id=self.run_id, agent=self.index, reason=reason, kind=kind, usage=self.usage,
            started_at=self.started, finished_at=time.time()))


class RunActor(Actor):  # type: ignore[misc]
    """Owns one run's EventLattice; activates agents as their dependencies complete."""

    def __init__(self) -> None:
        super().__init__()
        self.start: StartRun | None = None
        self.host: Any = None
        self.lattice: EventLattice | None = None
        self.actors: list[Any] = []
        self.outputs: dict[int, str] = {}
        self.failed = False
        self.over = False
        self.outbox: list[RunEvent] = []
        self.configured: tuple[tuple[AgentSpec, ...], Any] | None = None

    def emit(self, event: RunEvent) -> None:
        self.outbox.append(event)

    def receiveMessage(self, msg: object, sender: Any) -> None:
        if isinstance(msg, SystemMessages) or not isinstance(msg, ToRunActor):
            return
        try:
            self._handle(msg, sender)
        finally:
            if self.outbox:
                self.send(self.host, Events(events=tuple(self.outbox)))
                self.outbox.clear()

    def _handle(self, msg: ToRunActor, sender: Any) -> None:
        match msg:
            case StartRun():
                self._start(msg, sender)
            case TaskCompleted():
                self._completed(msg)
            case AgentFailed():
                self._failed(msg)
            case CancelRun():
                self._cancel(msg)
            case _:
                assert_never(msg)

    def _start(self, msg: StartRun, host: Any) -> None:
        """Start a run; a run actor is reused for later runs of the same agents, each with
        a fresh lattice (nothing carries over but the idle agent actors)."""
        if self.lattice is not None and not self.over:
            raise RuntimeError("StartRun while a run is in progress on this run actor")
        self.start, self.host = msg, host
        self.outputs, self.failed, self.over = {}, False, False
        self.lattice = EventLattice(msg.dependencies, thresholds=msg.thresholds,
                                    decay=msg.decay)
        while len(self.actors) < len(msg.agents):
            self.actors.append(self.createActor(AgentActor))
        if self.configured != (msg.agents, host):
            for addr, spec in zip(self.actors, msg.agents, strict=False):
                self.send(addr, Configure(run_id="", spec=spec, run=self.myAddress,
                                          host=host))
            self.configured = (msg.agents, host)
        self._activate(self.lattice.start())
        self._maybe_finish()

    def _activate(self, ready: list[int]) -> None:
        start = self.start
        assert start is not None
        now = time.time()
        for i in ready:
            upstream = tuple(
                Upstream(agent=start.agents[d].id, name=start.agents[d].name,
                         output=self.outputs[d])
                for d in start.dependencies[i] if d in self.outputs)
            self.emit(AgentStarted(run_id=start.run_id, agent=start.agents[i].id, at=now))
            self.send(self.actors[i], Activate(run_id=start.run_id, agent=i,
                                               input=start.input, upstream=upstream))

    def _completed(self, msg: TaskCompleted) -> None:
        assert self.start is not None and self.lattice is not None
        if self.over or self.lattice.status(msg.agent) != State.RUNNING:
            return
        self.outputs[msg.agent] = msg.output
        ready = self.lattice.complete(msg.agent)
        self.emit(AgentDone(
            run_id=msg.run_id, agent=self.start.agents[msg.agent].id, status="done",
            output=msg.output, reason=None, usage=msg.usage, llm_calls=msg.llm_calls,
            started_at=msg.started_at, finished_at=msg.finished_at))
        try:
            self._activate(ready)
        except LatticeError as exc:  # the cycle guard: stop activating, end the run
            self.failed = True
            self._skip_rest(str(exc))
        self._maybe_finish()

    def _failed(self, msg: AgentFailed) -> None:
        assert self.start is not None and self.lattice is not None
        if self.over or self.lattice.status(msg.agent) != State.RUNNING:
            return
        self.failed = True
        agent = self.start.agents[msg.agent]
        skipped = self.lattice.fail(msg.agent)
        self.emit(AgentDone(
            run_id=msg.run_id, agent=agent.id, status="failed", output=None,
            reason=msg.reason, usage=msg.usage, llm_calls=0, started_at=msg.started_at,
            finished_at=msg.finished_at))
        for i in skipped:
            self.emit(AgentSkipped(run_id=msg.run_id, agent=self.start.agents[i].id,
                                   reason=f"depends on '{agent.id}', which failed"))
        self._maybe_finish()

    def _cancel(self, msg: CancelRun) -> None:
        if self.over or self.start is None or self.lattice is None:
            return
        self.failed = True
        self._skip_rest(msg.reason)
        self._finish()

    def _skip_rest(self, reason: str) -> None:
        assert self.start is not None and self.lattice is not None
        for i in range(self.lattice.n):
            if self.lattice.status(i) == State.WAITING:
                self.lattice.state[i] = State.SKIPPED
                self.emit(AgentSkipped(run_id=self.start.run_id,
                                       agent=self.start.agents[i].id, reason=reason))

    def _maybe_finish(self) -> None:
        assert self.lattice is not None
        if self.lattice.finished and not self.over:
            self._finish()

    def _finish(self) -> None:
        assert self.start is not None and self.lattice is not None
        self.over = True
        if self.lattice.running == 0:
            for i in self.lattice.finish():
                self.emit(AgentSkipped(
                    run_id=self.start.run_id, agent=self.start.agents[i].id,
                    reason="never activated: its dependencies completed without reaching "
                           "its activation threshold"))
        status = "failed" if self.failed else "succeeded"
        self.emit(RunFinished(run_id=self.start.run_id, status=status,
                              lattice=self.lattice.statistics()))

