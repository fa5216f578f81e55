"""The HTN search compiled by numba, over bit sets packed in ``uint64`` words.

``htn._Search`` is the search in Python, over Python integers; this is the same search, step for
step, for a process that plans often enough to repay loading numba (``Planner(compiled=True)``):
importing numba and loading this kernel from its cache take a few hundred milliseconds once per
process, a plan then takes a fraction of the Python search's time. Both read the same grounding
(``_assembly``) and give the same plans, counters, frontiers and failures.

A set of bits is a row of ``uint64`` words, bit ``i`` in word ``i // 64``. The search packs its
masks itself, from the bit positions ``_assembly`` keeps (``_pack``: position ``p`` is bit
``p - 1``, position 0 is padding): one call from Python per search rather than one per table
(each call from Python costs microseconds). Comparing a mask's words with the state's, with an
early exit, costs less than testing its few bits one by one. An operator grounding is applied as
``state & ~clear | set`` with ``clear`` the bits of the slots it deletes and of the absences of
those it adds, and ``set`` the reverse.

The list of tasks still to do is a persistent linked list in arrays whose nodes are never freed
(24 bytes per task pushed, so at most ``max_steps`` times the longest method's subtasks), where
the Python search's tuples are collected as it goes.

Compiled code is cached on disk like the auction kernel's (``_auction_kernel``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from axo.coordination._auction_kernel import _jit

Words = NDArray[np.uint64]
Ints = NDArray[np.int64]

PLAN, STEP_LIMIT, EXHAUSTED = 0, 1, 2  # how a search ended


@_jit
def _pack(out: Words, positions: Ints, offset: int) -> Words:
    """OR into row ``r`` of ``out`` the bits ``positions[r] - 1 + offset`` (0: no bit)."""
    one = np.uint64(1)
    for r in range(positions.shape[0]):
        for c in range(positions.shape[1]):
            p = positions[r, c]
            if p > 0:
                bit = p - 1 + offset
                out[r, bit >> 6] |= one << np.uint64(bit & 63)
    return out


@_jit
def _applies(mask: Words, state: Words) -> bool:
    for w in range(state.shape[0]):  # noqa: SIM110 (numba compiles a loop, not all())
        if mask[w] & ~state[w]:
            return False
    return True


@_jit
def _first(masks: Words, lo: int, hi: int, state: Words) -> int:
    """The first candidate in ``[lo, hi)`` whose mask is a subset of ``state``, or -1."""
    for k in range(lo, hi):
        if _applies(masks[k], state):
            return k
    return -1


@_jit
def _longer(a: Ints) -> Ints:
    out = np.empty(2 * len(a), np.int64)
    out[: len(a)] = a
    return out


@_jit
def _longer2(a: Ints) -> Ints:
    out = np.empty((2 * a.shape[0], a.shape[1]), np.int64)
    out[: a.shape[0]] = a
    return out


@_jit
def _taller(a: Words) -> Words:
    out = np.empty((2 * a.shape[0], a.shape[1]), np.uint64)
    out[: a.shape[0]] = a
    return out


@_jit
def search(
    half: int,
    held: Ints,
    goal_bits: Ints,
    roots: Ints,
    task_op: Ints,
    task_lo: Ints,
    task_hi: Ints,
    method_needs: Ints,
    sub_ptr: Ints,
    sub: Ints,
    op_needs: Ints,
    op_sets: Ints,
    op_clears: Ints,
    max_steps: int,
    max_depth: int,
    max_frontiers: int,
) -> tuple[int, Ints, Ints, Ints, Words, Ints, Words]:
    """Run the search; returns (how it ended, the plan's operator groundings, counters,
    frontiers, their states, the furthest failure, its state).

    counters: expansions, backtracks, actions, depth cut (0/1), plan length at the end.
    frontiers: [ground task, depth] per frontier, first met first. The furthest failure:
    [plan length, operator grounding or -1 for the goal], or [-1, -1] when there was none.
    """
    words = (2 * half + 1 + 63) // 64  # the slots, their absences, FALSE
    # the masks as rows of words, packed here rather than by a call each from Python
    absent = np.ones(half + 1, np.bool_)  # by position: slot i is position i + 1
    absent[0] = False
    absent[held] = False
    state = _pack(np.zeros((1, words), np.uint64), held.reshape(1, -1), 0)
    state = _pack(state, np.flatnonzero(absent).reshape(1, -1), half)[0]
    goal = _pack(np.zeros((1, words), np.uint64), goal_bits.reshape(1, -1), 0)[0]
    masks = _pack(np.zeros((len(method_needs), words), np.uint64), method_needs, 0)
    op_req = _pack(np.zeros((len(op_needs), words), np.uint64), op_needs, 0)
    op_clear = _pack(np.zeros((len(op_needs), words), np.uint64), op_clears, 0)
    op_clear = _pack(op_clear, op_sets, half)
    op_set = _pack(np.zeros((len(op_needs), words), np.uint64), op_sets, 0)
    op_set = _pack(op_set, op_clears, half)
    # the list of tasks still to do: a persistent linked list in arrays (nodes are never
    # freed, so a choice point can go back to any tail of it)
    node_task = np.empty(1024, np.int64)
    node_depth = np.empty(1024, np.int64)
    node_next = np.empty(1024, np.int64)
    nodes = 0
    todo = -1
    for i in range(len(roots) - 1, -1, -1):
        node_task[nodes], node_depth[nodes], node_next[nodes] = roots[i], 0, todo
        todo = nodes
        nodes += 1
    plan = np.empty(256, np.int64)
    plan_len = 0
    # choice points: the state, then [rest, plan length, depth, next candidate, end]
    point_state = np.empty((64, words), np.uint64)
    point = np.empty((64, 5), np.int64)
    points = 0
    frontiers = np.empty((max_frontiers, 2), np.int64)
    frontier_states = np.empty((max_frontiers, words), np.uint64)
    n_frontiers = 0
    furthest = np.full(2, -1, np.int64)
    furthest_state = np.zeros(words, np.uint64)
    counters = np.zeros(5, np.int64)
    steps = 0
    ended = EXHAUSTED
    while True:
        k, depth, rest = -1, 0, -1
        if todo < 0:
            if _applies(goal, state):
                ended = PLAN
                break
            if plan_len >= furthest[0]:
                furthest[0], furthest[1] = plan_len, -1
                furthest_state[:] = state
        else:
            gid, depth, rest = node_task[todo], node_depth[todo], node_next[todo]
            steps += 1
            if steps > max_steps:
                ended = STEP_LIMIT
                break
            op = task_op[gid]
            if op >= 0:
                if _applies(op_req[op], state):
                    for w in range(words):
                        state[w] = state[w] & ~op_clear[op, w] | op_set[op, w]
                    if plan_len == len(plan):
                        plan = _longer(plan)
                    plan[plan_len] = op
                    plan_len += 1
                    counters[2] += 1
                    todo = rest
                    continue
                if plan_len >= furthest[0]:
                    furthest[0], furthest[1] = plan_len, op
                    furthest_state[:] = state
            elif depth >= max_depth:
                counters[3] = 1
            else:
                counters[0] += 1
                hi = task_hi[gid]
                k = _first(masks, task_lo[gid], hi, state)
                if k < 0:
                    known = False
                    for f in range(n_frontiers):
                        known = known or frontiers[f, 0] == gid
                    if not known and n_frontiers < max_frontiers:
                        frontiers[n_frontiers, 0], frontiers[n_frontiers, 1] = gid, depth
                        frontier_states[n_frontiers] = state
                        n_frontiers += 1
                elif k + 1 < hi:
                    if points == point.shape[0]:
                        point, point_state = _longer2(point), _taller(point_state)
                    point_state[points] = state
                    point[points, 0], point[points, 1], point[points, 2] = rest, plan_len, depth
                    point[points, 3], point[points, 4] = k + 1, hi
                    points += 1
        if k < 0:  # backtrack: the next candidate that applies in the latest choice point
            while points > 0:
                top = points - 1
                state[:] = point_state[top]
                k = _first(masks, point[top, 3], point[top, 4], state)
                if k >= 0:
                    break
                points -= 1
            if points == 0:
                break
            top = points - 1
            point[top, 3] = k + 1
            rest, depth, plan_len = point[top, 0], point[top, 2], point[top, 1]
            counters[1] += 1
        depth += 1
        for j in range(sub_ptr[k], sub_ptr[k + 1]):
            if nodes == len(node_task):
                node_task, node_depth = _longer(node_task), _longer(node_depth)
                node_next = _longer(node_next)
            node_task[nodes], node_depth[nodes], node_next[nodes] = sub[j], depth, rest
            rest = nodes
            nodes += 1
        todo = rest
    counters[4] = plan_len
    return (
        ended,
        plan[:plan_len].copy(),
        counters,
        frontiers[:n_frontiers].copy(),
        frontier_states[:n_frontiers].copy(),
        furthest,
        furthest_state,
    )


def number(words: Words) -> int:
    """A row of words as one Python integer (the Python search's form of a state)."""
    return int.from_bytes(np.ascontiguousarray(words).tobytes(), "little")
