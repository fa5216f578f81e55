"""Steps of grounding compiled by numba, for a planner that has loaded it.

Grounding runs a handful of rounds, each a few dozen numpy calls on arrays of tens or hundreds of
rows, where each call costs a microsecond or more whatever its size. A planner that runs the
compiled search has loaded numba anyway, so the steps that cost the most calls are done here,
one call each, with the same results as numpy's (``tests/coordination/test_htn.py`` checks it):

- ``fresh``: which of a round's referred ground tasks are new, one row each, in key order
  (``_grounding.Grounder._fresh``);
- ``evaluate``: formulas' ids for rows of bindings (``_binding.Binder.evaluate``), in integers,
  and ``keep``, what the grounder keeps of a method's rows (``_grounding.Grounder._keep``);
- ``grow``: which facts became possible (``_grounding.Grounder._grow``), and ``decode``, the
  objects of facts (``_numbering.Space.decode_many``);
- ``prepare`` and ``join``: the facts a join reads, filtered and keyed, and the keyed join
  itself (``_binding.Binder._prepare``, ``_join``);
- ``objects`` and ``read``: the problem's objects and atoms numbered
  (``_numbering.Objects``, ``_grounding.Grounder._read_facts``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from axo.coordination._auction_kernel import _jit

Ints = NDArray[np.int64]
Bools = NDArray[np.bool_]


@_jit
def fresh(keys: Ints, seen: Bools, scratch: Ints, starts: Ints) -> tuple[Ints, Ints]:
    """The rows of ``keys`` not ``seen`` yet, one per key (the last), sorted by key, and where
    each of ``starts`` falls among them; they become seen. ``scratch``: a table over the keys,
    its contents ignored."""
    for i in range(len(keys)):
        if not seen[keys[i]]:
            scratch[keys[i]] = i
    rows = np.empty(len(keys), np.int64)
    count = 0
    for i in range(len(keys)):
        if not seen[keys[i]] and scratch[keys[i]] == i:
            rows[count] = i
            count += 1
    rows = rows[:count]
    picked = keys[rows]
    seen[picked] = True
    order = np.argsort(picked)
    return rows[order], np.searchsorted(picked[order], starts)


@_jit
def evaluate(pos: Ints, values: Ints, variables: Ints, offsets: Ints, w: Ints) -> Ints:
    """``pos[values[:, variables] + offsets] @ w``: per row, each variable's position in its
    type times its row of ``w``, summed (the last variable reads 1: ``w``'s last row, the
    base)."""
    out = np.zeros((values.shape[0], w.shape[1]), np.int64)
    for r in range(values.shape[0]):
        for i in range(len(variables)):
            p = pos[values[r, variables[i]] + offsets[i]]
            for j in range(w.shape[1]):
                out[r, j] += p * w[i, j]
    return out


@_jit
def keep(
    pos: Ints,
    values: Ints,
    variables: Ints,
    offsets: Ints,
    w: Ints,
    first: int,
    subtasks: int,
    columns: Ints,
    constant: Bools,
    fixed: Ints,
    width: int,
) -> tuple[Ints, Ints, Ints, Ints]:
    """What ``Grounder._keep`` makes of a method's bound rows: their formulas' ids (the first
    ``width`` columns), their subtasks' keys and arguments (from ``columns`` of the rows, or
    ``fixed`` where ``constant``), and the ids past ``width`` (facts their operators add)."""
    ids = evaluate(pos, values, variables, offsets, w)
    rows = values.shape[0]
    arity = len(columns) // subtasks if subtasks else 0
    keys = np.empty(rows * subtasks, np.int64)
    args = np.empty((rows * subtasks, arity), np.int64)
    for r in range(rows):
        for s in range(subtasks):
            keys[r * subtasks + s] = ids[r, first + s]
        for c in range(len(columns)):
            value = fixed[c] if constant[c] else values[r, columns[c]]
            args[r * subtasks + c // arity, c % arity] = value
    extra = ids.shape[1] - width if ids.shape[1] > width else 0
    added = np.empty(rows * extra, np.int64)
    for r in range(rows):
        for c in range(extra):
            added[r * extra + c] = ids[r, width + c]
    return ids[:, :width].copy(), keys, args, added


@_jit
def objects(kinds: Ints, subtype: Bools) -> tuple[Bools, Ints, Ints]:
    """``_numbering.Objects``' tables: which objects are of which type (given their kinds,
    and which kinds are of which type); each object's rank among its type's (-1 when it is not
    one; the last row all ones); and per type its objects by rank (then -1)."""
    types = subtype.shape[1]
    member = np.empty((types, len(kinds)), np.bool_)
    pos = np.ones((types + 1, len(kinds)), np.int64)
    ranked = np.full((types, len(kinds)), -1, np.int64)
    for t in range(types):
        rank = 0
        for o in range(len(kinds)):
            member[t, o] = subtype[kinds[o], t]
            if member[t, o]:
                pos[t, o] = rank
                ranked[t, rank] = o
                rank += 1
            else:
                pos[t, o] = -1
    return member, pos, ranked


@_jit
def decode(ids: Ints, offset: int, types: Ints, strides: Ints, ranked: Ints) -> Ints:
    """The objects of tuples of one relation (``_numbering.Space.decode_many``), given its
    offset and its arguments' types and strides, and ``Objects.ranked``."""
    out = np.empty((len(ids), len(types)), np.int64)
    for i in range(len(ids)):
        rest = ids[i] - offset
        for j in range(len(types)):
            out[i, j] = ranked[types[j], rest // strides[j]]
            rest %= strides[j]
    return out


@_jit
def read(
    relation: Ints,
    flat: Ints,
    arity: Ints,
    rows: Ints,
    strides: Ints,
    offsets: Ints,
    pos: Ints,
    init: int,
    dynamic: int,
    total: int,
) -> tuple[Ints, Ints, Ints, Bools, Bools, Ints, Ints]:
    """What ``_grounding.Grounder._read_facts`` reads from a problem's atoms (the first
    ``init`` of them its initial facts, the rest its goal): their arguments [atoms, widest
    arity] padded with 0; their fact ids (``_numbering.Space.tuples``); the initial facts of
    the first ``dynamic`` predicates, in order, and tables over ``total`` fact ids (and -1) of
    those and of the others; the initial facts in order of predicate (stably), and where each
    predicate's start."""
    n = len(relation)
    args = np.zeros((n, rows.shape[1]), np.int64)
    ids = np.empty(n, np.int64)
    at = 0
    for i in range(n):
        r = relation[i]
        ids[i] = offsets[r]
        for j in range(arity[r]):
            args[i, j] = flat[at]
            ids[i] += pos[rows[r, j], flat[at]] * strides[r, j]
            at += 1
    possible = np.zeros(total + 1, np.bool_)
    static = np.zeros(total + 1, np.bool_)
    held = np.empty(init, np.int64)
    count = 0
    bounds = np.zeros(len(offsets) + 1, np.int64)
    for i in range(init):
        bounds[relation[i] + 1] += 1
        if relation[i] < dynamic:
            possible[ids[i]] = True
            held[count] = ids[i]
            count += 1
        else:
            static[ids[i]] = True
    for r in range(len(offsets)):
        bounds[r + 1] += bounds[r]
    order = np.empty(init, np.int64)
    filled = bounds[:-1].copy()
    for i in range(init):
        order[filled[relation[i]]] = i
        filled[relation[i]] += 1
    return args, ids, held[:count].copy(), possible, static, order, bounds


@_jit
def grow(ids: Ints, possible: Bools) -> Ints:
    """Which of ``ids`` were not ``possible`` yet (padding -1 aside), each once, sorted; they
    become possible (``_grounding.Grounder._grow``)."""
    out = np.empty(len(ids), np.int64)
    count = 0
    for i in ids:
        if i >= 0 and not possible[i]:
            possible[i] = True
            out[count] = i
            count += 1
    return np.sort(out[:count])


@_jit
def prepare(
    facts: Ints,
    const_columns: Ints,
    consts: Ints,
    new_columns: Ints,
    new_types: Ints,
    is_member: Bools,
    same: Ints,
    key_columns: Ints,
    key_types: Ints,
    strides: Ints,
    pos: Ints,
) -> tuple[Ints, Ints, Ints, bool]:
    """The facts a join can use, and when it is keyed their keys sorted (stably), the order
    that sorts them, and whether no key repeats (``_binding.Binder._prepare``)."""
    kept = np.empty(facts.shape[0], np.int64)
    count = 0
    for r in range(facts.shape[0]):
        ok = True
        for i in range(len(const_columns)):
            ok = ok and facts[r, const_columns[i]] == consts[i]
        for i in range(len(new_columns)):
            ok = ok and is_member[new_types[i], facts[r, new_columns[i]]]
        for i in range(same.shape[0]):
            ok = ok and facts[r, same[i, 0]] == facts[r, same[i, 1]]
        if ok:
            kept[count] = r
            count += 1
    out = np.empty((count, facts.shape[1]), np.int64)
    for r in range(count):
        out[r] = facts[kept[r]]
    keys = np.zeros(count if len(key_columns) else 0, np.int64)
    for r in range(len(keys)):
        for i in range(len(key_columns)):
            keys[r] += pos[key_types[i], out[r, key_columns[i]]] * strides[i]
    order = np.argsort(keys, kind="mergesort")
    keys = keys[order]
    single = True
    for r in range(1, len(keys)):
        single = single and keys[r] != keys[r - 1]
    return out, keys, order, single


@_jit
def join(
    values: Ints,
    pos: Ints,
    key_vars: Ints,
    key_types: Ints,
    key_strides: Ints,
    keys: Ints,
    order: Ints,
    facts: Ints,
    new_columns: Ints,
    new_vars: Ints,
    limit: int,
) -> tuple[Ints, int]:
    """A keyed join (``_binding.Binder._join``): each row of ``values`` once per fact whose key
    (``keys``, sorted; ``order`` sorts the facts) is the row's, in that order, its new variables
    bound from the fact. Returns the rows and how many there are; none when over ``limit``."""
    n = values.shape[0]
    lo = np.empty(n, np.int64)
    hi = np.empty(n, np.int64)
    total = 0
    for r in range(n):
        key = 0
        for i in range(len(key_vars)):
            key += pos[key_types[i], values[r, key_vars[i]]] * key_strides[i]
        lo[r] = np.searchsorted(keys, key, "left")
        hi[r] = np.searchsorted(keys, key, "right")
        total += hi[r] - lo[r]
    if total > limit:
        return values[:0].copy(), total
    out = np.empty((total, values.shape[1]), np.int64)
    at = 0
    for r in range(n):
        for k in range(lo[r], hi[r]):
            out[at] = values[r]
            fact = order[k]
            for i in range(len(new_vars)):
                out[at, new_vars[i]] = facts[fact, new_columns[i]]
            at += 1
    return out, total
