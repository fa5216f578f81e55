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

How it is fast. Agent state lives in numpy arrays that auctions update in place, scores
included. Capabilities are bit-packed twice: per agent (``uint64`` words over capabilities, any
number of them) and per capability (``uint64`` words over agents), so the agents able to take a
task are the word-wise AND of its capabilities' rows. An auction then takes one of two paths,
which give the same floats (both compare scores computed by the same operations in the same
order as the rule):

- Big auctions (agents × tasks at least ``_COMPILED_FROM``) run a kernel compiled by numba
  (``_auction_kernel``): for each task in order, the set bits of that AND, in agent order, the
  first strictly highest eligible score winning — the rule as a plain loop, over the capable
  agents only, at a few nanoseconds an agent. numba is imported, and the kernel loaded from its
  on-disk cache, on the first such auction in a process: a few hundred milliseconds, once (a
  couple of seconds the first time on a machine, which compiles the kernel).
- Smaller auctions stay in numpy and Python, so that ``import axo`` and a workflow's few-agent
  auctions never load numba. The capable agents of all tasks are found at once (task-major) and
  counted with one popcount; then each task walks a list of its capable agents in order of
  score: scores only fall, so the first eligible agent whose score has not fallen since the list
  was ordered wins, unless an agent that has won since still scores higher, and those are
  compared as they come. Tasks few agents can take get the whole list, ordered as the auction
  starts; the others get the capable agents among the top scorers, re-ranked every few hundred
  tasks, and fall back to numpy over all their capable agents when that prefix runs out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import attrgetter

import numpy as np
from numpy.typing import NDArray

from axo.errors import UsageError

# agents × tasks from which an auction runs the compiled kernel. Smaller ones (a workflow's few
# agents and steps) stay on the numpy path, which costs them far less than importing numba and
# loading the kernel, a few hundred milliseconds once per process.
_COMPILED_FROM = 100_000
# the numpy path's shortcuts
_RARE = 48  # tasks at most this many agents can take scan them all
_PREFIX = 256  # agents per round's ranking
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
    """The outcome: ``winners[i]`` is the agent index for task ``i`` (-1: nobody), ``scores[i]``
    the winning bid. ``awards`` and ``unassigned`` are built when first asked for."""

    winners: NDArray[np.int64]
    scores: NDArray[np.float64]
    _tasks: _Tasks = field(repr=False, compare=False)
    _capable: NDArray[np.int64] = field(repr=False, compare=False)  # agents able, per task

    @property
    def unassigned(self) -> tuple[Unassigned, ...]:
        enc, capable = self._tasks, self._capable
        return tuple(
            Unassigned(t, enc.why(t, int(capable[t])))
            for t in np.flatnonzero(self.winners < 0).tolist()
        )

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

    ``rounds`` counts rankings built, ``fallbacks`` full evaluations of one task (both on the
    numpy path only), ``scanned`` agents looked at one by one (on the compiled path, every
    capable agent of every task).
    """

    auctions: int
    tasks: int
    awarded: int
    unassigned: int
    rounds: int
    fallbacks: int
    scanned: int
    seconds: float


@dataclass(frozen=True)
class _Tasks:
    """One auction's tasks, encoded: the capabilities each requires and the numbers the rule
    reads."""

    needs: NDArray[np.int64]  # every task's required capabilities, task after task (-1: unknown)
    ptr: NDArray[np.int64]  # task t requires needs[ptr[t]:ptr[t + 1]]
    tokens: NDArray[np.float64]
    load: NDArray[np.float64]
    requires: list[frozenset[str]]  # as given, to explain misses
    known: dict[str, int]  # the auctioneer's capabilities

    def why(self, t: int, capable: int) -> str:
        """Why nobody could take task ``t``, which ``capable`` agents had the capabilities for."""
        unknown = [c for c in self.requires[t] if c not in self.known]
        if unknown:
            return f"no agent has capability {min(unknown)!r}"
        if capable == 0:
            return "no agent has all the required capabilities"
        return (
            f"all {capable} capable agents lack budget ({self.tokens[t]:g} tokens) "
            f"or capacity ({self.load[t]:g} load)"
        )


@dataclass
class _Candidates:
    """The numpy path's view of one auction's tasks: who can take each, in which order to look."""

    capable: NDArray[np.uint64]  # [tasks, agent words]
    count: NDArray[np.int64]  # capable agents per task
    rare: list[bool]
    rare_ptr: list[int]  # rare task t: its capable agents, best score first, are
    # rare_agents[ptr[t]:ptr[t+1]] (scores as the auction began)
    rare_agents: list[int]
    common: NDArray[np.int64]


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
        by_cap = np.zeros((words * 64 + 2, agent_words * 64), bool)
        by_cap[:-2, :n] = has.T
        by_cap[-2, :n] = True  # a row every agent has, to pad requirement lists
        # and the last row, nobody's, is the one unknown capabilities (index -1) read
        self._by_cap = _pack(by_cap)  # [capabilities + 2, agent words]: who has each
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

    def auction(self, tasks: Sequence[Task], *, compiled: bool | None = None) -> AuctionResult:
        """Auction ``tasks`` in order, updating the winners' load and budget as it goes.

        ``compiled`` chooses the path: None by size (``_COMPILED_FROM``), False numpy only —
        for a caller that must not wait for numba to load (an actor's message handler) —, True
        the compiled kernel. Both give the same result.

        Raises:
            UsageError: a task has negative tokens or load.
        """
        start = time.perf_counter()
        enc = self._encode(tasks)
        if compiled is None:
            compiled = _compiled(len(self._names), len(tasks))
        if compiled:
            winners, scores, capable = self._run_compiled(enc)
        else:
            winners, scores, capable = self._run_numpy(enc)
        missed = int(np.count_nonzero(winners < 0))
        s = self._stats
        s["auctions"] += 1
        s["tasks"] += len(tasks)
        s["unassigned"] += missed
        s["awarded"] += len(tasks) - missed
        s["seconds"] += time.perf_counter() - start
        return AuctionResult(winners, scores, enc, capable)

    def _encode(self, tasks: Sequence[Task]) -> _Tasks:
        """Read the tasks into the arrays both paths take (one pass over them in C loops)."""
        n_tasks = len(tasks)
        requires = list(map(attrgetter("requires"), tasks))
        ptr = np.zeros(n_tasks + 1, np.int64)
        np.cumsum(np.fromiter(map(len, requires), np.int64, n_tasks), out=ptr[1:])
        names = chain.from_iterable(requires)  # unknown capabilities become -1
        needs = np.fromiter(map(self._capability.get, names, repeat(-1)), np.int64, int(ptr[-1]))
        tokens = np.fromiter(map(attrgetter("tokens"), tasks), np.float64, n_tasks)
        load = np.fromiter(map(attrgetter("load"), tasks), np.float64, n_tasks)
        if not ((tokens >= 0).all() and (load >= 0).all()):  # NaN too
            raise UsageError("a task's tokens and load must not be negative")
        return _Tasks(needs, ptr, tokens, load, requires, self._capability)

    def _run_compiled(
        self, enc: _Tasks
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
        """The auction by the compiled kernel; imports numba on the first call in a process."""
        from axo.coordination import _auction_kernel

        w_load, w_budget = self._w
        winners, scores, capable = _auction_kernel.auction(
            self._by_cap,
            enc.needs,
            enc.ptr,
            enc.tokens,
            enc.load,
            self._load,
            self._capacity,
            self._budget,
            self._initial,
            self._score,
            w_load,
            w_budget,
        )
        self._stats["scanned"] += int(capable.sum())
        return winners, scores, capable

    def _run_numpy(
        self, enc: _Tasks
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
        """The auction in numpy and Python, for auctions too small to repay loading numba."""
        cands = self._candidates(enc)
        winners, scores = _Run(self, enc, cands).run()
        return winners, scores, cands.count

    def _candidates(self, enc: _Tasks) -> _Candidates:
        """Who can take each task (all at once), and the rare tasks' agents in order of bid."""
        n_tasks = len(enc.tokens)
        lens = np.diff(enc.ptr)
        width = max(1, int(lens.max()) if n_tasks else 1)
        need_idx = np.full((n_tasks, width), len(self._by_cap) - 2, np.int64)  # pad: everyone
        rows = np.repeat(np.arange(n_tasks), lens)
        need_idx[rows, np.arange(len(enc.needs)) - enc.ptr[rows]] = enc.needs
        capable = self._by_cap[need_idx[:, 0]]
        for k in range(1, width):
            capable &= self._by_cap[need_idx[:, k]]
        count = np.bitwise_count(capable).sum(axis=1, dtype=np.int64)
        rare = count <= _RARE
        # agents able to take each rare task: the set bits of its non-zero words
        rr = np.flatnonzero(rare)
        sub = capable[rr]
        nz = np.flatnonzero(sub)
        owner, agents = _set_bits(sub.ravel()[nz], nz)
        owner, agents = rr[owner // sub.shape[1]], agents + (owner % sub.shape[1]) * 64
        # best bid first (ties: lowest index); a (task, agent) pair occurs once, so one key
        n_agents = len(self._score)
        by_bid = np.argsort(-self._score, kind="stable")
        rank = np.empty(n_agents, np.int64)
        rank[by_bid] = np.arange(n_agents)
        agents = by_bid[np.sort(owner * n_agents + rank[agents]) % max(n_agents, 1)]
        ptr = np.zeros(n_tasks + 1, np.int64)
        ptr[1:] = np.cumsum(np.bincount(owner, minlength=n_tasks))
        return _Candidates(
            capable=capable,
            count=count,
            rare=rare.tolist(),
            rare_ptr=ptr.tolist(),
            rare_agents=agents.tolist(),
            common=np.flatnonzero(~rare),
        )


def _compiled(n_agents: int, n_tasks: int) -> bool:
    """Whether an auction this big runs the compiled kernel rather than the numpy path."""
    return n_agents * n_tasks >= _COMPILED_FROM


def _set_bits(
    words: NDArray[np.uint64], where: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """For each set bit of each word: (``where`` of its word, bit position), lowest bit first."""
    owners, bits = [], []
    left, at = words.copy(), where
    one = np.uint64(1)
    while len(left):
        low = left & (~left + one)  # the lowest set bit alone
        owners.append(at)
        bits.append(np.log2(low.astype(np.float64)).astype(np.int64))  # exact: a power of two
        left = left ^ low
        keep = left != 0
        left, at = left[keep], at[keep]
    if not owners:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(owners), np.concatenate(bits)


class _Run:
    """One auction on the numpy path; updates the auctioneer's arrays as it awards.

    Candidate lists are in order of score as of some moment (the auction's start for rare
    tasks, the round's start for the others). Walking one, the first eligible agent whose score
    has not fallen since that moment settles the task: every agent after it scored at most as
    much then, and scores only fall. Agents whose score has fallen are compared on their
    current score until then.
    """

    def __init__(self, auctioneer: Auctioneer, enc: _Tasks, cands: _Candidates) -> None:
        self.a = auctioneer
        self.cands = cands
        self.tokens = enc.tokens.tolist()
        self.task_load = enc.load.tolist()
        self.load = auctioneer._load.tolist()
        self.budget = auctioneer._budget.tolist()
        self.capacity = auctioneer._capacity.tolist()
        self.initial = auctioneer._initial.tolist()
        self.score = auctioneer._score.tolist()
        self.unsynced: set[int] = set()  # agents whose arrays lag the lists above
        self.rounds = self.fallbacks = 0

    def _sync(self) -> None:
        """Write the awards made so far into the auctioneer's arrays."""
        if self.unsynced:
            idx = list(self.unsynced)
            a = self.a
            a._load[idx] = [self.load[i] for i in idx]
            a._budget[idx] = [self.budget[i] for i in idx]
            a._score[idx] = [self.score[i] for i in idx]
            self.unsynced.clear()

    def _rank(self, start: int) -> tuple[list[int], list[int], int]:
        """A round: the top agents by score now and, for the next common tasks, the capable
        ones among them in that order (agent lists, row pointers, how many were ranked)."""
        self._sync()
        score, cands = self.a._score, self.cands
        n = len(score)
        size = min(n, _PREFIX)
        if size < n:
            part = np.argpartition(-score, size - 1)[:size]
            cand = np.flatnonzero(score >= score[part].min())
        else:
            cand = np.arange(n)
        top = cand[np.lexsort((cand, -score[cand]))][:size]
        tasks = cands.common[start : start + _WINDOW]
        bits = np.unpackbits(cands.capable[tasks].view(np.uint8), axis=1, bitorder="little")
        rows, cols = np.divmod(np.flatnonzero(bits[:, top].ravel()), size)
        ptr = np.zeros(len(tasks) + 1, np.int64)
        ptr[1:] = np.cumsum(np.bincount(rows, minlength=len(tasks)))
        self.rounds += 1
        return top[cols].tolist(), ptr.tolist(), size

    def _settle(self, t: int, tokens: float, load: float) -> int:
        """Exact winner of task ``t`` over all its capable agents, with numpy."""
        self._sync()
        a = self.a
        words = self.cands.capable[t]
        cand = np.flatnonzero(np.unpackbits(words.view(np.uint8), bitorder="little"))
        ok = (a._budget[cand] >= tokens) & (a._load[cand] + load <= a._capacity[cand])
        masked = np.where(ok, a._score[cand], -np.inf)
        k = int(masked.argmax()) if len(cand) else 0
        self.fallbacks += 1
        return int(cand[k]) if len(cand) and ok[k] else -1

    def run(self) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        a, cands = self.a, self.cands
        w_load, w_budget = a._w
        load_l, budget_l, cap_l, init_l = self.load, self.budget, self.capacity, self.initial
        score_l, unsynced = self.score, self.unsynced
        tokens_l, loads_l = self.tokens, self.task_load
        n_agents, n_tasks = len(score_l), len(tokens_l)
        winners = [-1] * n_tasks
        won = [0.0] * n_tasks
        rare, rare_ptr, rare_agents = cands.rare, cands.rare_ptr, cands.rare_agents
        n_common = len(cands.common)
        common_pos = 0  # common tasks auctioned so far
        round_end = -1
        lists: list[int] = []
        ptr: list[int] = []
        base = size = fallbacks = scanned = 0
        since_start: set[int] = set()  # agents whose score fell since the auction began
        since_round: set[int] = set()  # ... since the current round's ranking
        for t in range(n_tasks):
            tokens, load = tokens_l[t], loads_l[t]
            best, best_score = -1, -math.inf
            if rare[t]:
                cands = rare_agents[rare_ptr[t] : rare_ptr[t + 1]]
                changed, complete = since_start, True
            else:
                if common_pos >= round_end or fallbacks >= _FALLBACKS:
                    lists, ptr, size = self._rank(common_pos)
                    base, round_end = common_pos, min(n_common, common_pos + _WINDOW)
                    since_round, fallbacks = set(), 0
                j = common_pos - base
                common_pos += 1
                cands = lists[ptr[j] : ptr[j + 1]]
                changed, complete = since_round, size >= n_agents
            settled = False
            for i in cands:
                scanned += 1
                if budget_l[i] >= tokens and load_l[i] + load <= cap_l[i]:
                    s = score_l[i]
                    if s > best_score or (s == best_score and i < best):
                        best, best_score = i, s
                    if i not in changed:
                        settled = True
                        break
            if not settled and not complete:
                best = self._settle(t, tokens, load)
                best_score = score_l[best] if best >= 0 else -math.inf
                fallbacks += 1
            if best >= 0:
                new_load = load_l[best] + load
                new_budget = budget_l[best] - tokens
                load_l[best], budget_l[best] = new_load, new_budget
                score_l[best] = w_load * (1.0 - new_load / cap_l[best]) + w_budget * (
                    new_budget / init_l[best]
                )
                since_start.add(best)
                since_round.add(best)
                unsynced.add(best)
                winners[t], won[t] = best, best_score
        self._sync()
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
