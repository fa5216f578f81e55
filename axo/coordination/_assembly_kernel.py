"""Assembly's arithmetic compiled by numba: the same tables as ``_assembly``'s numpy, in one call.

``_assembly`` turns a grounder's rows into the search's tables with a few dozen numpy calls, each
costing a microsecond or more however small its arrays; at the sizes a problem has (hundreds of
rows) those calls are most of assembly's time. A planner that runs the compiled search has
loaded numba already, so it assembles with this kernel instead (``_assembly.assemble``): one
call, the same results (``tests/coordination/test_htn.py`` checks that both agree).

It covers the common case only — fact ids few enough for lookup tables, and static facts in a
table; ``_assembly`` keeps the numpy path for the rest. It avoids what numba runs slowly at these
sizes: copies of 2D slices, fancy indexing and ``argsort`` (several times numpy's cost), and
boxing many arrays on return (about a microsecond each). Bit positions follow ``_assembly._Bits``:
``slot + 1`` for a fact that holds, ``n + slot + 1`` for its absence, ``2n + 1`` (FALSE) for a
fact that never holds, 0 for none.
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
def _needs(slot_of: Ints, n: int, facts: Ints, positive: int, out: Ints, row: int, at: int) -> bool:
    """Write into ``out[at]`` the bit positions row ``row`` of ``facts`` needs: its first
    ``positive`` facts, the others' absence; whether it needs nothing that never holds."""
    can = True
    for c in range(out.shape[1]):
        bit = _need(slot_of, n, facts[row, c], c < positive)
        out[at, c] = bit
        can = can and bit != 2 * n + 1
    return can


@_jit
def _sets(slot_of: Ints, facts: Ints, first: int, width: int) -> Ints:
    """The bit positions of the slots of columns [first, first + width) of fact ids (0 for
    those without one)."""
    out = np.empty((facts.shape[0], width), np.int64)
    for r in range(facts.shape[0]):
        for c in range(width):
            fact = facts[r, first + c]
            out[r, c] = slot_of[fact] + 1 if fact >= 0 else 0
    return out


@_jit
def _before(keys: Ints, a: int, b: int) -> bool:
    """Whether row ``a`` of ``keys`` comes strictly before row ``b`` (lexicographically)."""
    for c in range(keys.shape[1]):
        if keys[a, c] != keys[b, c]:
            return keys[a, c] < keys[b, c]
    return False


@_jit
def _order(keys: Ints) -> Ints:
    """The stable order of the rows of ``keys``, lexicographic: a merge sort of the runs already
    in order. Rows come in batches, each mostly in order, so a few passes sort them; numba's
    ``argsort`` costs several times more at these sizes (hundreds). Keys far from sorted (a
    run per few rows) of one column go to its stable ``argsort``."""
    n = keys.shape[0]
    starts = np.empty(n + 1, np.int64)  # where each run starts, then n
    runs = 0
    for i in range(n):
        if i == 0 or _before(keys, i, i - 1):
            starts[runs] = i
            runs += 1
    starts[runs] = n
    if keys.shape[1] == 1 and runs > 8 + n // 16:
        return np.argsort(keys[:, 0], kind="mergesort")
    order, other = np.arange(n), np.empty(n, np.int64)
    while runs > 1:
        merged = 0
        for p in range(0, runs, 2):
            lo, mid = starts[p], starts[min(p + 1, runs)]
            hi = starts[min(p + 2, runs)]
            i, j = lo, mid
            for k in range(lo, hi):  # the left run's first on ties: stable
                if j < hi and (i == mid or _before(keys, order[j], order[i])):
                    other[k] = order[j]
                    j += 1
                else:
                    other[k] = order[i]
                    i += 1
            starts[merged] = lo
            merged += 1
        starts[merged] = n
        runs = merged
        order, other = other, order
    return order


@_jit
def _sorted(values: Ints, space: int) -> Ints:
    """``np.sort(values)``, all in ``[0, space)``: by counting when the space is small enough
    to scan (facts come in a random order), else by ``_order``."""
    out = np.empty(len(values), np.int64)
    if space <= 16 * len(values):
        counts = np.zeros(space, np.int64)
        for v in values:
            counts[v] += 1
        at = 0
        for v in range(space):
            for _ in range(counts[v]):
                out[at] = v
                at += 1
        return out
    order = _order(values.reshape(-1, 1))
    for i in range(len(values)):
        out[i] = values[order[i]]
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
    grounded: Ints,
    possible: Ints,
    dynamic: int,
    static: Bools,
    init_ids: Ints,
    goal_ids: Ints,
    scratch: Ints,
    widths: Ints,
    clashes: Ints,
    op_keys: Ints,
    op_args: Ints,
    task_starts: Ints,
    numbers: Ints,
    pos: Ints,
    type_starts: Ints,
    table: Ints,
    variables: Ints,
) -> tuple[Ints, Ints, Ints, Ints, Ints, Ints, int, int, int, int, int]:
    """``_assembly``'s tables, with ``operators`` called here (one call from Python, not two).

    Returns one array holding, one after the other, the method groundings' subtask pointers
    (``kept + 1``) and subtasks (``subs``), each ground task's lo and hi (``tasks`` each), the
    goal's bits, the initial slots' bits, each operator grounding's ground task, each ground
    task's operator grounding, the ground tasks' keys, the slots' fact ids (``n``) and each
    operator grounding's operator; then the method groundings' needs, the operator
    groundings' needs, sets, clears and arguments, how many compound ground tasks have no
    method grounding, and kept, subs, tasks, n.

    ``ids``: the rows' formulas, ``parents``: the ground task each decomposes (its key),
    ``groups``: per batch of rows of one method, [method index, subtasks, rows];
    ``grounded``: the compound ground tasks' keys, ``possible``: the facts that can hold.
    ``scratch``: a table over the ground task space (contents ignored), or empty when it is too
    big for one; ``widths``: the methods' three column groups, then the operators' six
    (``Widths``). The rest is ``operators``'s.
    """
    pre, neg, slots = widths[0], widths[1], widths[2]
    o_pre, o_neg, o_add, o_del = widths[3], widths[4], widths[5], widths[6]
    o_static, o_negated = widths[7], widths[8]
    o_width = o_pre + o_neg + o_add + o_del + o_static + o_negated
    op_keys, schema, op_args, blocks = operators(
        op_keys, op_args, task_starts, numbers, pos, type_starts, table, variables, o_width
    )
    task_keys = _sorted(np.concatenate((grounded, op_keys)), task_starts[-1])
    slot_ids = _sorted(possible, dynamic)
    n, tasks, rows = len(slot_ids), len(task_keys), ids.shape[0]
    false = 2 * n + 1
    slot_of = np.full(dynamic + 1, -1, np.int64)  # by fact id; the padding id -1 reads the last
    for s in range(n):
        slot_of[slot_ids[s]] = s
    if len(scratch):  # a ground task's place among task_keys, by its key
        for t in range(tasks):
            scratch[task_keys[t]] = t
    # method groundings, ordered by (ground task, method, rank)
    key, lens = np.empty((rows, 3), np.int64), np.empty(rows, np.int64)
    r = 0
    for g in range(groups.shape[0]):
        for _ in range(groups[g, 2]):
            key[r, 0] = _index(task_keys, scratch, parents[r])
            key[r, 1], key[r, 2] = groups[g, 0], ids[r, pre + neg + slots]
            lens[r] = groups[g, 1]
            r += 1
    order = _order(key)
    need = np.empty((rows, pre + neg), np.int64)
    ptr = np.zeros(rows + 1, np.int64)
    sub = np.empty(rows * slots, np.int64)
    hi = np.zeros(tasks, np.int64)  # a ground task's method groundings are consecutive
    kept = subs = 0
    for i in range(rows):
        r = order[i]
        if not _needs(slot_of, n, ids, pre, need, r, kept):
            continue  # it needs a fact that never holds
        kept += 1
        ptr[kept] = ptr[kept - 1] + lens[r]
        hi[key[r, 0]] += 1
        for c in range(slots - 1, -1, -1):  # last first: the search pushes them in that order
            called = ids[r, pre + neg + c]
            if called >= 0:
                sub[subs] = _index(task_keys, scratch, called)
                subs += 1
    lo = np.empty(tasks, np.int64)
    total = 0
    for t in range(tasks):
        lo[t] = total
        total += hi[t]
        hi[t] = total
    # operator groundings
    ops = blocks.shape[0]
    op_need = np.empty((ops, max(o_pre + o_neg, 1 if o_static + o_negated else 0)), np.int64)
    start = o_pre + o_neg + o_add + o_del
    for r in range(ops):
        if o_pre + o_neg:
            _needs(slot_of, n, blocks, o_pre, op_need, r, r)
        elif op_need.shape[1]:  # no dynamic preconditions: a column for FALSE, else PAD
            op_need[r, 0] = 0
        for c in range(o_static + o_negated):
            fact = blocks[r, start + c]
            held = fact < 0 or static[fact]  # a missing static precondition holds, ...
            if c >= o_static:
                held = fact < 0 or not static[fact]  # ... a missing negated one too
            if not held:
                op_need[r, :] = false
    sets = _sets(slot_of, blocks, o_pre + o_neg, o_add)
    clears = _sets(slot_of, blocks, o_pre + o_neg + o_add, o_del)
    for k in range(clashes.shape[0]):  # deleted, then added: it stays
        d, a = clashes[k, 0], clashes[k, 1]
        for r in range(ops):
            if clears[r, d] == sets[r, a] and sets[r, a] > 0:
                clears[r, d] = 0
    goal = np.empty(len(goal_ids), np.int64)
    for i in range(len(goal_ids)):
        goal[i] = _need(slot_of, n, goal_ids[i], True)
    held_bits = np.empty(len(init_ids), np.int64)
    for i in range(len(init_ids)):
        held_bits[i] = slot_of[init_ids[i]] + 1 if init_ids[i] >= 0 else 0
    op_gid = np.empty(ops, np.int64)
    task_op = np.full(tasks, -1, np.int64)
    for i in range(ops):
        op_gid[i] = _index(task_keys, scratch, op_keys[i])
        task_op[op_gid[i]] = i
    undecomposable = 0
    for t in range(tasks):
        if task_op[t] < 0 and lo[t] == hi[t]:
            undecomposable += 1
    # the one-dimensional tables in one array, for the caller to cut apart: each array
    # returned to Python takes about a microsecond to box, several times a slice's cost
    parts = (ptr[: kept + 1], sub[:subs], lo, hi, goal, held_bits, op_gid, task_op)
    parts2 = (task_keys, slot_ids, schema)
    size = 0
    for part in parts:
        size += len(part)
    for part in parts2:
        size += len(part)
    flat = np.empty(size, np.int64)
    at = 0
    for part in parts:
        flat[at : at + len(part)] = part
        at += len(part)
    for part in parts2:
        flat[at : at + len(part)] = part
        at += len(part)
    return flat, need[:kept], op_need, sets, clears, op_args, undecomposable, kept, subs, tasks, n


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
    order = _order(keys.reshape(-1, 1))
    sorted_keys = np.empty(len(keys), np.int64)
    schema = np.empty(len(keys), np.int64)
    s = 0
    for i in range(len(order)):  # keys in order: operators come first, each from its start
        sorted_keys[i] = keys[order[i]]
        while s + 1 < len(task_starts) and task_starts[s + 1] <= sorted_keys[i]:
            s += 1
        schema[i] = s
    keys = sorted_keys
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
