"""End-to-end runs against the fake LLM server, on both runtime modes."""

from __future__ import annotations

import pytest

import axo
from axo.testing import Fail, FakeLLM, Hang, Reply
from tests.helpers import fake_workflow, forked_copies, wait_gone


def test_chain_of_five_sends_each_agent_exactly_its_predecessors_output(runtime: str) -> None:
    ids = ["s1", "s2", "s3", "s4", "s5"]
    scripts = {a: [Reply(f"output of {a}")] for a in ids}
    agents = "".join(
        f"  - {{id: {a}{', depends_on: [' + ids[i - 1] + ']' if i else ''}}}\n"
        for i, a in enumerate(ids)
    )
    with FakeLLM(scripts=scripts) as fake:
        result = axo.run(fake_workflow(fake, agents), "the input", runtime=runtime)
    assert result.ok, result.failure
    assert [r.key for r in fake.requests] == ids
    for i, a in enumerate(ids):
        text = fake.requests_for(a)[0].text
        for j, other in enumerate(ids):
            assert (f"output of {other}" in text) == (j == i - 1), (a, other)
        assert "the input" in text
    for before, after in zip(fake.requests, fake.requests[1:], strict=False):
        assert before.answered is not None and after.received >= before.answered
    assert result.outputs == {"s5": "output of s5"}
    assert [a.status for a in result.agents] == ["done"] * 5


def test_diamond_join_waits_for_both_branches_and_sees_both_outputs(runtime: str) -> None:
    scripts = {
        "a": [Reply("A")],
        "b": [Reply("B-out", delay=0.05)],
        "c": [Reply("C-out", delay=0.15)],
        "d": [Reply("D")],
    }
    agents = (
        "  - {id: a}\n  - {id: b, depends_on: [a]}\n  - {id: c, depends_on: [a]}\n"
        "  - {id: d, depends_on: [b, c]}\n"
    )
    with FakeLLM(scripts=scripts) as fake:
        result = axo.run(fake_workflow(fake, agents), "x", runtime=runtime)
    assert result.ok, result.failure
    d = fake.requests_for("d")[0]
    assert "B-out" in d.text and "C-out" in d.text
    for branch in ("b", "c"):
        answered = fake.requests_for(branch)[0].answered
        assert answered is not None and d.received >= answered
    assert len(fake.requests_for("d")) == 1
    assert result.sinks == ["d"] and result.outputs == {"d": "D"}


def test_all_to_all_layers_start_only_after_the_whole_previous_layer(runtime: str) -> None:
    width, depth = 10, 10
    names = [[f"l{k}n{i}" for i in range(width)] for k in range(depth)]
    lines = []
    for k, layer in enumerate(names):
        for n in layer:
            deps = f", depends_on: [{', '.join(names[k - 1])}]" if k else ""
            lines.append(f"  - {{id: {n}{deps}}}\n")
    scripts = {n: [Reply(f"out-{n}")] for layer in names for n in layer}
    with FakeLLM(scripts=scripts) as fake:
        result = axo.run(fake_workflow(fake, "".join(lines)), "go", runtime=runtime)
    assert result.ok, result.failure
    for k in range(1, depth):
        last_answer = max(fake.requests_for(n)[0].answered or 0.0 for n in names[k - 1])
        first_start = min(fake.requests_for(n)[0].received for n in names[k])
        assert first_start >= last_answer, f"layer {k} started early"
        sample = fake.requests_for(names[k][0])[0].text
        assert all(f"out-{n}" in sample for n in names[k - 1])
    assert len(fake.requests) == width * depth
    assert list(result.outputs) == names[-1]


def test_a_failing_agent_skips_its_dependents_and_the_rest_still_finishes(runtime: str) -> None:
    scripts = {
        "a": [Reply("A")],
        "b": [Fail(400, "bad request from the test")],
        "c": [],
        "x": [Reply("X", delay=0.1)],
        "y": [Reply("Y")],
    }
    agents = (
        "  - {id: a}\n  - {id: b, depends_on: [a]}\n  - {id: c, depends_on: [b]}\n"
        "  - {id: d, depends_on: [c]}\n  - {id: x}\n  - {id: y, depends_on: [x]}\n"
    )
    with FakeLLM(scripts={**scripts, "d": []}) as fake:
        result = axo.run(fake_workflow(fake, agents), "x", runtime=runtime)
    status = {a.id: a.status for a in result.agents}
    assert status == {
        "a": "done",
        "b": "failed",
        "c": "skipped",
        "d": "skipped",
        "x": "done",
        "y": "done",
    }
    assert result.agent("d").reason == "depends on 'c', skipped because 'b' failed"
    assert result.status == "failed"
    assert result.failure is not None
    assert "'b'" in result.failure and "HTTP 400" in result.failure
    assert "bad request from the test" in result.failure
    assert result.agent("c").reason == "depends on 'b', which failed"
    assert fake.requests_for("c") == []
    assert result.outputs == {"y": "Y"}


def test_a_server_error_then_success_is_retried(runtime: str) -> None:
    with FakeLLM(script=[Fail(503, "overloaded"), Fail(500), Reply("fine")]) as fake:
        wf = fake_workflow(fake, "  - {id: solo}\n", retries=3)
        result = axo.run(wf, "x", runtime=runtime)
    assert result.ok, result.failure
    assert result.outputs == {"solo": "fine"}
    assert [r.status for r in fake.requests] == [503, 500, 200]


def test_retries_running_out_fail_the_agent_with_the_last_reason(runtime: str) -> None:
    with FakeLLM(script=[Fail(502, "bad gateway")] * 3) as fake:
        result = axo.run(fake_workflow(fake, "  - {id: solo}\n", retries=2), "x", runtime=runtime)
    assert result.status == "failed"
    reason = result.agent("solo").reason or ""
    assert "HTTP 502" in reason and "gave up after 3 attempts" in reason


def test_an_llm_that_never_answers_times_out_with_a_clear_reason(runtime: str) -> None:
    with FakeLLM(script=[Hang()]) as fake:
        wf = fake_workflow(
            fake, "  - {id: slow}\n  - {id: after, depends_on: [slow]}\n", timeout=0.3
        )
        result = axo.run(wf, "x", runtime=runtime)
    assert result.status == "failed"
    assert "no answer within 0.3s" in (result.agent("slow").reason or "")
    assert result.agent("after").status == "skipped"


def test_a_run_timeout_cancels_and_reports_running_agents(runtime: str) -> None:
    with FakeLLM(scripts={"a": [Hang()], "b": []}) as fake:
        wf = fake_workflow(fake, "  - {id: a}\n  - {id: b, depends_on: [a]}\n", timeout=30)
        # long enough for the run to start on a loaded machine: a is running when it ends
        result = axo.run(wf, "x", runtime=runtime, timeout=2.0)
    assert result.status == "failed"
    assert result.failure == "run timed out after 2s"
    assert result.agent("a").status == "failed"
    assert result.agent("b").status == "skipped"


def test_multiproc_leaves_no_process_behind() -> None:
    before = forked_copies()
    seen: set[int] = set()

    def watch(event: object, tracker: object) -> None:
        seen.update(forked_copies() - before)

    with FakeLLM(scripts={"a": [Reply("A")], "b": [Reply("B")]}) as fake:
        wf = fake_workflow(fake, "  - {id: a}\n  - {id: b, depends_on: [a]}\n")
        result = axo.run(wf, "x", runtime="multiproc", on_event=watch)
    assert result.ok, result.failure
    assert seen, "multiproc mode started no process"
    assert wait_gone(seen, timeout=15) == set()


def test_usage_is_recorded_per_agent_and_per_run() -> None:
    with FakeLLM(
        scripts={
            "a": [Reply("A", prompt_tokens=10, completion_tokens=3)],
            "b": [Reply("B", prompt_tokens=20, completion_tokens=4)],
        }
    ) as fake:
        wf = fake_workflow(fake, "  - {id: a}\n  - {id: b, depends_on: [a]}\n")
        result = axo.run(wf, "x")
    assert result.agent("a").usage.total_tokens == 13
    assert result.agent("b").usage.total_tokens == 24
    assert result.usage.prompt_tokens == 30 and result.usage.completion_tokens == 7


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf")])
def test_a_timeout_that_is_no_positive_number_is_refused(timeout: float) -> None:
    from axo.errors import UsageError

    with FakeLLM(scripts={"a": []}) as fake, pytest.raises(UsageError, match="positive number"):
        axo.run(fake_workflow(fake, "  - {id: a}\n"), "x", timeout=timeout)
