"""Memory-first context: request size over a 200-round turn, and recall of an early fact.

One agent works through 200 tool rounds against the fake LLM (a real HTTP server). At round 3
it stores a fact with ``remember``; every other round calls a small tool. Compared:

- ``context: last_round`` (axo's default): identity and task, recalled facts, latest round;
- ``context: full``: every round so far (what a chat-history agent sends) — the baseline.

Sizes are the JSON size of each request's messages as the server received them.
"""

from __future__ import annotations

import json
import tempfile

import axo
from axo.testing import FakeLLM, Reply, ToolCalls
from benches._harness import Measurement, main

DESCRIPTION = "request size per round over a 200-round turn: memory-first vs full history"
FACT = "the vault code is 4417"


def step(n: int) -> str:
    """Record that a step of the work was done.

    Args:
        n: the step's number.
    """
    return f"step {n} recorded"


def session(rounds: int, context: str) -> list[int]:
    script = []
    for i in range(1, rounds + 1):
        if i == 3:
            script.append(ToolCalls([("remember", {"text": FACT, "tags": ["vault"]})]))
        else:
            script.append(ToolCalls([("step", {"n": i})]))
    script.append(Reply("done"))
    with FakeLLM(script=script) as fake, tempfile.TemporaryDirectory() as state:
        text = (
            f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}'}}\n"
            "agents:\n  - id: worker\n    tools: [step, remember]\n"
            f"    max_iterations: {rounds + 5}\n"
            f"    memory: {{long_term: true, context: {context}, recall_k: 3}}\n"
        )
        wf = axo.load_workflow("context.yaml", text=text)
        result = axo.run(
            wf,
            "Keep the vault code safe and report it when you finish.",
            tools=[step],
            state_dir=state,
        )
        assert result.ok, result.failure
        sizes = [len(json.dumps(r.body["messages"])) for r in fake.requests]
        last = fake.requests[-1].text
    assert FACT in last or context == "full", "recall lost the fact stored at round 3"
    return sizes


def run(quick: bool) -> list[Measurement]:
    rounds = 40 if quick else 200
    rows = []
    for context, baseline in (("full", True), ("last_round", False)):
        sizes = session(rounds, context)
        label = (
            "axo memory-first (last round + recall)" if context == "last_round" else "full history"
        )
        for turn in (10, rounds // 2, rounds):
            rows.append(
                Measurement(
                    case=f"request at round {turn}",
                    impl=label,
                    value=sizes[turn - 1],
                    unit="chars",
                    baseline=baseline,
                )
            )
        rows.append(
            Measurement(
                case=f"round {rounds} / round 10",
                impl=label,
                value=sizes[rounds - 1] / sizes[9],
                unit="×",
                baseline=baseline,
                note="target ≤ 1.2 for memory-first" if not baseline else "",
            )
        )
    return rows


if __name__ == "__main__":
    main("context", run)
