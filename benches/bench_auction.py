"""Auction time: axo's ``Auctioneer`` vs the same rule as a plain Python loop, 1,000 tasks.

Workload: 96 capabilities (two 64-bit words per agent); each agent has 4 to 16 of them, a load
of 0 to 5 out of 8 and 20 to 100 % of a 100,000-token budget left; each task needs 1 to 3
capabilities and 500 to 5,000 tokens. Tasks are auctioned in order and each award is charged
before the next task.

- ``plain Python`` (the baseline): for each task, a loop over the agents (a copy of the rule,
  written the obvious way, as a user would without numpy);
- ``axo``: ``Auctioneer.auction`` on an auctioneer whose agents were registered beforehand (as
  in a running system), with the path the auction's size picks: numba's compiled kernel from
  ``_COMPILED_FROM`` agents × tasks on, numpy below (each row's note says which). Reading the
  tasks' requirements, tokens and load is included; registering the agents is a separate row.

Both are timed in interleaved passes (two plain loops, then two auctions on fresh auctioneers:
the same number of runs for each) and the fastest run of each counts: an auction in a warm
process. What a process pays once
is reported on its own, measured in new processes (``python -c``) at 1,000 agents: the first
compiled auction imports numba and loads the kernel from numba's on-disk cache (row "first
auction", "axo, cached kernel"), and the very first one on a machine, or after the kernel's
source changes, compiles the kernel too ("axo, empty numba cache"). The cache goes to a
temporary ``NUMBA_CACHE_DIR`` here, so these rows do not depend on what earlier runs left.

Both give the same winners and final budgets, checked on every case. Value: ms per auction.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from axo.coordination import auction as auction_module
from axo.coordination.auction import Agent, Auctioneer, AuctionStatistics, Task
from benches._harness import Measurement, main

DESCRIPTION = "auction of 1,000 tasks: axo Auctioneer (numba kernel, numpy) vs a plain Python loop"

ROOT = Path(__file__).resolve().parents[1]

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


def interleaved(
    contenders: Sequence[tuple[Callable[[], object], Callable[[object], object], int]],
    passes: int,
) -> list[tuple[float, object]]:
    """Best wall time of ``run(prepare())`` for each (prepare, run, times per pass) contender,
    over ``passes`` passes that take turns, so all see the same machine load. ``prepare`` is
    not timed. Returns (best seconds, last output) per contender."""
    best = [math.inf] * len(contenders)
    out: list[object] = [None] * len(contenders)
    for _ in range(passes):
        for k, (prepare, run, times) in enumerate(contenders):
            for _ in range(times):
                arg = prepare()
                start = time.perf_counter()
                out[k] = run(arg)
                best[k] = min(best[k], time.perf_counter() - start)
    return list(zip(best, out, strict=True))


def first_auction(n_agents: int, n_tasks: int) -> None:
    """Run in a new process: time its first compiled auction, in two parts (importing numba;
    loading or compiling the kernel and auctioning), and a second auction; print them as JSON."""
    agents, tasks = market(n_agents, n_tasks)
    auctioneer, again = Auctioneer(agents), Auctioneer(agents)
    assert "numba" not in sys.modules and auction_module._compiled(n_agents, n_tasks)
    start = time.perf_counter()
    import numba  # noqa: F401  # the first step of the first compiled auction, timed alone

    imported = time.perf_counter()
    auctioneer.auction(tasks)
    first = time.perf_counter()
    again.auction(tasks)
    second = time.perf_counter()
    times = {"import": imported - start, "first": first - imported, "second": second - first}
    print(json.dumps({k: v * 1e3 for k, v in times.items()}))


def cold_rows(n_agents: int, n_tasks: int) -> list[Measurement]:
    """The first compiled auction in a new process: with an empty numba cache, then with the
    cache that first run wrote."""
    code = f"from benches.bench_auction import first_auction; first_auction({n_agents}, {n_tasks})"
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for impl, what in (
            ("axo, empty numba cache", "compiling and caching the kernel, then auctioning"),
            ("axo, cached kernel", "loading the cached kernel, then auctioning"),
        ):
            proc = subprocess.run(
                [sys.executable, "-c", code],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            ms = json.loads(proc.stdout.splitlines()[-1])
            rows.append(
                Measurement(
                    case=f"{n_agents:,} x {n_tasks:,}: first auction",
                    impl=impl,
                    value=ms["import"] + ms["first"],
                    unit="ms",
                    note=f"in a new process: importing numba {ms['import']:.0f} ms + {what} "
                    f"{ms['first']:.0f} ms; its next auction {ms['second']:.2f} ms",
                )
            )
    return rows


def path_note(n_agents: int, n_tasks: int, stats: AuctionStatistics) -> str:
    """Which path an auction of this size took, and what its statistics say about it."""
    if auction_module._compiled(n_agents, n_tasks):
        return f"numba kernel: {stats.scanned} capable agents scanned"
    return (
        f"numpy path: rounds {stats.rounds}, full evaluations {stats.fallbacks}, "
        f"agents scanned {stats.scanned}"
    )


def run(quick: bool) -> list[Measurement]:
    sizes = (100, 1_000) if quick else (100, 1_000, 10_000)
    n_tasks = 200 if quick else 1_000
    rows: list[Measurement] = []
    for n_agents in sizes:
        agents, tasks = market(n_agents, n_tasks)
        case = f"{n_agents:,} agents x {n_tasks:,} tasks"
        passes = 2 if quick or n_agents >= 10_000 else 5
        (base, (winners, budgets)), (secs, (auctioneer, outcome)) = interleaved(
            [
                (lambda: None, lambda _, a=agents, t=tasks: plain_python(a, t), 2),
                (lambda a=agents: Auctioneer(a), lambda a, t=tasks: (a, a.auction(t)), 2),
            ],
            passes,
        )
        rows.append(
            Measurement(
                case=case,
                impl="plain Python",
                value=base * 1e3,
                unit="ms",
                baseline=True,
                note=f"{winners.count(-1)} tasks unassigned; best of {2 * passes} runs, as axo's",
            )
        )
        assert outcome.winners.tolist() == winners, f"{case}: winners differ"
        assert auctioneer.budgets.tolist() == budgets, f"{case}: budgets differ"
        rows.append(
            Measurement(
                case=case,
                impl="axo",
                value=secs * 1e3,
                unit="ms",
                note=path_note(n_agents, n_tasks, auctioneer.statistics()),
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
    return rows + cold_rows(1_000, n_tasks)


if __name__ == "__main__":
    main("auction", run)
