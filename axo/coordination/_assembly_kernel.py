"""Assembly's arithmetic compiled by numba: the same tables as ``_assembly``'s numpy, in one call.

``_assembly`` turns a grounder's rows into the search's tables with a few dozen numpy calls, each
costing a microsecond or more however small its arrays; at the sizes a problem has (hundreds of
rows) those calls are most of assembly's time. A planner that runs the compiled search has
loaded numba already, so it assembles with this kernel instead (``_assembly.assemble``): one
call, the same results (``tests/coordination/test_htn.py`` checks that both agree).

It covers the common case only — fact ids few enough for lookup tables, static facts in a table,
and a sort key of method groundings that fits one integer; ``_assembly`` keeps the numpy path
for the rest. Bit positions follow ``_assembly._Bits``: ``slot + 1`` for a fact that holds,
``n + slot + 1`` for its absence, ``2n + 1`` (FALSE) for a fact that never holds, 0 for none.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from axo.coordination._auction_kernel import _jit

Ints = NDArray[np.int64]
Bools = NDArray[np.bool_]


@_jit
def _need(slot_of: Ints, n: int, fact: int, positive: bool) -> int:
    """The bit position that requiring ``fact`` (or, not ``positive``, its absence) needs."""
    if fact < 0:
        return 0
    slot = slot_of[fact]
    if positive:
        return slot + 1 if slot >= 0 else 2 * n + 1
    return slot + n + 1 if slot >= 0 else 0


@_jit
def _needs(slot_of: Ints, n: int, facts: Ints, positive: int) -> Ints:
    """Per row, the bit positions it needs: its first ``positive`` facts, the others' absence."""
    out = np.empty(facts.shape, np.int64)
    for r in range(facts.shape[0]):
        for c in range(facts.shape[1]):
            out[r, c] = _need(slot_of, n, facts[r, c], c < positive)
    return out


@_jit
def _sets(slot_of: Ints, facts: Ints) -> Ints:
    """The bit positions of the slots of fact ids (0 for those without one)."""
    out = np.empty(facts.shape, np.int64)
    for r in range(facts.shape[0]):
        for c in range(facts.shape[1]):
            fact = facts[r, c]
            out[r, c] = slot_of[fact] + 1 if fact >= 0 else 0
    return out


@_jit
def _find(keys: Ints, key: int) -> int:
    """Where ``key`` goes in the sorted ``keys`` (the first place, as ``searchsorted``)."""
    lo, hi = 0, len(keys)
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@_jit
def _index(keys: Ints, table: Ints, key: int) -> int:
    """The place of ``key`` in the sorted ``keys``: by ``table`` when there is one (see
    ``tables``), else by binary search."""
    return table[key] if len(table) else _find(keys, key)


@_jit
def tables(
    ids: Ints,
    parents: Ints,
    groups: Ints,
    ranks: int,
    task_keys: Ints,
    slot_ids: Ints,
    dynamic: int,
    blocks: Ints,
    static: Bools,
    init_ids: Ints,
    goal_ids: Ints,
    op_keys: Ints,
    scratch: Ints,
    widths: Ints,
    clashes: Ints,
) -> tuple[Ints, Ints, Ints, Ints, Ints, Ints, Ints, Ints, Ints, Ints, Ints, Ints, int]:
    """``_assembly``'s tables: method groundings' needs, subtask pointers and subtasks, each
    ground task's [lo, hi), operator groundings' needs, sets and clears, the goal's bits, the
    initial slots' bits, each operator grounding's ground task, each ground task's operator
    grounding, and how many compound ground tasks have no method grounding.

    ``ids``: the rows' formulas, ``parents``: the ground task each decomposes (its key),
    ``groups``: per batch of rows of one method, [method index, subtasks, rows]; the sort key
    (ground task, method, rank) must fit in an int64 with ``ranks`` above every rank.
    ``scratch``: a table over the ground task space (contents ignored), or empty when it is too
    big for one; ``widths``: the methods' three column groups, then the operators' six
    (``Widths``).
    """
    pre, neg, slots = widths[0], widths[1], widths[2]
    o_pre, o_neg, o_add, o_del = widths[3], widths[4], widths[5], widths[6]
    o_static, o_negated = widths[7], widths[8]
    n, tasks, rows = len(slot_ids), len(task_keys), ids.shape[0]
    false = 2 * n + 1
    slot_of = np.full(dynamic + 1, -1, np.int64)  # by fact id; the padding id -1 reads the last
    for s in range(n):
        slot_of[slot_ids[s]] = s
    # method groundings, ordered by (ground task, method, rank): one number each
    method, lens = np.empty(rows, np.int64), np.empty(rows, np.int64)
    r = 0
    methods = 1
    for g in range(groups.shape[0]):
        methods = max(methods, groups[g, 0] + 1)
        for _ in range(groups[g, 2]):
            method[r], lens[r] = groups[g, 0], groups[g, 1]
            r += 1
    if len(scratch):  # a ground task's place among task_keys, by its key
        for t in range(tasks):
            scratch[task_keys[t]] = t
    gid = np.empty(rows, np.int64)
    for r in range(rows):
        gid[r] = _index(task_keys, scratch, parents[r])
    key = (gid * methods + method) * ranks + ids[:, pre + neg + slots]
    order = np.argsort(key, kind="mergesort")
    need_all = _needs(slot_of, n, ids[:, : pre + neg].copy(), pre)
    keep = np.ones(rows, np.bool_)
    for r in range(rows):
        for c in range(pre + neg):
            if need_all[r, c] == false:  # it needs a fact that never holds
                keep[r] = False
    order = order[keep[order]]
    need = need_all[order]
    kept = len(order)
    ptr = np.zeros(kept + 1, np.int64)
    for i in range(kept):
        ptr[i + 1] = ptr[i] + lens[order[i]]
    sub = np.empty(kept * slots, np.int64)
    subs = 0
    for i in range(kept):
        for c in range(slots - 1, -1, -1):  # last first: the search pushes them in that order
            called = ids[order[i], pre + neg + c]
            if called >= 0:
                sub[subs] = _index(task_keys, scratch, called)
                subs += 1
    hi = np.zeros(tasks, np.int64)  # a ground task's method groundings are consecutive
    for i in range(kept):
        hi[gid[order[i]]] += 1
    hi = np.cumsum(hi)
    lo = np.empty(tasks, np.int64)
    for t in range(tasks):
        lo[t] = hi[t - 1] if t else 0
    # operator groundings
    op_need = _needs(slot_of, n, blocks[:, : o_pre + o_neg].copy(), o_pre)
    start = o_pre + o_neg + o_add + o_del
    if o_static + o_negated:
        if op_need.shape[1] == 0:  # no dynamic preconditions: a column for FALSE, else PAD
            op_need = np.zeros((blocks.shape[0], 1), np.int64)
        for r in range(blocks.shape[0]):
            for c in range(o_static + o_negated):
                fact = blocks[r, start + c]
                held = fact < 0 or static[fact]  # a missing static precondition holds, ...
                if c >= o_static:
                    held = fact < 0 or not static[fact]  # ... a missing negated one too
                if not held:
                    op_need[r, :] = false
    sets = _sets(slot_of, blocks[:, o_pre + o_neg : o_pre + o_neg + o_add].copy())
    clears = _sets(slot_of, blocks[:, o_pre + o_neg + o_add : start].copy())
    for k in range(clashes.shape[0]):  # deleted, then added: it stays
        d, a = clashes[k, 0], clashes[k, 1]
        for r in range(blocks.shape[0]):
            if clears[r, d] == sets[r, a] and sets[r, a] > 0:
                clears[r, d] = 0
    goal = np.empty(len(goal_ids), np.int64)
    for i in range(len(goal_ids)):
        goal[i] = _need(slot_of, n, goal_ids[i], True)
    held_bits = np.empty(len(init_ids), np.int64)
    for i in range(len(init_ids)):
        held_bits[i] = slot_of[init_ids[i]] + 1 if init_ids[i] >= 0 else 0
    op_gid = np.empty(len(op_keys), np.int64)
    for i in range(len(op_keys)):
        op_gid[i] = _index(task_keys, scratch, op_keys[i])
    task_op = np.full(tasks, -1, np.int64)
    for i in range(len(op_gid)):
        task_op[op_gid[i]] = i
    undecomposable = 0
    for t in range(tasks):
        if task_op[t] < 0 and lo[t] == hi[t]:
            undecomposable += 1
    return (
        need,
        ptr,
        sub[:subs].copy(),
        lo,
        hi,
        op_need,
        sets,
        clears,
        goal,
        held_bits,
        op_gid,
        task_op,
        undecomposable,
    )


@_jit
def operators(
    keys: Ints,
    args: Ints,
    task_starts: Ints,
    numbers: Ints,
    pos: Ints,
    type_starts: Ints,
    table: Ints,
    variables: Ints,
    width: int,
) -> tuple[Ints, Ints, Ints, Ints]:
    """``_assembly._ordered`` and ``_blocks`` in one: the operator groundings in key order,
    which operator each is, their arguments (-1 past its arity) and their blocks.

    Per operator, ``table`` has its arity, where its W starts in ``numbers``, W's columns,
    where its variables' types are in ``type_starts``, and how many variables it has (listed
    in ``variables``); see ``Layout`` and ``Binder.evaluate``: every cell here is theirs."""
    order = np.argsort(keys)
    keys = keys[order]
    schema = np.searchsorted(task_starts, keys, side="right") - 1  # operators come first
    out = np.empty(args.shape, np.int64)
    blocks = np.zeros((len(keys), width), np.int64)
    for i in range(len(order)):
        s = schema[i]
        arity, start, cols, types, count = (
            table[s, 0],
            table[s, 1],
            table[s, 2],
            table[s, 3],
            table[s, 4],
        )
        for c in range(args.shape[1]):
            out[i, c] = args[order[i], c] if c < arity else -1
        if count == 0:  # no variables: W is its base row
            for j in range(cols):
                blocks[i, j] = numbers[start + j]
        for v in range(count):
            p = pos[out[i, variables[s, v]] + type_starts[types + v]]
            for j in range(cols):
                blocks[i, j] += p * numbers[start + v * cols + j]
    return keys, schema, out, blocks
