"""What a chat-completions answer becomes (``response_from_wire``): odd but valid answers are
read, malformed ones are provider errors that say what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from axo.errors import ProviderError
from axo.llm.openai import response_from_wire


def answer(message: Any, usage: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"choices": [{"message": message, "finish_reason": "stop"}]}
    if usage is not None:
        out["usage"] = usage
    return out


def test_content_given_as_parts_is_their_text() -> None:
    parts = [
        {"type": "text", "text": "one "},
        {"type": "image_url"},
        {"type": "text", "text": "two"},
    ]
    assert response_from_wire(answer({"content": parts})).content == "one two"


def test_half_a_character_becomes_the_replacement_character() -> None:
    call = {"id": "c1", "function": {"name": "f", "arguments": '{"a": "x\ud83d"}'}}
    got = response_from_wire(answer({"content": "cut \ud83d", "tool_calls": [call]}))
    assert got.content == "cut \ufffd"
    assert got.tool_calls[0].arguments == '{"a": "x\ufffd"}'
    assert response_from_wire(answer({"content": "\U0001f600"})).content == "\U0001f600"


def test_a_tool_call_id_used_twice_is_made_unique() -> None:
    calls = [
        {"id": "same", "function": {"name": "f", "arguments": '{"n": 1}'}},
        {"id": "same", "function": {"name": "f", "arguments": {"n": 2}}},
    ]
    got = response_from_wire(answer({"content": None, "tool_calls": calls}))
    assert [c.id for c in got.tool_calls] == ["same", "same_1"]
    assert got.tool_calls[1].arguments == '{"n": 2}'


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (answer(None), "the message is null, not an object"),
        (answer({"content": 42}), "the message's content is int, not text"),
        (answer({"content": {"text": "x"}}), "the message's content is dict, not text"),
        (answer({"content": "x"}, {"prompt_tokens": -985}), "a token count of -985"),
        (answer({"content": "x"}, {"completion_tokens": "many"}), "a token count of 'many'"),
        ({"choices": []}, "no choices"),
    ],
)
def test_a_malformed_answer_says_what_is_wrong(data: dict[str, Any], needle: str) -> None:
    with pytest.raises(ProviderError, match="malformed response") as info:
        response_from_wire(data)
    assert needle in str(info.value)
