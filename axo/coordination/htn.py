"""A total-order HTN planner (SHOP-style forward decomposition), grounded with numpy.

This module knows the search and its results: plans, failures that say why, and *frontiers* —
compound tasks that had no applicable method at all, with the state they met — so that a caller
(an LLM coordinator) can propose a method, register it with ``Planner.add_method`` and plan
again. Grounding lives in ``_grounding`` (the domain is compiled for it once, ``_compiling``) and
runs once per problem (cached); YAML lives in ``domain``. It does not know who proposes methods
or how.

The search, exactly (``tests/coordination/reference.py`` does the same with plain sets):

- Tasks are decomposed left to right. An operator applies when its preconditions hold and its
  negative preconditions do not; it deletes, then adds.
- A compound task's candidates are (method, binding) pairs: methods in declaration order, then
  the bindings of the method's own parameters in lexicographic order of objects (domain
  constants first, then the problem's objects in declaration order). The first candidate whose
  preconditions hold is taken; when what follows it fails, the next one is tried.
- With no task left, the problem's goal (if any) must hold, or the search backtracks.
- ``max_steps`` bounds expansions plus applied actions; ``max_depth`` bounds nesting.

Grounding is vectorized: whole tables of bindings at a time. The search is not — it takes one
small step after another, where a numpy call would cost more than the step — so it runs on
Python integers used as bit sets over the facts that can ever hold (``_assembly``): a candidate
applies when its mask is a subset of the state. ``Planner(compiled=True)`` runs the same search
compiled by numba over ``uint64`` words instead (``_search_kernel``), a fraction of the time per
plan once numba is loaded (a few hundred milliseconds, once per process); by default a planner
uses it when this process has loaded it already, else the Python search. Both give the same
results.
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from itertools import compress
from typing import Any, ClassVar

import numpy as np

from axo.coordination._assembly import Grounding
from axo.coordination._compiling import compiled
from axo.coordination._describing import bits
from axo.coordination._grounding import Grounder
from axo.coordination.domain import Atom, Call, Domain, Method, PlanningProblem, parse_method
from axo.errors import UsageError

_MAX_FRONTIERS = 16
_KERNEL = "axo.coordination._search_kernel"


class FailureReason(StrEnum):
    """Why no plan was found."""

    NO_METHOD = "no_method"  # some compound task had no applicable method (see frontiers)
    EXHAUSTED = "exhausted"  # every decomposition failed on an operator or on the goal
    STEP_LIMIT = "step_limit"
    DEPTH_LIMIT = "depth_limit"
    UNREACHABLE_GOAL = "unreachable_goal"  # a goal fact is static and false


@dataclass(frozen=True, slots=True)
class Plan:
    """A plan: ``steps`` in order, and ``actions``, the steps minus internal operators."""

    steps: tuple[Call, ...]
    actions: tuple[Call, ...]
    ok: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Frontier:
    """A compound task that met a state where none of its methods applied.

    Attributes:
        task: the ground task, e.g. ``deliver(p1, airport3)``.
        facts: every fact that held then (static facts included).
        depth: how deep in the decomposition the task was (0 for a task of the problem).
    """

    task: Call
    facts: frozenset[Atom]
    depth: int


@dataclass(frozen=True, slots=True)
class PlanFailure:
    """No plan: ``reason``, a one-line ``message``, and the frontiers met on the way."""

    reason: FailureReason
    message: str
    frontiers: tuple[Frontier, ...] = ()
    ok: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class PlannerStatistics:
    """Counters since the planner was made; ``groundings`` counts problems grounded."""

    plans: int
    failures: int
    expansions: int
    backtracks: int
    actions: int
    groundings: int
    cache_hits: int
    ground_tasks: int
    method_groundings: int
    operator_groundings: int
    facts: int  # facts that can ever hold, summed over the problems grounded
    grounding_seconds: float
    search_seconds: float


class Planner:
    """Plans problems of one domain; grounds each problem once and keeps the groundings of the
    last few problem objects (LRU).

    ``compiled``: True runs the search compiled by numba (loading it on the first plan in a
    process), False the Python search, None (the default) the compiled one only if this process
    has loaded it already. The results are the same.
    """

    def __init__(
        self,
        domain: Domain,
        *,
        max_steps: int = 1_000_000,
        max_depth: int = 10_000,
        cache_size: int = 8,
        compiled: bool | None = None,
    ) -> None:
        if max_steps < 1 or max_depth < 1 or cache_size < 1:
            raise UsageError("max_steps, max_depth and cache_size must be at least 1")
        self._domain = domain
        self._max_steps = max_steps
        self._max_depth = max_depth
        self._cache_size = cache_size
        self._compiled = compiled
        # by problem object (it is kept, so its id stays its own): hashing a problem by value
        # costs more than a small grounding
        self._cache: OrderedDict[int, tuple[PlanningProblem, Grounding]] = OrderedDict()
        self._stats = dict.fromkeys(PlannerStatistics.__slots__, 0)
        self._stats["grounding_seconds"] = self._stats["search_seconds"] = 0.0

    @property
    def domain(self) -> Domain:
        """The domain, including methods added at runtime."""
        return self._domain

    def statistics(self) -> PlannerStatistics:
        return PlannerStatistics(**self._stats)

    def add_method(
        self, task: str, method: Mapping[str, Any] | str, *, source: str = "<runtime>"
    ) -> Method:
        """Check ``method`` (a mapping or YAML text) against the domain and append it to ``task``.

        Groundings are dropped, so the next ``plan`` sees the method.

        Raises:
            ConfigError: what is wrong with it, with paths relative to the method.
        """
        checked = parse_method(self._domain, task, method, file=source)
        self._domain = self._domain.with_method(task, checked)
        self._cache.clear()
        return checked

    def _ground(self, problem: PlanningProblem) -> Grounding:
        """The problem's grounding, from the cache or made now."""
        if problem.domain != self._domain.name:
            raise UsageError(
                f"problem '{problem.name}' is for domain '{problem.domain}', "
                f"not '{self._domain.name}'"
            )
        found = self._cache.get(id(problem))
        if found is not None:
            self._cache.move_to_end(id(problem))
            self._stats["cache_hits"] += 1
            return found[1]
        start = time.perf_counter()
        grounding = Grounder(compiled(self._domain), problem, self._uses_kernel()).run()
        self._stats["grounding_seconds"] += time.perf_counter() - start
        self._stats["groundings"] += 1
        tasks, methods, ops = grounding.counts
        self._stats["ground_tasks"] += tasks
        self._stats["method_groundings"] += methods
        self._stats["operator_groundings"] += ops
        self._stats["facts"] += grounding.facts
        self._cache[id(problem)] = (problem, grounding)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return grounding

    def _uses_kernel(self) -> bool:
        """Whether to run the compiled kernels (search and assembly): when asked, or by default
        once some planner in this process has loaded them."""
        if self._compiled is None:
            return _KERNEL in sys.modules
        return self._compiled

    def plan(self, problem: PlanningProblem) -> Plan | PlanFailure:
        """Find a plan for ``problem``, or say why there is none."""
        g = self._ground(problem)
        start = time.perf_counter()
        # a false static goal fact stays false whatever methods are added; another fact that
        # can never hold might once a method is added for a task without any: search, then,
        # for the frontiers
        if g.hopeless or (g.impossible_goal and not g.undecomposable):
            result: Plan | PlanFailure = PlanFailure(
                FailureReason.UNREACHABLE_GOAL, _unreachable(g, g.impossible_goal[0])
            )
        else:
            search = _Search(g, self._max_steps, self._max_depth)
            result = search.run_compiled() if self._uses_kernel() else search.run()
            for key in ("expansions", "backtracks", "actions"):
                self._stats[key] += getattr(search, key)
        self._stats["search_seconds"] += time.perf_counter() - start
        self._stats["plans" if result.ok else "failures"] += 1
        return result


def _unreachable(g: Grounding, fact: Atom) -> str:
    if fact.predicate in g.describe.static_predicates:
        return (
            f"goal fact {fact} can never hold: it is static (no operator adds it) and not in "
            "the initial state"
        )
    return (
        f"goal fact {fact} can never hold: it is not in the initial state and no operator "
        "the tasks can reach adds it"
    )


_Todo = tuple[int, int, "_Todo"] | None  # (ground task, depth, rest): a persistent list


class _Search:
    """One depth-first search over a grounding; counters are read afterwards.

    The state is one Python integer (see ``_assembly``): a candidate applies when its mask
    shares no bit with what the state lacks, one AND. A compound task's candidates are tried in
    order and only as far as the first that applies; a choice point remembers where to go on.
    ``run`` is one loop with everything it reads in local variables: a function call per step
    would cost as much as the step.
    """

    def __init__(self, g: Grounding, max_steps: int, max_depth: int) -> None:
        self.g = g
        self.max_steps = max_steps
        self.max_depth = max_depth
        self.expansions = self.backtracks = self.actions = 0
        self.frontiers: dict[int, tuple[int, int]] = {}
        self.depth_cut = False
        self.furthest: tuple[int, int, int] | None = None  # (plan length, op or -1, state)

    def _fail_at(self, plan_len: int, op: int, state: int) -> None:
        if self.furthest is None or plan_len >= self.furthest[0]:
            self.furthest = (plan_len, op, state)

    def run(self) -> Plan | PlanFailure:
        g = self.g
        task_op, task_lo, task_hi = g.task_op, g.task_lo, g.task_hi
        masks, sub, ptr = g.method_mask, g.method_sub, g.method_sub_ptr
        op_req, op_add, op_del, n = g.op_req, g.op_add, g.op_del, g.half
        state, goal, max_steps, max_depth = g.init, g.goal, self.max_steps, self.max_depth
        full = (1 << (2 * n + 1)) - 1  # every bit a mask may need
        todo: _Todo = None
        for gid in reversed(g.roots):
            todo = (gid, 0, todo)
        plan: list[int] = []
        # choice points: [state, rest, plan length, depth, next candidate, end]
        stack: list[list[Any]] = []
        steps = actions = expansions = 0
        try:
            while True:
                if todo is None:
                    if state & goal == goal:
                        return self._plan(np.array(plan, np.int64))
                    self._fail_at(len(plan), -1, state)
                else:
                    gid, depth, rest = todo
                    steps += 1
                    if steps > max_steps:
                        return self._failure(FailureReason.STEP_LIMIT, len(plan))
                    op = task_op[gid]
                    if op >= 0:
                        m = op_req[op]
                        if state & m == m:
                            add, delete = op_add[op], op_del[op]  # both halves of each slot
                            state = state & ~(delete | add << n) | add | delete << n
                            plan.append(op)
                            actions += 1
                            todo = rest
                            continue
                        self._fail_at(len(plan), op, state)
                    elif depth >= max_depth:
                        self.depth_cut = True
                    else:
                        expansions += 1
                        lo, hi, missing = task_lo[gid], task_hi[gid], full ^ state
                        # (enumerating a slice costs a third less than indexing the list)
                        for k, m in enumerate(masks[lo:hi], lo):  # noqa: B007 (read after)
                            if not m & missing:  # it needs nothing that is missing
                                break
                        else:
                            self._frontier(gid, state, depth)
                            k = -1
                        if k >= 0:
                            if k + 1 < hi:
                                stack.append([state, rest, len(plan), depth, k + 1, hi])
                            depth += 1
                            for s in sub[ptr[k] : ptr[k + 1]]:
                                rest = (s, depth, rest)
                            todo = rest
                            continue
                # backtrack: the next candidate that applies in the latest choice point's state
                while stack:
                    point = stack[-1]
                    state, lo = point[0], point[4]
                    missing = full ^ state
                    for k, m in enumerate(masks[lo : point[5]], lo):  # noqa: B007 (read after)
                        if not m & missing:
                            break
                    else:
                        stack.pop()
                        continue
                    break
                else:
                    return self._failure(None, len(plan))
                point[4] = k + 1
                rest, depth = point[1], point[3] + 1
                del plan[point[2] :]
                for s in sub[ptr[k] : ptr[k + 1]]:
                    rest = (s, depth, rest)
                todo = rest
                self.backtracks += 1
        finally:
            self.actions, self.expansions = actions, expansions

    def run_compiled(self) -> Plan | PlanFailure:
        """``run``, by the compiled kernel (``_search_kernel``; imports numba on first use)."""
        from axo.coordination import _search_kernel as kernel

        g = self.g
        ended, plan, counters, frontiers, states, furthest, furthest_state = kernel.search(
            g.half,
            g.held,
            g.goal_bits,
            np.asarray(g.roots, np.int64),
            g.task_ops,
            g.task_los,
            g.task_his,
            g.method_needs,
            g.sub_ptrs,
            g.subs,
            g.op_needs,
            g.op_sets,
            g.op_clears,
            self.max_steps,
            self.max_depth,
            _MAX_FRONTIERS,
        )
        self.expansions, self.backtracks, self.actions, depth_cut, plan_len = counters.tolist()
        self.depth_cut = bool(depth_cut)
        for (gid, depth), state in zip(frontiers.tolist(), states, strict=True):
            self.frontiers[gid] = (kernel.number(state), depth)
        if furthest[0] >= 0:
            self.furthest = (int(furthest[0]), int(furthest[1]), kernel.number(furthest_state))
        if ended == kernel.PLAN:
            return self._plan(plan)
        reason = FailureReason.STEP_LIMIT if ended == kernel.STEP_LIMIT else None
        return self._failure(reason, plan_len)

    def _frontier(self, gid: int, state: int, depth: int) -> None:
        if gid not in self.frontiers and len(self.frontiers) < _MAX_FRONTIERS:
            self.frontiers[gid] = (state, depth)

    def _plan(self, plan: np.ndarray) -> Plan:
        g = self.g
        calls = tuple(g.actions(plan))
        if not g.internal_ops:
            return Plan(calls, calls)
        # which steps are actions, by their operators: one gather, not an attribute per step
        action = np.array([name not in g.internal_ops for name in g.schema_name])
        return Plan(calls, tuple(compress(calls, action.take(g.op_schema.take(plan)).tolist())))

    def _failure(self, reason: FailureReason | None, plan_len: int) -> PlanFailure:
        describe = self.g.describe
        frontiers = tuple(
            Frontier(describe.task(gid), describe.state(state), depth)
            for gid, (state, depth) in self.frontiers.items()
        )
        if reason is FailureReason.STEP_LIMIT:
            message = f"step limit of {self.max_steps:,} reached after {plan_len} actions"
        elif frontiers:
            reason = FailureReason.NO_METHOD
            more = f" (and {len(frontiers) - 1} more tasks)" if len(frontiers) > 1 else ""
            message = f"no applicable method for {frontiers[0].task}{more}"
        elif self.g.impossible_goal:
            reason = FailureReason.UNREACHABLE_GOAL
            message = _unreachable(self.g, self.g.impossible_goal[0])
        elif self.depth_cut:
            reason = FailureReason.DEPTH_LIMIT
            message = f"depth limit of {self.max_depth:,} reached; no plan within it"
        else:
            reason = FailureReason.EXHAUSTED
            message = "every decomposition failed" + self._furthest()
        return PlanFailure(reason, message, frontiers)

    def _furthest(self) -> str:
        if self.furthest is None:
            return ""
        plan_len, op, state = self.furthest
        g, describe = self.g, self.g.describe
        if op < 0:
            unmet = bits(g.goal & ~state)
            return (
                f"; the furthest ran all tasks ({plan_len} steps) but the goal fact "
                f"{describe.condition(unmet[0])} does not hold"
            )
        call = describe.task(g.op_task[op])
        unmet = bits(g.op_req[op] & ~state)
        reasons = [describe.condition(i) for i in unmet if i < 2 * g.half]
        if unmet[-1] == 2 * g.half:  # FALSE: name the facts that make it so
            reasons += describe.never(call) or [describe.condition(unmet[-1])]
        because = ", ".join(reasons)
        return f"; the furthest got {plan_len} steps, then {call} was not applicable ({because})"
