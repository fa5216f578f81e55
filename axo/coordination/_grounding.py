"""Grounding an HTN problem into index arrays: the private half of ``axo.coordination.htn``.

The domain is compiled once (``_compiling``); a problem is grounded breadth first from its task
list, a round at a time: each compound ground task new in the round is grounded with the others
of its task, a whole batch at once — the methods' parameters bound (``_binding``), and the rows
turned into fact ids and subtask keys by one matrix product each (``_formulas``). The subtasks
of all the round's rows that no round had make the next round. Only ground tasks the task list
can reach are grounded. An operator a method calls is grounded in the method's rows (its facts
are formulas over the method's variables too), and each operator grounding is kept once, the
first round that refers to it; ``_assembly`` evaluates its block.

A fact *can hold* when it is in the initial state or added by an operator some grounded row
calls. Dynamic joins bind only from such facts and bind again as more become possible; when
nothing new can be bound, what was never bound could never apply (none of it can be the first
to), and neither can anything only it would have reached.

Order is part of the contract: a method's bindings are ranked in lexicographic order of object
ids (domain constants, then the problem's objects in declaration order), as nested loops over
its parameters would produce them; ``_assembly`` sorts by that rank.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter

import numpy as np

from axo.coordination._assembly import Grounding, assemble
from axo.coordination._binding import Binder, kernels
from axo.coordination._compiling import CompiledDomain, MethodPlan, OperatorPlan
from axo.coordination._numbering import (
    DENSE_LIMIT,
    IdSet,
    IntArray,
    Objects,
    Space,
    unique,
)
from axo.coordination.domain import Atom, PlanningProblem

_PREDICATE, _ARGS = attrgetter("predicate"), attrgetter("args")


@dataclass
class Rows:
    """Groundings of one method: the task each decomposes, and their formulas' ids."""

    plan: MethodPlan
    parent: IntArray  # key of the ground task each row decomposes
    ids: IntArray  # [rows, formulas], laid out as ``Widths.methods`` says


class Grounder:
    """Grounds one problem of a compiled domain; call ``run()`` once."""

    def __init__(
        self, domain: CompiledDomain, problem: PlanningProblem, kernel: bool = False
    ) -> None:
        """``kernel``: run the steps ``_grounding_kernel`` and ``_assembly_kernel`` compile
        where they apply (only for a planner that has loaded numba)."""
        self.domain, self.problem, self.kernel = domain, problem, kernel
        self.compiled = kernels() if kernel else None
        self.objects = Objects(
            [*domain.constants, *problem.objects], domain.type_index, domain.subtype, self.compiled
        )
        self.facts = Space(domain.predicates, self.objects, "facts")
        self.tasks = Space(domain.schemas, self.objects, "ground tasks")
        self.dynamic_total = self.facts.starts[domain.dynamic_predicates]  # numbered first
        self.goal = [a for a in problem.goal if a.predicate not in domain.static]
        self.binder = self._read_facts()
        self.seen = IdSet(self.tasks.total)  # ground tasks referred to so far
        small = self.tasks.total <= DENSE_LIMIT  # else deduplicate by sorting
        self.scratch = np.empty(self.tasks.total if small else 0, np.intp)
        self.task_starts: IntArray | None = None  # ``tasks.starts`` for the kernel
        self.first_subtask = sum(domain.widths.methods[:2])
        self.row_width = sum(domain.widths.methods) + 1
        self.refs: list[tuple[IntArray, IntArray]] = []  # subtasks of this round: keys, args
        self.added: list[IntArray] = []  # facts operators of rows add, not yet noted
        self.grounded: list[IntArray] = []  # keys of the compound ground tasks, by batch
        self.active: list[Rows] = []
        self.operators: list[tuple[IntArray, IntArray]] = []  # operator groundings: keys, args

    def _read_facts(self) -> Binder:
        """Number the initial facts and the goal's; the binder reads the static ones."""
        domain, init = self.domain, list(self.problem.init)
        relation, flat = self._numbers([*init, *self.goal])
        if self.compiled is not None and IdSet.tabled(self.facts.total):
            args, order, bounds, static = self._read_compiled(relation, flat, len(init))
        else:
            args, order, bounds, static = self._read(relation, flat, len(init))
        of = _by_predicate(args, order, bounds, domain.predicates)
        return Binder(
            self.objects,
            (self.facts, self.tasks, Space(domain.ranks, self.objects, "bindings")),
            domain.layout,
            {p: of(p) for p in domain.static},
            static,
            {p: [of(p)] for p in domain.joined},
            self.kernel,
        )

    def _numbers(self, atoms: Sequence[Atom]) -> tuple[IntArray, IntArray]:
        """Ground atoms' predicates (by index), and their arguments' object ids one after the
        other. C-level maps straight into arrays rather than comprehensions and lists: a
        problem has hundreds of atoms."""
        names = map(_PREDICATE, atoms)
        index = self.domain.predicate_index.__getitem__
        relation = np.fromiter(map(index, names), np.int64, len(atoms))
        index = self.objects.index.__getitem__
        return relation, np.fromiter(map(index, chain.from_iterable(map(_ARGS, atoms))), np.int64)

    def _read(
        self, relation: IntArray, flat: IntArray, init: int
    ) -> tuple[IntArray, IntArray, list[int], IdSet]:
        """The atoms' arguments [atoms, widest arity] padded with 0, the first ``init`` (the
        initial facts) in order of predicate and where each predicate's start, and the static
        facts that hold; notes the goal's fact ids and the initial facts that can hold."""
        domain = self.domain
        args = np.zeros((len(relation), domain.predicate_width), np.int64)
        args[domain.predicate_columns < domain.predicate_arity.take(relation)[:, None]] = flat
        ids = self.facts.tuples(relation, args)
        self.goal_ids = ids[init:]
        relation, ids = relation[:init], ids[:init]
        dynamic = relation < domain.dynamic_predicates  # they are numbered first
        self.init_ids = ids.compress(dynamic)
        self.possible = IdSet(self.facts.total, self.init_ids)  # facts that can ever hold ...
        self.possible_ids = [self.init_ids]  # ... as arrays, none in two
        order = relation.argsort(kind="stable")
        bounds = relation.take(order).searchsorted(np.arange(len(domain.predicates) + 1))
        return args, order, bounds.tolist(), IdSet(self.facts.total, ids.compress(~dynamic))

    def _read_compiled(
        self, relation: IntArray, flat: IntArray, init: int
    ) -> tuple[IntArray, IntArray, list[int], IdSet]:
        """``_read`` by one call of ``_grounding_kernel.read``."""
        types, strides, offsets = self.facts.padded
        args, ids, held, possible, static, order, bounds = self.compiled.read(
            relation,
            flat,
            self.domain.predicate_arity,
            types,
            strides,
            offsets,
            self.objects.pos,
            init,
            self.domain.dynamic_predicates,
            self.facts.total,
        )
        self.goal_ids, self.init_ids = ids[init:], held
        self.possible = IdSet.of_table(possible)
        self.possible_ids = [held]
        return args, order, bounds.tolist(), IdSet.of_table(static)

    def run(self) -> Grounding:
        roots = self._roots()
        while True:
            batches = self._fresh()
            if not batches:  # only now can what became possible bind anything new
                if self.added:
                    added = self.added
                    self._grow(added[0] if len(added) == 1 else np.concatenate(added))
                for plan, values in self.binder.rejoin():
                    self._keep(plan, values)
                if not self.refs:
                    return assemble(self, roots, self.kernel)
            for name, keys, args in batches:
                self._ground_task(name, keys, args)

    def _roots(self) -> list[int]:
        """Refer to the tasks of the problem's list; their keys."""
        calls = self.problem.tasks
        args = np.full((len(calls), self.domain.widths.arity), -1, np.int64)
        keys = []
        for i, call in enumerate(calls):
            ids = self.objects.ids(call.args)
            args[i, : len(ids)] = ids
            keys.append(self.tasks.id_of(call.name, ids))
            if call.name in self.domain.operators:  # grounded on its own: note what it adds
                plan: OperatorPlan = self.domain.operators[call.name]
                facts = self.binder.evaluate(plan.formulas, args[i : i + 1, : len(ids)])
                pre, neg, add = self.domain.widths.operators[:3]
                self.added.append(facts[:, pre + neg : pre + neg + add].ravel())
        self.refs.append((np.array(keys, np.int64), args))  # _fresh sorts operators out
        return keys

    def _ground_task(self, name: str, keys: IntArray, args: IntArray) -> None:
        self.grounded.append(keys)
        values = np.empty((len(keys), self.domain.width[name] + 1), np.int64)
        values[:, : args.shape[1]] = args
        values[:, -1] = keys
        for plan in self.domain.methods[name]:
            self._keep(plan, self.binder.bind(plan, values))

    def _keep(self, plan: MethodPlan, values: IntArray) -> None:
        """Keep bound rows of a method; refer to their subtasks for the next round, and note
        the facts the operators they call add."""
        if not len(values):
            return
        if self.compiled is not None and len(plan.formulas.variables):
            self._keep_compiled(plan, values)
            return
        ids = self.binder.evaluate(plan.formulas, values)
        if plan.subtasks:
            first, calls = self.first_subtask, plan.calls
            keys = ids[:, first : first + plan.subtasks].ravel()
            args = values.take(calls.columns, axis=1)
            if calls.constants is not None:
                args = np.where(*calls.constants, args)
            self.refs.append((keys, args.reshape(len(keys), self.domain.widths.arity)))
        width = self.row_width
        if ids.shape[1] > width:
            self.added.append(ids[:, width:].ravel())
        self.active.append(Rows(plan, values[:, -1], ids[:, :width]))

    def _keep_compiled(self, plan: MethodPlan, values: IntArray) -> None:
        """``_keep`` by one call of ``_grounding_kernel.keep``."""
        w, offsets = self.binder.numbers_of(plan.formulas)
        constant, fixed = plan.calls.fixed
        ids, keys, args, added = self.compiled.keep(
            self.binder.pos,
            values,
            plan.formulas.variables,
            offsets,
            w,
            self.first_subtask,
            plan.subtasks,
            plan.calls.columns,
            constant,
            fixed,
            self.row_width,
        )
        if plan.subtasks:
            self.refs.append((keys, args))
        if len(added):
            self.added.append(added)
        self.active.append(Rows(plan, values[:, -1], ids))

    def _grow(self, ids: IntArray) -> None:
        """Note facts that can hold; new ones of joined predicates wait for ``rejoin``."""
        self.added = []
        if self.compiled is not None and self.possible.table is not None:
            ids = self.compiled.grow(ids, self.possible.table)
        else:
            ids = unique(ids.compress(~self.possible.contains(ids)))
            if len(ids) and ids[0] < 0:  # padding
                ids = ids[1:]
            self.possible.add(ids)
        if not len(ids):
            return
        self.possible_ids.append(ids)
        for pred, batches in self.binder.joined.items():
            lo = self.facts.offset[pred]
            start, stop = ids.searchsorted([lo, lo + self.facts.sizes[pred]]).tolist()
            if start < stop:
                batches.append(self._decode(pred, ids[start:stop]))

    def _decode(self, pred: str, ids: IntArray) -> IntArray:
        """The objects of facts of ``pred``: [facts, arity]."""
        ranked = self.objects.ranked
        if self.compiled is None or ranked is None:
            return self.facts.decode_many(pred, ids)
        types, strides, offsets = self.facts.padded
        i, arity = self.domain.predicate_index[pred], len(self.domain.predicates[pred])
        return self.compiled.decode(ids, offsets[i], types[i, :arity], strides[i, :arity], ranked)

    def _fresh(self) -> list[tuple[str, IntArray, IntArray]]:
        """The compound ground tasks this round referred to that no round had, by task: (name,
        keys, arguments). The operator groundings it referred to that no round had go to
        ``operators``: operators are numbered first, so one sort orders both and one cut
        parts them."""
        refs = self.refs
        if not refs:
            return []
        self.refs = []
        if len(refs) == 1:
            keys, args = refs[0]
        else:
            keys = np.concatenate([k for k, _ in refs])
            args = np.concatenate([a for _, a in refs])
        if self.compiled is not None and self.seen.table is not None and len(self.scratch):
            if self.task_starts is None:
                self.task_starts = np.array(self.tasks.starts, np.int64)
            rows, cuts = self.compiled.fresh(keys, self.seen.table, self.scratch, self.task_starts)
            keys, args = keys.take(rows), args.take(rows, axis=0)
            starts = cuts.tolist()
        else:
            rows = _first_of_each(keys, (~self.seen.contains(keys)).nonzero()[0], self.scratch)
            keys = keys.take(rows)
            self.seen.add(keys)
            order = keys.argsort()
            keys, args = keys.take(order), args.take(rows.take(order), axis=0)
            starts = keys.searchsorted(self.tasks.starts).tolist()
        calls = starts[len(self.domain.operators)]
        if calls:
            self.operators.append((keys[:calls], args[:calls]))
        return [
            (name, keys[lo:hi], args[lo:hi, :arity])
            for (name, arity), lo, hi in zip(self.tasks.arities, starts, starts[1:], strict=False)
            if lo < hi and lo >= calls
        ]


def _first_of_each(keys: IntArray, rows: IntArray, scratch: IntArray) -> IntArray:
    """One of ``rows`` per distinct key: with a table over the keys (``scratch``, uninitialised:
    each key's last row writes it, then reads it back), else by sorting."""
    if len(rows) < 2:
        return rows
    some = keys.take(rows)
    if not len(scratch):
        return rows.take(np.unique(some, return_index=True)[1])
    order = np.arange(len(rows))
    scratch[some] = order
    return rows.compress(scratch.take(some) == order)


def _by_predicate(
    args: IntArray, order: IntArray, bounds: list[int], predicates: Mapping[str, tuple[int, ...]]
) -> Callable[[str], IntArray]:
    """The arguments of the atoms of one predicate, [atoms, arity], on demand (``order`` puts
    the atoms in order of predicate, predicate ``i``'s from ``bounds[i]``)."""
    index = {p: i for i, p in enumerate(predicates)}

    def of(predicate: str) -> IntArray:
        i = index[predicate]
        rows = order[bounds[i] : bounds[i + 1]]
        return args.take(rows, axis=0)[:, : len(predicates[predicate])]

    return of
