"""Capability auctions: give each task to the best agent that can take it, one task at a time.

This module knows agents (capabilities, load, remaining token budget), tasks (required
capabilities, estimated tokens, load) and the rule that pairs them. It does not know what a
task or an agent does, nor where the numbers come from (the runtime's budgets and mailboxes).

The rule, exactly (``tests/coordination/reference.py`` implements it as a plain loop):

- An agent may bid for a task when its capabilities include every required one, its remaining
  budget covers the task's tokens (``budget >= tokens``) and the task's load fits
  (``load + task.load <= capacity``).
- Its bid is ``score = w_load * (1 - load / capacity) + w_budget * (budget / initial_budget)``:
  spare capacity and remaining budget, both as fractions, weighted.
- Tasks are auctioned in order. The highest score wins; on a tie, the lowest agent index. The
  winner's load grows by the task's load and its budget shrinks by the task's tokens before the
  next task is auctioned. A task nobody may bid for is reported, with the reason, never dropped.

How it is fast. Agent state lives in numpy arrays that auctions update in place. Capabilities
are bit-packed twice: per agent (``uint64`` words over capabilities, any number of them) and per
capability (``uint64`` words over agents), so the agents able to take each task — all tasks at
once, task-major — are a few word-wise ANDs, and their number one popcount. Tasks few agents can
take scan those agents. For the others, agents are ranked by score once per *round*; since a
score only ever falls, the first capable, eligible agent in that ranking that has not won since
the round began is the winner, unless an agent that has won since scores higher, and those few
are checked one by one. A task that runs off the end of its prefix of the ranking is settled
over all its capable agents with numpy, and a few of those start a new round.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter

import numpy as np
from numpy.typing import NDArray

from axo.errors import UsageError

_RARE = 48  # tasks at most this many agents can take scan them all
_PREFIX = 512  # agents per round's ranking
_WINDOW = 256  # common tasks per round
_FALLBACKS = 8  # full evaluations that start a new round


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent as the auction sees it. ``initial_budget`` defaults to ``budget``."""

    name: str
    capabilities: frozenset[str]
    budget: float
    initial_budget: float | None = None
    load: float = 0.0
    capacity: float = 1.0


@dataclass(frozen=True, slots=True)
class Task:
    """A task to auction: what it requires, its estimated tokens, the load it adds."""

    name: str
    requires: frozenset[str] = frozenset()
    tokens: float = 0.0
    load: float = 1.0


@dataclass(frozen=True, slots=True)
class Award:
    """Task ``task`` (index in the auctioned list) went to agent ``agent`` with ``score``."""

    task: int
    agent: int
    score: float


@dataclass(frozen=True, slots=True)
class Unassigned:
    """Task ``task`` could not be given to anyone, and why."""

    task: int
    reason: str


@dataclass(frozen=True)
class AuctionResult:
    """The outcome: ``winners[i]`` is the agent index for task ``i``, or -1."""

    winners: NDArray[np.int64]
    scores: NDArray[np.float64]
    unassigned: tuple[Unassigned, ...]

    @property
    def awards(self) -> tuple[Award, ...]:
        return tuple(
            Award(t, int(a), float(s))
            for t, (a, s) in enumerate(zip(self.winners, self.scores, strict=True))
            if a >= 0
        )


@dataclass(frozen=True, slots=True)
class AuctionStatistics:
    """Counters since the auctioneer was made.

    ``rounds`` counts rankings built, ``fallbacks`` full evaluations of one task, ``scanned``
    agents looked at one by one.
    """

    auctions: int
    tasks: int
    awarded: int
    unassigned: int
    rounds: int
    fallbacks: int
    scanned: int
    seconds: float


@dataclass
class _Tasks:
    """One auction's tasks, encoded: who can take each, and the numbers the rule reads."""

    capable: NDArray[np.uint64]  # [tasks, agent words]
    count: NDArray[np.int64]  # capable agents per task
    unknown: list[str | None]  # a required capability no agent has
    tokens: list[float]
    load: list[float]
    rare: list[bool]
    rare_ptr: list[int]  # rare task t: its capable agents are rare_agents[ptr[t]:ptr[t+1]]
    rare_agents: list[int]
    common: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))


class Auctioneer:
    """Runs auctions over a fixed set of agents whose load and budget it keeps."""

    def __init__(
        self, agents: Sequence[Agent], *, w_load: float = 0.5, w_budget: float = 0.5
    ) -> None:
        if not all(math.isfinite(w) and w >= 0 for w in (w_load, w_budget)):
            raise UsageError("w_load and w_budget must be finite and not negative")
        names = [a.name for a in agents]
        if len(set(names)) != len(names):
            raise UsageError("agent names must be unique")
        for a in agents:
            initial = a.budget if a.initial_budget is None else a.initial_budget
            if not (a.capacity > 0 and initial > 0 and a.budget >= 0 and a.load >= 0):
                raise UsageError(
                    f"agent {a.name!r}: capacity and initial budget must be positive, "
                    "budget and load not negative"
                )
        self._names = tuple(names)
        self._index = {n: i for i, n in enumerate(names)}
        self._w = (float(w_load), float(w_budget))
        vocab = sorted({c for a in agents for c in a.capabilities})
        self._capability = {c: i for i, c in enumerate(vocab)}
        n, words = len(agents), max(1, -(-len(vocab) // 64))
        has = np.zeros((n, words * 64), bool)
        rows = np.repeat(np.arange(n), [len(a.capabilities) for a in agents])
        cols = [self._capability[c] for a in agents for c in a.capabilities]
        has[rows, cols] = True
        self._caps = _pack(has)  # [agents, capability words]: each agent's capabilities
        agent_words = max(1, -(-n // 64))
        by_cap = np.zeros((words * 64 + 1, agent_words * 64), bool)
        by_cap[:-1, :n] = has.T
        by_cap[-1, :n] = True  # a row every agent has, to pad requirement lists
        self._by_cap = _pack(by_cap)  # [capabilities + 1, agent words]: who has each
        self._load = np.array([a.load for a in agents], np.float64)
        self._capacity = np.array([a.capacity for a in agents], np.float64)
        self._budget = np.array([a.budget for a in agents], np.float64)
        self._initial = np.array(
            [a.budget if a.initial_budget is None else a.initial_budget for a in agents],
            np.float64,
        )
        self._score = self._scores()
        self._stats = dict.fromkeys(AuctionStatistics.__slots__, 0)
        self._stats["seconds"] = 0.0

    # --- state -----------------------------------------------------------------------------

    @property
    def agents(self) -> tuple[str, ...]:
        return self._names

    @property
    def capabilities(self) -> tuple[str, ...]:
        """Every capability some agent has, in bit order."""
        return tuple(self._capability)

    @property
    def capability_masks(self) -> NDArray[np.uint64]:
        """Each agent's capabilities as ``uint64`` words (bit ``i`` = ``capabilities[i]``)."""
        return self._caps

    @property
    def loads(self) -> NDArray[np.float64]:
        return _readonly(self._load)

    @property
    def budgets(self) -> NDArray[np.float64]:
        return _readonly(self._budget)

    def release(self, agent: str, load: float) -> None:
        """Lower ``agent``'s load by ``load`` (its task is done), not below zero."""
        i = self._index[agent]
        self._load[i] = max(0.0, float(self._load[i]) - load)
        w_load, w_budget = self._w
        self._score[i] = w_load * (1.0 - float(self._load[i]) / float(self._capacity[i])) + (
            w_budget * (float(self._budget[i]) / float(self._initial[i]))
        )

    def statistics(self) -> AuctionStatistics:
        return AuctionStatistics(**self._stats)

    def _scores(self) -> NDArray[np.float64]:
        w_load, w_budget = self._w
        return w_load * (1.0 - self._load / self._capacity) + w_budget * (
            self._budget / self._initial
        )

    # --- the auction -----------------------------------------------------------------------

    def auction(self, tasks: Sequence[Task]) -> AuctionResult:
        """Auction ``tasks`` in order, updating the winners' load and budget as it goes."""
        start = time.perf_counter()
        enc = self._encode(tasks)
        winners, scores = _Run(self, enc).run()
        unassigned = tuple(
            Unassigned(t, self._why(enc, t)) for t in np.flatnonzero(winners < 0).tolist()
        )
        s = self._stats
        s["auctions"] += 1
        s["tasks"] += len(tasks)
        s["unassigned"] += len(unassigned)
        s["awarded"] += len(tasks) - len(unassigned)
        s["seconds"] += time.perf_counter() - start
        return AuctionResult(winners, scores, unassigned)

    def _why(self, enc: _Tasks, t: int) -> str:
        if enc.unknown[t] is not None:
            return f"no agent has capability {enc.unknown[t]!r}"
        if enc.count[t] == 0:
            return "no agent has all the required capabilities"
        return (
            f"all {enc.count[t]} capable agents lack budget ({enc.tokens[t]:g} tokens) "
            f"or capacity ({enc.load[t]:g} load)"
        )

    def _encode(self, tasks: Sequence[Task]) -> _Tasks:
        n_tasks = len(tasks)
        pad = len(self._by_cap) - 1
        cache: dict[frozenset[str], tuple[int, ...]] = {}
        unknown: list[str | None] = [None] * n_tasks
        index = self._capability
        reqs = []
        for t, need in enumerate(map(attrgetter("requires"), tasks)):
            idx = cache.get(need)
            if idx is None:
                idx = cache[need] = tuple(index.get(c, -1) for c in sorted(need))
            if -1 in idx:
                unknown[t] = next(c for c in sorted(need) if c not in index)
            reqs.append(idx)
        lens = np.fromiter(map(len, reqs), np.int64, n_tasks)
        width = max(1, int(lens.max()) if n_tasks else 1)
        need_idx = np.full((n_tasks, width), pad, np.int64)
        flat = np.fromiter(chain.from_iterable(reqs), np.int64, int(lens.sum()))
        rows = np.repeat(np.arange(n_tasks), lens)
        need_idx[rows, np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens)] = flat
        need_idx[need_idx < 0] = pad
        capable = self._by_cap[need_idx[:, 0]]
        for k in range(1, width):
            capable &= self._by_cap[need_idx[:, k]]
        capable[[u is not None for u in unknown]] = 0
        count = np.bitwise_count(capable).sum(axis=1, dtype=np.int64)
        rare = count <= _RARE
        # capable agents of rare tasks, in agent order: unpack only their non-zero words
        rr = np.flatnonzero(rare)
        sub = capable[rr]
        ri, wi = np.nonzero(sub)
        bits = np.unpackbits(sub[ri, wi].view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
        bi, bj = np.nonzero(bits)
        ptr = np.zeros(n_tasks + 1, np.int64)
        ptr[1:] = np.cumsum(np.bincount(rr[ri[bi]], minlength=n_tasks))
        return _Tasks(
            capable=capable,
            count=count,
            unknown=unknown,
            tokens=list(map(float, map(attrgetter("tokens"), tasks))),
            load=list(map(float, map(attrgetter("load"), tasks))),
            rare=rare.tolist(),
            rare_ptr=ptr.tolist(),
            rare_agents=(wi[bi] * 64 + bj).tolist(),
            common=np.flatnonzero(~rare),
        )


class _Run:
    """One auction over encoded tasks; mutates the auctioneer's arrays as awards are made."""

    def __init__(self, auctioneer: Auctioneer, enc: _Tasks) -> None:
        self.a = auctioneer
        self.enc = enc
        self.load = auctioneer._load.tolist()
        self.budget = auctioneer._budget.tolist()
        self.capacity = auctioneer._capacity.tolist()
        self.initial = auctioneer._initial.tolist()
        self.score = auctioneer._score.tolist()
        self.rounds = self.fallbacks = self.scanned = 0

    def _rank(self, start: int) -> tuple[list[int], list[int], int]:
        """A round: the top agents by score, and for the next common tasks the capable ones
        among them in rank order (agent lists, row pointers, first common position)."""
        a, enc = self.a, self.enc
        score = a._score
        n = len(score)
        size = min(n, _PREFIX)
        if size < n:
            part = np.argpartition(-score, size - 1)[:size]
            cand = np.flatnonzero(score >= score[part].min())
        else:
            cand = np.arange(n)
        top = cand[np.lexsort((cand, -score[cand]))][:size]
        tasks = enc.common[start : start + _WINDOW]
        shift = (top & 63).astype(np.uint64)
        hit = (enc.capable[tasks][:, top >> 6] >> shift) & np.uint64(1)
        flat = np.flatnonzero(hit.ravel())
        rows, cols = np.divmod(flat, size)
        ptr = np.zeros(len(tasks) + 1, np.int64)
        ptr[1:] = np.cumsum(np.bincount(rows, minlength=len(tasks)))
        self.rounds += 1
        return top[cols].tolist(), ptr.tolist(), size

    def _settle(self, t: int, tokens: float, load: float) -> int:
        """Exact winner of task ``t`` over all its capable agents, with numpy."""
        a = self.a
        words = self.enc.capable[t]
        nz = np.flatnonzero(words)
        bits = np.unpackbits(words[nz].view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
        i, j = np.nonzero(bits)
        cand = nz[i] * 64 + j
        ok = (a._budget[cand] >= tokens) & (a._load[cand] + load <= a._capacity[cand])
        masked = np.where(ok, a._score[cand], -np.inf)
        k = int(masked.argmax()) if len(cand) else 0
        self.fallbacks += 1
        return int(cand[k]) if len(cand) and ok[k] else -1

    def run(self) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        a, enc = self.a, self.enc
        w_load, w_budget = a._w
        load_l, budget_l, cap_l, init_l, score_l = (
            self.load,
            self.budget,
            self.capacity,
            self.initial,
            self.score,
        )
        load_a, budget_a, score_a = a._load, a._budget, a._score
        n_tasks = len(enc.tokens)
        winners = [-1] * n_tasks
        won = [0.0] * n_tasks
        rare, rare_ptr, rare_agents = enc.rare, enc.rare_ptr, enc.rare_agents
        n_common = len(enc.common)
        common_pos = 0  # how many common tasks have been auctioned
        round_end = -1
        lists: list[int] = []
        ptr: list[int] = []
        base = size = 0
        fallbacks = 0
        changed: set[int] = set()  # agents whose score fell since the round's ranking
        scanned = 0
        for t in range(n_tasks):
            tokens, load = enc.tokens[t], enc.load[t]
            best, best_score = -1, -math.inf
            if rare[t]:
                for i in rare_agents[rare_ptr[t] : rare_ptr[t + 1]]:
                    if budget_l[i] >= tokens and load_l[i] + load <= cap_l[i]:
                        s = score_l[i]
                        if s > best_score:
                            best, best_score = i, s
                scanned += rare_ptr[t + 1] - rare_ptr[t]
            else:
                if common_pos >= round_end or fallbacks >= _FALLBACKS:
                    lists, ptr, size = self._rank(common_pos)
                    base, round_end = common_pos, min(n_common, common_pos + _WINDOW)
                    changed, fallbacks = set(), 0
                j = common_pos - base
                common_pos += 1
                settled = False
                for i in lists[ptr[j] : ptr[j + 1]]:
                    scanned += 1
                    if budget_l[i] >= tokens and load_l[i] + load <= cap_l[i]:
                        s = score_l[i]
                        if s > best_score or (s == best_score and i < best):
                            best, best_score = i, s
                        if i not in changed:
                            settled = True  # nobody after it in the ranking can beat it
                            break
                if not settled and size < len(score_l):
                    best = self._settle(t, tokens, load)
                    best_score = score_l[best] if best >= 0 else -math.inf
                    fallbacks += 1
            if best >= 0:
                new_load = load_l[best] + load
                new_budget = budget_l[best] - tokens
                s = w_load * (1.0 - new_load / cap_l[best]) + w_budget * (new_budget / init_l[best])
                load_l[best], budget_l[best], score_l[best] = new_load, new_budget, s
                load_a[best], budget_a[best], score_a[best] = new_load, new_budget, s
                changed.add(best)
                winners[t], won[t] = best, best_score
        self.scanned = scanned
        stats = a._stats
        stats["rounds"] += self.rounds
        stats["fallbacks"] += self.fallbacks
        stats["scanned"] += scanned
        return np.array(winners, np.int64), np.array(won, np.float64)


def _pack(bits: NDArray[np.bool_]) -> NDArray[np.uint64]:
    """Pack rows of booleans (length a multiple of 64) into little-endian ``uint64`` words."""
    return np.ascontiguousarray(np.packbits(bits, axis=1, bitorder="little")).view(np.uint64)


def _readonly(a: NDArray[np.float64]) -> NDArray[np.float64]:
    view = a.view()
    view.flags.writeable = False
    return view
