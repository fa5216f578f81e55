"""Compiling a domain, once, into grounding plans: the private front half of grounding.

Everything about grounding that does not depend on the problem is decided here, once per
``Domain`` object (and kept while it lives): for each method, in which order its parameters get
bound — joins on facts, which bind many rows at once, before plain enumeration of a type — and
which static facts filter the rows and when; for each method and operator, every fact or task it
mentions, as a *formula* over its variables (``_formulas``), laid out in columns every schema
shares (``Widths``) so that rows of different schemas stack into one table.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, partial

import numpy as np

from axo.coordination._formulas import (
    FACTS,
    PADDING,
    RANKS,
    TASKS,
    Formula,
    Formulas,
    Layout,
    Term,
)
from axo.coordination._numbering import BoolArray, IntArray
from axo.coordination.domain import ROOT_TYPE, Atom, Call, Domain, Method, Operator, Parameter


@dataclass(frozen=True)
class Check:
    """Keep the rows where the static fact ``formula`` holds (or, negated, does not)."""

    formulas: Formulas  # one formula
    positive: bool


@dataclass(frozen=True)
class Join:
    """Bind variables from the facts of ``predicate`` that match the row.

    A static join reads the problem's facts. A *dynamic* join reads the facts that can hold so
    far (initial, or added by an operator grounded already) and runs again as more become
    possible: a row it cannot bind yet may become bindable later, never the other way round.
    ``keys`` are the (argument position, variable) pairs bound already, ``new`` those this join
    binds, ``same`` positions that repeat a new variable, ``consts`` fixed arguments.
    """

    predicate: str
    dynamic: bool
    keys: tuple[tuple[int, int], ...]
    new: tuple[tuple[int, int], ...]
    same: tuple[tuple[int, int], ...]
    consts: tuple[tuple[int, int], ...]
    new_types: tuple[int, ...]
    shape: tuple[object, ...]  # what the facts it reads depend on (see ``_Unit._join``)
    key_types: tuple[int, ...]  # the predicate's types of the arguments in ``keys``

    @cached_property
    def arrays(self) -> tuple[IntArray, ...]:
        """As the grounding kernel reads it: the positions and objects of ``consts``; the
        positions, types and variables of ``new``; ``same`` [pairs, 2]; the positions, types
        and variables of ``keys``."""
        return (
            np.array([j for j, _ in self.consts], np.int64),
            np.array([c for _, c in self.consts], np.int64),
            np.array([j for j, _ in self.new], np.int64),
            np.array(self.new_types, np.int64),
            np.array([v for _, v in self.new], np.int64),
            np.array(self.same, np.int64).reshape(-1, 2),
            np.array([j for j, _ in self.keys], np.int64),
            np.array(self.key_types, np.int64),
            np.array([v for _, v in self.keys], np.int64),
        )


@dataclass(frozen=True)
class Expand:
    """Bind ``var`` to every object of ``type``."""

    var: int
    type: int


Step = Check | Join | Expand


@dataclass(frozen=True, eq=False)
class Calls:
    """Where the arguments of a method's subtasks come from, ``arity`` per subtask (padding
    reads any column: it is never used)."""

    columns: IntArray  # the variable behind each argument
    constants: tuple[BoolArray, IntArray] | None  # which arguments are constants, and which

    @cached_property
    def fixed(self) -> tuple[BoolArray, IntArray]:
        """``constants``, also when there are none (as the grounding kernel reads them)."""
        if self.constants is not None:
            return self.constants
        return np.zeros(len(self.columns), bool), np.zeros(len(self.columns), np.int64)


@dataclass(frozen=True)
class MethodPlan:
    """How to ground one method: bind, then evaluate its formulas (``Widths.methods``)."""

    task: str
    index: int  # among the task's methods: candidates are ordered by it
    what: str  # for messages
    fixed: int  # the task's parameters come first among the variables
    variables: int
    steps: tuple[Step, ...]
    formulas: Formulas
    subtasks: int
    calls: Calls  # its subtasks


@dataclass(frozen=True)
class OperatorPlan:
    """How to ground one operator on its own (a task of the problem's list): its formulas are
    one operator block (``Widths.operators``). Called by a method, an operator is grounded in
    the method's rows instead."""

    name: str
    index: int  # in ``CompiledDomain.operator_names``
    formulas: Formulas


@dataclass(frozen=True)
class Widths:
    """Column groups every method's (operator's) formulas share, padded with -1: so rows of
    different schemas stack into one table.

    Methods: [positive preconditions, negative ones, subtasks, rank] (then, in rows of their
    own width, the facts the operators they call add); operators: [positive preconditions,
    negative ones, adds, deletes, static preconditions, negated static ones].
    """

    methods: tuple[int, int, int]
    operators: tuple[int, int, int, int, int, int]
    arity: int  # the most parameters a task or operator has
    # (delete, add) positions within the groups where one operator has facts of one predicate:
    # only there can a grounding delete and add the same fact
    clashes: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class CompiledDomain:
    """A domain's grounding plans; get it with ``compiled(domain)``."""

    domain: Domain
    type_index: dict[str, int]
    subtype: BoolArray  # [kind, type]: an object of ``kind`` is one of ``type``
    constants: tuple[tuple[str, str], ...]
    predicates: dict[str, tuple[int, ...]]
    schemas: dict[str, tuple[int, ...]]  # tasks and operators: their parameter types
    static: frozenset[str]
    methods: dict[str, tuple[MethodPlan, ...]]
    operators: dict[str, OperatorPlan]
    internal: frozenset[str]
    joined: frozenset[str]  # predicates some dynamic join reads
    ranks: dict[str, tuple[int, ...]]  # per method: the types of its own parameters
    layout: Layout
    widths: Widths
    width: dict[str, int]  # per task: the most variables one of its methods has (or its arity)
    operator_names: list[str]
    operator_arity: IntArray  # per operator (by index): how many parameters it has
    predicate_index: dict[str, int]  # in ``predicates`` order: dynamic ones first
    predicate_width: int  # the most arguments a predicate takes
    predicate_arity: IntArray  # per predicate (by index): how many arguments it takes
    predicate_columns: IntArray  # 0, 1, … up to ``predicate_width``: compared with arities
    dynamic_predicates: int  # how many predicates are not static

    @cached_property
    def operator_table(self) -> tuple[IntArray, IntArray]:
        """Per operator, where its formulas are in the layout, as the assembly kernel reads
        them (``_assembly_kernel.operators``): [arity, W's start, W's columns, its variables'
        start among the layout's types, how many variables], and the variables, padded."""
        plans = [self.operators[name].formulas for name in self.operator_names]
        table = np.zeros((len(plans), 5), np.int64)
        variables = np.zeros((len(plans), max([len(f.variables) for f in plans] + [1])), np.int64)
        for s, f in enumerate(plans):
            start, _, cols = self.layout.blocks[f.index]
            table[s] = (self.operator_arity[s], start, cols, self.layout.spans[f.index][0], 0)
            table[s, 4] = len(f.variables)
            variables[s, : len(f.variables)] = f.variables
        return table, variables

    @cached_property
    def width_arrays(self) -> tuple[IntArray, IntArray]:
        """``widths`` as the assembly kernel reads them: the column groups (methods', then
        operators'), and the clashes [k, 2]."""
        w = self.widths
        return (
            np.array([*w.methods, *w.operators], np.int64),
            np.array(w.clashes, np.int64).reshape(-1, 2),
        )


_CACHE: dict[int, tuple[weakref.ref[Domain], CompiledDomain]] = {}


def compiled(domain: Domain) -> CompiledDomain:
    """The domain's grounding plans, compiled on first use and kept while the domain lives."""
    hit = _CACHE.get(id(domain))
    if hit is not None and hit[0]() is domain:
        return hit[1]
    plans = compile_domain(domain)
    forget = partial(_CACHE.pop, id(domain), None)
    _CACHE[id(domain)] = (weakref.ref(domain, lambda _: forget()), plans)
    return plans


def compile_domain(domain: Domain) -> CompiledDomain:
    """Compile every method and operator of ``domain`` (``compiled`` caches this)."""
    names = [ROOT_TYPE, *domain.types]
    type_index = {t: i for i, t in enumerate(names)}
    subtype = np.array([[domain.is_subtype(k, t) for t in names] for k in names], bool)
    static = domain.static_predicates  # numbered last: the search's tables need only the rest
    order = sorted(domain.predicates, key=lambda p: p in static)
    predicates = {p: tuple(type_index[t] for t in domain.predicates[p]) for p in order}
    schemas = {n: _types(o.parameters, type_index) for n, o in domain.operators.items()}
    schemas.update({n: _types(t.parameters, type_index) for n, t in domain.tasks.items()})
    ranks = {
        _rank_name(task, m): _types(m.parameters, type_index)
        for task, t in domain.tasks.items()
        for m in t.methods
    }
    kinds = [type_index[t] for _, t in domain.constants]
    constant_pos = {
        (c, t): sum(subtype[k, t] for k in kinds[:c])
        for c, kind in enumerate(kinds)
        for t in range(len(names))
        if subtype[kind, t]
    }
    layout = Layout((predicates, schemas, ranks), constant_pos)
    widths = _widths(domain)
    unit = _Unit(domain, type_index, schemas, layout, widths)
    methods = {
        name: tuple(unit.method(name, i, m) for i, m in enumerate(task.methods))
        for name, task in domain.tasks.items()
    }
    operators = {n: unit.operator(i, op) for i, (n, op) in enumerate(domain.operators.items())}
    layout.seal()
    joins = [s for plans in methods.values() for p in plans for s in p.steps]
    return CompiledDomain(
        domain=domain,
        type_index=type_index,
        subtype=subtype,
        constants=domain.constants,
        predicates=predicates,
        schemas=schemas,
        static=domain.static_predicates,
        methods=methods,
        operators=operators,
        internal=frozenset(k for k, o in domain.operators.items() if o.internal),
        joined=frozenset(s.predicate for s in joins if isinstance(s, Join) and s.dynamic),
        ranks=ranks,
        layout=layout,
        widths=widths,
        # at least the task's own parameters: a task without methods (a frontier) is still
        # grounded with its arguments
        width={
            t: max([p.variables for p in plans] + [len(schemas[t])]) for t, plans in methods.items()
        },
        operator_names=list(domain.operators),
        operator_arity=np.array([len(o.parameters) for o in domain.operators.values()], np.intp),
        predicate_index={p: i for i, p in enumerate(predicates)},
        predicate_width=max([len(t) for t in predicates.values()] + [0]),
        predicate_arity=np.array([len(t) for t in predicates.values()], np.intp),
        predicate_columns=np.arange(max([len(t) for t in predicates.values()] + [0])),
        dynamic_predicates=len(predicates) - len(static),
    )


def _widths(domain: Domain) -> Widths:
    """The column groups (see ``Widths``): wide enough for every method and operator."""
    static = domain.static_predicates
    methods = [m for t in domain.tasks.values() for m in t.methods]
    ops = list(domain.operators.values())

    def most(sizes: Sequence[int]) -> int:
        return max([*sizes, 0])

    def dynamic(atoms: Sequence[Atom], keep: bool = False) -> int:
        return sum((a.predicate in static) == keep for a in atoms)

    return Widths(
        (
            most([dynamic(m.preconditions) for m in methods]),
            most([dynamic(m.negative_preconditions) for m in methods]),
            most([len(m.subtasks) for m in methods]),
        ),
        (
            most([dynamic(o.preconditions) for o in ops]),
            most([dynamic(o.negative_preconditions) for o in ops]),
            most([len(o.add) for o in ops]),
            most([len(o.delete) for o in ops]),
            most([dynamic(o.preconditions, keep=True) for o in ops]),
            most([dynamic(o.negative_preconditions, keep=True) for o in ops]),
        ),
        most([len(o.parameters) for o in ops] + [len(t.parameters) for t in domain.tasks.values()]),
        tuple(
            sorted(
                {
                    (d, a)
                    for o in ops
                    for d, gone in enumerate(o.delete)
                    for a, made in enumerate(o.add)
                    if gone.predicate == made.predicate
                }
            )
        ),
    )


def _types(params: Sequence[Parameter], type_index: dict[str, int]) -> tuple[int, ...]:
    return tuple(type_index[p.type] for p in params)


def _rank_name(task: str, method: Method) -> str:
    return f"{task}/{method.name}"


class _Unit:
    """Compiles one schema at a time against the domain's names."""

    def __init__(
        self,
        domain: Domain,
        type_index: dict[str, int],
        schemas: dict[str, tuple[int, ...]],
        layout: Layout,
        widths: Widths,
    ) -> None:
        self.domain = domain
        self.type_index = type_index
        self.schemas = schemas
        self.layout = layout
        self.widths = widths
        self.constant = {n: i for i, (n, _) in enumerate(domain.constants)}
        self.operator_index = {n: i for i, n in enumerate(domain.operators)}
        self.static = domain.static_predicates

    def _terms(self, args: Sequence[str], var: dict[str, Term]) -> tuple[Term, ...]:
        return tuple(var[a] if a.startswith("?") else (-1, self.constant[a]) for a in args)

    def _fact(self, atom: Atom, var: dict[str, Term]) -> Formula:
        types = tuple(self.type_index[t] for t in self.domain.predicates[atom.predicate])
        return Formula(FACTS, atom.predicate, self._terms(atom.args, var), types)

    def _call(self, call: Call, var: dict[str, Term]) -> Formula:
        return Formula(TASKS, call.name, self._terms(call.args, var), self.schemas[call.name])

    def _padded(
        self, groups: Sequence[Sequence[Atom]], widths: Sequence[int], var: dict[str, Term]
    ) -> list[Formula]:
        out: list[Formula] = []
        for group, width in zip(groups, widths, strict=True):
            out += [self._fact(a, var) for a in group] + [PADDING] * (width - len(group))
        return out

    def _block(self, op: Operator | None, args: tuple[Term, ...]) -> list[Formula]:
        """The operator block of a subtask slot: the operator's facts over the caller's terms."""
        if op is None:
            return [PADDING] * sum(self.widths.operators)
        var = {p.name: t for p, t in zip(op.parameters, args, strict=True)}
        static = [a for a in op.preconditions if a.predicate in self.static]
        negated = [a for a in op.negative_preconditions if a.predicate in self.static]
        groups = [
            [a for a in op.preconditions if a.predicate not in self.static],
            [a for a in op.negative_preconditions if a.predicate not in self.static],
            op.add,
            op.delete,
            static,
            negated,
        ]
        return self._padded(groups, self.widths.operators, var)

    def operator(self, index: int, op: Operator) -> OperatorPlan:
        args = tuple((i, -1) for i in range(len(op.parameters)))
        return OperatorPlan(op.name, index, self.layout.add(self._block(op, args)))

    def method(self, task: str, index: int, method: Method) -> MethodPlan:
        params = [*self.domain.tasks[task].parameters, *method.parameters]
        var = {p.name: (i, -1) for i, p in enumerate(params)}
        types = [self.type_index[p.type] for p in params]
        fixed = len(self.domain.tasks[task].parameters)
        pre = [a for a in method.preconditions if a.predicate not in self.static]
        neg = [a for a in method.negative_preconditions if a.predicate not in self.static]
        slots = self.widths.methods[2]
        calls: list[Call | None] = [*method.subtasks, *[None] * (slots - len(method.subtasks))]
        formulas = self._padded([pre, neg], self.widths.methods[:2], var)
        formulas += [PADDING if c is None else self._call(c, var) for c in calls]
        extra = tuple((v, -1) for v in range(fixed, len(params)))
        formulas.append(Formula(RANKS, _rank_name(task, method), extra, tuple(types[fixed:])))
        for call in method.subtasks:  # what its operators add: the facts it makes possible
            op = self.domain.operators.get(call.name)
            if op is not None:
                terms = self._terms(call.args, var)
                args = {p.name: t for p, t in zip(op.parameters, terms, strict=True)}
                formulas += [self._fact(a, args) for a in op.add]
        return MethodPlan(
            task=task,
            index=index,
            what=f"method '{method.name}' of task '{task}'",
            fixed=fixed,
            variables=len(params),
            steps=tuple(self._binding(method, var, types, fixed)),
            formulas=self.layout.add(formulas),
            subtasks=len(method.subtasks),
            calls=self._calls(method.subtasks, var),
        )

    def _calls(self, calls: Sequence[Call], var: dict[str, Term]) -> Calls:
        """Where the arguments of the method's subtasks come from."""
        arity = self.widths.arity
        terms = [self._terms(c.args, var) for c in calls]
        flat = [term for row in terms for term in (*row, *[(-1, -1)] * (arity - len(row)))]
        constant = np.array([v < 0 and c >= 0 for v, c in flat], bool)
        values = np.array([max(c, 0) for _, c in flat], np.int64)
        return Calls(
            np.array([max(v, -1) for v, _ in flat], np.intp),
            (constant, values) if constant.any() else None,
        )

    def _binding(
        self, method: Method, var: dict[str, Term], types: list[int], fixed: int
    ) -> list[Step]:
        """The binding steps of a method.

        Static checks run as soon as their variables are bound. An unbound variable is bound by
        a join, preferring one keyed on something bound already (static facts first, then
        dynamic ones), then one that lists a whole static relation; only a variable no
        precondition can bind is enumerated over its type.
        """
        static = [(a, True) for a in method.preconditions if a.predicate in self.static]
        static += [(a, False) for a in method.negative_preconditions if a.predicate in self.static]
        dynamic = [a for a in method.preconditions if a.predicate not in self.static]
        done: set[int] = set()
        bound = set(list(var)[:fixed])
        unbound = list(var)[fixed:]
        steps: list[Step] = []

        def ready() -> None:
            for i, (atom, positive) in enumerate(static):
                if i not in done and all(t in bound for t in atom.args if t.startswith("?")):
                    steps.append(Check(self.layout.add([self._fact(atom, var)]), positive))
                    done.add(i)

        def pinned(atom: Atom) -> int:
            return sum(t in bound or not t.startswith("?") for t in atom.args)

        ready()
        while unbound:
            opens = [(i, a) for i, (a, pos) in enumerate(static) if pos and i not in done]
            opens = [(i, a) for i, a in opens if any(t in unbound for t in a.args)]
            keyed = [a for a in dynamic if pinned(a) and any(t in unbound for t in a.args)]
            best = max(opens, key=lambda ia: (pinned(ia[1]), -ia[0]), default=None)
            if best is not None and (pinned(best[1]) or not keyed):
                done.add(best[0])
                atom, is_dynamic = best[1], False
            elif keyed:
                atom, is_dynamic = keyed[0], True
            else:
                v = var[unbound[0]][0]
                steps.append(Expand(v, types[v]))
                bound.add(unbound[0])
                unbound = unbound[1:]
                ready()
                continue
            steps.append(self._join(atom, var, types, bound, is_dynamic))
            bound.update(t for t in atom.args if t in unbound)
            unbound = [v for v in unbound if v not in bound]
            ready()
        return steps

    def _join(
        self, atom: Atom, var: dict[str, Term], types: list[int], bound: set[str], dynamic: bool
    ) -> Join:
        keys, new, same, consts = [], [], [], []
        first: dict[str, int] = {}
        for j, term in enumerate(atom.args):
            if not term.startswith("?"):
                consts.append((j, self.constant[term]))
            elif term in bound:
                keys.append((j, var[term][0]))
            elif term in first:
                same.append((first[term], j))
            else:
                first[term] = j
                new.append((j, var[term][0]))
        new_types = tuple(types[v] for _, v in new)
        positions = tuple(j for j, _ in keys), tuple(j for j, _ in new)
        # joins of one shape read the same facts, whatever the variables they bind
        shape = (atom.predicate, dynamic, positions, tuple(same), tuple(consts), new_types)
        return Join(
            atom.predicate,
            dynamic,
            tuple(keys),
            tuple(new),
            tuple(same),
            tuple(consts),
            new_types,
            shape,
            tuple(self.type_index[self.domain.predicates[atom.predicate][j]] for j, _ in keys),
        )
