"""The HTN planner: domain errors, search behaviour, frontiers, and agreement with a reference."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axo.coordination import (
    Call,
    Domain,
    FailureReason,
    Plan,
    PlanFailure,
    Planner,
    PlanningProblem,
    _assembly,
    _binding,
    _grounding,
    _numbering,
    load_domain,
    load_problem,
    make_problem,
    parse_domain,
    parse_problem,
)
from axo.errors import ConfigError, Problem, UsageError
from tests.coordination import reference

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
DOMAINS = HERE.parent.parent / "workflows" / "domains"
BLOCKS = load_domain(DOMAINS / "blocks.yaml")
LOGISTICS = load_domain(DOMAINS / "logistics.yaml")
TRAVEL = load_domain(FIXTURES / "travel.yaml")
PROPERTY = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load_domain(path)
    return list(caught.value.problems)


def only_problem(path: Path) -> Problem:
    (problem,) = problems_of(path)
    return problem


def planned(domain: Domain, problem: PlanningProblem) -> Plan:
    result = Planner(domain).plan(problem)
    assert isinstance(result, Plan), result
    return result


def failed(planner: Planner, problem: PlanningProblem) -> PlanFailure:
    result = planner.plan(problem)
    assert isinstance(result, PlanFailure), result
    return result


# --- domains and problems: every mistake, located ----------------------------------------


def test_the_shipped_domains_load_with_their_tasks_and_static_predicates() -> None:
    assert list(BLOCKS.tasks) == ["solve", "mark_initial", "move_blocks", "take"]
    assert BLOCKS.static_predicates == {"goal_on", "goal_ontable"}
    assert LOGISTICS.static_predicates == {"in_city"}
    assert LOGISTICS.is_subtype("airport", "location")
    assert not LOGISTICS.is_subtype("location", "airport")


def test_invalid_yaml_points_at_the_line_where_the_bracket_opens() -> None:
    p = only_problem(FIXTURES / "broken_yaml.yaml")
    assert (p.line, p.path) == (3, "$")
    assert p.message == "invalid YAML: unclosed '[': it is opened here and never closed"


def test_an_undefined_predicate_is_reported_at_each_place_it_is_used() -> None:
    first, second = problems_of(FIXTURES / "undefined_predicate.yaml")
    assert (first.line, first.path) == (8, "$.operators.pickup.preconditions[1]")
    assert first.message == "undefined predicate 'ontable'"
    assert first.fix == "declare it under predicates"
    assert (second.path, second.message) == (
        "$.operators.pickup.effects.add[0]",
        "undefined predicate 'holding'",
    )


def test_an_arity_mismatch_names_the_argument_types_the_predicate_takes() -> None:
    p = only_problem(FIXTURES / "arity_mismatch.yaml")
    assert (p.line, p.path) == (11, "$.operators.stack.effects.add[0]")
    assert p.message == "predicate 'on' takes 2 arguments (block, block), got 1"
    assert p.fix == "write on(?block, ?block)"


def test_an_unknown_subtask_suggests_the_closest_declared_name() -> None:
    p = only_problem(FIXTURES / "unknown_task.yaml")
    assert (p.line, p.path) == (12, "$.tasks.work.methods[0].subtasks[0]")
    assert p.message == "unknown task 'finsh'"
    assert p.fix == "declare it under tasks or operators; did you mean 'finish'?"


def test_an_unbound_variable_in_effects_names_the_variables_in_scope() -> None:
    p = only_problem(FIXTURES / "unbound_variable.yaml")
    assert (p.line, p.path) == (11, "$.operators.stack.effects.add[0]")
    assert p.message == "unbound variable ?c: it is not a parameter of operator 'stack'"
    assert p.fix == "add ?c to the parameters of operator 'stack', or use one of: ?b"


def test_an_unknown_type_lists_the_declared_types() -> None:
    p = only_problem(FIXTURES / "unknown_type.yaml")
    assert (p.line, p.path, p.message) == (4, "$.predicates.clear[0]", "unknown type 'blok'")
    assert p.fix == "declare it under types, or use one of: block, object; did you mean 'block'?"


def test_an_unknown_key_lists_the_keys_allowed_there() -> None:
    p = only_problem(FIXTURES / "unknown_key.yaml")
    assert (p.line, p.path, p.message) == (6, "$.operators.finish.effect", "unknown key 'effect'")
    assert p.fix == (
        "expected one of: parameters, preconditions, effects, internal; did you mean 'effects'?"
    )


def test_every_mistake_in_a_domain_is_reported_at_once_in_line_order() -> None:
    found = problems_of(FIXTURES / "many_errors.yaml")
    assert [(p.line, p.message) for p in found] == [
        (9, "undefined predicate 'holding'"),
        (11, "predicate 'on' takes 2 arguments (block, block), got 3"),
        (12, "unbound variable ?d: it is not a parameter of operator 'stack'"),
        (15, "unknown type 'blok'"),
        (18, "task 'stack' takes 2 arguments (block, block), got 1"),
    ]


def test_every_mistake_in_a_problem_file_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_problem(FIXTURES / "bad_problem.yaml", TRAVEL)
    assert [(p.line, p.path, p.message) for p in caught.value.problems] == [
        (5, "$.objects.cellar", "unknown type 'cellar'"),
        (8, "$.init[1]", "unknown object 'garden'"),
        (9, "$.init[2]", "variable ?x in a problem"),
        (10, "$.tasks[0]", "task 'go' takes 1 argument (place), got 2"),
        (11, "$.colour", "unknown key 'colour'"),
    ]
    assert caught.value.problems[3].fix == "write go(<place>)"


def test_a_problem_built_in_python_is_located_by_path_without_a_line() -> None:
    with pytest.raises(ConfigError) as caught:
        make_problem(
            TRAVEL,
            objects={"room": ["kitchen"]},
            init=["at kitchen", "at(kitchen, home)"],
            tasks=["go kitchen"],
        )
    (p,) = caught.value.problems
    assert (p.file, p.line, p.path) == ("<python>", None, "$.init[1]")
    assert p.message == "predicate 'at' takes 1 argument (place), got 2"


def test_the_yaml_key_on_stays_a_predicate_name_rather_than_becoming_true() -> None:
    assert BLOCKS.predicates["on"] == ("block", "block")


def test_a_fact_split_by_yaml_at_its_comma_is_refused_with_a_hint_to_quote_it() -> None:
    text = (
        "domain: d\npredicates: {on: [object, object]}\noperators:\n  o:\n"
        "    parameters: {x: object, y: object}\n    preconditions: [on(?x, ?y)]\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_domain(text)
    first = caught.value.problems[0]
    assert (first.line, first.path, first.message) == (
        6,
        "$.operators.o.preconditions[0]",
        "cannot read 'on(?x' as a fact",
    )
    assert "quote it" in first.fix


def test_negation_is_refused_outside_preconditions() -> None:
    text = (
        "domain: d\npredicates: {done: []}\noperators:\n  o:\n    effects:\n      add: [not done]\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_domain(text)
    (p,) = caught.value.problems
    assert (p.path, p.message) == (
        "$.operators.o.effects.add[0]",
        "'not' is not allowed here: 'not done'",
    )
    assert p.fix == "negation is only allowed in preconditions"


# --- planning ----------------------------------------------------------------------------


def travel(
    doors: list[tuple[str, str]], to: str, locked: tuple[str, ...] = (), goal: bool = True
) -> PlanningProblem:
    return make_problem(
        TRAVEL,
        objects={"room": ["a", "b", "c", "d"]},
        init=["at home", *(f"door {x} {y}" for x, y in doors), *(f"locked {x}" for x in locked)],
        tasks=[f"go {to}"],
        goal=[f"at {to}"] if goal else [],
    )


def test_the_search_backtracks_out_of_a_dead_end_to_the_next_binding() -> None:
    problem = travel([("home", "a"), ("home", "b"), ("b", "c")], "c")
    plan = planned(TRAVEL, problem)
    assert [str(a) for a in plan.actions] == ["move(home, b)", "move(b, c)"]
    assert Planner(TRAVEL).statistics().backtracks == 0
    planner = Planner(TRAVEL)
    planner.plan(problem)
    assert planner.statistics().backtracks >= 1


def test_internal_operators_are_plan_steps_but_not_actions() -> None:
    plan = planned(TRAVEL, load_problem(FIXTURES / "travel_problem.yaml", TRAVEL))
    assert [s.name for s in plan.steps] == ["leave_mark", "move", "leave_mark", "move"]
    assert [str(a) for a in plan.actions] == ["move(home, corridor)", "move(corridor, kitchen)"]


def test_a_negative_static_precondition_keeps_the_planner_out_of_locked_places() -> None:
    problem = travel([("home", "a"), ("a", "c"), ("home", "b"), ("b", "c")], "c", locked=("a",))
    assert [str(a) for a in planned(TRAVEL, problem).actions] == ["move(home, b)", "move(b, c)"]


def test_the_shipped_blocks_domain_solves_a_problem_with_a_valid_plan() -> None:
    problem = parse_problem(
        """
        objects: {block: [a, b, c]}
        init: [on a b, ontable b, ontable c, clear a, clear c, handempty,
               goal_on b c, goal_on c a, goal_ontable a]
        tasks: [solve]
        goal: [on b c, on c a, ontable a]
        """,
        BLOCKS,
    )
    plan = planned(BLOCKS, problem)
    assert [str(a) for a in plan.actions] == [
        "unstack(a, b)",
        "putdown(a)",
        "pickup(c)",
        "stack(c, a)",
        "pickup(b)",
        "stack(b, c)",
    ]
    assert reference.simulate(BLOCKS, problem, plan.steps) is None


def test_a_task_with_no_applicable_method_is_reported_as_a_frontier_with_its_state() -> None:
    planner = Planner(TRAVEL)
    failure = failed(planner, travel([("home", "a")], "b", goal=False))
    assert failure.reason is FailureReason.NO_METHOD
    assert failure.message == "no applicable method for go(b)"
    (frontier,) = failure.frontiers
    assert frontier.task == Call("go", ("b",))
    assert frontier.depth == 1  # go(b) -> step -> go(b), after walking to a
    assert {str(f) for f in frontier.facts} == {"at(a)", "visited(home)", "door(home, a)"}


def test_a_method_added_at_runtime_turns_a_frontier_into_a_plan() -> None:
    planner = Planner(TRAVEL)
    problem = travel([("home", "a")], "b", goal=False)
    assert not planner.plan(problem).ok
    added = planner.add_method(
        "go",
        """
        name: teleport
        parameters: {here: place}
        preconditions: [at ?here]
        subtasks: [jump ?here ?to]
        """.replace("jump", "move"),
    )
    assert added.name == "teleport"
    assert failed(planner, problem).reason is FailureReason.EXHAUSTED  # move needs a door
    planner.add_method(
        "go",
        {
            "name": "by_door_anyway",
            "parameters": {"x": "place"},
            "preconditions": ["at ?x", "door ?x ?to"],
            "subtasks": ["move ?x ?to"],
        },
    )
    assert not planner.plan(problem).ok
    fixed = travel([("home", "a"), ("home", "b")], "b", goal=False)
    assert [str(a) for a in planned(planner.domain, fixed).actions] == ["move(home, b)"]


def test_a_task_declared_without_methods_is_a_frontier_until_one_is_registered() -> None:
    domain = parse_domain(
        """
        domain: office
        types: {doc: object}
        predicates: {drafted: [doc], sent: [doc]}
        operators:
          draft: {parameters: {d: doc}, effects: {add: [drafted ?d]}}
          send: {parameters: {d: doc}, preconditions: [drafted ?d], effects: {add: [sent ?d]}}
        tasks:
          publish: {parameters: {d: doc}}
        """
    )
    problem = make_problem(
        domain, objects={"doc": ["memo"]}, init=[], tasks=["publish memo"], goal=["sent memo"]
    )
    planner = Planner(domain)
    failure = failed(planner, problem)
    assert (failure.reason, failure.frontiers[0].task) == (
        FailureReason.NO_METHOD,
        Call("publish", ("memo",)),
    )
    assert failure.frontiers[0].facts == frozenset()
    planner.add_method("publish", "name: draft_then_send\nsubtasks: [draft ?d, send ?d]\n")
    assert [str(a) for a in planned(planner.domain, problem).actions] == [
        "draft(memo)",
        "send(memo)",
    ]
    assert planner.plan(problem).ok


def test_a_runtime_method_is_checked_against_the_domain_and_refused_with_reasons() -> None:
    planner = Planner(TRAVEL)
    with pytest.raises(ConfigError) as caught:
        planner.add_method(
            "go",
            {"name": "bad", "preconditions": ["at ?there"], "subtasks": ["fly ?to", "move ?to"]},
        )
    assert [(p.file, p.path, p.message) for p in caught.value.problems] == [
        (
            "<runtime>",
            "$.preconditions[0]",
            "unbound variable ?there: it is not a parameter of method 'bad' of task 'go'",
        ),
        ("<runtime>", "$.subtasks[0]", "unknown task 'fly'"),
        ("<runtime>", "$.subtasks[1]", "task 'move' takes 2 arguments (place, place), got 1"),
    ]
    with pytest.raises(ConfigError) as caught:
        planner.add_method("goo", {"name": "x"})
    assert caught.value.problems[0].message == "unknown task 'goo'"
    with pytest.raises(ConfigError) as caught:
        planner.add_method("go", {"name": "step"})
    assert caught.value.problems[0].message == "task 'go' already has a method named 'step'"
    assert [m.name for m in planner.domain.tasks["go"].methods] == ["arrived", "step"]


def test_grounding_is_cached_per_problem_and_dropped_when_a_method_is_added() -> None:
    planner = Planner(TRAVEL)
    problem = load_problem(FIXTURES / "travel_problem.yaml", TRAVEL)
    first, second = planner.plan(problem), planner.plan(problem)
    assert first == second
    stats = planner.statistics()
    assert (stats.groundings, stats.cache_hits, stats.plans) == (1, 1, 2)
    assert stats.ground_tasks > 0 and stats.grounding_seconds > 0
    planner.add_method("go", {"name": "stay", "preconditions": ["at ?to"]})
    planner.plan(problem)
    assert planner.statistics().groundings == 2


def test_the_step_limit_stops_an_endless_decomposition() -> None:
    domain = parse_domain(
        "domain: loop\ntasks:\n  spin:\n    methods:\n      - {name: again, subtasks: [spin]}\n"
    )
    problem = make_problem(domain, objects={}, init=[], tasks=["spin"])
    failure = failed(Planner(domain, max_steps=500, max_depth=10_000), problem)
    assert failure.reason is FailureReason.STEP_LIMIT
    assert failure.message == "step limit of 500 reached after 0 actions"
    depth = failed(Planner(domain, max_steps=10_000, max_depth=50), problem)
    assert depth.reason is FailureReason.DEPTH_LIMIT


def test_an_unreachable_goal_is_reported_without_searching() -> None:
    problem = travel([("home", "a")], "a", locked=())
    unreachable = make_problem(
        TRAVEL,
        objects={"room": ["a", "b"]},
        init=["at home", "door home a"],
        tasks=["go a"],
        goal=["at b"],
    )
    failure = failed(Planner(TRAVEL), unreachable)
    assert failure.reason is FailureReason.UNREACHABLE_GOAL
    assert failure.message.startswith("goal fact at(b) can never hold")
    assert planned(TRAVEL, problem).ok


def chores_backwards() -> Domain:
    """A domain whose only method does things in the wrong order: every search fails."""
    return parse_domain(
        """
    domain: chores
    predicates: {clean: [], dry: []}
    operators:
      wash: {effects: {add: [clean]}}
      dry_off: {preconditions: [clean, not dry], effects: {add: [dry]}}
    tasks:
      chores:
        methods: [{name: backwards, subtasks: [dry_off, wash]}]
    """
    )


def test_a_failed_search_names_the_step_that_could_not_apply_and_why() -> None:
    domain = chores_backwards()
    problem = make_problem(domain, objects={}, init=[], tasks=["chores"])
    failure = failed(Planner(domain), problem)
    assert failure.reason is FailureReason.EXHAUSTED
    assert failure.message == (
        "every decomposition failed; the furthest got 0 steps, then dry_off was not "
        "applicable (clean)"
    )


def test_statistics_count_expansions_actions_and_grounding() -> None:
    planner = Planner(TRAVEL)
    planner.plan(load_problem(FIXTURES / "travel_problem.yaml", TRAVEL))
    stats = planner.statistics()
    assert (stats.plans, stats.failures, stats.actions) == (1, 0, 4)
    assert stats.expansions == 3
    assert stats.method_groundings > 0 and stats.operator_groundings > 0


def test_a_problem_of_another_domain_is_refused() -> None:
    problem = load_problem(FIXTURES / "travel_problem.yaml", TRAVEL)
    with pytest.raises(UsageError, match="is for domain 'travel', not 'blocks'"):
        Planner(BLOCKS).plan(problem)


def test_a_method_that_would_need_too_many_bindings_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_binding, "MAX_ROWS", 3)
    with pytest.raises(UsageError, match="grounding method 'step' of task 'go' needs"):
        Planner(TRAVEL).plan(travel([("home", "a"), ("a", "b"), ("b", "c"), ("c", "d")], "d"))


def test_operators_in_the_task_list_and_constants_in_methods_plan_like_the_reference() -> None:
    planner = Planner(TRAVEL)
    planner.add_method(
        "go",
        {
            "name": "back_home_first",
            "preconditions": ["door home ?to"],
            "subtasks": ["leave_mark home", "move home ?to"],
        },
    )
    problem = make_problem(
        TRAVEL,
        objects={"room": ["a", "b"]},
        init=["at a", "door a home", "door home b"],
        tasks=["move a home", "go b"],
        goal=["at b", "visited home"],
    )
    plan = planner.plan(problem)
    assert isinstance(plan, Plan), plan
    assert list(plan.steps) == reference.plan(planner.domain, problem)
    assert [str(s) for s in plan.steps] == ["move(a, home)", "leave_mark(home)", "move(home, b)"]


def test_a_fact_an_operator_deletes_and_adds_stays_true() -> None:
    domain = parse_domain(
        """
        domain: shelf
        types: {item: object}
        predicates: {stale: [item], seen: [item]}
        operators:
          look: {parameters: {x: item}, effects: {add: [stale ?x, seen ?x], delete: [stale ?x]}}
          use: {parameters: {x: item}, preconditions: [stale ?x, seen ?x]}
        tasks:
          check: {parameters: {x: item}, methods: [{name: it, subtasks: [look ?x, use ?x]}]}
        """
    )
    problem = make_problem(domain, objects={"item": ["jar"]}, init=[], tasks=["check jar"])
    assert [str(s) for s in planned(domain, problem).steps] == ["look(jar)", "use(jar)"]
    assert reference.plan(domain, problem) == [Call("look", ("jar",)), Call("use", ("jar",))]


# --- agreement with the reference, on random problems -------------------------------------


@st.composite
def towers(draw: st.DrawFn, names: list[str]) -> list[list[str]]:
    order = draw(st.permutations(names))
    cuts = draw(st.lists(st.booleans(), min_size=len(names) - 1, max_size=len(names) - 1))
    out = [[order[0]]]
    for block, cut in zip(order[1:], cuts, strict=True):
        out.append([block]) if cut else out[-1].append(block)
    return out


@st.composite
def blocks_problems(draw: st.DrawFn) -> PlanningProblem:
    names = [f"b{i}" for i in range(draw(st.integers(2, 8)))]
    init, goal = ["handempty"], []
    for tower in draw(towers(names)):
        init += [f"ontable {tower[0]}", f"clear {tower[-1]}"]
        init += [f"on {x} {y}" for y, x in itertools.pairwise(tower)]
    for tower in draw(towers(names)):
        init.append(f"goal_ontable {tower[0]}")
        goal.append(f"ontable {tower[0]}")
        for y, x in itertools.pairwise(tower):
            init.append(f"goal_on {x} {y}")
            goal.append(f"on {x} {y}")
    return make_problem(BLOCKS, objects={"block": names}, init=init, tasks=["solve"], goal=goal)


@st.composite
def logistics_problems(draw: st.DrawFn) -> PlanningProblem:
    cities = [f"c{i}" for i in range(draw(st.integers(1, 3)))]
    per_city = draw(st.integers(1, 3))
    airports = [f"ap{i}" for i in range(len(cities))]
    spots = [f"l{i}_{j}" for i in range(len(cities)) for j in range(1, per_city)]
    city_of = {
        **dict(zip(airports, cities, strict=True)),
        **{s: cities[int(s[1:].split("_")[0])] for s in spots},
    }
    places = airports + spots
    init = [f"in_city {p} {c}" for p, c in city_of.items()]
    trucks = []
    for i, c in enumerate(cities):
        if draw(st.integers(0, 4)):  # now and then a city has no truck
            trucks.append(f"t{i}")
            init.append(f"at t{i} {draw(st.sampled_from([p for p in places if city_of[p] == c]))}")
    planes = [f"a{i}" for i in range(draw(st.integers(0, 2)))]
    init += [f"at {a} {draw(st.sampled_from(airports))}" for a in planes]
    packages = [f"p{i}" for i in range(draw(st.integers(1, 4)))]
    tasks, goal = [], []
    for p in packages:
        src, dest = draw(st.sampled_from(places)), draw(st.sampled_from(places))
        init.append(f"at {p} {src}")
        tasks.append(f"deliver {p} {dest}")
        goal.append(f"at {p} {dest}")
    objects = {
        "package": packages,
        "truck": trucks,
        "airplane": planes,
        "airport": airports,
        "location": spots,
        "city": cities,
    }
    return make_problem(LOGISTICS, objects=objects, init=init, tasks=tasks, goal=goal)


@st.composite
def travel_problems(draw: st.DrawFn) -> PlanningProblem:
    rooms = [f"r{i}" for i in range(draw(st.integers(1, 4)))]
    halls = [f"h{i}" for i in range(draw(st.integers(0, 3)))]
    places = ["home", *rooms, *halls]
    pairs = [(x, y) for x in places for y in places if x != y]
    doors = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=12))
    locked = draw(st.lists(st.sampled_from(places[1:]), unique=True, max_size=2))
    goal = draw(st.sampled_from(places))
    init = ["at home", *(f"door {x} {y}" for x, y in doors), *(f"locked {x}" for x in locked)]
    return make_problem(
        TRAVEL,
        objects={"room": rooms, "hall": halls},
        init=init,
        tasks=[f"go {goal}"],
        goal=[f"at {goal}"],
    )


PLANNERS = {d.name: Planner(d) for d in (BLOCKS, LOGISTICS, TRAVEL)}


def agrees_with_reference(domain: Domain, problem: PlanningProblem) -> None:
    ours = PLANNERS[domain.name].plan(problem)
    theirs = reference.plan(domain, problem)
    assert ours.ok == (theirs is not None), (ours, theirs)
    if isinstance(ours, Plan):
        assert list(ours.steps) == theirs
        assert reference.simulate(domain, problem, ours.steps) is None


@PROPERTY
@given(blocks_problems())
def test_blocks_plans_match_the_reference_planner_and_reach_the_goal(
    problem: PlanningProblem,
) -> None:
    agrees_with_reference(BLOCKS, problem)
    assert PLANNERS["blocks"].plan(problem).ok  # the strategy always succeeds


@PROPERTY
@given(logistics_problems())
def test_logistics_planner_and_reference_both_plan_the_same_or_both_fail(
    problem: PlanningProblem,
) -> None:
    agrees_with_reference(LOGISTICS, problem)


@PROPERTY
@given(travel_problems())
def test_travel_search_with_backtracking_matches_the_reference_step_for_step(
    problem: PlanningProblem,
) -> None:
    agrees_with_reference(TRAVEL, problem)


@PROPERTY
@given(st.one_of(blocks_problems(), logistics_problems(), travel_problems()))
def test_id_spaces_too_big_for_tables_take_the_sorted_path_and_plan_the_same(
    problem: PlanningProblem,
) -> None:
    domain = {d.name: d for d in (BLOCKS, LOGISTICS, TRAVEL)}[problem.domain]
    expected = Planner(domain).plan(problem)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_numbering, "DENSE_LIMIT", 0)
        patch.setattr(_numbering, "SET_LIMIT", 0)
        patch.setattr(_assembly, "DENSE_LIMIT", 0)
        patch.setattr(_grounding, "DENSE_LIMIT", 0)
        assert Planner(domain).plan(problem) == expected


# --- the compiled search: the same search, step for step ----------------------------------


def both_searches(
    domain: Domain, problem: PlanningProblem, **limits: int
) -> tuple[Plan | PlanFailure, Plan | PlanFailure]:
    """The Python search's result and the compiled one's, after checking that they took the
    same steps (expansions, backtracks, actions)."""
    results, counters = [], []
    for compiled in (False, True):
        planner = Planner(domain, compiled=compiled, **limits)
        results.append(planner.plan(problem))
        stats = planner.statistics()
        counters.append((stats.expansions, stats.backtracks, stats.actions, stats.failures))
    assert counters[0] == counters[1]
    return results[0], results[1]


@PROPERTY
@given(
    st.one_of(blocks_problems(), logistics_problems(), travel_problems()),
    st.sampled_from([{}, {"max_steps": 7}, {"max_steps": 40}, {"max_depth": 3}]),
)
def test_the_compiled_search_gives_what_the_python_search_gives(
    problem: PlanningProblem, limits: dict[str, int]
) -> None:
    domain = {d.name: d for d in (BLOCKS, LOGISTICS, TRAVEL)}[problem.domain]
    python, compiled = both_searches(domain, problem, **limits)
    assert compiled == python


@pytest.mark.parametrize("compiled", [False, True])
def test_both_searches_report_limits_frontiers_and_the_furthest_failure(compiled: bool) -> None:
    loop = parse_domain(
        "domain: loop\ntasks:\n  spin:\n    methods:\n      - {name: again, subtasks: [spin]}\n"
    )
    spin = make_problem(loop, objects={}, init=[], tasks=["spin"])
    steps = failed(Planner(loop, max_steps=500, compiled=compiled), spin)
    assert steps.message == "step limit of 500 reached after 0 actions"
    depth = failed(Planner(loop, max_depth=50, compiled=compiled), spin)
    assert depth.reason is FailureReason.DEPTH_LIMIT
    chores = chores_backwards()
    problem = make_problem(chores, objects={}, init=[], tasks=["chores"])
    assert failed(Planner(chores, compiled=compiled), problem).message.endswith(
        "then dry_off was not applicable (clean)"
    )
    stuck = travel([("home", "a")], "b", goal=False)
    frontier = failed(Planner(TRAVEL, compiled=compiled), stuck)
    assert frontier.message == "no applicable method for go(b)"
    assert {str(f) for f in frontier.frontiers[0].facts} == {
        "at(a)",
        "visited(home)",
        "door(home, a)",
    }
    assert frontier == failed(Planner(TRAVEL, compiled=not compiled), stuck)


def test_states_wider_than_one_word_plan_the_same_in_both_searches() -> None:
    names = [f"b{i}" for i in range(30)]
    init = ["handempty", "ontable b0", "clear b29"]
    init += [f"on {x} {y}" for y, x in itertools.pairwise(names)]  # one tower, b29 on top
    init += [f"goal_ontable {n}" for n in names]  # every block on the table
    problem = make_problem(
        BLOCKS,
        objects={"block": names},
        init=init,
        tasks=["solve"],
        goal=[f"ontable {n}" for n in names],
    )
    python, compiled = both_searches(BLOCKS, problem)
    assert isinstance(compiled, Plan) and compiled == python
    grounding = Planner(BLOCKS, compiled=True)._ground(problem)
    assert 2 * grounding.half + 1 > 64  # several words per state


# --- the compiled grounding steps: the same as numpy's -------------------------------------


def assembled(domain: Domain, problem: PlanningProblem, kernel: bool) -> dict[str, object]:
    """Every field of the problem's grounding, arrays as lists."""
    from axo.coordination._compiling import compiled

    g = _grounding.Grounder(compiled(domain), problem, kernel).run()
    out = {f.name: getattr(g, f.name) for f in dataclasses.fields(g) if f.name != "describe"}
    out["task_keys"], out["slot_ids"] = g.describe.task_keys, g.describe.slot_ids
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in out.items()}


@PROPERTY
@given(st.one_of(blocks_problems(), logistics_problems(), travel_problems()))
def test_the_grounding_kernels_give_the_groundings_numpy_gives(problem: PlanningProblem) -> None:
    domain = {d.name: d for d in (BLOCKS, LOGISTICS, TRAVEL)}[problem.domain]
    by_numpy = assembled(domain, problem, kernel=False)
    assert assembled(domain, problem, kernel=True) == by_numpy
    with pytest.MonkeyPatch.context() as patch:  # where they do not apply: numpy's steps
        patch.setattr(_numbering, "DENSE_LIMIT", 0)
        patch.setattr(_numbering, "SET_LIMIT", 0)
        patch.setattr(_assembly, "DENSE_LIMIT", 0)
        patch.setattr(_grounding, "DENSE_LIMIT", 0)
        assert assembled(domain, problem, kernel=True) == by_numpy


def test_the_grounding_kernels_are_what_a_compiled_planner_grounds_with() -> None:
    names = ["b0", "b1", "b2"]
    problem = make_problem(
        BLOCKS,
        objects={"block": names},
        init=["handempty", "ontable b0", "on b1 b0", "on b2 b1", "clear b2"]
        + [f"goal_ontable {n}" for n in names],
        tasks=["solve"],
        goal=[f"ontable {n}" for n in names],
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_assembly, "_tables", None)  # numpy's paths would fail
        patch.setattr(_grounding, "_first_of_each", None)
        assert Planner(BLOCKS, compiled=True).plan(problem).ok


JOINS = parse_domain("""
domain: joins
types: {place: object, room: place, hall: place}
constants: {hall: [home]}
predicates:
  door: [place, place]     # static
  link: [place, place]     # static
  at: [place]
  near: [place, place]     # dynamic: added below
operators:
  step:
    parameters: {a: place, b: place}
    preconditions: [at ?a]
    effects: {add: [at ?b, near ?a ?b]}
tasks:
  roam:
    methods:
      - name: from_home    # a constant in a static join, a new variable of a narrower type
        parameters: {r: room}
        preconditions: [door home ?r]
        subtasks: [step home ?r, onward ?r]
      - name: self_link    # the same new variable twice
        parameters: {q: place}
        preconditions: [link ?q ?q]
        subtasks: [step home ?q, onward ?q]
  onward:
    parameters: {p: place}
    methods:
      - name: loop         # keyed by ?p
        parameters: {q: place}
        preconditions: [link ?p ?q, link ?q ?q]
        subtasks: [step ?p ?q, back ?q]
      - name: stay
  back:
    parameters: {q: place}
    methods:
      - name: near_room    # a dynamic join keyed by ?q binding a room
        parameters: {r: room}
        preconditions: [near ?r ?q]
        subtasks: [step ?q ?r]
      - name: stop
""")


@PROPERTY
@given(st.data())
def test_joins_with_constants_repeats_and_subtypes_ground_alike_with_and_without_kernels(
    data: st.DataObject,
) -> None:
    rooms, halls = ["r0", "r1", "r2"], ["h0", "h1"]
    places = ["home", *rooms, *halls]
    pairs = [f"{a} {b}" for a in places for b in places]
    init = ["at home"]
    init += [f"door {p}" for p in data.draw(st.lists(st.sampled_from(pairs), max_size=8))]
    init += [f"link {p}" for p in data.draw(st.lists(st.sampled_from(pairs), max_size=10))]
    problem = make_problem(JOINS, objects={"room": rooms, "hall": halls}, init=init, tasks=["roam"])
    by_numpy = assembled(JOINS, problem, kernel=False)
    assert assembled(JOINS, problem, kernel=True) == by_numpy
    assert Planner(JOINS, compiled=True).plan(problem) == Planner(JOINS, compiled=False).plan(
        problem
    )


@PROPERTY
@given(
    st.lists(st.tuples(*[st.integers(0, 5)] * 3), max_size=300),
    st.sampled_from([1, 3]),
    st.booleans(),
)
def test_the_assembly_kernel_sorts_as_numpy_sorts_stably(
    rows: list[tuple[int, int, int]], columns: int, batches: bool
) -> None:
    from axo.coordination._assembly_kernel import _order, _sorted

    keys = np.array(rows, np.int64).reshape(-1, 3)[:, :columns].copy()
    if batches:  # a few runs in order, as the grounder's batches come: merged, not argsorted
        keys = np.concatenate([np.sort(part, axis=0) for part in np.array_split(keys, 3)])
    expected = np.lexsort(keys.T[::-1]) if len(keys) else np.zeros(0, np.int64)
    assert _order(keys).tolist() == expected.tolist()
    values = keys[:, 0].copy()
    for space in (6, 10_000):  # by counting, and by ``_order``
        assert _sorted(values, space).tolist() == sorted(values.tolist())
