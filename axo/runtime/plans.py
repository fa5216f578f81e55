"""How a run actor carries out a coordinator's plan: auction the steps, run them, report.

When a ``role: coordinator`` agent answers with a plan, its steps are auctioned among the
run's ``role: worker`` agents (capabilities = their tools and ``capabilities``; live load =
steps awarded so far; budget = what is left of their ``per_execution`` budget), added to the
run's EventLattice as new agents — a step depends on the earlier steps it causally needs —
and activated on fresh actors of the winning workers. The coordinator completes (and its
dependents fire) when every step has; a failed step skips the steps that need it and fails
the coordinator. A plan with a step nobody can take is reported, not dropped; so is a
coordinator that found no plan (its answer names the ``failure``). Either way the coordinator
fails with the usage and LLM calls of its turn.

Steps are numbered from 1 wherever users see them (``PlanMade`` awards and unassigned steps,
``StepDone``, the plan's results, the workers' prompts): step k is ``steps[k - 1]``.

This is a mixin of ``RunActor``; it uses the actor's ``lattice``, ``emit`` and sending.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import msgspec

from axo.llm.base import Usage
from axo.messages import (
    Activate,
    AgentFailed,
    AgentSpec,
    AgentStarted,
    Configure,
    PlanMade,
    StepDone,
    TaskCompleted,
    Upstream,
)

STEP_TOKENS = 500.0  # the auction's estimate of one step's cost (one activation of a worker)
UNLIMITED = 1e12


@dataclass
class PlanRun:
    coordinator: int
    answer: TaskCompleted
    steps: list[dict[str, Any]]
    nodes: list[int]
    winners: list[int]
    outputs: dict[int, str] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)
    failure: str | None = None


class PlanDispatch:
    """Mixin: the plan-running part of the run actor."""

    lattice: Any
    start: Any
    agent_class: type
    actors: list[Any]
    on_host: list[bool]
    host_running: int
    outbox: list[Any]

    def _plan_setup(self) -> None:
        self.plans: dict[int, PlanRun] = {}
        self.step_of: dict[int, tuple[int, int]] = {}
        # per worker, its steps that ended: (step, action, output or failure, usage, calls,
        # whether it failed)
        self.worker_log: dict[int, list[tuple[int, str, str, Usage, int, bool]]] = {}

    @property
    def workers(self) -> list[int]:
        return [i for i, s in enumerate(self.start.agents) if s.role == "worker"]

    def _plan_answered(self, msg: TaskCompleted) -> bool:
        """A coordinator answered: start its plan. False when there is nothing to run."""
        coord = msg.agent
        specs: list[AgentSpec] = self.start.agents
        try:
            answer = json.loads(msg.output)
            steps = answer.get("steps") or []
            failure = answer.get("failure") if specs[coord].plan is not None else None
        except (ValueError, AttributeError):
            steps, failure = [], None
        if failure is not None:
            self._coordinator_failed(
                msg, str(answer.get("kind") or "PlanningFailed"), str(failure), msg.finished_at
            )
            return True
        if not steps:
            return False
        workers = self.workers
        # imported here: the coordination package (planner included) costs every run ~40 ms
        # of start-up, and only a coordinator's plan needs it
        from axo.coordination.auction import Agent as Bidder
        from axo.coordination.auction import Auctioneer
        from axo.coordination.auction import Task as Job

        bidders = []
        for w in workers:
            spec = specs[w]
            caps = frozenset({t.name for t in spec.tool_specs} | set(spec.capabilities))
            # per_execution bounds each activation, and every step is one with a budget of
            # its own: a worker whose budget covers a step's estimate may take them all (the
            # share of this plan it has left still lowers its score as it wins)
            budget = UNLIMITED
            if spec.per_execution:
                budget = STEP_TOKENS * len(steps) if spec.per_execution >= STEP_TOKENS else 0.0
            bidders.append(
                Bidder(
                    name=spec.id,
                    capabilities=caps,
                    budget=budget,
                    initial_budget=budget or 1.0,
                    load=float(len(self.worker_log.get(w, []))),
                    capacity=float(len(steps) + len(self.worker_log.get(w, []))),
                )
            )
        jobs = [
            Job(name=s["action"], requires=frozenset(s.get("requires") or ()), tokens=STEP_TOKENS)
            for s in steps
        ]
        if bidders:
            # numpy path: loading numba (0.5–2 s) inside a handler would stall every actor
            result = Auctioneer(bidders).auction(jobs, compiled=False)
            winners = [int(w) for w in result.winners]
            unassigned = [
                {"step": u.task + 1, "action": steps[u.task]["action"], "reason": u.reason}
                for u in result.unassigned
            ]
            awards = [
                {
                    "step": a.task + 1,
                    "worker": specs[workers[a.agent]].id,
                    "score": round(float(a.score), 4),
                }
                for a in result.awards
            ]
        else:
            winners = [-1] * len(steps)
            unassigned = [
                {"step": k + 1, "action": s["action"], "reason": "no role: worker agents"}
                for k, s in enumerate(steps)
            ]
            awards = []
        self.emit(
            PlanMade(
                run_id=self.start.run_id,
                coordinator=specs[coord].id,
                steps=steps,
                awards=awards,
                unassigned=unassigned,
            )
        )
        if unassigned:
            names = ", ".join(f"{u['action']} ({u['reason']})" for u in unassigned)
            self._coordinator_failed(
                msg, "PlanningFailed", f"steps nobody can take: {names}", msg.finished_at
            )
            return True
        base = self.lattice.n
        new, ready = self.lattice.extend([[base + a for a in s.get("after", ())] for s in steps])
        plan = PlanRun(
            coordinator=coord,
            answer=msg,
            steps=steps,
            nodes=new,
            winners=[workers[w] for w in winners],
        )
        self.plans[coord] = plan
        for k, node in enumerate(new):
            worker = specs[plan.winners[k]]
            addr = self.createActor(self.agent_class)  # type: ignore[attr-defined]
            self.actors.append(addr)
            self.on_host.append(worker.function is None)
            self.step_of[node] = (coord, k)
            self.send(
                addr,
                Configure(  # type: ignore[attr-defined]
                    spec=msgspec.structs.replace(worker, id=f"{worker.id}.{k + 1}"),
                    run=self.myAddress,
                    host=self.host,
                ),
            )  # type: ignore[attr-defined]
        self._activate_steps(plan, ready)
        return True

    def _activate_steps(self, plan: PlanRun, ready: list[int]) -> None:
        now = msg_time()
        for node in ready:
            k = self.step_of[node][1]
            step, worker = plan.steps[k], self.start.agents[plan.winners[k]]
            self.host_running += self.on_host[node]
            upstream = tuple(
                Upstream(
                    agent=f"step {j + 1}", name=plan.steps[j]["action"], output=plan.outputs[j]
                )
                for j in step.get("after", ())
                if j in plan.outputs
            )
            task = (
                f"Goal: {self.start.input}\n\nYour step of the plan (step {k + 1} of "
                f"{len(plan.steps)}): {step['action']}"
            )
            self.emit(AgentStarted(run_id=self.start.run_id, agent=worker.id, at=now))
            self.send(
                self.actors[node],
                Activate(  # type: ignore[attr-defined]
                    run_id=self.start.run_id, agent=node, input=task, upstream=upstream
                ),
            )

    def _step_finished(
        self,
        node: int,
        *,
        output: str | None,
        reason: str | None,
        usage: Usage,
        llm_calls: int,
        started: float,
        finished: float,
    ) -> None:
        coord, k = self.step_of[node]
        plan = self.plans[coord]
        w = plan.winners[k]
        self.host_running -= self.on_host[node]
        plan.finished.add(k)
        self.worker_log.setdefault(w, []).append(
            (
                k,
                plan.steps[k]["action"],
                output or reason or "",
                usage,
                llm_calls,
                reason is not None,
            )
        )
        if reason is None:
            plan.outputs[k] = output or ""
            ready = self.lattice.complete(node)
        else:
            plan.failure = plan.failure or f"step {k + 1} ({plan.steps[k]['action']}): {reason}"
            ready = []
            for skipped in self.lattice.fail(node):
                plan.finished.add(self.step_of[skipped][1])
        self.emit(
            StepDone(
                run_id=self.start.run_id,
                coordinator=self.start.agents[coord].id,
                step=k + 1,
                worker=self.start.agents[w].id,
                status="done" if reason is None else "failed",
                output=output,
                reason=reason,
                usage=usage,
                llm_calls=llm_calls,
                started_at=started,
                finished_at=finished,
            )
        )
        if plan.failure is None:
            self._activate_steps(plan, ready)
        if not self._plan_running(plan) and (
            plan.failure is not None or len(plan.finished) == len(plan.steps)
        ):
            self._plan_over(plan)

    def _coordinator_failed(
        self, msg: TaskCompleted, kind: str, reason: str, finished_at: float
    ) -> None:
        """Fail the coordinator that gave answer ``msg``, counting its turn's usage and
        LLM calls."""
        self._failed(  # type: ignore[attr-defined]
            AgentFailed(
                run_id=msg.run_id,
                agent=msg.agent,
                kind=kind,
                reason=reason,
                usage=msg.usage,
                llm_calls=msg.llm_calls,
                started_at=msg.started_at,
                finished_at=finished_at,
            ),
            planned=True,
        )

    def _plan_running(self, plan: PlanRun) -> bool:
        return any(self.lattice.state[n] == 1 for n in plan.nodes)

    def _plan_over(self, plan: PlanRun) -> None:
        msg = plan.answer
        del self.plans[plan.coordinator]
        if plan.failure is not None:
            self._coordinator_failed(msg, "StepFailed", plan.failure, msg_time())
            return
        summary = json.loads(msg.output)
        summary["results"] = [
            {
                "step": k + 1,
                "action": s["action"],
                "worker": self.start.agents[plan.winners[k]].id,
                "output": plan.outputs[k],
            }
            for k, s in enumerate(plan.steps)
        ]
        self._completed(
            msgspec.structs.replace(  # type: ignore[attr-defined]
                msg, output=json.dumps(summary), finished_at=msg_time()
            ),
            planned=True,
        )

    def _workers_report(self) -> list[tuple[int, str, str | None, Usage, int, float]]:
        """Per worker with steps that ended: its output (one line per step), the reason of
        its first failed step (None when all were done), its usage and LLM calls."""
        out = []
        for w, log in sorted(self.worker_log.items()):
            text = "\n".join(
                f"step {k + 1} ({action}): {'failed: ' if failed else ''}{said}"
                for k, action, said, _, _, failed in sorted(log)
            )
            failures = [f"step {k + 1} ({a}): {said}" for k, a, said, *_, bad in sorted(log) if bad]
            usage = Usage()
            for *_, used, _calls, _failed in log:
                usage = usage + used
            calls = sum(c for *_, c, _failed in log)
            out.append((w, text, failures[0] if failures else None, usage, calls, msg_time()))
        return out


def msg_time() -> float:
    import time

    return time.time()
