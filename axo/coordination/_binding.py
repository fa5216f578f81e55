"""Binding a method's parameters a whole table of rows at a time, for one problem.

Rows are bindings (object ids, one column per variable; the last column is the key of the task
the row decomposes). A method's compiled steps (``_compiling``) run on them in order: static
checks filter, joins bind variables from matching facts, enumeration binds one to every object
of its type.

A *dynamic* join binds from the facts that can hold so far. When more become possible it must
bind them too, for every row that reached it before, and only once: so each dynamic join keeps
the rows that reached it and how many batches of new facts it has read (semi-naive evaluation,
as in Datalog). ``rejoin`` joins the batches not read yet with all those rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from axo.coordination._compiling import Check, Expand, Join, MethodPlan
from axo.coordination._formulas import Formulas, Layout
from axo.coordination._numbering import EMPTY, BoolArray, IdSet, IntArray, Objects, Space, ranges
from axo.errors import UsageError

MAX_ROWS = 20_000_000  # bindings one grounding step may hold before we call it a blow-up
# Ids below this are float64-exact with room to spare: a formula's value is a sum of a few
# products, each at most the size of its space, so no partial sum reaches 2**53.
FLOAT_EXACT = 1 << 46


@dataclass
class _Prepared:
    """The facts a join reads; when it is keyed, their keys sorted, the order that sorts them,
    and whether no key repeats (then a row matches at most one fact)."""

    facts: IntArray
    keys: IntArray = field(default_factory=lambda: EMPTY)
    order: IntArray = field(default_factory=lambda: EMPTY)
    single: bool = False


@dataclass
class _Reached:
    """The rows that reached one dynamic join, and how many batches of facts they have read."""

    plan: MethodPlan
    step: int
    rows: list[IntArray]
    read: int
    prepared: tuple[int, _Prepared] | None = None  # facts [0, read), prepared


class Binder:
    """Runs binding steps and evaluates formulas for one problem."""

    def __init__(
        self,
        objects: Objects,
        spaces: tuple[Space, Space, Space],
        layout: Layout,
        static_args: dict[str, IntArray],
        static: IdSet,
        joined: dict[str, list[IntArray]],
        kernel: bool = False,
    ) -> None:
        self.objects, self.facts, self.layout = objects, spaces[0], layout
        self.static_args, self.static = static_args, static
        self.joined = joined  # per predicate a dynamic join reads: facts that can hold, by batch
        self.numbered = layout.number(spaces)
        # numpy multiplies int64 matrices with a plain loop, float64 ones with BLAS, several
        # times faster: so in float64 whenever every id, and every partial sum, is exact in it
        exact = max(space.total for space in spaces) < FLOAT_EXACT
        # with ``kernel``, numba's loops (``_grounding_kernel.evaluate``) in int64: one call
        self.kernel = kernel
        dtype = np.float64 if exact and not kernel else np.int64
        self.weights = self.numbered.astype(dtype, copy=False)
        self.pos = objects.pos.ravel().astype(dtype, copy=False)  # row t at t * objects, ONE last
        # where each variable's type starts in ``pos``, for every formula of the domain at once
        self.starts = layout.sealed["types"] * len(objects.names)
        self.numbers: dict[int, tuple[IntArray, IntArray]] = {}
        self.prepared: dict[tuple[object, ...], _Prepared] = {}
        self.reached: dict[tuple[int, int], _Reached] = {}
        self.strides: dict[str, IntArray] = {}  # ``_strides``
        self.compiled = kernels() if kernel else None

    def numbers_of(self, formulas: Formulas) -> tuple[IntArray, IntArray]:
        """The W of ``formulas`` (see ``Formulas``) and where its variables' types start in
        ``pos``: views, made once per problem."""
        found = self.numbers.get(formulas.index)
        if found is None:  # views: no numpy call per formulas and problem
            numbers = self.weights if len(formulas.variables) else self.numbered
            start, stop = self.layout.spans[formulas.index]
            w = self.layout.block(formulas, numbers)
            found = self.numbers[formulas.index] = (w, self.starts[start:stop])
        return found

    def evaluate(self, formulas: Formulas, values: IntArray) -> IntArray:
        """The ids of ``formulas`` for each row of bindings: [rows, formulas]."""
        w, offsets = self.numbers_of(formulas)
        if not len(formulas.variables):
            return w.reshape(1, -1).repeat(len(values), axis=0)
        if self.compiled is not None:
            return self.compiled.evaluate(self.pos, values, formulas.variables, offsets, w)
        ids = self.pos.take(values.take(formulas.variables, axis=1) + offsets) @ w
        return ids if ids.dtype == np.int64 else ids.astype(np.int64)

    def bind(self, plan: MethodPlan, values: IntArray, start: int = 0) -> IntArray:
        """Run the method's binding steps from ``start`` on rows of bindings."""
        for k in range(start, len(plan.steps)):
            step = plan.steps[k]
            if not len(values):
                break
            if isinstance(step, Check):
                held = self.static.contains(self.evaluate(step.formulas, values)[:, 0])
                values = values.compress(held if step.positive else ~held, axis=0)
            elif isinstance(step, Expand):
                values = self._expand(step, values, plan.what)
            elif step.dynamic:
                values = self._join(step, values, self._reach(plan, k, values), plan.what)
            else:
                values = self._join(step, values, self._static(step), plan.what)
        return values

    def rejoin(self) -> list[tuple[MethodPlan, IntArray]]:
        """Bind the facts that became possible with every row that reached a dynamic join."""
        out = []
        for reached in list(self.reached.values()):
            step = _join_at(reached.plan, reached.step)
            batches = self.joined[step.predicate]
            if reached.read == len(batches) or not reached.rows:
                reached.read = len(batches)
                continue
            fresh = self._prepare(step, np.concatenate(batches[reached.read :]))
            reached.read = len(batches)
            rows = reached.rows[0] if len(reached.rows) == 1 else np.concatenate(reached.rows)
            reached.rows = [rows]
            values = self._join(step, rows, fresh, reached.plan.what)
            values = self.bind(reached.plan, values, reached.step + 1)
            if len(values):
                out.append((reached.plan, values))
        return out

    def _reach(self, plan: MethodPlan, k: int, values: IntArray) -> _Prepared:
        """Keep rows that reach a dynamic join; the facts they join with now."""
        step = _join_at(plan, k)
        batches = self.joined[step.predicate]
        reached = self.reached.get((id(plan), k))
        if reached is None:
            reached = self.reached[(id(plan), k)] = _Reached(plan, k, [], len(batches))
        reached.rows.append(values)
        if reached.prepared is None or reached.prepared[0] != reached.read:
            arity = len(self.facts.types[step.predicate])
            facts = np.concatenate([np.zeros((0, arity), np.int64), *batches[: reached.read]])
            reached.prepared = (reached.read, self._prepare(step, facts))
        return reached.prepared[1]

    def _static(self, step: Join) -> _Prepared:
        found = self.prepared.get(step.shape)
        if found is None:
            arity = len(self.facts.types[step.predicate])
            facts = self.static_args.get(step.predicate, np.zeros((0, arity), np.int64))
            found = self.prepared[step.shape] = self._prepare(step, facts)
        return found

    def _prepare(self, step: Join, facts: IntArray) -> _Prepared:
        """The facts a join can use; when it is keyed, their keys sorted and the sort order."""
        if self.compiled is not None:
            consts_at, consts, new_at, new_types, _, same, keys_at, key_types, _ = step.arrays
            facts, keys, order, single = self.compiled.prepare(
                facts,
                consts_at,
                consts,
                new_at,
                new_types,
                self.objects.is_member,
                same,
                keys_at,
                key_types,
                self._strides(step.predicate).take(keys_at),
                self.objects.pos,
            )
            return _Prepared(facts, keys, order, single) if step.keys else _Prepared(facts)
        keep = None
        for j, c in step.consts:
            keep = _and(keep, facts[:, j] == c)
        for (j, _), t in zip(step.new, step.new_types, strict=True):
            if self.objects.sizes[t] < len(self.objects.names):  # else every object fits
                keep = _and(keep, self.objects.is_member[t].take(facts[:, j]))
        for a, b in step.same:
            keep = _and(keep, facts[:, a] == facts[:, b])
        if keep is not None:
            facts = facts.compress(keep, axis=0)
        if not step.keys:
            return _Prepared(facts)
        keys = self._key(step, [facts[:, j] for j, _ in step.keys])
        order = keys.argsort(kind="stable")
        keys = keys.take(order)
        single = len(keys) < 2 or not (keys[1:] == keys[:-1]).any()
        return _Prepared(facts, keys, order, single)

    def _strides(self, predicate: str) -> IntArray:
        """The strides of a predicate's arguments, as an array (made once per problem)."""
        found = self.strides.get(predicate)
        if found is None:
            found = self.strides[predicate] = np.array(self.facts.strides[predicate], np.int64)
        return found

    def _key(self, step: Join, cols: list[IntArray]) -> IntArray:
        """A number for the bound arguments of a join (part of a fact id: it cannot overflow)."""
        types, strides = self.facts.types[step.predicate], self.facts.strides[step.predicate]
        out = None
        for (j, _), col in zip(step.keys, cols, strict=True):
            part = self.objects.pos[types[j]].take(col) * strides[j]
            out = part if out is None else out + part
        assert out is not None
        return out

    def _join(self, step: Join, values: IntArray, prepared: _Prepared, what: str) -> IntArray:
        facts = prepared.facts
        n, width = len(values), values.shape[1]
        if not step.keys:  # every row with every fact
            _guard(n * len(facts), what)
            out = values.repeat(len(facts), axis=0)
            for j, v in step.new:
                out.reshape(n, len(facts), width)[:, :, v] = facts[:, j]
            return out
        if self.compiled is not None:
            _, _, new_at, _, new_vars, _, keys_at, key_types, key_vars = step.arrays
            out, total = self.compiled.join(
                values,
                self.objects.pos,
                key_vars,
                key_types,
                self._strides(step.predicate).take(keys_at),
                prepared.keys,
                prepared.order,
                prepared.facts,
                new_at,
                new_vars,
                MAX_ROWS,
            )
            _guard(total, what)
            return out
        tkeys = self._key(step, [values[:, v] for _, v in step.keys])
        lo = prepared.keys.searchsorted(tkeys, "left")
        if prepared.single:  # a row matches one fact or none
            if not len(facts):
                return values[:0]
            hit = (prepared.keys.take(lo.clip(max=len(facts) - 1)) == tkeys).nonzero()[0]
            picked = prepared.order.take(lo.take(hit))
            out = values.take(hit, axis=0)
        else:
            counts = prepared.keys.searchsorted(tkeys, "right") - lo
            total = int(counts.sum())
            _guard(total, what)
            picked = prepared.order.take(lo.repeat(counts) + ranges(counts, total))
            out = values.repeat(counts, axis=0)
        for j, v in step.new:
            out[:, v] = facts[:, j].take(picked)
        return out

    def _expand(self, step: Expand, values: IntArray, what: str) -> IntArray:
        members = self.objects.members(step.type)
        n, m = len(values), len(members)
        _guard(n * m, what)
        out = values.repeat(m, axis=0)
        out.reshape(n, m, values.shape[1])[:, :, step.var] = members
        return out


def kernels() -> ModuleType:
    """``_grounding_kernel``, imported when a planner that runs it grounds a problem (importing
    it loads numba)."""
    from axo.coordination import _grounding_kernel

    return _grounding_kernel


def _and(mask: BoolArray | None, more: BoolArray) -> BoolArray:
    return more if mask is None else mask & more


def _join_at(plan: MethodPlan, k: int) -> Join:
    step = plan.steps[k]
    assert isinstance(step, Join)
    return step


def _guard(rows: int, what: str) -> None:
    if rows > MAX_ROWS:
        raise UsageError(
            f"grounding {what} needs {rows:,} bindings (limit {MAX_ROWS:,}): narrow the types "
            "of its parameters or add preconditions on static facts that bind them"
        )
