"""QA regressions of the command line: a user's mistake is one message and exit code 2, never
a traceback; a closed stdout ends a command quietly."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from axo.eventlog import EventLog
from axo.testing import FakeLLM, Reply

WORKFLOW = (
    "providers:\n"
    "  fake: {type: openai, base_url: 'http://127.0.0.1:9', max_retries: 0, timeout: 5}\n"
    "agents:\n"
    "  - {id: a}\n"
)


def axo(
    *args: str, cwd: Path, stdin: bytes | None = None, stdout: int = subprocess.PIPE
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "axo.cli", *args],
        cwd=cwd,
        input=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=120,
        check=False,
    )


def assert_user_error(out: subprocess.CompletedProcess[bytes], *needles: str) -> str:
    err = out.stderr.decode()
    assert out.returncode == 2, err
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def workflow(tmp_path: Path) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW)
    return path


def state_with_runs(state: Path) -> None:
    """A state dir with a finished run ``done1`` (and its folder) and a running run ``live1``."""
    with EventLog.open(state) as log:
        log.start_run("done1", "wf.yaml", None, "hash", {})
        for n in range(3):
            log.append("done1", "note", None, {"n": n})
        log.finish_run("done1", "succeeded")
        log.start_run("live1", "wf.yaml", None, "hash", {})
    for run_id in ("done1", "live1", "ghost1"):
        (state / "runs" / run_id).mkdir(parents=True)


# 1. tracebacks instead of an exit-2 message


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_a_non_utf8_input_is_a_user_error(tmp_path: Path, how: str) -> None:
    wf = workflow(tmp_path)
    data = b"\xff\xfe\x00not utf-8"
    if how == "file":
        (tmp_path / "in.txt").write_bytes(data)
        out = axo("run", str(wf), "--input-file", "in.txt", "--quiet", cwd=tmp_path)
        assert_user_error(out, "in.txt: ", "not UTF-8")
    else:
        out = axo("run", str(wf), "--input-file", "-", "--quiet", cwd=tmp_path, stdin=data)
        assert_user_error(out, "not UTF-8")


@pytest.mark.parametrize("where", ["workflow", "input"])
def test_a_pipe_or_a_device_is_refused_not_read(tmp_path: Path, where: str) -> None:
    # reading a named pipe blocks until someone writes; /dev/zero never ends
    os.mkfifo(tmp_path / "pipe")
    for path in (str(tmp_path / "pipe"), "/dev/zero"):
        if where == "workflow":
            out = axo("validate", path, cwd=tmp_path)
        else:
            out = axo("run", str(workflow(tmp_path)), "--input-file", path, "--quiet", cwd=tmp_path)
        assert_user_error(out, path, "not a regular file")


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--workspace", "wf.yaml", "--workspace wf.yaml: not a directory"),
        ("--state-dir", "", "--state-dir '': give a folder"),
        ("--workspace", " ", "--workspace ' ': give a folder"),
    ],
)
def test_a_folder_option_that_names_no_folder_is_refused(
    tmp_path: Path, option: str, value: str, needle: str
) -> None:
    wf = workflow(tmp_path)
    out = axo("run", str(wf), "--input", "x", option, value, "--quiet", cwd=tmp_path)
    assert_user_error(out, needle)


def test_json_commands_print_their_errors_as_json_too(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("agents:\n  - {id: a, depends_on: [b]}\n")
    out = axo("run", str(bad), "--input", "x", "--json", cwd=tmp_path)
    assert_user_error(out, "depends on unknown agent 'b'")
    (error,) = json.loads(out.stdout)["errors"]
    assert (error["line"], error["path"]) == (2, "$.agents[0].depends_on[0]")
    out = axo("runs", "--json", "--state-dir", str(tmp_path / "none"), cwd=tmp_path)
    assert_user_error(out, "no event log")
    reply = json.loads(out.stdout)
    assert reply["ok"] is False and "no event log" in reply["errors"][0]["message"]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-5", "0", "-0.0", "soon"])
def test_a_timeout_that_is_not_a_positive_finite_number_is_refused(
    tmp_path: Path, value: str
) -> None:
    wf = workflow(tmp_path)
    out = axo("run", str(wf), "--input", "x", f"--timeout={value}", "--quiet", cwd=tmp_path)
    assert_user_error(out, "--timeout", value)
    assert not (tmp_path / ".axo").exists(), "nothing ran"


@pytest.mark.parametrize("kind", ["regular file", "uncreatable", "under a file"])
def test_a_state_dir_that_cannot_be_a_directory_is_a_user_error(tmp_path: Path, kind: str) -> None:
    wf = workflow(tmp_path)
    (tmp_path / "plain").write_text("")
    state = {
        "regular file": "plain",
        "uncreatable": "/proc/axo-no-such-dir",
        "under a file": "plain/state",
    }[kind]
    out = axo("run", str(wf), "--input", "x", "--state-dir", state, "--quiet", cwd=tmp_path)
    assert_user_error(out, f"--state-dir {state}: ")


@pytest.mark.parametrize("command", ["runs", "events", "run", "stop"])
def test_an_event_log_that_is_not_sqlite_is_a_user_error(tmp_path: Path, command: str) -> None:
    wf = workflow(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    (state / "events.db").write_bytes(b"this is not a SQLite database, not at all\n" * 4)
    args = {
        "runs": ["runs"],
        "events": ["events", "r1"],
        "run": ["run", str(wf), "--input", "x", "--quiet"],
        "stop": ["stop", "r1"],
    }[command]
    out = axo(*args, "--state-dir", str(state), cwd=tmp_path)
    err = assert_user_error(out, "events.db", "not a readable event log", "--state-dir")
    assert len(err.strip().splitlines()) == 1, err


# 2. (non-positive timeouts: in the parametrisation above)

# 3. validate --json on an invalid file


def test_validate_json_prints_ok_false_and_the_errors_on_stdout(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("agents:\n  - {id: a, depends_on: [nope]}\n")
    out = axo("validate", str(bad), "--json", cwd=tmp_path)
    err = assert_user_error(out, "depends on unknown agent 'nope'")
    report = json.loads(out.stdout)
    assert report["ok"] is False and report["file"] == str(bad)
    (problem,) = report["errors"]
    assert problem["line"] == 2 and problem["path"].startswith("$.agents[0].depends_on")
    assert "nope" in problem["message"] and problem["message"] in err
    missing = axo("validate", str(tmp_path / "missing.yaml"), "--json", cwd=tmp_path)
    assert_user_error(missing, "not found")
    assert json.loads(missing.stdout)["ok"] is False


# 4. axo stop on a run that is not running


@pytest.mark.parametrize(
    ("run_id", "needle"), [("done1", "is not running (status: succeeded"), ("ghost1", "no run")]
)
def test_stop_refuses_a_finished_or_unknown_run(tmp_path: Path, run_id: str, needle: str) -> None:
    state = tmp_path / "state"
    state_with_runs(state)
    out = axo("stop", run_id, "--state-dir", str(state), cwd=tmp_path)
    assert_user_error(out, needle, run_id)
    assert not (state / "runs" / run_id / "STOP").exists()
    live = axo("stop", "live1", "--state-dir", str(state), cwd=tmp_path)
    assert live.returncode == 0, live.stderr
    assert (state / "runs" / "live1" / "STOP").exists()


# 5. the resume hint names a non-default state dir


@pytest.mark.slow
def test_the_resume_hint_after_a_stop_names_the_state_dir_quoted(tmp_path: Path) -> None:
    state = tmp_path / "my state"
    with FakeLLM(scripts={"a": [Reply("A", delay=3.0)]}) as fake:
        wf = tmp_path / "wf.yaml"
        # b never starts: the stop cuts the run short, so it can be resumed
        two = WORKFLOW + "  - {id: b, depends_on: [a]}\n"
        wf.write_text(two.replace("http://127.0.0.1:9", fake.base_url))
        command = ["run", str(wf), "--input", "x", "--json", "--state-dir", str(state)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "axo.cli", *command],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            fake.wait_for(1, key="a", timeout=60)  # a is running: its answer comes 3 s later
            with EventLog.open(state) as log:
                (run,) = log.runs()
            stop = axo("stop", run.run_id, "--state-dir", str(state), cwd=tmp_path)
            assert stop.returncode == 0, stop.stderr
        finally:
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    hint = err.strip().splitlines()[-1].split("continue it with: ", 1)[1]
    words = shlex.split(hint)
    assert words == ["axo", "run", str(wf), "--resume", run.run_id, "--state-dir", str(state)]
    again = axo("stop", run.run_id, "--state-dir", str(state), cwd=tmp_path)
    assert_user_error(again, "is not running (status: stopped")


# 6. a closed stdout


@pytest.mark.parametrize("args", [["runs"], ["runs", "--json"], ["events", "done1", "--json"]])
def test_a_closed_stdout_ends_quietly_with_141(tmp_path: Path, args: list[str]) -> None:
    state = tmp_path / "state"
    state_with_runs(state)
    read, write = os.pipe()
    os.close(read)  # like `| head` that has already exited: every write fails with EPIPE
    try:
        out = axo(*args, "--state-dir", str(state), cwd=tmp_path, stdout=write)
    finally:
        os.close(write)
    assert out.stderr == b""
    assert out.returncode == 141
