"""Auction time: axo's ``Auctioneer`` vs the same rule as a plain Python loop, 1,000 tasks.

Workload: 96 capabilities (two 64-bit words per agent); each agent has 4 to 16 of them, a load
of 0 to 5 out of 8 and 20 to 100 % of a 100,000-token budget left; each task needs 1 to 3
capabilities and 500 to 5,000 tokens. Tasks are auctioned in order and each award is charged
before the next task.

- ``plain Python`` (the baseline): for each task, a loop over the agents (a copy of the rule,
  written the obvious way, as a user would without numpy);
- ``axo``: ``Auctioneer.auction`` on an auctioneer whose agents were registered beforehand (as
  in a running system); registering them is reported as a separate row.

Both give the same winners and final budgets, checked on every case. Value: ms per auction.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence

from axo.coordination.auction import Agent, Auctioneer, Task
from benches._harness import Measurement, main

DESCRIPTION = "auction of 1,000 tasks: axo numpy Auctioneer vs a plain Python loop"

CAPABILITIES = [f"tool{i:02d}" for i in range(96)]


def market(agents: int, tasks: int, seed: int = 11) -> tuple[list[Agent], list[Task]]:
    rng = random.Random(seed)
    pool = [
        Agent(
            f"agent{i}",
            frozenset(rng.sample(CAPABILITIES, rng.randint(4, 16))),
            budget=float(rng.randint(20, 100) * 1000),
            initial_budget=100_000.0,
            load=float(rng.randint(0, 5)),
            capacity=8.0,
        )
        for i in range(agents)
    ]
    jobs = [
        Task(
            f"task{i}",
            frozenset(rng.sample(CAPABILITIES, rng.randint(1, 3))),
            tokens=float(rng.randint(500, 5000)),
        )
        for i in range(tasks)
    ]
    return pool, jobs


def plain_python(
    agents: Sequence[Agent], tasks: Sequence[Task], w_load: float = 0.5, w_budget: float = 0.5
) -> tuple[list[int], list[float]]:
    """The auction rule as a loop: winners per task and the final budgets."""
    load = [a.load for a in agents]
    budget = [a.budget for a in agents]
    initial = [a.budget if a.initial_budget is None else a.initial_budget for a in agents]
    winners = []
    for task in tasks:
        best, best_score = -1, -math.inf
        for i, a in enumerate(agents):
            if (
                task.requires <= a.capabilities
                and budget[i] >= task.tokens
                and load[i] + task.load <= a.capacity
            ):
                score = w_load * (1.0 - load[i] / a.capacity) + w_budget * (budget[i] / initial[i])
                if score > best_score:
                    best, best_score = i, score
        if best >= 0:
            load[best] += task.load
            budget[best] -= task.tokens
        winners.append(best)
    return winners, budget


def best_time(
    prepare: Callable[[], object], run: Callable[[object], object], repeat: int
) -> tuple[float, object]:
    """Best wall time of ``run(prepare())`` over ``repeat`` rounds; ``prepare`` is not timed."""
    best, out = math.inf, None
    for _ in range(repeat):
        arg = prepare()
        start = time.perf_counter()
        out = run(arg)
        best = min(best, time.perf_counter() - start)
    return best, out


def run(quick: bool) -> list[Measurement]:
    sizes = (100, 1_000) if quick else (100, 1_000, 10_000)
    n_tasks = 200 if quick else 1_000
    rows: list[Measurement] = []
    for n_agents in sizes:
        agents, tasks = market(n_agents, n_tasks)
        case = f"{n_agents:,} agents x {n_tasks:,} tasks"
        repeat = 2 if quick or n_agents >= 10_000 else 5
        base, (winners, budgets) = best_time(
            lambda: None, lambda _, a=agents, t=tasks: plain_python(a, t), repeat
        )
        rows.append(
            Measurement(
                case=case,
                impl="plain Python",
                value=base * 1e3,
                unit="ms",
                baseline=True,
                note=f"{winners.count(-1)} tasks unassigned",
            )
        )
        secs, result = best_time(
            lambda a=agents: Auctioneer(a), lambda a, t=tasks: (a, a.auction(t)), repeat * 2
        )
        auctioneer, outcome = result
        assert outcome.winners.tolist() == winners, f"{case}: winners differ"
        assert auctioneer.budgets.tolist() == budgets, f"{case}: budgets differ"
        stats = auctioneer.statistics()
        rows.append(
            Measurement(
                case=case,
                impl="axo",
                value=secs * 1e3,
                unit="ms",
                note=f"rounds {stats.rounds}, full evaluations "
                f"{stats.fallbacks}, agents scanned {stats.scanned}",
            )
        )
        start = time.perf_counter()
        Auctioneer(agents)
        rows.append(
            Measurement(
                case=f"{n_agents:,} agents: register",
                impl="axo",
                value=(time.perf_counter() - start) * 1e3,
                unit="ms",
                note="once, when agents join; not part of an auction",
            )
        )
    return rows


if __name__ == "__main__":
    main("auction", run)
