"""HTN planning time per plan: axo's numpy planner vs GTPyhop 2.0.2 on the same problems.

Both planners get the same strategy, written once as axo YAML (``workflows/domains/*.yaml``) and
once as GTPyhop Python below: blocks world with "move the blocks that need moving" (Gupta &
Nau), and logistics with trucks inside cities and airplanes between them. Methods are tried in
the same order with the same bindings, so both return the same actions (asserted, for every
case); every plan is also checked by the small simulator in this file (its own operator table,
not axo's parser).

- ``GTPyhop`` (the baseline): its default strategy (iterative, first applicable method);
- ``axo, grounding + search``: a new ``Planner`` and a fresh copy of the problem per plan, so
  grounding is paid every time; the domain is compiled for grounding once (as GTPyhop declares
  its domain once), and that one-time cost is noted on this row. The search runs in Python
  (``compiled=False``), as it does in a process that has not loaded numba;
- ``axo, g + s, cold caches``: the same, but only the first call of each block, which runs
  right after GTPyhop's block, with the CPU caches full of GTPyhop's data;
- ``axo, g + compiled search``: the same work — a new planner, a fresh copy of the problem,
  grounding and search — with ``compiled=True``: grounding's steps and the search run as numba
  kernels, as in a process that plans often enough to repay loading them; the load (importing
  numba, the kernels from their cache) is paid once per process, measured at the start and
  noted on this row;
- ``axo, grounding cached``: the Python search again on the same problem (how a coordinator
  that replans after adding a method, or plans the same problem shape repeatedly, sees it).

Value: ms per plan, the best call of 5 rounds (2 in quick mode); in each round every subject
runs a block of 5 calls (2) in a row, taking turns (see ``alternating``). Warm figures come
from the later calls of each block, cold ones from the first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import io
import itertools
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from axo.coordination._compiling import compile_domain
from axo.coordination.domain import Domain, PlanningProblem, load_domain, make_problem
from axo.coordination.htn import Planner
from benches._harness import Measurement, best_of, main

DESCRIPTION = "HTN planner: axo numpy vs GTPyhop 2.0.2 (blocks world, logistics)"

DOMAINS = Path(__file__).resolve().parent.parent / "workflows" / "domains"
Fact = tuple[str, ...]
Action = tuple[str, tuple[str, ...]]


class Case:
    """One problem, in the neutral form both planners and the simulator are built from."""

    def __init__(
        self,
        label: str,
        objects: dict[str, list[str]],
        init: list[Fact],
        goal: list[Fact],
        tasks: list[Fact],
    ) -> None:
        self.label, self.objects, self.init, self.goal, self.tasks = (
            label,
            objects,
            init,
            goal,
            tasks,
        )

    def axo(self, domain: Domain) -> PlanningProblem:
        text = [" ".join(f) for f in self.init]
        return make_problem(
            domain,
            objects=self.objects,
            init=text,
            tasks=[" ".join(t) for t in self.tasks],
            goal=[" ".join(f) for f in self.goal],
            name="".join(ch if ch.isalnum() else "_" for ch in self.label),
        )


def _towers(names: list[str], rng: random.Random) -> list[list[str]]:
    order = names[:]
    rng.shuffle(order)
    stacks: list[list[str]] = []
    for b in order:
        if stacks and rng.random() < 0.75:
            rng.choice(stacks).append(b)
        else:
            stacks.append([b])
    return stacks


def blocks_case(n: int, seed: int = 7) -> Case:
    rng = random.Random(seed)
    names = [f"b{i}" for i in range(n)]
    init: list[Fact] = [("handempty",)]
    goal: list[Fact] = []
    for s in _towers(names, rng):
        init += [("ontable", s[0]), ("clear", s[-1])]
        init += [("on", x, y) for y, x in itertools.pairwise(s)]
    for s in _towers(names, rng):
        init.append(("goal_ontable", s[0]))
        goal.append(("ontable", s[0]))
        for y, x in itertools.pairwise(s):
            init.append(("goal_on", x, y))
            goal.append(("on", x, y))
    return Case(f"blocks, {n} blocks", {"block": names}, init, goal, [("solve",)])


def logistics_case(cities: int, places: int, packages: int, planes: int, seed: int = 7) -> Case:
    rng = random.Random(seed)
    city = [f"c{i}" for i in range(cities)]
    airports = [f"ap{i}" for i in range(cities)]
    spots = [f"l{i}_{j}" for i in range(cities) for j in range(1, places)]
    where = {
        **{a: c for a, c in zip(airports, city, strict=True)},
        **{s: city[int(s[1:].split("_")[0])] for s in spots},
    }
    trucks = [f"t{i}" for i in range(cities)]
    planes_ = [f"a{i}" for i in range(planes)]
    pkgs = [f"p{i}" for i in range(packages)]
    places_ = airports + spots
    init: list[Fact] = [("in_city", loc, c) for loc, c in where.items()]
    init += [
        ("at", t, airports[i] if i % 2 else rng.choice([s for s in places_ if where[s] == c]))
        for i, (t, c) in enumerate(zip(trucks, city, strict=True))
    ]
    init += [("at", a, rng.choice(airports)) for a in planes_]
    goal: list[Fact] = []
    tasks: list[Fact] = []
    for p in pkgs:
        src, dest = rng.sample(places_, 2)
        init.append(("at", p, src))
        goal.append(("at", p, dest))
        tasks.append(("deliver", p, dest))
    objects = {
        "package": pkgs,
        "truck": trucks,
        "airplane": planes_,
        "airport": airports,
        "location": spots,
        "city": city,
    }
    label = f"logistics, {cities} cities, {packages} pkgs"
    return Case(label, objects, init, goal, tasks)


# --- an independent simulator: its own operator table, plain sets ----------------------------

_OPS: dict[str, Callable[..., tuple[set[Fact], set[Fact], set[Fact]]]] = {
    "pickup": lambda b: (
        {("clear", b), ("ontable", b), ("handempty",)},
        {("holding", b)},
        {("clear", b), ("ontable", b), ("handempty",)},
    ),
    "putdown": lambda b: (
        {("holding", b)},
        {("ontable", b), ("clear", b), ("handempty",)},
        {("holding", b)},
    ),
    "stack": lambda b, c: (
        {("holding", b), ("clear", c)},
        {("on", b, c), ("clear", b), ("handempty",)},
        {("holding", b), ("clear", c)},
    ),
    "unstack": lambda b, c: (
        {("on", b, c), ("clear", b), ("handempty",)},
        {("holding", b), ("clear", c)},
        {("on", b, c), ("clear", b), ("handempty",)},
    ),
    "load": lambda p, v, at: ({("at", v, at), ("at", p, at)}, {("in", p, v)}, {("at", p, at)}),
    "unload": lambda p, v, at: ({("at", v, at), ("in", p, v)}, {("at", p, at)}, {("in", p, v)}),
    "drive": lambda t, a, b, c: (
        {("at", t, a), ("in_city", a, c), ("in_city", b, c)},
        {("at", t, b)},
        {("at", t, a)},
    ),
    "fly": lambda a, x, y: ({("at", a, x)}, {("at", a, y)}, {("at", a, x)}),
}


def simulate(case: Case, actions: list[Action]) -> None:
    """Apply ``actions`` to the case's facts; raise AssertionError on any violation."""
    state = set(case.init)
    for i, (name, args) in enumerate(actions):
        pre, add, delete = _OPS[name](*args)
        missing = pre - state
        assert not missing, f"{case.label}: step {i} {name}{args} lacks {sorted(missing)}"
        state = (state - delete) | add
    unmet = set(case.goal) - state
    assert not unmet, f"{case.label}: goal not reached: {sorted(unmet)[:3]}"


# --- GTPyhop: the same strategies, written the GTPyhop way -----------------------------------

_GTPYHOP: dict[str, Any] = {}


def _gtpyhop() -> Any:
    if "module" not in _GTPYHOP:
        os.environ.setdefault("GTPYHOP_QUIET", "true")
        import gtpyhop

        with contextlib.redirect_stdout(io.StringIO()):  # it announces the change
            gtpyhop.set_verbose_level(0)
        _GTPYHOP["module"] = gtpyhop
        _GTPYHOP["blocks"] = _gtpyhop_blocks(gtpyhop)
        _GTPYHOP["logistics"] = _gtpyhop_logistics(gtpyhop)
    return _GTPYHOP["module"]


def _gtpyhop_blocks(gp: Any) -> Any:
    domain = gp.Domain("axo_bench_blocks")

    def pickup(s: Any, b: str) -> Any:
        if s.pos[b] == "table" and s.clear[b] and s.holding["hand"] is False:
            s.pos[b], s.clear[b], s.holding["hand"] = "hand", False, b
            return s
        return False

    def unstack(s: Any, b: str, c: str) -> Any:
        if s.pos[b] == c and c != "table" and s.clear[b] and s.holding["hand"] is False:
            s.pos[b], s.clear[b], s.holding["hand"], s.clear[c] = "hand", False, b, True
            return s
        return False

    def putdown(s: Any, b: str) -> Any:
        if s.pos[b] == "hand":
            s.pos[b], s.clear[b], s.holding["hand"] = "table", True, False
            return s
        return False

    def stack(s: Any, b: str, c: str) -> Any:
        if s.pos[b] == "hand" and s.clear[c]:
            s.pos[b], s.clear[b], s.holding["hand"], s.clear[c] = c, True, False, False
            return s
        return False

    gp.declare_actions(pickup, unstack, putdown, stack)

    def m_solve(s: Any, goal: dict[str, str]) -> list[Any]:
        return [("move_blocks", goal)]

    def m_move_blocks(s: Any, goal: dict[str, str]) -> list[Any]:
        done: dict[str, bool] = {"table": True}

        def is_done(b: str) -> bool:
            if b not in done:
                done[b] = s.pos[b] == goal[b] and is_done(s.pos[b])
            return done[b]

        for x, y in goal.items():
            if y != "table" and s.clear[x] and not is_done(x) and is_done(y) and s.clear[y]:
                return [("take", x), ("stack", x, y), ("move_blocks", goal)]
        for x, y in goal.items():
            if y == "table" and s.clear[x] and not is_done(x):
                return [("take", x), ("putdown", x), ("move_blocks", goal)]
        for x in goal:
            if s.clear[x] and not is_done(x) and s.pos[x] != "table":
                return [("take", x), ("putdown", x), ("move_blocks", goal)]
        return []

    def m_take(s: Any, x: str) -> list[Any]:
        return [("pickup", x)] if s.pos[x] == "table" else [("unstack", x, s.pos[x])]

    gp.declare_task_methods("solve", m_solve)
    gp.declare_task_methods("move_blocks", m_move_blocks)
    gp.declare_task_methods("take", m_take)
    return domain


def _gtpyhop_logistics(gp: Any) -> Any:
    domain = gp.Domain("axo_bench_logistics")

    def load(s: Any, p: str, v: str, loc: str) -> Any:
        if s.at.get(v) == loc and s.at.get(p) == loc:
            del s.at[p]
            s.inside[p] = v
            return s
        return False

    def unload(s: Any, p: str, v: str, loc: str) -> Any:
        if s.at.get(v) == loc and s.inside.get(p) == v:
            del s.inside[p]
            s.at[p] = loc
            return s
        return False

    def drive(s: Any, t: str, a: str, b: str, c: str) -> Any:
        if s.at.get(t) == a and s.city[a] == c and s.city[b] == c:
            s.at[t] = b
            return s
        return False

    def fly(s: Any, a: str, x: str, y: str) -> Any:
        if s.at.get(a) == x:
            s.at[a] = y
            return s
        return False

    gp.declare_actions(load, unload, drive, fly)

    def m_deliver(s: Any, p: str, dest: str) -> Any:
        src = s.at.get(p)
        if src == dest:
            return []
        if src is None:
            return False
        c1, c2 = s.city[src], s.city[dest]
        if c1 == c2:
            return [("carry", p, src, dest, c1)]
        a1, a2 = s.airport[c1], s.airport[c2]
        return [("carry", p, src, a1, c1), ("fly_package", p, a1, a2), ("carry", p, a2, dest, c2)]

    def m_carry(s: Any, p: str, a: str, b: str, c: str) -> Any:
        if s.at.get(p) == b:
            return []
        for t in s.trucks:
            if s.city[s.at[t]] == c:
                return [
                    ("move_truck", t, a, c),
                    ("load", p, t, a),
                    ("move_truck", t, b, c),
                    ("unload", p, t, b),
                ]
        return False

    def m_move_truck(s: Any, t: str, to: str, c: str) -> Any:
        return [] if s.at[t] == to else [("drive", t, s.at[t], to, c)]

    def m_fly_package(s: Any, p: str, a: str, b: str) -> Any:
        plane = s.planes[0]
        return [
            ("move_plane", plane, a),
            ("load", p, plane, a),
            ("move_plane", plane, b),
            ("unload", p, plane, b),
        ]

    def m_move_plane(s: Any, a: str, to: str) -> Any:
        return [] if s.at[a] == to else [("fly", a, s.at[a], to)]

    gp.declare_task_methods("deliver", m_deliver)
    gp.declare_task_methods("carry", m_carry)
    gp.declare_task_methods("move_truck", m_move_truck)
    gp.declare_task_methods("fly_package", m_fly_package)
    gp.declare_task_methods("move_plane", m_move_plane)
    return domain


def gtpyhop_plan(case: Case) -> list[Action] | None:
    gp = _gtpyhop()
    if case.tasks == [("solve",)]:
        gp.set_current_domain(_GTPYHOP["blocks"])
        goal_pos = {f[1]: "table" for f in case.init if f[0] == "goal_ontable"}
        goal_pos.update({f[1]: f[2] for f in case.init if f[0] == "goal_on"})
        pos = {f[1]: "table" for f in case.init if f[0] == "ontable"}
        pos.update({f[1]: f[2] for f in case.init if f[0] == "on"})
        clear = {f[1] for f in case.init if f[0] == "clear"}
        state = gp.State(
            "s",
            pos=pos,
            holding={"hand": False},
            clear={b: b in clear for b in pos},
        )
        goal = {b: goal_pos[b] for b in case.objects["block"]}
        todo: list[Any] = [("solve", goal)]
    else:
        gp.set_current_domain(_GTPYHOP["logistics"])
        city = {f[1]: f[2] for f in case.init if f[0] == "in_city"}
        state = gp.State(
            "s",
            at={f[1]: f[2] for f in case.init if f[0] == "at"},
            inside={},
            city=city,
            airport={city[a]: a for a in case.objects["airport"]},
            trucks=case.objects["truck"],
            planes=case.objects["airplane"],
        )
        todo = [tuple(t) for t in case.tasks]
    plan = gp.find_plan(state, todo)
    return None if plan is False or plan is None else [(a[0], tuple(a[1:])) for a in plan]


# --- the subject -----------------------------------------------------------------------------


def alternating(
    runs: dict[str, Callable[[], object]], rounds: int, block: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Best seconds of one call of each callable, warm and cold, in alternating blocks.

    Every round runs each callable ``block`` times in a row, after a collection, so all see the
    same spells of machine load (this VM's speed drifts over seconds) and none pays for
    another's garbage. The first call of a block runs with the CPU caches full of the previous
    callable's data: for axo after GTPyhop that costs about as much as the plan itself (the
    same happens after any allocation-heavy work), so it is reported apart, as *cold*; the
    others are *warm*, as in a process that plans repeatedly (``bench_orchestration`` times
    the same way). Returns (warm, cold).
    """
    warm = dict.fromkeys(runs, float("inf"))
    cold = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, fn in runs.items():
            gc.collect()
            for i in range(block):
                start = time.perf_counter()
                fn()
                took = time.perf_counter() - start
                best = cold if i == 0 else warm
                best[name] = min(best[name], took)
    return warm, cold


def run(quick: bool) -> list[Measurement]:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    blocks = load_domain(DOMAINS / "blocks.yaml")
    logistics = load_domain(DOMAINS / "logistics.yaml")
    cases = [(blocks, blocks_case(n)) for n in ((10, 25) if quick else (10, 25, 50, 75, 100))]
    sizes = ((2, 3, 4, 1),) if quick else ((3, 3, 8, 1), (6, 4, 24, 2), (12, 5, 60, 3))
    cases += [(logistics, logistics_case(*s)) for s in sizes]
    rounds, block = (2, 2) if quick else (5, 5)
    rows: list[Measurement] = []
    start = time.perf_counter()  # the compiled search's one-time load, on the smallest case
    Planner(cases[0][0], compiled=True).plan(cases[0][1].axo(cases[0][0]))
    load_ms = (time.perf_counter() - start) * 1e3
    for domain, case in cases:
        problem = case.axo(domain)
        reference = gtpyhop_plan(case)
        assert reference is not None, f"GTPyhop found no plan for {case.label}"
        simulate(case, reference)
        result = Planner(domain, compiled=False).plan(problem)
        assert result.ok, f"axo found no plan for {case.label}: {result}"
        ours = [(a.name, a.args) for a in result.actions]
        simulate(case, ours)
        assert ours == reference, f"{case.label}: axo's plan differs from GTPyhop's"
        assert Planner(domain, compiled=True).plan(problem) == result
        planner = Planner(domain, compiled=False)
        planner.plan(problem)
        warm, cold = alternating(
            {
                "gtpyhop": lambda c=case: gtpyhop_plan(c),
                "ground": lambda d=domain, p=problem: Planner(d, compiled=False).plan(
                    dataclasses.replace(p)
                ),
                "compiled": lambda d=domain, p=problem: Planner(d, compiled=True).plan(
                    dataclasses.replace(p)
                ),
                "cached": lambda pl=planner, p=problem: pl.plan(p),
            },
            rounds,
            block,
        )
        compile_ms = best_of(lambda d=domain: compile_domain(d), repeat=rounds) * 1e3
        rows.append(
            Measurement(
                case=case.label,
                impl="GTPyhop 2.0.2",
                unit="ms/plan",
                value=warm["gtpyhop"] * 1e3,
                baseline=True,
                note=f"plan: {len(ours)} actions, the same as axo's; best warm call of "
                f"{rounds} rounds of {block} calls each, alternating",
            )
        )
        stats = planner.statistics()
        rows.append(
            Measurement(
                case=case.label,
                impl="axo, grounding + search",
                unit="ms/plan",
                value=warm["ground"] * 1e3,
                note=f"{stats.ground_tasks} ground tasks, {stats.method_groundings} "
                f"method and {stats.operator_groundings} operator groundings, "
                f"{stats.facts} facts; domain compiled once: {compile_ms:.2f} ms",
            )
        )
        rows.append(
            Measurement(
                case=case.label,
                impl="axo, g + s, cold caches",
                unit="ms/plan",
                value=cold["ground"] * 1e3,
                note="the first call after GTPyhop's; GTPyhop's own first call: "
                f"{cold['gtpyhop'] * 1e3:.4g} ms",
            )
        )
        rows.append(
            Measurement(
                case=case.label,
                impl="axo, g + compiled search",
                unit="ms/plan",
                value=warm["compiled"] * 1e3,
                note=f"the same plan; cold: {cold['compiled'] * 1e3:.4g} ms; numba and the "
                f"kernel loaded once per process: {load_ms:.0f} ms",
            )
        )
        rows.append(
            Measurement(
                case=case.label,
                impl="axo, grounding cached",
                unit="ms/plan",
                value=warm["cached"] * 1e3,
            )
        )
    return rows


if __name__ == "__main__":
    main("htn", run)
