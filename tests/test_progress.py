from __future__ import annotations

from axo.progress import readable


def test_structured_output_prints_as_key_value_lines() -> None:
    assert readable('{"decision": "REVISE", "reason": "no\\nexpiry"}') == (
        "decision: REVISE\nreason: no expiry"
    )
    assert readable('{"decision": "APPROVE", "reason": "raw\nnewline"}') == (
        "decision: APPROVE\nreason: raw newline"
    )


def test_plain_text_and_non_objects_print_unchanged() -> None:
    assert readable("just words") == "just words"
    assert readable("[1, 2]") == "[1, 2]"
    assert readable("{not json}") == "{not json}"


def test_the_agent_table_shows_retries_in_progress() -> None:
    from rich.console import Console

    from axo.progress import agent_table
    from axo.result import AgentResult

    console = Console(width=100, record=True)
    console.print(agent_table([AgentResult(id="a", name="a", status="running", retries=2)]))
    assert "running (2 retries)" in console.export_text()


def test_a_workers_plan_steps_count_in_its_usage_even_when_no_event_ends_them() -> None:
    from axo.llm.base import Usage
    from axo.result import RunTracker

    tracker = RunTracker("r", [("boss", "Boss"), ("driver", "Driver")])
    tracker.spent("driver.1", Usage(prompt_tokens=100, completion_tokens=10))
    tracker.spent("driver.4", Usage(prompt_tokens=50, completion_tokens=5))  # a stop came next
    result = tracker.result(workflow=None, file="w.yaml", runtime="local", run_input="", sinks=[])
    driver = result.agent("driver")
    assert (driver.usage.total_tokens, driver.llm_calls) == (165, 2)
    assert result.usage.total_tokens == 165
