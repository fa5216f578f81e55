"""The agent turn against the fake LLM server: budgets, tools, loop guards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import axo
from axo.testing import FakeLLM, Reply, ToolCalls
from tests.helpers import fake_workflow


def run(fake: FakeLLM, agents: str, tmp_path: Path, **kw: object) -> axo.RunResult:
    return axo.run(fake_workflow(fake, agents), "the task", workspace=str(tmp_path), **kw)


def test_a_tool_call_runs_and_its_result_reaches_the_next_request(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("the secret number is 42")
    with FakeLLM(
        script=[ToolCalls([("read_file", {"path": "notes.txt"})]), Reply("it is 42")]
    ) as fake:
        result = run(fake, "  - {id: a, tools: [read_file]}\n", tmp_path)
    assert result.ok, result.failure
    assert result.outputs == {"a": "it is 42"}
    second = fake.requests[1].messages
    assert second[-1]["role"] == "tool" and "the secret number is 42" in second[-1]["content"]
    assert fake.requests[0].body["tools"][0]["function"]["name"] == "read_file"
    assert result.agent("a").tool_calls == 1


def test_a_budget_abort_never_sends_the_request(tmp_path: Path) -> None:
    agents = (
        "  - {id: a, token_budget: {per_call: 50, overflow_policy: abort},"
        " sampling: {max_tokens: 40}}\n"
    )
    with FakeLLM(script=[]) as fake:
        result = run(fake, agents, tmp_path)
    assert fake.requests == []
    a = result.agent("a")
    assert a.status == "failed"
    assert a.reason is not None and "per_call budget exceeded" in a.reason
    assert "limit is 50" in a.reason
    assert result.notes_of("budget_exceeded")[0].detail["budget"] == "per_call"


def test_a_budget_crossed_on_the_third_call_is_caught_before_it(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x" * 10)
    script = [
        ToolCalls([("read_file", {"path": "f.txt"})], prompt_tokens=300, completion_tokens=20),
        ToolCalls([("list_files", {})], prompt_tokens=300, completion_tokens=20),
        Reply("never sent"),
    ]
    # every request here is estimated at 240–280 tokens (prompt, tool schemas, max_tokens);
    # the server reports 320 per call: 0 + ~240 fits 850, 320 + ~260 fits, 640 + ~280 not
    agents = (
        "  - {id: a, tools: [read_file, list_files], sampling: {max_tokens: 50},"
        " token_budget: {per_execution: 850}}\n"
    )
    with FakeLLM(script=script) as fake:
        result = run(fake, agents, tmp_path)
    assert len(fake.requests) == 2, "the third request must not be sent"
    a = result.agent("a")
    assert a.status == "failed" and "per_execution budget exceeded" in (a.reason or "")
    assert fake.remaining() == {"*": 1}


def test_warn_records_an_event_and_sends_anyway(tmp_path: Path) -> None:
    agents = "  - {id: a, token_budget: {per_call: 30, overflow_policy: warn}}\n"
    with FakeLLM(script=[Reply("fine")]) as fake:
        result = run(fake, agents, tmp_path)
    assert result.ok and len(fake.requests) == 1
    assert result.notes_of("budget_warning")[0].detail["limit"] == 30


def test_summarize_shrinks_the_next_request_and_the_answer_still_arrives(tmp_path: Path) -> None:
    content = "line of data\n" * 300  # ~1,300 tokens by the estimate: over per_call alone
    (tmp_path / "big.txt").write_text(content)
    scripts = {
        "a": [ToolCalls([("read_file", {"path": "big.txt"})]), Reply("final answer")],
        "*": [Reply("SUMMARY: big.txt holds 300 lines of data")],
    }
    agents = (
        "  - {id: a, tools: [read_file], sampling: {max_tokens: 64},"
        " token_budget: {per_call: 1100, overflow_policy: summarize}}\n"
    )
    with FakeLLM(scripts=scripts) as fake:
        result = run(fake, agents, tmp_path)
    assert result.ok, result.failure
    assert result.outputs == {"a": "final answer"}
    summarizer = fake.requests_for("*")
    assert len(summarizer) == 1 and content[:200] in summarizer[0].text
    after = fake.requests_for("a")[1]
    assert "(summarized) SUMMARY: big.txt holds 300 lines" in after.text
    assert content[:200] not in after.text
    assert len(json.dumps(after.body["messages"])) < len(content) // 4
    note = result.notes_of("context_summarized")[0]
    assert note.detail["new_estimate"] <= 1100 < note.detail["estimate"]
    assert result.agent("a").llm_calls == 3  # two turns and the summarizing call


def test_summarize_leaves_alone_results_of_rounds_the_request_no_longer_carries(
    tmp_path: Path,
) -> None:
    (tmp_path / "old.txt").write_text("old data line\n" * 120)  # long, but fits per_call
    (tmp_path / "new.txt").write_text("new data line\n" * 300)
    scripts = {
        "a": [
            ToolCalls([("read_file", {"path": "old.txt"})]),
            ToolCalls([("read_file", {"path": "new.txt"})]),
            Reply("final"),
        ],
        "*": [Reply("SUMMARY of new.txt")],  # one summary: of what the next request carries
    }
    agents = (
        "  - {id: a, tools: [read_file], sampling: {max_tokens: 64},"
        " token_budget: {per_call: 1100, overflow_policy: summarize}}\n"
    )
    with FakeLLM(scripts=scripts) as fake:
        result = run(fake, agents, tmp_path)
        (summarized,) = fake.requests_for("*")
    assert result.ok, result.failure
    assert "new data line" in summarized.text and "old data line" not in summarized.text
    assert "(summarized) SUMMARY of new.txt" in fake.requests_for("a")[2].text


def test_a_disallowed_tool_is_refused_and_the_model_is_told(tmp_path: Path) -> None:
    with FakeLLM(
        script=[ToolCalls([("write_file", {"path": "x", "content": "y"})]), Reply("ok then")]
    ) as fake:
        result = run(fake, "  - {id: a, tools: [read_file]}\n", tmp_path)
    assert result.ok
    tool_msg = fake.requests[1].messages[-1]
    assert tool_msg["role"] == "tool" and "not allowed" in tool_msg["content"]
    assert not (tmp_path / "x").exists()
    assert result.notes_of("tool_denied")[0].detail["tool"] == "write_file"


def test_write_tools_are_not_granted_by_a_wildcard(tmp_path: Path) -> None:
    with FakeLLM(script=[Reply("x")]) as fake:
        run(fake, "  - {id: a, tools: ['*']}\n", tmp_path)
    offered = {t["function"]["name"] for t in fake.requests[0].body["tools"]}
    assert offered == {"read_file", "list_files", "recall"}


def test_repeated_identical_calls_are_not_executed_again(tmp_path: Path) -> None:
    script = [
        ToolCalls([("run_python", {"code": "print(1)"})]),
        ToolCalls([("run_python", {"code": "print(1)"})]),
        Reply("done"),
    ]
    with FakeLLM(script=script) as fake:
        result = run(fake, "  - {id: a, tools: [run_python]}\n", tmp_path)
    assert result.ok
    assert result.agent("a").tool_calls == 1
    third = fake.requests[2]
    assert "already called run_python" in third.messages[-2]["content"]
    assert "answer now" in third.messages[-1]["content"]
    assert "tools" not in third.body, "after an all-repeat round the agent answers without tools"
    assert result.notes_of("tool_deduplicated") and result.notes_of("loop_guard")


def test_max_iterations_ends_the_loop_with_a_final_answer(tmp_path: Path) -> None:
    script = [
        ToolCalls([("list_files", {"path": "."})]),
        ToolCalls([("list_files", {"path": "sub"})]),
        Reply("final"),
    ]
    with FakeLLM(script=script) as fake:
        result = run(fake, "  - {id: a, tools: [list_files], max_iterations: 2}\n", tmp_path)
    assert result.ok
    assert len(fake.requests) == 3
    assert "tools" not in fake.requests[2].body
    assert "used all 2 tool rounds" in fake.requests[2].messages[-1]["content"]
    assert result.agent("a").stop_reason == "max_iterations"
    assert result.notes_of("turn_stopping")[0].detail["reason"] == "max_iterations"


ONE_ROUND = "  - {id: a, tools: [list_files], max_iterations: 1}\n"


def test_tool_calls_in_a_final_answer_are_not_run_and_the_model_is_asked_for_text(
    tmp_path: Path,
) -> None:
    script = [
        ToolCalls([("list_files", {"path": "."})]),
        ToolCalls([("list_files", {"path": "sub"})]),  # offered no tools, calls one anyway
        Reply("the answer"),
    ]
    with FakeLLM(script=script) as fake:
        result = run(fake, ONE_ROUND, tmp_path)
    assert result.ok and result.outputs == {"a": "the answer"}
    assert result.agent("a").tool_calls == 1
    assert "tools" not in fake.requests[2].body
    assert "your tool calls were not run" in fake.requests[2].messages[-1]["content"]
    (note,) = result.notes_of("tool_calls_ignored")
    assert note.detail["tools"] == ["list_files"]


def test_text_beside_tool_calls_in_a_final_answer_is_the_answer(tmp_path: Path) -> None:
    script = [
        ToolCalls([("list_files", {"path": "."})]),
        ToolCalls([("list_files", {"path": "sub"})], content="done: two files"),
    ]
    with FakeLLM(script=script) as fake:
        result = run(fake, ONE_ROUND, tmp_path)
    assert result.outputs == {"a": "done: two files"} and len(fake.requests) == 2
    assert len(result.notes_of("tool_calls_ignored")) == 1


def test_a_model_that_only_calls_tools_where_none_are_offered_fails_the_agent(
    tmp_path: Path,
) -> None:
    script = [ToolCalls([("list_files", {"path": "."})])] * 3
    with FakeLLM(script=script) as fake:
        result = run(fake, ONE_ROUND, tmp_path)
    a = result.agent("a")
    assert a.status == "failed" and a.reason is not None
    assert "tool calls and no text twice" in a.reason
    assert len(result.notes_of("tool_calls_ignored")) == 2


def test_a_tool_error_goes_back_to_the_model_as_a_result(tmp_path: Path) -> None:
    with FakeLLM(script=[ToolCalls([("read_file", {"nope": 1})]), Reply("sorry")]) as fake:
        result = run(fake, "  - {id: a, tools: [read_file]}\n", tmp_path)
    assert result.ok
    content = fake.requests[1].messages[-1]["content"]
    assert content.startswith("error: invalid arguments") and "path" in content


def test_a_custom_python_tool_is_registered_from_its_type_hints(tmp_path: Path) -> None:
    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: the first.
            b: the second.
        """
        return a + b

    with FakeLLM(script=[ToolCalls([("add", {"a": 2, "b": 3})]), Reply("5")]) as fake:
        result = run(fake, "  - {id: a, tools: [add]}\n", tmp_path, tools=[add])
    assert result.ok
    spec = fake.requests[0].body["tools"][0]["function"]
    assert spec["description"] == "Add two integers."
    assert spec["parameters"]["properties"]["a"] == {"type": "integer", "description": "the first."}
    assert fake.requests[1].messages[-1]["content"] == "5"


def test_an_unknown_tool_in_an_allow_list_is_a_clear_error(tmp_path: Path) -> None:
    with FakeLLM(script=[]) as fake, pytest.raises(axo.UsageError, match="read_fil'"):
        run(fake, "  - {id: a, tools: [read_fil]}\n", tmp_path)


def test_run_level_token_budget_refuses_before_sending(tmp_path: Path) -> None:
    with FakeLLM(scripts={"a": [Reply("A" * 400, completion_tokens=100)], "b": []}) as fake:
        wf = fake_workflow(
            fake, "  - {id: a}\n  - {id: b, depends_on: [a]}\n", extra="run: {token_budget: 700}\n"
        )
        result = axo.run(wf, "x", workspace=str(tmp_path))
    assert result.agent("a").status == "done"
    assert result.agent("b").status == "failed"
    assert "run budget exceeded" in (result.agent("b").reason or "")
    assert fake.requests_for("b") == []


def test_a_pre_tool_hook_that_times_out_denies_the_call_in_a_run(tmp_path: Path) -> None:
    import asyncio

    from axo.tools.policy import Policy

    async def never(call: object) -> bool:
        await asyncio.Event().wait()
        return True

    with FakeLLM(
        script=[ToolCalls([("write_file", {"path": "x.txt", "content": "1"})]), Reply("gave up")]
    ) as fake:
        result = run(
            fake,
            "  - {id: a, tools: [write_file]}\n",
            tmp_path,
            policy=Policy(pre_tool=never, hook_timeout=0.2),
        )
    assert result.ok
    assert not (tmp_path / "x.txt").exists()
    assert "refused" in fake.requests[1].messages[-1]["content"]
    decision = result.notes_of("tool_decision")[0]
    assert decision.detail["action"] == "deny" and "0.2s" in decision.detail["reason"]


def test_every_allowed_tool_call_is_recorded_as_a_decision(tmp_path: Path) -> None:
    with FakeLLM(script=[ToolCalls([("list_files", {})]), Reply("ok")]) as fake:
        result = run(fake, "  - {id: a, tools: [list_files]}\n", tmp_path)
    kinds = [(n.kind, n.detail.get("action")) for n in result.notes]
    assert ("tool_decision", "allow") in kinds and ("tool_result", None) in kinds


VERDICT = (
    "  - id: a\n"
    "    output_schema:\n"
    "      type: object\n"
    "      properties: {verdict: {enum: [APPROVE, REJECT]}}\n"
    "      required: [verdict]\n"
)


def test_an_answer_that_misses_the_output_schema_is_asked_for_again(tmp_path: Path) -> None:
    script = [Reply("I think it's fine"), Reply('```json\n{"verdict": "APPROVE"}\n```')]
    with FakeLLM(script=script) as fake:
        result = run(fake, VERDICT, tmp_path)
    assert result.ok, result.failure
    assert result.outputs == {"a": '{"verdict": "APPROVE"}'}  # the fence's inside
    retry = fake.requests[1]
    assert retry.body["response_format"]["json_schema"]["schema"]["required"] == ["verdict"]
    told = retry.messages[-1]["content"]
    assert "does not follow the required JSON schema: it is not JSON" in told
    (note,) = result.notes_of("output_invalid")
    assert note.detail["problem"].startswith("it is not JSON")
    assert result.agent("a").llm_calls == 2


def test_a_second_answer_that_misses_the_output_schema_fails_the_agent(tmp_path: Path) -> None:
    script = [Reply('{"verdict": 42}'), Reply('{"verdict": "MAYBE", "extra": true}')]
    with FakeLLM(script=script) as fake:
        result = run(fake, VERDICT, tmp_path)
    a = result.agent("a")
    assert result.status == "failed" and a.status == "failed"
    assert "the final answer does not follow output_schema: $.verdict: 'MAYBE' is not one of" in (
        a.reason or ""
    )
    assert "$.verdict: 42 is not one of" in fake.requests[1].messages[-1]["content"]


def test_a_line_break_inside_a_json_string_is_let_through(tmp_path: Path) -> None:
    with FakeLLM(script=[Reply('{"verdict": "APPROVE", "why": "two\nlines"}')]) as fake:
        result = run(fake, VERDICT, tmp_path)
    assert result.ok, result.failure
    assert len(fake.requests) == 1


def test_a_huge_tool_result_is_cut_and_the_model_is_told(tmp_path: Path) -> None:
    def dump() -> str:
        """Dump everything."""
        return "x" * 300_000

    script = [ToolCalls([("dump", {})]), Reply("too much")]
    with FakeLLM(script=script) as fake:
        result = run(fake, "  - {id: a, tools: [dump]}\n", tmp_path, tools=[dump])
    assert result.ok, result.failure
    (tool,) = [m for m in fake.requests[1].messages if m["role"] == "tool"]
    shown = "\n[… cut: the result has 300,000 characters; the first 100,000 are shown]"
    assert tool["content"] == "x" * 100_000 + shown
    (note,) = result.notes_of("tool_result_cut")
    assert note.detail == {"tool": "dump", "chars": 300_000, "kept": 100_000}
