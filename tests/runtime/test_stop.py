"""Graceful stop — SIGTERM, SIGINT, a STOP file, `axo stop` — then resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from axo.eventlog import EventLog
from axo.testing import FakeLLM, Reply
from tests.runtime.test_resume import axo, write_workflow

pytestmark = pytest.mark.slow

AGENTS = "  - {id: a}\n  - {id: b, depends_on: [a]}\n"


def start(tmp_path: Path, fake: FakeLLM) -> tuple[subprocess.Popen[str], Path, Path]:
    wf = write_workflow(tmp_path, fake, AGENTS)
    state = tmp_path / "state"
    proc = axo("run", str(wf), "--input", "x", "--state-dir", str(state), "--json", cwd=tmp_path)
    fake.wait_for(1, key="a", timeout=60)  # a is running: its answer comes 3 s later
    return proc, wf, state


def only_run(state: Path) -> str:
    with EventLog.open(state) as log:
        (run,) = log.runs()
    return run.run_id


def finish_stopped(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "--resume" in err
    result: dict[str, object] = json.loads(out)
    assert result["status"] == "stopped"
    states = {a["id"]: a["status"] for a in result["agents"]}  # type: ignore[index,union-attr]
    assert states == {"a": "done", "b": "waiting"}, "a finishes its turn; b does not start"
    return result


def resume(tmp_path: Path, wf: Path, state: Path, run_id: str) -> dict[str, object]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "axo.cli",
            "run",
            str(wf),
            "--resume",
            run_id,
            "--state-dir",
            str(state),
            "--json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "STOP file", "axo stop"])
def test_a_stopped_run_finishes_running_agents_records_the_stop_and_resumes(
    tmp_path: Path, how: str
) -> None:
    with FakeLLM(scripts={"a": [Reply("A", delay=3.0)], "b": [Reply("B")]}) as fake:
        proc, wf, state = start(tmp_path, fake)
        run_id = only_run(state)
        if how in ("SIGTERM", "SIGINT"):
            proc.send_signal(getattr(signal, how))
        elif how == "STOP file":
            (state / "runs" / run_id / "STOP").write_text("")
        else:
            subprocess.run(
                [sys.executable, "-m", "axo.cli", "stop", run_id, "--state-dir", str(state)],
                cwd=tmp_path,
                check=True,
                capture_output=True,
            )
        finish_stopped(proc)
        events = subprocess.run(
            [
                sys.executable,
                "-m",
                "axo.cli",
                "events",
                run_id,
                "--state-dir",
                str(state),
                "--json",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        kinds = [e["kind"] for e in json.loads(events.stdout)["events"]]
        assert "stop_requested" in kinds and kinds[-1] == "run_finished"
        result = resume(tmp_path, wf, state, run_id)
        assert [r.key for r in fake.requests] == ["a", "b"], "a is not asked again"
    assert result["status"] == "succeeded" and result["outputs"] == {"b": "B"}


def resume_refused(tmp_path: Path, wf: Path, state: Path, run_id: str) -> str:
    command = [sys.executable, "-m", "axo.cli", "run", str(wf), "--resume", run_id]
    out = subprocess.run(
        [*command, "--state-dir", str(state)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    return out.stderr


def test_a_run_still_running_in_another_process_is_not_resumed(tmp_path: Path) -> None:
    with FakeLLM(scripts={"a": [Reply("A", delay=3.0)], "b": [Reply("B")]}) as fake:
        proc, wf, state = start(tmp_path, fake)
        run_id = only_run(state)
        try:
            refused = resume_refused(tmp_path, wf, state, run_id)
            assert f"run '{run_id}' is still running (process {proc.pid})" in refused
            assert f"axo stop {run_id}" in refused
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        assert proc.returncode == 0, err
        assert json.loads(out)["status"] == "succeeded"
        assert [r.key for r in fake.requests] == ["a", "b"], "nobody ran an agent twice"


def test_resuming_an_unknown_or_path_like_id_creates_no_folder(tmp_path: Path) -> None:
    with FakeLLM(scripts={}) as fake:
        wf = write_workflow(tmp_path, fake, AGENTS)
        state = tmp_path / "state"
        state.mkdir()
        assert "no run 'nosuchrun'" in resume_refused(tmp_path, wf, state, "nosuchrun")
        assert "is not a run id" in resume_refused(tmp_path, wf, state, "../../escaped")
    assert not (state / "runs" / "nosuchrun").exists()
    assert not (tmp_path / "escaped").exists() and not (state / "escaped").exists()


def test_an_agent_done_before_a_stop_is_distilled_when_the_resumed_run_ends(
    tmp_path: Path,
) -> None:
    agents = (
        "  - {id: a, memory: {long_term: true, distill: true}}\n"
        "  - {id: b, depends_on: [a]}\n"
        "  - {id: c, depends_on: [b]}\n"
    )
    scripts = {
        "a": [Reply("A-SAID: the vault code is 4417")],
        "b": [Reply("B-SAID", delay=3.0)],
        "c": [Reply("C")],
        "*": [Reply("- The vault code is 4417")],
    }

    def key(body: dict[str, object]) -> str:
        text = json.dumps(body)
        if "transcript of your work session" in text:
            return "*"
        return "c" if "B-SAID" in text else "b" if "A-SAID" in text else "a"

    with FakeLLM(scripts=scripts, key=key) as fake:
        wf = write_workflow(tmp_path, fake, agents)
        state = tmp_path / "state"
        proc = axo(
            "run", str(wf), "--input", "x", "--state-dir", str(state), "--json", cwd=tmp_path
        )
        fake.wait_for(1, key="b", timeout=60)  # a is done; b waits for its answer
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err
        assert not fake.requests_for("*"), "a stopped run distils nothing"
        result = resume(tmp_path, wf, state, only_run(state))
        (distilling,) = fake.requests_for("*")
    assert result["status"] == "succeeded"
    assert "A-SAID: the vault code is 4417" in distilling.text  # a's session, from its checkpoint
    notes = result["notes"]
    assert isinstance(notes, list)
    assert [n["kind"] for n in notes if n["agent"] == "a"] == ["distilled"]


@pytest.mark.parametrize("runtime", ["local", "multiproc"])
def test_a_stop_after_a_failure_leaves_the_held_back_agent_waiting_for_a_resume(
    tmp_path: Path, runtime: str
) -> None:
    import axo as api
    from axo.messages import AgentDone
    from axo.testing import Fail

    state = tmp_path / "state"

    def stop_when_x_fails(event: object, tracker: object) -> None:
        if isinstance(event, AgentDone) and event.agent == "x":
            (state / "runs" / event.run_id / "STOP").write_text("")

    scripts = {"x": [Fail(400), Reply("X")], "a": [Reply("A", delay=2.0)], "c": [Reply("C")]}
    with FakeLLM(scripts=scripts) as fake:
        wf = api.load_workflow(
            write_workflow(
                tmp_path, fake, "  - {id: x}\n  - {id: a}\n  - {id: c, depends_on: [a]}\n"
            )
        )
        first = api.run(wf, "in", runtime=runtime, state_dir=str(state), on_event=stop_when_x_fails)  # type: ignore[arg-type]
        states = {a.id: a.status for a in first.agents}
        assert (first.status, states) == ("stopped", {"x": "failed", "a": "done", "c": "waiting"})
        resumed = api.run(wf, resume=first.run_id, state_dir=str(state), runtime=runtime)  # type: ignore[arg-type]
    assert resumed.status == "succeeded" and resumed.outputs == {"c": "C", "x": "X"}


def test_resuming_from_a_state_directory_without_a_log_creates_nothing(tmp_path: Path) -> None:
    import axo as api
    from axo.errors import UsageError

    with FakeLLM(scripts={}) as fake:
        wf = api.load_workflow(write_workflow(tmp_path, fake, AGENTS))
        with pytest.raises(UsageError, match="holds no event log"):
            api.run(wf, resume="abc123", state_dir=str(tmp_path / "nowhere"))
    assert not (tmp_path / "nowhere").exists()
