"""axo as an MCP server, driven by the official ``mcp`` client: in process first, then over
stdio (``axo mcp serve`` as a subprocess) and streamable HTTP (a real loopback socket). The
workflows' provider is a FakeLLM — a real HTTP server — named in YAML written to tmp_path."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from axo.errors import ConfigError, UsageError
from axo.mcp.cli import add_commands, run_command
from axo.mcp.server import AxoMcpServer, build_server, serve_http
from axo.testing import Fail, FakeLLM, Hang, Reply, ToolCalls

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
REVIEW = {
    "Reader": [Reply("It renames a function.")],
    "Advocate": [Reply("Clearer name.")],
    "Skeptic": [Reply("Callers may break.")],
    "Lead reviewer": [Reply("REVISE: callers.")],
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def review_file(tmp_path: Path, fake: FakeLLM, *, workflows: str = "") -> Path:
    """workflows/review.yaml's shape, pointed at ``fake``."""
    path = tmp_path / "review.yaml"
    path.write_text(f"""\
name: review
description: Review a change from two sides and join the reviews into a verdict.
providers:
  fake: {{type: openai, base_url: '{fake.base_url}', max_retries: 0, timeout: 10}}
agents:
  - {{id: reader, name: Reader, system_prompt: Summarize the change in two sentences.}}
  - {{id: strengths, name: Advocate, depends_on: [reader], system_prompt: Name two strengths.}}
  - {{id: risks, name: Skeptic, depends_on: [reader], system_prompt: Name two risks.}}
  - {{id: verdict, name: Lead reviewer, depends_on: [strengths, risks],
     system_prompt: Answer APPROVE or REVISE and say why.}}
{workflows}""")
    return path


class Progress:
    def __init__(self) -> None:
        self.notes: list[tuple[float, float | None, str | None]] = []
        self.first = anyio.Event()

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.notes.append((progress, total, message))
        self.first.set()


def assert_review_result(result: Any, progress: Progress) -> None:
    assert not result.is_error, result.content
    assert result.content[0].text == "REVISE: callers."
    assert result.structured_content["status"] == "succeeded"
    assert result.structured_content["outputs"] == {"verdict": "REVISE: callers."}
    assert [(p, t) for p, t, _ in progress.notes] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert progress.notes[0][2] == "reader: done" and progress.notes[-1][2] == "verdict: done"


async def test_the_official_client_lists_and_runs_a_workflow_over_stdio(tmp_path: Path) -> None:
    progress = Progress()
    with FakeLLM(scripts=REVIEW) as fake:
        path = review_file(tmp_path, fake)
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "axo.mcp.cli", "serve", str(path)], cwd=tmp_path
        )
        with anyio.fail_after(30):
            async with Client(params) as client:
                names = [t.name for t in (await client.list_tools()).tools]
                result = await client.call_tool(
                    "workflow_review", {"input": "the diff"}, progress_callback=progress
                )
    assert names == [
        "agent_reader",
        "agent_strengths",
        "agent_risks",
        "agent_verdict",
        "workflow_review",
    ]
    assert_review_result(result, progress)
    assert "the diff" in fake.requests_for("Reader")[0].text


async def test_the_official_client_runs_a_workflow_over_streamable_http_with_a_token(
    tmp_path: Path,
) -> None:
    progress = Progress()
    with FakeLLM(scripts=REVIEW) as fake:
        path = review_file(tmp_path, fake)
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                url = await _serving(tg, path, token="let-me-in")
                async with httpx2.AsyncClient() as http:
                    anonymous = await http.post(url, json={})
                    wrong = await http.post(url, json={}, headers={"Authorization": "Bearer guess"})
                    basic = {"Authorization": "Basic let-me-in"}  # the token, not as a bearer's
                    other = await http.post(url, json={}, headers=basic)
                # the scheme's name is case-insensitive (RFC 9110)
                async with (
                    httpx2.AsyncClient(headers={"Authorization": "bearer let-me-in"}) as http,
                    Client(streamable_http_client(url, http_client=http)) as client,
                ):
                    names = [t.name for t in (await client.list_tools()).tools]
                    result = await client.call_tool(
                        "workflow_review", {"input": "the diff"}, progress_callback=progress
                    )
                tg.cancel_scope.cancel()
    assert (anonymous.status_code, wrong.status_code, other.status_code) == (401, 401, 401)
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="axo"'
    assert "workflow_review" in names
    assert_review_result(result, progress)


async def _serving(tg: Any, path: Path | AxoMcpServer, **kw: Any) -> str:
    """Start ``serve_http`` on a free loopback port in ``tg``; return its URL once listening."""
    ready = anyio.Event()
    urls: list[str] = []

    def on_ready(url: str) -> None:
        urls.append(url)
        ready.set()

    tg.start_soon(lambda: serve_http(path, port=0, on_ready=on_ready, **kw))
    await ready.wait()
    return urls[0]


async def test_serving_beyond_loopback_without_a_token_is_refused(tmp_path: Path) -> None:
    with FakeLLM(script=[]) as fake:
        path = review_file(tmp_path, fake)
        with pytest.raises(
            UsageError, match="binding an address other than loopback needs a bearer token"
        ):
            await serve_http(path, host="0.0.0.0", port=0)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="axo")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return run_command(parser.parse_args(argv))


def test_axo_mcp_serve_refuses_a_public_address_without_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AXO_MCP_TOKEN", raising=False)
    with FakeLLM(script=[]) as fake:
        path = review_file(tmp_path, fake)
        assert _cli(["mcp", "serve", str(path), "--http", "0.0.0.0:0"]) == 2
        assert _cli(["mcp", "serve", str(path), "--http", "nowhere"]) == 2
        assert _cli(["mcp", "serve", str(path), "--token", "t"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(
        "refusing to serve MCP on 0.0.0.0: binding an address other than "
        "loopback needs a bearer token"
    )
    assert err[1] == "--http nowhere: write it as HOST:PORT, e.g. 127.0.0.1:8765"
    assert err[2] == "--token protects the HTTP transport: use it with --http HOST:PORT"


async def test_cancelling_the_call_cancels_the_run(tmp_path: Path) -> None:
    progress = Progress()
    scripts = {**REVIEW, "Advocate": [Hang()], "Skeptic": [Hang()]}
    with FakeLLM(scripts=scripts) as fake:
        server = build_server(review_file(tmp_path, fake))
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                url = await _serving(tg, server)
                async with Client(url) as client, anyio.create_task_group() as calls:
                    calls.start_soon(
                        lambda: client.call_tool(
                            "workflow_review", {"input": "x"}, progress_callback=progress
                        )
                    )
                    await progress.first.wait()  # the reader is done; two agents now hang
                    calls.cancel_scope.cancel()
                await server.drained()
                tg.cancel_scope.cancel()
    stats = server.statistics()
    assert (stats["runs_cancelled"], stats["runs_active"], stats["runs_done"]) == (1, 0, 0)
    assert progress.notes == [(1, 4, "reader: done")]


async def test_the_runs_of_a_session_share_its_providers(tmp_path: Path) -> None:
    scripts = {"Reader": [Reply("One."), Reply("Two.")], "Skeptic": [Reply("Risks.")] * 2}
    with FakeLLM(scripts=scripts) as fake:
        server = build_server(review_file(tmp_path, fake))
        with anyio.fail_after(20):
            async with Client(server) as client:
                texts = [
                    (await client.call_tool(name, {"task": task})).content[0].text
                    for name, task in [("agent_reader", "a"), ("agent_risks", "b")]
                ]
                texts.append(
                    (await client.call_tool("agent_reader", {"task": "c"})).content[0].text
                )
            async with Client(server) as client:  # a new session opens its own
                await client.call_tool("agent_risks", {"task": "d"})
    assert texts == ["One.", "Risks.", "Two."]
    stats = server.statistics()
    assert (stats["runs_done"], stats["providers_started"]) == (4, 2)


async def test_over_http_every_session_shares_the_apps_providers(tmp_path: Path) -> None:
    with FakeLLM(scripts={"Reader": [Reply("One."), Reply("Two.")]}) as fake:
        server = build_server(review_file(tmp_path, fake))
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                url = await _serving(tg, server)
                for task in ("a", "b"):
                    async with Client(url) as client:
                        await client.call_tool("agent_reader", {"task": task})
                tg.cancel_scope.cancel()
    stats = server.statistics()
    assert (stats["runs_done"], stats["providers_started"]) == (2, 1)


async def test_an_agent_tool_runs_that_agent_alone(tmp_path: Path) -> None:
    with FakeLLM(scripts={"Skeptic": [Reply("Two risks.")]}) as fake:
        server = build_server(review_file(tmp_path, fake))
        with anyio.fail_after(20):
            async with Client(server) as client:
                tools = {t.name: t for t in (await client.list_tools()).tools}
                result = await client.call_tool("agent_risks", {"task": "review this diff"})
    assert not result.is_error and result.content[0].text == "Two risks."
    assert result.structured_content["agents"][0]["id"] == "risks"
    (request,) = fake.requests
    assert "review this diff" in request.text and "Reader" not in request.text
    risks = tools["agent_risks"]
    assert risks.description == (
        "Run the agent 'Skeptic' alone on a task and return its "
        "answer. Its instructions: Name two risks."
    )
    assert risks.input_schema["required"] == ["task"]


async def test_each_named_workflow_is_a_tool_with_its_description(tmp_path: Path) -> None:
    workflows = (
        "workflows:\n"
        "  - {id: quick, description: Only summarize., agents: [reader]}\n"
        "  - {id: full, agents: [reader, strengths, risks, verdict]}\n"
    )
    with FakeLLM(scripts={"Reader": [Reply("A summary.")]}) as fake:
        server = build_server(review_file(tmp_path, fake, workflows=workflows))
        with anyio.fail_after(20):
            async with Client(server) as client:
                tools = {t.name: t for t in (await client.list_tools()).tools}
                result = await client.call_tool("workflow_quick", {"input": "x"})
    assert [n for n in tools if n.startswith("workflow_")] == ["workflow_quick", "workflow_full"]
    assert tools["workflow_quick"].description == (
        "Run the workflow 'quick' (1 agents: Reader) on an input and return its final output. "
        "Only summarize."
    )
    assert result.content[0].text == "A summary."
    assert result.structured_content["workflow"] == "quick"


def test_a_file_without_name_or_workflows_offers_workflow_main(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text("agents: [{id: a}, {id: b, depends_on: [a]}]\n")
    assert build_server(path).tool_names == ["agent_a", "agent_b", "workflow_main"]


def test_a_broken_file_is_reported_before_serving(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("agents: [{id: a, depends_on: [ghost]}]\n")
    with pytest.raises(ConfigError, match="ghost"):
        build_server(path)


async def test_bad_arguments_are_mcp_errors_with_clear_messages(tmp_path: Path) -> None:
    with FakeLLM(script=[]) as fake:
        server = build_server(review_file(tmp_path, fake))
        errors = []
        with anyio.fail_after(20):
            async with Client(server) as client:
                for name, args in [
                    ("workflow_review", {}),
                    ("workflow_review", {"input": 3}),
                    ("agent_reader", {"task": "x", "extra": 1}),
                    ("workflow_nope", {"input": "x"}),
                ]:
                    with pytest.raises(MCPError) as caught:
                        await client.call_tool(name, args)
                    errors.append((caught.value.code, caught.value.message))
    assert {code for code, _ in errors} == {-32602}
    assert [m for _, m in errors] == [
        "workflow_review: missing the required argument 'input' (a string)",
        "workflow_review: 'input' must be a string, got int",
        "agent_reader: unknown argument(s) extra — it takes only 'task'",
        "no tool named 'workflow_nope'; this server has: agent_reader, agent_strengths, "
        "agent_risks, agent_verdict, workflow_review",
    ]
    assert fake.requests == []


async def test_a_failing_run_is_an_error_result_naming_the_agent_and_why(tmp_path: Path) -> None:
    with FakeLLM(scripts={**REVIEW, "Skeptic": [Fail(500, "the model is down")]}) as fake:
        server = build_server(review_file(tmp_path, fake))
        with anyio.fail_after(20):
            async with Client(server) as client:
                result = await client.call_tool("workflow_review", {"input": "x"})
    assert result.is_error
    text = result.content[0].text
    assert text.startswith("the run failed: agent 'risks' failed:")
    assert "500" in text
    assert result.structured_content["status"] == "failed"


def test_the_example_client_runs_a_workflow_through_axo_mcp_serve(tmp_path: Path) -> None:
    with FakeLLM(scripts=REVIEW) as fake:
        path = review_file(tmp_path, fake)
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "examples" / "mcp_client.py"),
                "--workflow",
                str(path),
                "--input",
                "the diff",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert (
        "tool workflow_review: Run the workflow 'review' (4 agents: Reader, Advocate, "
        "Skeptic, Lead reviewer) on an input and return its final output. Review a change "
        "from two sides and join the reviews into a verdict." in lines
    )
    assert "progress 4/4 verdict: done" in lines
    assert lines[-2:] == ["workflow_review ->", "REVISE: callers."]


def test_the_client_config_example_names_a_loadable_workflow() -> None:
    config = json.loads(
        (ROOT / "examples/mcp_client_config/claude_desktop_config.json").read_text()
    )
    (entry,) = config["mcpServers"].values()
    assert entry["args"][:2] == ["mcp", "serve"]
    workflow = entry["args"][2].replace("/path/to/axo", str(ROOT))
    assert os.path.isfile(workflow)
    assert build_server(workflow).tool_names[-1] == "workflow_review"


async def test_a_fact_remembered_in_one_served_call_is_recalled_in_the_next(
    tmp_path: Path,
) -> None:
    fact = "the staging database lives on host orca7"
    script = [ToolCalls([("remember", {"text": fact})]), Reply("stored"), Reply("it is on orca7")]
    with FakeLLM(script=script) as fake:
        path = tmp_path / "m.yaml"
        path.write_text(
            "name: m\n"
            f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}'}}\n"
            "agents:\n  - {id: a, tools: [remember], memory: {long_term: true}}\n"
        )
        state = tmp_path / "state"
        args = ["-m", "axo.mcp.cli", "serve", str(path), "--state-dir", str(state)]
        params = StdioServerParameters(command=sys.executable, args=args, cwd=tmp_path)
        with anyio.fail_after(60):
            async with Client(params) as client:
                await client.call_tool("agent_a", {"task": "remember where staging is"})
                await client.call_tool("agent_a", {"task": "where is the staging database?"})
        assert fact in fake.requests[-1].text, "the second call's request recalls the fact"
    assert (state / "events.db").exists() and (state / "memory" / "m").is_dir()


async def test_a_set_up_failure_reaches_the_client_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a file that passes the load's check (it starts like a GGUF file) and that llama.cpp
    # then refuses: the failure comes while the run sets up, naming the file
    models = tmp_path / "customer-acme-7731"
    models.mkdir()
    (models / "m.gguf").write_bytes(b"GGUF" + bytes(60))
    monkeypatch.setenv("AXO_TEST_MODEL_DIR", models.name)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "wf.yaml"
    path.write_text(
        "providers:\n"
        "  local: {type: local, model_path: './${AXO_TEST_MODEL_DIR}/m.gguf'}\n"
        "agents:\n  - {id: a}\n"
    )
    server = build_server(path)
    with anyio.fail_after(20):
        async with Client(server) as client:
            result = await client.call_tool("workflow_main", {"input": "x"})
    assert result.is_error
    text = result.content[0].text
    assert "***/m.gguf" in text and "customer-acme" not in text
