"""What a run returns: every agent's status, output, usage and timing, and the sinks' outputs.

Data only (msgspec Structs, so ``--json`` is one encode). ``RunTracker`` folds the run's
events into this shape as they arrive; the live view and the final result read the same state.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from axo.llm.base import Usage
from axo.messages import (
    AgentDone,
    AgentSkipped,
    AgentStarted,
    AgentStatus,
    PlanMade,
    RunEvent,
    RunFinished,
    StepDone,
)


class AgentResult(msgspec.Struct, kw_only=True):
    id: str
    name: str
    status: AgentStatus = "waiting"
    output: str | None = None
    reason: str | None = None
    usage: Usage = Usage()
    llm_calls: int = 0
    tool_calls: int = 0
    retries: int = 0  # LLM attempts that failed and were tried again
    stop_reason: str | None = None
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else time.time()
        return max(0.0, end - self.started_at)

    @property
    def tokens_per_second(self) -> float | None:
        s = self.seconds
        if not s or self.status != "done" or not self.usage.completion_tokens:
            return None
        return self.usage.completion_tokens / s


RunStatus = Literal["running", "succeeded", "failed", "stopped"]


class Note(msgspec.Struct, frozen=True, kw_only=True):
    """A decision or incident inside a run, in the order it happened."""

    kind: str
    agent: str
    detail: dict[str, Any]
    at: float


class RunResult(msgspec.Struct, kw_only=True):
    """The result of one run.

    Attributes:
        outputs: the sink agents' outputs (agents with no dependents), in declaration order;
            a sink that did not finish has no entry.
    """

    run_id: str
    workflow: str | None
    file: str
    runtime: str
    status: RunStatus
    input: str
    agents: list[AgentResult]
    sinks: list[str]
    outputs: dict[str, str]
    usage: Usage
    started_at: float
    finished_at: float
    lattice: dict[str, int] = {}
    failure: str | None = None
    notes: list[Note] = []
    plan: dict[str, Any] | None = None

    def notes_of(self, kind: str) -> list[Note]:
        return [n for n in self.notes if n.kind == kind]

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def wall_seconds(self) -> float:
        return self.finished_at - self.started_at

    def agent(self, agent_id: str) -> AgentResult:
        for a in self.agents:
            if a.id == agent_id:
                return a
        raise KeyError(agent_id)

    def to_json(self) -> bytes:
        data = msgspec.to_builtins(self)
        data["wall_seconds"] = round(self.wall_seconds, 6)
        data["usage"]["total_tokens"] = self.usage.total_tokens
        for a, raw in zip(self.agents, data["agents"], strict=True):
            raw["seconds"] = None if a.seconds is None else round(a.seconds, 6)
            raw["tokens_per_second"] = (
                None if a.tokens_per_second is None else round(a.tokens_per_second, 3)
            )
            raw["usage"]["total_tokens"] = a.usage.total_tokens
        return msgspec.json.encode(data)


class RunTracker:
    """Folds run events into per-agent state; read by the live view and the final result."""

    def __init__(self, run_id: str, agents: Sequence[tuple[str, str]]) -> None:
        self.run_id = run_id
        self.agents = {aid: AgentResult(id=aid, name=name) for aid, name in agents}
        self.order = [aid for aid, _ in agents]
        self.started_at = time.time()
        self.finished: RunFinished | None = None
        self.events = 0
        self.notes: list[Note] = []
        self.plan: dict[str, Any] | None = None
        # the turns in flight: what their answered LLM calls used, and how many there were
        self.spending: dict[str, tuple[Usage, int]] = {}

    def spent(self, agent: str, usage: Usage) -> None:
        """An LLM call of ``agent``'s turn in flight was answered (the host saw it): counted
        even if the turn never finishes (a timeout, a stop, a killed process)."""
        if agent not in self.agents:  # a plan step, '<worker>.<step>': its worker's
            agent = agent.partition(".")[0]
        if agent in self.agents:  # an agent fires once per run (a worker once per step)
            before, calls = self.spending.get(agent, (Usage(), 0))
            self.spending[agent] = (before + usage, calls + 1)

    def after_turn(self, agent: str, usage: Usage) -> None:
        """An LLM call made for ``agent`` after its turn (distilling its session)."""
        a = self.agents[agent]
        a.usage, a.llm_calls = a.usage + usage, a.llm_calls + 1

    def counted(self, event: AgentDone) -> AgentDone:
        """``event`` (applied) with the usage the tracker settled on: a killed agent process
        and a cancelled turn report none, while the host counted each answered call."""
        a = self.agents[event.agent]
        if a.usage == event.usage:
            return event
        return msgspec.structs.replace(event, usage=a.usage, llm_calls=a.llm_calls)

    def ended(self, failed: Sequence[str], skipped: Sequence[str], reason: str) -> list[RunEvent]:
        """The records of agents ended without their actors' word (``cancel_running``)."""
        now = time.time()
        out: list[RunEvent] = [
            AgentSkipped(run_id=self.run_id, agent=a, reason=reason) for a in skipped
        ]
        for aid in failed:
            a = self.agents[aid]
            out.append(
                AgentDone(
                    run_id=self.run_id,
                    agent=aid,
                    status="failed",
                    output=None,
                    reason=reason,
                    usage=a.usage,
                    llm_calls=a.llm_calls,
                    started_at=a.started_at or now,
                    finished_at=a.finished_at or now,
                )
            )
        return out

    def _settle_spending(self, a: AgentResult, reported: tuple[Usage, int] | None = None) -> None:
        """``a``'s turn is over: it shows the most that was counted of it — what the turn
        reported, what a cut already settled, what the host counted of its answered calls (a
        killed agent process and a cancelled turn report nothing)."""
        counts = [(a.usage, a.llm_calls), self.spending.pop(a.id, (Usage(), 0))]
        if reported is not None:
            counts.insert(0, reported)  # first: it wins a tie
        a.usage, a.llm_calls = max(counts, key=lambda count: count[0].total_tokens)

    def note(self, kind: str, agent: str, detail: dict[str, Any]) -> None:
        """Record a decision or incident (tool decision, budget, loop guard…)."""
        self.notes.append(Note(kind=kind, agent=agent, detail=detail, at=time.time()))
        if kind == "llm_retry" and agent in self.agents:
            self.agents[agent].retries += 1

    def apply(self, event: RunEvent) -> None:
        self.events += 1
        match event:
            case AgentStarted():
                a = self.agents[event.agent]
                a.status, a.started_at = "running", event.at
            case AgentDone():
                a = self.agents[event.agent]
                a.status, a.output, a.reason = event.status, event.output, event.reason
                self._settle_spending(a, (event.usage, event.llm_calls))
                a.tool_calls, a.stop_reason = event.tool_calls, event.stop_reason
                a.started_at = a.started_at or event.started_at
                a.finished_at = event.finished_at
            case AgentSkipped():
                a = self.agents[event.agent]
                a.status, a.reason = "skipped", event.reason
            case PlanMade():
                self.plan = {
                    "coordinator": event.coordinator,
                    "steps": event.steps,
                    "awards": event.awards,
                    "unassigned": event.unassigned,
                    "results": [],
                }
            case StepDone():
                if self.plan is not None:
                    self.plan["results"].append(
                        {
                            "step": event.step,
                            "worker": event.worker,
                            "status": event.status,
                            "output": event.output,
                            "reason": event.reason,
                            "tokens": event.usage.total_tokens,
                        }
                    )
            case RunFinished():
                self.finished = event

    def restore(
        self,
        agent: str,
        *,
        output: str,
        usage: Usage,
        llm_calls: int,
        tool_calls: int,
        started_at: float,
        finished_at: float,
    ) -> None:
        """An agent that completed in an earlier life of a resumed run."""
        a = self.agents[agent]
        a.status, a.output, a.usage = "done", output, usage
        a.llm_calls, a.tool_calls = llm_calls, tool_calls
        a.started_at, a.finished_at = started_at or None, finished_at or None
        a.stop_reason = "answered (earlier run)"

    def interrupt_running(self, reason: str) -> list[str]:
        """A stop cut running agents short: they wait again (a resumed run runs them);
        their ids."""
        cut = [a for a in self.agents.values() if a.status == "running"]
        for a in cut:
            a.status, a.reason = "waiting", reason
            self._settle_spending(a)
        return [a.id for a in cut]

    def cancel_running(self, reason: str) -> tuple[list[str], list[str]]:
        """The run was cut short (its timeout): running agents fail, waiting ones are
        skipped; (failed, skipped) ids."""
        now = time.time()
        failed, skipped = [], []
        for a in self.agents.values():
            if a.status == "running":
                a.status, a.reason, a.finished_at = "failed", reason, now
                self._settle_spending(a)
                failed.append(a.id)
            elif a.status == "waiting":
                a.status, a.reason = "skipped", reason
                skipped.append(a.id)
        return failed, skipped

    @property
    def usage(self) -> Usage:
        total = Usage()
        for a in self.agents.values():
            total = total + a.usage
        return total

    def result(
        self,
        *,
        workflow: str | None,
        file: str,
        runtime: str,
        run_input: str,
        sinks: list[str],
        failure: str | None = None,
        lattice: dict[str, Any] | None = None,
    ) -> RunResult:
        agents = [self.agents[aid] for aid in self.order]
        for a in agents:  # a turn no event ended (a worker's steps in a stopped run)
            if a.id in self.spending:
                self._settle_spending(a)
        failed = failure is not None or any(a.status == "failed" for a in agents)
        if self.finished is not None and self.finished.status == "failed":
            failed = True
        # stopped with agents left to run: resumable, whatever failed before the stop (it runs
        # again on resume); a failure of the run itself (its timeout, its log) is no stop
        stopped = self.finished is not None and self.finished.status == "stopped"
        stopped = stopped and failure is None
        if failure is None and failed:
            bad = next((a for a in agents if a.status == "failed"), None)
            if bad is not None:
                failure = f"agent '{bad.id}' failed: {(bad.reason or '').splitlines()[0]}"
        outputs = {s: self.agents[s].output or "" for s in sinks if self.agents[s].status == "done"}
        return RunResult(
            run_id=self.run_id,
            workflow=workflow,
            file=file,
            runtime=runtime,
            status="stopped" if stopped else "failed" if failed else "succeeded",
            input=run_input,
            agents=agents,
            sinks=sinks,
            outputs=outputs,
            usage=self.usage,
            started_at=self.started_at,
            finished_at=time.time(),
            lattice=dict(lattice or (self.finished.lattice if self.finished else {})),
            failure=failure,
            notes=list(self.notes),
            plan=self.plan,
        )
