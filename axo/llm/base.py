"""The provider protocol: what every LLM backend takes and returns.

This module knows the shape of a chat request and response and nothing about HTTP, actors or
configuration. Providers (OpenAI-compatible, Anthropic, local llama.cpp, in-process functions)
translate these structs to and from their wire formats.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

_SURROGATE = re.compile("[\ud800-\udfff]")

Role = Literal["system", "user", "assistant", "tool"]


def valid_text(text: str) -> str:
    """``text`` with each lone surrogate (half of a character a server cut in two, sent as
    ``"\\ud83d"`` in JSON) replaced by U+FFFD: no UTF-8 encoder — the event log's, a result's
    JSON — can take one."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # (a str holds a valid pair as one character: these are halves)
        return _SURROGATE.sub("\ufffd", text)
    return text


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """A tool call the model asked for; ``arguments`` is the JSON text the model produced."""

    id: str
    name: str
    arguments: str


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One message of a conversation."""

    role: Role
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


class ToolSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A tool offered to the model: a name, a description and a JSON schema for its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


class ChatRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a provider needs for one completion.

    ``tool_choice`` is ``"auto"``, ``"none"``, ``"required"`` or the name of one tool to force.
    ``response_format`` is a JSON schema the answer must follow, or None.
    """

    model: str
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    response_format: dict[str, Any] | None = None


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """Token counts as reported by the provider."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class ChatResponse(msgspec.Struct, frozen=True, kw_only=True):
    """One completion.

    Attributes:
        elapsed_s: wall time of the call as seen by the client (all retries included).
        server_s: time the server itself reports spending, when it reports one (llama.cpp's
            ``timings``), else None.
    """

    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = Usage()
    finish_reason: str | None = None
    model: str = ""
    elapsed_s: float = 0.0
    server_s: float | None = None
    attempts: int = 1


@runtime_checkable
class Provider(Protocol):
    """An LLM backend. ``complete`` raises ``axo.errors.ProviderError`` on failure."""

    name: str

    async def complete(self, request: ChatRequest) -> ChatResponse: ...

    async def aclose(self) -> None: ...
