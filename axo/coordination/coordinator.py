"""The coordinator role: plan the run's goal with the HTN planner, asking the model for help.

A coordinator's turn (a generator of effects, like every agent turn) does:

1. goal → tasks: when the problem file lists no tasks, the model turns the run's input into
   the domain's tasks (structured output: per task, each argument is an object of its
   parameter's type). The answer is checked as a problem file's tasks are (known tasks,
   arity, known objects, types); a wrong answer fails the coordinator, saying what was wrong;
2. plan with the numpy HTN planner;
3. frontier → method: when a compound task has no applicable method, the model proposes a
   decomposition (structured output over the domain's task and operator names, and typed
   parameters of its own); it is checked against the domain, registered, and the planner
   tries again — within ``max_rounds``;
4. the plan's actions become steps, each with the earlier steps it must follow (see
   ``steps_of``) and the capabilities it requires.

The turn's output is the plan as JSON; when planning fails it is ``{"goal", "failure",
"kind"}`` instead (the run actor fails the coordinator with that reason), so the usage and
LLM calls of the turn are counted either way. The steps are then auctioned among the workers
and run by the run actor (``axo.runtime``). This module has no I/O: domain and problem texts
arrive in the spec.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Generator, Iterable
from typing import Any

import msgspec

from axo.agent.budget import AgentBudget, estimate_request
from axo.agent.context import render_input
from axo.agent.turn import CallLLM, Emit, TurnResult, overflow_detail, refuse
from axo.coordination.domain import (
    ROOT_TYPE,
    Atom,
    Call,
    Domain,
    PlanningProblem,
    make_problem,
    parse_domain,
    parse_problem,
)
from axo.coordination.htn import Plan, PlanFailure, Planner
from axo.errors import ConfigError, RuntimeFault
from axo.llm.base import ChatMessage, ChatRequest, ChatResponse, Usage
from axo.messages import AgentSpec, PlanSpec, Upstream


class Step(msgspec.Struct, frozen=True, kw_only=True):
    """One action of the plan. ``index`` is its position in the plan (from 0) and ``after``
    lists the indexes of the steps it must follow; ``step`` is its number as users see it
    (``index + 1``: awards, results and the workers' prompts count steps from 1)."""

    index: int
    step: int
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
    """Each action of ``plan`` with the earlier actions it must follow.

    A step *reads* the facts of its preconditions (those it needs true and those it needs
    false) and *writes* the facts it adds or deletes. Two steps conflict when one writes a
    fact the other reads or writes; conflicting steps keep the plan's order and nothing else
    is ordered. Any order that keeps it is as good as the plan's: every step finds each fact
    it reads as the plan left it (only the steps it follows wrote that fact before it, and
    in the plan's order), so its preconditions hold, and every fact ends as the plan leaves
    it.

    Per fact, a step follows the last earlier step that wrote it, and a step writing it also
    follows every step that read it since: the earlier readers and writers of the fact come
    before those, so the order they give is implied. Internal (bookkeeping) steps are not
    run, but they read and write facts too: a step that follows one follows what it follows.
    """
    ops = domain.operators
    writer: dict[Atom, int] = {}  # fact → the last step (position in plan.steps) writing it
    readers: dict[Atom, list[int]] = {}  # fact → the steps reading it since it was written
    follows: list[set[int]] = []  # per position in plan.steps: the actions it follows
    index: dict[int, int] = {}  # position in plan.steps → index of the action
    steps: list[Step] = []
    for pos, call in enumerate(plan.steps):
        op = ops[call.name]
        binding = {p.name: a for p, a in zip(op.parameters, call.args, strict=True)}

        def ground(atoms: Iterable[Atom], b: dict[str, str] = binding) -> set[Atom]:
            return {Atom(a.predicate, tuple(b.get(x, x) for x in a.args)) for a in atoms}

        reads = ground(op.preconditions) | ground(op.negative_preconditions)
        writes = ground(op.add) | ground(op.delete)
        before = {writer[f] for f in reads | writes if f in writer}
        before.update(r for f in writes for r in readers.get(f, ()))
        mine: set[int] = set()
        for p in before:  # an action directly, an internal step through what it follows
            mine.update({index[p]} if p in index else follows[p])
        follows.append(mine)
        for f in reads:
            readers.setdefault(f, []).append(pos)
        for f in writes:
            writer[f], readers[f] = pos, []
        if op.internal:
            continue
        i = index[pos] = len(steps)
        steps.append(
            Step(
                index=i,
                step=i + 1,
                action=str(call),
                operator=op.name,
                after=tuple(sorted(mine)),
                requires=tuple(capabilities.get(op.name, ())),
            )
        )
    return steps


def _ask(
    spec: AgentSpec, system: str, user: str, schema: dict[str, Any], spent: list[Usage]
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
    yield from _within_budget(spec, request, spent)
    response: ChatResponse = yield CallLLM(request=request, purpose="plan")
    try:
        return json.loads(response.content or ""), response.usage
    except ValueError:
        return None, response.usage


def _within_budget(
    spec: AgentSpec, request: ChatRequest, spent: list[Usage]
) -> Generator[Any, Any, None]:
    """The coordinator's token_budget, checked before each of its calls as an agent's is:
    ``warn`` notes and sends; ``abort`` — and ``summarize``, as a coordinator's request is one
    message with nothing older to summarize — fails it without sending."""
    if spec.per_call is None and spec.per_execution is None:
        return
    budget = AgentBudget(spec.per_call, spec.per_execution)
    for used in spent:
        budget.record(used)
    verdict = budget.check(estimate_request(request))
    if verdict.ok:
        return
    detail = overflow_detail(verdict, spec.overflow_policy)
    if spec.overflow_policy == "warn":
        yield Emit(kind="budget_warning", detail=detail)
        return
    yield from refuse(verdict, detail)


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


def _tasks_schema(domain: Domain, problem: PlanningProblem) -> dict[str, Any]:
    """The goal's tasks: any task of the domain with objects as arguments and, where every
    parameter has objects of its type, one alternative per task giving each argument's
    choices (a constrained decoder then cannot write a wrong arity, name or type)."""
    objects = [*domain.constants, *problem.objects]
    names = list(domain.tasks)
    item = _call_schema(names, [name for name, _ in objects])
    choices = []
    for name in names:
        kinds = [
            [o for o, t in objects if domain.is_subtype(t, p.type)]
            for p in domain.tasks[name].parameters
        ]
        if all(kinds):
            args = [{"type": "string", "enum": k} for k in kinds]
            choices.append(
                {
                    "type": "object",
                    "properties": {
                        "task": {"type": "string", "const": name},
                        "args": {
                            "type": "array",
                            "prefixItems": args,
                            "minItems": len(args),
                            "maxItems": len(args),
                        },
                    },
                    "required": ["task", "args"],
                }
            )
    if choices:
        item["anyOf"] = choices
    return {
        "type": "object",
        "properties": {"tasks": {"type": "array", "items": item, "minItems": 1}},
        "required": ["tasks"],
    }


def _method_schema(domain: Domain) -> dict[str, Any]:
    names = sorted({*domain.tasks, *domain.operators})
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "parameters": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "type": {"type": "string", "enum": _types(domain)},
                    },
                    "required": ["name", "type"],
                },
            },
            "subtasks": {"type": "array", "items": _call_schema(names, [])},
        },
        "required": ["name", "parameters", "subtasks"],
    }


def _types(domain: Domain) -> list[str]:
    return [ROOT_TYPE, *(t for t in domain.types if t != ROOT_TYPE)]


def coordinate(
    spec: AgentSpec, plan_spec: PlanSpec, run_input: str, upstream: tuple[Upstream, ...] = ()
) -> Generator[Any, Any, TurnResult]:
    """The coordinator's turn; its output is the plan as JSON (steps with their needs), or
    the reason there is none (``failure``, ``kind``). The goal it asks its model to express
    as tasks is the run's input with the outputs of the agents it depends on."""
    domain, problem = load(plan_spec)
    spent: list[Usage] = []
    goal = render_input(run_input, upstream) if upstream else run_input
    try:
        output = yield from _coordinate(spec, plan_spec, goal, domain, problem, spent)
    except RuntimeFault as exc:  # a failed LLM call too: the calls made so far still count
        kind = getattr(exc, "kind", None) or type(exc).__name__
        output = {"goal": run_input, "failure": str(exc) or kind, "kind": kind}
    usage = Usage()
    for used in spent:
        usage = usage + used
    return TurnResult(output=json.dumps(output), usage=usage, llm_calls=len(spent))


def _coordinate(
    spec: AgentSpec,
    plan_spec: PlanSpec,
    run_input: str,
    domain: Domain,
    problem: PlanningProblem,
    spent: list[Usage],
) -> Generator[Any, Any, dict[str, Any]]:
    identity = f"You are {spec.name}.\n{spec.system_prompt}".strip()
    if not problem.tasks:
        task_names = list(domain.tasks)
        answer, used = yield from _ask(
            spec,
            identity,
            f"Goal: {run_input}\nExpress the goal as tasks of the "
            f"'{domain.name}' domain. Tasks: "
            f"{', '.join(_signature(domain, t) for t in task_names)}. Objects: "
            f"{', '.join(f'{o} ({t})' for o, t in (*domain.constants, *problem.objects))}.",
            _tasks_schema(domain, problem),
            spent,
        )
        spent.append(used)
        tasks, wrong = _checked_tasks(answer, domain, problem)
        if wrong:
            raise PlanningFailed("the model gave no usable tasks for the goal: " + "; ".join(wrong))
        problem = dataclasses.replace(problem, tasks=tuple(tasks))
    planner = Planner(domain)
    result = planner.plan(problem)
    rounds = 0
    while isinstance(result, PlanFailure) and result.frontiers and rounds < plan_spec.max_rounds:
        rounds += 1
        frontier = result.frontiers[0]
        names = sorted({*domain.tasks, *domain.operators})
        task = planner.domain.tasks[frontier.task.name]
        params = " ".join(p.name for p in task.parameters)
        constants = ", ".join(f"{c} ({t})" for c, t in domain.constants)
        answer, used = yield from _ask(
            spec,
            identity,
            f"No method of task '{task.name} {params}' applies to "
            f"{frontier.task}. Facts now: {', '.join(sorted(map(str, frontier.facts)))}. "
            f"Propose a method: ordered subtasks from: "
            f"{', '.join(_signature(domain, n) for n in names)}. An argument must be one "
            f"of the task's parameters ({params or 'it has none'}), a parameter the method "
            f"declares (a name like ?a with one of the types {', '.join(_types(domain))}; "
            f"the planner tries every object of that type), or "
            + (f"a constant of the domain: {constants}." if constants else "nothing else.")
            + " Do not name the problem's objects: declare a parameter of their type.",
            _method_schema(domain),
            spent,
        )
        spent.append(used)
        try:
            method = _method_of(answer, rounds)
            planner.add_method(task.name, method, source=f"{spec.id} (round {rounds})")
            yield Emit(kind="method_added", detail={"task": task.name, "method": method})
        except (ConfigError, AttributeError, TypeError) as exc:
            yield Emit(kind="method_rejected", detail={"task": task.name, "reason": str(exc)[:500]})
        result = planner.plan(problem)
    if isinstance(result, PlanFailure):
        raise PlanningFailed(f"no plan: {result.message} (after {rounds} model round(s))")
    steps = steps_of(planner.domain, result, plan_spec.capabilities)
    return {
        "goal": run_input,
        "tasks": [str(t) for t in problem.tasks],
        "steps": msgspec.to_builtins(steps),
        "frontier_rounds": rounds,
    }


def _signature(domain: Domain, name: str) -> str:
    params = domain.signature(name) or ()
    return f"{name}({', '.join(f'{p.name}: {p.type}' for p in params)})"


def _method_of(answer: Any, rounds: int) -> dict[str, Any]:
    """The method the model proposed, in the domain file's shape ({} if it is no mapping)."""
    if not isinstance(answer, dict):
        return {}
    method: dict[str, Any] = {"name": str(answer.get("name") or f"proposed_{rounds}")}
    if answer.get("parameters"):
        method["parameters"] = {str(p.get("name")): p.get("type") for p in answer["parameters"]}
    method["subtasks"] = [
        " ".join([str(s.get("task")), *map(str, s.get("args") or [])])
        for s in answer.get("subtasks") or []
    ]
    return method


def _checked_tasks(
    answer: Any, domain: Domain, problem: PlanningProblem
) -> tuple[list[Call], list[str]]:
    """The model's tasks, checked as a problem file's tasks are; (tasks, what is wrong)."""
    raw = answer.get("tasks") if isinstance(answer, dict) else None
    if not isinstance(raw, list) or not raw:
        return [], [f"no list of tasks in its answer {answer!r}"[:300]]
    texts, wrong = [], []
    for k, item in enumerate(raw, start=1):
        name = item.get("task") if isinstance(item, dict) else None
        args = item.get("args", []) if isinstance(item, dict) else None
        shown = json.dumps(item)[:120]
        if not isinstance(name, str) or not _word(name):
            wrong.append(f"task {k} {shown}: no task name")
        elif not isinstance(args, list) or not all(isinstance(a, str) and _word(a) for a in args):
            wrong.append(f"task {k} {shown}: its arguments are not a list of object names")
        else:
            texts.append((k, " ".join([name, *args])))
    if wrong:
        return [], wrong
    by_type: dict[str, list[str]] = {}
    for name, kind in problem.objects:
        by_type.setdefault(kind, []).append(name)
    try:
        checked = make_problem(domain, objects=by_type, init=(), tasks=[t for _, t in texts])
    except ConfigError as exc:
        for p in exc.problems:
            at = p.path.removeprefix("$.tasks[").partition("]")[0]
            k, text = texts[int(at)] if at.isdigit() else (0, "")
            wrong.append(f"task {k} ({text}): {p.message}" if k else p.message)
        return [], wrong
    return list(checked.tasks), []


def _word(text: str) -> bool:
    return bool(text) and not any(ch.isspace() or ch in "()," for ch in text)
