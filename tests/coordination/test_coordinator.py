"""The coordinator role end to end: goal → HTN plan → auction → steps through the lattice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import axo
from axo.testing import FakeLLM, Reply

ROOT = Path(__file__).resolve().parents[2]
GOAL = json.dumps({"tasks": [{"task": "deliver", "args": ["parcel", "south_depot"]}]})


def coordinated(fake: FakeLLM, tmp_path: Path) -> axo.Workflow:
    text = (ROOT / "workflows" / "coordinated.yaml").read_text()
    text = text.replace(
        "local: {type: local, model: smollm2, n_ctx: 2048}",
        f"local: {{type: openai, base_url: '{fake.base_url}'}}",
    )
    text = text.replace("domains/", str(ROOT / "workflows" / "domains") + "/")
    path = tmp_path / "coordinated.yaml"
    path.write_text(text)
    return axo.load_workflow(path)


@pytest.mark.parametrize("runtime", ["local", "multiproc"])
def test_a_plan_is_auctioned_to_capable_workers_and_run_in_causal_order(
    tmp_path: Path, runtime: str
) -> None:
    scripts = {
        "Dispatcher": [Reply(GOAL)],
        "Driver": [Reply("drove")] * 20,
        "Pilot": [Reply("flew")] * 20,
        "Reporter": [Reply("delivered")],
    }
    with FakeLLM(scripts=scripts) as fake:
        result = axo.run(
            coordinated(fake, tmp_path), "deliver the parcel to the south depot", runtime=runtime
        )  # type: ignore[arg-type]
        dispatcher_request = fake.requests_for("Dispatcher")[0]
        reporter_request = fake.requests_for("Reporter")[0]
        order = [(r.key, r.received, r.answered) for r in fake.requests]
        step_requests = {
            k: next(r for r in fake.requests if f"(step {k + 1} of " in r.text)
            for k in range(len(fake.requests) - 2)
        }
    assert result.ok, result.failure
    assert result.outputs["reporter"] == "delivered"
    schema = dispatcher_request.body["response_format"]["json_schema"]["schema"]
    assert "deliver" in schema["properties"]["tasks"]["items"]["properties"]["task"]["enum"]
    plan = json.loads(result.agent("dispatcher").output or "")
    steps = plan["steps"]
    assert any(s["operator"] == "fly" for s in steps)
    by_worker = {r["step"]: r["worker"] for r in plan["results"]}
    for s in steps:  # every step went to a worker that has what it requires
        assert by_worker[s["index"] + 1] == ("pilot" if s["operator"] == "fly" else "driver")
    # the reporter ran after every step and saw their results
    last_step_answer = max(a for key, _, a in order if key in ("Driver", "Pilot"))
    assert reporter_request.received >= last_step_answer
    assert "flew" in reporter_request.text and "drove" in reporter_request.text
    # a step was sent only after the steps it needs had answered
    assert len(step_requests) == len(steps)
    for s in steps:
        for j in s["after"]:
            needed = step_requests[j].answered
            assert needed is not None and step_requests[s["index"]].received >= needed
    fly = next(s for s in steps if s["operator"] == "fly")
    assert fly["after"], "the flight waits for the parcel to be loaded"
    assert result.plan is not None and len(result.plan["awards"]) == len(steps)
    assert result.agent("pilot").status == "done" and "flew" in (result.agent("pilot").output or "")


def test_a_step_nobody_can_take_is_reported_and_fails_the_coordinator(tmp_path: Path) -> None:
    with FakeLLM(
        scripts={"Dispatcher": [Reply(GOAL)], "Driver": [], "Pilot": [], "Reporter": []}
    ) as fake:
        wf = coordinated(fake, tmp_path)
        text = Path(wf.file).read_text().replace("capabilities: [air]", "capabilities: [sea]")
        Path(wf.file).write_text(text)
        result = axo.run(axo.load_workflow(wf.file), "deliver the parcel to the south depot")
    assert result.status == "failed"
    reason = result.agent("dispatcher").reason or ""
    assert "steps nobody can take" in reason and "fly(" in reason
    assert result.plan is not None and result.plan["unassigned"]
    assert result.agent("reporter").status == "skipped"


DOMAIN = """
domain: greetings
types: {person: object}
predicates: {greeted: [person]}
operators:
  wave:
    parameters: {p: person}
    effects: {add: [greeted ?p]}
tasks:
  greet:
    parameters: {p: person}
    methods: []
"""
PROBLEM = """
problem: hello
domain: greetings
objects: {person: [alice]}
init: []
tasks: [greet alice]
"""


def test_a_frontier_is_resolved_by_a_method_the_model_proposes(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(DOMAIN)
    (tmp_path / "p.yaml").write_text(PROBLEM)
    method = json.dumps({"name": "by_waving", "subtasks": [{"task": "wave", "args": ["?p"]}]})
    with FakeLLM(scripts={"boss": [Reply(method)], "hand": [Reply("waved at alice")]}) as fake:
        (tmp_path / "wf.yaml").write_text(
            f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}'}}\n"
            "agents:\n"
            "  - {id: boss, role: coordinator, plan: {domain: d.yaml, problem: p.yaml}}\n"
            "  - {id: hand, role: worker}\n"
        )
        result = axo.run(axo.load_workflow(tmp_path / "wf.yaml"), "greet everyone")
        proposal = fake.requests_for("boss")[0]
    assert result.ok, result.failure
    assert "No method of task 'greet ?p' applies to greet(alice)" in proposal.text
    added = result.notes_of("method_added")[0].detail
    assert added["task"] == "greet" and added["method"]["subtasks"] == ["wave ?p"]
    assert result.plan is not None
    assert [s["action"] for s in result.plan["steps"]] == ["wave(alice)"]
    assert result.agent("hand").output == "step 1 (wave(alice)): waved at alice"
