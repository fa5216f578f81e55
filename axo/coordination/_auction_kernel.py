"""The auction rule compiled by numba: one pass over each task's capable agents.

``auction.py`` imports this module only for auctions big enough to repay it: importing numba and
loading this kernel take a few hundred milliseconds per process, so ``import axo`` and the small
auctions of a running workflow never load numba.

The kernel is the rule exactly as ``tests/coordination/reference.py`` writes it — agents in index
order, a strictly higher score replaces the best so far, so ties stay with the lowest index — but
over the set bits of the AND of the task's capability rows rather than over every agent, and
reading each agent's score as kept up to date rather than recomputing it. It is compiled without
``fastmath`` and computes a score with the same operations in the same order as the reference,
so every bid, winner, load and budget is the same float.

Compiled code is cached on disk (``cache=True``): in ``__pycache__`` beside this file, else in the
user's cache directory (or ``NUMBA_CACHE_DIR``). Where none of them is writable numba refuses to
cache, and the kernel is compiled in memory instead, once per process: slower to start, same
result, no warning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros
from numpy.typing import NDArray


def _jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` compiled on first call, cached on disk when there is somewhere writable."""
    try:
        return njit(cache=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(fn)


@_jit
def _best_bid(
    who: NDArray[np.uint64],
    needs: NDArray[np.int64],
    first: int,
    end: int,
    tokens: float,
    task_load: float,
    load: NDArray[np.float64],
    capacity: NDArray[np.float64],
    budget: NDArray[np.float64],
    score: NDArray[np.float64],
) -> tuple[int, float, int]:
    """(best agent or -1, its score, how many agents are capable) for a task requiring
    capability rows ``needs[first:end]``."""
    best, best_score, capable = -1, -np.inf, 0
    one = np.uint64(1)
    for k in range(who.shape[1]):
        word = who[-2, k]  # every agent
        for r in range(first, end):
            word &= who[needs[r], k]
        while word:
            i = k * 64 + np.int64(trailing_zeros(word))
            word &= word - one  # clear the lowest set bit: agents come in index order
            capable += 1
            if budget[i] >= tokens and load[i] + task_load <= capacity[i] and score[i] > best_score:
                best, best_score = i, score[i]
    return best, best_score, capable


@_jit
def auction(
    who: NDArray[np.uint64],
    needs: NDArray[np.int64],
    ptr: NDArray[np.int64],
    tokens: NDArray[np.float64],
    task_load: NDArray[np.float64],
    load: NDArray[np.float64],
    capacity: NDArray[np.float64],
    budget: NDArray[np.float64],
    initial: NDArray[np.float64],
    score: NDArray[np.float64],
    w_load: float,
    w_budget: float,
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """Auction the tasks in order; return winners (-1: nobody), winning scores (0.0 for nobody)
    and capable agents per task.

    ``who[c]`` holds the agents (bits of ``uint64`` words) that have capability ``c``; row -2
    has every agent, row -1 none. Task ``t`` requires ``needs[ptr[t]:ptr[t + 1]]`` (-1: a
    capability no agent has). ``load``, ``budget`` and ``score`` are the auctioneer's arrays,
    updated in place as each award is charged.
    """
    n_tasks = len(tokens)
    winners = np.full(n_tasks, -1, np.int64)
    won = np.zeros(n_tasks, np.float64)
    capable = np.zeros(n_tasks, np.int64)
    for t in range(n_tasks):
        best, best_score, capable[t] = _best_bid(
            who, needs, ptr[t], ptr[t + 1], tokens[t], task_load[t], load, capacity, budget, score
        )
        if best >= 0:
            load[best] += task_load[t]
            budget[best] -= tokens[t]
            score[best] = w_load * (1.0 - load[best] / capacity[best]) + w_budget * (
                budget[best] / initial[best]
            )
            winners[t], won[t] = best, best_score
    return winners, won, capable
