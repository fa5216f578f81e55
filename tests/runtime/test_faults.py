"""Faults at run time become events and statuses: a killed agent process, a stop during
retries or start-up, a run timeout, an MCP server that does not start, a resumed budget."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from axo.eventlog import EventLog
from axo.testing import Fail, FakeLLM, Hang, Reply
from tests.runtime.test_resume import axo, only_run

pytestmark = pytest.mark.slow

CHAIN = "  - {id: a}\n  - {id: b, depends_on: [a]}\n"


def workflow(
    tmp_path: Path, fake: FakeLLM, agents: str, *, retries: int = 0, extra: str = ""
) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "providers:\n"
        f"  fake: {{type: openai, base_url: '{fake.base_url}', max_retries: {retries},"
        " timeout: 60, backoff: 0.5}\n"
        "agents:\n" + agents + extra
    )
    return path


def run_json(proc: subprocess.Popen[str], code: int) -> dict[str, object]:
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == code, err
    result: dict[str, object] = json.loads(out)
    return result


def statuses(result: dict[str, object]) -> dict[str, str]:
    return {a["id"]: a["status"] for a in result["agents"]}  # type: ignore[index,union-attr]


def events(state: Path, run_id: str) -> list[tuple[str, str | None, dict[str, object]]]:
    with EventLog.open(state) as log:
        return [(r.kind, r.agent, r.data) for r in log.events(run_id)]  # type: ignore[misc]


def _stat(pid: int | str) -> tuple[str, int]:
    """A process's state and parent (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                state, parent = _stat(entry)
            except OSError:
                continue
            if parent == pid and state != "Z":
                out.append(int(entry))
    return out


def agent_processes(cli: int) -> list[int]:
    """The agent actors' processes of an ``axo run --runtime multiproc`` process: Thespian's
    processes are forks of it (same command line); its admin is a daemon, the run actor is
    the admin's child and the agents are the run actor's children."""
    line = Path(f"/proc/{cli}/cmdline").read_bytes()
    forks = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != cli:
            try:
                if Path(f"/proc/{entry}/cmdline").read_bytes() == line:
                    forks.add(int(entry))
            except OSError:
                continue
    parent = {p: _stat(p)[1] for p in forks}
    return [p for p in forks if parent[p] in forks and parent[parent[p]] in forks]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds actor processes through /proc")
def test_a_killed_agent_process_fails_its_agent_at_once_in_multiproc(tmp_path: Path) -> None:
    with FakeLLM(scripts={"a": [Reply("A", delay=30.0)], "b": [Reply("B")]}) as fake:
        wf = workflow(tmp_path, fake, CHAIN)
        proc = axo("run", str(wf), "--input", "x", "--json", "--runtime", "multiproc", cwd=tmp_path)
        try:
            fake.wait_for(1, key="a", timeout=60)
            agents = agent_processes(proc.pid)
            assert len(agents) == 2, "one process per agent"
            started = time.monotonic()
            for pid in agents:
                os.kill(pid, signal.SIGKILL)
            result = run_json(proc, 1)
        finally:
            proc.kill()
    assert time.monotonic() - started < 20, "not the 30 s answer, nor the run timeout"
    assert statuses(result) == {"a": "failed", "b": "skipped"}
    assert "process exited" in str(result["failure"])


def test_a_stop_ends_retries_and_the_agent_waits_for_the_resumed_run(tmp_path: Path) -> None:
    # a's first attempt fails; its retry would come 0.5 s later, but the stop comes first
    scripts = {"a": [Fail(503, message="busy"), Reply("A")], "b": [Reply("B")]}
    with FakeLLM(scripts=scripts) as fake:
        wf = workflow(tmp_path, fake, CHAIN, retries=3)
        state = tmp_path / "state"
        proc = axo(
            "run", str(wf), "--input", "x", "--json", "--state-dir", str(state), cwd=tmp_path
        )
        fake.wait_for(1, key="a", timeout=60)
        proc.send_signal(signal.SIGINT)
        result = run_json(proc, 3)
        assert result["status"] == "stopped"
        assert statuses(result) == {"a": "waiting", "b": "waiting"}
        run_id = only_run(state, tmp_path)
        kinds = [k for k, _, _ in events(state, run_id)]
        assert "stop_requested" in kinds and "interrupted" in kinds
        again = axo(
            "run", str(wf), "--resume", run_id, "--state-dir", str(state), "--json", cwd=tmp_path
        )
        resumed = run_json(again, 0)
        assert [(r.key, r.status) for r in fake.requests] == [("a", 503), ("a", 200), ("b", 200)]
    assert resumed["outputs"] == {"b": "B"}


def test_a_second_stop_cuts_a_hung_call_short(tmp_path: Path) -> None:
    import asyncio

    from axo.runtime.host import Host
    from tests.helpers import fake_workflow

    async def scenario(fake: FakeLLM) -> dict[str, str]:
        with Host("local") as host:
            run = asyncio.create_task(host.run(fake_workflow(fake, CHAIN), "x", timeout=60))
            await asyncio.to_thread(fake.wait_for, 1, key="a", timeout=60)
            host.request_stop("first")  # graceful: a's call may still finish ...
            host.request_stop("second")  # ... the second one does not wait for it
            result = await run
        return {a.id: a.status for a in result.agents}

    with FakeLLM(scripts={"a": [Hang(), Reply("A")], "b": [Reply("B")]}) as fake:
        assert asyncio.run(scenario(fake)) == {"a": "waiting", "b": "waiting"}


def test_a_stop_while_an_mcp_server_starts_stops_the_run(tmp_path: Path) -> None:
    # the "server" says it has started through a FIFO, then reads requests and never answers
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    code = f"import sys; f = open({str(fifo)!r}, 'w'); f.write('up'); f.flush(); sys.stdin.read()"
    server = (
        "mcp_servers:\n"
        f"  slow: {{transport: stdio, command: {sys.executable},"
        f" args: ['-c', {code!r}], connect_timeout: 60}}\n"
    )
    with FakeLLM(scripts={"a": [Reply("A")]}) as fake:
        wf = workflow(tmp_path, fake, "  - {id: a}\n", extra=server)
        state = tmp_path / "state"
        started = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            proc = axo(
                "run", str(wf), "--input", "x", "--json", "--state-dir", str(state), cwd=tmp_path
            )
            ready, _, _ = select.select([started], [], [], 60)
            assert ready, "the MCP server never started"
        finally:
            os.close(started)
        proc.send_signal(signal.SIGINT)
        result = run_json(proc, 3)
        assert not fake.requests
    assert result["status"] == "stopped" and statuses(result) == {"a": "waiting"}


@pytest.mark.parametrize("runtime", ["local", "multiproc"])
def test_a_run_timeout_is_an_event_in_the_log(tmp_path: Path, runtime: str) -> None:
    with FakeLLM(scripts={"a": [Hang()]}) as fake:
        wf = workflow(tmp_path, fake, CHAIN)
        state = tmp_path / "state"
        proc = axo(
            "run",
            str(wf),
            "--input",
            "x",
            "--json",
            "--state-dir",
            str(state),
            "--runtime",
            runtime,
            "--timeout",
            "2",
            cwd=tmp_path,
        )
        result = run_json(proc, 1)
        log = events(state, only_run(state, tmp_path))
    assert statuses(result) == {"a": "failed", "b": "skipped"}
    (timed_out,) = [d for k, _, d in log if k == "run_timed_out"]
    assert timed_out == {"reason": "run timed out after 2s", "failed": ["a"], "skipped": ["b"]}
    assert [d["status"] for k, _, d in log if k == "run_finished"] == ["failed"]


def test_the_run_timeout_counts_from_the_start_even_while_a_server_starts(
    tmp_path: Path,
) -> None:
    # the "server" reads requests and never answers: only its 60 s connect timeout would end it
    code = "import sys; sys.stdin.read()"
    server = (
        "mcp_servers:\n"
        f"  slow: {{transport: stdio, command: {sys.executable},"
        f" args: ['-c', {code!r}], connect_timeout: 60}}\n"
    )
    with FakeLLM(scripts={}) as fake:
        wf = workflow(tmp_path, fake, CHAIN, extra=server)
        state = tmp_path / "state"
        proc = axo(
            "run", str(wf), "--input", "x", "--json", "--state-dir", str(state),
            "--timeout", "2", cwd=tmp_path,
        )  # fmt: skip
        result = run_json(proc, 1)
        log = events(state, only_run(state, tmp_path))
    reason = "run timed out after 2s, while starting"
    assert result["failure"] == reason
    assert statuses(result) == {"a": "skipped", "b": "skipped"}
    (timed_out,) = [d for k, _, d in log if k == "run_timed_out"]
    assert timed_out == {"reason": reason, "failed": [], "skipped": ["a", "b"]}
    assert [d["status"] for k, _, d in log if k == "run_finished"] == ["failed"]


def test_an_mcp_server_that_does_not_start_is_named_and_the_run_ends_failed(
    tmp_path: Path,
) -> None:
    server = f"mcp_servers:\n  gone: {{transport: stdio, command: {tmp_path / 'no-such-server'}}}\n"
    with FakeLLM(scripts={}) as fake:
        wf = workflow(tmp_path, fake, "  - {id: a, tools: [mcp__gone]}\n", extra=server)
        state = tmp_path / "state"
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "axo.cli",
                "run",
                str(wf),
                "--input",
                "x",
                "--state-dir",
                str(state),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2
        assert "MCP server 'gone' did not start" in out.stderr and "Traceback" not in out.stderr
        with EventLog.open(state) as log:
            (run,) = log.runs()
    assert run.status == "failed"


def test_a_resumed_run_counts_the_tokens_it_used_before_against_its_budget(
    tmp_path: Path,
) -> None:
    agents = "  - {id: a}\n  - {id: b, depends_on: [a]}\n  - {id: c, depends_on: [b]}\n"
    # a request is estimated at ~550 tokens (its prompt and room for the answer): with a's
    # 560 and b's 110 tokens counted, c does not fit in 1,200; with a's forgotten, it would
    budget = "run: {token_budget: 1200}\n"
    b_answer = Reply("B", prompt_tokens=100, completion_tokens=10)
    a_answer = Reply("A", prompt_tokens=550, completion_tokens=10)
    scripts = {"a": [a_answer], "b": [Hang(), b_answer], "c": [Reply("C")]}
    with FakeLLM(scripts=scripts) as fake:
        wf = workflow(tmp_path, fake, agents, extra=budget)
        state = tmp_path / "state"
        first = axo(
            "run", str(wf), "--input", "x", "--json", "--state-dir", str(state), cwd=tmp_path
        )
        fake.wait_for(2, timeout=60)  # a answered; b hangs
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        run_id = only_run(state, tmp_path)
        again = axo(
            "run", str(wf), "--resume", run_id, "--state-dir", str(state), "--json", cwd=tmp_path
        )
        result = run_json(again, 1)
        assert not fake.requests_for("c"), "c would take the run past its budget"
    assert statuses(result) == {"a": "done", "b": "done", "c": "failed"}
    assert "run budget exceeded" in str(result["failure"])


def test_each_retry_is_an_event(tmp_path: Path) -> None:
    scripts = {"a": [Fail(500, message="oops"), Fail(503, message="busy"), Reply("A")]}
    with FakeLLM(scripts=scripts) as fake:
        wf = workflow(tmp_path, fake, "  - {id: a}\n", retries=2)
        path = wf.read_text().replace("backoff: 0.5", "backoff: 0.01")
        wf.write_text(path)
        state = tmp_path / "state"
        proc = axo(
            "run", str(wf), "--input", "x", "--json", "--state-dir", str(state), cwd=tmp_path
        )
        result = run_json(proc, 0)
        log = events(state, only_run(state, tmp_path))
    retries = [(a, d["attempt"]) for k, a, d in log if k == "llm_retry"]
    assert retries == [("a", 1), ("a", 2)]
    assert [a["retries"] for a in result["agents"]] == [2]  # type: ignore[index,union-attr]
    assert result["outputs"] == {"a": "A"}


def test_a_killed_run_shows_as_interrupted_and_axo_stop_says_how_to_resume(
    tmp_path: Path,
) -> None:
    with FakeLLM(scripts={"a": [Hang(), Reply("A")], "b": [Reply("B")]}) as fake:
        wf = workflow(tmp_path, fake, CHAIN)
        state = tmp_path / "state"
        first = axo("run", str(wf), "--input", "x", "--state-dir", str(state), cwd=tmp_path)
        fake.wait_for(1, key="a", timeout=60)
        run_id = only_run(state, tmp_path)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "axo.cli", *args, "--state-dir", str(state)],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )

        (listed,) = json.loads(cli("runs", "--json").stdout)
        assert listed["status"] == "running"
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        (listed,) = json.loads(cli("runs", "--json").stdout)
        assert listed["status"] == "interrupted"
        refused = cli("stop", run_id)
        assert refused.returncode == 2 and f"--resume {run_id}" in refused.stderr
        again = axo(
            "run", str(wf), "--resume", run_id, "--state-dir", str(state), "--json", cwd=tmp_path
        )
        assert run_json(again, 0)["status"] == "succeeded"
        (listed,) = json.loads(cli("runs", "--json").stdout)
    assert listed["status"] == "succeeded"


def test_a_stop_ends_the_run_once_the_other_calls_in_flight_are_done(tmp_path: Path) -> None:
    # a's call fails after the stop (so a waits for --resume); b's is still in flight then
    agents = "  - {id: a}\n  - {id: b}\n  - {id: c, depends_on: [a, b]}\n"
    scripts = {"a": [Fail(500, delay=1.0)], "b": [Reply("B", delay=2.0)], "c": [Reply("C")]}
    with FakeLLM(scripts=scripts) as fake:
        wf = workflow(tmp_path, fake, agents)
        state = tmp_path / "state"
        proc = axo(
            "run", str(wf), "--input", "x", "--json", "--state-dir", str(state),
            "--timeout", "60", cwd=tmp_path,
        )  # fmt: skip
        fake.wait_for(2, timeout=60)
        proc.send_signal(signal.SIGINT)
        result = run_json(proc, 3)  # not the run timeout: that would be exit 1
    assert result["status"] == "stopped" and statuses(result)["c"] == "waiting"
    assert statuses(result)["a"] == "waiting"


def test_a_stop_cuts_a_long_retry_after_wait_short(tmp_path: Path) -> None:
    scripts = {"a": [Fail(429, message="slow down", retry_after=600), Reply("A")]}
    with FakeLLM(scripts=scripts) as fake:
        wf = workflow(tmp_path, fake, "  - {id: a}\n", retries=3)
        state = tmp_path / "state"
        proc = axo(
            "run", str(wf), "--input", "x", "--json", "--state-dir", str(state),
            "--timeout", "60", cwd=tmp_path,
        )  # fmt: skip
        fake.wait_for(1, key="a", timeout=60)
        proc.send_signal(signal.SIGINT)
        result = run_json(proc, 3)  # waiting out the 600 s would end in the run timeout
        assert len(fake.requests_for("a")) == 1, "no retry after the stop"
    assert statuses(result) == {"a": "waiting"}


def test_a_timed_out_multiproc_run_leaves_no_actor_process_behind(tmp_path: Path) -> None:
    import asyncio

    from axo.runtime.host import Host
    from tests.helpers import fake_workflow, forked_copies, wait_gone

    async def scenario() -> tuple[str, set[int]]:
        with FakeLLM(scripts={"a": [Hang()]}) as fake:
            wf = fake_workflow(fake, CHAIN)
            with Host("multiproc") as host:
                before = forked_copies()
                result = await host.run(wf, "x", timeout=2, state_dir=str(tmp_path / "state"))
                # the host stays open: what the run started must go (its ExitRequest is sent)
                return result.status, wait_gone(forked_copies() - before, timeout=30)

    status, left = asyncio.run(scenario())
    assert status == "failed" and not left


def test_a_run_timing_out_while_its_run_actor_is_made_leaves_no_actor_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio
    import threading
    from typing import Any

    from axo.runtime.bridges import ThreadBridge
    from axo.runtime.host import Host
    from tests.helpers import fake_workflow, forked_copies, wait_gone

    closing, close = threading.Event(), ThreadBridge.close

    def noted_close(self: ThreadBridge) -> None:
        closing.set()
        close(self)

    monkeypatch.setattr(ThreadBridge, "close", noted_close)
    with FakeLLM(scripts={}) as fake, Host("multiproc") as host:
        before = forked_copies()
        create = host.rt.create

        def late_create(cls: Any) -> Any:  # the actor comes only once the run has given up on it
            assert closing.wait(60), "the run never ended"
            return create(cls)

        host.rt.create = late_create  # type: ignore[method-assign]
        result = asyncio.run(host.run(fake_workflow(fake, "  - {id: a}\n"), "x", timeout=0.5))
        assert result.failure == "run timed out after 0.5s, while starting"
        left = wait_gone(forked_copies() - before, timeout=30)
    assert not left, f"{len(left)} actor process(es) of the timed-out run are still alive"


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def test_a_killed_run_actor_fails_the_run_at_once_and_takes_its_agents_along() -> None:
    import threading

    import axo as api
    from tests.helpers import fake_workflow, forked_copies, wait_gone

    before = forked_copies()
    results: list[object] = []
    scripts = {"a": [Reply("A")], "b": [Reply("B", delay=30.0)], "c": []}
    with FakeLLM(scripts=scripts) as fake:
        wf = fake_workflow(
            fake, "  - {id: a}\n  - {id: b, depends_on: [a]}\n  - {id: c, depends_on: [b]}\n"
        )
        run = threading.Thread(target=lambda: results.append(api.run(wf, "x", runtime="multiproc")))
        run.start()
        fake.wait_for(1, key="b", timeout=60)  # b's turn is in flight
        copies = forked_copies() - before
        # the admin forks the run actor, which forks the agents: their parent is the run actor
        agents = {p for p in copies if parent_of(parent_of(p) or 0) in copies}
        (run_actor,) = {parent_of(p) for p in agents}
        os.kill(run_actor, signal.SIGKILL)  # type: ignore[arg-type]
        run.join(timeout=30)  # not b's 30 s: the host sees the process end
        assert not run.is_alive(), "the run did not end when its run actor died"
    (result,) = results
    assert isinstance(result, api.RunResult)
    states = {a.id: (a.status, a.reason) for a in result.agents}
    assert states["a"][0] == "done" and states["c"][0] == "skipped"
    assert states["b"] == ("failed", "the run actor's process died")
    assert result.notes_of("run_failed")[0].detail["failed"] == ["b"]
    assert wait_gone(agents, timeout=15) == set(), "the agents' processes outlived the run"
