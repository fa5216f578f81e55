"""The run actor: owns one run's EventLattice and activates its agents (``AgentActor``, in
``axo.runtime.agent_actor``) as their dependencies complete.

Actors do no I/O: effects go to the host process, events go to it in batches.

Handlers match on the closed unions of ``axo.messages`` and end in ``assert_never``.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any, assert_never

from thespian.actors import ActorExitRequest, ChildActorExited, WakeupMessage

from axo.lattice import EventLattice, LatticeError, State
from axo.llm.base import Usage
from axo.messages import (
    Activate,
    ActorProcess,
    AgentDone,
    AgentFailed,
    AgentSkipped,
    AgentSpec,
    AgentStarted,
    CancelRun,
    Configure,
    Events,
    RunEvent,
    RunFinished,
    StartRun,
    StopRun,
    TaskCompleted,
    ToRunActor,
    Upstream,
)
from axo.runtime.agent_actor import AgentActor
from axo.runtime.children import ChildWatch
from axo.runtime.plans import PlanDispatch
from axo.runtime.system import Actor

RUNNING = int(State.RUNNING)


class RunActor(ChildWatch, PlanDispatch, Actor):  # type: ignore[misc]
    """Owns one run's EventLattice; activates agents as their dependencies complete."""

    agent_class = AgentActor

    def __init__(self) -> None:
        super().__init__()
        self.start: StartRun | None = None
        self.host: Any = None
        self.lattice: EventLattice | None = None
        self.actors: list[Any] = []
        self.outputs: dict[int, Upstream] = {}  # completed agents' outputs, as dependents see them
        self.failed = False
        self.over = False
        self.outbox: list[RunEvent] = []
        self.stopping = False
        self.dead: set[int] = set()  # actors whose process exited (see ``_child_exited``)
        self.pids: dict[int, int] = {}  # by actor: the process it said it lives in
        self.starts = 0  # runs started on this actor: tags its wake-ups
        self._plan_setup()
        self.on_host: list[bool] = []  # per agent: its LLM calls go through the host
        self.host_running = 0  # running agents that wait on the host
        self.configured: tuple[tuple[AgentSpec, ...], Any] | None = None  # compared by ==
        self.template: tuple[tuple[Any, ...], EventLattice] | None = None  # by graph, ==

    def emit(self, event: RunEvent) -> None:
        self.outbox.append(event)

    def receiveMessage(self, msg: object, sender: Any) -> None:
        if not isinstance(msg, ToRunActor):
            try:
                if isinstance(msg, ChildActorExited):  # e.g. its process was killed
                    self._child_exited(msg.childAddress)
                elif isinstance(msg, WakeupMessage):
                    self._watch_children(msg.payload)
            finally:
                self._flush()
            return  # the rest of Thespian's own messages are not ours
        try:
            self._handle(msg, sender)
        finally:
            self._flush()

    def _flush(self) -> None:
        """Send the events gathered so far, before anything can wait on I/O.

        When every running agent answers in-process (a ``function`` provider), nothing waits:
        the run goes on synchronously and events are sent in batches of ``BATCH`` and at the
        end. As soon as an agent waits on the host (an LLM or tool call), the view must see
        where the run stands, so they are sent at once.
        """
        if not self.outbox:
            return
        if self.over or self.waiting_on_host or len(self.outbox) >= self.BATCH:
            self.send(self.host, Events(events=tuple(self.outbox)))
            self.outbox.clear()

    BATCH = 256

    @property
    def waiting_on_host(self) -> bool:
        return self.host_running > 0

    def _handle(self, msg: ToRunActor, sender: Any) -> None:
        match msg:
            case TaskCompleted():
                self._completed(msg)
            case StartRun():
                self._start(msg, sender)
            case AgentFailed():
                self._failed(msg)
            case CancelRun():
                self._cancel(msg)
            case ActorProcess():
                if sender in self.actors:
                    self.pids[self.actors.index(sender)] = msg.pid
            case StopRun():
                if self.start is not None and not self.over:
                    self.stopping = True
                    self._maybe_finish()
            case _:
                assert_never(msg)

    def _start(self, msg: StartRun, host: Any) -> None:
        """Start a run; a run actor is reused for later runs of the same agents, each with
        a fresh lattice (nothing carries over but the idle agent actors)."""
        if self.lattice is not None and not self.over:
            raise RuntimeError("StartRun while a run is in progress on this run actor")
        self.start, self.host = msg, host
        self.outputs, self.failed, self.over, self.stopping = {}, False, False, False
        self._plan_setup()
        self.on_host = [spec.function is None for spec in msg.agents]
        self.host_running = 0
        self.lattice = self._fresh_lattice(msg)
        for gone in self.actors[len(msg.agents) :]:  # the last run's plan steps' actors
            self.send(gone, ActorExitRequest())
        del self.actors[len(msg.agents) :]
        self.pids = {i: pid for i, pid in self.pids.items() if i < len(msg.agents)}
        self.dead = {i for i in self.dead if i < len(msg.agents)}
        while len(self.actors) < len(msg.agents):
            self.actors.append(self.createActor(AgentActor))
        if self.dead:  # new actors for them, configured below with the rest
            for i in self.dead:
                self.actors[i] = self.createActor(self.agent_class)
            self.dead, self.configured = set(), None
        if self.configured != (msg.agents, host):
            for addr, spec in zip(self.actors, msg.agents, strict=False):
                self.send(addr, Configure(spec=spec, run=self.myAddress, host=host))
            self.configured = (msg.agents, host)
        self.starts += 1  # a wake-up from an earlier start (same run resumed) is not ours
        if msg.watch_children:  # multiproc: the host watches this process as it does its
            self.send(host, ActorProcess(pid=os.getpid()))
            self.wakeupAfter(timedelta(seconds=msg.watch_children), payload=self.starts)
        ready = self.lattice.start()
        # workers are not activated by the lattice: they wait for a coordinator's plan
        workers = set(self.workers)
        ready = [i for i in ready if i not in workers]
        if workers:
            self.lattice.complete_many(sorted(workers))
        # agents that completed in an earlier life of this run complete again at once, with
        # their recorded output, and are not activated
        done = dict(msg.completed)
        for i, output in done.items():
            self._record(i, output)
        while pre := [i for i in ready if i in done]:
            ready = [i for i in ready if i not in done]
            for i in pre:
                ready += self.lattice.complete(i)
        self._activate(ready)
        self._maybe_finish()

    def _fresh_lattice(self, msg: StartRun) -> EventLattice:
        """This run's lattice; a run actor reused for the same graph copies the last one's
        structure instead of rebuilding it."""
        shape = (msg.dependencies, msg.thresholds, msg.decay)
        if self.template is None or self.template[0] != shape:
            lattice = EventLattice(msg.dependencies, thresholds=msg.thresholds, decay=msg.decay)
            self.template = (shape, lattice)
        return self.template[1].fresh()

    def _activate(self, ready: list[int]) -> None:
        start = self.start
        assert start is not None and self.lattice is not None
        if self.stopping:  # leave them waiting: a resumed run activates them
            for i in ready:
                self.lattice.state[i] = int(State.WAITING)
                self.lattice.signal[i] = 0.0
            self.lattice.unfire(len(ready))
            return
        now = time.time()
        outputs = self.outputs
        for i in ready:
            if i in self.dead:
                self._revive(i, start.agents[i])
            self.host_running += self.on_host[i]
            upstream = tuple([outputs[d] for d in start.dependencies[i] if d in outputs])
            if self.on_host[i]:
                # an in-process agent starts and finishes within this cascade of handlers:
                # its AgentDone (which carries its start time) is all a view can show
                self.emit(AgentStarted(run_id=start.run_id, agent=start.agents[i].id, at=now))
            self.send(
                self.actors[i],
                Activate(run_id=start.run_id, agent=i, input=start.input, upstream=upstream),
            )

    def _record(self, agent: int, output: str) -> None:
        """Keep ``agent``'s output as its dependents receive it (built once, shared by all)."""
        assert self.start is not None
        spec = self.start.agents[agent]
        self.outputs[agent] = Upstream(agent=spec.id, name=spec.name, output=output)

    def _completed(self, msg: TaskCompleted, *, planned: bool = False) -> None:
        assert self.start is not None and self.lattice is not None
        if self.over or self.lattice.state[msg.agent] != RUNNING:
            return
        if msg.agent in self.step_of:
            self._step_finished(
                msg.agent,
                output=msg.output,
                reason=None,
                usage=msg.usage,
                llm_calls=msg.llm_calls,
                started=msg.started_at,
                finished=msg.finished_at,
            )
            self._maybe_finish()
            return
        if not planned:
            self.host_running -= self.on_host[msg.agent]
            if self.start.agents[msg.agent].role == "coordinator" and self._plan_answered(msg):
                self._maybe_finish()
                return
        self._record(msg.agent, msg.output)
        try:
            ready = self.lattice.complete(msg.agent)
        except LatticeError as exc:  # the cycle guard: stop activating, end the run
            ready = []
            self.failed = True
            self._skip_rest(str(exc))
        self.emit(
            AgentDone(
                run_id=msg.run_id,
                agent=self.start.agents[msg.agent].id,
                status="done",
                output=msg.output,
                reason=None,
                usage=msg.usage,
                llm_calls=msg.llm_calls,
                started_at=msg.started_at,
                finished_at=msg.finished_at,
                tool_calls=msg.tool_calls,
                stop_reason=msg.stop_reason,
            )
        )
        self._activate(ready)
        self._maybe_finish()

    def _failed(self, msg: AgentFailed, *, planned: bool = False) -> None:
        assert self.start is not None and self.lattice is not None
        if self.over or self.lattice.state[msg.agent] != RUNNING:
            return
        if msg.agent in self.step_of:
            self._step_finished(
                msg.agent,
                output=None,
                reason=msg.reason,
                usage=msg.usage,
                llm_calls=msg.llm_calls,
                started=msg.started_at,
                finished=msg.finished_at,
            )
            self._maybe_finish()
            return
        if not planned:
            self.host_running -= self.on_host[msg.agent]
        self.failed = True
        agent = self.start.agents[msg.agent]
        skipped = self.lattice.fail(msg.agent)
        self.emit(
            AgentDone(
                run_id=msg.run_id,
                agent=agent.id,
                status="failed",
                output=None,
                reason=msg.reason,
                usage=msg.usage,
                llm_calls=msg.llm_calls,
                started_at=msg.started_at,
                finished_at=msg.finished_at,
            )
        )
        gone = {msg.agent, *skipped}
        for i in skipped:  # named by the dependency that let it down, directly or not
            deps = self.start.dependencies[i]
            via = (
                msg.agent if msg.agent in deps else next((d for d in deps if d in gone), msg.agent)
            )
            reason = f"depends on '{agent.id}', which failed"
            if via != msg.agent:
                reason = (
                    f"depends on '{self.start.agents[via].id}', skipped because '{agent.id}' failed"
                )
            self.emit(AgentSkipped(run_id=msg.run_id, agent=self.start.agents[i].id, reason=reason))
        self._maybe_finish()

    def _cancel(self, msg: CancelRun) -> None:
        """The host ended the run (its timeout, a failed log): running agents fail — each
        with a record, like any failure; what they spent the host counted — and waiting
        ones are skipped."""
        if self.over or self.start is None or self.lattice is None:
            return
        self.failed = True
        now = time.time()
        for i, spec in enumerate(self.start.agents):
            if self.lattice.status(i) == State.RUNNING:
                self.lattice.state[i] = State.FAILED
                self.emit(
                    AgentDone(
                        run_id=self.start.run_id,
                        agent=spec.id,
                        status="failed",
                        output=None,
                        reason=msg.reason,
                        usage=Usage(),
                        llm_calls=0,
                        started_at=now,
                        finished_at=now,
                    )
                )
        self._skip_rest(msg.reason)
        self._finish()

    def _skip_rest(self, reason: str) -> None:
        assert self.start is not None and self.lattice is not None
        for i in range(len(self.start.agents)):
            if self.lattice.status(i) == State.WAITING:
                self.lattice.state[i] = State.SKIPPED
                self.emit(
                    AgentSkipped(
                        run_id=self.start.run_id, agent=self.start.agents[i].id, reason=reason
                    )
                )

    def _report_workers(self) -> None:
        assert self.start is not None
        reported = set()
        for w, text, failure, usage, calls, at in self._workers_report():
            reported.add(w)
            self.emit(
                AgentDone(
                    run_id=self.start.run_id,
                    agent=self.start.agents[w].id,
                    status="done" if failure is None else "failed",
                    output=text,
                    reason=failure,
                    usage=usage,
                    llm_calls=calls,
                    started_at=at,
                    finished_at=at,
                )
            )
        for w in self.workers:
            if w not in reported:
                self.emit(
                    AgentSkipped(
                        run_id=self.start.run_id,
                        agent=self.start.agents[w].id,
                        reason="no plan step was awarded to it",
                    )
                )

    def _maybe_finish(self) -> None:
        assert self.lattice is not None
        if self.lattice.finished and not self.over:
            self._finish()

    def _finish(self) -> None:
        assert self.start is not None and self.lattice is not None
        self.over = True
        agents = self.lattice.state[: len(self.start.agents)]
        # agents the stop held back wait for a resume, also after an earlier failure
        if self.stopping and (agents == int(State.WAITING)).any():
            self.emit(
                RunFinished(
                    run_id=self.start.run_id, status="stopped", lattice=self.lattice.statistics()
                )
            )
            return
        self._report_workers()
        if self.lattice.running == 0:
            for i in self.lattice.finish():
                if i >= len(self.start.agents):
                    continue  # a plan step that never ran: its coordinator reported why
                self.emit(
                    AgentSkipped(
                        run_id=self.start.run_id,
                        agent=self.start.agents[i].id,
                        reason="never activated: its dependencies completed without reaching "
                        "its activation threshold",
                    )
                )
        status = "failed" if self.failed else "succeeded"
        self.emit(
            RunFinished(run_id=self.start.run_id, status=status, lattice=self.lattice.statistics())
        )
