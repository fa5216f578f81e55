"""McpHub against real MCP servers in their own processes (the process boundary is the point):
the PyPI ``mcp-server-time``, and the small servers in ``tests/mcp/servers``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

import axo
from axo.config import McpServer
from axo.mcp import McpHub
from axo.mcp.cli import add_commands, run_command
from axo.testing import FakeLLM, Reply, ToolCalls
from axo.tools.registry import ToolContext, ToolOutcome, ToolRegistry
from tests.helpers import fake_workflow, wait_gone
from tests.mcp.servers import command
from tests.mcp.servers.http_recorder import RecordingHttpServer

pytestmark = pytest.mark.anyio
CTX = ToolContext(run_id="r1", agent="a", workspace=".")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Events:
    """A ``record`` callback that keeps what it is told."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, kind: str, server: str, detail: dict[str, Any]) -> None:
        self.seen.append((kind, server, detail))

    def kinds(self, server: str) -> list[str]:
        return [k for k, s, _ in self.seen if s == server]

    def detail(self, kind: str, server: str) -> dict[str, Any]:
        return next(d for k, s, d in self.seen if k == kind and s == server)


def configs(**servers: dict[str, Any]) -> dict[str, McpServer]:
    return {name: McpServer.model_validate(cfg) for name, cfg in servers.items()}


def mcp_yaml(**servers: dict[str, Any]) -> str:
    return yaml.safe_dump({"mcp_servers": servers}, default_flow_style=False)


async def call(registry: ToolRegistry, name: str, **args: Any) -> ToolOutcome:
    return await registry.execute(name, "c1", json.dumps(args), CTX)


async def test_an_agent_calls_the_real_time_server_and_its_answer_reaches_the_next_agent(
    tmp_path: Path,
) -> None:
    convert = {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}
    scripts = {
        "Clock": [
            ToolCalls([("mcp__time__convert_time", convert)]),
            Reply("In Tokyo it is 21:00."),
        ],
        "Writer": [Reply("The call is at 21:00 Tokyo time.")],
    }
    agents = (
        "  - {id: clock, name: Clock, tools: [mcp__time]}\n"
        "  - {id: writer, name: Writer, depends_on: [clock]}\n"
    )
    time_server = {"command": sys.executable, "args": ["-m", "mcp_server_time"]}
    with FakeLLM(scripts=scripts) as fake:
        wf = fake_workflow(fake, agents, extra=mcp_yaml(time=time_server))
        with anyio.fail_after(30):  # the host opens the file's MCP servers for the run
            result = await axo.run_async(wf, "when is noon UTC in Tokyo?", workspace=str(tmp_path))
    assert result.ok, result.failure
    assert result.outputs == {"writer": "The call is at 21:00 Tokyo time."}
    offered = {
        t["function"]["name"]: t["function"] for t in fake.requests_for("Clock")[0].body["tools"]
    }
    assert set(offered) == {"mcp__time__convert_time", "mcp__time__get_current_time"}
    assert "source_timezone" in offered["mcp__time__convert_time"]["parameters"]["properties"]
    tool_message = fake.requests_for("Clock")[1].messages[-1]
    assert tool_message["role"] == "tool"
    assert "T21:00:00+09:00" in tool_message["content"]  # computed by the real server
    assert "In Tokyo it is 21:00." in fake.requests_for("Writer")[0].text
    assert result.agent("clock").tool_calls == 1
    assert result.notes_of("mcp_server_ready")[0].detail["tools"] == 2


async def test_the_same_tools_can_be_given_to_a_run_from_a_hub_opened_by_the_caller(
    tmp_path: Path,
) -> None:
    script = [ToolCalls([("mcp__counter__increment", {"by": 5})]), Reply("five")]
    with FakeLLM(script=script) as fake:
        wf = fake_workflow(fake, "  - {id: a, tools: [mcp__counter__increment]}\n")
        with anyio.fail_after(20):
            async with await McpHub.open(configs(counter=command("counter"))) as hub:
                result = await axo.run_async(
                    wf, "count", tools=hub.tools(), workspace=str(tmp_path)
                )
                state = json.loads(await hub.tools()[1].call({}, CTX))
    assert result.ok and fake.requests[1].messages[-1]["content"] == "5"
    assert state["count"] == 5, "the hub's session outlives the run that used it"


async def test_a_stateful_server_keeps_its_state_between_calls() -> None:
    with anyio.fail_after(20):
        async with await McpHub.open(configs(counter=command("counter"))) as hub:
            registry = ToolRegistry(hub.tools())
            totals = [
                (await call(registry, "mcp__counter__increment", by=by)).content for by in (1, 2, 3)
            ]
            state = json.loads((await call(registry, "mcp__counter__state")).content)
            status = hub.status()["counter"]
    assert totals == ["1", "3", "6"]
    assert state["count"] == 6
    assert (status.state, status.calls, status.failures) == ("ready", 4, 0)
    assert wait_gone([state["pid"]], 5) == set(), "closing the hub must stop the server"


@pytest.mark.parametrize("code", [-32000, -32001])
async def test_an_error_the_server_sends_is_its_answer_whatever_its_code(code: int) -> None:
    # the SDK reports a closed connection and a timeout with these codes too: a server's own
    # error with one of them must not pass for either (restarting a live server loses state)
    events = Events()
    with anyio.fail_after(20):
        async with await McpHub.open(configs(c=command("counter")), record=events) as hub:
            registry = ToolRegistry(hub.tools())
            await call(registry, "mcp__c__increment", by=5)
            refused = await call(registry, "mcp__c__refuse", code=code)
            state = json.loads((await call(registry, "mcp__c__state")).content)
            status = hub.status()["c"]
    assert refused.is_error
    assert f"MCP server 'c' refused 'refuse': refused with code {code}" in refused.content
    assert state["count"] == 5, "the server was restarted: its state is gone"
    assert (status.state, status.restarts) == ("ready", 0)
    assert events.kinds("c") == ["mcp_server_ready", "mcp_call_failed"]


async def test_two_tools_with_one_axo_name_keep_the_first_and_say_so() -> None:
    events = Events()
    with anyio.fail_after(20):
        clashing = {**command("counter"), "env": {"CLASH": "1"}}
        async with await McpHub.open(configs(c=clashing), record=events) as hub:
            names = [t.name for t in hub.tools()]
            hub.tools()  # noted once, however often the tools are listed
            registry = ToolRegistry(hub.tools())
            peek = await call(registry, "mcp__c__peek_count")
    assert names.count("mcp__c__peek_count") == 1
    assert not peek.is_error and peek.content == "0"
    clashes = [d for k, s, d in events.seen if k == "mcp_tool_name_clash"]
    assert clashes == [{"tool": "peek_count", "name": "mcp__c__peek_count"}]


async def test_an_answer_that_is_not_json_rpc_fails_the_call_at_once() -> None:
    # the SDK only logs a line it cannot read: the call would wait out its timeout (60 s)
    events = Events()
    with anyio.fail_after(20):
        async with await McpHub.open(configs(c=command("counter")), record=events) as hub:
            registry = ToolRegistry(hub.tools())
            garbled = await call(registry, "mcp__c__garble")
            after = await call(registry, "mcp__c__increment", by=2)
    assert garbled.is_error
    assert "MCP server 'c' answered 'garble' with something that is not JSON-RPC" in (
        garbled.content
    )
    assert not after.is_error and after.content == "2", "the server itself is still there"
    assert "mcp_protocol_error" in events.kinds("c")


async def test_mcp_tools_are_named_described_and_write_unless_marked_read_only() -> None:
    with anyio.fail_after(20):
        async with await McpHub.open(configs(counter=command("counter"))) as hub:
            tools = {t.name: t for t in hub.tools()}
    increment, state = tools["mcp__counter__increment"], tools["mcp__counter__state"]
    assert increment.description == "Add `by` to the counter and return the new total."
    assert increment.parameters["properties"]["by"]["type"] == "integer"
    assert (increment.writes, state.writes) == (True, False)
    assert {t.source for t in tools.values()} == {"mcp"}
    assert ToolRegistry(tools.values()).allowed(["*"]) == [state]


async def test_a_crashed_server_is_restarted_once_then_marked_unavailable() -> None:
    events = Events()
    with anyio.fail_after(30):
        async with await McpHub.open(configs(crash=command("crasher")), record=events) as hub:
            registry = ToolRegistry(hub.tools())
            first = await call(registry, "mcp__crash__echo", text="hi")
            crashed = await call(registry, "mcp__crash__crash")
            after_restart = await call(registry, "mcp__crash__echo", text="again")
            restarted = hub.status()["crash"]
            crashed_again = await call(registry, "mcp__crash__crash")
            refused = await call(registry, "mcp__crash__echo", text="anyone?")
            final = hub.status()["crash"]
    assert not first.is_error and not after_restart.is_error
    pids = {int(o.content.rsplit(" ", 1)[1].rstrip(")")) for o in (first, after_restart)}
    assert len(pids) == 2, "the restart must start a new process"
    assert crashed.is_error
    assert "MCP server 'crash' went away during 'crash'" in crashed.content
    assert "crasher: exiting on purpose" in crashed.content  # the server's own last words
    assert "it is being restarted" in crashed.content
    assert (restarted.state, restarted.restarts) == ("ready", 1)
    assert crashed_again.is_error and "it is now unavailable" in crashed_again.content
    assert refused.is_error
    assert "MCP server 'crash' is unavailable: the connection closed" in refused.content
    assert (final.state, final.restarts, final.calls, final.failures) == ("unavailable", 1, 5, 3)
    assert events.kinds("crash") == [
        "mcp_server_ready",
        "mcp_server_crashed",
        "mcp_server_restarted",
        "mcp_server_unavailable",
    ]
    assert wait_gone(pids, 5) == set()


async def test_a_call_that_never_answers_times_out_and_the_run_still_finishes(
    tmp_path: Path,
) -> None:
    silent = {**command("silent"), "call_timeout": 0.5}
    script = [
        ToolCalls([("mcp__silent__wait", {})]),
        ToolCalls([("mcp__silent__echo", {"text": "still here"})]),
        Reply("the server did not answer"),
    ]
    with FakeLLM(script=script) as fake:
        wf = fake_workflow(
            fake, "  - {id: a, tools: [mcp__silent]}\n", extra=mcp_yaml(silent=silent)
        )
        with anyio.fail_after(30):
            result = await axo.run_async(wf, "wait for it", workspace=str(tmp_path))
    assert result.ok, result.failure
    assert result.outputs == {"a": "the server did not answer"}
    timed_out = fake.requests[1].messages[-1]["content"]
    assert "MCP server 'silent': 'wait' did not answer within 0.5s" in timed_out
    assert fake.requests[2].messages[-1]["content"] == "still here", "the server stays up"
    (note,) = result.notes_of("mcp_call_timeout")
    assert note.detail == {"tool": "wait", "timeout": 0.5}


async def test_the_configured_bearer_header_really_arrives_at_the_server() -> None:
    with RecordingHttpServer() as http:
        text = "agents: [{id: a}]\n" + mcp_yaml(
            remote={
                "transport": "streamable_http",
                "url": http.url,
                "headers": {"Authorization": "Bearer ${MCP_TOKEN}"},
            }
        )
        wf = axo.load_workflow("test.yaml", text=text, env={"MCP_TOKEN": "s3cret-t0ken"})
        with anyio.fail_after(20):
            async with await McpHub.open(wf.config.mcp_servers) as hub:
                answer = await call(ToolRegistry(hub.tools()), "mcp__remote__echo", text="hello")
    assert answer.content == "hello"
    assert len(http.authorizations) >= 2  # the connect and the call at least
    assert set(http.authorizations) == {"Bearer s3cret-t0ken"}


async def test_a_server_that_fails_to_start_leaves_the_others_working() -> None:
    events = Events()
    exits = {
        "command": sys.executable,
        "args": ["-c", "import sys; sys.stderr.write('boom: bad config\\n'); sys.exit(2)"],
    }
    mute = {
        "command": sys.executable,
        "args": ["-c", "import sys; sys.stdin.read()"],
        "connect_timeout": 0.5,
    }
    with RecordingHttpServer() as http:
        servers = configs(
            missing={"command": "/nonexistent/mcp-server"},
            exits=exits,
            mute=mute,
            nourl={"transport": "streamable_http"},
            ok={"transport": "streamable_http", "url": http.url},
        )
        with anyio.fail_after(20):
            async with await McpHub.open(servers, record=events) as hub:
                names = [t.name for t in hub.tools()]
                answer = await call(ToolRegistry(hub.tools()), "mcp__ok__echo", text="fine")
                status = hub.status()
    assert names == ["mcp__ok__echo"] and answer.content == "fine"
    assert {n: s.state for n, s in status.items()} == {
        "missing": "failed",
        "exits": "failed",
        "mute": "failed",
        "nourl": "failed",
        "ok": "ready",
    }
    reasons = {
        n: events.detail("mcp_server_failed", n)["reason"]
        for n in ("missing", "exits", "mute", "nourl")
    }
    assert "No such file or directory: '/nonexistent/mcp-server'" in reasons["missing"]
    assert reasons["exits"] == "the server exited before it was ready (stderr: boom: bad config)"
    assert reasons["mute"] == "did not connect within 0.5s"
    assert reasons["nourl"] == "ValueError: a streamable_http server needs 'url'"
    assert status["missing"].reason == reasons["missing"]


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="axo")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return run_command(parser.parse_args(argv))


def test_axo_mcp_tools_lists_each_server_its_tools_and_their_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text(
        "agents: [{id: a}]\n"
        + mcp_yaml(
            time={"command": sys.executable, "args": ["-m", "mcp_server_time"]},
            broken={"command": "/nonexistent/mcp-server"},
        )
    )
    code = _cli(["mcp", "tools", str(path)])
    out = capsys.readouterr().out
    assert code == 1, "a server that fails to start makes the listing fail"
    assert "time  (stdio)  2 tools" in out
    assert "  mcp__time__convert_time  [read-only]\n      Convert time between timezones\n" in out
    assert "      time: string, required — Time to convert in 24-hour format (HH:MM)" in out
    assert "broken  (stdio)  failed: FileNotFoundError: [Errno 2]" in out


def test_axo_mcp_tools_json_gives_schemas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with RecordingHttpServer() as http:
        path = tmp_path / "tools.yaml"
        path.write_text(
            "agents: [{id: a}]\n"
            + mcp_yaml(remote={"transport": "streamable_http", "url": http.url})
        )
        code = _cli(["mcp", "tools", str(path), "--json"])
    listing = json.loads(capsys.readouterr().out)
    assert code == 0
    remote = listing["servers"]["remote"]
    assert (remote["ok"], remote["error"], remote["transport"]) == (True, None, "streamable_http")
    (echo,) = remote["tools"]
    assert (echo["name"], echo["tool"]) == ("mcp__remote__echo", "echo")
    assert echo["input_schema"]["required"] == ["text"]


def test_axo_mcp_tools_says_when_a_file_configures_no_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "none.yaml"
    path.write_text("agents: [{id: a}]\n")
    assert _cli(["mcp", "tools", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: no mcp_servers configured\n"
