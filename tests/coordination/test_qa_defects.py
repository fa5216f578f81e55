"""Regressions for defects a QA pass reproduced: each compares with the reference planner and
checks plans with its simulator."""

from __future__ import annotations

import itertools

import pytest

from axo.coordination import (
    Call,
    Domain,
    FailureReason,
    Plan,
    PlanFailure,
    Planner,
    PlanningProblem,
    _compiling,
    _grounding,
    htn,
    parse_domain,
    parse_problem,
)
from tests.coordination import reference


def agrees(domain: Domain, problem: PlanningProblem) -> Plan | PlanFailure:
    """Plan, check that the reference finds the same plan (or none), and replay a plan."""
    result = Planner(domain).plan(problem)
    expected = reference.plan(domain, problem)
    if isinstance(result, Plan):
        assert list(result.steps) == expected
        assert reference.simulate(domain, problem, result.steps) is None
    else:
        assert expected is None, result
    return result


# --- 1. static preconditions of operators, when no operator has a dynamic one ----------------

STATIC_ONLY = """
domain: d
types: {thing: object}
predicates: {broken: [thing], ok: [thing], done: [thing]}
operators:
  use:
    parameters: {x: thing}
    preconditions: [not broken ?x]
    effects: {add: [done ?x]}
  use2:
    parameters: {x: thing}
    preconditions: [ok ?x]
    effects: {add: [done ?x]}
%s
tasks:
  t:
    methods:
      - {name: any, parameters: {x: thing}, subtasks: [use ?x]}
  t2:
    methods:
      - {name: any, parameters: {x: thing}, subtasks: [use2 ?x]}
"""
# an operator with a dynamic precondition widens the tables: the defect needed none
DYNAMIC = """  unrelated:
    parameters: {x: thing}
    preconditions: [done ?x]"""


@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("tasks", [["use a"], ["use b"], ["use2 a"], ["use2 b"], ["t"], ["t2"]])
@pytest.mark.parametrize("init", [[], ["broken a"], ["ok b"], ["broken a", "broken b", "ok a"]])
def test_static_preconditions_of_operators_hold_whatever_the_widths(
    dynamic: bool, tasks: list[str], init: list[str]
) -> None:
    domain = parse_domain(STATIC_ONLY % (DYNAMIC if dynamic else ""))
    problem = parse_problem(f"objects: {{thing: [a, b]}}\ninit: {init}\ntasks: {tasks}", domain)
    agrees(domain, problem)


def test_a_negative_static_precondition_blocks_an_operator_called_directly() -> None:
    domain = parse_domain(STATIC_ONLY % "")
    problem = parse_problem("objects: {thing: [a, b]}\ninit: [broken a]\ntasks: [use a]", domain)
    assert isinstance(agrees(domain, problem), PlanFailure)
    problem = parse_problem("objects: {thing: [a, b]}\ninit: [broken a]\ntasks: [t]", domain)
    result = agrees(domain, problem)
    assert isinstance(result, Plan) and result.steps == (Call("use", ("b",)),)


# --- 2. a false static goal fact, with a task that has no method grounding -------------------

STATIC_GOAL = parse_domain("""
domain: d
types: {thing: object}
predicates: {target: [thing], done: [thing]}
operators:
  work:
    parameters: {x: thing}
    effects: {add: [done ?x]}
tasks:
  ask_human: {}
  main:
    parameters: {x: thing}
    methods:
      - {name: escalate, subtasks: [ask_human]}
      - {name: do_it, subtasks: [work ?x]}
""")


def static_goal_problem(goal: str) -> PlanningProblem:
    text = f"objects: {{thing: [a, b]}}\ninit: [target a]\ntasks: [main a]\ngoal: [{goal}]"
    return parse_problem(text, STATIC_GOAL)


def test_a_false_static_goal_fact_fails_every_plan_even_with_frontiers() -> None:
    failure = agrees(STATIC_GOAL, static_goal_problem("target b"))
    assert isinstance(failure, PlanFailure)
    assert failure.reason is FailureReason.UNREACHABLE_GOAL
    assert failure.message.startswith("goal fact target(b) can never hold: it is static")
    # no method can help: so no frontiers to ask for one
    assert failure.frontiers == ()


def test_a_false_static_goal_fact_fails_after_methods_are_added_too() -> None:
    planner = Planner(STATIC_GOAL)
    planner.add_method("ask_human", {"name": "give_up", "subtasks": []})
    result = planner.plan(static_goal_problem("target b"))
    assert isinstance(result, PlanFailure)
    assert result.reason is FailureReason.UNREACHABLE_GOAL


def test_the_search_itself_never_returns_a_plan_whose_static_goal_is_false() -> None:
    problem = static_goal_problem("target b")
    grounding = _grounding.Grounder(_compiling.compiled(STATIC_GOAL), problem).run()
    assert grounding.hopeless == 1
    result = htn._Search(grounding, 1000, 100).run()  # what ``plan`` no longer gets to
    assert isinstance(result, PlanFailure)


def test_a_true_static_goal_fact_is_no_obstacle() -> None:
    # ask_human is met first (a frontier), then do_it plans
    result = agrees(STATIC_GOAL, static_goal_problem("target a"))
    assert isinstance(result, Plan) and result.steps == (Call("work", ("a",)),)


# --- 3. compound tasks without methods (frontiers) of any arity ------------------------------


@pytest.mark.parametrize("arity", [0, 1, 2, 3])
def test_a_task_without_methods_is_a_frontier_of_any_arity_until_a_method_is_added(
    arity: int,
) -> None:
    names = ["x", "p", "y"][:arity]
    types = ["thing", "place", "thing"][:arity]
    params = ", ".join(f"{n}: {t}" for n, t in zip(names, types, strict=True))
    domain = parse_domain(f"""
domain: d
types: {{thing: object, place: object}}
predicates: {{seen: [thing, place]}}
operators:
  look:
    parameters: {{x: thing, p: place}}
    effects: {{add: [seen ?x ?p]}}
tasks:
  bring:
    parameters: {{{params}}}
""")
    args = ["a", "home", "b"][:arity]
    problem = parse_problem(
        "objects: {thing: [a, b], place: [home, away]}\ninit: []\n"
        f"tasks: [{' '.join(['bring', *args])}]\ngoal: [seen b away]",
        domain,
    )
    failure = agrees(domain, problem)
    assert isinstance(failure, PlanFailure)
    assert failure.reason is FailureReason.NO_METHOD
    assert [f.task for f in failure.frontiers] == [Call("bring", tuple(args))]
    planner = Planner(domain)
    planner.add_method(
        "bring",
        {
            "name": "by_looking",
            "parameters": {"q": "place", "z": "thing"},
            "preconditions": ["not seen ?z ?q"],
            "subtasks": [
                f"look {'?x' if arity else '?z'} {'?p' if arity > 1 else '?q'}",
                "look ?z ?q",
            ],
        },
    )
    result = planner.plan(problem)
    assert isinstance(result, Plan)
    assert list(result.steps) == reference.plan(planner.domain, problem)
    assert reference.simulate(planner.domain, problem, result.steps) is None


# --- 4, 5. problems without objects, and with no fact that can exist ------------------------


@pytest.mark.parametrize("goal", [[], ["ready"], ["at_home"]])
def test_a_problem_without_objects(goal: list[str]) -> None:
    domain = parse_domain("""
domain: d
predicates: {ready: [], at_home: [], at: [object]}
operators:
  go: {preconditions: [ready], effects: {add: [at_home]}}
tasks:
  start: {methods: [{name: m, subtasks: [go]}]}
""")
    for tasks in (["go"], ["start"], []):
        problem = parse_problem(f"init: [ready]\ntasks: {tasks}\ngoal: {goal}", domain)
        agrees(domain, problem)
    assert isinstance(agrees(domain, parse_problem("init: [ready]\ntasks: [go]", domain)), Plan)


def test_an_operator_called_when_no_fact_can_exist() -> None:
    domain = parse_domain("""
domain: d
types: {robot: object, box: object}
predicates: {holding: [robot, box]}
operators:
  wave: {parameters: {r: robot}}
  grab:
    parameters: {r: robot, b: box}
    effects: {add: [holding ?r ?b]}
tasks:
  greet: {parameters: {r: robot}, methods: [{name: m, subtasks: [wave ?r]}]}
""")
    for tasks in ("[wave r1]", "[greet r1]", "[greet r1, wave r1]"):
        problem = parse_problem(f"objects: {{robot: [r1]}}\ninit: []\ntasks: {tasks}", domain)
        assert isinstance(agrees(domain, problem), Plan)


# --- 6. failure messages name the facts that make an operator never apply --------------------


def exhausted(domain: Domain, problem: PlanningProblem) -> str:
    failure = agrees(domain, problem)
    assert isinstance(failure, PlanFailure)
    assert failure.reason is FailureReason.EXHAUSTED
    return failure.message


@pytest.mark.parametrize("dynamic", [False, True])
def test_a_failed_static_precondition_is_named(dynamic: bool) -> None:
    domain = parse_domain(STATIC_ONLY % (DYNAMIC if dynamic else ""))
    problem = parse_problem("objects: {thing: [a]}\ninit: [broken a]\ntasks: [use a]", domain)
    message = exhausted(domain, problem)
    assert message.endswith(
        "use(a) was not applicable (not broken(a), a static fact that always holds)"
    )
    problem = parse_problem("objects: {thing: [a]}\ninit: []\ntasks: [use2 a]", domain)
    message = exhausted(domain, problem)
    assert message.endswith("use2(a) was not applicable (ok(a), a static fact that never holds)")


def test_a_fact_that_can_never_hold_is_named_beside_the_unmet_ones() -> None:
    domain = parse_domain("""
domain: d
types: {thing: object}
predicates: {ready: [thing], done: [thing]}
operators:
  finish: {parameters: {x: thing}, preconditions: [ready ?x, done ?x]}
  unready: {parameters: {x: thing}, effects: {delete: [ready ?x]}}
  fix: {parameters: {x: thing}, effects: {add: [done ?x]}}
tasks: {}
""")
    text = "objects: {thing: [a, b]}\ninit: [ready a]\ntasks: [unready a, finish a]"
    message = exhausted(domain, parse_problem(text, domain))
    assert message.endswith(
        "1 steps, then finish(a) was not applicable (ready(a), done(a), a fact that can never hold)"
    )


@pytest.mark.parametrize("dynamic", ["", ", not done ?x"])
def test_static_checks_over_every_combination_agree_with_the_reference(dynamic: str) -> None:
    """Operators with static preconditions, positive and negative, with and without a dynamic
    one, called directly and through a method: every initial state of two objects."""
    domain = parse_domain(f"""
domain: d
types: {{thing: object}}
predicates: {{good: [thing], bad: [thing], done: [thing]}}
operators:
  only_good: {{parameters: {{x: thing}}, preconditions: [good ?x], effects: {{add: [done ?x]}}}}
  not_bad: {{parameters: {{x: thing}}, preconditions: [not bad ?x], effects: {{add: [done ?x]}}}}
  both:
    parameters: {{x: thing}}
    preconditions: [good ?x, not bad ?x{dynamic}]
    effects: {{add: [done ?x]}}
tasks:
  any:
    methods:
      - {{name: a, parameters: {{x: thing}}, subtasks: [only_good ?x, not_bad ?x]}}
      - {{name: b, parameters: {{x: thing}}, subtasks: [both ?x]}}
""")
    facts = ["good a", "good b", "bad a", "bad b"]
    for k in range(len(facts) + 1):
        for init in itertools.combinations(facts, k):
            for tasks in ("[any]", "[both a, not_bad b]", "[only_good b]"):
                text = f"objects: {{thing: [a, b]}}\ninit: {list(init)}\ntasks: {tasks}"
                agrees(domain, parse_problem(text, domain))


# --- a variable twice in one fact: its stride is added twice to one cell of the layout --------

SELF_LOOPS = """
domain: loops
types: {node: object}
predicates: {link: [node, node], seen: [node], paired: [node, node]}
operators:
  visit:
    parameters: {n: node}
    preconditions: [link ?n ?n, not seen ?n]
    effects: {add: [seen ?n, paired ?n ?n]}
tasks:
  tour:
    methods:
      - name: next
        parameters: {n: node}
        preconditions: [link ?n ?n, not seen ?n]
        subtasks: [visit ?n, tour]
      - name: done
"""


def test_a_variable_repeated_in_a_fact_numbers_the_fact_of_that_object_twice() -> None:
    domain = parse_domain(SELF_LOOPS)
    problem = parse_problem(
        "objects: {node: [a, b, c, d]}\n"
        "init: [link a b, link b b, link c c, link d a]\n"
        "tasks: [tour]\n"
        "goal: [seen b, seen c, paired c c]",
        domain,
    )
    result = agrees(domain, problem)
    assert isinstance(result, Plan)
    assert [str(c) for c in result.actions] == ["visit(b)", "visit(c)"]
