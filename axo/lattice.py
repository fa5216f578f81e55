"""EventLattice: which agents fire, decided by pheromone signals from completed dependencies.

The lattice knows agents only as indices 0..n-1 and dependencies as index lists. It does not
know about actors, LLMs or time beyond an injected clock. Semantics (see DESIGN.md):

- entry agents (no dependencies) fire on ``start()``;
- completing U adds 0.5 to the signal of each agent that depends on U, and only those;
- an agent with N dependencies fires when its signal reaches its threshold (default 0.5 × N,
  i.e. when every dependency has completed), at most once per run;
- with ``decay`` (per second, > 0) a signal evaporates as ``s · exp(-decay · Δt)`` between
  deposits, read from the injected clock;
- a failure marks every transitive dependent that has not fired as skipped, at once;
- the run is over when nothing is running: no completion can arrive any more, so agents still
  waiting can never fire and are reported as skipped.

Signals and thresholds are numpy arrays; dependents are stored in CSR form (``indptr`` /
``indices``), so completing a batch of agents is one ``np.add.at`` over their dependents.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

SIGNAL = 0.5


class State(IntEnum):
    WAITING = 0
    RUNNING = 1
    DONE = 2
    FAILED = 3
    SKIPPED = 4


# plain ints for array comparisons: comparing a numpy scalar with an IntEnum member costs
# ~10 µs (numpy probes the enum for the array protocol), a plain int ~0.3 µs
_WAITING, _RUNNING, _DONE, _FAILED, _SKIPPED = (int(s) for s in State)
_STATE_NAMES = [s.name.lower() for s in State]
# what fresh() shares: the graph, thresholds, decay and limits, not the run's state
_STRUCTURE = (
    "n",
    "_clock",
    "n_deps",
    "threshold",
    "_dependents",
    "_dependencies",
    "indptr",
    "indices",
    "decay",
    "_has_decay",
    "max_activations",
)


class LatticeError(RuntimeError):
    """The lattice was driven in a way its semantics forbid (a bug in the caller)."""


class EventLattice:
    """Activation state of one run.

    Args:
        dependencies: for each agent index, the indices it depends on.
        thresholds: per-agent signal needed to fire; None entries (or None) mean 0.5 × N.
        decay: per-agent evaporation rate per second (None: no decay anywhere).
        clock: monotonic seconds; injected so tests never sleep.
        max_activations: cycle guard; default 3 × number of agents.
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
        # a dependency is a set: listing one twice must not double its signal
        dependencies = [list(dict.fromkeys(d)) for d in dependencies]
        self._clock = clock
        n_deps = np.fromiter((len(d) for d in dependencies), dtype=np.int64, count=n)
        self.n_deps = n_deps
        self.threshold = SIGNAL * n_deps.astype(np.float64)
        if thresholds is not None:
            for i, t in enumerate(thresholds):
                if t is not None:
                    self.threshold[i] = t
        # CSR of dependents: for each u, the agents that depend on u
        dependents: list[list[int]] = [[] for _ in range(n)]
        for v, deps in enumerate(dependencies):
            for u in deps:
                if not 0 <= u < n:
                    raise ValueError(f"dependency index {u} out of range 0..{n - 1}")
                dependents[u].append(v)
        self._dependents = dependents
        self._dependencies = dependencies
        sizes = np.fromiter((len(d) for d in dependents), dtype=np.int64, count=n)
        self.indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(sizes, out=self.indptr[1:])
        self.indices = np.fromiter(
            (v for d in dependents for v in d), dtype=np.int64, count=int(self.indptr[-1])
        )
        self.decay = np.zeros(n) if decay is None else np.asarray(decay, dtype=np.float64)
        self._has_decay = bool(np.any(self.decay > 0))
        self.max_activations = 3 * n if max_activations is None else max_activations
        for shared in (self.n_deps, self.threshold, self.indptr, self.indices, self.decay):
            shared.flags.writeable = False  # shared with fresh() copies: never written
        self._reset()

    def fresh(self) -> EventLattice:
        """A new lattice for another run over the same agents, dependencies, thresholds and
        decay, in the state before ``start()``.

        What defines the graph is shared (read-only arrays; ``extend`` copies before it adds
        agents), so a workflow run many times builds its CSR arrays once.
        """
        new = object.__new__(EventLattice)
        for name in _STRUCTURE:
            setattr(new, name, getattr(self, name))
        new._reset()
        return new

    def _reset(self) -> None:
        n = self.n
        self.signal = np.zeros(n, dtype=np.float64)
        self.state = np.zeros(n, dtype=np.int8)
        self._views()
        self._stamp = np.zeros(n, dtype=np.float64)
        self.activations = 0
        self._running = 0
        self._started = False
        self._stats = {
            "completions": 0,
            "failures": 0,
            "signal_updates": 0,
            "skipped": 0,
            "batches": 0,
        }

    # ------------------------------------------------------------------ driving

    def start(self) -> list[int]:
        """Fire the entry agents (no dependencies); call once per run."""
        if self._started:
            raise LatticeError("start() called twice on one lattice; use one lattice per run")
        self._started = True
        entries = np.flatnonzero((self.n_deps == 0) & (self.state == _WAITING))
        return self._fire(entries)

    def complete(self, agent: int) -> list[int]:
        """Record that ``agent`` completed; return the agents that fire because of it.

        One completion touches only the agent's few dependents, where numpy's per-call
        overhead would dominate; this path updates the same arrays element by element,
        through memoryviews of their buffers (a Python float or int per element, half the
        cost of a numpy scalar). Batches go through ``complete_many``'s single vector update.
        """
        self._check_index(agent)
        signal, state, threshold = self._cells
        if state[agent] != _RUNNING:
            raise LatticeError(
                f"agent {agent} completed but was not running "
                f"(state {State(int(state[agent])).name})"
            )
        state[agent] = _DONE
        self._running -= 1
        self._stats["completions"] += 1
        self._stats["batches"] += 1
        targets = self._dependents[agent]
        if not targets:
            return []
        if self._has_decay:
            self._evaporate(np.asarray(targets, dtype=np.int64))
        ready = []
        for v in targets:
            level = signal[v] + SIGNAL
            signal[v] = level
            if state[v] == _WAITING and level >= threshold[v]:
                ready.append(v)
        self._stats["signal_updates"] += len(targets)
        if not ready:
            return []
        self.activations += len(ready)
        if self.activations > self.max_activations:
            raise LatticeError(
                f"cycle guard: {self.activations} activations exceed "
                f"{self.max_activations} (3 × agents)"
            )
        for v in ready:
            state[v] = _RUNNING
        self._running += len(ready)
        return ready

    def complete_many(self, agents: Iterable[int]) -> list[int]:
        """Record a batch of completions with one vector update; return who fires."""
        ids = np.fromiter(agents, dtype=np.int64)
        if ids.size == 0:
            return []
        if ids.min() < 0 or ids.max() >= self.n:
            raise LatticeError(f"agent index out of range 0..{self.n - 1} in {ids.tolist()}")
        if np.unique(ids).size != ids.size:
            raise LatticeError(f"an agent appears twice in one batch: {ids.tolist()}")
        bad = ids[self.state[ids] != _RUNNING]
        if bad.size:
            raise LatticeError(
                f"agent {int(bad[0])} completed but was not running "
                f"(state {State(int(self.state[bad[0]])).name})"
            )
        self.state[ids] = _DONE
        self._running -= ids.size
        self._stats["completions"] += int(ids.size)
        self._stats["batches"] += 1
        # gather every completed agent's dependents from the CSR arrays in one step
        lo = self.indptr[ids]
        lens = self.indptr[ids + 1] - lo
        total = int(lens.sum())
        offsets = np.repeat(lo - (np.cumsum(lens) - lens), lens) + np.arange(total)
        targets = self.indices[offsets]
        if targets.size == 0:
            return []
        if self._has_decay:
            self._evaporate(np.unique(targets))
        np.add.at(self.signal, targets, SIGNAL)
        self._stats["signal_updates"] += int(targets.size)
        cand = np.unique(targets)
        ready = cand[(self.state[cand] == _WAITING) & (self.signal[cand] >= self.threshold[cand])]
        return self._fire(ready)

    def fail(self, agent: int) -> list[int]:
        """Record that ``agent`` failed; skip, transitively, every waiting dependent that can
        no longer fire, and return them.

        A dependent can still fire while its signal plus 0.5 for each dependency that may
        yet complete (waiting or running) reaches its threshold: with the default threshold
        (all dependencies) one failure is enough to skip it, as DESIGN.md says; a quorum
        ("any 2 of 3") skips only once too few are left. A dependent that already fired (on a
        quorum) is not walked through: what follows it waits for its own outcome. So the
        statuses depend on which agents fail, not on when.
        """
        self._check_index(agent)
        if self.state[agent] != _RUNNING:
            raise LatticeError(
                f"agent {agent} failed but was not running "
                f"(state {State(int(self.state[agent])).name})"
            )
        self.state[agent] = _FAILED
        self._running -= 1
        self._stats["failures"] += 1
        skipped: list[int] = []
        stack = [agent]
        while stack:
            for v in self._dependents[stack.pop()]:
                if self.state[v] == _WAITING and not self._can_fire(v):
                    self.state[v] = _SKIPPED
                    skipped.append(v)
                    stack.append(v)
        self._stats["skipped"] += len(skipped)
        return sorted(skipped)

    def _can_fire(self, v: int) -> bool:
        """Whether ``v``'s signal may still reach its threshold (decay aside: the signal as
        last deposited, an upper bound — what never fires is skipped by ``finish``)."""
        alive = sum(1 for u in self._dependencies[v] if self.state[u] in (_WAITING, _RUNNING))
        return bool(self.signal[v] + SIGNAL * alive >= self.threshold[v])

    def extend(self, dependencies: Sequence[Sequence[int]]) -> tuple[list[int], list[int]]:
        """Add agents (a coordinator's plan steps) to a running lattice.

        ``dependencies`` index the whole lattice, new agents included. Returns the new agents'
        indices and those among them that fire at once (no dependencies).
        """
        start = self.n
        deps = [list(dict.fromkeys(d)) for d in dependencies]
        n = start + len(deps)
        for d in deps:
            for u in d:
                if not 0 <= u < n:
                    raise LatticeError(f"dependency index {u} out of range 0..{n - 1}")
        self._dependents = [*map(list, self._dependents), *([] for _ in deps)]  # may be shared
        self._dependencies = [*self._dependencies, *deps]
        for k, d in enumerate(deps):
            for u in d:
                self._dependents[u].append(start + k)
        self.n = n
        self.n_deps = np.concatenate([self.n_deps, np.fromiter(map(len, deps), np.int64)])
        self.threshold = np.concatenate([self.threshold, SIGNAL * self.n_deps[start:]])
        self.signal = np.concatenate([self.signal, np.zeros(len(deps))])
        self.state = np.concatenate([self.state, np.zeros(len(deps), dtype=np.int8)])
        self.decay = np.concatenate([self.decay, np.zeros(len(deps))])
        self._stamp = np.concatenate([self._stamp, np.zeros(len(deps))])
        sizes = np.fromiter((len(d) for d in self._dependents), dtype=np.int64, count=n)
        self.indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(sizes, out=self.indptr[1:])
        self.indices = np.fromiter(
            (v for d in self._dependents for v in d), dtype=np.int64, count=int(self.indptr[-1])
        )
        self.max_activations += 3 * len(deps)
        self._views()
        new = list(range(start, n))
        ready = np.asarray([i for i in new if self.n_deps[i] == 0], dtype=np.int64)
        return new, self._fire(ready)

    def unfire(self, count: int) -> None:
        """Undo the bookkeeping of ``count`` activations the caller put back to waiting
        (a run being stopped does not start what just became ready)."""
        self._running -= count
        self.activations -= count

    def finish(self) -> list[int]:
        """Once nothing runs, mark agents that never fired as skipped and return them."""
        if self._running:
            raise LatticeError(f"finish() while {self._running} agents are running")
        rest = np.flatnonzero(self.state == _WAITING)
        self.state[rest] = _SKIPPED
        self._stats["skipped"] += int(rest.size)
        return rest.tolist()

    # ------------------------------------------------------------------ reading

    @property
    def running(self) -> int:
        return self._running

    @property
    def finished(self) -> bool:
        """True once started and no agent is running (so none can fire any more)."""
        return self._started and self._running == 0

    def status(self, agent: int) -> State:
        return State(int(self.state[agent]))

    def dependents(self, agent: int) -> list[int]:
        return list(self._dependents[agent])

    def statistics(self) -> dict[str, Any]:
        counts = np.bincount(self.state, minlength=len(State))
        return {
            "agents": self.n,
            "edges": int(self.indices.size),
            "activations": self.activations,
            **self._stats,
            **dict(zip(_STATE_NAMES, counts.tolist(), strict=False)),
        }

    # ------------------------------------------------------------------ internals

    def _check_index(self, agent: int) -> None:
        if not 0 <= agent < self.n:
            raise LatticeError(f"agent index {agent} out of range 0..{self.n - 1}")

    def _fire(self, ready: npt.NDArray[np.int64]) -> list[int]:
        if ready.size == 0:
            return []
        self.activations += int(ready.size)
        if self.activations > self.max_activations:
            raise LatticeError(
                f"cycle guard: {self.activations} activations exceed "
                f"{self.max_activations} (3 × agents)"
            )
        self.state[ready] = _RUNNING
        self._running += int(ready.size)
        return ready.tolist()

    def _views(self) -> None:
        """Element access to signal, state and threshold for ``complete`` (same buffers)."""
        self._cells = (memoryview(self.signal), memoryview(self.state), memoryview(self.threshold))

    def _evaporate(self, targets: npt.NDArray[np.int64]) -> None:
        now = self._clock()
        rate = self.decay[targets]
        dt = now - self._stamp[targets]
        has = (rate > 0) & (self.signal[targets] > 0)
        self.signal[targets] = np.where(
            has, self.signal[targets] * np.exp(-rate * dt), self.signal[targets]
        )
        self._stamp[targets] = now
