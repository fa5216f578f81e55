"""Grounding an HTN problem into index arrays: the private half of ``axo.coordination.htn``.

This module binds the parameters of methods and operators a whole batch at a time (types first,
then joins on static facts — the facts no operator changes — and only then plain enumeration),
follows only the ground tasks the problem's task list can reach, and prunes by relaxed
reachability: a method grounding waits until every fact it needs can be true (is in the initial
state or added by an operator that can itself apply); what still waits at the fixpoint can never
apply and is dropped, with everything only it would have reached. It knows nothing about search.

The search works on a doubled state ``[facts, TRUE, FALSE, SCRATCH, ~facts, …]`` so that both
positive and negative preconditions are slots that must be set: a method grounding's conditions
are one row of ``method_req``, padded with the TRUE slot to a multiple of 8 so that a row of the
gathered state reads as ``uint64`` words.

Order is part of the contract: a method's bindings come out in lexicographic order of object
ids (domain constants, then the problem's objects in declaration order), as nested loops over
its parameters would produce them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from axo.coordination._numbering import (
    EMPTY,
    BoolArray,
    Describer,
    Facts,
    IdMap,
    IdSet,
    IntArray,
    Objects,
    TaskKeys,
    all_columns,
    stack_padded,
)
from axo.coordination.domain import Atom, Call, Domain, Parameter, PlanningProblem
from axo.errors import UsageError

MAX_ROWS = 20_000_000  # bindings one grounding step may hold before we call it a blow-up
# Waves of the reachability fixpoint that rows bound by a whole static relation wait before
# going in anyway: some facts become reachable one step per wave (blocks world: a tower level),
# and precision is not worth dozens of waves. Rows that enumerate a type wait to the end.
PATIENCE = 8
_PAD_TRUE, _PAD_FALSE, _PAD_SCRATCH = -1, -2, -3  # stand-ins for the fixed slots


@dataclass
class Grounding:
    """Everything the search needs for one (domain, problem)."""

    init: BoolArray  # the doubled initial state
    goal: list[int]  # indices that must be set when no task is left
    roots: list[int]
    task_op: list[int]  # per ground task: its operator grounding, or -1 when compound
    task_lo: list[int]  # per ground task: its method groundings are [lo, hi)
    task_hi: list[int]
    method_req: IntArray  # [methods, 8 * words] indices that must be set
    method_sub_ptr: list[int]  # subtasks of grounding m: method_sub[ptr[m]:ptr[m + 1]]
    method_sub: list[int]
    op_req: list[tuple[int, ...]]
    op_off: list[tuple[int, ...]]  # indices an operator clears, then
    op_on: list[tuple[int, ...]]  # indices it sets
    op_task: list[int]
    internal_ops: frozenset[str]
    impossible_goal: tuple[Atom, ...]
    describe: Describer
    undecomposable: int  # compound ground tasks with no method grounding at all
    calls: dict[int, Call] = field(default_factory=dict)  # operator grounding -> its action

    def action(self, op: int) -> Call:
        call = self.calls.get(op)
        if call is None:
            call = self.calls[op] = self.describe.task(self.op_task[op])
        return call

    @property
    def counts(self) -> tuple[int, int, int]:
        """(ground tasks, method groundings, operator groundings)."""
        return len(self.task_op), len(self.method_req), len(self.op_req)

    @property
    def facts(self) -> int:
        """How many facts can ever hold (the state vector's fact slots)."""
        return len(self.describe.slot_ids)


class _Table:
    """Rows of bindings (object ids), each tied to the ground task it belongs to."""

    def __init__(self, gids: IntArray, values: IntArray, variables: Sequence[Parameter]) -> None:
        self.gids, self.values = gids, values
        self.col = {p.name: i for i, p in enumerate(variables)}
        self.types = {p.name: p.type for p in variables}

    def take(self, rows: IntArray | BoolArray) -> None:
        self.gids, self.values = self.gids[rows], self.values[rows]

    def cols(self, args: Sequence[str], objects: Objects) -> list[IntArray | int]:
        return [
            self.values[:, self.col[a]] if a.startswith("?") else objects.index[a] for a in args
        ]

    def matrix(self, args: Sequence[str], objects: Objects) -> IntArray:
        out = np.empty((len(self.gids), len(args)), np.int64)
        for j, col in enumerate(self.cols(args, objects)):
            out[:, j] = col
        return out


@dataclass
class _Rows:
    """Method groundings of one method, from one batch (``rank``: order in that batch)."""

    method: int
    gids: IntArray
    rank: IntArray
    pre: IntArray  # dynamic positive preconditions, dense ids
    neg: IntArray
    subs: list[tuple[str, IntArray]]  # (callee, args) per subtask; interned when active
    sub_ids: IntArray | None = None
    gate: IntArray | None = None  # the facts it waits for (``pre`` less free facts)
    patient: bool = True  # waits for them however many waves it takes
    needs: tuple[str, ...] = ()  # the predicates of ``gate``
    seen: int = -1  # how much they had grown when last checked

    def split(self, mask: BoolArray) -> _Rows:
        """Keep rows where ``mask`` is false; return those where it is true."""
        assert self.gate is not None
        out = _Rows(
            self.method,
            self.gids[mask],
            self.rank[mask],
            self.pre[mask],
            self.neg[mask],
            [(c, a[mask]) for c, a in self.subs],
        )
        keep = ~mask
        self.gate = self.gate[keep]
        out.patient, out.needs = self.patient, self.needs
        self.gids, self.rank, self.pre, self.neg = (
            self.gids[keep],
            self.rank[keep],
            self.pre[keep],
            self.neg[keep],
        )
        self.subs = [(c, a[keep]) for c, a in self.subs]
        return out


@dataclass
class _Ops:
    """Operator groundings of one operator (one batch); ``ready`` once they can apply."""

    name: str
    gids: IntArray
    possible: BoolArray  # static preconditions hold
    pre: IntArray
    neg: IntArray
    add: IntArray
    delete: IntArray
    ready: BoolArray
    adds: tuple[str, ...] = ()  # predicates of the dynamic add effects
    needs: tuple[str, ...] = ()  # predicates of the dynamic preconditions
    seen: int = -1

    def extend(self, more: _Ops) -> None:
        """Append another batch of the same operator (to be checked again)."""
        for name in ("gids", "possible", "pre", "neg", "add", "delete", "ready"):
            setattr(self, name, np.concatenate([getattr(self, name), getattr(more, name)]))
        self.seen = -1


class Grounder:
    """Grounds one problem; call ``run()`` once."""

    def __init__(self, domain: Domain, problem: PlanningProblem) -> None:
        self.domain, self.problem = domain, problem
        self.objects = Objects(domain, problem)
        self.facts = Facts(domain, self.objects)
        self.static = domain.static_predicates
        by_pred: dict[str, list[list[int]]] = {}
        for atom in problem.init:
            by_pred.setdefault(atom.predicate, []).append(
                [self.objects.index[a] for a in atom.args]
            )
        self.static_args: dict[str, IntArray] = {}
        self.static_set = IdSet(self.facts.total)
        self.reach = IdSet(self.facts.total)
        for pred, rows in by_pred.items():
            args = np.array(sorted(rows), np.int64).reshape(len(rows), len(self.facts.types[pred]))
            ids = self.facts.ids(pred, [args[:, j] for j in range(args.shape[1])], len(args))
            if pred in self.static:
                self.static_args[pred] = args
                self.static_set.add(ids)
            else:
                self.reach.add(ids)
        self.init_ids = self.reach.members()
        self.static_atoms = frozenset(a for a in problem.init if a.predicate in self.static)
        schemas = {n: o.parameters for n, o in domain.operators.items()}
        schemas.update({n: t.parameters for n, t in domain.tasks.items()})
        self.keys = TaskKeys(self.objects, schemas)
        self.pending: dict[str, list[tuple[IntArray, IntArray]]] = {}
        self.waiting: list[_Rows] = []
        self.active: list[_Rows] = []
        self.ops: list[_Ops] = []
        self.op_index: dict[str, _Ops] = {}
        self.waves = 0
        self.grew: dict[str, int] = {}  # per predicate: how many times its facts grew
        # Facts an operator with no positive precondition adds can hold as soon as the operator
        # is reached; rows do not wait for them (else a chain such as blocks world's "done",
        # made true a tower level at a time, would take one wave per level).
        self.free = {
            a.predicate
            for op in domain.operators.values()
            if not any(p.predicate not in self.static for p in op.preconditions)
            for a in op.add
        }

    def intern(self, name: str, args: IntArray) -> IntArray:
        ids, new_ids, new_args = self.keys.intern(name, args)
        if len(new_ids):
            self.pending.setdefault(name, []).append((new_ids, new_args))
        return ids

    # --- binding ---------------------------------------------------------------------------

    def _holds(self, atom: Atom, table: _Table) -> BoolArray:
        ids = self.facts.ids(atom.predicate, table.cols(atom.args, self.objects), len(table.gids))
        return self.static_set.contains(ids)

    def _expand(self, table: _Table, var: str, what: str) -> None:
        members = self.objects.members[table.types[var]]
        n, m = len(table.gids), len(members)
        _guard(n * m, what)
        table.take(np.repeat(np.arange(n), m))
        table.values[:, table.col[var]] = np.tile(members, n)

    def _join(self, table: _Table, atom: Atom, bound: set[str], what: str) -> bool:
        """Bind the unbound variables of a static ``atom`` from its facts; False if unable."""
        facts = self.static_args.get(atom.predicate, np.zeros((0, len(atom.args)), np.int64))
        keep = np.ones(len(facts), bool)
        key_pos, new_pos = [], []
        for j, term in enumerate(atom.args):
            if not term.startswith("?"):
                keep &= facts[:, j] == self.objects.index[term]
            elif term in bound:
                key_pos.append(j)
            else:
                keep &= self.objects.is_member[table.types[term]][facts[:, j]]
                new_pos.append(j)
        facts = facts[keep]
        base = max(len(self.objects.names), 1)
        if base ** len(key_pos) >= 1 << 62:
            return False
        fkey = np.zeros(len(facts), np.int64)
        tkey = np.zeros(len(table.gids), np.int64)
        for j in key_pos:
            fkey = fkey * base + facts[:, j]
            tkey = tkey * base + table.values[:, table.col[atom.args[j]]]
        order = np.argsort(fkey, kind="stable")
        lo = np.searchsorted(fkey[order], tkey, "left")
        counts = np.searchsorted(fkey[order], tkey, "right") - lo
        total = int(counts.sum())
        _guard(total, what)
        within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        picked = order[np.repeat(lo, counts) + within]
        table.take(np.repeat(np.arange(len(counts)), counts))
        for j in new_pos:
            table.values[:, table.col[atom.args[j]]] = facts[picked, j]
        return True

    def bind(
        self,
        fixed: Sequence[Parameter],
        extra: Sequence[Parameter],
        pos: Sequence[Atom],
        neg: Sequence[Atom],
        gids: IntArray,
        args: IntArray,
        what: str,
    ) -> tuple[_Table, dict[str, int]]:
        """All bindings of ``extra`` for each row of ``args`` that pass the static checks.

        Also says which parameters were *listed* rather than pinned down: 1 when bound by a join
        that lists a whole static relation (nothing bound to key it on), 2 when enumerated over
        their type. Parameters bound by the task or by a keyed join are not listed.
        """
        values = np.zeros((len(gids), len(fixed) + len(extra)), np.int64)
        values[:, : len(fixed)] = args
        table = _Table(gids, values, [*fixed, *extra])
        checks = [(a, True) for a in pos if a.predicate in self.static]
        checks += [(a, False) for a in neg if a.predicate in self.static]
        done = [False] * len(checks)
        bound = {p.name for p in fixed}
        unbound = [p.name for p in extra]
        listed: dict[str, int] = {}

        def filter_ready() -> None:
            for i, (atom, positive) in enumerate(checks):
                if not done[i] and all(t in bound for t in atom.args if t.startswith("?")):
                    held = self._holds(atom, table)
                    table.take(held if positive else ~held)
                    done[i] = True

        filter_ready()
        while unbound:
            joins = [
                (sum(t in bound for t in a.args), -i, a)
                for i, (a, positive) in enumerate(checks)
                if positive and not done[i] and any(t in unbound for t in a.args)
            ]
            atom = max(joins, key=lambda j: (j[0], j[1]))[2] if joins else None
            if atom is not None and self._join(table, atom, bound, what):
                if not any(t in bound for t in atom.args):
                    listed.update((t, 1) for t in atom.args if t in unbound)
                bound.update(t for t in atom.args if t in unbound)
            else:
                self._expand(table, unbound[0], what)
                bound.add(unbound[0])
                listed[unbound[0]] = 2
            unbound = [v for v in unbound if v not in bound]
            filter_ready()
        if extra:
            cols = [
                table.values[:, j] for j in range(table.values.shape[1] - 1, len(fixed) - 1, -1)
            ]
            table.take(np.lexsort([*cols, table.gids]))
        return table, listed

    def _dynamic(self, atoms: Sequence[Atom], table: _Table) -> IntArray:
        """Dense ids of the non-static ``atoms`` for each row: [rows, len]."""
        dyn = [a for a in atoms if a.predicate not in self.static]
        out = np.empty((len(table.gids), len(dyn)), np.int64)
        for j, a in enumerate(dyn):
            out[:, j] = self.facts.ids(
                a.predicate, table.cols(a.args, self.objects), len(table.gids)
            )
        return out

    # --- batches and the fixpoint ----------------------------------------------------------

    def _ground_task(self, name: str, gids: IntArray, args: IntArray) -> None:
        task = self.domain.tasks[name]
        for mi, method in enumerate(task.methods):
            what = f"method '{method.name}' of task '{name}'"
            table, listed = self.bind(
                task.parameters,
                method.parameters,
                method.preconditions,
                method.negative_preconditions,
                gids,
                args,
                what,
            )
            if not len(table.gids):
                continue
            rows = _Rows(
                mi,
                table.gids,
                np.arange(len(table.gids)),
                self._dynamic(method.preconditions, table),
                self._dynamic(method.negative_preconditions, table),
                [(c.name, table.matrix(c.args, self.objects)) for c in method.subtasks],
            )
            # Wait for the facts that tie a listed parameter to a pinned-down term (on ?x ?y
            # with ?x given, at ?p ?src with ?p given): those prune; facts about a listed
            # parameter alone (clear ?x) rarely do, and waiting for them costs waves.
            gated = [
                a
                for a in method.preconditions
                if a.predicate not in self.static
                and a.predicate not in self.free
                and any(t in listed for t in a.args)
                and any(t not in listed for t in a.args)
            ]
            if gated:
                rows.gate = self._dynamic(gated, table)
                rows.patient = any(listed[t] == 2 for a in gated for t in a.args if t in listed)
                rows.needs = tuple({a.predicate for a in gated})
                self.waiting.append(rows)
            else:
                self._activate(rows)

    def _ground_ops(self, name: str, gids: IntArray, args: IntArray) -> None:
        op = self.domain.operators[name]
        table, _ = self.bind(op.parameters, (), (), (), gids, args, f"operator '{name}'")
        possible = np.ones(len(gids), bool)
        for atom in op.preconditions:
            if atom.predicate in self.static:
                possible &= self._holds(atom, table)
        for atom in op.negative_preconditions:
            if atom.predicate in self.static:
                possible &= ~self._holds(atom, table)
        batch = _Ops(
            name,
            gids,
            possible,
            self._dynamic(op.preconditions, table),
            self._dynamic(op.negative_preconditions, table),
            self._dynamic(op.add, table),
            self._dynamic(op.delete, table),
            np.zeros(len(gids), bool),
            adds=tuple({a.predicate for a in op.add}),
            needs=tuple({a.predicate for a in op.preconditions if a.predicate not in self.static}),
        )
        if name in self.op_index:
            self.op_index[name].extend(batch)
        else:
            self.op_index[name] = batch
            self.ops.append(batch)

    def _activate(self, rows: _Rows) -> None:
        subs = [self.intern(callee, a) for callee, a in rows.subs]
        n = len(rows.gids)
        rows.sub_ids = np.stack(subs, axis=1) if subs else np.zeros((n, 0), np.int64)
        self.active.append(rows)

    def _grown(self, needs: tuple[str, ...]) -> int:
        return sum(self.grew.get(p, 0) for p in needs)

    def _wave(self) -> bool:
        """Mark operators that can apply, then activate method rows; True if anything moved.

        A chunk is looked at again only when a predicate it waits on has gained facts.
        """
        moved, grew = False, True
        while grew:
            grew = False
            for ops in self.ops:
                now = self._grown(ops.needs)
                if now == ops.seen:
                    continue
                ops.seen = now
                open_rows = ops.possible & ~ops.ready
                if not open_rows.any():
                    continue
                can = open_rows & all_columns(self.reach.contains(ops.pre))
                if can.any():
                    ops.ready |= can
                    self.reach.add(ops.add[can].ravel())
                    for pred in ops.adds:
                        self.grew[pred] = self.grew.get(pred, 0) + 1
                    grew = moved = True
        self.waves += 1
        still: list[_Rows] = []
        for rows in self.waiting:
            assert rows.gate is not None
            if not rows.patient and self.waves > PATIENCE:
                self._activate(rows)
                moved = True
                continue
            now = self._grown(rows.needs)
            if now == rows.seen:
                still.append(rows)
                continue
            rows.seen = now
            can = all_columns(self.reach.contains(rows.gate))
            if can.any():
                self._activate(rows.split(can) if not can.all() else rows)
                moved = True
            if not can.all():
                still.append(rows)
        self.waiting = still
        return moved

    def run(self) -> Grounding:
        roots = []
        for c in self.problem.tasks:
            args = np.array([self.objects.index[a] for a in c.args], np.int64)
            roots.append(int(self.intern(c.name, args.reshape(1, len(c.args)))[0]))
        while True:
            while self.pending:
                name = next(iter(self.pending))
                batch = self.pending.pop(name)
                gids = np.concatenate([b[0] for b in batch])
                args = np.concatenate([b[1] for b in batch])
                if name in self.domain.operators:
                    self._ground_ops(name, gids, args)
                else:
                    self._ground_task(name, gids, args)
            if not self._wave() and not self.pending:
                return self._assemble(roots)

    # --- assembly --------------------------------------------------------------------------

    def _assemble(self, roots: list[int]) -> Grounding:
        facts = self.reach.members()
        n = len(facts)
        size = n + 3  # slots n, n + 1, n + 2: TRUE, FALSE, SCRATCH
        slot_of = IdMap(self.facts.total)
        slot_of.put(facts, np.arange(n, dtype=np.int64))

        def slots(ids: IntArray, missing: int) -> IntArray:
            out = slot_of.get(np.maximum(ids, 0))
            out[out < 0] = missing
            out[ids == _PAD_TRUE], out[ids == _PAD_FALSE] = n, n + 1
            return out

        rows = self.active
        gid = np.concatenate([r.gids for r in rows] + [EMPTY])
        method = np.concatenate([np.full(len(r.gids), r.method) for r in rows] + [EMPTY])
        rank = np.concatenate([r.rank for r in rows] + [EMPTY])
        order = np.lexsort((rank, method, gid))
        pre = stack_padded([r.pre for r in rows], _PAD_TRUE)[order]
        neg = stack_padded([r.neg for r in rows], _PAD_FALSE)[order]
        req = np.concatenate([slots(pre, n + 1), size + slots(neg, n + 1)], axis=1)
        width = max(8, -(-req.shape[1] // 8) * 8)
        req = np.concatenate([req, np.full((len(req), width - req.shape[1]), n)], axis=1)
        # subtasks in CSR form, rows reordered like the requirements
        lens = np.concatenate([np.full(len(r.gids), len(r.subs)) for r in rows] + [EMPTY])
        flat = np.concatenate([r.sub_ids.ravel() for r in rows if r.sub_ids is not None] + [EMPTY])
        starts = np.cumsum(lens) - lens
        new_lens = lens[order]
        within = np.arange(int(new_lens.sum())) - np.repeat(
            np.cumsum(new_lens) - new_lens, new_lens
        )
        method_sub = flat[np.repeat(starts[order], new_lens) + within]
        lo = np.zeros(self.keys.count, np.int64)
        hi = np.zeros(self.keys.count, np.int64)
        uniq, first, counts = np.unique(gid[order], return_index=True, return_counts=True)
        lo[uniq], hi[uniq] = first, first + counts
        task_op = np.full(self.keys.count, -1, np.int64)
        op_req: list[tuple[int, ...]] = []
        op_off: list[tuple[int, ...]] = []
        op_on: list[tuple[int, ...]] = []
        op_task: list[int] = []
        for ops in self.ops:
            task_op[ops.gids] = np.arange(len(op_task), len(op_task) + len(ops.gids))
            op_task += ops.gids.tolist()
            need = np.concatenate([slots(ops.pre, n + 1), size + slots(ops.neg, n + 1)], axis=1)
            if not need.shape[1]:
                need = np.full((len(ops.gids), 1), n)
            need[~ops.ready] = n + 1  # can never apply: require FALSE
            add, dele = slots(ops.add, n + 2), slots(ops.delete, n + 2)
            if add.shape[1] and dele.shape[1]:  # delete-then-add: a fact in both stays set
                dele = np.where((dele[:, :, None] == add[:, None, :]).any(axis=2), n + 2, dele)
            op_req += map(tuple, need.tolist())
            op_off += map(tuple, np.concatenate([dele, size + add], axis=1).tolist())
            op_on += map(tuple, np.concatenate([add, size + dele], axis=1).tolist())
        init = np.zeros(2 * size, bool)
        init[slots(self.init_ids, n + 2)] = True
        init[n] = True
        init[size:] = ~init[:size]
        dynamic_goal = [a for a in self.problem.goal if a.predicate not in self.static]
        ids = np.array([self.facts.atom_id(a) for a in dynamic_goal], np.int64)
        goal = slots(ids, n + 1).tolist()
        impossible = [a for a, s in zip(dynamic_goal, goal, strict=True) if s == n + 1]
        impossible += [
            a
            for a in self.problem.goal
            if a.predicate in self.static and a not in self.static_atoms
        ]
        return Grounding(
            init=init,
            goal=goal,
            roots=roots,
            task_op=task_op.tolist(),
            task_lo=lo.tolist(),
            task_hi=hi.tolist(),
            method_req=req.astype(np.intp),
            method_sub_ptr=np.concatenate([[0], np.cumsum(new_lens)]).astype(np.int64).tolist(),
            method_sub=method_sub.tolist(),
            op_req=op_req,
            op_off=op_off,
            op_on=op_on,
            op_task=op_task,
            internal_ops=frozenset(k for k, o in self.domain.operators.items() if o.internal),
            impossible_goal=tuple(impossible),
            undecomposable=int(np.count_nonzero((task_op < 0) & (lo == hi))),
            describe=Describer(self.facts, facts, self.static_atoms, self.keys),
        )


def _guard(rows: int, what: str) -> None:
    if rows > MAX_ROWS:
        raise UsageError(
            f"grounding {what} needs {rows:,} bindings (limit {MAX_ROWS:,}): narrow the types "
            "of its parameters or add preconditions on static facts that bind them"
        )
