"""The coordinator role: plan the run's goal with the HTN planner, asking the model for help.

A coordinator's turn (a generator of effects, like every agent turn) does:

1. goal → tasks: when the problem file lists no tasks, the model turns the run's input into
   the domain's tasks (structured output: task names and object names are enums);
2. plan with the numpy HTN planner;
3. frontier → method: when a compound task has no applicable method, the model proposes a
   decomposition (structured output over the domain's task and operator names); it is checked
   against the domain, registered, and the planner tries again — within ``max_rounds``;
4. the plan's actions become steps, each with the earlier steps it causally needs (the last
   earlier step that adds one of its preconditions) and the capabilities it requires.

The steps are then auctioned among the workers and run by the run actor (``axo.runtime``).
This module has no I/O: domain and problem texts arrive in the spec.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import msgspec

from axo.agent.turn import CallLLM, Emit, TurnResult
from axo.coordination.domain import (
    Atom,
    Call,
    Domain,
    PlanningProblem,
    parse_domain,
    parse_problem,
)
from axo.coordination.htn import Plan, PlanFailure, Planner
from axo.errors import ConfigError, RuntimeFault
from axo.llm.base import ChatMessage, ChatRequest, ChatResponse, Usage
from axo.messages import AgentSpec, PlanSpec


class Step(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    action: str
    operator: str
    after: tuple[int, ...]
    requires: tuple[str, ...]


class PlanningFailed(RuntimeFault):
    """The coordinator could not produce a plan."""


def load(plan: PlanSpec) -> tuple[Domain, PlanningProblem]:
    """Parse the texts (raises ConfigError with file, line and $.path)."""
    domain = parse_domain(plan.domain_text, file=plan.domain_file)
    text = plan.problem_text or f"problem: goal\ndomain: {domain.name}\n"
    problem = parse_problem(text, domain, file=plan.problem_file or "<goal>")
    return domain, problem


def steps_of(domain: Domain, plan: Plan, capabilities: dict[str, tuple[str, ...]]) -> list[Step]:
    """Each action with the earlier actions it must follow.

    A step follows: the last earlier step that adds one of its preconditions (a causal link);
    every earlier step that needs a fact this step deletes (so it does not pull a fact from
    under that step); and the last earlier step that deleted a fact this step adds. Steps
    with no such relation may run at the same time.
    """
    ops = domain.operators
    producer: dict[Atom, int] = {}
    consumers: dict[Atom, list[int]] = {}
    deleter: dict[Atom, int] = {}
    steps: list[Step] = []
    for action in plan.actions:
        op = ops[action.name]
        binding = {p.name: a for p, a in zip(op.parameters, action.args, strict=True)}

        def ground(atom: Atom, b: dict[str, str] = binding) -> Atom:
            return Atom(atom.predicate, tuple(b.get(x, x) for x in atom.args))

        pre, add, delete = (
            list(map(ground, part)) for part in (op.preconditions, op.add, op.delete)
        )
        needs = {producer[g] for g in pre if g in producer}
        needs |= {c for g in delete for c in consumers.get(g, ())}
        needs |= {deleter[g] for g in add if g in deleter}
        i = len(steps)
        needs.discard(i)
        steps.append(
            Step(
                index=i,
                action=str(action),
                operator=op.name,
                after=tuple(sorted(needs)),
                requires=tuple(capabilities.get(op.name, ())),
            )
        )
        for g in pre:
            consumers.setdefault(g, []).append(i)
        for g in delete:
            deleter[g] = i
            consumers.pop(g, None)
        for g in add:
            producer[g] = i
    return steps


def _ask(
    spec: AgentSpec, system: str, user: str, schema: dict[str, Any]
) -> Generator[Any, Any, tuple[Any, Usage]]:
    request = ChatRequest(
        model=spec.model,
        max_tokens=spec.max_tokens or 400,
        temperature=spec.temperature,
        seed=spec.seed,
        response_format=schema,
        messages=(
            ChatMessage(role="system", content=system),
            ChatMessage(role="user", content=user),
        ),
    )
    response: ChatResponse = yield CallLLM(request=request, purpose="plan")
    try:
        return json.loads(response.content or ""), response.usage
    except ValueError:
        return None, response.usage


def _call_schema(names: list[str], objects: list[str]) -> dict[str, Any]:
    term = {"type": "string", "enum": objects} if objects else {"type": "string"}
    return {
        "type": "object",
        "properties": {
            "task": {"type": "string", "enum": names},
            "args": {"type": "array", "items": term},
        },
        "required": ["task", "args"],
    }


def coordinate(
    spec: AgentSpec, plan_spec: PlanSpec, run_input: str
) -> Generator[Any, Any, TurnResult]:
    """The coordinator's turn; its output is the plan as JSON (steps with their needs)."""
    domain, problem = load(plan_spec)
    usage, calls = Usage(), 0
    identity = f"You are {spec.name}.\n{spec.system_prompt}".strip()
    objects = [name for name, _ in problem.objects]
    if not problem.tasks:
        task_names = sorted(domain.tasks)
        schema = {
            "type": "object",
            "properties": {"tasks": {"type": "array", "items": _call_schema(task_names, objects)}},
            "required": ["tasks"],
        }
        answer, used = yield from _ask(
            spec,
            identity,
            f"Goal: {run_input}\nExpress the goal as tasks of the "
            f"'{domain.name}' domain. Tasks: {', '.join(task_names)}. Objects: "
            f"{', '.join(objects)}.",
            schema,
        )
        usage, calls = usage + used, calls + 1
        tasks = _calls(answer.get("tasks") if isinstance(answer, dict) else None, domain)
        if not tasks:
            raise PlanningFailed(f"the model gave no usable tasks for the goal: {answer!r}")
        problem = _with_tasks(problem, tasks)
    planner = Planner(domain)
    result = planner.plan(problem)
    rounds = 0
    while isinstance(result, PlanFailure) and result.frontiers and rounds < plan_spec.max_rounds:
        rounds += 1
        frontier = result.frontiers[0]
        names = sorted({*domain.tasks, *domain.operators})
        schema = {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "subtasks": {"type": "array", "items": _call_schema(names, [])},
            },
            "required": ["name", "subtasks"],
        }
        task = planner.domain.tasks[frontier.task.name]
        params = " ".join(p.name for p in task.parameters)
        answer, used = yield from _ask(
            spec,
            identity,
            f"No method of task '{task.name} {params}' applies to "
            f"{frontier.task}. Facts now: {', '.join(sorted(map(str, frontier.facts)))}. "
            f"Propose a method: ordered subtasks from: {', '.join(names)}; arguments may be "
            f"the task's parameters ({params}) or objects.",
            schema,
        )
        usage, calls = usage + used, calls + 1
        try:
            method = (
                {
                    "name": str(answer.get("name") or f"proposed_{rounds}"),
                    "subtasks": [
                        " ".join([str(s.get("task")), *map(str, s.get("args") or [])])
                        for s in answer.get("subtasks") or []
                    ],
                }
                if isinstance(answer, dict)
                else {}
            )
            planner.add_method(task.name, method, source=f"{spec.id} (round {rounds})")
            yield Emit(kind="method_added", detail={"task": task.name, "method": method})
        except (ConfigError, AttributeError, TypeError) as exc:
            yield Emit(kind="method_rejected", detail={"task": task.name, "reason": str(exc)[:500]})
        result = planner.plan(problem)
    if isinstance(result, PlanFailure):
        raise PlanningFailed(f"no plan: {result.message} (after {rounds} model round(s))")
    steps = steps_of(planner.domain, result, plan_spec.capabilities)
    output = {
        "goal": run_input,
        "tasks": [str(t) for t in problem.tasks],
        "steps": msgspec.to_builtins(steps),
        "frontier_rounds": rounds,
    }
    return TurnResult(output=json.dumps(output), usage=usage, llm_calls=calls)


def _calls(raw: Any, domain: Domain) -> list[Call]:
    out = []
    sigs = {name: len(t.parameters) for name, t in domain.tasks.items()}
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and sigs.get(str(item.get("task"))) == len(
            item.get("args") or []
        ):
            out.append(Call(str(item["task"]), tuple(map(str, item["args"]))))
    return out


def _with_tasks(problem: PlanningProblem, tasks: list[Call]) -> PlanningProblem:
    import dataclasses

    return dataclasses.replace(problem, tasks=tuple(tasks))
