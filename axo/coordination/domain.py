"""HTN domains and problems: the model, and reading it from YAML or Python with located errors.

This module knows the shape of a domain (typed objects, predicates, primitive operators, compound
tasks with ordered methods) and of a problem (objects, initial facts, a task list, an optional
goal), and every mistake a user can make in them: each one becomes an ``axo.errors.Problem`` with
the file, line, ``$.path``, what is wrong and how to fix it, all reported at once in one
``ConfigError`` (the readers are in ``_reading``). It knows nothing about grounding or search
(``axo.coordination.htn``).

Syntax, the same everywhere (facts, preconditions, effects, subtasks, task lists)::

    on ?x ?y          a fact or a call, words separated by spaces
    on(?x, ?y)        the same; inside a YAML flow list ``[ ]`` quote it, YAML splits at commas
    not clear ?y      a negative precondition (preconditions only)
    ?x                a variable; any other word is an object (a constant in a domain)

Parameters are a mapping from variable to type (``?x: block``; the ``?`` may be left out, which
flow mappings ``{x: block}`` need). A method's parameters are the variables it adds to its
task's; every variable used anywhere must be one of them. Arguments are checked against declared
types: a variable of type ``airport`` fits a parameter of type ``location`` when ``airport`` is
declared as a subtype of ``location``, never the other way round.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from axo.yamlsource import Source, load_yaml, parse_yaml

ROOT_TYPE = "object"


def _show(name: str, args: tuple[str, ...]) -> str:
    return f"{name}({', '.join(args)})" if args else name


@dataclass(frozen=True, slots=True)
class Atom:
    """A predicate applied to terms: ``on(a, b)``, or ``on(?x, ?y)`` inside a domain."""

    predicate: str
    args: tuple[str, ...] = ()

    def __str__(self) -> str:
        return _show(self.predicate, self.args)


@dataclass(frozen=True, slots=True)
class Call:
    """A task or operator applied to terms; a ground ``Call`` of an operator is an action."""

    name: str
    args: tuple[str, ...] = ()

    def __str__(self) -> str:
        return _show(self.name, self.args)


@dataclass(frozen=True, slots=True)
class Parameter:
    """A typed variable; ``name`` keeps its leading ``?``."""

    name: str
    type: str


@dataclass(frozen=True, slots=True)
class Operator:
    """A primitive task: applicable when its preconditions hold; deletes, then adds, facts.

    ``internal`` marks bookkeeping (SHOP's ``!!`` operators): it changes the planner's state
    but is nothing anyone executes, so ``Plan.actions`` leaves it out.
    """

    name: str
    parameters: tuple[Parameter, ...]
    preconditions: tuple[Atom, ...] = ()
    negative_preconditions: tuple[Atom, ...] = ()
    add: tuple[Atom, ...] = ()
    delete: tuple[Atom, ...] = ()
    internal: bool = False


@dataclass(frozen=True, slots=True)
class Method:
    """One way to decompose a compound task; ``parameters`` are those beyond the task's own."""

    name: str
    parameters: tuple[Parameter, ...] = ()
    preconditions: tuple[Atom, ...] = ()
    negative_preconditions: tuple[Atom, ...] = ()
    subtasks: tuple[Call, ...] = ()


@dataclass(frozen=True, slots=True)
class CompoundTask:
    """A compound task and its methods, tried in order."""

    name: str
    parameters: tuple[Parameter, ...]
    methods: tuple[Method, ...] = ()


@dataclass(frozen=True)
class Domain:
    """A checked HTN domain. Build it with ``load_domain``, ``parse_domain`` or ``make_domain``.

    Attributes:
        types: each declared type and its parent (``object`` is the root and is not listed).
        constants: objects every problem of the domain has, as (name, type).
        predicates: each predicate and the types of its arguments.
    """

    name: str
    types: Mapping[str, str]
    constants: tuple[tuple[str, str], ...]
    predicates: Mapping[str, tuple[str, ...]]
    operators: Mapping[str, Operator]
    tasks: Mapping[str, CompoundTask]
    file: str = field(default="<python>", compare=False)

    def is_subtype(self, sub: str, sup: str) -> bool:
        """Whether ``sub`` is ``sup`` or declared (transitively) below it."""
        while sub != sup:
            if sub == ROOT_TYPE:
                return False
            sub = self.types.get(sub, ROOT_TYPE)
        return True

    @cached_property
    def static_predicates(self) -> frozenset[str]:
        """Predicates no operator adds or deletes: their facts are fixed by the problem."""
        changed = {a.predicate for op in self.operators.values() for a in (*op.add, *op.delete)}
        return frozenset(self.predicates) - changed

    def signature(self, name: str) -> tuple[Parameter, ...] | None:
        """The parameters of the operator or task called ``name`` (None when there is none)."""
        if name in self.operators:
            return self.operators[name].parameters
        if name in self.tasks:
            return self.tasks[name].parameters
        return None

    def with_method(self, task: str, method: Method) -> Domain:
        """A copy of the domain with ``method`` appended to ``task``'s methods (unchecked)."""
        tasks = dict(self.tasks)
        tasks[task] = replace(tasks[task], methods=(*tasks[task].methods, method))
        return replace(self, tasks=tasks)


@dataclass(frozen=True)
class PlanningProblem:
    """A checked HTN problem: objects (in declaration order), initial facts, tasks, goal."""

    name: str
    domain: str
    objects: tuple[tuple[str, str], ...]
    init: frozenset[Atom]
    tasks: tuple[Call, ...]
    goal: tuple[Atom, ...] = ()
    file: str = field(default="<python>", compare=False)


# --- reading -------------------------------------------------------------------------------
# The readers live in ``_reading`` (they build the classes above, hence the local imports).


def load_domain(path: str | os.PathLike[str]) -> Domain:
    """Read and check the domain file at ``path``.

    Raises:
        ConfigError: every problem found (file, YAML, unknown keys, types, predicates, arity,
            unbound variables, unknown tasks), at once.
    """
    from axo.coordination._reading import read_domain

    return read_domain(load_yaml(path, what="domain", collect=True))


def parse_domain(text: str, *, file: str = "<string>") -> Domain:
    """Read and check a domain from YAML text; see ``load_domain``."""
    from axo.coordination._reading import read_domain

    return read_domain(parse_yaml(text, file=file, what="domain", collect=True))


def make_domain(data: Mapping[str, Any]) -> Domain:
    """Check a domain given as plain Python data (the YAML's shape); see ``load_domain``."""
    from axo.coordination._reading import read_domain

    return read_domain(Source(file="<python>", data=dict(data)))


def load_problem(path: str | os.PathLike[str], domain: Domain) -> PlanningProblem:
    """Read the problem file at ``path`` and check it against ``domain``.

    Raises:
        ConfigError: every problem found, at once.
    """
    from axo.coordination._reading import read_problem

    source = load_yaml(path, what="problem", collect=True)
    return read_problem(source, domain, os.path.splitext(os.path.basename(source.file))[0])


def parse_problem(text: str, domain: Domain, *, file: str = "<string>") -> PlanningProblem:
    """Read a problem from YAML text and check it against ``domain``."""
    from axo.coordination._reading import read_problem

    return read_problem(
        parse_yaml(text, file=file, what="problem", collect=True), domain, "problem"
    )


def make_problem(
    domain: Domain,
    *,
    objects: Mapping[str, Iterable[str]],
    init: Iterable[str | Atom],
    tasks: Iterable[str | Call],
    goal: Iterable[str | Atom] = (),
    name: str = "problem",
) -> PlanningProblem:
    """Build a problem from Python values (facts and calls as text or ``Atom``/``Call``).

    Raises:
        ConfigError: every problem found, located by ``$.path`` (no line numbers).
    """
    from axo.coordination._reading import read_problem

    data = {
        "problem": name,
        "objects": {t: list(names) for t, names in objects.items()},
        "init": [str(a) for a in init],
        "tasks": [str(t) for t in tasks],
        "goal": [str(a) for a in goal],
    }
    return read_problem(Source(file="<python>", data=data), domain, name)


def parse_method(
    domain: Domain, task: str, method: Mapping[str, Any] | str, *, file: str = "<runtime>"
) -> Method:
    """Check a new method for ``task`` (a mapping, or YAML text of one) against ``domain``.

    Paths in problems are relative to the method (``$.subtasks[1]``), so they can be shown to
    whoever wrote it.

    Raises:
        ConfigError: the task is unknown or the method is wrong (unknown tasks or predicates,
            arity, unbound variables, types, a name the task already uses).
    """
    from axo.coordination._reading import read_method

    if isinstance(method, str):
        source = parse_yaml(method, file=file, what="method", collect=True)
    else:
        source = Source(file=file, data=dict(method))
    return read_method(source, domain, task)
