"""Durable runs in-process: what the event log and the checkpoints hold when an agent acts,
when a run ends, and what a resume makes of them."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import axo
from axo import eventwriter
from axo.eventrecords import EventLogFailed
from axo.llm.base import ChatRequest, ChatResponse
from axo.memory.checkpoint import CheckpointStore
from axo.testing import FakeLLM, Reply, ToolCalls
from tests.helpers import fake_workflow, outcome_within

CHAIN = "  - {id: a}\n  - {id: b, depends_on: [a]}\n  - {id: c, depends_on: [b]}\n"
OUTPUTS = {"a": "A-out", "b": "B-out", "c": "C-out"}


def results_in_log(state: Path) -> list[tuple[str, int]]:
    """The result records another connection (another process) can read now."""
    with closing(sqlite3.connect(state / "events.db")) as db:
        return db.execute("SELECT agent, seq FROM events WHERE kind = 'result'").fetchall()


def run_chain(state: Path) -> axo.RunResult:
    with FakeLLM(scripts={a: [Reply(out)] for a, out in OUTPUTS.items()}) as fake:
        result = axo.run(fake_workflow(fake, CHAIN), "in", state_dir=str(state))
    assert result.ok, result.failure
    return result


def test_an_agent_acts_on_an_llm_result_only_after_it_is_committed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    seen: list[list[tuple[str, int]]] = []

    def look() -> str:
        """Look at the event log."""
        seen.append(results_in_log(state))
        return "looked"

    with FakeLLM(script=[ToolCalls([("look", {})]), Reply("done")]) as fake:
        result = axo.run(
            fake_workflow(fake, "  - {id: a, tools: [look]}\n"),
            "x",
            tools=[look],
            state_dir=str(state),
        )
    assert result.ok, result.failure
    assert len(seen) == 1 and [agent for agent, _ in seen[0]] == ["a"]  # the answer calling it


class Inspecting:
    """A model that answers each agent at once, after noting which completions the event log
    and the checkpoints hold — what a process killed during that call would leave."""

    name = "inspecting"

    def __init__(self, state: Path) -> None:
        self.state = state
        self.seen: dict[str, tuple[list[str], dict[str, str]]] = {}

    async def complete(self, request: ChatRequest) -> ChatResponse:
        agent = (request.messages[0].content or "").removeprefix("You are ").removesuffix(".")
        with closing(sqlite3.connect(self.state / "events.db")) as db:
            logged = db.execute("SELECT agent FROM events WHERE kind = 'agent_done'").fetchall()
        store = CheckpointStore(next((self.state / "runs").iterdir()) / "checkpoints")
        saved = {a: store.latest(a)["status"] for a in store.agents()}
        self.seen[agent] = ([a for (a,) in logged], saved)
        return ChatResponse(content=f"{agent} ok")

    async def aclose(self) -> None:
        pass


def test_what_led_to_an_llm_call_is_on_disk_before_the_call_starts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    model = Inspecting(state)
    text = "providers:\n  p: {type: openai, base_url: 'http://127.0.0.1:9/v1'}\nagents:\n"
    wf = axo.load_workflow("chain.yaml", text=text + CHAIN)
    result = axo.run(wf, "in", providers={"p": model}, state_dir=str(state))
    assert result.ok, result.failure
    assert model.seen == {
        "a": ([], {}),
        "b": (["a"], {"a": "done"}),
        "c": (["a", "b"], {"a": "done", "b": "done"}),
    }


def test_a_finished_run_leaves_each_agents_newest_checkpoint_readable(tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = run_chain(state)
    store = CheckpointStore(state / "runs" / result.run_id / "checkpoints")
    assert store.agents() == ["a", "b", "c"]
    for agent, out in OUTPUTS.items():
        loaded = store.load_latest(agent)
        assert loaded is not None and loaded.skipped == []
        assert loaded.state["status"] == "done" and loaded.state["output"] == out
        assert loaded.state["session"][-1]["content"] == out
    assert not [t for t in threading.enumerate() if t.name == "axo-checkpoints"]


def unreadable_completion(state: Path, agent: str) -> None:
    """Make ``agent``'s completion record in the log unreadable."""
    with closing(sqlite3.connect(state / "events.db")) as db, db:
        db.execute(
            "UPDATE events SET payload = x'00ff' WHERE kind = 'agent_done' AND agent = ?",
            (agent,),
        )


def resume_asking_nothing(state: Path, run_id: str, asked: str) -> axo.RunResult:
    """Resume the chain's run without any LLM answer to give (``asked``: the failure if one
    is requested); it must succeed with c's output."""
    with FakeLLM(script=[]) as fake:
        again = axo.run(fake_workflow(fake, CHAIN), "", state_dir=str(state), resume=run_id)
        assert fake.requests == [], asked
    assert again.ok, again.failure
    assert again.outputs == {"c": "C-out"}
    return again


def test_completions_the_log_lost_are_recovered_from_the_checkpoints(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = run_chain(state)
    unreadable_completion(state, "a")  # it and every record after it are dropped
    again = resume_asking_nothing(state, first.run_id, "a completed agent was asked again")
    problems = [n.detail["problem"] for n in again.notes_of("resume_problem")]
    for agent in OUTPUTS:
        assert f"agent '{agent}': completion recovered from its checkpoint" in problems


def test_a_bad_checkpoint_with_none_older_is_reported_and_the_log_replayed(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    first = run_chain(state)
    unreadable_completion(state, "c")
    for path in (state / "runs" / first.run_id / "checkpoints" / "c").iterdir():
        path.write_bytes(path.read_bytes()[:10])
    again = resume_asking_nothing(state, first.run_id, "c's recorded answer was asked for again")
    problems = [n.detail["problem"] for n in again.notes_of("resume_problem")]
    assert any("truncated header" in p and p.endswith("no older one to use") for p in problems)
    assert not any("completion recovered" in p for p in problems)


def test_an_event_log_that_fails_mid_run_ends_the_run_and_leaves_no_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the disk fails (every commit after the one with a's completion raises), as when full
    insert, failing = eventwriter.Writer._insert, [False]

    def failing_insert(self: eventwriter.Writer, conn: sqlite3.Connection, rows: Any) -> Any:
        if failing[0] and rows:
            raise sqlite3.OperationalError("disk I/O error")
        failing[0] = failing[0] or any(r[3] == "agent_done" for r in rows)
        return insert(self, conn, rows)

    monkeypatch.setattr(eventwriter.Writer, "_insert", failing_insert)
    with FakeLLM(scripts={"a": [Reply("A")], "b": [Reply("B")], "c": [Reply("C")]}) as fake:
        outcome = outcome_within(
            lambda: axo.run(fake_workflow(fake, CHAIN), "in", state_dir=str(tmp_path)),
            60,
            "the run hangs: nobody answers the agent whose result failed",
        )
    assert isinstance(outcome, EventLogFailed) and "disk I/O error" in str(outcome)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("axo-")]
