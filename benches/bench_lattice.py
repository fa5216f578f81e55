"""Benchmark subject: the numpy EventLattice against a plain-Python dict-based lattice.

Cases: a large random DAG completed in topological batches (one ``complete_many`` per
generation: where vectorization should pay), and two small graphs driven one completion at a
time (a 100-agent chain, a 10x10 all-to-all DAG: where FACTS.md says dicts win). Building a
lattice is timed apart from driving it, because a run pays for both; so is ``fresh()``, the
reset a later run of the same workflow pays instead of a build (the same structure, new
signals and states), for both lattices.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import numpy as np

from axo.lattice import EventLattice
from benches._harness import Measurement, main

DESCRIPTION = "EventLattice (numpy, CSR) vs a plain-Python dict lattice: batches and small graphs"

SIGNAL = 0.5


class DictLattice:
    """The baseline: the same threshold semantics (no decay, no failure) in dicts and sets,
    with the same checks and counts (a completion must come from a running agent)."""

    def __init__(self, dependencies: Sequence[Sequence[int]]) -> None:
        self.dependents: dict[int, list[int]] = {v: [] for v in range(len(dependencies))}
        for v, deps in enumerate(dependencies):
            for u in deps:
                self.dependents[u].append(v)
        self.threshold = {v: SIGNAL * len(deps) for v, deps in enumerate(dependencies)}
        self.entries = [v for v, deps in enumerate(dependencies) if not deps]
        self._reset()

    def fresh(self) -> DictLattice:
        """A new lattice for another run over the same graph, in the state before ``start()``:
        the structure is shared, the signals and states are new (as ``EventLattice.fresh``)."""
        new = object.__new__(DictLattice)
        new.dependents, new.threshold, new.entries = self.dependents, self.threshold, self.entries
        new._reset()
        return new

    def _reset(self) -> None:
        self.signal = dict.fromkeys(self.threshold, 0.0)
        self.waiting = set(self.threshold)
        self.running: set[int] = set()
        self.signal_updates = 0

    def start(self) -> list[int]:
        self.waiting.difference_update(self.entries)
        self.running.update(self.entries)
        return list(self.entries)

    def complete(self, agent: int) -> list[int]:
        return self.complete_many((agent,))

    def complete_many(self, agents: Iterable[int]) -> list[int]:
        signal, threshold, waiting, running = (
            self.signal,
            self.threshold,
            self.waiting,
            self.running,
        )
        ready = []
        for u in agents:
            if u not in running:
                raise ValueError(f"agent {u} completed but was not running")
            running.discard(u)
            for v in self.dependents[u]:
                s = signal[v] + SIGNAL
                signal[v] = s
                self.signal_updates += 1
                if v in waiting and s >= threshold[v]:
                    waiting.discard(v)
                    ready.append(v)
        running.update(ready)
        return ready


class Lattice(Protocol):
    def fresh(self) -> Lattice: ...
    def start(self) -> list[int]: ...
    def complete(self, agent: int) -> list[int]: ...
    def complete_many(self, agents: Iterable[int]) -> list[int]: ...


BASELINE = "dict (plain Python)"
IMPLS: dict[str, Callable[[Sequence[Sequence[int]]], Lattice]] = {
    BASELINE: DictLattice,
    "numpy EventLattice": EventLattice,
}


# ---------------------------------------------------------------------- graphs


def random_dag(n: int, *, mean_deps: int = 3, seed: int = 7) -> list[list[int]]:
    """``n`` agents, each depending on 0..2·mean_deps earlier agents, labels shuffled."""
    rng = np.random.default_rng(seed)
    label = rng.permutation(n)
    deps: list[list[int]] = [[] for _ in range(n)]
    for j in range(1, n):
        k = min(j, int(rng.integers(0, 2 * mean_deps + 1)))
        deps[label[j]] = [int(label[i]) for i in rng.choice(j, size=k, replace=False)]
    return deps


def chain(n: int) -> list[list[int]]:
    return [[]] + [[i - 1] for i in range(1, n)]


def all_to_all(layers: int, width: int) -> list[list[int]]:
    """Every agent of layer l + 1 depends on every agent of layer l."""
    return [
        [] if i < width else list(range((i // width - 1) * width, i // width * width))
        for i in range(layers * width)
    ]


# ---------------------------------------------------------------------- drives


def by_generations(lat: Lattice) -> int:
    """Complete each generation of fired agents as one batch; return the activations."""
    gen = lat.start()
    fired = len(gen)
    while gen:
        gen = lat.complete_many(gen)
        fired += len(gen)
    return fired


def one_at_a_time(lat: Lattice) -> int:
    """Complete running agents singly, first fired first completed; return the activations."""
    queue = deque(lat.start())
    fired = len(queue)
    while queue:
        ready = lat.complete(queue.popleft())
        fired += len(ready)
        queue.extend(ready)
    return fired


def interleaved(
    graph: Sequence[Sequence[int]], drive: Callable[[Lattice], int], *, repeat: int
) -> dict[str, tuple[float, float, int]]:
    """Per implementation: best build time, best drive time, activations.

    Rounds alternate between implementations so that load from other processes on the machine
    falls on both alike; the collector is paused inside each timed section, as ``timeit`` does,
    and each lattice is freed outside them.
    """
    best: dict[str, list[float]] = {impl: [float("inf"), float("inf")] for impl in IMPLS}
    fired: dict[str, int] = {}
    gc.collect()
    for _ in range(repeat):
        for impl, make in IMPLS.items():
            gc.disable()
            try:
                t0 = time.perf_counter()
                lat = make(graph)
                t1 = time.perf_counter()
                fired[impl] = drive(lat)
                t2 = time.perf_counter()
            finally:
                gc.enable()
            best[impl] = [min(best[impl][0], t1 - t0), min(best[impl][1], t2 - t1)]
            del lat  # freed here, not in the next build's timed section (the other impl's)
    return {impl: (b[0], b[1], fired[impl]) for impl, b in best.items()}


def interleaved_fresh(graph: Sequence[Sequence[int]], *, repeat: int) -> dict[str, float]:
    """Per implementation: best time of ``fresh()`` on a lattice that has completed a run.

    Rounds alternate between implementations, the collector paused in each timed section, as
    in ``interleaved``; a lattice from ``fresh()`` must then complete a whole run.
    """
    used: dict[str, Lattice] = {}
    for impl, make in IMPLS.items():
        used[impl] = make(graph)
        assert by_generations(used[impl]) == len(graph)
    best = dict.fromkeys(IMPLS, float("inf"))
    gc.collect()
    for _ in range(repeat):
        for impl, lat in used.items():
            gc.disable()
            try:
                t0 = time.perf_counter()
                new = lat.fresh()
                t1 = time.perf_counter()
            finally:
                gc.enable()
            best[impl] = min(best[impl], t1 - t0)
            del new  # freed outside the timed section
    for impl, lat in used.items():
        fired = by_generations(lat.fresh())
        assert fired == len(graph), f"{impl} fresh() lattice activated {fired} agents"
    return best


# ---------------------------------------------------------------------- cases


def run(quick: bool) -> list[Measurement]:
    n = 1_000 if quick else 10_000
    repeat = 3 if quick else 15
    small_repeat = 20 if quick else 200
    big = random_dag(n)
    edges = sum(len(d) for d in big)
    label = f"{n // 1000}k DAG"
    note = f"{n} agents, {edges} edges, one complete_many per generation"
    rows: list[Measurement] = []

    batched = interleaved(big, by_generations, repeat=repeat)
    for impl, (build, secs, fired) in batched.items():
        assert fired == n, f"{impl} activated {fired} of {n} agents"
        base = impl == BASELINE
        rows += [
            Measurement(
                case=f"{label}, topological batches",
                impl=impl,
                value=edges / secs,
                unit="updates/s",
                baseline=base,
                lower_is_better=False,
                note=note if base else "",
            ),
            Measurement(
                case=f"{label}, batches, per activation",
                impl=impl,
                value=secs / n * 1e6,
                unit="µs/act",
                baseline=base,
            ),
            Measurement(
                case=f"{label}: build the lattice",
                impl=impl,
                value=build * 1e3,
                unit="ms",
                baseline=base,
                note="" if base else "a workflow's first run on a host; later runs: fresh()",
            ),
        ]
    for impl, secs in interleaved_fresh(big, repeat=small_repeat).items():
        base = impl == BASELINE
        rows.append(
            Measurement(
                case=f"{label}: fresh() for a new run",
                impl=impl,
                value=secs * 1e3,
                unit="ms",
                baseline=base,
                note="the same structure, new signals and states (a reused run actor); "
                f"best of {small_repeat}"
                if base
                else "",
            )
        )
    singly = interleaved(big, one_at_a_time, repeat=repeat)
    for impl, (_, secs, fired) in singly.items():
        assert fired == n, f"{impl} activated {fired} of {n} agents"
        rows.append(
            Measurement(
                case=f"{label}, single completions",
                impl=impl,
                value=secs / n * 1e6,
                unit="µs/act",
                baseline=impl == BASELINE,
                note="" if impl == BASELINE else "same graph, complete() per agent",
            )
        )

    for case, graph in (
        ("chain 100, single completions", chain(100)),
        ("10x10 all-to-all, single compl.", all_to_all(10, 10)),
    ):
        for impl, (_, secs, fired) in interleaved(
            graph, one_at_a_time, repeat=small_repeat
        ).items():
            assert fired == len(graph), f"{impl} activated {fired} of {len(graph)} agents"
            rows.append(
                Measurement(
                    case=case,
                    impl=impl,
                    value=secs / fired * 1e6,
                    unit="µs/act",
                    baseline=impl == BASELINE,
                )
            )
    return rows


if __name__ == "__main__":
    main("lattice", run)
