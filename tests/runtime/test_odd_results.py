"""Results that are valid for the model but awkward to store or send: half a character from
the LLM, a tool's return value with no JSON form, a tool that calls ``sys.exit``. Each run
goes on at once, durable or not, on both runtimes — none waits out its timeout."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import axo
from axo.eventlog import EventLog
from axo.testing import FakeLLM, Reply, ToolCalls
from tests.helpers import fake_workflow

ONE_TOOL = "  - {id: a, tools: [odd], max_iterations: 2}\n  - {id: b, depends_on: [a]}\n"


class Opaque:
    """A value with no JSON form (nor a pickled one: it holds a generator)."""

    def __init__(self) -> None:
        self.items = (i for i in range(3))

    def __str__(self) -> str:
        return "an opaque value"


def run_calling(tool: Callable[[], object], state: Path, runtime: str) -> tuple[axo.RunResult, str]:
    """A durable run whose agent ``a`` calls ``tool`` once; the result, and what the model
    read as the tool's result."""
    scripts = {"a": [ToolCalls([("odd", {})]), Reply("seen")], "b": [Reply("ok")]}
    with FakeLLM(scripts=scripts) as fake:
        workflow = fake_workflow(fake, ONE_TOOL)
        result = axo.run(
            workflow, "x", runtime=runtime, tools=[tool], state_dir=str(state), timeout=60
        )
        (seen,) = [m["content"] for m in fake.requests[1].messages if m["role"] == "tool"]
    return result, seen


def test_half_a_character_from_the_llm_is_replaced_and_stored(tmp_path: Path, runtime: str) -> None:
    # a server that cuts an emoji in two at max_tokens sends a lone surrogate, "\ud83d"
    scripts = {"a": [Reply("cut \ud83d here")], "b": [Reply("fine")]}
    with FakeLLM(scripts=scripts) as fake:
        workflow = fake_workflow(fake, "  - {id: a}\n  - {id: b, depends_on: [a]}\n")
        result = axo.run(workflow, "x", runtime=runtime, state_dir=str(tmp_path), timeout=60)
        assert "cut \ufffd here" in fake.requests[-1].text  # b read it, made valid
    assert result.ok, result.failure
    json.loads(result.to_json())  # it encodes
    with EventLog.open(tmp_path) as log:
        (run,) = log.runs()
        stored = [r.data for r in log.events(run.run_id) if r.kind == "agent_done"]
    assert stored[0]["output"] == "cut \ufffd here"


def test_a_tool_value_with_no_json_form_reaches_the_model_as_text(
    tmp_path: Path, runtime: str
) -> None:
    def odd() -> Opaque:
        """Return something odd."""
        return Opaque()

    result, seen = run_calling(odd, tmp_path, runtime)
    assert result.ok, result.failure
    assert seen == "an opaque value"


def test_a_tool_that_calls_sys_exit_fails_as_a_tool_and_the_run_goes_on(
    tmp_path: Path, runtime: str
) -> None:
    def odd() -> str:
        """Parse arguments like a command line tool."""
        sys.exit(3)

    result, seen = run_calling(odd, tmp_path, runtime)
    assert result.ok, result.failure
    assert seen == "error: ToolExited: called sys.exit(3)"
    assert [a.status for a in result.agents] == ["done", "done"]
