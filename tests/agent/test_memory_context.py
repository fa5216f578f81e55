"""Memory-first context: requests stay flat over many rounds, and recall still finds facts."""

from __future__ import annotations

import json
from pathlib import Path

import axo
from axo.testing import FakeLLM, Reply, ToolCalls

FACT = "the vault code is 4417"


def step(n: int) -> str:
    """Record a step.

    Args:
        n: the step's number.
    """
    return f"step {n} recorded"


def run_rounds(
    tmp_path: Path, rounds: int, context: str
) -> tuple[list[int], FakeLLM, axo.RunResult]:
    script = [
        ToolCalls([("remember", {"text": FACT, "tags": ["vault"]})])
        if i == 3
        else ToolCalls([("step", {"n": i})])
        for i in range(1, rounds + 1)
    ]
    with FakeLLM(script=[*script, Reply("the code is 4417")]) as fake:
        text = (
            f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}'}}\n"
            "agents:\n  - id: worker\n    tools: [step, remember]\n"
            f"    max_iterations: {rounds + 5}\n"
            f"    memory: {{long_term: true, context: {context}, recall_k: 3}}\n"
        )
        wf = axo.load_workflow("ctx.yaml", text=text)
        result = axo.run(
            wf,
            "Keep the vault code safe and report it when you finish.",
            tools=[step],
            state_dir=str(tmp_path / "state"),
        )
    sizes = [len(json.dumps(r.body["messages"])) for r in fake.requests]
    return sizes, fake, result


def test_requests_stay_flat_and_recall_finds_a_fact_from_round_three(tmp_path: Path) -> None:
    sizes, fake, result = run_rounds(tmp_path, 40, "last_round")
    assert result.ok, result.failure
    assert sizes[39] <= 1.2 * sizes[9], sizes
    last = fake.requests[-1]
    assert FACT in last.text, "the fact stored at round 3 is recalled into the last request"
    assert "step 38 recorded" not in last.text, "only the latest round is sent"
    assert result.notes_of("recalled")


def test_full_context_grows_with_every_round(tmp_path: Path) -> None:
    sizes, _, result = run_rounds(tmp_path, 20, "full")
    assert result.ok
    assert sizes[19] > 3 * sizes[4]


def test_facts_outlive_the_run_for_the_next_run_of_the_workflow(tmp_path: Path) -> None:
    run_rounds(tmp_path, 4, "last_round")
    with FakeLLM(script=[Reply("4417")]) as fake:
        text = (
            f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}'}}\n"
            "agents:\n  - id: worker\n    tools: [step, remember]\n"
            "    memory: {long_term: true, recall_k: 3}\n"
        )
        wf = axo.load_workflow("ctx.yaml", text=text)
        axo.run(wf, "What is the vault code?", tools=[step], state_dir=str(tmp_path / "state"))
    assert FACT in fake.requests[0].text
