"""A client for Anthropic's Messages API (``POST {base_url}/v1/messages``).

It knows how axo's provider structs map to Anthropic's wire format — system messages lifted to
the top-level ``system`` field, turns made of content blocks, tool calls as ``tool_use`` blocks
and tool results as ``tool_result`` blocks inside user turns, a JSON-schema answer as one forced
synthetic tool — and it retries like the OpenAI-compatible client: connection errors, timeouts,
429, 5xx and Anthropic's 529 "overloaded", with exponential backoff (± jitter) or what
``retry-after`` says. It does not know about agents, budgets or streaming, drops ``seed`` (the
API has none), and never puts the API key in a message or log.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from axo.errors import ProviderError
from axo.llm.base import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ToolCall,
    ToolSpec,
    Usage,
    valid_text,
)
from axo.llm.openai import RETRY_STATUSES, retry_after
from axo.llm.retry import pooled_client, with_retries

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "RETRY_STATUSES_ANTHROPIC",
    "AnswerTool",
    "AnthropicMessages",
    "request_to_wire",
    "response_from_wire",
]

Wire = dict[str, Any]

RETRY_STATUSES_ANTHROPIC = RETRY_STATUSES | {529}
DEFAULT_MAX_TOKENS = 1024  # the API refuses a request without max_tokens

# Anthropic's stop reasons in the vocabulary the other providers already use, so callers can
# test ``finish_reason`` without knowing which provider answered; unknown ones pass through.
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "refusal": "content_filter",
}


@dataclass(frozen=True, slots=True)
class AnswerTool:
    """The synthetic tool that carries a ``response_format`` answer.

    Attributes:
        name: ``answer``, or a variant when the request already offers a tool of that name.
        wrapped: the schema was not an object, so it sits under ``value`` (tool inputs must
            be objects) and is unwrapped again from the answer.
    """

    name: str
    wrapped: bool

    @staticmethod
    def for_schema(schema: Wire, taken: Sequence[str]) -> tuple[AnswerTool, Wire]:
        """The answer tool for ``schema`` and its wire form."""
        name = "answer"
        while name in taken:
            name += "_"
        wrapped = schema.get("type") != "object"
        input_schema = (
            {"type": "object", "properties": {"value": schema}, "required": ["value"]}
            if wrapped
            else schema
        )
        wire = {
            "name": name,
            "input_schema": input_schema,
            "description": "Give your final answer; its input is the answer itself.",
        }
        return AnswerTool(name, wrapped), wire


def request_to_wire(req: ChatRequest) -> tuple[Wire, AnswerTool | None]:
    """The Messages API body for ``req``, and the answer tool when it asks for JSON.

    Raises:
        ValueError: the request cannot be expressed (a tool call whose arguments are not a JSON
            object, a tool result without the id of its call).
    """
    system, messages = messages_to_wire(req.messages)
    body: Wire = {
        "model": req.model,
        "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system:
        body["system"] = system
    for key in ("temperature", "top_p"):
        value = getattr(req, key)
        if value is not None:
            body[key] = value
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    tools = [_tool_to_wire(t) for t in req.tools]
    choice = _choice_to_wire(req.tool_choice)
    answer: AnswerTool | None = None
    if req.response_format is not None:
        answer, wire = AnswerTool.for_schema(req.response_format, [t.name for t in req.tools])
        tools.append(wire)
        if not req.tools or (choice is not None and choice["type"] == "none"):
            choice = {"type": "tool", "name": answer.name}
        elif choice is None or choice["type"] == "auto":
            choice = {"type": "any"}  # a real tool or the answer, never free text
    if tools:
        body["tools"] = tools
        if choice is not None:
            body["tool_choice"] = choice
    return body, answer


def messages_to_wire(messages: Sequence[ChatMessage]) -> tuple[str, list[Wire]]:
    """Split off the system text and build alternating user/assistant turns of blocks.

    Consecutive messages that land in the same role are merged, because the API requires
    turns to alternate; tool results come first in their user turn, as the API requires.
    """
    system: list[str] = []
    turns: list[Wire] = []
    for m in messages:
        if m.role == "system":
            if m.content:
                system.append(m.content)
            continue
        role, blocks = _blocks(m)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            turn["content"].sort(key=lambda b: b["type"] != "tool_result")  # stable
    return "\n\n".join(system), turns


def _blocks(m: ChatMessage) -> tuple[str, list[Wire]]:
    if m.role == "tool":
        if not m.tool_call_id:
            raise ValueError("a tool message has no tool_call_id to answer")
        return "user", [
            {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content or ""}
        ]
    blocks: list[Wire] = []
    if m.content:
        blocks.append({"type": "text", "text": m.content})
    for call in m.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": _tool_input(call)}
        )
    return m.role, blocks


def _tool_input(call: ToolCall) -> Wire:
    text = call.arguments.strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError(
            f"tool call {call.id} ({call.name}) has arguments that are not JSON: {text[:80]!r}"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(
            f"tool call {call.id} ({call.name}) has arguments that are not a "
            f"JSON object: {text[:80]!r}"
        )
    return value


def _tool_to_wire(t: ToolSpec) -> Wire:
    return {"name": t.name, "description": t.description, "input_schema": t.parameters}


def _choice_to_wire(choice: str | None) -> Wire | None:
    match choice:
        case None:
            return None
        case "auto":
            return {"type": "auto"}
        case "required":
            return {"type": "any"}
        case "none":
            return {"type": "none"}
        case name:
            return {"type": "tool", "name": name}


def response_from_wire(data: Any, answer: AnswerTool | None = None) -> ChatResponse:
    """A ``ChatResponse`` from a Messages API answer.

    Raises:
        ValueError: the answer has no list of content blocks.
    """
    blocks = data.get("content") if isinstance(data, dict) else None
    if not isinstance(blocks, list):
        raise ValueError(f"malformed response: no content blocks in {str(data)[:200]}")
    texts: list[str] = []
    calls: list[ToolCall] = []
    answered: Any = None
    for i, b in enumerate(blocks):
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "text":
            texts.append(str(b.get("text") or ""))
        elif kind == "tool_use":
            if answer is not None and b.get("name") == answer.name:
                answered = b.get("input") or {}
                continue
            calls.append(
                ToolCall(
                    id=str(b.get("id") or f"toolu_{i}"),
                    name=str(b["name"]),
                    arguments=json.dumps(b.get("input") or {}, ensure_ascii=False),
                )
            )
        # thinking and other block types carry nothing a ChatResponse holds
    stop = data.get("stop_reason")
    finish = _FINISH.get(stop, stop) if isinstance(stop, str) else None
    if answer is not None and answered is not None:
        value = answered.get("value") if answer.wrapped and isinstance(answered, dict) else answered
        content: str | None = json.dumps(value, ensure_ascii=False)
        finish = "tool_calls" if calls else "stop"
    else:
        content = "".join(texts) if texts else None
    usage = data.get("usage") or {}
    return ChatResponse(
        content=None if content is None else valid_text(content),
        tool_calls=tuple(
            ToolCall(
                id=valid_text(c.id), name=valid_text(c.name), arguments=valid_text(c.arguments)
            )
            for c in calls
        ),
        finish_reason=finish,
        usage=Usage(
            prompt_tokens=max(0, int(usage.get("input_tokens") or 0)),
            completion_tokens=max(0, int(usage.get("output_tokens") or 0)),
        ),
        model=str(data.get("model") or ""),
    )


class AnthropicMessages:
    """Async client for Anthropic's Messages API.

    Args:
        name: the provider's name in the workflow (used in error messages).
        base_url: e.g. ``https://api.anthropic.com``; ``/v1/messages`` is appended.
        api_key: sent as ``x-api-key``; never logged, and scrubbed from error messages.
        default_model: used when a request names no model.
        timeout: seconds for one whole request (read included).
        connect_timeout: seconds to establish the connection.
        max_retries: retries after the first attempt for retryable failures.
        backoff: base delay in seconds; attempt k waits ``backoff · 2^k`` (± 25 % jitter),
            or what ``retry-after`` says.
        version: the ``anthropic-version`` header.
        transport: an httpx transport to use instead of the network (tests).
        sleep: how to wait between attempts (tests inject a recorder).
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        api_key: str | None = None,
        default_model: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        version: str = "2023-06-01",
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.default_model = default_model
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)
        self.max_retries = max_retries
        self.backoff = backoff
        self._secret = api_key or None
        self._sleep = sleep
        headers = {"anthropic-version": version, "content-type": "application/json"}
        if api_key:
            headers["x-api-key"] = api_key
        self._client = pooled_client(
            self.base_url,
            headers,
            timeout=timeout,
            connect_timeout=connect_timeout,
            transport=transport,
        )
        self.calls = 0
        self.retries = 0
        self.input_tokens = 0
        self.output_tokens = 0

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Send ``request``, retrying where retrying makes sense.

        Raises:
            ProviderError: the request cannot be expressed, the server refused it, or every
                attempt failed (the message says which and how many attempts were made).
        """
        if not request.model:
            if not self.default_model:
                raise ProviderError(
                    f"{self.name}: no model — set 'model' on the provider or the agent"
                )
            request = msgspec.structs.replace(request, model=self.default_model)
        try:
            wire, answer = request_to_wire(request)
        except ValueError as exc:
            raise ProviderError(self._scrub(f"{self.name}: cannot send request: {exc}")) from None
        body = json.dumps(wire).encode()
        start = time.perf_counter()
        data, attempts = await with_retries(
            lambda: self._attempt(body),
            max_retries=self.max_retries,
            backoff=self.backoff,
            sleep=self._sleep,
            on_attempt=self._count_call,
            on_retry=self._count_retry,
        )
        try:
            out = response_from_wire(data, answer)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProviderError(self._scrub(f"{self.name}: {exc}")) from None
        self.input_tokens += out.usage.prompt_tokens
        self.output_tokens += out.usage.completion_tokens
        return msgspec.structs.replace(
            out, elapsed_s=time.perf_counter() - start, attempts=attempts
        )

    def _count_call(self) -> None:
        self.calls += 1

    def _count_retry(self) -> None:
        self.retries += 1

    async def _attempt(self, body: bytes) -> tuple[ProviderError | None, float | None, Any]:
        """One POST: (None, None, json) on success, else (failure, retry-after, None)."""
        try:
            resp = await self._client.post("/v1/messages", content=body)
        except httpx.ConnectTimeout:
            return self._fail(f"could not connect within {self.connect_timeout:g}s"), None, None
        except httpx.TimeoutException:
            return self._fail(f"no answer within {self.timeout:g}s"), None, None
        except httpx.TransportError as exc:
            return self._fail(f"connection failed ({type(exc).__name__}: {exc})"), None, None
        if resp.status_code == 200:
            try:
                return None, None, resp.json()
            except ValueError:
                raise ProviderError(
                    self._scrub(f"{self.name}: answer is not JSON: {resp.text[:200]!r}")
                ) from None
        status = resp.status_code
        failure = self._fail(
            f"HTTP {status} {_error_detail(resp)}",
            status=status,
            retryable=status in RETRY_STATUSES_ANTHROPIC,
        )
        return failure, retry_after(resp), None

    def _fail(
        self, what: str, *, status: int | None = None, retryable: bool = True
    ) -> ProviderError:
        return ProviderError(
            self._scrub(f"{self.name}: {what}"), retryable=retryable, status=status
        )

    def _scrub(self, text: str) -> str:
        # a server or proxy may echo the key back in an error body
        return text.replace(self._secret, "[api key]") if self._secret else text

    async def aclose(self) -> None:
        await self._client.aclose()

    def statistics(self) -> dict[str, int]:
        """Attempts made, retries among them, and tokens reported by successful calls."""
        return {
            "calls": self.calls,
            "retries": self.retries,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }


def _error_detail(resp: httpx.Response) -> str:
    """Anthropic's ``{"type": "error", "error": {"type", "message"}}`` as a short text."""
    try:
        data = resp.json()
    except ValueError:
        detail = resp.text[:300]
    else:
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            detail = str(err.get("message") or err.get("type") or err)[:300]
        else:
            detail = str(err or data)[:300]
    if resp.status_code == 529 and "overload" not in detail.lower():
        detail = f"overloaded: {detail}" if detail else "overloaded"
    return detail
