"""Kill a real `axo run` process, resume it, and check nothing was asked or done twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from axo.testing import FakeLLM, Hang, Reply, ToolCalls
from tests.helpers import wait_gone

pytestmark = pytest.mark.slow


def write_workflow(tmp_path: Path, fake: FakeLLM, agents: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "providers:\n"
        f"  fake: {{type: openai, base_url: '{fake.base_url}', max_retries: 0,"
        " timeout: 60}\n"
        "agents:\n" + agents
    )
    return path


def axo(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "axo.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def only_run(state: Path, cwd: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "axo.cli", "runs", "--json", "--state-dir", str(state)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    runs = json.loads(out.stdout)
    assert len(runs) == 1
    return str(runs[0]["run_id"])


def kill_and_resume(
    tmp_path: Path, fake: FakeLLM, agents: str, runtime: str, *, wait: tuple[int, str]
) -> dict[str, object]:
    wf = write_workflow(tmp_path, fake, agents)
    state = tmp_path / "state"
    first = axo(
        "run",
        str(wf),
        "--input",
        "the input",
        "--state-dir",
        str(state),
        "--json",
        "--runtime",
        runtime,
        cwd=tmp_path,
    )
    try:
        fake.wait_for(wait[0], key=wait[1], timeout=60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    run_id = only_run(state, tmp_path)
    second = axo(
        "run",
        str(wf),
        "--resume",
        run_id,
        "--state-dir",
        str(state),
        "--json",
        "--runtime",
        runtime,
        cwd=tmp_path,
    )
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    leftovers = {p for p in processes_mentioning(str(state))}
    assert wait_gone(leftovers, timeout=15) == set(), "a process of the killed run survived"
    result: dict[str, object] = json.loads(out)
    return result


def processes_mentioning(text: str) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        found.add(int(entry))
            except OSError:
                continue
    return found


def test_a_run_killed_between_agents_resumes_without_asking_again(
    tmp_path: Path, runtime: str
) -> None:
    scripts = {"a": [Reply("A-out")], "b": [Hang(), Reply("B-out")], "c": [Reply("C-out")]}
    agents = "  - {id: a}\n  - {id: b, depends_on: [a]}\n  - {id: c, depends_on: [b]}\n"
    with FakeLLM(scripts=scripts) as fake:
        result = kill_and_resume(tmp_path, fake, agents, runtime, wait=(1, "b"))
        assert [r.key for r in fake.requests] == ["a", "b", "b", "c"]
        assert "B-out" in fake.requests_for("c")[0].text
        assert "A-out" in fake.requests_for("b")[1].text
    assert result["status"] == "succeeded"
    assert result["outputs"] == {"c": "C-out"}
    agents_out = {a["id"]: a["output"] for a in result["agents"]}  # type: ignore[index,union-attr]
    assert agents_out == {"a": "A-out", "b": "B-out", "c": "C-out"}


def test_a_run_killed_mid_turn_replays_the_llm_call_and_the_tool_call(
    tmp_path: Path, runtime: str
) -> None:
    code = "open('side.txt', 'a').write('ran\\n')"
    scripts = {"a": [ToolCalls([("run_python", {"code": code})]), Hang(), Reply("done")]}
    with FakeLLM(scripts=scripts) as fake:
        result = kill_and_resume(
            tmp_path, fake, "  - {id: a, tools: [run_python]}\n", runtime, wait=(2, "a")
        )
        requests = fake.requests_for("a")
        # life 1: the tool-calling answer, then the hung request; life 2: only the hung one again
        assert len(requests) == 3
        assert requests[1].text == requests[2].text
    assert result["status"] == "succeeded" and result["outputs"] == {"a": "done"}
    run_dir = next((tmp_path / "state" / "runs").iterdir())
    assert (run_dir / "workspace" / "side.txt").read_text() == "ran\n"


def test_a_corrupt_log_record_and_checkpoint_are_reported_and_the_run_still_resumes(
    tmp_path: Path,
) -> None:
    import sqlite3

    scripts = {"a": [Reply("A-out")], "b": [Reply("B-out")], "c": [Hang(), Reply("C-out")]}
    agents = "  - {id: a}\n  - {id: b, depends_on: [a]}\n  - {id: c, depends_on: [b]}\n"
    with FakeLLM(scripts=scripts) as fake:
        wf = write_workflow(tmp_path, fake, agents)
        state = tmp_path / "state"
        first = axo(
            "run", str(wf), "--input", "in", "--state-dir", str(state), "--json", cwd=tmp_path
        )
        try:
            fake.wait_for(1, key="c", timeout=60)
        finally:
            first.send_signal(signal.SIGKILL)
            first.communicate(timeout=30)
        run_id = only_run(state, tmp_path)
        # flip bytes in b's completion record, and truncate b's newest checkpoint
        with sqlite3.connect(state / "events.db") as db:
            (seq,) = db.execute(
                "SELECT seq FROM events WHERE kind='agent_done' AND agent='b'"
            ).fetchone()
            db.execute(
                "UPDATE events SET payload = x'00ff00ff' WHERE run_id=? AND seq=?", (run_id, seq)
            )
        newest = sorted((state / "runs" / run_id / "checkpoints" / "b").iterdir())[-1]
        newest.write_bytes(newest.read_bytes()[:10])
        second = axo(
            "run", str(wf), "--resume", run_id, "--state-dir", str(state), "--json", cwd=tmp_path
        )
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        assert [r.key for r in fake.requests] == ["a", "b", "c", "c"], "nothing asked twice"
    result = json.loads(out)
    assert result["status"] == "succeeded" and result["outputs"] == {"c": "C-out"}
    problems = [n["detail"]["problem"] for n in result["notes"] if n["kind"] == "resume_problem"]
    assert any(f"record {seq}" in p for p in problems), problems
    assert any("checkpoint" in p and "older one" in p for p in problems), problems


def test_retention_prunes_old_runs_and_their_folders(tmp_path: Path) -> None:
    import axo as api

    with FakeLLM(script=[Reply("x")] * 4) as fake:
        text = (
            f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}'}}\n"
            "agents:\n  - {id: a}\nrun: {retention: {keep_last: 2}}\n"
        )
        wf = api.load_workflow("r.yaml", text=text)
        ids = [api.run(wf, "x", state_dir=str(tmp_path)).run_id for _ in range(4)]
    from axo.eventlog import EventLog

    with EventLog.open(tmp_path) as log:
        kept = {r.run_id for r in log.runs()}
    assert kept == set(ids[-2:])
    assert {p.name for p in (tmp_path / "runs").iterdir()} == set(ids[-2:])


def test_retention_prunes_only_runs_of_its_own_workflow(tmp_path: Path) -> None:
    import axo as api

    with FakeLLM(script=[Reply("x")] * 5) as fake:
        head = f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}'}}\n"
        keeper = api.load_workflow("keeper.yaml", text=head + "agents:\n  - {id: a}\n")
        pruned = api.load_workflow(
            "pruned.yaml", text=head + "agents:\n  - {id: a}\nrun: {retention: {keep_last: 1}}\n"
        )
        theirs = [api.run(keeper, "x", state_dir=str(tmp_path)).run_id for _ in range(2)]
        ours = [api.run(pruned, "x", state_dir=str(tmp_path)).run_id for _ in range(3)]
    from axo.eventlog import EventLog

    with EventLog.open(tmp_path) as log:
        kept = {r.run_id for r in log.runs()}
    assert kept == {*theirs, ours[-1]}
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {*theirs, ours[-1]}


def test_retention_knows_a_file_however_its_path_is_spelled_and_from_wherever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import axo as api
    from axo.eventlog import EventLog

    state = str(tmp_path / "shared-state")
    with FakeLLM(script=[Reply("x")] * 5) as fake:
        head = f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}'}}\n"
        for project, extra in (("p1", ""), ("p2", "run: {retention: {keep_last: 1}}\n")):
            (tmp_path / project).mkdir()
            (tmp_path / project / "wf.yaml").write_text(head + "agents:\n  - {id: a}\n" + extra)
        monkeypatch.chdir(tmp_path / "p1")  # another project's wf.yaml, same state directory
        theirs = [api.run(api.load_workflow("wf.yaml"), "x", state_dir=state).run_id]
        monkeypatch.chdir(tmp_path / "p2")
        spellings = ("wf.yaml", "./wf.yaml", str(tmp_path / "p2" / "wf.yaml"), "../p2/wf.yaml")
        ours = [api.run(api.load_workflow(s), "x", state_dir=state).run_id for s in spellings]
    with EventLog.open(state) as log:
        kept = {r.run_id for r in log.runs()}
    assert kept == {*theirs, ours[-1]}
    assert {p.name for p in (tmp_path / "shared-state" / "runs").iterdir()} == kept


def test_distill_turns_a_session_into_facts_for_later_runs(tmp_path: Path) -> None:
    import axo as api

    with FakeLLM(
        scripts={
            "a": [Reply("The deploy window is Tuesday 14:00.")],
            "*": [Reply("- The deploy window is Tuesday at 14:00\n- none")],
        },
        key=lambda body: "*" if "transcript of your work session" in json.dumps(body) else "a",
    ) as fake:
        text = (
            f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}'}}\n"
            "agents:\n  - {id: a, memory: {long_term: true, distill: true}}\n"
        )
        wf = api.load_workflow("d.yaml", text=text)
        result = api.run(wf, "When is the deploy window?", state_dir=str(tmp_path))
    assert result.notes_of("distilled")[0].detail["facts"] == 1
    from axo.memory.facts import FactStore

    store = FactStore(next((tmp_path / "memory").iterdir()) / "facts.msgpack")
    assert [f.text for f in store.recall("deploy window", 3)] == [
        "The deploy window is Tuesday at 14:00"
    ]


def test_a_distill_call_counts_in_its_agent_and_run_usage_and_under_the_run_budget(
    tmp_path: Path,
) -> None:
    import axo as api

    def text(fake: FakeLLM, budget: str) -> str:
        return (
            f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}'}}\n{budget}"
            "agents:\n  - id: a\n    sampling: {max_tokens: 20}\n"
            "    memory: {long_term: true, distill: true}\n"
        )

    def distiller(body: dict[str, Any]) -> str:
        return "*" if "transcript of your work session" in json.dumps(body) else "a"

    answer = Reply("Tuesday.", prompt_tokens=100, completion_tokens=10)
    facts = Reply("- The window is Tuesday", prompt_tokens=700, completion_tokens=50)
    with FakeLLM(scripts={"a": [answer], "*": [facts]}, key=distiller) as fake:
        wf = api.load_workflow("d.yaml", text=text(fake, ""))
        result = api.run(wf, "When?", state_dir=str(tmp_path / "one"))
    a = result.agent("a")
    assert (a.usage.total_tokens, a.llm_calls) == (860, 2)
    assert result.usage.total_tokens == 860 and result.notes_of("distilled")
    with FakeLLM(scripts={"a": [answer]}, key=distiller) as fake:  # no distill request
        wf = api.load_workflow("d.yaml", text=text(fake, "run: {token_budget: 400}\n"))
        result = api.run(wf, "When?", state_dir=str(tmp_path / "two"))
    (failed,) = result.notes_of("distill_failed")
    assert "run budget exceeded" in failed.detail["reason"]
    assert result.usage.total_tokens == 110 and result.ok


def test_distill_reads_every_round_of_the_turn_not_only_its_last_request(
    tmp_path: Path,
) -> None:
    import axo as api

    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "policy.txt").write_text("FACT-ONE: refunds need a manager")
    (tmp_path / "work" / "other.txt").write_text("nothing here")
    rounds = [
        ToolCalls([("read_file", {"path": "policy.txt"})]),
        ToolCalls([("read_file", {"path": "other.txt"})]),
        Reply("done"),
    ]
    with FakeLLM(
        scripts={"a": rounds, "*": [Reply("- Refunds need a manager")]},
        key=lambda body: "*" if "transcript of your work session" in json.dumps(body) else "a",
    ) as fake:
        text = (
            f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}'}}\n"
            "agents:\n  - {id: a, tools: [read_file], memory: {long_term: true, distill: true}}\n"
        )
        wf = api.load_workflow("d.yaml", text=text)
        result = api.run(wf, "x", state_dir=str(tmp_path / "s"), workspace=str(tmp_path / "work"))
        (distilling,) = fake.requests_for("*")
    assert result.ok
    assert "FACT-ONE" not in fake.requests_for("a")[-1].text, "memory first: the last round only"
    transcript = distilling.text
    assert "FACT-ONE" in transcript and "nothing here" in transcript
    assert (
        transcript.index("FACT-ONE") < transcript.index("nothing here") < transcript.index("done")
    )


def test_an_agent_with_checkpoints_off_writes_none(tmp_path: Path) -> None:
    import axo as api

    with FakeLLM(scripts={"a": [Reply("A")], "b": [Reply("B")]}) as fake:
        text = (
            f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}'}}\n"
            "agents:\n  - {id: a, memory: {checkpoint: false}}\n  - {id: b}\n"
        )
        result = api.run(api.load_workflow("c.yaml", text=text), "x", state_dir=str(tmp_path))
    folder = tmp_path / "runs" / result.run_id / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["b"]
