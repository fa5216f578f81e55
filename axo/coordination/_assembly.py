"""Turning grounded rows into what the search reads: bit masks over the facts that can hold.

The search's state is one Python integer: bit ``i`` is set when fact slot ``i`` holds and bit
``n + i`` when it does not (``n`` slots: the facts that can ever hold), so that a method
grounding's positive and negative preconditions are one mask that must be a subset of the state.
An operator grounding has that mask too, and the masks of the slots it sets and clears. Python's
integer operations on a few hundred bits take tens of nanoseconds — far less than one numpy call
— and the search does a few per step. Bit ``2n`` (FALSE) is never set: requiring it marks what
can never apply.

Assembly keeps every mask as the positions of its bits (``_Bits``). The compiled search reads
them as they are; the Python search's view is made from them on first use: Python integers,
built a whole table at a time (``powers[positions]`` gathers each row's powers of two, one
OR-reduction per table combines them).

Candidates are ordered here, once: by ground task, then method, then binding (its rank).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from itertools import accumulate, repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from axo.coordination._describing import Describer
from axo.coordination._numbering import (
    DENSE_LIMIT,
    EMPTY,
    KEY_LIMIT,
    BoolArray,
    IntArray,
    lookup,
)
from axo.coordination.domain import Atom, Call

if TYPE_CHECKING:
    from axo.coordination._grounding import Grounder


# ``Call`` is a frozen dataclass: its ``__init__`` sets each field through ``object.__setattr__``.
# A plan has hundreds of steps, so its calls are made by filling their two slots directly,
# which takes half the time.
assert Call.__slots__ == ("name", "args")
_new = object.__new__
_set_name, _set_args = Call.name.__set__, Call.args.__set__  # type: ignore[attr-defined]


@dataclass
class Grounding:
    """Everything the search needs for one (domain, problem)."""

    half: int  # n: how many slots
    roots: list[int]
    # per ground task: its operator grounding, or -1 when compound; its method groundings are
    # [lo, hi)
    task_ops: IntArray
    task_los: IntArray
    task_his: IntArray
    sub_ptrs: IntArray  # subtasks of method grounding m, last first: subs[ptr[m]:ptr[m + 1]]
    subs: IntArray
    # bit positions (``_Bits``; 0 adds no bit): per method grounding, the bits it needs; per
    # operator grounding, those it needs, the slots it sets and those it clears; the goal's;
    # the slots that hold initially
    method_needs: IntArray
    op_needs: IntArray
    op_sets: IntArray
    op_clears: IntArray
    goal_bits: IntArray
    held: IntArray
    op_task: IntArray  # per operator grounding: its ground task
    op_schema: IntArray  # which operator each operator grounding is (it names it)
    schema_name: list[str]  # per operator
    schema_arity: list[int]
    op_args: IntArray  # per operator grounding: object ids, padded with -1
    internal_ops: frozenset[str]
    impossible_goal: tuple[Atom, ...]  # goal facts that can never hold, static ones first
    hopeless: int  # how many of those are static: false whatever methods are added
    describe: Describer
    undecomposable: int  # compound ground tasks with no method grounding at all
    calls: dict[int, Call] = field(default_factory=dict)  # operator grounding -> its action

    # The Python search's view: Python integers and lists, made on first use

    @cached_property
    def _table(self) -> np.ndarray:
        return _powers(2 * self.half + 1)

    @cached_property
    def init(self) -> int:
        """The state: bit i when slot i holds, bit n + i when it does not."""
        held, n = _masks(self.held.reshape(-1, 1), self._table), self.half
        held = int(np.bitwise_or.reduce(held)) if len(held) else 0
        return held | (((1 << n) - 1) ^ held) << n

    @cached_property
    def goal(self) -> int:
        """The mask that must hold when no task is left."""
        return int(_masks(self.goal_bits.reshape(1, -1), self._table)[0])

    @cached_property
    def method_mask(self) -> list[int]:
        return _masks(self.method_needs, self._table).tolist()

    @cached_property
    def op_req(self) -> list[int]:
        return _masks(self.op_needs, self._table).tolist()

    @cached_property
    def op_add(self) -> list[int]:
        return _masks(self.op_sets, self._table).tolist()

    @cached_property
    def op_del(self) -> list[int]:
        return _masks(self.op_clears, self._table).tolist()

    @cached_property
    def task_op(self) -> list[int]:
        return self.task_ops.tolist()

    @cached_property
    def task_lo(self) -> list[int]:
        return self.task_los.tolist()

    @cached_property
    def task_hi(self) -> list[int]:
        return self.task_his.tolist()

    @cached_property
    def method_sub_ptr(self) -> list[int]:
        return self.sub_ptrs.tolist()

    @cached_property
    def method_sub(self) -> list[int]:
        return self.subs.tolist()

    def actions(self, ops: IntArray) -> list[Call]:
        """The calls of operator groundings (for plans), made once per grounding (a step that
        one plan repeats may get two equal calls).

        Made in the order of ``ops`` by C-level maps (allocate, name, then give arguments),
        without a Python loop per call: a plan has hundreds of steps, and a loop's bytecode
        costs as much as the objects. Arguments are tuples zipped from columns of names, one
        group of calls per arity (padding -1 reads the last name, None: never zipped).
        """
        calls, keys = self.calls, ops.tolist()
        fresh = not calls
        if not fresh:
            ops = ops.compress([o not in calls for o in keys])
        made = list(map(_new, repeat(Call, len(ops))))
        if made:
            schema = self.op_schema.take(ops)
            names = np.array(self.schema_name, object).take(schema)
            deque(map(_set_name, made, names.tolist()), 0)
            named = self.describe.objects.named.take(self.op_args.take(ops, axis=0))
            arity = np.array(self.schema_arity).take(schema)
            # the calls grouped by arity (stably): a group's arguments are zipped columns
            by_arity = arity.argsort(kind="stable")
            grouped = itemgetter(*by_arity.tolist())(made) if len(made) > 1 else made
            columns, lo = named.take(by_arity, axis=0), 0
            for a, count in enumerate(np.bincount(arity).tolist()):
                hi = lo + count
                args = zip(*(columns[lo:hi, c].tolist() for c in range(a)), strict=True)
                deque(map(_set_args, grouped[lo:hi], args if a else repeat(())), 0)
                lo = hi
            calls.update(zip(ops.tolist(), made, strict=True))
        return made if fresh else list(map(calls.__getitem__, keys))

    @property
    def counts(self) -> tuple[int, int, int]:
        """(ground tasks, method groundings, operator groundings)."""
        return len(self.task_ops), len(self.method_needs), len(self.op_needs)

    @property
    def facts(self) -> int:
        """How many facts can ever hold (the state's fact slots)."""
        return len(self.describe.slot_ids)


_POWERS: list[np.ndarray] = [np.array([0, 1], object)]  # 0, then 2**0, 2**1, …


def _powers(count: int) -> np.ndarray:
    """``[0, 1, 2, 4, …]`` with at least ``count`` powers of two (a table kept across calls:
    it only grows)."""
    table = _POWERS[0]
    if len(table) <= count:
        size = max(count + 1, 2 * len(table))
        table = np.empty(size, object)
        table[0] = 0
        table[1:] = np.left_shift(1, np.arange(size - 1, dtype=object))
        _POWERS[0] = table
    return table


_SMALL_TABLE = 1024  # cells: up to it, ``_Bits.masks`` ORs the padding in too


def _masks(rows: IntArray, powers: np.ndarray) -> np.ndarray:
    """One integer per row of bit positions (``_Bits``): their OR, as an object array.

    ``powers[positions]`` gathers each row's powers of two and one OR-reduction combines them.
    Padding is left out first: each OR of two integers makes a new one, a third of the cost —
    except in small tables, where the dozen numpy calls that takes cost more than the ORs it
    saves."""
    if rows.shape[1] == 1:
        return powers.take(rows[:, 0])
    if rows.shape[1] and rows.size <= _SMALL_TABLE:
        return np.bitwise_or.reduce(powers.take(rows), axis=1)
    real = rows != 0
    counts = real.sum(axis=1)
    chosen = powers.take(rows.ravel().compress(real.ravel()))
    out = np.zeros(len(rows), object)
    some = counts > 0
    if len(chosen):
        starts = counts.cumsum() - counts
        out[some] = np.bitwise_or.reduceat(chosen, starts.compress(some))
    return out


class _Bits:
    """Which bit stands for a fact (``pos``), its absence (``neg``) or its slot (``set``), and
    masks made of bits.

    Bits are given as positions ``bit + 1``, so that position 0 (PAD, for the padding id -1)
    adds no bit. A fact that never holds has no slot: requiring it needs FALSE, requiring its
    absence needs nothing. Fact ids (of dynamic predicates, numbered first) are translated
    through tables when there are few enough of them, else by binary search.
    """

    def __init__(self, slot_ids: IntArray, dynamic: int) -> None:
        n = self.n = len(slot_ids)
        self.slot_ids = slot_ids
        self.false, self.pad = 2 * n + 1, 0
        self.size = dynamic + 1  # table entries: fact ids, then the padding id
        self.tables: dict[str, IntArray] = {}
        if dynamic <= DENSE_LIMIT:
            need = np.zeros(2 * self.size, np.int64)  # positive, then negative requirements
            need[:dynamic] = self.false
            bits = np.arange(1, n + 1)
            need[slot_ids] = bits
            need[slot_ids + self.size] = bits + n
            sets = np.zeros(self.size, np.int64)
            sets[slot_ids] = bits
            self.tables = {"need": need, "set": sets}

    def _rule(self, kind: str, slots: IntArray, real: BoolArray) -> IntArray:
        """The translation the tables hold, for fact ids looked up by binary search."""
        shift, missing = {"pos": (1, self.false), "neg": (self.n + 1, 0), "set": (1, 0)}[kind]
        return np.where(slots >= 0, slots + shift, np.where(real, missing, 0))

    def sets(self, ids: IntArray) -> IntArray:
        """The bit positions of the slots of fact ids (PAD for those without one)."""
        if self.tables:
            return self.tables["set"].take(ids)
        return self._rule("set", lookup(self.slot_ids, ids), ids >= 0)

    def need(self, ids: IntArray, positive: int) -> IntArray:
        """The bit positions a row needs: its first ``positive`` facts, the absence of the rest."""
        if self.tables:
            shift = np.zeros(ids.shape[1], np.int64)
            shift[positive:] = self.size
            return self.tables["need"].take(ids + shift)
        slots, real = lookup(self.slot_ids, ids), ids >= 0
        pos = self._rule("pos", slots[:, :positive], real[:, :positive])
        return np.concatenate([pos, self._rule("neg", slots[:, positive:], real[:, positive:])], 1)


@dataclass
class _Ops:
    """Operator groundings: their keys, which operator, and their arguments."""

    keys: IntArray
    schema: IntArray
    args: IntArray


# What assembly computes from the rows, by numpy (``_tables``) or by the compiled kernel:
# need, ptr, sub, lo, hi (methods), req, sets, clears (operators), goal bits, held bits,
# each operator grounding's ground task, each ground task's operator grounding, and how many
# compound ground tasks have no method grounding
_Tables = tuple[Any, ...]


def assemble(gr: Grounder, roots: list[int], kernel: bool = False) -> Grounding:
    """The grounding the search reads, from a grounder that has run to its fixpoint; with
    ``kernel``, the tables are computed by ``_assembly_kernel`` where it applies (numba is
    loaded then)."""
    found = _compiled_tables(gr) if kernel else None
    if found is None:
        ops, blocks = _compiled_operators(gr) if kernel else _numpy_operators(gr)
        task_keys = np.sort(np.concatenate([*gr.grounded, ops.keys]))
        slot_ids = np.sort(np.concatenate(gr.possible_ids))
        tables = _tables(gr, ops, blocks, task_keys, slot_ids)
        found = (*tables, task_keys, slot_ids, ops.schema, ops.args)
    need, ptr, sub, lo, hi, req, sets, clears, goal, held, gid, task_op, undecomposable = found[:13]
    task_keys, slot_ids, op_schema, op_args = found[13:]
    goal, impossible, hopeless = _goal(gr, goal, 2 * len(slot_ids) + 1)
    return Grounding(
        half=len(slot_ids),
        roots=task_keys.searchsorted(roots).tolist(),
        task_ops=task_op,
        task_los=lo,
        task_his=hi,
        sub_ptrs=ptr,
        subs=sub,
        method_needs=need,
        op_needs=req,
        op_sets=sets,
        op_clears=clears,
        goal_bits=goal,
        held=held,
        op_task=gid,
        op_schema=op_schema,
        schema_name=gr.domain.operator_names,
        schema_arity=gr.domain.operator_arity.tolist(),
        op_args=op_args,
        internal_ops=gr.domain.internal,
        impossible_goal=impossible,
        hopeless=hopeless,
        undecomposable=undecomposable,
        describe=Describer(
            gr.objects,
            gr.facts,
            gr.tasks,
            task_keys,
            slot_ids,
            gr.problem,
            gr.domain.static,
            gr.domain.domain.operators,
        ),
    )


def _tables(
    gr: Grounder, ops: _Ops, blocks: IntArray, task_keys: IntArray, slot_ids: IntArray
) -> _Tables:
    """The tables by numpy (see ``_Tables``)."""
    b = _Bits(slot_ids, gr.dynamic_total)
    need, ptr, sub, lo, hi = _methods(gr, task_keys, b)
    req, sets, clears = _operators(gr, blocks, b)
    gid = task_keys.searchsorted(ops.keys)
    goal = b.need(gr.goal_ids.reshape(-1, 1), 1).ravel()
    task_op = np.full(len(task_keys), -1, np.int64)
    task_op[gid] = np.arange(len(gid))
    undecomposable = int(np.count_nonzero((task_op < 0) & (lo == hi)))
    held = b.sets(gr.init_ids)
    return need, ptr, sub, lo, hi, req, sets, clears, goal, held, gid, task_op, undecomposable


def _compiled_tables(gr: Grounder) -> tuple[Any, ...] | None:
    """The tables (see ``_Tables``), then the ground tasks' keys, the slots' fact ids, and the
    operator groundings' operators and arguments, by the compiled kernel in one call; None
    where it does not apply (fact ids too many for tables, or static facts kept sorted)."""
    static = gr.binder.static.table
    if gr.dynamic_total > DENSE_LIMIT or static is None:
        return None
    from axo.coordination._assembly_kernel import tables

    rows, domain, binder = gr.active, gr.domain, gr.binder
    groups = [x for r in rows for x in (r.plan.index, r.plan.subtasks, len(r.parent))]
    width = sum(domain.widths.methods) + 1
    found = tables(
        np.concatenate([r.ids for r in rows] + [np.zeros((0, width), np.int64)]),
        np.concatenate([r.parent for r in rows] + [EMPTY]),
        np.array(groups, np.int64).reshape(len(rows), 3),
        np.concatenate([*gr.grounded, EMPTY]),
        np.concatenate(gr.possible_ids),
        gr.dynamic_total,
        static,
        gr.init_ids,
        gr.goal_ids,
        gr.scratch,
        *domain.width_arrays,
        *_operator_rows(gr),
        _task_starts(gr),
        binder.numbered,
        binder.pos,
        binder.starts,
        *domain.operator_table,
    )
    flat, need, req, sets, clears, args, undecomposable, kept, subs, tasks, n = found
    ops, goal, held = len(args), len(gr.goal_ids), len(gr.init_ids)
    sizes = (kept + 1, subs, tasks, tasks, goal, held, ops, tasks, tasks, n, ops)
    cuts = list(accumulate(sizes, initial=0))
    ptr, sub, lo, hi, goal, held, gid, task_op, task_keys, slot_ids, schema = map(
        flat.__getitem__, map(slice, cuts, cuts[1:])
    )
    return (
        need,
        ptr,
        sub,
        lo,
        hi,
        req,
        sets,
        clears,
        goal,
        held,
        gid,
        task_op,
        undecomposable,
        task_keys,
        slot_ids,
        schema,
        args,
    )


def _operator_rows(gr: Grounder) -> tuple[IntArray, IntArray]:
    """The operator groundings' keys and arguments, as the grounder kept them (in batches)."""
    arity = gr.domain.widths.arity
    keys = np.concatenate([k for k, _ in gr.operators] + [EMPTY])
    args = np.concatenate([a for _, a in gr.operators] + [np.zeros((0, arity), np.int64)])
    return keys, args


def _task_starts(gr: Grounder) -> IntArray:
    if gr.task_starts is None:
        return np.array(gr.tasks.starts, np.int64)
    return gr.task_starts


def _compiled_operators(gr: Grounder) -> tuple[_Ops, IntArray]:
    """``_ordered`` and ``_blocks`` by one call of ``_assembly_kernel.operators``."""
    from axo.coordination._assembly_kernel import operators

    domain, binder = gr.domain, gr.binder
    table, variables = domain.operator_table
    keys, schema, args, blocks = operators(
        *_operator_rows(gr),
        _task_starts(gr),
        binder.numbered,
        binder.pos,
        binder.starts,
        table,
        variables,
        sum(domain.widths.operators),
    )
    return _Ops(keys, schema, args), blocks


def _numpy_operators(gr: Grounder) -> tuple[_Ops, IntArray]:
    ops = _ordered(gr)
    return ops, _blocks(gr, ops)


def _ordered(gr: Grounder) -> _Ops:
    """The operator groundings the rows call, in key order (so one operator's are
    consecutive): each was kept once (``Grounder._fresh``). Arguments past the operator's
    arity become -1."""
    arity = gr.domain.widths.arity
    keys, args = _operator_rows(gr)
    order = keys.argsort()
    keys, args = keys.take(order), args.take(order, axis=0)
    schema = np.asarray(gr.tasks.starts).searchsorted(keys, "right") - 1  # operators come first
    used = np.arange(arity) < gr.domain.operator_arity.take(schema)[:, None]
    return _Ops(keys, schema, np.where(used, args, -1))


def _blocks(gr: Grounder, ops: _Ops) -> IntArray:
    """Each operator grounding's block (see ``Widths``): keys are in key order, so the
    groundings of one operator are consecutive."""
    starts = ops.schema.searchsorted(np.arange(len(gr.domain.operator_names) + 1)).tolist()
    parts = [np.zeros((0, sum(gr.domain.widths.operators)), np.int64)]
    for name, lo, hi in zip(gr.domain.operator_names, starts, starts[1:], strict=False):
        if lo < hi:
            plan = gr.domain.operators[name]
            args = ops.args[lo:hi, : len(gr.domain.schemas[name])]
            parts.append(gr.binder.evaluate(plan.formulas, args))
    return np.concatenate(parts)


def _methods(
    gr: Grounder, task_keys: IntArray, b: _Bits
) -> tuple[IntArray, IntArray, IntArray, IntArray, IntArray]:
    """Method groundings that can apply, ordered by (task, method, binding): the bits they
    need, their subtasks (pointers and ground tasks), and each ground task's range of them."""
    pre, neg, slots = gr.domain.widths.methods
    rows = gr.active
    sizes = [len(r.parent) for r in rows]
    width = sum(gr.domain.widths.methods) + 1
    ids = np.concatenate([r.ids for r in rows] + [np.zeros((0, width), np.int64)])
    gid = task_keys.searchsorted(np.concatenate([r.parent for r in rows] + [EMPTY]))
    method = np.array([r.plan.index for r in rows], np.int64).repeat(sizes)
    order = _order(gid, method, ids[:, pre + neg + slots], len(task_keys))
    need = b.need(ids[:, : pre + neg], pre).take(order, axis=0)
    never = (need.ravel() == b.false).nonzero()[0]  # what needs a fact that never holds
    if len(never):
        keep = np.ones(len(order), bool)
        keep[never // need.shape[1]] = False
        order, need = order.compress(keep), need.compress(keep, axis=0)
    called = ids[:, pre + neg : pre + neg + slots][:, ::-1]  # last first: the search pushes
    called = called.take(order, axis=0).ravel()  # them onto its list of tasks in that order
    lens = np.array([r.plan.subtasks for r in rows], np.int64).repeat(sizes).take(order)
    every, sorted_gid = np.arange(len(task_keys)), gid.take(order)
    return (
        need,
        np.concatenate([np.zeros(1, np.int64), lens.cumsum()]),
        task_keys.searchsorted(called.compress(called >= 0)),
        sorted_gid.searchsorted(every, "left"),
        sorted_gid.searchsorted(every, "right"),
    )


def _order(gid: IntArray, method: IntArray, rank: IntArray, tasks: int) -> IntArray:
    """The order of method groundings by (task, method, rank): one sort of one number when
    the three fit in it."""
    if not len(gid):
        return EMPTY
    methods, ranks = int(method.max()) + 1, int(rank.max()) + 1
    if tasks * methods * ranks < KEY_LIMIT:
        return ((gid * methods + method) * ranks + rank).argsort()
    return np.lexsort((rank, method, gid))


def _operators(gr: Grounder, blocks: IntArray, b: _Bits) -> tuple[IntArray, IntArray, IntArray]:
    """Per operator grounding: the bits it needs, and the slots it sets and clears (a slot both
    deleted and added stays set), as bit positions."""
    pre, neg, add, delete, static, negated = gr.domain.widths.operators
    need = b.need(blocks[:, : pre + neg], pre)
    start = pre + neg + add + delete
    if static + negated:
        if not need.shape[1]:  # no dynamic preconditions: a column for FALSE, else PAD
            need = np.zeros((len(blocks), 1), np.int64)
        _static_checks(gr, blocks[:, start : start + static + negated], static, need, b)
    sets = b.sets(blocks[:, pre + neg : pre + neg + add])
    clears = b.sets(blocks[:, pre + neg + add : start])
    for d, a in gr.domain.widths.clashes:  # deleted, then added: it stays
        clears[:, d][(clears[:, d] == sets[:, a]) & (sets[:, a] > 0)] = b.pad
    return need, sets, clears


def _static_checks(gr: Grounder, facts: IntArray, static: int, need: IntArray, b: _Bits) -> None:
    """Make ``need`` require FALSE in the rows whose static ``facts`` (the first ``static``
    required, the rest forbidden) do not hold."""
    held = gr.binder.static.contains(facts)
    padding = facts < 0
    held[:, :static] |= padding[:, :static]  # a missing static precondition holds, ...
    held[:, static:] = ~held[:, static:] | padding[:, static:]  # ... a missing negated one too
    never = (~held).ravel().nonzero()[0]
    if len(never):
        need[never // held.shape[1]] = b.false


def _goal(gr: Grounder, bits: IntArray, false: int) -> tuple[IntArray, tuple[Atom, ...], int]:
    """The goal's bit positions (given those of its dynamic facts), its facts that can never
    hold (FALSE is then one of them), and how many of those, listed first, are static: no
    method added later can make them hold."""
    static, goal = gr.domain.static, gr.problem.goal
    never: list[Atom] = []
    if len(gr.goal) < len(goal):  # some goal facts are static (``Grounder.goal``: the others)
        never = [a for a in goal if a.predicate in static and a not in gr.problem.init]
    impossible = [*never, *(gr.goal[i] for i in (bits == false).nonzero()[0].tolist())]
    if never:
        bits = np.append(bits, false)
    return bits, tuple(impossible), len(never)
