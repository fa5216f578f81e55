"""Tests for axo.llm.anthropic against FakeAnthropic, a real HTTP server on loopback.

No mocks: every request crosses a socket, and the fake refuses what the real Messages API
refuses, so a wire-format mistake fails here as it would in production. Sleeps between retries
are recorded by an injected ``sleep``, never slept; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

import axo
from axo.errors import ProviderError
from axo.llm.anthropic import AnthropicMessages, request_to_wire
from axo.llm.base import ChatMessage, ChatRequest, ToolCall, ToolSpec
from axo.testing import Drop, Fail, Hang, Reply, ScriptExhausted, ToolCalls
from axo.testing_anthropic import FakeAnthropic

T = TypeVar("T")
KEY = "sk-ant-test-0123456789abcdef"
WEATHER = ToolSpec(
    name="weather",
    description="Current weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


class RecordingSleep:
    """Stands in for ``asyncio.sleep``: records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def drive(
    fake: FakeAnthropic, body: Callable[[AnthropicMessages], Awaitable[T]], **options: Any
) -> T:
    """Run ``body`` with a client pointed at ``fake`` (bounded, closed afterwards)."""
    settings: dict[str, Any] = {
        "api_key": KEY,
        "default_model": "claude-test",
        "backoff": 0.5,
        "sleep": RecordingSleep(),
        "timeout": 10.0,
    }
    settings.update(options)

    async def go() -> T:
        client = AnthropicMessages("claude", fake.base_url, **settings)
        try:
            return await asyncio.wait_for(body(client), 20)
        finally:
            await client.aclose()

    return asyncio.run(go())


def ask(fake: FakeAnthropic, request: ChatRequest, **options: Any) -> Any:
    return drive(fake, lambda c: c.complete(request), **options)


def chat(*messages: ChatMessage, **fields: Any) -> ChatRequest:
    return ChatRequest(model="", messages=messages, **fields)


def system(text: str) -> ChatMessage:
    return ChatMessage(role="system", content=text)


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


# ------------------------------------------------------------------------------- answers


def test_a_text_answer_comes_back_with_its_usage_and_the_request_is_well_formed() -> None:
    with FakeAnthropic(script=[Reply("Paris.", prompt_tokens=12, completion_tokens=3)]) as fake:
        resp = ask(
            fake,
            chat(user("Capital of France?"), temperature=0.2, top_p=0.9, stop=("\n\n",), seed=7),
        )
    assert resp.content == "Paris."
    assert resp.tool_calls == ()
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (12, 3)
    assert resp.finish_reason == "stop" and resp.model == "claude-test" and resp.attempts == 1
    sent = fake.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert sent.body == {
        "model": "claude-test",
        "max_tokens": 1024,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["\n\n"],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]}],
    }


def test_system_messages_go_to_the_top_level_system_field_and_name_the_agent() -> None:
    with FakeAnthropic(scripts={"critic": [Reply("noted")]}) as fake:
        ask(
            fake,
            chat(
                system("You are critic.\nBe terse."),
                user("Review this."),
                system("Answer in English."),
                max_tokens=50,
            ),
        )
    sent = fake.requests_for("critic")[0]
    assert sent.body["system"] == "You are critic.\nBe terse.\n\nAnswer in English."
    assert [m["role"] for m in sent.body["messages"]] == ["user"]
    assert sent.body["max_tokens"] == 50


def test_a_tool_use_round_trip_sends_tool_use_and_tool_result_blocks() -> None:
    script = [
        ToolCalls(
            [("weather", {"city": "Oslo"}), ("weather", {"city": "Bergen"})],
            content="Checking both.",
        ),
        Reply("Oslo 3°C, Bergen 7°C."),
    ]

    async def round_trip(client: AnthropicMessages) -> tuple[Any, Any]:
        first = chat(
            system("You are forecaster."),
            user("Weather in Oslo and Bergen?"),
            tools=(WEATHER,),
            tool_choice="auto",
        )
        called = await client.complete(first)
        results = tuple(
            ChatMessage(
                role="tool", tool_call_id=c.id, content=f"{json.loads(c.arguments)['city']}: fine"
            )
            for c in called.tool_calls
        )
        assistant = ChatMessage(
            role="assistant", content=called.content, tool_calls=called.tool_calls
        )
        follow_up = chat(*first.messages, assistant, *results, tools=(WEATHER,))
        return called, await client.complete(follow_up)

    with FakeAnthropic(script=script) as fake:
        called, final = drive(fake, round_trip)
    assert called.finish_reason == "tool_calls" and called.content == "Checking both."
    assert [(c.name, json.loads(c.arguments)) for c in called.tool_calls] == [
        ("weather", {"city": "Oslo"}),
        ("weather", {"city": "Bergen"}),
    ]
    assert final.content == "Oslo 3°C, Bergen 7°C." and final.finish_reason == "stop"

    asked, answered = fake.requests
    assert asked.body["tools"] == [
        {"name": "weather", "description": WEATHER.description, "input_schema": WEATHER.parameters}
    ]
    assert asked.body["tool_choice"] == {"type": "auto"}
    ids = [c.id for c in called.tool_calls]
    user_turn, assistant_turn, results_turn = answered.body["messages"]
    assert user_turn["role"] == "user"
    assert assistant_turn == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": ids[0], "name": "weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": ids[1], "name": "weather", "input": {"city": "Bergen"}},
        ],
    }
    assert results_turn == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": ids[0], "content": "Oslo: fine"},
            {"type": "tool_result", "tool_use_id": ids[1], "content": "Bergen: fine"},
        ],
    }
    assert "tool_choice" not in answered.body


def test_consecutive_messages_of_one_role_are_merged_into_one_turn() -> None:
    call = ToolCall(id="toolu_1", name="weather", arguments='{"city": "Rome"}')
    messages = (
        user("first"),
        user("second"),
        ChatMessage(role="assistant", tool_calls=(call,)),
        ChatMessage(role="tool", tool_call_id="toolu_1", content="sunny"),
        user("and now?"),
    )
    with FakeAnthropic(script=[Reply("ok")]) as fake:
        ask(fake, chat(*messages, tools=(WEATHER,)))
    sent = fake.requests[0].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert [b["text"] for b in sent[0]["content"]] == ["first", "second"]
    assert [b["type"] for b in sent[2]["content"]] == ["tool_result", "text"]


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ("weather", {"type": "tool", "name": "weather"}),
    ],
)
def test_tool_choice_maps_to_anthropic_terms(choice: str, wire: dict[str, Any]) -> None:
    body, _ = request_to_wire(chat(user("hi"), tools=(WEATHER,), tool_choice=choice))
    assert body["tool_choice"] == wire


@pytest.mark.parametrize(
    ("schema", "scripted", "content"),
    [
        ({"type": "object", "properties": {"n": {"type": "integer"}}}, '{"n": 42}', {"n": 42}),
        ({"type": "array", "items": {"type": "string"}}, '{"value": ["a", "b"]}', ["a", "b"]),
    ],
)
def test_response_format_forces_an_answer_tool_and_returns_its_input_as_json_text(
    schema: dict[str, Any], scripted: str, content: Any
) -> None:
    with FakeAnthropic(script=[Reply(scripted)]) as fake:
        resp = ask(fake, chat(user("Give me the answer."), response_format=schema))
    assert json.loads(resp.content) == content
    assert resp.tool_calls == () and resp.finish_reason == "stop"
    sent = fake.requests[0].body
    assert sent["tool_choice"] == {"type": "tool", "name": "answer"}
    [tool] = sent["tools"]
    assert tool["name"] == "answer" and tool["input_schema"]["type"] == "object"


def test_response_format_beside_real_tools_lets_the_model_call_either() -> None:
    with FakeAnthropic(script=[ToolCalls([("weather", {"city": "Nice"})])]) as fake:
        resp = ask(
            fake,
            chat(
                user("hi"), tools=(WEATHER,), tool_choice="auto", response_format={"type": "object"}
            ),
        )
    assert [c.name for c in resp.tool_calls] == ["weather"]
    sent = fake.requests[0].body
    assert [t["name"] for t in sent["tools"]] == ["weather", "answer"]
    assert sent["tool_choice"] == {"type": "any"}


# ------------------------------------------------------------------------------- failures


def test_529_and_500_are_retried_with_growing_backoff_then_the_answer_arrives() -> None:
    sleep = RecordingSleep()
    script = [Fail(529, "Overloaded"), Fail(500, "boom"), Drop(), Reply("finally")]
    with FakeAnthropic(script=script) as fake:

        async def twice(client: AnthropicMessages) -> Any:
            return await client.complete(chat(user("hi"))), client.statistics()

        resp, stats = drive(fake, twice, sleep=sleep, max_retries=3, backoff=0.5)
    assert resp.content == "finally" and resp.attempts == 4
    assert [r.status for r in fake.requests] == [529, 500, None, 200]
    assert len(sleep.delays) == 3
    for delay, base in zip(sleep.delays, [0.5, 1.0, 2.0], strict=True):
        assert 0.75 * base <= delay <= 1.25 * base
    assert stats["calls"] == 4 and stats["retries"] == 3


def test_retry_after_is_honoured_instead_of_backoff() -> None:
    sleep = RecordingSleep()
    script = [
        Fail(429, "slow down", retry_after=7),
        Fail(529, "Overloaded", retry_after=0.25),
        Reply("ok"),
    ]
    with FakeAnthropic(script=script) as fake:
        resp = ask(fake, chat(user("hi")), sleep=sleep, max_retries=2, backoff=100)
    assert resp.content == "ok"
    assert sleep.delays == [7.0, 0.25]


def test_retries_running_out_give_a_clear_error_naming_status_and_attempts() -> None:
    with (
        FakeAnthropic(script=[Fail(529, "Overloaded")] * 3) as fake,
        pytest.raises(ProviderError) as caught,
    ):
        ask(fake, chat(user("hi")), max_retries=2)
    assert str(caught.value) == "claude: HTTP 529 Overloaded — gave up after 3 attempts"
    assert caught.value.status == 529 and not caught.value.retryable
    assert len(fake.requests) == 3


def test_a_client_error_is_not_retried() -> None:
    with (
        FakeAnthropic(script=[Fail(400, "prompt is too long")]) as fake,
        pytest.raises(ProviderError, match=r"^claude: HTTP 400 prompt is too long$"),
    ):
        ask(fake, chat(user("hi")), max_retries=3)
    assert len(fake.requests) == 1


def test_a_server_that_never_answers_times_out_with_no_answer_within() -> None:
    with (
        FakeAnthropic(script=[Hang()]) as fake,
        pytest.raises(ProviderError, match=r"^claude: no answer within 0\.3s$"),
    ):
        ask(fake, chat(user("hi")), timeout=0.3, max_retries=0)


def test_the_api_key_reaches_the_server_but_never_an_error_message() -> None:
    echoed = [Fail(500, f"upstream refused key {KEY}")] * 2
    with FakeAnthropic(script=echoed, api_key=KEY) as fake, pytest.raises(ProviderError) as caught:
        ask(fake, chat(user("hi")), max_retries=1)
    assert all(r.headers["x-api-key"] == KEY for r in fake.requests)
    assert KEY not in str(caught.value) and "[api key]" in str(caught.value)

    with (
        FakeAnthropic(script=[], api_key=KEY) as fake,
        pytest.raises(ProviderError, match="HTTP 401 invalid x-api-key") as caught,
    ):
        ask(fake, chat(user("hi")), api_key="sk-ant-wrong-key")
    assert "sk-ant-wrong-key" not in str(caught.value)


def test_a_request_without_a_model_anywhere_is_refused_before_sending() -> None:
    with FakeAnthropic(script=[]) as fake, pytest.raises(ProviderError, match="no model"):
        ask(fake, chat(user("hi")), default_model=None)
    assert fake.requests == []


# ------------------------------------------------------------------------------- the fake


def test_the_fakes_script_running_out_fails_loudly_naming_the_script() -> None:
    with (
        pytest.raises(ScriptExhausted, match="one-reply script: script for '\\*' exhausted"),
        FakeAnthropic(script=[Reply("one")], name="one-reply script") as fake,
    ):
        assert ask(fake, chat(user("a"))).content == "one"
        with pytest.raises(ProviderError, match="HTTP 400 one-reply script: script for"):
            ask(fake, chat(user("b")), max_retries=3)
    assert [r.status for r in fake.requests] == [200, 400]


def test_a_reply_that_cannot_answer_a_forced_tool_fails_the_fakes_check() -> None:
    with (
        pytest.raises(AssertionError, match="must be a JSON object"),
        FakeAnthropic(script=[Reply("not json")]) as fake,
        pytest.raises(ProviderError, match="HTTP 400"),
    ):
        ask(fake, chat(user("hi"), response_format={"type": "object"}))


def _turn(role: str, *blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": role, "content": list(blocks)}


_TEXT = {"type": "text", "text": "hi"}
_USE = {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}
_RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}


@pytest.mark.parametrize(
    ("drop", "change", "status", "fragment"),
    [
        ("x-api-key", {}, 401, "x-api-key header is required"),
        ("anthropic-version", {}, 400, "anthropic-version: header is required"),
        (None, {"max_tokens": None}, 400, "max_tokens: Field required"),
        (None, {"messages": [_turn("assistant", _TEXT)]}, 400, "first message must use"),
        (None, {"messages": [_turn("user", _TEXT), _turn("user", _TEXT)]}, 400, "must alternate"),
        (None, {"messages": [_turn("user", _RESULT)]}, 400, "unexpected tool_use_id"),
        (
            None,
            {"messages": [_turn("user", _TEXT), _turn("assistant", _USE), _turn("user", _TEXT)]},
            400,
            "without tool_result blocks",
        ),
        (None, {"messages": [_turn("user", {"type": "text", "text": ""})]}, 400, "non-empty"),
    ],
    ids=[
        "no-api-key",
        "no-version",
        "no-max-tokens",
        "assistant-first",
        "user-twice",
        "orphan-tool-result",
        "unanswered-tool-use",
        "empty-text",
    ],
)
def test_the_fake_refuses_what_the_real_api_refuses(
    drop: str | None, change: dict[str, Any], status: int, fragment: str
) -> None:
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    headers.pop(drop or "", None)
    body: dict[str, Any] = {
        "model": "claude-test",
        "max_tokens": 10,
        "messages": [_turn("user", _TEXT)],
        **change,
    }
    body = {k: v for k, v in body.items() if v is not None}
    with FakeAnthropic(script=[]) as fake, httpx.Client(base_url=fake.base_url) as http:
        resp = http.post("/v1/messages", json=body, headers=headers, timeout=10)
    assert resp.status_code == status
    error = resp.json()
    assert error["type"] == "error" and fragment in error["error"]["message"]
    assert fake.remaining() == {"*": 0} and fake.exhausted == []


# ------------------------------------------------------------------------------- end to end


def test_a_two_agent_workflow_runs_on_an_anthropic_provider(runtime: str) -> None:
    scripts = {"researcher": [Reply("three facts")], "writer": [Reply("a short essay")]}
    with FakeAnthropic(scripts=scripts, api_key="test-key") as fake:
        text = (
            "providers:\n"
            f"  claude: {{type: anthropic, base_url: '{fake.base_url}', api_key: test-key,"
            " model: claude-test, max_retries: 0}\n"
            "agents:\n"
            "  - {id: researcher, system_prompt: Find facts.}\n"
            "  - {id: writer, depends_on: [researcher]}\n"
        )
        result = axo.run(axo.load_workflow("t.yaml", text=text), "about otters", runtime=runtime)
    assert result.ok, result.failure
    assert result.outputs == {"writer": "a short essay"}
    assert [r.key for r in fake.requests] == ["researcher", "writer"]
    researcher, writer = fake.requests
    assert researcher.body["system"] == "You are researcher.\nFind facts."
    assert "about otters" in researcher.text
    assert "three facts" in writer.text and "about otters" in writer.text
    for r in fake.requests:
        assert r.headers["x-api-key"] == "test-key"
        assert r.body["model"] == "claude-test" and r.body["max_tokens"] >= 1
        assert [m["role"] for m in r.body["messages"]] == ["user"]
