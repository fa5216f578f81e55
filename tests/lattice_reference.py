"""A plain-Python EventLattice: dicts and sets, no numpy, written from DESIGN.md alone.

It exists only to be compared with ``axo.lattice.EventLattice`` in property tests, so it favours
being obviously right over being fast: every rule of the "EventLattice semantics" section is one
short block below. It borrows from ``axo.lattice`` only the vocabulary (``State`` and
``LatticeError``), never the algorithm.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence

from axo.lattice import LatticeError, State

SIGNAL = 0.5


class ReferenceLattice:
    """Activation state of one run, kept in dicts keyed by agent index.

    Args:
        dependencies: for each agent index, the indices it depends on.
        thresholds: per-agent signal needed to fire; None entries (or None) mean 0.5 x N.
        decay: per-agent evaporation rate per second (None: no decay).
        clock: seconds; injected so tests never sleep.
        max_activations: cycle guard; default 3 x number of agents.
    """

    def __init__(
        self,
        dependencies: Sequence[Sequence[int]],
        *,
        thresholds: Sequence[float | None] | None = None,
        decay: Sequence[float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_activations: int | None = None,
    ) -> None:
        n = len(dependencies)
        self.n = n
        self._clock = clock
        self._needs: dict[int, set[int]] = {v: set(deps) for v, deps in enumerate(dependencies)}
        self._dependents: dict[int, set[int]] = {u: set() for u in range(n)}
        for v, deps in self._needs.items():
            for u in deps:
                if u not in self._dependents:
                    raise ValueError(f"dependency index {u} out of range 0..{n - 1}")
                self._dependents[u].add(v)
        self._threshold = {v: SIGNAL * len(deps) for v, deps in self._needs.items()}
        for v, t in enumerate(thresholds or ()):
            if t is not None:
                self._threshold[v] = t
        self._decay = {v: (decay[v] if decay is not None else 0.0) for v in range(n)}
        self._signal = {v: 0.0 for v in range(n)}
        self._last_deposit = {v: 0.0 for v in range(n)}
        self._state = {v: State.WAITING for v in range(n)}
        self._max_activations = 3 * n if max_activations is None else max_activations
        self._activations = 0
        self._started = False

    # ------------------------------------------------------------------ driving

    def start(self) -> list[int]:
        """Fire every agent with no dependencies; a second call is a caller bug."""
        if self._started:
            raise LatticeError("start() called twice; one lattice per run")
        self._started = True
        return self._fire([v for v, deps in self._needs.items() if not deps])

    def complete(self, agent: int) -> list[int]:
        return self.complete_many([agent])

    def complete_many(self, agents: Iterable[int]) -> list[int]:
        """Record a batch of completions; return the agents that fire because of them."""
        batch = list(agents)
        seen: set[int] = set()
        for u in batch:
            # A repeat inside the batch is a second completion of an agent already done.
            if u in seen or self._state.get(u) is not State.RUNNING:
                raise LatticeError(f"agent {u} completed but was not running")
            seen.add(u)
        now = self._clock()
        touched: set[int] = set()
        for u in batch:
            self._state[u] = State.DONE
            for v in self._dependents[u]:
                self._deposit(v, now)
                touched.add(v)
        return self._fire(
            [
                v
                for v in touched
                if self._state[v] is State.WAITING and self._signal[v] >= self._threshold[v]
            ]
        )

    def fail(self, agent: int) -> list[int]:
        """Record a failure; skip, transitively, every waiting dependent whose signal can no
        longer reach its threshold (what it has, plus 0.5 for each dependency still waiting
        or running); return them. One that already fired is not walked through."""
        if self._state.get(agent) is not State.RUNNING:
            raise LatticeError(f"agent {agent} failed but was not running")
        self._state[agent] = State.FAILED
        skipped: list[int] = []
        frontier = [agent]
        while frontier:
            for v in self._dependents[frontier.pop()]:
                if self._state[v] is State.WAITING and not self._can_fire(v):
                    self._state[v] = State.SKIPPED
                    skipped.append(v)
                    frontier.append(v)
        return sorted(skipped)

    def _can_fire(self, v: int) -> bool:
        alive = [u for u in self._needs[v] if self._state[u] in (State.WAITING, State.RUNNING)]
        return self._signal[v] + SIGNAL * len(alive) >= self._threshold[v]

    def finish(self) -> list[int]:
        """Once nothing runs, the agents still waiting can never fire: skip them."""
        if self.running:
            raise LatticeError(f"finish() while {self.running} agents are running")
        rest = sorted(v for v, s in self._state.items() if s is State.WAITING)
        for v in rest:
            self._state[v] = State.SKIPPED
        return rest

    # ------------------------------------------------------------------ reading

    @property
    def running(self) -> int:
        return sum(1 for s in self._state.values() if s is State.RUNNING)

    @property
    def finished(self) -> bool:
        return self._started and self.running == 0

    def status(self, agent: int) -> State:
        return self._state[agent]

    # ------------------------------------------------------------------ internals

    def _deposit(self, v: int, now: float) -> None:
        rate = self._decay[v]
        if rate > 0:
            self._signal[v] *= math.exp(-rate * (now - self._last_deposit[v]))
        self._last_deposit[v] = now
        self._signal[v] += SIGNAL

    def _fire(self, ready: list[int]) -> list[int]:
        ready = sorted(ready)
        self._activations += len(ready)
        if self._activations > self._max_activations:
            raise LatticeError(f"cycle guard: more than {self._max_activations} activations")
        for v in ready:
            self._state[v] = State.RUNNING
        return ready
