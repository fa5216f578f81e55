"""Reading HTN domains and problems from plain data, with every mistake located.

The private half of ``axo.coordination.domain``: a checker that collects ``Problem`` records
(file, line, ``$.path``, message, fix) and readers for each section of a domain or problem. It
builds the model defined in ``domain``; it knows nothing about grounding or search.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from axo.coordination.domain import (
    ROOT_TYPE,
    Atom,
    Call,
    CompoundTask,
    Domain,
    Method,
    Operator,
    Parameter,
    PlanningProblem,
)
from axo.errors import ConfigError, Problem
from axo.yamlsource import PathKey, Source, render_path

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")
_OBJECT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-.]*\Z")
_VAR = re.compile(r"\?[A-Za-z_][A-Za-z0-9_\-]*\Z")
_PAREN = re.compile(r"([^\s(),]+)\s*\((.*)\)\Z")
_YAML_TRUE = frozenset({"yes", "true", "on"})
_YAML_FALSE = frozenset({"no", "false", "off"})
_SYNTAX = "write it as `name ?x ?y` or `name(?x, ?y)`"


def _show(name: str, args: tuple[str, ...]) -> str:
    return f"{name}({', '.join(args)})" if args else name


def _parse_expr(text: str) -> tuple[bool, str, tuple[str, ...]] | None:
    """Split ``not on ?x ?y`` / ``on(?x, ?y)`` into (negated, name, args); None if unreadable."""
    s = " ".join(text.split())
    negated = s.startswith("not ")
    if negated:
        s = s[4:]
    m = _PAREN.match(s)
    if m:
        name, inner = m[1], m[2].strip()
        args = tuple(a.strip() for a in inner.split(",")) if inner else ()
    elif any(ch in s for ch in "(),"):
        return None
    else:
        name, *rest = s.split(" ") if s else [""]
        args = tuple(rest)
    if not _IDENT.match(name) or not all(_VAR.match(a) or _OBJECT.match(a) for a in args):
        return None
    return negated, name, args


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false"}.get(
        type(value), f"a {type(value).__name__}"
    )


class _Checker:
    """Collects located problems while reading one source."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.problems: list[Problem] = list(source.problems)

    def add(self, path: PathKey, message: str, fix: str = "") -> None:
        line = self.source.line_of(path) if self.source.lines else None
        self.problems.append(Problem(self.source.file, line, render_path(path), message, fix))

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError(sorted(self.problems, key=lambda p: (p.line is None, p.line or 0)))

    def mapping(self, value: object, path: PathKey, want: str) -> dict[str, Any]:
        if value is None:
            return {}
        if isinstance(value, dict):
            return {self._key(k, path): v for k, v in value.items()}
        self.add(path, f"expected {want}, got {_kind(value)}", "write it as `key: value` lines")
        return {}

    def _key(self, key: object, path: PathKey) -> str:
        """The key as written: YAML 1.1 reads `on:` (blocks world!) and `yes:` as booleans."""
        if isinstance(key, bool):
            words = _YAML_TRUE if key else _YAML_FALSE
            written = [
                p[-1]
                for p in self.source.lines
                if len(p) == len(path) + 1 and p[:-1] == path and str(p[-1]).lower() in words
            ]
            if len(written) == 1:
                return str(written[0])
        return str(key)

    def sequence(self, value: object, path: PathKey, want: str) -> list[Any]:
        if value is None:
            return []
        if isinstance(value, list):
            return value
        self.add(path, f"expected {want}, got {_kind(value)}", "write it as a list (`- item`)")
        return []

    def keys(
        self,
        data: dict[str, Any],
        path: PathKey,
        allowed: Sequence[str],
        required: Sequence[str] = (),
    ) -> None:
        for key in data:
            if key not in allowed:
                self.add(
                    (*path, key),
                    f"unknown key '{key}'",
                    f"expected one of: {', '.join(allowed)}{_suggest(key, allowed)}",
                )
        for key in required:
            if key not in data:
                self.add(path, f"missing required key '{key}'", f"add '{key}: …' here")

    def name(
        self, value: object, path: PathKey, what: str, pattern: re.Pattern[str] = _IDENT
    ) -> str | None:
        text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
        if text is None or not pattern.match(text):
            self.add(
                path,
                f"{what} must be a name, got {value!r}",
                "use letters, digits, '_' and '-', starting with a letter or '_'",
            )
            return None
        return text

    def type_name(self, value: object, path: PathKey, types: Mapping[str, str]) -> str | None:
        name = self.name(value, path, "a type")
        if name is not None and name != ROOT_TYPE and name not in types:
            known = sorted({ROOT_TYPE, *types})
            self.add(
                path,
                f"unknown type '{name}'",
                f"declare it under types, or use one of: {', '.join(known)}{_suggest(name, known)}",
            )
            return None
        return name


@dataclass
class _Scope:
    """What the terms of one expression may refer to, and how to name its owner."""

    domain: Domain
    variables: dict[str, str]
    objects: Mapping[str, str]
    owner: str
    ground: bool = False


def _parameters(
    c: _Checker,
    value: object,
    path: PathKey,
    types: Mapping[str, str],
    owner: str,
    taken: Mapping[str, str] | None = None,
) -> tuple[Parameter, ...]:
    """Read ``{?x: type}``; ``taken`` maps variables already in scope to their owner."""
    params: list[Parameter] = []
    seen = dict(taken or {})
    for key, type_value in c.mapping(value, path, "a mapping of variables to types").items():
        var = key if key.startswith("?") else f"?{key}"
        if not _VAR.match(var):
            c.add((*path, key), f"'{key}' is not a variable name", "write it like ?x or ?block")
            continue
        if var in seen:
            c.add(
                (*path, key),
                f"variable {var} is already a parameter of {seen[var]}",
                "rename it, or leave it out here",
            )
            continue
        seen[var] = owner
        type_name = c.type_name(type_value, (*path, key), types)
        if type_name is not None:
            params.append(Parameter(var, type_name))
    return tuple(params)


def _terms(
    c: _Checker,
    path: PathKey,
    name: str,
    kind: str,
    args: tuple[str, ...],
    expected: Sequence[str],
    scope: _Scope,
) -> bool:
    """Check arity, binding and types of ``args`` against ``expected`` parameter types."""
    if len(args) != len(expected):
        want = f"({', '.join(expected)})" if expected else "no arguments"
        shape = tuple(f"<{t}>" if scope.ground else f"?{t}" for t in expected)
        c.add(
            path,
            f"{kind} '{name}' takes {len(expected)} argument"
            f"{'' if len(expected) == 1 else 's'} {want}, got {len(args)}",
            f"write {_show(name, shape)}",
        )
        return False
    ok = True
    for i, (arg, want) in enumerate(zip(args, expected, strict=True), start=1):
        if arg.startswith("?"):
            if scope.ground:
                c.add(path, f"variable {arg} in a problem", "write the name of an object")
                ok = False
                continue
            have = scope.variables.get(arg)
            if have is None:
                choices = ", ".join(scope.variables)
                c.add(
                    path,
                    f"unbound variable {arg}: it is not a parameter of {scope.owner}",
                    f"add {arg} to the parameters of {scope.owner}"
                    + (f", or use one of: {choices}" if choices else ""),
                )
                ok = False
                continue
        else:
            found = scope.objects.get(arg)
            if found is None:
                what = "object" if scope.ground else "constant"
                fix = (
                    "declare it under objects"
                    if scope.ground
                    else f"declare it under constants, or write a variable (?{arg})"
                )
                c.add(path, f"unknown {what} '{arg}'", fix + _suggest(arg, scope.objects))
                ok = False
                continue
            have = found
        if not scope.domain.is_subtype(have, want):
            c.add(
                path,
                f"argument {i} of '{name}' must be a {want}, but {arg} is a {have}",
                f"give {arg} the type {want} (or a subtype of it)",
            )
            ok = False
    return ok


def _expr(
    c: _Checker, value: object, path: PathKey, scope: _Scope, *, call: bool, negation: bool = False
) -> tuple[bool, Atom | Call] | None:
    what = "a task call" if call else "a fact"
    if not isinstance(value, str):
        c.add(
            path,
            f"expected {what} as text, got {_kind(value)}",
            f"{_SYNTAX}; inside [ ] YAML splits `name(a, b)` at the comma, so quote it",
        )
        return None
    parsed = _parse_expr(value)
    if parsed is None:
        c.add(
            path,
            f"cannot read {value!r} as {what}",
            f"{_SYNTAX}; inside [ ] YAML splits `name(a, b)` at the comma, so quote it",
        )
        return None
    negated, name, args = parsed
    if negated and not negation:
        c.add(
            path,
            f"'not' is not allowed here: {value!r}",
            "negation is only allowed in preconditions",
        )
        return None
    domain = scope.domain
    if call:
        params = domain.signature(name)
        if params is None:
            known = [*domain.operators, *domain.tasks]
            c.add(
                path,
                f"unknown task '{name}'",
                f"declare it under tasks or operators{_suggest(name, known)}",
            )
            return None
        ok = _terms(c, path, name, "task", args, [p.type for p in params], scope)
        return (negated, Call(name, args)) if ok else None
    types = domain.predicates.get(name)
    if types is None:
        c.add(
            path,
            f"undefined predicate '{name}'",
            f"declare it under predicates{_suggest(name, domain.predicates)}",
        )
        return None
    ok = _terms(c, path, name, "predicate", args, types, scope)
    return (negated, Atom(name, args)) if ok else None


def _atoms(
    c: _Checker, value: object, path: PathKey, scope: _Scope, *, negation: bool = False
) -> tuple[tuple[Atom, ...], tuple[Atom, ...]]:
    pos: list[Atom] = []
    neg: list[Atom] = []
    for i, item in enumerate(c.sequence(value, path, "a list of facts")):
        got = _expr(c, item, (*path, i), scope, call=False, negation=negation)
        if got is not None and isinstance(got[1], Atom):
            (neg if got[0] else pos).append(got[1])
    return tuple(pos), tuple(neg)


def _calls(c: _Checker, value: object, path: PathKey, scope: _Scope) -> tuple[Call, ...]:
    out: list[Call] = []
    for i, item in enumerate(c.sequence(value, path, "a list of task calls")):
        got = _expr(c, item, (*path, i), scope, call=True)
        if got is not None and isinstance(got[1], Call):
            out.append(got[1])
    return tuple(out)


# --- sections ------------------------------------------------------------------------------


def _types(c: _Checker, value: object) -> dict[str, str]:
    path: PathKey = ("types",)
    if isinstance(value, list):
        raw: dict[str, Any] = {str(item): None for item in value}
    else:
        raw = c.mapping(value, path, "a mapping of types to their parent types")
    types: dict[str, str] = {}
    for key, parent in raw.items():
        if c.name(key, (*path, key), "a type") is None:
            continue
        if key == ROOT_TYPE:
            c.add(
                (*path, key),
                "'object' is the root type and is always declared",
                "leave it out; a type without a parent is a subtype of object",
            )
            continue
        types[key] = ROOT_TYPE if parent is None else str(parent)
    for key, parent in types.items():
        if parent != ROOT_TYPE and parent not in types:
            known = sorted({ROOT_TYPE, *types})
            c.add(
                (*path, key),
                f"unknown type '{parent}'",
                f"declare it under types, or use one of: {', '.join(known)}"
                f"{_suggest(parent, known)}",
            )
            types[key] = ROOT_TYPE
    for key in types:
        chain = [key]
        while (nxt := types.get(chain[-1], ROOT_TYPE)) != ROOT_TYPE and nxt not in chain:
            chain.append(nxt)
        if nxt == key and key == min(chain):
            c.add(
                (*path, key),
                f"the type hierarchy has a cycle: {' -> '.join([*chain, key])}",
                "make one of these types a subtype of object",
            )
    return types


def _objects(
    c: _Checker, value: object, path: PathKey, types: Mapping[str, str], taken: Mapping[str, str]
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    seen = dict(taken)
    for type_key, names in c.mapping(value, path, "a mapping of types to names").items():
        type_name = c.type_name(type_key, (*path, type_key), types)
        items = names if isinstance(names, list) else [names]
        for i, item in enumerate(items):
            where = (*path, type_key, i) if isinstance(names, list) else (*path, type_key)
            name = c.name(item, where, "an object", _OBJECT)
            if name is None or type_name is None:
                continue
            if name in seen:
                c.add(where, f"object '{name}' is declared twice", "declare each object once")
                continue
            seen[name] = type_name
            out.append((name, type_name))
    return out


def _predicates(c: _Checker, value: object, types: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    path: PathKey = ("predicates",)
    for key, arg_types in c.mapping(value, path, "a mapping of predicates to types").items():
        if c.name(key, (*path, key), "a predicate") is None:
            continue
        items = c.sequence(arg_types, (*path, key), "a list of argument types")
        checked = [c.type_name(t, (*path, key, i), types) for i, t in enumerate(items)]
        out[key] = tuple(t or ROOT_TYPE for t in checked)
    return out


def _operator(
    c: _Checker, name: str, body: object, params: tuple[Parameter, ...], stub: Domain
) -> Operator:
    path: PathKey = ("operators", name)
    data = c.mapping(body, path, "an operator (parameters, preconditions, effects)")
    c.keys(data, path, ("parameters", "preconditions", "effects", "internal"))
    owner = f"operator '{name}'"
    scope = _Scope(stub, {p.name: p.type for p in params}, dict(stub.constants), owner)
    pre, neg = _atoms(c, data.get("preconditions"), (*path, "preconditions"), scope, negation=True)
    effects = c.mapping(data.get("effects"), (*path, "effects"), "a mapping (add, delete)")
    c.keys(effects, (*path, "effects"), ("add", "delete"))
    add, _ = _atoms(c, effects.get("add"), (*path, "effects", "add"), scope)
    delete, _ = _atoms(c, effects.get("delete"), (*path, "effects", "delete"), scope)
    internal = data.get("internal", False)
    if not isinstance(internal, bool):
        c.add(
            (*path, "internal"),
            f"expected true or false, got {internal!r}",
            "write internal: true for a bookkeeping operator",
        )
        internal = False
    return Operator(name, params, pre, neg, add, delete, internal)


def _method(
    c: _Checker, value: object, path: PathKey, task: CompoundTask, stub: Domain
) -> Method | None:
    data = c.mapping(value, path, "a method (name, parameters, preconditions, subtasks)")
    c.keys(data, path, ("name", "parameters", "preconditions", "subtasks"), ("name",))
    name = c.name(data["name"], (*path, "name"), "a method name") if "name" in data else None
    owner = f"method '{name or '?'}' of task '{task.name}'"
    taken = {p.name: f"task '{task.name}'" for p in task.parameters}
    params = _parameters(c, data.get("parameters"), (*path, "parameters"), stub.types, owner, taken)
    variables = {p.name: p.type for p in (*task.parameters, *params)}
    scope = _Scope(stub, variables, dict(stub.constants), owner)
    pre, neg = _atoms(c, data.get("preconditions"), (*path, "preconditions"), scope, negation=True)
    subtasks = _calls(c, data.get("subtasks"), (*path, "subtasks"), scope)
    return Method(name, params, pre, neg, subtasks) if name else None


def read_domain(source: Source) -> Domain:
    c = _Checker(source)
    data = c.mapping(source.data, (), "a domain")
    c.keys(
        data, (), ("domain", "types", "constants", "predicates", "operators", "tasks"), ("domain",)
    )
    name = c.name(data["domain"], ("domain",), "the domain name") if "domain" in data else None
    types = _types(c, data.get("types"))
    constants = _objects(c, data.get("constants"), ("constants",), types, {})
    predicates = _predicates(c, data.get("predicates"), types)
    raw_ops = c.mapping(data.get("operators"), ("operators",), "a mapping of operators")
    raw_tasks = c.mapping(data.get("tasks"), ("tasks",), "a mapping of tasks")
    # Signatures first, so bodies may call operators and tasks declared anywhere in the file.
    sigs: dict[tuple[str, str], tuple[Parameter, ...]] = {}
    for section, raw in (("operators", raw_ops), ("tasks", raw_tasks)):
        for key, body in raw.items():
            if c.name(key, (section, key), "a name") is None:
                continue
            if section == "tasks" and key in raw_ops:
                c.add(
                    (section, key),
                    f"'{key}' is both an operator and a task",
                    "rename one of them; calls must say which they mean",
                )
            params = body.get("parameters") if isinstance(body, dict) else None
            sigs[section, key] = _parameters(
                c, params, (section, key, "parameters"), types, f"{section[:-1]} '{key}'"
            )
    stub = Domain(
        name or "domain",
        types,
        tuple(constants),
        predicates,
        {k: Operator(k, p) for (s, k), p in sigs.items() if s == "operators"},
        {k: CompoundTask(k, p) for (s, k), p in sigs.items() if s == "tasks"},
    )
    operators = {
        k: _operator(c, k, raw_ops[k], stub.operators[k].parameters, stub) for k in stub.operators
    }
    tasks: dict[str, CompoundTask] = {}
    for key, task in stub.tasks.items():
        body = c.mapping(raw_tasks[key], ("tasks", key), "a task (parameters, methods)")
        c.keys(body, ("tasks", key), ("parameters", "methods"))
        methods: list[Method] = []
        items = c.sequence(body.get("methods"), ("tasks", key, "methods"), "a list of methods")
        for i, item in enumerate(items):
            method = _method(c, item, ("tasks", key, "methods", i), task, stub)
            if method is not None and any(m.name == method.name for m in methods):
                c.add(
                    ("tasks", key, "methods", i, "name"),
                    f"task '{key}' already has a method named '{method.name}'",
                    "give each method of a task its own name",
                )
            elif method is not None:
                methods.append(method)
        tasks[key] = replace(task, methods=tuple(methods))
    c.raise_if_any()
    return replace(stub, operators=operators, tasks=tasks, file=source.file)


def read_problem(source: Source, domain: Domain, default_name: str) -> PlanningProblem:
    c = _Checker(source)
    data = c.mapping(source.data, (), "a problem")
    c.keys(data, (), ("problem", "domain", "objects", "init", "tasks", "goal"), ("tasks",))
    name = c.name(data.get("problem", default_name), ("problem",), "the problem name")
    if "domain" in data and data["domain"] != domain.name:
        c.add(
            ("domain",),
            f"this problem is for domain '{data['domain']}', not '{domain.name}'",
            "load it with the domain it names, or correct the name",
        )
    constants = dict(domain.constants)
    objects = _objects(c, data.get("objects"), ("objects",), domain.types, constants)
    scope = _Scope(domain, {}, {**constants, **dict(objects)}, "the problem", ground=True)
    init, _ = _atoms(c, data.get("init"), ("init",), scope)
    tasks = _calls(c, data.get("tasks"), ("tasks",), scope)
    goal, _ = _atoms(c, data.get("goal"), ("goal",), scope)
    c.raise_if_any()
    return PlanningProblem(
        name or default_name,
        domain.name,
        tuple(objects),
        frozenset(init),
        tasks,
        goal,
        file=source.file,
    )


def read_method(source: Source, domain: Domain, task: str) -> Method:
    """Check one new method for ``task``; see ``domain.parse_method``."""
    c = _Checker(source)
    if task not in domain.tasks:
        c.add(
            (),
            f"unknown task '{task}'",
            f"add methods to one of: {', '.join(domain.tasks)}{_suggest(task, domain.tasks)}",
        )
        c.raise_if_any()
    found = _method(c, source.data, (), domain.tasks[task], domain)
    if found is not None and any(m.name == found.name for m in domain.tasks[task].methods):
        c.add(
            ("name",),
            f"task '{task}' already has a method named '{found.name}'",
            "give the new method its own name",
        )
    c.raise_if_any()
    assert found is not None
    return found
