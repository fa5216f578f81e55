"""What a run reports when it is cut short: the tokens spent by turns that did not finish
(a timeout, a stop), one final record per agent in the log on both runtimes, and a stop that
cut nothing short is no stop at all."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

import axo
from axo.eventlog import EventLog
from axo.testing import Fail, FakeLLM, Hang, Reply, ToolCalls
from tests.helpers import fake_workflow
from tests.runtime.test_resume import axo as axo_cli
from tests.runtime.test_resume import write_workflow

pytestmark = pytest.mark.slow


def look() -> str:
    """Look around."""
    return "nothing"


def test_a_timed_out_turn_counts_what_it_spent_and_the_log_ends_every_agent(
    tmp_path: Path, runtime: str
) -> None:
    scripts = {
        "a": [ToolCalls([("look", {})], prompt_tokens=1000, completion_tokens=500), Hang()],
        "b": [],
    }
    with FakeLLM(scripts=scripts) as fake:
        workflow = fake_workflow(
            fake, "  - {id: a, tools: [look]}\n  - {id: b, depends_on: [a]}\n", timeout=60
        )
        result = axo.run(
            workflow, "x", runtime=runtime, tools=[look], state_dir=str(tmp_path), timeout=3
        )
    assert result.status == "failed" and "timed out" in (result.failure or "")
    a, b = result.agents
    assert (a.status, b.status) == ("failed", "skipped")
    assert a.usage.total_tokens == 1500 and a.llm_calls == 1, "the answered call was paid for"
    assert result.usage.total_tokens == 1500
    with EventLog.open(tmp_path) as log:
        (run,) = log.runs()
        ends = {
            r.agent: (r.kind, r.data.get("status"), r.data.get("usage"))
            for r in log.events(run.run_id)
            if r.kind in ("agent_done", "agent_skipped")
        }
    spent = {"prompt_tokens": 1000, "completion_tokens": 500}
    assert ends == {"a": ("agent_done", "failed", spent), "b": ("agent_skipped", None, None)}


def test_a_stop_that_comes_during_the_last_agents_call_cuts_nothing_short(
    tmp_path: Path,
) -> None:
    with FakeLLM(scripts={"a": [Reply("A")], "b": [Reply("B", delay=3.0)]}) as fake:
        wf = write_workflow(tmp_path, fake, "  - {id: a}\n  - {id: b, depends_on: [a]}\n")
        state = tmp_path / "state"
        proc = axo_cli(
            "run", str(wf), "--input", "x", "--state-dir", str(state), "--json", cwd=tmp_path
        )
        try:
            fake.wait_for(1, key="b", timeout=60)  # the last agent's call is in flight
            with EventLog.open(state) as log:
                (run,) = log.runs()
            stop = [sys.executable, "-m", "axo.cli", "stop", run.run_id, "--state-dir", str(state)]
            subprocess.run(stop, cwd=tmp_path, check=True, capture_output=True, timeout=60)
        finally:
            out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["status"] == "succeeded" and result["outputs"] == {"b": "B"}
    assert "--resume" not in err


def test_a_run_its_caller_cancels_is_logged_as_stopped_not_failed(tmp_path: Path) -> None:
    async def cancel_while_a_waits(fake: FakeLLM) -> None:
        workflow = fake_workflow(fake, "  - {id: a}\n")
        run = asyncio.create_task(axo.run_async(workflow, "x", state_dir=str(tmp_path)))
        await asyncio.to_thread(fake.wait_for, 1, key="a", timeout=30)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    with FakeLLM(scripts={"a": [Hang()]}) as fake:
        asyncio.run(cancel_while_a_waits(fake))
    with EventLog.open(tmp_path) as log:
        (run,) = log.runs()
        last = list(log.events(run.run_id))[-1]
    assert run.status == "stopped"
    assert last.kind == "run_cancelled"
    assert last.data == {"reason": "cancelled by its caller; resumable"}


@pytest.mark.parametrize("first", ["the failure", "the quorum"])
def test_a_failure_beside_a_quorum_decides_the_same_whenever_it_comes(
    tmp_path: Path, first: str
) -> None:
    # d needs one of {b, c}; e follows d. b fails, c succeeds: d and e run, in either order
    slow = 1.0
    scripts = {
        "a": [Reply("A")],
        "b": [Fail(500, delay=0.0 if first == "the failure" else slow)],
        "c": [Reply("C", delay=slow if first == "the failure" else 0.0)],
        "d": [Reply("D", delay=slow)],
        "e": [Reply("E")],
    }
    agents = (
        "  - {id: a}\n  - {id: b, depends_on: [a]}\n  - {id: c, depends_on: [a]}\n"
        "  - {id: d, depends_on: [b, c], activation_threshold: 0.5}\n"
        "  - {id: e, depends_on: [d]}\n"
    )
    with FakeLLM(scripts=scripts) as fake:
        result = axo.run(fake_workflow(fake, agents), "x", timeout=60)
    assert {a.id: a.status for a in result.agents} == {
        "a": "done",
        "b": "failed",
        "c": "done",
        "d": "done",
        "e": "done",
    }
