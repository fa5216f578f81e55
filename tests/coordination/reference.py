"""Plain-Python references for the coordination primitives: no numpy, no cleverness.

- ``plan``: the HTN search as a textbook loop over sets of facts, enumerating every binding of
  every method in order and checking it in the current state.
- ``simulate``: replays a plan on a set of facts, checking each step's preconditions and the goal.
  It shares nothing with either planner but the parsed domain.
- ``auction``: the auction rule as a loop over agents for each task.

They define what the fast implementations must compute, exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from axo.coordination.auction import Agent, Task
from axo.coordination.domain import Atom, Call, Domain, PlanningProblem

Fact = tuple[str, ...]


def _fact(atom: Atom, binding: dict[str, str]) -> Fact:
    return (atom.predicate, *(binding.get(a, a) for a in atom.args))


def _holds(state: set[Fact], pos: Sequence[Atom], neg: Sequence[Atom], b: dict[str, str]) -> bool:
    return all(_fact(a, b) in state for a in pos) and not any(_fact(a, b) in state for a in neg)


def plan(domain: Domain, problem: PlanningProblem, max_steps: int = 200_000) -> list[Call] | None:
    """The first plan in the planner's search order (internal steps included), or None."""
    objects = [*domain.constants, *problem.objects]

    def members(kind: str) -> list[str]:
        return [name for name, t in objects if domain.is_subtype(t, kind)]

    def decompositions(task: Call, state: set[Fact]) -> Iterator[list[Call]]:
        schema = domain.tasks[task.name]
        fixed = {p.name: a for p, a in zip(schema.parameters, task.args, strict=True)}
        for method in schema.methods:
            names = [p.name for p in method.parameters]
            for values in itertools.product(*(members(p.type) for p in method.parameters)):
                b = {**fixed, **dict(zip(names, values, strict=True))}
                if _holds(state, method.preconditions, method.negative_preconditions, b):
                    yield [
                        Call(c.name, tuple(b.get(a, a) for a in c.args)) for c in method.subtasks
                    ]

    goal = [(a.predicate, *a.args) for a in problem.goal]
    init = {(a.predicate, *a.args) for a in problem.init}
    # each frame: (state, remaining tasks, plan so far, alternatives for the last expansion)
    stack: list[tuple[set[Fact], tuple[Call, ...], tuple[Call, ...], Iterator[list[Call]]]] = []
    state, todo, steps_so_far = init, tuple(problem.tasks), ()
    steps = 0
    while True:
        failed = False
        if not todo:
            if all(g in state for g in goal):
                return list(steps_so_far)
            failed = True
        else:
            steps += 1
            if steps > max_steps:
                return None
            task, rest = todo[0], todo[1:]
            if task.name in domain.operators:
                op = domain.operators[task.name]
                b = {p.name: a for p, a in zip(op.parameters, task.args, strict=True)}
                if _holds(state, op.preconditions, op.negative_preconditions, b):
                    deleted = state - {_fact(a, b) for a in op.delete}
                    state = deleted | {_fact(a, b) for a in op.add}
                    todo, steps_so_far = rest, (*steps_so_far, task)
                else:
                    failed = True
            else:
                options = decompositions(task, state)
                first = next(options, None)
                if first is None:
                    failed = True
                else:
                    stack.append((state, rest, steps_so_far, options))
                    todo = (*first, *rest)
        if failed:
            while stack:
                saved, rest, saved_steps, options = stack[-1]
                nxt = next(options, None)
                if nxt is not None:
                    state, todo, steps_so_far = saved, (*nxt, *rest), saved_steps
                    break
                stack.pop()
            else:
                return None


def simulate(domain: Domain, problem: PlanningProblem, steps: Sequence[Call]) -> str | None:
    """Replay ``steps``; None when every step applies and the goal holds, else what broke."""
    state = {(a.predicate, *a.args) for a in problem.init}
    for i, step in enumerate(steps):
        op = domain.operators.get(step.name)
        if op is None or len(op.parameters) != len(step.args):
            return f"step {i}: {step} is not an operator of the domain"
        b = {p.name: a for p, a in zip(op.parameters, step.args, strict=True)}
        missing = [str(a) for a in op.preconditions if _fact(a, b) not in state]
        present = [str(a) for a in op.negative_preconditions if _fact(a, b) in state]
        if missing or present:
            return f"step {i}: {step} needs {missing} and forbids {present}"
        state = (state - {_fact(a, b) for a in op.delete}) | {_fact(a, b) for a in op.add}
    unmet = [a for a in problem.goal if (a.predicate, *a.args) not in state]
    return f"goal not reached: {unmet[0]}" if unmet else None


@dataclass
class _Bidder:
    capabilities: frozenset[str]
    load: float
    capacity: float
    budget: float
    initial: float


@dataclass
class Outcome:
    winners: list[int]  # agent index per task, -1 for nobody
    scores: list[float]  # the winning bid per task (0.0 for nobody)
    loads: list[float]  # every agent's load afterwards
    budgets: list[float]


def auction(
    agents: Sequence[Agent], tasks: Sequence[Task], w_load: float = 0.5, w_budget: float = 0.5
) -> Outcome:
    """The auction rule, one agent at a time."""
    bidders = [
        _Bidder(
            a.capabilities,
            a.load,
            a.capacity,
            a.budget,
            a.budget if a.initial_budget is None else a.initial_budget,
        )
        for a in agents
    ]
    winners, scores = [], []
    for task in tasks:
        best, best_score = -1, float("-inf")
        for i, b in enumerate(bidders):
            if (
                task.requires <= b.capabilities
                and b.budget >= task.tokens
                and b.load + task.load <= b.capacity
            ):
                score = w_load * (1.0 - b.load / b.capacity) + w_budget * (b.budget / b.initial)
                if score > best_score:
                    best, best_score = i, score
        if best >= 0:
            bidders[best].load += task.load
            bidders[best].budget -= task.tokens
        winners.append(best)
        scores.append(best_score if best >= 0 else 0.0)
    return Outcome(winners, scores, [b.load for b in bidders], [b.budget for b in bidders])
